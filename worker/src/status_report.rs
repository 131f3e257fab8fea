//! `dipla-worker status`: finding a worker's state file (see [`crate::status`]), telling
//! whether that worker still runs, and saying what it does, for people or as JSON.
//!
//! A worker runs when its file says it has not stopped and its process is still there;
//! one killed without a word leaves a file whose process is gone, and its `updated` time
//! (refreshed every [`crate::status::REFRESH`]) says until about when it ran.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

use crate::status::{self, State};

/// What `dipla-worker status` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A state file.
    Found {
        /// Where.
        path: PathBuf,
        /// What it says.
        state: Box<State>,
        /// Whether its worker runs now.
        running: bool,
    },
    /// No state file in any of these places.
    Missing {
        /// Where it looked.
        looked: Vec<PathBuf>,
    },
}

/// Why the state can not be told.
#[derive(Debug, Error)]
#[error("cannot read the state file {}: {source}", path.display())]
pub struct StatusError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// The state files `dipla-worker status` reads when not given one: the user's own worker's
/// ([`status::user_state_path`]), then the service's ([`status::SERVICE_STATE_PATH`]).
pub fn default_candidates() -> Vec<PathBuf> {
    let mut candidates: Vec<PathBuf> = status::user_state_path().into_iter().collect();
    candidates.push(PathBuf::from(status::SERVICE_STATE_PATH));
    candidates
}

/// Reads the state files at `candidates` and picks one: the first whose worker runs (by
/// `alive`, given its pid), else the one written last.
///
/// # Errors
/// When a file exists but cannot be read, and no other could be.
pub fn look(candidates: &[PathBuf], alive: impl Fn(u32) -> bool) -> Result<Lookup, StatusError> {
    let mut best: Option<Lookup> = None;
    let mut failure = None;
    for path in candidates {
        let state = match status::read(path) {
            Ok(state) => state,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                failure.get_or_insert(StatusError {
                    path: path.clone(),
                    source,
                });
                continue;
            }
        };
        let running = state.stopped.is_none() && alive(state.pid);
        let found = Lookup::Found {
            path: path.clone(),
            state: Box::new(state),
            running,
        };
        if running {
            return Ok(found);
        }
        let later = match (&best, &found) {
            (Some(Lookup::Found { state: old, .. }), Lookup::Found { state: new, .. }) => {
                new.updated > old.updated
            }
            _ => true,
        };
        if later {
            best = Some(found);
        }
    }
    match (best, failure) {
        (Some(found), _) => Ok(found),
        (None, Some(error)) => Err(error),
        (None, None) => Ok(Lookup::Missing {
            looked: candidates.to_vec(),
        }),
    }
}

/// Whether process `pid` is a running `dipla-worker`: its `/proc` entry is there and names
/// that program (or cannot be read). Without `/proc`, every pid is taken for alive.
pub fn alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return true;
    }
    let entry = proc.join(pid.to_string());
    match std::fs::read_to_string(entry.join("comm")) {
        // A pid used again by another program after the worker died is not the worker.
        Ok(comm) => comm.trim_end().starts_with("dipla-worker"),
        Err(_) => entry.exists(),
    }
}

impl Lookup {
    /// Whether a worker runs.
    pub fn running(&self) -> bool {
        matches!(self, Self::Found { running: true, .. })
    }

