//! A worker configured by a file (`dipla-worker --config FILE`), and `dipla-worker status`
//! following it through its state file while it runs and after it exits.

use std::path::Path;
use std::process::{Command, Stdio};

use dipla_server::RunOptions;

use crate::support::{
    Said, WorkerProcess, bin, eventually_async, finish, remote_server_with, squares_job,
};

/// The state file at `path`, once it is there.
fn state(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// `dipla-worker status ARGS --state-file PATH`: its exit code and what it printed.
fn status(path: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(bin("dipla-worker"))
        .arg("status")
        .args(args)
        .arg("--state-file")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

/// A worker whose options come from `config`, but for its identity, cache and state file,
/// given as flags.
fn configured(config: &Path) -> WorkerProcess {
    let cache = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin("dipla-worker"))
        .arg("--config")
        .arg(config)
        .arg("--identity")
        .arg(cache.path().join("identity"))
        .arg("--cache-dir")
        .arg(cache.path())
        .arg("--state-file")
        .arg(cache.path().join("status.json"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let said = Said::new(child.stderr.take().unwrap());
    WorkerProcess { child, cache, said }
}

#[tokio::test(flavor = "multi_thread")]
async fn status_follows_a_worker_configured_by_a_file_until_it_exits() {
    const TASKS: u64 = 40;
    let job = squares_job(TASKS, "");
    // The job waits for two workers: the first one is seen joined and idle, whatever the
    // machine's speed.
    let options = RunOptions {
        min_workers: 2,
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let server = tokio::spawn(finish(server));
    let config = job.write(
        "worker.toml",
        &format!(
            "# A volunteer's settings\nserver = \"{url}\"\ncores = 1\nno-bench = true\n\
             name = \"configured\"\nmax-memory-mb = 256\n"
        ),
    );

    let mut first = configured(&config);
    let first_state = first.cache.path().join("status.json");
    let joined = eventually_async("the first worker joined, in its state file", async || {
        state(&first_state).filter(|state| state["connected"] == true)
    })
    .await;
    assert_eq!(joined["name"], "configured", "from the file: {joined}");
    assert_eq!(joined["server"], url.as_str());
    assert_eq!(joined["cores"], 1);
    assert_eq!(joined["tasks_done"], 0);
    assert_eq!(joined["paused"], serde_json::Value::Null);
    assert_eq!(joined["pid"], first.child.id());
    let fingerprint = joined["job"].as_str().unwrap().to_owned();
    assert_eq!(fingerprint.len(), 64, "{joined}");

    let (code, json) = status(&first_state, &["--json"]);
    assert_eq!(code, Some(0), "running: {json}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["running"], true);
    assert_eq!(report["file"], first_state.to_str().unwrap());
    assert_eq!(report["job"], fingerprint.as_str());
    let (code, text) = status(&first_state, &[]);
    assert_eq!(code, Some(0));
    assert!(
        text.starts_with(&format!(
            "dipla-worker is running: pid {}, started ",
            first.child.id()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("  server:     {url} (connected)\n")),
        "{text}"
    );
    assert!(text.contains("  paused:     no\n"), "{text}");

    // The second worker starts the job; both run it to its end and exit.
    let mut second = WorkerProcess::start(&url, "second");
    let (summary, lines) = server.await.unwrap();
    assert_eq!(lines.len() as u64, TASKS, "{summary:?}");
    assert!(first.wait_success());
    assert!(second.wait_success());

    let (code, json) = status(&first_state, &["--json"]);
    assert_eq!(code, Some(3), "not running: {json}");
    let first_report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(first_report["running"], false);
    assert_eq!(first_report["connected"], false);
    assert_eq!(first_report["job"], fingerprint.as_str());
    assert!(first_report["stopped"].is_u64(), "{first_report}");
    let second_report = state(&second.cache.path().join("status.json")).unwrap();
    assert_eq!(second_report["job"], fingerprint.as_str());
    let done = |report: &serde_json::Value| report["tasks_done"].as_u64().unwrap();
    assert_eq!(
        done(&first_report) + done(&second_report),
        TASKS,
        "every task counted once, by the worker that ran it"
    );
    assert_eq!(first_report["tasks_running"], 0);
    let (code, text) = status(&first_state, &[]);
    assert_eq!(code, Some(3));
    assert!(
        text.starts_with("dipla-worker is not running: it stopped "),
        "{text}"
    );
    assert!(
        text.contains(&format!("  tasks:      {} done\n", done(&first_report))),
        "{text}"
    );
}

#[test]
fn status_without_a_state_file_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("status.json");
    let (code, text) = status(&missing, &[]);
    assert_eq!(code, Some(3));
    assert!(
        text.starts_with(&format!(
            "dipla-worker is not running: no state file at {}",
            missing.display()
        )),
        "{text}"
    );
}

#[test]
fn a_bad_config_file_is_named_with_the_key_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.toml");
    std::fs::write(
        &config,
        "server = \"ws://127.0.0.1:1/ws\"\ncores = \"all\"\n",
    )
    .unwrap();
    let output = Command::new(bin("dipla-worker"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:2: `cores` wants a whole number, not a string",
            config.display()
        )),
        "{stderr}"
    );
}
