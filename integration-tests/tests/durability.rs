//! The job's journal: a server killed with `kill -9` and started again with the same command
//! resumes, computes nothing twice and writes the same output as an uninterrupted run.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::{JobDir, addr_of, bin, eventually, http, journaled_through, server_process};

const TASKS: u64 = 1_500;

/// Burn tasks (slow enough to kill the server midway), their squares, and the squares' sum.
fn chain_job() -> JobDir {
    let inputs: Vec<String> = (0..TASKS).map(|i| format!("[{i}, 1000000]")).collect();
    JobDir::new(&format!(
        r#"
        name = "durable"
        [modules]
        bed = "{{testbed}}"
        [[stages]]
        name = "burn"
        task = "bed.burn"
        inputs = {{ values = [{}] }}
        [[stages]]
        name = "squares"
        task = "bed.square"
        inputs = {{ stage = "burn" }}
        [[stages]]
        name = "sum"
        task = "bed.add"
        reduce = {{ stage = "squares" }}
        "#,
        inputs.join(", ")
    ))
}

fn server(job: &JobDir, out: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(bin("dipla-server"));
    command
        .arg("run")
        .arg(&job.manifest)
        .args(["--local-workers", "2", "--out"])
        .arg(out)
        .args(args)
        .env("RUST_LOG", "warn");
    command
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| text.lines().count())
}

/// The operator's token of the runs that are killed.
const TOKEN: &str = "durability";

/// The results journaled in the state file at `path` (none if there is none yet).
fn journaled(path: &Path) -> u64 {
    if !path.exists() {
        return 0;
    }
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM events WHERE kind = 'result'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map_or(0, |n| u64::try_from(n).unwrap())
}

/// A number in `0..bound` no run can predict.
fn random(bound: u64) -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now()) % bound
}

