//! Headless Chromium driven over the DevTools protocol, shared by the tests that need a real
//! browser (the dashboard's, the browser volunteers') and the benchmark of the volunteer page
//! (`--only browser`): start it on a page, evaluate JavaScript in that page, and read what
//! its processes take in memory.
//!
//! Chromium must be installed as `chromium` (Debian's package; `cargo xtask test` installs
//! it). A test tool as much as a measuring one: it waits for the browser at most
//! [`PATIENCE`], then fails naming what it waited for.

use std::io::{BufRead, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::attacker::RawSocket;

/// How long the browser is waited for (its start, a page showing up) before giving up:
/// generous, so that only a browser that never comes (not a slow machine) fails.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Headless Chromium showing a page, with its DevTools endpoint's address and a profile of
/// its own (a fresh one: no storage, no cache), removed when it is dropped.
pub struct Browser {
    child: Child,
    devtools: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Whether Chromium is installed (`chromium --version` runs).
    pub fn available() -> bool {
        Command::new("chromium")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Starts headless Chromium with a fresh profile, showing `url`.
    ///
    /// # Errors
    /// When Chromium is missing or ends before it listens for DevTools.
    pub fn open(url: &str) -> Result<Self> {
        let profile = tempfile::tempdir()?;
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
            .context("cannot start Chromium (apt-get install chromium)")?;
        let mut stderr = std::io::BufReader::new(child.stderr.take().context("piped")?);
        let devtools = loop {
            let mut line = String::new();
            if stderr.read_line(&mut line)? == 0 {
                let _ = child.kill();
                let _ = child.wait();
                bail!("Chromium ended before listening for DevTools");
            }
            if let Some(rest) = line.trim().strip_prefix("DevTools listening on ws://") {
                break rest.split('/').next().unwrap_or_default().to_owned();
            }
        };
        // Keep reading its log, so that it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Ok(Self {
            child,
            devtools,
            _profile: profile,
        })
    }

    /// The browser's process id (the root of its processes: see [`Browser::memory`]).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A DevTools connection to the page whose URL starts with `url`, once the browser
    /// shows it.
    ///
    /// # Errors
    /// When no such page shows up within [`PATIENCE`], or DevTools cannot be reached.
    pub async fn page(&self, url: &str) -> Result<Page> {
        let devtools = self.devtools.clone();
        let url = url.to_owned();
        let debugger = tokio::task::spawn_blocking(move || -> Result<String> {
            let started = Instant::now();
            loop {
                let targets: serde_json::Value =
                    serde_json::from_str(&http_get(&devtools, "/json/list")?)
                        .context("DevTools listed its pages in something not JSON")?;
                let page = targets.as_array().into_iter().flatten().find(|t| {
                    t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with(&url))
                });
                if let Some(debugger) = page.and_then(|p| p["webSocketDebuggerUrl"].as_str()) {
                    return Ok(debugger.to_owned());
                }
                ensure!(
                    started.elapsed() < PATIENCE,
                    "the browser never showed {url} (waited {PATIENCE:?})"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .await??;
        let (socket, _) = tokio_tungstenite::connect_async(&debugger)
            .await
            .context("cannot connect to the page's DevTools")?;
        Ok(Page { socket, next: 1 })
    }

    /// The memory of every process of the browser (the browser's own, its renderers, where a
    /// page's script and its Web Workers run, its GPU and utility processes), read from
    /// `/proc` (Linux only).
    ///
    /// # Errors
    /// When `/proc` cannot be read.
    pub fn memory(&self) -> Result<Vec<ProcessMemory>> {
        memory_of(self.pid())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DevTools connection to one page.
pub struct Page {
    socket: RawSocket,
    next: u64,
}

impl Page {
    /// Evaluates `expression` in the page and returns its value (JSON): `null` when it has
    /// none, threw, or the page was between documents.
    ///
    /// # Errors
    /// When the DevTools connection fails.
    pub async fn eval(&mut self, expression: &str) -> Result<serde_json::Value> {
        let id = self.next;
        self.next += 1;
        let call = serde_json::json!({
            "id": id,
            "method": "Runtime.evaluate",
            "params": { "expression": expression, "returnByValue": true },
        });
        self.socket.send(Message::text(call.to_string())).await?;
        loop {
            let text = match self.socket.next().await {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
                Some(Err(error)) => return Err(error.into()),
                None => bail!("the page's DevTools connection closed"),
            };
            let reply: serde_json::Value = serde_json::from_str(&text)?;
            if reply["id"] == id {
                return Ok(reply["result"]["result"]["value"].clone());
            }
        }
    }
}

/// `GET path` from the HTTP server at `addr` (host:port), its body: read by its length, as
/// Chromium's DevTools server keeps the connection open.
fn http_get(addr: &str, path: &str) -> Result<String> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk)?;
        ensure!(n > 0, "GET {path}: not an HTTP response");
        bytes.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    ensure!(head.split(' ').nth(1) == Some("200"), "GET {path}: {head}");
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    let mut body = bytes[head_end + 4..].to_vec();
    while length.is_none_or(|length| body.len() < length) {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// What one process holds in memory.
#[derive(Debug, Clone)]
pub struct ProcessMemory {
    /// The process id.
    pub pid: u32,
    /// Chromium's `--type` of the process (`renderer`, `gpu-process`, `utility`, `zygote`),
    /// `browser` for the root.
    pub kind: String,
    /// Resident set size, bytes: every page it maps that is in memory, shared ones whole.
    pub rss: u64,
    /// Proportional set size, bytes: its private pages, and its share of each page it shares
    /// with others (the libraries and zygote pages every Chromium process maps), so that the
    /// processes' PSS add up to what they take together.
    pub pss: u64,
}

/// The memory of process `root` and every process descended from it (`/proc`, Linux only).
///
/// # Errors
/// When `/proc` cannot be listed.
pub fn memory_of(root: u32) -> Result<Vec<ProcessMemory>> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid));
        }
    }
    let mut tree = vec![root];
    let mut at = 0;
    while at < tree.len() {
        let parent = tree[at];
        tree.extend(
            parents
                .iter()
                .filter(|&&(_, ppid)| ppid == parent)
                .map(|&(pid, _)| pid),
        );
        at += 1;
    }
    let mut out = Vec::new();
    for pid in tree {
        // A process that ended meanwhile is left out.
        let Ok(rollup) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
            continue;
        };
        let field = |name: &str| -> u64 {
            rollup
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse::<u64>().ok())
                .map_or(0, |kib| kib * 1024)
        };
        // Chromium rewrites its children's command lines as one string: arguments are
        // split at NULs or spaces.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let kind = cmdline
            .split(|&b| b == 0 || b == b' ')
            .find_map(|arg| arg.strip_prefix(b"--type="))
            .map_or_else(
                || "browser".to_owned(),
                |kind| String::from_utf8_lossy(kind).into_owned(),
            );
        out.push(ProcessMemory {
            pid,
            kind,
            rss: field("Rss:"),
            pss: field("Pss:"),
        });
    }
    Ok(out)
}
