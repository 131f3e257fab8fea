//! Scheduling by speed: faster workers get more work, claims give way to what tasks show, and
//! idle fast workers copy tasks straggling on slow ones. Slow machines are played by workers
//! with `--throttle N`, which makes each task take N times as long.

use std::collections::HashMap;
use std::time::Duration;

use dipla_server::{Handle, RunOptions, Server, WorkerRecord};

use crate::support::{JobDir, WorkerProcess, finish};

/// A job of `count` tasks, each burning `rounds` iterations.
fn burn_job(count: u64, rounds: u64) -> JobDir {
    let inputs: Vec<String> = (0..count).map(|i| format!("[{i}, {rounds}]")).collect();
    JobDir::new(&format!(
        r#"
        name = "burn"
        [modules]
        bed = "{{testbed}}"
        [[stages]]
        name = "burn"
        task = "bed.burn"
        inputs = {{ values = [{}] }}
        "#,
        inputs.join(", ")
    ))
}

async fn server(job: &JobDir, speculate: bool) -> (Server, String) {
    let options = RunOptions {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        local_workers: 0,
        speculate,
        ..RunOptions::default()
    };
    let server = Server::bind(job.job(), options).await.unwrap();
    let url = server.worker_url().unwrap();
    (server, url)
}

/// Samples the workers' records every 20 ms until the job ends, keeping the last of each.
fn watch(handle: Handle) -> tokio::task::JoinHandle<HashMap<String, WorkerRecord>> {
    tokio::spawn(async move {
        let mut last = HashMap::new();
        loop {
            for worker in handle.workers() {
                if let Some(record) = worker.record {
                    last.insert(worker.name, record);
                }
            }
            if handle.connected() == 0 && !last.is_empty() {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_faster_worker_completes_proportionally_more_tasks() {
    let job = burn_job(300, 2_000_000);
    let (server, url) = server(&job, false).await;
    let records = watch(server.handle());
    let _fast = WorkerProcess::with_args(&url, "fast", tempfile::tempdir().unwrap(), &[]);
    let _slow = WorkerProcess::with_args(
        &url,
        "slow",
        tempfile::tempdir().unwrap(),
        &["--throttle", "4"],
    );
    let (summary, _) = finish(server).await;
    assert!(summary.success(), "{summary}");
    let records = records.await.unwrap();
    let (fast, slow) = (&records["fast"], &records["slow"]);
    assert!(
        fast.results >= 2 * slow.results,
        "fast did {}, slow {}",
        fast.results,
        slow.results
    );
    assert!(
        fast.speed > 2.0 * slow.speed,
        "measured speeds: fast {:.0}, slow {:.0} fuel/µs",
        fast.speed,
        slow.speed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_is_ranked_by_what_its_tasks_show_not_by_its_claim() {
    let job = burn_job(200, 2_000_000);
    let (server, url) = server(&job, false).await;
    let records = watch(server.handle());
    // Both run the real benchmark (the throttle slows tasks, not the benchmark), so both
    // claim about the same speed; one of them then runs its tasks 4 times slower.
    let _honest = WorkerProcess::benchmarked(&url, "honest", &[]);
    let _boaster = WorkerProcess::benchmarked(&url, "boaster", &["--throttle", "4"]);
    let (summary, _) = tokio::time::timeout(Duration::from_secs(120), finish(server))
        .await
        .expect("both workers joined and finished the job");
    assert!(summary.success(), "{summary}");
    let records = records.await.unwrap();
    let (honest, boaster) = (&records["honest"], &records["boaster"]);
    let (Some(claimed), Some(measured)) = (boaster.claimed, boaster.measured) else {
        panic!("the boaster's claim and speed are both known: {boaster:?}");
    };
    assert!(honest.claimed.is_some(), "{honest:?}");
    assert_eq!(boaster.speed, measured, "ranked by what it did");
    assert!(
        boaster.speed * 2.0 < honest.speed,
        "{boaster:?} vs {honest:?}"
    );
    assert!(measured < claimed, "{boaster:?}");
    let note = boaster.note.as_deref().unwrap_or_default();
    assert!(note.contains("slower than the best worker"), "{boaster:?}");
    assert!(honest.note.is_none(), "{honest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speculative_copies_shorten_the_tail() {
    let mut elapsed = Vec::new();
    for speculate in [false, true] {
        let job = burn_job(4, 60_000_000);
        let (server, url) = server(&job, speculate).await;
        let _fast = WorkerProcess::with_args(&url, "fast", tempfile::tempdir().unwrap(), &[]);
        let _slow = WorkerProcess::with_args(
            &url,
            "slow",
            tempfile::tempdir().unwrap(),
            &["--throttle", "10"],
        );
        let (summary, lines) = finish(server).await;
        assert!(summary.success(), "{summary}");
        assert_eq!(lines.len(), 4, "each task's result once");
        assert_eq!(summary.counts.speculated > 0, speculate, "{summary}");
        elapsed.push(summary.elapsed);
    }
    assert!(
        elapsed[1] * 2 < elapsed[0],
        "with copies {:?}, without {:?}",
        elapsed[1],
        elapsed[0]
    );
}
