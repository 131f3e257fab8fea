//! The binaries as a user runs them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::{
    JobDir, WorkerProcess, addr_of, bin, eventually, http, seen_while_quiet, server_process,
};

/// Runs `dipla-server run MANIFEST ARGS... [--out OUT]` to the end.
fn run_job(job: &JobDir, args: &[&str], out: Option<&std::path::Path>) -> std::process::Output {
    let mut command = Command::new(bin("dipla-server"));
    command.arg("run").arg(&job.manifest).args(args);
    if let Some(out) = out {
        command.arg(out);
    }
    command.output().unwrap()
}

const SQUARES: &str = r#"
    name = "squares"
    [modules]
    bed = "{testbed}"
    [[stages]]
    name = "squares"
    task = "bed.square"
    inputs = { values = [12, 97, 1001] }
"#;

#[test]
fn run_with_local_workers_writes_results_to_a_file() {
    let job = JobDir::new(SQUARES);
    let out = job.dir.path().join("results.jsonl");
    let output = run_job(
        &job,
        &["--local-workers", "2", "--out"],
        Some(out.as_path()),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        concat!(
            r#"{"stage":"squares","index":0,"input":12,"output":144,"check":"unchecked"}"#,
            "\n",
            r#"{"stage":"squares","index":1,"input":97,"output":9409,"check":"unchecked"}"#,
            "\n",
            r#"{"stage":"squares","index":2,"input":1001,"output":1002001,"check":"unchecked"}"#,
            "\n",
        )
    );
    assert!(
        output.stdout.is_empty(),
        "results go to --out, logs to stderr"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("3 succeeded, 0 failed"), "{stderr}");
}

#[test]
fn the_summary_json_counts_tasks_traffic_and_times() {
    let job = JobDir::new(SQUARES);
    let summary = job.dir.path().join("summary.json");
    let out = job.dir.path().join("results.jsonl");
    let output = run_job(
        &job,
        &[
            "--local-workers",
            "1",
            "--summary-json",
            summary.to_str().unwrap(),
            "--out",
        ],
        Some(out.as_path()),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(summary["tasks"], 3);
    assert_eq!(summary["success"], true);
    assert_eq!(summary["cancelled"], false);
    assert_eq!(summary["counts"]["succeeded"], 3);
    assert_eq!(summary["counts"]["failed"], 0);
    assert_eq!(summary["traffic"]["workers_joined"], 1);
    let traffic = &summary["traffic"];
    let results = std::fs::metadata(&out).unwrap().len();
    assert!(
        traffic["bytes_received"].as_u64().unwrap() > 0
            && traffic["bytes_sent"].as_u64().unwrap() > 0,
        "{traffic}"
    );
    assert!(results > 0);
    let first = summary["first_result_secs"].as_f64().unwrap();
    let elapsed = summary["elapsed_secs"].as_f64().unwrap();
    assert!(0.0 < first && first <= elapsed, "{summary}");
}

#[test]
fn results_go_to_stdout_and_failures_set_the_exit_code() {
    let job = JobDir::new(&SQUARES.replace("bed.square", "bed.even_only"));
    let output = run_job(&job, &["--local-workers", "1"], None);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        r#"{"stage":"squares","index":0,"input":12,"output":6,"check":"unchecked"}"#
    );
    assert_eq!(
        lines[1],
        r#"{"stage":"squares","index":1,"input":97,"error":"task error: 97 is odd","kind":"guest","check":"unchecked"}"#
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("1 succeeded, 2 failed"), "{stderr}");
}

