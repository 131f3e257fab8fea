//! What the running worker is doing, kept in a small JSON state file that
//! `dipla-worker status` reads (see [`crate::status_report`]).
//!
//! A [`Status`] is a cheap-clone handle: the session, the executor and the politeness
//! controls record into it, and, for a worker given a file ([`Status::to_file`]), a
//! background thread writes the [`State`] atomically (a temporary file renamed over the old
//! one, mode 0644: it holds no secrets) on every change of state and at most about once a
//! second for the task counters, and refreshes it every [`REFRESH`] so that a worker killed
//! without a word is known to have run until about then.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What a worker's state file holds. Times are seconds since the Unix epoch.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct State {
    /// The worker's process id.
    pub pid: u32,
    /// The worker's version.
    pub version: String,
    /// The worker's name in the server's logs.
    pub name: String,
    /// When the worker started.
    pub started: u64,
    /// When the file was last written.
    pub updated: u64,
    /// The server's worker URL.
    pub server: String,
    /// Whether the worker is connected to the server now.
    pub connected: bool,
    /// The fingerprint of the job the server runs, once it has said (when joining).
    pub job: Option<String>,
    /// Tasks whose result was sent since the worker started.
    pub tasks_done: u64,
    /// Of those, tasks that failed (a guest error, a limit hit, a module refused).
    pub tasks_failed: u64,
    /// Tasks running now.
    pub tasks_running: u64,
    /// Tasks the worker runs at once.
    pub cores: usize,
    /// `None` when running; why the worker is paused otherwise (such as `on battery`).
    pub paused: Option<Vec<String>>,
    /// The cap on the CPU time of the task threads, in percent, if one is set.
    pub cpu_percent: Option<u32>,
    /// The scheduling priority of the task threads (such as `idle`), when known.
    pub priority: Option<String>,
    /// The last error: why the last connection ended, or why the worker stopped.
    pub last_error: Option<String>,
    /// When the worker exited cleanly; `None` while it runs (or if it was killed).
    pub stopped: Option<u64>,
}

impl State {
    /// The state of this process, starting now, serving `server` with `cores` task threads.
    pub fn new(server: &str, name: &str, cores: usize) -> Self {
        let now = unix_now();
        Self {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            name: name.to_owned(),
            started: now,
            updated: now,
            server: server.to_owned(),
            cores,
            ..Self::default()
        }
    }
}

/// How often an unchanged state file is written again, so that its `updated` time says
/// until when a worker that was killed ran.
pub const REFRESH: Duration = Duration::from_secs(30);

/// The least time between two writes for task counters alone.
const COUNTERS: Duration = Duration::from_secs(1);

/// What changed since the file was last written.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Dirty {
    Clean,
    /// Only counters: written within [`COUNTERS`].
    Counters,
    /// The state: written at once.
    State,
}

struct Inner {
    state: State,
    dirty: Dirty,
    /// Set by [`Status::finish`]: the writer writes once more and stops.
    closing: bool,
}

struct Shared {
    // Held only to read or change the state, never while writing the file.
    inner: Mutex<Inner>,
    changed: Condvar,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    path: Option<PathBuf>,
}

/// The live state of a worker, shared by its parts (a cheap clone). One that is not
/// [`Status::to_file`] only keeps the state in memory ([`Status::snapshot`]).
#[derive(Clone)]
pub struct Status {
    shared: Arc<Shared>,
}

impl Default for Status {
    fn default() -> Self {
        Self::in_memory(State::new("", "", 0))
    }
}

