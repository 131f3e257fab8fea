use dipla_server::RunOptions;

use crate::support::{JobDir, WorkerProcess, finish, remote_server_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_factorise_2000_numbers_near_10_to_the_12() {
    let job = JobDir::new(
        r#"
        name = "factorise"
        [modules]
        factor = "{factorise}"
        [[stages]]
        name = "factors"
        task = "factor.factorise"
        inputs = { range = { start = 1000000000000, end = 1000000002000 } }
        "#,
    );
    // Both workers must join before any task is given out: one alone may finish the job.
    let options = RunOptions {
        min_workers: 2,
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let mut workers = [
        WorkerProcess::start(&url, "one"),
        WorkerProcess::start(&url, "two"),
    ];
    let (summary, lines) = finish(server).await;

    assert!(summary.success(), "{summary}");
    assert_eq!(lines.len(), 2000);
    for (i, line) in lines.iter().enumerate() {
        let n = 1_000_000_000_000 + i as u64;
        assert_eq!(line["stage"], "factors");
        assert_eq!(line["index"], i as u64);
        assert_eq!(line["input"], n);
        let expected = factorise::factorise(n);
        assert_eq!(
            line["output"],
            serde_json::json!(expected),
            "factors of {n}"
        );
    }
    assert_eq!(summary.stats.workers_joined, 2);
    assert_eq!(summary.stats.module_transfers, 2, "one transfer per worker");
    for worker in &mut workers {
        assert!(
            worker.wait_success(),
            "a worker did not leave cleanly after goodbye"
        );
    }
}
