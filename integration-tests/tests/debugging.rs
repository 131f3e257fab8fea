//! Debugging a guest: `dipla-server try`, what tasks log (in failure lines and with
//! `--log-tasks`, from local and remote workers, whatever a hostile worker sends), and the
//! clock a task does not have.

use std::process::{Command, Output};
use std::sync::Arc;

use dipla_protocol::MAX_LOG_BYTES;
use dipla_worker::{ModuleCache, WorkerConfig};

use crate::support::{JobDir, PATIENCE, WorkerProcess, bin, finish, remote_server, wasm, watch};

/// `dipla-server try testbed.wasm ARGS...`.
fn try_testbed(args: &[&str]) -> Output {
    Command::new(bin("dipla-server"))
        .arg("try")
        .arg(wasm("testbed"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const LOG: &str = "checking 3\nprintln goes to the log\nso does eprintln\n";

#[test]
fn try_prints_the_output_the_fuel_and_the_log() {
    let output = try_testbed(&["chatty", "4"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(text(&output.stdout), "2\n", "the output alone on stdout");
    assert!(
        stderr.starts_with(
            "the task logged:\n  | checking 4\n  | println goes to the log\n  | so does eprintln\n"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("\nfuel: "), "{stderr}");
    assert!(stderr.contains(" of 10000000000 ("), "{stderr}");
}

#[test]
fn try_prints_a_failure_s_kind_message_and_log_and_exits_1() {
    let output = try_testbed(&["chatty", "3", "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["error"], "task error: 3 is odd");
    assert_eq!(json["kind"], "guest");
    assert_eq!(json["log"], LOG);
    assert!(json["fuel"].as_u64().unwrap() > 0);

    let output = try_testbed(&["chatty_panic", "5"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(text(&output.stdout), "");
    assert!(
        stderr.starts_with(
            "the task logged:\n  | about to panic on 5\nthe task failed: panic: boom on 5 (at "
        ),
        "{stderr}"
    );
}

#[test]
fn try_applies_the_fuel_and_memory_limits_and_keeps_the_log_of_a_task_out_of_fuel() {
    let output = try_testbed(&["log_flood", "100000", "--fuel", "200000", "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["kind"], "out_of_fuel");
    assert_eq!(json["fuel"], 200_000);
    assert_eq!(json["fuel_limit"], 200_000);
    assert!(
        json["log"]
            .as_str()
            .unwrap()
            .starts_with("line 0 of 100000\nline 1 of 100000\n")
    );

    let output = try_testbed(&["log_flood", "3000", "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let log = json["log"].as_str().unwrap();
    assert!(log.len() <= MAX_LOG_BYTES, "{}", log.len());
    assert!(
        log.ends_with("(log truncated: a task keeps the first 8 KiB it logs)\n"),
        "{log}"
    );
    assert_eq!(
        json["output"], 3000,
        "logging more than is kept changes nothing else"
    );

    let output = try_testbed(&["hog", "64", "--memory-mb", "16", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["kind"], "memory_limit", "{json}");
}

#[test]
fn try_refuses_bad_usage_with_exit_code_2() {
    for (args, says) in [
        (
            &["nope", "1"][..],
            "`nope` is not a task of this module (its tasks: ",
        ),
        (&["chatty", "[1,"][..], "the input is not valid JSON"),
        (
            &["chatty", "1", "--memory-mb", "0"][..],
            "--memory-mb must be between 1 and 4096",
        ),
    ] {
        let output = try_testbed(args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert_eq!(stderr.matches(says).count(), 1, "said once: {stderr}");
    }
    let output = Command::new(bin("dipla-server"))
        .args(["try", "/nonexistent/guest.wasm", "chatty", "1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("cannot read /nonexistent/guest.wasm"));
}

#[test]
fn a_task_that_reads_the_clock_is_told_why_there_is_none_and_what_to_use() {
    for kind in ["\"instant\"", "\"system\""] {
        let output = try_testbed(&["clock", kind, "--json"]);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(json["kind"], "panic", "{json}");
        let error = json["error"].as_str().unwrap();
        assert!(
            error.starts_with(
                "panic: time not implemented on this platform: a Dipla task has no clock"
            ),
            "{error}"
        );
        assert!(
            error.contains("every worker computes the same result"),
            "{error}"
        );
        assert!(error.contains("input") && error.contains("fuel"), "{error}");
        assert_eq!(
            json["log"],
            format!("reading the {} clock\n", kind.trim_matches('"'))
        );
    }
}

const CHATTY: &str = r#"
    name = "chatty"
    [modules]
    bed = "{testbed}"
    [[stages]]
    name = "halves"
    task = "bed.chatty"
    inputs = { values = [3, 4] }
"#;

const HALVES: [&str; 2] = [
    r#"{"stage":"halves","index":0,"input":3,"error":"task error: 3 is odd","kind":"guest","check":"unchecked","log":"checking 3\nprintln goes to the log\nso does eprintln\n"}"#,
    r#"{"stage":"halves","index":1,"input":4,"output":2,"check":"unchecked"}"#,
];

fn run(job: &JobDir, args: &[&str]) -> Output {
    Command::new(bin("dipla-server"))
        .arg("run")
        .arg(&job.manifest)
        .args(["--local-workers", "1", "--no-state"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_failure_line_carries_the_log_and_log_tasks_shows_every_task_s() {
    let job = JobDir::new(CHATTY);
    let output = run(&job, &[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<String> = text(&output.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines, HALVES, "the log is on the failure's line only");
    assert!(!stderr.contains("task log:"), "{stderr}");

    let output = run(&job, &["--log-tasks"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<String> = text(&output.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines, HALVES, "--log-tasks changes no result");
    for said in [
        "task log: checking 3",
        "task log: checking 4",
        "task log: println goes to the log",
    ] {
        assert!(stderr.contains(said), "{said}: {stderr}");
    }
    let line = stderr
        .lines()
        .find(|line| line.contains("task log: checking 4"))
        .unwrap();
    assert!(
        line.contains("stage=\"halves\"") || line.contains("stage=halves"),
        "{line}"
    );
    assert!(line.contains("index=1"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_worker_s_log_comes_back_with_its_failure() {
    let job = JobDir::new(CHATTY);
    let (server, url) = remote_server(job.job()).await;
    // Two identities: a failure from workers the server does not trust needs confirming.
    let _workers: Vec<WorkerProcess> = (0..2)
        .map(|i| WorkerProcess::start(&url, &format!("remote-{i}")))
        .collect();
    let (summary, lines) = tokio::time::timeout(PATIENCE, finish(server))
        .await
        .expect("the job finishes");
    assert_eq!(summary.counts.failed, 1, "{summary}");
    assert_eq!(lines[0]["log"], LOG, "{}", lines[0]);
    assert_eq!(lines[0]["error"], "task error: 3 is odd");
    assert_eq!(lines[0]["check"], "replicated:2");
    assert_eq!(lines[1]["output"], 2);
    assert!(lines[1].get("log").is_none(), "{}", lines[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_log_is_bounded_made_printable_and_changes_nothing() {
    let job = JobDir::new(CHATTY);
    let (server, url) = remote_server(job.job()).await;
    let records = watch(server.handle());
    // Two identities, both noisy: a failure from workers the server does not trust needs
    // confirming.
    let workers: Vec<_> = (0..2)
        .map(|i| {
            let mut config = WorkerConfig::new(&url);
            config.name = format!("noisy-{i}");
            config.cores = 1;
            config.tamper = Some(Arc::new(|result| {
                result.log = Some(format!(
                    "\u{1b}[2J\r\nforged\u{202E}{}",
                    "x".repeat(1 << 20)
                ));
            }));
            tokio::spawn(async move {
                let sandbox = dipla_sandbox::Sandbox::new().unwrap();
                let cache = ModuleCache::new(sandbox, None).unwrap();
                let _ = dipla_worker::run(&config, &cache).await;
            })
        })
        .collect();
    let (summary, lines) = tokio::time::timeout(PATIENCE, finish(server))
        .await
        .expect("the job finishes");
    workers.iter().for_each(|worker| worker.abort());
    assert_eq!(summary.counts.failed, 1, "{summary}");
    assert_eq!(lines[1]["output"], 2, "a log cannot change an output");
    assert!(lines[1].get("log").is_none());
    assert_eq!(lines[0]["error"], "task error: 3 is odd");
    let log = lines[0]["log"].as_str().unwrap();
    assert!(
        log.starts_with("\u{FFFD}[2J\nforged\u{FFFD}xxx"),
        "{}",
        &log[..40]
    );
    assert_eq!(log.len(), MAX_LOG_BYTES);
    assert!(log.ends_with('…'));
    let records = records.await.unwrap();
    assert!(
        records["noisy-0"].trusted && records["noisy-1"].trusted,
        "a log is no lie: {:?}",
        records
    );
}
