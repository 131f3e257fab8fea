//! What a child process says on a pipe, line by line: events a test can wait for.

use std::io::BufRead;

use tokio::sync::mpsc;

use super::PATIENCE;

/// The lines of a child's pipe, read on a thread of their own until it closes (so the child
/// never blocks on a full pipe, whether or not the test listens).
pub struct Said {
    lines: mpsc::UnboundedReceiver<String>,
    /// Every line received so far, for failure messages.
    heard: String,
}

impl Said {
    /// Starts reading `pipe`.
    pub fn new(pipe: impl std::io::Read + Send + 'static) -> Self {
        let (send, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            let mut pipe = std::io::BufReader::new(pipe);
            let mut line = Vec::new();
            while pipe.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                // Nobody listening any more: keep draining.
                let _ = send.send(String::from_utf8_lossy(&line).trim_end().to_owned());
                line.clear();
            }
        });
        Self {
            lines,
            heard: String::new(),
        }
    }

    /// Waits for the next line containing `text` and returns it; fails with everything said
    /// so far if the pipe closes first or [`PATIENCE`] passes.
    pub async fn line(&mut self, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.heard.push_str(&line);
                    self.heard.push('\n');
                    if line.contains(text) {
                        return line;
                    }
                }
                Ok(None) => panic!("it ended without saying {text:?}; it said:\n{}", self.heard),
                Err(_) => panic!(
                    "it did not say {text:?} within {PATIENCE:?}; it said:\n{}",
                    self.heard
                ),
            }
        }
    }
}