    /// The report as JSON: `running`, `file` (the state file, or `null`), `looked` (where
    /// no state file was found), and the state file's fields.
    pub fn to_json(&self) -> serde_json::Value {
        #[derive(Serialize)]
        struct Json<'a> {
            running: bool,
            file: Option<&'a Path>,
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            looked: &'a [PathBuf],
            #[serde(flatten)]
            state: Option<&'a State>,
        }
        let json = match self {
            Self::Found {
                path,
                state,
                running,
            } => Json {
                running: *running,
                file: Some(path),
                looked: &[],
                state: Some(&**state),
            },
            Self::Missing { looked } => Json {
                running: false,
                file: None,
                looked,
                state: None,
            },
        };
        serde_json::to_value(json).unwrap_or_default()
    }

    /// The report for people, as of `now` (seconds since the Unix epoch).
    pub fn render(&self, now: u64) -> String {
        let (path, state, running) = match self {
            Self::Found {
                path,
                state,
                running,
            } => (path, state, *running),
            Self::Missing { looked } => {
                let places: Vec<String> = looked.iter().map(|p| p.display().to_string()).collect();
                return format!(
                    "dipla-worker is not running: no state file at {} (a worker given \
                     --state-file FILE is asked with `dipla-worker status --state-file FILE`)\n",
                    places.join(" or ")
                );
            }
        };
        let mut out = String::new();
        let at = |time: u64| format!("{} ago ({})", ago(now, time), utc(time));
        let _ = match (running, state.stopped) {
            (true, _) => writeln!(
                out,
                "dipla-worker is running: pid {}, started {}",
                state.pid,
                at(state.started)
            ),
            (false, Some(stopped)) => writeln!(
                out,
                "dipla-worker is not running: it stopped {}, after running {}",
                at(stopped),
                span(stopped.saturating_sub(state.started))
            ),
            (false, None) => writeln!(
                out,
                "dipla-worker is not running: its process {} is gone; it was last seen {}",
                state.pid,
                at(state.updated)
            ),
        };
        let connection = if state.connected {
            "connected"
        } else {
            "not connected"
        };
        let _ = writeln!(out, "  server:     {} ({connection})", state.server);
        let _ = writeln!(
            out,
            "  job:        {}",
            state.job.as_deref().unwrap_or("not known yet")
        );
        let mut tasks = format!("{} done", state.tasks_done);
        if state.tasks_failed > 0 {
            let _ = write!(tasks, " ({} failed)", state.tasks_failed);
        }
        if running {
            let _ = write!(
                tasks,
                ", {} running on {} cores",
                state.tasks_running, state.cores
            );
        }
        let _ = writeln!(out, "  tasks:      {tasks}");
        if running {
            let paused = match &state.paused {
                None => "no".to_owned(),
                Some(reasons) if reasons.is_empty() => "yes".to_owned(),
                Some(reasons) => format!("yes: {}", reasons.join(", ")),
            };
            let _ = writeln!(out, "  paused:     {paused}");
        }
        let cap = state
            .cpu_percent
            .map_or_else(|| "none".to_owned(), |percent| format!("{percent}%"));
        let _ = writeln!(out, "  CPU cap:    {cap}");
        if let Some(priority) = &state.priority {
            let _ = writeln!(out, "  priority:   {priority}");
        }
        if let Some(error) = &state.last_error {
            let _ = writeln!(out, "  last error: {error}");
        }
        let _ = writeln!(out, "  version:    {} (name {})", state.version, state.name);
        let _ = writeln!(
            out,
            "  state file: {} (written {} ago)",
            path.display(),
            ago(now, state.updated)
        );
        out
    }
}

/// How long before `now` `time` was, in words.
fn ago(now: u64, time: u64) -> String {
    span(now.saturating_sub(time))
}

