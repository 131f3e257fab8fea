//! Deterministic failures (an `Err`, a panic, a trap, out of fuel, the memory limit, a stack
//! overflow) are final after one attempt on the server's own local workers, whether it runs
//! a manifest, a driver program or `serve`; from untrusted workers they take two identities
//! agreeing, not `max_attempts` runs. Attempts are counted by the summary's retries.

use std::process::Command;

use dipla_protocol::FailureKind;
use dipla_server::{Dipla, DriverError, RunOptions, Server, Summary};

use crate::support::{
    JobDir, PATIENCE, WorkerProcess, bin, dipla_server, http, remote_server_with, wasm,
};

/// Each stage fails every task one way; `max_attempts = 5` everywhere.
fn failing_job() -> JobDir {
    let stage = |name: &str, task: &str, values: &str| {
        format!(
            r#"
            [[stages]]
            name = "{name}"
            task = "bed.{task}"
            inputs = {{ values = {values} }}
            max_attempts = 5
            "#
        )
    };
    JobDir::new(&format!(
        r#"
        name = "failing"
        [modules]
        bed = "{{testbed}}"
        [limits]
        fuel = 50_000_000
        memory_mb = 32
        {}{}{}{}{}{}
        "#,
        stage("errs", "even_only", "[1, 3]"),
        stage("panics", "explode", "[1]"),
        stage("traps", "wild_read", "[4000000000]"),
        stage("spins", "spin", "[0]"),
        stage("hogs", "hog", "[64]"),
        stage("overflows", "recurse", "[100000000]"),
    ))
}

/// The kind of each stage's failure, as in [`failing_job`], and how many tasks it has.
const KINDS: [(&str, &str, u64); 6] = [
    ("errs", "guest", 2),
    ("panics", "panic", 1),
    ("traps", "trap", 1),
    ("spins", "out_of_fuel", 1),
    ("hogs", "memory_limit", 1),
    ("overflows", "stack_overflow", 1),
];

const TASKS: u64 = 7;

/// Runs `server` to the end: its summary and its parsed result lines.
async fn run(server: Server) -> (Summary, Vec<serde_json::Value>) {
    let mut out = Vec::new();
    let summary = tokio::time::timeout(PATIENCE, server.run(&mut out))
        .await
        .expect("the job ends")
        .unwrap();
    let lines = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    (summary, lines)
}

/// Every task failed as its stage says, each line checked as `check`.
fn assert_failed_as_expected(lines: &[serde_json::Value], check: &str) {
    assert_eq!(lines.len() as u64, TASKS, "{lines:#?}");
    for (stage, kind, tasks) in KINDS {
        let of_stage: Vec<_> = lines.iter().filter(|l| l["stage"] == stage).collect();
        assert_eq!(of_stage.len() as u64, tasks, "{stage}: {lines:#?}");
        for line in of_stage {
            assert_eq!(line["kind"], kind, "{line}");
            assert_eq!(line["check"], check, "{line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_workers_fail_a_deterministic_task_once() {
    let options = RunOptions {
        local_workers: 2,
        ..RunOptions::default()
    };
    let server = Server::bind(failing_job().job(), options).await.unwrap();
    let (summary, lines) = run(server).await;
    assert_failed_as_expected(&lines, "unchecked");
    assert_eq!(summary.counts.failed, TASKS, "{summary}");
    assert_eq!(summary.counts.retried, 0, "one attempt each: {summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_workers_fail_a_deterministic_task_twice() {
    let options = RunOptions {
        // Each task's second attempt is its retry: on a loaded machine a slow first attempt
        // could be copied to the idle worker instead (seen beside a CPU hog: 6 retries and
        // a speculative copy).
        speculate: false,
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(failing_job().job(), options).await;
    let _workers: Vec<WorkerProcess> = (0..2)
        .map(|i| WorkerProcess::start(&url, &format!("w{i}")))
        .collect();
    let (summary, lines) = run(server).await;
    assert_failed_as_expected(&lines, "replicated:2");
    assert_eq!(summary.counts.failed, TASKS, "{summary}");
    assert_eq!(
        summary.counts.retried, TASKS,
        "two identities, one attempt each, not five: {summary}"
    );
    assert_eq!(summary.counts.untrusted, 0, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drivers_local_workers_fail_a_deterministic_task_once() {
    let dipla = Dipla::builder()
        .local_workers(2)
        .max_attempts(5)
        .start()
        .await
        .unwrap();
    let bed = dipla.module(wasm("testbed")).unwrap();
    let panics = bed.task("explode").map(0..3u64);
    match panics.get::<u64>().await {
        Err(DriverError::Task { failure, .. }) => assert_eq!(failure.kind, FailureKind::Panic),
        other => panic!("expected a panic, got {other:?}"),
    }
    let outcomes = bed
        .task("even_only")
        .map(0..4u64)
        .outcomes::<u64>()
        .await
        .unwrap();
    assert_eq!(outcomes.iter().filter(|(_, o)| o.is_err()).count(), 2);
    let counts = dipla.handle().counts();
    assert_eq!(counts.failed, 5, "{counts:?}");
    assert_eq!(counts.retried, 0, "one attempt each: {counts:?}");
    dipla.shutdown().await;
}

#[test]
fn serves_local_workers_fail_a_deterministic_task_once() {
    use crate::serve::{Serving, TOKEN, submit};
    let data = tempfile::tempdir().unwrap();
    let (child, ws, _) = dipla_server(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-token",
        TOKEN,
        "--data-dir",
        data.path().to_str().unwrap(),
        "--local-workers",
        "2",
    ]);
    let _server = Serving(child);
    let addr = crate::support::addr_of(&ws);
    let url = format!("http://{addr}");
    let id = submit(&url, &failing_job());
    // `results` follows the job to its end.
    let results = Command::new(bin("dipla-server"))
        .args(["results", &id, "--server", &url, "--admin-token", TOKEN])
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(results.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_failed_as_expected(&lines, "unchecked");
    let (code, _, body) = http(&addr, "GET", &format!("/api/jobs/{id}"), Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["counts"]["failed"], TASKS, "{status:#}");
    assert_eq!(
        status["counts"]["retried"], 0,
        "one attempt each: {status:#}"
    );
}
