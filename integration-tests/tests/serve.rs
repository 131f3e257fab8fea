//! A long-running server (`dipla-server serve`): jobs submitted over its API with
//! `dipla-server submit`, followed with `results`, sharing workers fairly, cancelled, and
//! resumed when the server is killed and started again on its data folder.

use std::process::{Child, Command, Output};

use crate::support::{
    JobDir, WorkerProcess, addr_of, bin, burn_job, dipla_server, eventually, http,
    journaled_through, squares_job,
};

pub(crate) const TOKEN: &str = "serve-admin-token";

/// A server process, killed (SIGKILL) when stopped or dropped, so a failing test leaves no
/// server behind.
pub(crate) struct Serving(pub(crate) Child);

impl Serving {
    /// Kills it and waits for it to go.
    pub(crate) fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `dipla-server serve` on a free port keeping jobs in `data`.
pub(crate) fn serve(data: &std::path::Path) -> (Serving, String) {
    serve_with(data, &[])
}

/// [`serve`] with more arguments.
pub(crate) fn serve_with(data: &std::path::Path, more: &[&str]) -> (Serving, String) {
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-token",
        TOKEN,
        "--data-dir",
        data.to_str().unwrap(),
        "--heartbeat-secs",
        "0.5",
    ];
    args.extend_from_slice(more);
    let (child, url, _) = dipla_server(&args);
    (Serving(child), format!("http://{}", addr_of(&url)))
}

/// `dipla-server ARGS --server SERVER --admin-token TOKEN`.
fn client(server: &str, args: &[&str]) -> Output {
    Command::new(bin("dipla-server"))
        .args(args)
        .args(["--server", server, "--admin-token", TOKEN])
        .output()
        .unwrap()
}