/// A length of time in words: `42 s`, `5 min`, `3 h 12 min`, `2 d 4 h`.
fn span(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} d {} h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// `time` (seconds since the Unix epoch) as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(time: u64) -> String {
    let (days, secs) = (time / 86_400, time % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_750_000_000;

    fn state() -> State {
        State {
            pid: 4242,
            version: "0.1.0".to_owned(),
            name: "host-4242".to_owned(),
            started: NOW - 2 * 3600 - 5 * 60,
            updated: NOW - 3,
            server: "ws://example.org:7070/ws".to_owned(),
            connected: true,
            job: Some("3f2a9c".to_owned()),
            tasks_done: 120,
            tasks_failed: 2,
            tasks_running: 4,
            cores: 4,
            paused: Some(vec!["on battery".to_owned(), "busy".to_owned()]),
            cpu_percent: Some(50),
            priority: Some("idle".to_owned()),
            last_error: None,
            stopped: None,
        }
    }

    fn found(dir: &Path, name: &str, state: &State) -> PathBuf {
        let path = dir.join(name);
        status::write(&path, state).unwrap();
        path
    }

    #[test]
    fn a_running_worker_is_summed_up() {
        let report = Lookup::Found {
            path: "/var/lib/dipla/status.json".into(),
            state: Box::new(state()),
            running: true,
        };
        assert_eq!(
            report.render(NOW),
            "dipla-worker is running: pid 4242, started 2 h 5 min ago (2025-06-15 13:01:40 UTC)\n\
             \x20 server:     ws://example.org:7070/ws (connected)\n\
             \x20 job:        3f2a9c\n\
             \x20 tasks:      120 done (2 failed), 4 running on 4 cores\n\
             \x20 paused:     yes: on battery, busy\n\
             \x20 CPU cap:    50%\n\
             \x20 priority:   idle\n\
             \x20 version:    0.1.0 (name host-4242)\n\
             \x20 state file: /var/lib/dipla/status.json (written 3 s ago)\n"
        );
        let json = report.to_json();
        assert_eq!(json["running"], true);
        assert_eq!(json["file"], "/var/lib/dipla/status.json");
        assert_eq!(json["tasks_done"], 120);
        assert_eq!(json["paused"][0], "on battery");
        assert!(json.get("looked").is_none());
    }

    #[test]
    fn a_worker_whose_process_is_gone_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = found(dir.path(), "status.json", &state());
        let report = look(std::slice::from_ref(&path), |_| false).unwrap();
        assert!(!report.running());
        let text = report.render(NOW + 600);
        assert!(
            text.starts_with(
                "dipla-worker is not running: its process 4242 is gone; it was last seen \
                 10 min ago (2025-06-15 15:06:37 UTC)\n"
            ),
            "{text}"
        );
        assert!(!text.contains("paused"), "{text}");
        assert_eq!(report.to_json()["running"], false);
        let report = look(std::slice::from_ref(&path), |pid| pid == 4242).unwrap();
        assert!(report.running());
    }

    #[test]
    fn a_worker_that_stopped_says_when() {
        let stopped = State {
            stopped: Some(NOW - 60),
            connected: false,
            last_error: Some("the server refused this worker: bad token".to_owned()),
            ..state()
        };
        let report = Lookup::Found {
            path: "/tmp/status.json".into(),
            state: Box::new(stopped.clone()),
            running: false,
        };
        let text = report.render(NOW);
        assert!(
            text.starts_with(
                "dipla-worker is not running: it stopped 1 min ago (2025-06-15 15:05:40 UTC), \
                 after running 2 h 4 min\n"
            ),
            "{text}"
        );
        assert!(text.contains("  last error: the server refused this worker: bad token\n"));
        let dir = tempfile::tempdir().unwrap();
        let path = found(dir.path(), "status.json", &stopped);
        assert!(
            !look(&[path], |_| true).unwrap().running(),
            "a stopped pid may be reused"
        );
    }

    #[test]
    fn the_running_worker_is_picked_else_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let old = found(
            dir.path(),
            "old.json",
            &State {
                pid: 1,
                updated: NOW - 100,
                ..state()
            },
        );
        let new = found(
            dir.path(),
            "new.json",
            &State {
                pid: 2,
                updated: NOW,
                ..state()
            },
        );
        let candidates = [missing.clone(), old.clone(), new.clone()];
        let Lookup::Found { path, .. } = look(&candidates, |_| false).unwrap() else {
            panic!()
        };
        assert_eq!(path, new, "the one written last");
        let Lookup::Found { path, running, .. } = look(&candidates, |pid| pid == 1).unwrap() else {
            panic!()
        };
        assert_eq!((path, running), (old, true), "the running one");
    }

    #[test]
    fn no_state_file_names_where_it_looked() {
        let looked = vec![
            PathBuf::from("/nowhere/a.json"),
            PathBuf::from("/nowhere/b.json"),
        ];
        let report = look(&looked, |_| true).unwrap();
        assert_eq!(
            report,
            Lookup::Missing {
                looked: looked.clone()
            }
        );
        assert!(report.render(NOW).starts_with(
            "dipla-worker is not running: no state file at /nowhere/a.json or /nowhere/b.json"
        ),);
        let json = report.to_json();
        assert_eq!(json["running"], false);
        assert_eq!(json["file"], serde_json::Value::Null);
        assert_eq!(json["looked"][1], "/nowhere/b.json");
    }

    #[test]
    fn a_file_that_is_not_a_state_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        std::fs::write(&path, "not json").unwrap();
        let error = look(&[path], |_| true).unwrap_err();
        assert!(error.to_string().contains("not a state file"), "{error}");
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_709_251_199), "2024-02-29 23:59:59 UTC");
    }
}
