//! Worker tokens: a server started with tokens admits only workers presenting one.

use std::process::{Command, Stdio};

use dipla_server::RunOptions;

use crate::support::{WorkerProcess, bin, finish, remote_server_with, squares_job};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_workers_with_a_valid_token_are_admitted() {
    let job = squares_job(100, "");
    let options = RunOptions {
        worker_tokens: vec!["open-sesame".into()],
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let run = tokio::spawn(finish(server));

    for token in [None, Some("open-sesam")] {
        let mut command = Command::new(bin("dipla-worker"));
        command.args(["--server", &url, "--no-bench", "--no-disk-cache"]);
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        let output = command.stdin(Stdio::null()).output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("valid token"), "{stderr}");
        assert!(
            !stderr.contains("open-sesam"),
            "the token is never echoed: {stderr}"
        );
    }
    let _worker = WorkerProcess::with_args(
        &url,
        "admitted",
        tempfile::tempdir().unwrap(),
        &["--token", "open-sesame"],
    );
    let (summary, lines) = run.await.unwrap();
    assert!(summary.success(), "{summary}");
    assert_eq!(lines.len(), 100);
    assert_eq!(
        summary.stats.workers_joined, 1,
        "only the admitted worker joined"
    );
}