impl std::fmt::Debug for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Status")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl Status {
    /// A status starting at `state`, kept in memory only.
    pub fn in_memory(state: State) -> Self {
        Self::with_path(state, None)
    }

    /// A status starting at `state`, written to `path` now and as it changes (its folder is
    /// made if missing). A file that cannot be written is reported once in the log; the
    /// worker runs on.
    pub fn to_file(state: State, path: PathBuf) -> Self {
        let status = Self::with_path(state, Some(path));
        let shared = status.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("dipla-status".to_owned())
            .spawn(move || write_loop(&shared));
        match spawned {
            Ok(handle) => *lock(&status.shared.writer) = Some(handle),
            Err(error) => tracing::warn!(%error, "cannot start the state file's writer"),
        }
        status
    }

    fn with_path(state: State, path: Option<PathBuf>) -> Self {
        Self {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    state,
                    dirty: Dirty::State,
                    closing: false,
                }),
                changed: Condvar::new(),
                writer: Mutex::new(None),
                path,
            }),
        }
    }

    /// The file this status is written to, if any.
    pub fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }

    /// The state now.
    pub fn snapshot(&self) -> State {
        lock(&self.shared.inner).state.clone()
    }

    /// Changes the state; `dirty` says how soon the file must show it.
    fn update(&self, dirty: Dirty, change: impl FnOnce(&mut State)) {
        let mut inner = lock(&self.shared.inner);
        change(&mut inner.state);
        inner.dirty = inner.dirty.max(dirty);
        drop(inner);
        self.shared.changed.notify_all();
    }

    /// The worker joined its server, which runs the job of fingerprint `job` (if it said).
    pub fn joined(&self, job: Option<&str>) {
        self.update(Dirty::State, |state| {
            state.connected = true;
            state.job = job.map(str::to_owned);
        });
    }

    /// The connection to the server ended, with `error` unless the server said goodbye.
    pub fn disconnected(&self, error: Option<String>) {
        self.update(Dirty::State, |state| {
            state.connected = false;
            if error.is_some() {
                state.last_error = error;
            }
        });
    }

    /// The worker is paused for these reasons (`None`: it runs).
    pub fn set_paused(&self, reasons: Option<Vec<String>>) {
        self.update(Dirty::State, |state| state.paused = reasons);
    }

    /// The cap on the task threads' CPU time, in percent (`None`: no cap).
    pub fn set_cpu_percent(&self, percent: Option<u32>) {
        self.update(Dirty::State, |state| state.cpu_percent = percent);
    }

    /// The task threads' scheduling priority, such as `idle` or `normal`.
    pub fn set_priority(&self, priority: Option<String>) {
        self.update(Dirty::State, |state| state.priority = priority);
    }

    /// Results sent: `done` tasks, `failed` of them failures.
    pub(crate) fn results(&self, done: u64, failed: u64) {
        self.update(Dirty::Counters, |state| {
            state.tasks_done += done;
            state.tasks_failed += failed;
        });
    }

    /// A task starts running; it counts as running until the guard is dropped.
    pub(crate) fn task_running(&self) -> Running {
        self.update(Dirty::Counters, |state| state.tasks_running += 1);
        Running(self.clone())
    }

    /// The worker exits cleanly, with `error` if it failed: the file says so (unless
    /// another worker has taken it over since), and the writer stops.
    pub fn finish(&self, error: Option<String>) {
        let mut inner = lock(&self.shared.inner);
        let state = &mut inner.state;
        state.connected = false;
        state.tasks_running = 0;
        state.stopped = Some(unix_now());
        if error.is_some() {
            state.last_error = error;
        }
        // At once with the change, so that the writer's last write is the one that checks
        // whose file it is.
        inner.dirty = Dirty::State;
        inner.closing = true;
        drop(inner);
        self.shared.changed.notify_all();
        let writer = lock(&self.shared.writer).take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

/// A task counted as running (see [`Status::task_running`]).
pub(crate) struct Running(Status);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.update(Dirty::Counters, |state| {
            state.tasks_running = state.tasks_running.saturating_sub(1);
        });
    }
}

