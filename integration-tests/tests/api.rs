//! The operator's HTTP API: admin token required, job status, cancel.

use dipla_server::RunOptions;

use crate::support::{
    PATIENCE, WorkerProcess, addr_of, burn_job, eventually, finish, http, remote_server_with,
    server_process, squares_job,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_the_admin_token_reports_progress_and_cancels() {
    let job = burn_job(400, 2_000_000);
    let options = RunOptions {
        admin_tokens: vec!["s3cret-admin".into()],
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let addr = addr_of(&url);
    let run = tokio::spawn(finish(server));
    let _worker = WorkerProcess::start(&url, "steady");

    let calls = tokio::task::spawn_blocking(move || {
        let (code, head, _) = http(&addr, "GET", "/api/job", None);
        assert_eq!(code, 401);
        assert!(
            head.to_lowercase().contains("www-authenticate: bearer"),
            "{head}"
        );
        let (code, _, body) = http(&addr, "GET", "/api/job", Some("s3cret-admi"));
        assert_eq!(code, 401, "{body}");
        let (code, _, _) = http(&addr, "POST", "/api/job/cancel", Some("wrong"));
        assert_eq!(code, 401, "a wrong token cancels nothing");

        // Progress moves while the worker runs.
        let mut seen = Vec::new();
        eventually("progress", || {
            let (code, _, body) = http(&addr, "GET", "/api/job", Some("s3cret-admin"));
            assert_eq!(code, 200, "{body}");
            let status: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(status["job"], "burn");
            assert_eq!(status["stages"][0]["tasks"], 400);
            let done = status["stages"][0]["done"].as_u64().unwrap();
            let workers = status["workers"].as_array().unwrap();
            if done > 0 && workers.len() == 1 {
                assert_eq!(workers[0]["name"], "steady");
                // The same count twice is no news: two different ones are progress.
                if seen.last() != Some(&done) {
                    seen.push(done);
                }
            }
            (seen.len() == 2).then_some(())
        });
        assert!(
            seen.len() == 2 && seen[1] > seen[0],
            "no progress seen: {seen:?}"
        );
        let (code, _, body) = http(&addr, "POST", "/api/job/cancel", Some("s3cret-admin"));
        assert_eq!(code, 202, "{body}");
    });
    calls.await.unwrap();
    let (summary, lines) = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("a cancelled job stops")
        .unwrap();
    assert!(summary.cancelled, "{summary}");
    assert!(!summary.success());
    assert!(lines.len() < 400, "{} lines", lines.len());
}

#[test]
fn without_an_admin_token_the_api_is_off_and_cancel_exits_with_3() {
    let job = squares_job(10, "");
    let start = |args: &[&str]| {
        let args = [&["--listen", "127.0.0.1:0", "--no-state"], args].concat();
        let (server, url, _) = server_process(&job.manifest, &args);
        (server, addr_of(&url))
    };
    let (mut off, addr) = start(&[]);
    let (code, _, body) = http(&addr, "GET", "/api/job", Some("anything"));
    assert_eq!(code, 401);
    assert!(body.contains("--admin-token"), "{body}");
    off.kill().unwrap();
    off.wait().unwrap();

    let (mut on, addr) = start(&["--admin-token", "t0ken"]);
    let (code, _, _) = http(&addr, "POST", "/api/job/cancel", Some("t0ken"));
    assert_eq!(code, 202);
    let status = on.wait().unwrap();
    assert_eq!(status.code(), Some(3));
}