fn succeeded(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

#[test]
fn a_server_killed_at_random_points_resumes_with_identical_output_and_recomputes_nothing() {
    let job = chain_job();
    let dir = job.dir.path();
    let clean = dir.join("clean.jsonl");
    succeeded(&server(&job, &clean, &["--no-state"]).output().unwrap());
    assert_eq!(lines(&clean), 2 * TASKS as usize + 1);

    let out = dir.join("results.jsonl");
    let state = dir.join("job.state");
    let state_arg = state.to_str().unwrap();
    // Kill it twice, each time at a random point once this run has journaled results of its
    // own (the journal is written behind the job: the API says how far it has got).
    for _ in 0..2 {
        let before = journaled(&state);
        let args = [
            "--local-workers",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--state",
            state_arg,
            "--listen",
            "127.0.0.1:0",
            "--admin-token",
            TOKEN,
        ];
        let (mut child, url, _) = server_process(&job.manifest, &args);
        let addr = addr_of(&url);
        let status = || {
            let (code, _, body) = http(&addr, "GET", "/api/job", Some(TOKEN));
            assert_eq!(code, 200, "{body}");
            serde_json::from_str::<serde_json::Value>(&body).unwrap()
        };
        let sent = eventually("results of this run's own", || {
            let status = status();
            let done: u64 = status["stages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|stage| stage["done"].as_u64().unwrap())
                .sum();
            (done >= before + 50).then(|| status["journal"]["sent"].as_u64().unwrap())
        });
        eventually("them journaled", || {
            journaled_through(&status(), sent).then_some(())
        });
        std::thread::sleep(Duration::from_millis(random(300)));
        child.kill().unwrap(); // SIGKILL: no chance to flush or say goodbye
        child.wait().unwrap();
    }
    let partial = lines(&out);
    assert!(
        partial < 2 * TASKS as usize + 1,
        "the job finished before the kill ({partial} lines): make it longer"
    );
    let stderr = succeeded(
        &server(&job, &out, &["--state", state_arg])
            .output()
            .unwrap(),
    );
    assert!(
        stderr.contains("results restored from the journal"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&clean).unwrap(),
        "the resumed run's output differs from a clean run's"
    );

    // The journal: every task's result was accepted once, over three runs, and each run
    // accepted some (so the later runs did not compute again what the earlier ones had).
    let db = rusqlite::Connection::open(&state).unwrap();
    let (results, distinct): (i64, i64) = db
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT stage || '/' || idx) FROM events WHERE kind = 'result'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(results, distinct, "a result was accepted twice");
    let per_run: Vec<(i64, i64)> = db
        .prepare("SELECT run, COUNT(*) FROM events WHERE kind = 'result' GROUP BY run ORDER BY run")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(per_run.len(), 3, "{per_run:?}");
    assert!(per_run.iter().all(|&(_, n)| n > 0), "{per_run:?}");
    let burns: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM events WHERE kind = 'result' AND stage = 0",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(burns, TASKS as i64);
    let finished: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM runs WHERE finished IS NOT NULL",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(finished, 1, "only the last run ended cleanly");
    let modules: i64 = db
        .query_row("SELECT COUNT(*) FROM modules", [], |row| row.get(0))
        .unwrap();
    assert_eq!(modules, 1);
}

#[test]
fn a_state_file_is_for_one_job_and_one_server() {
    let job = chain_job();
    let dir = job.dir.path();
    let out = dir.join("results.jsonl");
    let state = dir.join("job.state");
    let state_arg = state.to_str().unwrap();

    // A server holding the state file (waiting for remote workers that never come) locks it.
    let (mut holder, _, _) = server_process(
        &job.manifest,
        &["--listen", "127.0.0.1:0", "--state", state_arg],
    );
    let busy = server(&job, &out, &["--state", state_arg])
        .output()
        .unwrap();
    assert_eq!(busy.status.code(), Some(2));
    let message = String::from_utf8_lossy(&busy.stderr);
    assert!(
        message.contains("in use by another dipla-server"),
        "{message}"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();

    // Another job's journal is refused, naming the way out; --fresh starts over.
    let other = JobDir::new(
        &std::fs::read_to_string(&job.manifest)
            .unwrap()
            .replace("name = \"durable\"", "name = \"other\""),
    );
    let refused = server(&other, &out, &["--state", state_arg])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("holds another job"), "{message}");
    assert!(message.contains("--fresh"), "{message}");
    let fresh = server(&other, &out, &["--state", state_arg, "--fresh"])
        .output()
        .unwrap();
    succeeded(&fresh);
    assert_eq!(lines(&out), 2 * TASKS as usize + 1);

    // By default the journal lives beside the manifest, and a finished job run again is
    // written from it without running a task.
    let first = succeeded(&server(&job, &out, &[]).output().unwrap());
    assert!(first.contains(".dipla/job.state"), "{first}");
    let again = succeeded(&server(&job, &out, &[]).output().unwrap());
    // The reduce stage journals its inner tree values too, but only the job's results (one
    // line each) are counted as restored.
    let journaled: i64 = rusqlite::Connection::open(dir.join(".dipla/job.state"))
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM events WHERE kind = 'result'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let results = lines(&out);
    assert_eq!(results, 2 * TASKS as usize + 1);
    assert!(journaled > results as i64, "{journaled}");
    assert!(
        again.contains(&format!("resuming: {results} results restored")),
        "{again}"
    );
    assert!(
        again.contains(&format!(
            "({results} task results restored from the journal, 0 retries"
        )),
        "{again}"
    );
}

#[test]
fn an_untouched_results_file_passes_the_audit_and_an_edited_one_fails() {
    let job = chain_job();
    let dir = job.dir.path();
    let out = dir.join("results.jsonl");
    let state = dir.join("job.state");
    let state_arg = state.to_str().unwrap();
    succeeded(
        &server(&job, &out, &["--state", state_arg])
            .output()
            .unwrap(),
    );
    let audit = |results: &Path| audit(results, &state);
    let passed = audit(&out);
    let report = String::from_utf8_lossy(&passed.stdout);
    assert!(
        passed.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&passed.stderr)
    );
    let total = 2 * TASKS + 1;
    assert!(
        report.contains(&format!("{total} lines: {total} match a signed receipt")),
        "{report}"
    );
    assert!(
        report.contains("5 re-run in the sandbox; 0 problems"),
        "{report}"
    );

    // Change one squared output (line 1,503 is task 2 of the squares stage) and the sum.
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let square = TASKS as usize + 2;
    assert!(
        lines[square].contains(r#""output":4,"#),
        "{}",
        lines[square]
    );
    lines[square] = lines[square].replace(r#""output":4,"#, r#""output":5,"#);
    let last = lines.len() - 1;
    lines[last] = lines[last].replace(r#""output":"#, r#""output":1"#);
    let problems = audit_fails(&audit, &dir.join("edited.jsonl"), &lines);
    assert!(
        problems.contains(&format!("line {}: task 2 of stage \"squares\"", square + 1)),
        "{problems}"
    );
    assert!(
        problems.contains(&format!("line {}: task 0 of stage \"sum\"", last + 1)),
        "{problems}"
    );
}

#[test]
fn failures_are_audited_against_what_the_worker_signed() {
    let job = JobDir::new(
        r#"
        name = "odd"
        [modules]
        bed = "{testbed}"
        [[stages]]
        name = "halves"
        task = "bed.even_only"
        inputs = { range = { start = 0, end = 40 } }
        "#,
    );
    let dir = job.dir.path();
    let out = dir.join("results.jsonl");
    let state = dir.join("job.state");
    let state_arg = state.to_str().unwrap();
    let run = server(&job, &out, &["--state", state_arg])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1), "odd inputs fail");
    let audit = |results: &Path| audit(results, &state);
    let passed = audit(&out);
    let report = String::from_utf8_lossy(&passed.stdout);
    assert!(passed.status.success(), "{report}");
    assert!(
        report.contains("40 lines: 20 match a signed receipt, 20 failures (20 signed"),
        "{report}"
    );

    // Change what one failure says.
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert!(lines[1].contains("1 is odd"), "{}", lines[1]);
    lines[1] = lines[1].replace("1 is odd", "1 is not even");
    let problems = audit_fails(&audit, &dir.join("edited.jsonl"), &lines);
    assert!(
        problems.contains("line 2: task 1 of stage \"halves\": no worker signed this failure"),
        "{problems}"
    );
}

/// `dipla-server audit RESULTS --state STATE --sample 5`.
fn audit(results: &Path, state: &Path) -> Output {
    Command::new(bin("dipla-server"))
        .arg("audit")
        .arg(results)
        .arg("--state")
        .arg(state)
        .args(["--sample", "5"])
        .output()
        .unwrap()
}

/// Writes `lines` to `edited` and audits it with `audit`, which must fail: what it says.
fn audit_fails(audit: &dyn Fn(&Path) -> Output, edited: &Path, lines: &[String]) -> String {
    std::fs::write(edited, lines.join("\n") + "\n").unwrap();
    let failed = audit(edited);
    assert_eq!(failed.status.code(), Some(1));
    String::from_utf8_lossy(&failed.stderr).into_owned()
}
