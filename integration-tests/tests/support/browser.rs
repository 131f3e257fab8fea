//! Headless Chromium driven over the DevTools protocol: the dashboard's test and the browser
//! volunteers' (`/volunteer`).

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{RawSocket, eventually, http};

/// Headless Chromium showing `url`, with its DevTools endpoint's address.
pub struct Browser {
    child: Child,
    devtools: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn open(url: &str) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("this test needs Chromium: apt-get install chromium");
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let devtools = loop {
            let mut line = String::new();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "chromium exited");
            if let Some(rest) = line.trim().strip_prefix("DevTools listening on ws://") {
                break rest.split('/').next().unwrap().to_owned();
            }
        };
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Self {
            child,
            devtools,
            _profile: profile,
        }
    }

    /// A DevTools connection to the page showing `url`.
    pub async fn page(&self, url: &str) -> Page {
        let devtools = self.devtools.clone();
        let url = url.to_owned();
        let debugger = tokio::task::spawn_blocking(move || {
            eventually("the page in the browser", || {
                let (_, _, body) = http(&devtools, "GET", "/json/list", None);
                let targets: serde_json::Value = serde_json::from_str(&body).unwrap();
                let page = targets.as_array().unwrap().iter().find(|t| {
                    t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with(&url))
                })?;
                Some(page["webSocketDebuggerUrl"].as_str().unwrap().to_owned())
            })
        })
        .await
        .unwrap();
        let (socket, _) = tokio_tungstenite::connect_async(&debugger).await.unwrap();
        Page { socket, next: 1 }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Page {
    socket: RawSocket,
    next: u64,
}

impl Page {
    /// Evaluates `expression` in the page and returns its value.
    pub async fn eval(&mut self, expression: &str) -> serde_json::Value {
        let id = self.next;
        self.next += 1;
        let call = serde_json::json!({
            "id": id,
            "method": "Runtime.evaluate",
            "params": { "expression": expression, "returnByValue": true },
        });
        self.socket
            .send(Message::text(call.to_string()))
            .await
            .unwrap();
        loop {
            let Some(Ok(Message::Text(text))) = self.socket.next().await else {
                continue;
            };
            let reply: serde_json::Value = serde_json::from_str(&text).unwrap();
            if reply["id"] == id {
                return reply["result"]["result"]["value"].clone();
            }
        }
    }
}
