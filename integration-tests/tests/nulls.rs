//! `null` is an output like any other: `Option::None`, `()`, NaN and infinite floats (which
//! serde writes as `null`) and nulls nested in arrays and objects come back intact through
//! local workers, `dipla-worker` processes, replication, a verifier, a chained stage, the
//! journal and its audit, `serve` and the driver, and no honest worker is closed or untrusted.

use std::collections::BTreeMap;
use std::process::Command;

use dipla_server::{Dipla, RunOptions, Server, Summary};

use crate::support::{JobDir, PATIENCE, WorkerProcess, bin, remote_server, wasm, watch};

/// The stages of the null job, each followed by `checks` lines: `maybe` (None for odd
/// inputs), `or_zero` reading it (a `null` input), `nothing` (`()`), `unbounded` (NaN and
/// infinities) and `holes` (nested nulls).
fn nulls_job(maybe_checks: &str, checks: &str) -> JobDir {
    JobDir::new(&format!(
        r#"
        name = "nulls"
        [modules]
        bed = "{{testbed}}"
        [[stages]]
        name = "maybe"
        task = "bed.maybe"
        inputs = {{ range = {{ start = 0, end = 4 }} }}
        max_attempts = 5
        {maybe_checks}
        [[stages]]
        name = "or_zero"
        task = "bed.or_zero"
        inputs = {{ stage = "maybe" }}
        {checks}
        [[stages]]
        name = "nothing"
        task = "bed.nothing"
        inputs = {{ range = {{ start = 0, end = 2 }} }}
        {checks}
        [[stages]]
        name = "unbounded"
        task = "bed.unbounded"
        inputs = {{ range = {{ start = 0, end = 4 }} }}
        {checks}
        [[stages]]
        name = "holes"
        task = "bed.holes"
        inputs = {{ values = [5] }}
        {checks}
        "#
    ))
}

/// The exact result lines of [`nulls_job`], sorted, with `maybe_check` and `check` as the
/// lines' checks.
fn expected(maybe_check: &str, check: &str) -> Vec<String> {
    let line = |stage: &str, index: u64, input: &str, output: &str, check: &str| {
        format!(
            r#"{{"stage":"{stage}","index":{index},"input":{input},"output":{output},"check":"{check}"}}"#
        )
    };
    let mut lines = Vec::new();
    for (i, output) in ["0", "null", "2", "null"].into_iter().enumerate() {
        let i = i as u64;
        lines.push(line("maybe", i, &i.to_string(), output, maybe_check));
        let read = if output == "null" { "0" } else { output };
        lines.push(line("or_zero", i, output, read, check));
    }
    for i in 0..2 {
        lines.push(line("nothing", i, &i.to_string(), "null", check));
    }
    for (i, output) in ["null", "null", "null", "3.0"].into_iter().enumerate() {
        lines.push(line("unbounded", i as u64, &i.to_string(), output, check));
    }
    lines.push(line(
        "holes",
        0,
        "5",
        r#"[[null,5],{"gap":null,"x":5}]"#,
        check,
    ));
    lines.sort();
    lines
}

/// Runs `server` to the end (failing after two minutes rather than hanging, the bug this
/// file pins): its summary and its result lines as written, sorted.
async fn run(server: Server) -> (Summary, Vec<String>) {
    let mut out = Vec::new();
    let summary = tokio::time::timeout(PATIENCE, server.run(&mut out))
        .await
        .expect("a job with null outputs finishes")
        .unwrap();
    let mut lines: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    (summary, lines)
}