/// Submits `job`, returning its id.
pub(crate) fn submit(server: &str, job: &JobDir) -> String {
    let out = client(server, &["submit", job.manifest.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `GET /api/jobs/ID` as JSON.
fn status(server: &str, id: &str) -> serde_json::Value {
    let (code, _, body) = http(
        server.trim_start_matches("http://"),
        "GET",
        &format!("/api/jobs/{id}"),
        Some(TOKEN),
    );
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Waits until `check` holds of the jobs' statuses, and returns them.
fn until(
    server: &str,
    ids: &[&str],
    what: &str,
    check: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    eventually(what, || {
        let statuses: Vec<_> = ids.iter().map(|id| status(server, id)).collect();
        check(&statuses).then_some(statuses)
    })
}

fn workers(status: &serde_json::Value) -> u64 {
    status["workers"].as_array().map_or(0, |w| w.len() as u64)
}

/// Every line's output, by input index.
fn outputs(results: &[u8]) -> Vec<(u64, u64)> {
    let mut lines: Vec<(u64, u64)> = std::str::from_utf8(results)
        .unwrap()
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                value["index"].as_u64().unwrap(),
                value["output"].as_u64().unwrap(),
            )
        })
        .collect();
    lines.sort_unstable();
    lines
}

#[test]
fn jobs_submitted_to_a_serving_server_share_its_workers_fairly_and_stream_results() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, url) = serve(data.path());
    let ws = format!("ws://{}/ws", url.trim_start_matches("http://"));
    let addr = url.trim_start_matches("http://").to_owned();

    // The API wants the token; a wrong manifest is refused naming what is wrong.
    assert_eq!(http(&addr, "GET", "/api/jobs", None).0, 401);
    assert_eq!(http(&addr, "GET", "/api/jobs", Some("wrong")).0, 401);
    assert_eq!(http(&addr, "GET", "/api/jobs/nope", Some(TOKEN)).0, 404);
    let bad = JobDir::new(
        r#"
        name = "bad"
        [modules]
        bed = "{testbed}"
        [[stages]]
        name = "s"
        task = "bed.no_such_task"
        inputs = { range = { start = 0, end = 3 } }
        "#,
    );
    let out = client(&url, &["submit", bad.manifest.to_str().unwrap()]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("400") && said.contains("no_such_task"),
        "{said}"
    );

    // Four workers, all in the first job while it is alone.
    let _workers: Vec<_> = (0..4)
        .map(|i| WorkerProcess::start(&ws, &format!("w{i}")))
        .collect();
    // A must outlast everything below up to its cancelling, B included, however the
    // machine is loaded: no event can hold a job open, so it is far longer than that.
    // (1,200 tasks was not: under load A sometimes ended before it was cancelled.)
    const A_TASKS: u64 = 12_000;
    let long = burn_job(A_TASKS, 2_000_000);
    let a = submit(&url, &long);
    until(&url, &[&a], "4 workers on A", |s| workers(&s[0]) == 4);

    // A second job gets half of them while both have work.
    let b = submit(&url, &burn_job(300, 2_000_000));
    let shared = until(&url, &[&a, &b], "2 + 2 workers", |s| {
        workers(&s[0]) == 2 && workers(&s[1]) == 2
    });
    assert!(shared[1]["done"].as_u64().unwrap() < 300, "{shared:#?}");

    // B's results, followed to its end, are all there and right; A has all four again.
    let out = client(&url, &["results", &b]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<(u64, u64)> = (0..300).map(|i| (i, i)).collect();
    assert_eq!(outputs(&out.stdout), expected);
    until(&url, &[&a], "A with 4 again", |s| workers(&s[0]) == 4);

    // The list shows both; cancelling A ends it with what it had, exit code 3.
    let listed = client(&url, &["jobs"]);
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(listed.contains(&a) && listed.contains(&b), "{listed}");
    let out = client(&url, &["cancel", &a]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = client(&url, &["results", &a]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let partial = outputs(&out.stdout);
    assert!(
        !partial.is_empty() && (partial.len() as u64) < A_TASKS,
        "{}",
        partial.len()
    );
    assert!(
        partial
            .iter()
            .enumerate()
            .all(|(i, &(index, output))| index == i as u64 && output == index)
    );
    assert_eq!(status(&url, &a)["state"], "cancelled");
    // Its workers moved on when it was cancelled; none of its tasks was lost with one.
    assert_eq!(
        status(&url, &a)["counts"]["requeued"],
        0,
        "{}",
        status(&url, &a)
    );

    // A manifest the server refuses is named as the user wrote it, not as the server stores it.
    let wrong = squares_job(10, "");
    let text = std::fs::read_to_string(&wrong.manifest).unwrap();
    std::fs::write(&wrong.manifest, text.replace(".square\"", ".cube\"")).unwrap();
    let out = client(&url, &["submit", wrong.manifest.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: stages[0].task", wrong.manifest.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("manifest.toml"), "{stderr}");

    // The workers wait in the lobby for the next job, and take it at once.
    let c = squares_job(500, "");
    let out = client(&url, &["submit", c.manifest.to_str().unwrap(), "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = std::str::from_utf8(&out.stdout)
        .unwrap()
        .lines()
        .skip(1) // the job's id
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 500);
    for (i, line) in lines.iter().enumerate() {
        let i = i as u64;
        assert_eq!(line["output"].as_u64(), Some(i * i), "{line}");
    }
    // `--wait` ends with the state and the summary, as `run` does.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(" succeeded: 500 tasks: 500 succeeded, 0 failed"),
        "{stderr}"
    );

    server.stop();
}

#[test]
fn a_serving_server_killed_midway_resumes_its_jobs_from_their_journals() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, url) = serve(data.path());
    let ws = format!("ws://{}/ws", url.trim_start_matches("http://"));
    let worker = WorkerProcess::start(&ws, "first");
    let job = burn_job(600, 1_000_000);
    let id = submit(&url, &job);
    let seen = until(&url, &[&id], "some results", |s| {
        s[0]["done"].as_u64().unwrap() >= 50
    });
    // The journal is written behind the job: wait until what that status showed is durable.
    let sent = seen[0]["journal"]["sent"].as_u64().unwrap();
    until(&url, &[&id], "the journal", |s| {
        journaled_through(&s[0], sent)
    });
    server.stop();
    drop(worker);

    let (mut server, url) = serve(data.path());
    let ws = format!("ws://{}/ws", url.trim_start_matches("http://"));
    let listed = client(&url, &["jobs"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&id));
    let restored = status(&url, &id)["counts"]["restored"].as_u64().unwrap();
    assert!(restored >= 50, "{restored}");
    let _worker = WorkerProcess::start(&ws, "second");
    let out = client(&url, &["results", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<(u64, u64)> = (0..600).map(|i| (i, i)).collect();
    assert_eq!(outputs(&out.stdout), expected);
    let ended = status(&url, &id);
    assert_eq!(ended["state"], "succeeded", "{ended:#}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_program_runs_its_job_on_a_serving_server_through_the_api() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, url) = serve(data.path());
    let ws = format!("ws://{}/ws", url.trim_start_matches("http://"));
    let _workers: Vec<_> = (0..2)
        .map(|i| WorkerProcess::start(&ws, &format!("w{i}")))
        .collect();

    let dipla = dipla_driver::Dipla::builder()
        .remote(url.as_str(), TOKEN)
        .start()
        .await
        .unwrap();
    let bed = dipla.module(crate::support::wasm("testbed")).unwrap();
    // A chain, pipelined on the server's workers: squares, then each plus itself, summed.
    let squares = bed.task("square").map(0..300u64);
    let doubled = bed.task("add").zip([(&squares).into(), (&squares).into()]);
    let total: u64 = bed.task("add").reduce(&doubled).get().await.unwrap();
    assert_eq!(total, (0..300u64).map(|i| 2 * i * i).sum::<u64>());
    let got: Vec<u64> = squares.get().await.unwrap();
    assert_eq!(got, (0..300u64).map(|i| i * i).collect::<Vec<_>>());
    // A mistake is the driver's, named by the server's check, and does not end the job.
    let wrong = bed.task("no_such_task").map(0..3u64);
    let error = wrong.get::<u64>().await.unwrap_err();
    assert!(
        matches!(&error, dipla_driver::DriverError::Invalid { stage, message }
            if stage == "no_such_task" && message.contains("no_such_task")),
        "{error}"
    );
    let arity = bed
        .task("add")
        .zip([(0..3u64).into(), (0..3u64).into(), (0..3u64).into()]);
    let error = arity.get::<u64>().await.unwrap_err();
    assert!(error.to_string().contains("takes 2"), "{error}");
    let after = bed.task("square").map(&wrong);
    let error = after.get::<u64>().await.unwrap_err();
    assert!(
        error.to_string().contains("which could not be made"),
        "{error}"
    );
    // Failures come back typed, saying the kind once.
    let halves = bed.task("even_only").max_attempts(1).map(vec![2u64, 3]);
    let outcomes = halves.outcomes::<u64>().await.unwrap();
    assert_eq!(*outcomes[0].1.as_ref().unwrap(), 1);
    let failed = outcomes[1].1.as_ref().unwrap_err().to_string();
    assert!(
        failed.contains("returned an error") && !failed.contains("task error"),
        "{failed}"
    );
    // The stream yields every result once.
    let mut seen: Vec<u64> = {
        use futures_util::StreamExt;
        let stream = std::pin::pin!(squares.stream::<u64>());
        stream.map(|item| item.unwrap().1).collect().await
    };
    seen.sort_unstable();
    assert_eq!(seen, (0..300u64).map(|i| i * i).collect::<Vec<_>>());
    let more: Vec<u64> = bed.task("square").map(&squares).get().await.unwrap();
    assert_eq!(more[7], 7u64.pow(4));

    // The server lists the driver's job, ended once the driver closes it.
    let jobs = client(&url, &["jobs"]);
    let listed = String::from_utf8(jobs.stdout).unwrap();
    let id = listed
        .lines()
        .find(|line| line.starts_with("driver-"))
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or_else(|| panic!("{listed}"))
        .to_owned();
    dipla.shutdown().await;
    let ended = until(&url, &[&id], "the driver's job ended", |s| {
        s[0]["state"] == "succeeded"
    });
    // Squares, sums, the reduction's one result, squares again, halves.
    assert_eq!(ended[0]["done"], 300 + 300 + 1 + 300 + 1, "{ended:#?}");
    server.stop();
}

/// A driver job on a server with a short driver timeout, its id, and the server.
async fn driver_job(data: &std::path::Path) -> (Serving, String, WorkerProcess) {
    let (server, url) = serve_with(data, &["--driver-timeout-secs", "1"]);
    let ws = format!("ws://{}/ws", url.trim_start_matches("http://"));
    (server, url, WorkerProcess::start(&ws, "w0"))
}

/// Runs a stage of the driver's job to its end; the job is then running, waiting for more.
async fn long_job(dipla: &dipla_driver::Dipla, url: &str) -> dipla_driver::Promise {
    let bed = dipla.module(crate::support::wasm("testbed")).unwrap();
    let squares = bed.task("square").map(0..5u64);
    assert_eq!(squares.get::<u64>().await.unwrap().len(), 5);
    let id = dipla.job_id().to_owned();
    assert_eq!(status(url, &id)["state"], "running");
    squares
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_dropped_without_shutdown_closes_its_job() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, url, _worker) = driver_job(data.path()).await;
    let dipla = dipla_driver::Dipla::builder()
        .remote(url.as_str(), TOKEN)
        .start()
        .await
        .unwrap();
    let squares = long_job(&dipla, &url).await;
    let id = dipla.job_id().to_owned();
    // Dropped, as at the end of `main`: the job ends at once, closed, not timed out.
    drop(squares);
    drop(dipla);
    let ended = until(&url, &[&id], "the dropped driver's job ended", |s| {
        s[0]["state"] != "running"
    });
    assert_eq!(ended[0]["state"], "succeeded", "{ended:#?}");
    server.stop();
}

#[test]
fn a_driver_that_vanishes_has_its_job_cancelled_after_the_timeout() {
    let data = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (mut server, url, _worker) = runtime.block_on(driver_job(data.path()));
    let id = runtime.block_on(async {
        let dipla = dipla_driver::Dipla::builder()
            .remote(url.as_str(), TOKEN)
            .start()
            .await
            .unwrap();
        let squares = long_job(&dipla, &url).await;
        let id = dipla.job_id().to_owned();
        // As if killed: nothing is closed, nothing runs any more.
        std::mem::forget(squares);
        std::mem::forget(dipla);
        id
    });
    runtime.shutdown_background();
    let ended = until(&url, &[&id], "the vanished driver's job cancelled", |s| {
        s[0]["state"] != "running"
    });
    assert_eq!(ended[0]["state"], "cancelled", "{ended:#?}");
    let summary = ended[0]["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("driver was not heard from"), "{summary}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_caught_lying_in_one_job_gets_no_work_in_the_next() {
    let data = tempfile::tempdir().unwrap();
    let (_server, url) = serve(data.path());
    let addr = url.trim_start_matches("http://").to_owned();
    let ws = format!("ws://{addr}/ws");
    // Job A replicates every task: the liar (it answers 7) is caught there.
    let first = burn_job(200, 3_000_000);
    let manifest = std::fs::read_to_string(&first.manifest).unwrap();
    std::fs::write(
        &first.manifest,
        format!("{manifest}\n        replicate = 1.0\n"),
    )
    .unwrap();
    let a = submit(&url, &first);
    let identity = std::sync::Arc::new(dipla_worker::Identity::generate());
    let liar = crate::support::start_liar(&ws, identity);
    let _honest: Vec<_> = (0..2)
        .map(|i| WorkerProcess::start(&ws, &format!("honest-{i}")))
        .collect();
    let url_a = url.clone();
    tokio::task::spawn_blocking(move || {
        until(&url_a, &[&a], "the liar caught in A", |s| {
            s[0]["counts"]["untrusted"] == 1
        })
    })
    .await
    .unwrap();

    // Job B checks nothing: were the liar given any of its tasks, a 7 would be written where
    // each task gives back its seed. It is still connected (the server counts it), but no
    // job seats it.
    let b = submit(&url, &burn_job(300, 3_000_000));
    let seen = tokio::task::spawn_blocking(move || {
        let statuses = until(&url, &[&b], "B done", |s| {
            let listed = s[0]["workers"].as_array().cloned().unwrap_or_default();
            assert!(listed.iter().all(|w| w["name"] != "liar"), "{listed:?}");
            s[0]["state"] == "succeeded"
        });
        let (code, _, health) = http(&addr, "GET", "/health", None);
        assert_eq!(code, 200);
        let health: serde_json::Value = serde_json::from_str(&health).unwrap();
        let out = client(&url, &["results", &b]);
        (statuses, health, out)
    })
    .await
    .unwrap();
    let (statuses, health, out) = seen;
    assert_eq!(statuses[0]["failed"], 0, "{statuses:#?}");
    // The liar is still there, unseated: its session never gave up (it may be between the
    // connections of a rejoin just now, so the server counts 2 or 3 workers).
    assert!(!liar.is_finished(), "the liar's session ended");
    let counted = health["workers"].as_u64().unwrap_or_default();
    assert!((2..=3).contains(&counted), "{health}");
    assert!(out.status.success());
    let outputs = outputs(&out.stdout);
    assert_eq!(outputs.len(), 300);
    assert!(
        outputs.iter().all(|&(index, output)| output == index),
        "{outputs:?}"
    );
    liar.abort();
}
