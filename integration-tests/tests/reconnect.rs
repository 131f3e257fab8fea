//! Workers outlive their connections: a worker started before its server waits for it,
//! backing off, and serves the job once it is up.

use dipla_server::{RunOptions, Server};

use crate::support::{PATIENCE, WorkerProcess, finish, squares_job};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_waits_for_its_server_and_joins_when_it_comes() {
    // A free port, for a server that does not exist yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("ws://{addr}/ws");
    let mut worker = WorkerProcess::with_args(
        &url,
        "early",
        tempfile::tempdir().unwrap(),
        &["--max-retry-secs", "1"],
    );
    // It has tried, found no server, and waits to try again.
    worker.said.line("trying again").await;

    let job = squares_job(50, "");
    let options = RunOptions {
        listen: Some(addr),
        local_workers: 0,
        ..RunOptions::default()
    };
    let server = Server::bind(job.job(), options).await.unwrap();
    let (summary, lines) = tokio::time::timeout(PATIENCE, finish(server))
        .await
        .expect("the waiting worker joined and served the job");
    assert!(summary.success(), "{summary}");
    assert_eq!(lines.len(), 50);
}