#[test]
fn a_bad_manifest_names_the_key_at_fault() {
    let job = JobDir::new(&SQUARES.replace("bed.square", "bed.cube"));
    let output = run_job(&job, &[], None);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("stages[0].task"), "{stderr}");
    assert!(
        stderr.contains("`cube` is not a task of this module (its tasks: "),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn a_missing_manifest_is_named_once_with_its_reason() {
    let output = Command::new(bin("dipla-server"))
        .args(["run", "/nonexistent/job.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot read the manifest /nonexistent/job.toml: "),
        "{stderr}"
    );
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
}

/// The remote flow of the README: `run --listen`, then `dipla-worker --server` elsewhere.
#[test]
fn remote_workers_join_a_listening_server() {
    let job = JobDir::new(SQUARES);
    let mut server = Command::new(bin("dipla-server"))
        .args([
            "run",
            job.manifest.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(server.stderr.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the server exited early"
        );
        if let Some(url) = line
            .trim()
            .strip_prefix("dipla-server: workers connect to ")
        {
            break url.to_owned();
        }
    };
    let mut worker = WorkerProcess::start(&url, "remote");
    let status = server.wait().unwrap();
    assert!(status.success());
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut server.stdout.take().unwrap(), &mut stdout).unwrap();
    assert_eq!(stdout.lines().count(), 3);
    assert!(worker.wait_success());
}

#[test]
fn stage_writes_only_that_stages_results() {
    let job = JobDir::new(&format!(
        "{SQUARES}\n[[stages]]\nname = \"sum\"\ntask = \"bed.add\"\nreduce = {{ stage = \"squares\" }}\n"
    ));
    let output = run_job(&job, &["--local-workers", "1", "--stage", "sum"], None);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "{\"stage\":\"sum\",\"index\":0,\"input\":{\"items\":3,\"reduce\":\"squares\"},\"output\":1011554,\"check\":\"unchecked\"}\n"
    );
}

#[test]
fn inspect_prints_the_task_signatures() {
    let output = Command::new(bin("dipla-server"))
        .args(["inspect"])
        .arg(crate::support::wasm("testbed"))
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("add(a: u64, b: u64) -> u64 [can reduce]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("describe(name: String, count: u32, tags: Vec<String>) -> String"),
        "{stdout}"
    );
    assert!(
        stdout.contains("even_only(x: u64) -> Result<u64, String>"),
        "{stdout}"
    );
}

#[test]
fn a_zip_cannot_match_a_stage_that_can_stop_early() {
    let job = JobDir::new(&format!(
        "{SQUARES}\n[[stages]]\nname = \"seek\"\ntask = \"bed.seek\"\ninputs = {{ stage = \"squares\" }}\n\
         [[stages]]\nname = \"after\"\ntask = \"bed.add\"\n\
         inputs = {{ zip = [ {{ stage = \"seek\" }}, {{ values = [1, 2, 3] }} ] }}\n"
    ));
    let output = run_job(&job, &[], None);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("stages[2].inputs: stage \"seek\" can stop early"),
        "{stderr}"
    );
}

#[test]
fn worker_bench_prints_its_figures_as_json() {
    let output = Command::new(bin("dipla-worker"))
        .args(["bench", "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bench: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(bench["score"].as_f64().unwrap() > 0.0, "{bench}");
    let kernels = bench["kernels"].as_array().unwrap();
    let names: Vec<&str> = kernels
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "int_chain",
            "float_chain",
            "seq_memory",
            "random_loads",
            "branches",
            "calls"
        ]
    );
    let sandbox = dipla_sandbox::Sandbox::new().unwrap();
    for (kernel, (fuel, checksum)) in kernels
        .iter()
        .zip(dipla_sandbox::bench::expected(&sandbox).unwrap())
    {
        assert_eq!(kernel["fuel"], *fuel, "{kernel}");
        assert_eq!(kernel["checksum"], checksum.as_str(), "{kernel}");
        assert!(kernel["micros"].as_u64().unwrap() > 0, "{kernel}");
    }
    let parsed: dipla_protocol::Benchmark = serde_json::from_value(bench).unwrap();
    assert!(dipla_sandbox::bench::check(&sandbox, &parsed).is_ok());
}

#[test]
fn the_worker_needs_a_server_or_a_command() {
    let output = Command::new(bin("dipla-worker")).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--server"));
}

#[test]
fn without_a_terminal_progress_is_reported_in_plain_lines() {
    let inputs: Vec<String> = (0..300).map(|i| format!("[{i}, 2000000]")).collect();
    let job = JobDir::new(&format!(
        "name = \"slow\"\n[modules]\nbed = \"{{testbed}}\"\n[[stages]]\nname = \"burn\"\n\
         task = \"bed.burn\"\ninputs = {{ values = [{}] }}\n",
        inputs.join(", ")
    ));
    let output = run_job(
        &job,
        &[
            "--local-workers",
            "1",
            "--no-state",
            "--progress-secs",
            "0.1",
        ],
        None,
    );
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("tasks done ("))
        .collect();
    assert!(!lines.is_empty(), "{stderr}");
    assert!(lines[0].contains("/300 tasks done"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no terminal escapes in plain output: {stderr}"
    );
}

