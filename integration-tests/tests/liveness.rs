//! Liveness: a worker that stops talking is dropped after three missed heartbeats, and its
//! tasks run elsewhere.

use std::time::Duration;

use crate::support::{
    PATIENCE, WorkerProcess, burn_job, eventually_async, finish, join, remote_server_with,
    squares_job,
};
use dipla_server::RunOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_worker_is_dropped_and_its_tasks_run_elsewhere() {
    let job = burn_job(20, 2_000_000);
    let options = RunOptions {
        // Long enough that a stalled test process cannot make the busy honest worker look silent.
        heartbeat: Duration::from_secs(1),
        // Copies would rescue the silent worker's tasks first; this tests the heartbeat.
        speculate: false,
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let handle = server.handle();
    let run = tokio::spawn(finish(server));

    // A worker that says hello, takes its tasks, then neither reads nor writes again.
    let silent = join(&url, "silent").await;
    eventually_async("tasks given to it", async || {
        (handle.running() > 0).then_some(())
    })
    .await;
    let _honest = WorkerProcess::start(&url, "honest");
    let (summary, lines) = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the job finishes without the silent worker")
        .unwrap();
    assert!(summary.success(), "{summary}");
    assert_eq!(lines.len(), 20);
    assert!(summary.counts.requeued >= 1, "{summary}");
    assert_eq!(
        summary.stats.workers_joined, 2,
        "the honest worker, busy or idle, answers pings and is never dropped"
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_of_a_worker_that_never_answers_are_reissued_after_their_deadline() {
    use futures_util::StreamExt;
    let job = squares_job(10, "deadline_secs = 0.2");
    let options = RunOptions {
        speculate: false,
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let handle = server.handle();
    let run = tokio::spawn(finish(server));

    // A worker that keeps its connection alive (reading answers pings) but never answers.
    let (_sink, mut stream) = join(&url, "mute").await.split();
    let reader = tokio::spawn(async move { while stream.next().await.is_some() {} });
    eventually_async("tasks given to it", async || {
        (handle.running() > 0).then_some(())
    })
    .await;
    let _honest = WorkerProcess::start(&url, "honest");
    let (summary, lines) = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the job finishes without the mute worker's answers")
        .unwrap();
    assert!(summary.success(), "{summary}");
    assert_eq!(lines.len(), 10);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["output"], (i * i) as u64);
    }
    assert!(summary.counts.expired >= 1, "{summary}");
    assert_eq!(
        summary.counts.requeued, 0,
        "the mute worker was never dropped"
    );
    reader.abort();
}
