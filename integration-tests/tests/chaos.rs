//! Chaos: workers killed (-9) and restarted every few hundred milliseconds while a job of
//! 10,000 tasks runs. Every task completes exactly once, with the right answer.

use std::collections::BTreeSet;
use std::time::Duration;

use dipla_server::RunOptions;

use crate::support::{WorkerProcess, burn_job, eventually_async, finish, remote_server_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_and_restarting_workers_loses_nothing_and_doubles_nothing() {
    const TASKS: u64 = 10_000;
    let job = burn_job(TASKS, 100_000);
    let options = RunOptions {
        // Under this much killing a task is lost with its worker now and then; it must run
        // again, not fail.
        max_lost: 50,
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let handle = server.handle();
    let run = tokio::spawn(finish(server));

    let name = |i: usize, generation: u32| format!("worker-{i}-{generation}");
    let mut names: Vec<String> = (0..4).map(|i| name(i, 0)).collect();
    let mut workers: Vec<WorkerProcess> = names
        .iter()
        .map(|name| WorkerProcess::start(&url, name))
        .collect();
    let mut random = 0x2545_F491_4F6C_DD1Du64;
    let mut kills = 0u32;
    while !run.is_finished() {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        // When is random; whom is random too, but the victim is killed while it holds tasks
        // (a kill of a worker still starting up would lose nothing).
        tokio::time::sleep(Duration::from_millis(200 + random % 200)).await;
        let victim = (random % 4) as usize;
        let at_work = eventually_async("the victim at work or the job's end", async || {
            let busy = handle
                .workers()
                .iter()
                .any(|w| w.name == names[victim] && w.running > 0);
            (busy || run.is_finished()).then_some(busy)
        })
        .await;
        if !at_work {
            break;
        }
        kills += 1;
        names[victim] = name(victim, kills);
        workers[victim] = WorkerProcess::start(&url, &names[victim]);
    }
    let (summary, lines) = run.await.unwrap();
    assert!(summary.success(), "{summary}");
    assert!(
        kills >= 3,
        "only {kills} kills: the job was too short to test anything"
    );
    assert!(summary.counts.requeued > 0, "{summary}");
    assert_eq!(
        summary.counts.succeeded, TASKS,
        "counted once each: {summary}"
    );
    assert_eq!(lines.len() as u64, TASKS);
    let indexes: BTreeSet<u64> = lines.iter().map(|l| l["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes.len() as u64, TASKS, "no index twice");
    for line in &lines {
        assert_eq!(line["output"], line["input"][0], "{line}");
    }
    assert_eq!(handle.running(), 0);
    drop(workers);
}