#[test]
fn min_workers_holds_the_tasks_until_that_many_have_joined() {
    let job = JobDir::new(SQUARES);
    let out = job.dir.path().join("results.jsonl");
    let (mut server, url, said) = server_process(
        &job.manifest,
        &[
            "--listen",
            "127.0.0.1:0",
            "--min-workers",
            "2",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        said.contains("giving out tasks once 2 workers have joined"),
        "{said}"
    );
    let _first = WorkerProcess::start(&url, "first");
    // Alone, the first worker would finish these three squares in milliseconds. Nothing
    // shows that they are held: once the server counts it, watch the server for a while.
    let addr = addr_of(&url);
    eventually("the first worker joined", || {
        let (_, _, health) = http(&addr, "GET", "/health", None);
        let health: serde_json::Value = serde_json::from_str(&health).unwrap();
        (health["workers"] == 1).then_some(())
    });
    let ended = seen_while_quiet(|| server.try_wait().unwrap());
    assert!(
        ended.is_none(),
        "the job ran before the second worker joined"
    );
    let _second = WorkerProcess::start(&url, "second");
    assert!(server.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 3);
}

/// `bytes` with a custom section `name` of `len` bytes appended.
fn with_custom_section(mut bytes: Vec<u8>, name: &str, len: usize) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name.as_bytes());
    payload.resize(payload.len() + len, 0);
    bytes.push(0);
    leb(payload.len(), &mut bytes);
    bytes.extend_from_slice(&payload);
    bytes
}

#[test]
fn a_debug_build_is_named_by_inspect_and_at_load_and_still_runs() {
    let job = JobDir::new(&SQUARES.replace("{testbed}", "debug.wasm"));
    let debug = with_custom_section(
        std::fs::read(crate::support::wasm("testbed")).unwrap(),
        ".debug_info",
        4096,
    );
    let module = job.dir.path().join("debug.wasm");
    std::fs::write(&module, debug).unwrap();

    let output = Command::new(bin("dipla-server"))
        .arg("inspect")
        .arg(&module)
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("warning it carries 4 KiB of debug info (.debug_* sections): it looks like a debug build")
            && stdout.contains("--release"),
        "{stdout}"
    );
    assert!(!stdout.contains("types not recorded"), "{stdout}");

    let output = run_job(&job, &["--local-workers", "1"], None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("module bed (debug.wasm): it carries 4 KiB of debug info"),
        "{stderr}"
    );
    let plain = run_job(&JobDir::new(SQUARES), &["--local-workers", "1"], None);
    assert!(!String::from_utf8_lossy(&plain.stderr).contains("debug build"));
}

#[test]
fn inspect_says_when_a_module_records_no_types_and_names_a_file_that_is_not_wasm() {
    let dir = tempfile::tempdir().unwrap();
    let untyped = dir.path().join("untyped.wasm");
    std::fs::write(
        &untyped,
        wat::parse_str(
            r#"(module
                (memory (export "memory") 1)
                (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 64))
                (func (export "double") (param i32 i32) (result i64) (i64.const 0))
                (@custom "dipla" "{\"abi\":1,\"task\":\"double\"}\n"))"#,
        )
        .unwrap(),
    )
    .unwrap();
    let inspect = |path: &std::path::Path| {
        Command::new(bin("dipla-server"))
            .arg("inspect")
            .arg(path)
            .output()
            .unwrap()
    };
    let output = inspect(&untyped);
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("double(?)  (types not recorded: inputs are not checked at load)"),
        "{stdout}"
    );
    assert!(stdout.contains("memory  64 KiB at start"), "{stdout}");

    let native = dir.path().join("native.wasm");
    std::fs::write(
        &native,
        b"\x7fELF\x02\x01\x01\0 and the rest of a native binary",
    )
    .unwrap();
    let output = inspect(&native);
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("native.wasm is not a runnable Dipla guest: not a wasm module: it is an ELF executable or library (a native build)"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