/// Writes the state whenever it changes, counters at most every [`COUNTERS`], everything
/// at least every [`REFRESH`], until [`Status::finish`].
fn write_loop(shared: &Shared) {
    let Some(path) = shared.path.as_deref() else {
        return;
    };
    let mut last_write: Option<Instant> = None;
    let mut warned = false;
    loop {
        let inner = lock(&shared.inner);
        let (mut inner, _) = shared
            .changed
            .wait_timeout_while(inner, REFRESH, |inner| {
                inner.dirty == Dirty::Clean && !inner.closing
            })
            .unwrap_or_else(PoisonError::into_inner);
        if inner.dirty == Dirty::Counters
            && let Some(wait) = last_write.and_then(|at| COUNTERS.checked_sub(at.elapsed()))
        {
            inner = shared
                .changed
                .wait_timeout_while(inner, wait, |inner| {
                    inner.dirty != Dirty::State && !inner.closing
                })
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        inner.dirty = Dirty::Clean;
        inner.state.updated = unix_now();
        let (state, closing) = (inner.state.clone(), inner.closing);
        drop(inner);
        // On a clean exit, leave alone a file another worker has taken over.
        let taken = closing && read(path).is_ok_and(|other| other.pid != state.pid);
        if !taken {
            match write(path, &state) {
                Ok(()) => warned = false,
                Err(error) if !warned => {
                    warned = true;
                    tracing::warn!(path = %path.display(), %error, "cannot write the state file");
                }
                Err(_) => {}
            }
        }
        last_write = Some(Instant::now());
        if closing {
            return;
        }
    }
}

/// Writes `state` to `path` atomically, world-readable.
///
/// # Errors
/// When the folder cannot be made or the file cannot be written.
pub fn write(path: &Path, state: &State) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
    let written = (|| {
        let mut file = options.open(&temporary)?;
        // The mode given to open is masked by the umask; the file must be readable by all.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        let mut text = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
        text.push(b'\n');
        file.write_all(&text)?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Reads the state file at `path`.
///
/// # Errors
/// When it cannot be read, or is not a state file.
pub fn read(path: &Path) -> std::io::Result<State> {
    let text = std::fs::read(path)?;
    serde_json::from_slice(&text).map_err(|error| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a state file: {error}"),
        )
    })
}

/// Where a worker keeps its state file unless told (`--state-file`): in the service's state
/// directory when systemd gives one (`$STATE_DIRECTORY/status.json`), else
/// [`user_state_path`].
pub fn default_state_path() -> Option<PathBuf> {
    std::env::var_os("STATE_DIRECTORY")
        .and_then(|dirs| {
            // systemd lists several directories with colons; the first is the unit's own.
            let dirs = dirs.to_string_lossy().into_owned();
            let first = dirs.split(':').next().unwrap_or_default().to_owned();
            (!first.is_empty()).then(|| PathBuf::from(first).join("status.json"))
        })
        .or_else(user_state_path)
}

/// The state file of a worker the user runs: `$XDG_STATE_HOME/dipla/status.json`, or
/// `~/.local/state/dipla/status.json`.
pub fn user_state_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local").join("state"))
        })?;
    Some(base.join("dipla").join("status.json"))
}

/// The state file of the worker installed as a service (`dipla-worker.service`, whose state
/// directory is `/var/lib/dipla`).
pub const SERVICE_STATE_PATH: &str = "/var/lib/dipla/status.json";

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state stays consistent whatever panics: every change is a few assignments.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_follows_the_state_and_is_marked_on_a_clean_exit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/status.json");
        let status = Status::to_file(State::new("ws://a/ws", "w", 2), path.clone());
        status.joined(Some("fingerprint"));
        {
            let _running = status.task_running();
            assert_eq!(status.snapshot().tasks_running, 1);
        }
        status.results(3, 1);
        status.set_paused(Some(vec!["on battery".to_owned()]));
        status.finish(None);
        let state = read(&path).unwrap();
        assert_eq!(state.pid, std::process::id());
        assert_eq!(state.job.as_deref(), Some("fingerprint"));
        assert_eq!(
            (state.tasks_done, state.tasks_failed, state.tasks_running),
            (3, 1, 0)
        );
        assert_eq!(state.paused, Some(vec!["on battery".to_owned()]));
        assert!(state.stopped.is_some() && !state.connected);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left");
    }

    #[test]
    fn a_clean_exit_leaves_a_file_another_worker_took_over_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let status = Status::to_file(State::new("ws://a/ws", "w", 1), path.clone());
        let other = State {
            pid: std::process::id() + 1,
            ..State::new("ws://b/ws", "other", 1)
        };
        // Once this worker's first write is there, the other worker's write replaces it.
        while read(&path).is_err() {
            std::thread::yield_now();
        }
        write(&path, &other).unwrap();
        status.finish(None);
        assert_eq!(read(&path).unwrap(), other);
    }
}