fn assert_clean(summary: &Summary) {
    assert!(summary.success(), "{summary}");
    assert_eq!(summary.counts.failed, 0, "{summary}");
    assert_eq!(summary.counts.retried, 0, "{summary}");
    assert_eq!(summary.counts.rejected, 0, "{summary}");
    assert_eq!(summary.counts.untrusted, 0, "{summary}");
    assert_eq!(summary.counts.requeued, 0, "no worker was lost: {summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_outputs_come_back_from_local_workers() {
    let job = nulls_job("", "");
    let options = RunOptions {
        local_workers: 2,
        ..RunOptions::default()
    };
    let server = Server::bind(job.job(), options).await.unwrap();
    let (summary, lines) = run(server).await;
    assert_clean(&summary);
    assert_eq!(lines, expected("unchecked", "unchecked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_outputs_come_back_from_worker_processes_replicated_and_verified() {
    for (maybe_checks, checks, maybe_check, check) in [
        ("", "", "unchecked", "unchecked"),
        (
            r#"verify = "bed.maybe_right""#,
            "replicate = 1\nquorum = 2",
            "verified",
            "replicated:2",
        ),
    ] {
        let job = nulls_job(maybe_checks, checks);
        let (server, url) = remote_server(job.job()).await;
        let records = watch(server.handle());
        let mut workers: Vec<WorkerProcess> = (0..2)
            .map(|i| WorkerProcess::start(&url, &format!("w{i}")))
            .collect();
        let (summary, lines) = run(server).await;
        assert_clean(&summary);
        assert_eq!(lines, expected(maybe_check, check), "{checks}");
        let records = records.await.unwrap();
        for name in ["w0", "w1"] {
            let record = &records[name];
            assert!(record.trusted && record.note.is_none(), "{record:?}");
        }
        // Told the job ended, each volunteer exits cleanly (not "told it cheated").
        for worker in &mut workers {
            assert!(worker.wait_success());
        }
    }
}

#[test]
fn null_outputs_are_journaled_and_audited() {
    let job = nulls_job("", "");
    let dir = job.dir.path();
    let out = dir.join("results.jsonl");
    let state = dir.join("job.state");
    let run = Command::new(bin("dipla-server"))
        .arg("run")
        .arg(&job.manifest)
        .args(["--local-workers", "2", "--out"])
        .arg(&out)
        .arg("--state")
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut lines: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(lines, expected("unchecked", "unchecked"));
    let audit = Command::new(bin("dipla-server"))
        .arg("audit")
        .arg(&out)
        .arg("--state")
        .arg(&state)
        .args(["--sample", "15"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(
        report.contains("15 lines: 15 match a signed receipt, 0 failures"),
        "{report}"
    );
    assert!(
        report.contains("15 re-run in the sandbox; 0 problems"),
        "{report}"
    );
    // Run again on the journal: every result, null or not, is restored as it was.
    let again = Command::new(bin("dipla-server"))
        .arg("run")
        .arg(&job.manifest)
        .args(["--local-workers", "2", "--out"])
        .arg(dir.join("again.jsonl"))
        .arg("--state")
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let mut restored: Vec<String> = std::fs::read_to_string(dir.join("again.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    restored.sort();
    assert_eq!(restored, lines);
}

/// What the driver reads of the null tasks, through `$dipla`: the embedded driver
/// (`dipla_server::Dipla`) and the light remote one (`dipla_driver::Dipla`) have the same API
/// but are different types.
macro_rules! drive {
    ($dipla:expr) => {{
        let bed = $dipla.module(wasm("testbed")).unwrap();
        let maybe = bed.task("maybe").map(0..4u64);
        assert_eq!(
            maybe.get::<Option<u64>>().await.unwrap(),
            [Some(0), None, Some(2), None]
        );
        let read: Vec<u64> = bed.task("or_zero").map(&maybe).get().await.unwrap();
        assert_eq!(read, [0, 0, 2, 0]);
        let nothing = bed.task("nothing").map(0..2u64);
        assert_eq!(nothing.get::<()>().await.unwrap(), [(), ()]);
        let floats: Vec<Option<f64>> = bed.task("unbounded").map(0..4u64).get().await.unwrap();
        assert_eq!(floats, [None, None, None, Some(3.0)]);
        type Holes = (Vec<Option<u64>>, BTreeMap<String, Option<u64>>);
        let holes: Vec<Holes> = bed.task("holes").map(vec![5u64]).get().await.unwrap();
        let object = BTreeMap::from([("gap".to_owned(), None), ("x".to_owned(), Some(5))]);
        assert_eq!(holes, [(vec![None, Some(5)], object)]);
        let checked = bed
            .task("maybe")
            .verify(&bed, "maybe_right")
            .map(0..6u64)
            .get::<Option<u64>>()
            .await
            .unwrap();
        assert_eq!(checked, [Some(0), None, Some(2), None, Some(4), None]);
    }};
}

/// Nothing the null tasks did failed, was rejected or untrusted anyone.
fn assert_driver_clean(dipla: &Dipla) {
    let counts = dipla.handle().counts();
    assert_eq!(counts.failed, 0, "{counts:?}");
    assert_eq!(counts.rejected, 0, "{counts:?}");
    assert_eq!(counts.untrusted, 0, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_reads_null_outputs_with_local_workers() {
    let dipla = Dipla::builder().local_workers(2).start().await.unwrap();
    tokio::time::timeout(PATIENCE, async { drive!(dipla) })
        .await
        .expect("the driver's null tasks finish");
    assert_driver_clean(&dipla);
    dipla.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_the_remote_driver_carry_null_outputs() {
    use crate::serve::{TOKEN, serve, submit};
    let data = tempfile::tempdir().unwrap();
    let (mut server, url) = serve(data.path());
    let ws = format!("ws://{}/ws", url.trim_start_matches("http://"));
    let _workers: Vec<_> = (0..2)
        .map(|i| WorkerProcess::start(&ws, &format!("w{i}")))
        .collect();

    // A submitted job's results, as the API streams them.
    let job = nulls_job("", "");
    let id = submit(&url, &job);
    let results = Command::new(bin("dipla-server"))
        .args(["results", &id, "--server", &url, "--admin-token", TOKEN])
        .output()
        .unwrap();
    assert!(
        results.status.success(),
        "{}",
        String::from_utf8_lossy(&results.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8(results.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(lines, expected("unchecked", "unchecked"));

    // The driver's results come back as events from the remote coordinator.
    let dipla = dipla_driver::Dipla::builder()
        .remote(url.as_str(), TOKEN)
        .start()
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, async { drive!(dipla) })
        .await
        .expect("the remote driver's null tasks finish");
    dipla.shutdown().await;
    server.stop();
}
