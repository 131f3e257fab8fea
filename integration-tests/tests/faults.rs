use crate::support::{JobDir, WorkerProcess, eventually_async, finish, remote_server};

/// `kill -9` of a worker with tasks in flight: they run again on the other worker, and every
/// result arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_loses_no_task() {
    let job = JobDir::new(
        r#"
        name = "slow"
        [modules]
        bed = "{testbed}"
        [[stages]]
        name = "burn"
        task = "bed.burn"
        inputs = { file = "inputs.jsonl" }
        "#,
    );
    let inputs: String = (0..300).map(|i| format!("[{i}, 3000000]\n")).collect();
    job.write("inputs.jsonl", &inputs);
    let (server, url) = remote_server(job.job()).await;
    let handle = server.handle();
    let mut victim = WorkerProcess::start(&url, "victim");
    let _survivor = WorkerProcess::start(&url, "survivor");
    let run = tokio::spawn(finish(server));

    // Kill the victim once it has answered some tasks and holds others (the wait fails if
    // it never had work in flight).
    eventually_async(
        "the victim with work in flight after 20 results",
        async || {
            let busy = handle
                .workers()
                .iter()
                .any(|w| w.name == "victim" && w.running > 0);
            (busy && handle.counts().succeeded >= 20).then_some(())
        },
    )
    .await;
    victim.child.kill().unwrap();

    let (summary, lines) = run.await.unwrap();
    assert!(summary.success(), "{summary}");
    assert!(
        summary.counts.requeued >= 1,
        "nothing was in flight on the victim: {summary}"
    );
    assert_eq!(lines.len(), 300);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], i as u64);
        assert_eq!(line["output"], i as u64);
    }
}
