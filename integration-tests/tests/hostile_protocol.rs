//! Hostile workers written from the protocol documentation alone ([`dipla_bench::attacker`],
//! shared with the `wipeout` benchmark like the attacks in [`dipla_bench::attacks`]): each
//! scenario plays one attack on the wire, asserts what the server did about it, and then real
//! `dipla-worker` processes finish the job with every output right.
//!
//! The first group are classes the server has long refused (forged and replayed proofs,
//! results for attempts never given or given twice, receipts that do not check, garbage,
//! floods, oversized frames, silence, stalling, lying). The second are attacks on the
//! failure model and the scheduler (issue 16): failures claimed in bulk, polite disconnects
//! with many cores claimed, claimed speed, oversized names, and all of them together.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dipla_server::{RunOptions, Summary};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{
    JobDir, PATIENCE, WorkerProcess, addr_of, burn_job, eventually, eventually_async, finish, http,
    remote_server_with, squares_job,
};
use dipla_bench::attacker::{self, Answer, Closed, Conn, Event, Key, Outcome, Receipt, Task};
use dipla_bench::attacks::{Tally, Wipeout, claim_failures, fast, quit_politely, serve};

/// The operator's API token of every server here.
const TOKEN: &str = "admin-secret";
/// The most tasks a new identity may hold in flight at once, over all its connections.
const NEW_IDENTITY_WINDOW: i64 = 64;
/// The cores the server believes a worker has at most (`--max-cores-per-worker`'s default).
const MAX_CORES_PER_WORKER: u64 = 256;
/// The longest worker name the server shows.
const MAX_NAME_CHARS: usize = 64;

/// A job being run by an in-process server, journaled, with the operator's API on.
struct Run {
    url: String,
    state: PathBuf,
    run: JoinHandle<(Summary, Vec<Value>)>,
    _job: JobDir,
}

impl Run {
    async fn start(job: JobDir, options: RunOptions) -> Self {
        let state = job.dir.path().join("job.state");
        let options = RunOptions {
            state: Some(state.clone()),
            admin_tokens: vec![TOKEN.into()],
            ..options
        };
        let (server, url) = remote_server_with(job.job(), options).await;
        Self {
            url,
            state,
            run: tokio::spawn(finish(server)),
            _job: job,
        }
    }

    /// Waits for the job to end; its summary and result lines.
    async fn finished(&mut self) -> (Summary, Vec<Value>) {
        match tokio::time::timeout(Duration::from_secs(180), &mut self.run).await {
            Ok(finished) => finished.unwrap(),
            Err(_) => panic!("the job never finished: {:#}", self.status().await),
        }
    }

    /// `n` honest one-core `dipla-worker` processes.
    fn honest(&self, n: usize) -> Vec<WorkerProcess> {
        (0..n)
            .map(|i| WorkerProcess::start(&self.url, &format!("honest-{i}")))
            .collect()
    }

    /// `GET /api/job`.
    async fn status(&self) -> Value {
        let url = self.url.clone();
        tokio::task::spawn_blocking(move || status(&url))
            .await
            .unwrap()
    }
}

/// `GET /api/job` of the server at `url` (blocking).
fn status(url: &str) -> Value {
    let (code, _, body) = http(&addr_of(url), "GET", "/api/job", Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Why the journal at `state` says `key` is untrusted, if it does.
fn untrusted(state: &Path, key: &Key) -> Option<String> {
    let db = rusqlite::Connection::open(state).unwrap();
    let record: String = db
        .query_row(
            "SELECT record FROM identities WHERE key = ?1",
            [key.public()],
            |row| row.get(0),
        )
        .ok()?;
    let record: Value = serde_json::from_str(&record).unwrap();
    record["untrusted"]
        .as_str()
        .filter(|reason| !reason.is_empty())
        .map(str::to_owned)
}

/// The journal's size on disk, its write-ahead log included.
fn journal_bytes(state: &Path) -> u64 {
    let wal = PathBuf::from(format!("{}-wal", state.display()));
    [state, wal.as_path()]
        .iter()
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|meta| meta.len())
        .sum()
}

/// Asserts that the job ended with no failed task and `count` lines, each with the output
/// `right` gives for its input.
fn assert_all_right(
    (summary, lines): &(Summary, Vec<Value>),
    count: usize,
    right: impl Fn(&Value) -> Value,
) {
    assert_eq!(summary.counts.failed, 0, "{summary}");
    assert!(summary.success(), "{summary}");
    assert_eq!(lines.len(), count, "{summary}");
    for line in lines {
        assert!(line.get("error").is_none(), "{line}");
        assert_eq!(line["output"], right(&line["input"]), "{line}");
    }
}

fn square(input: &Value) -> Value {
    let x = input.as_u64().unwrap();
    json!(x * x)
}

/// The testbed's `burn` returns its seed.
fn seed(input: &Value) -> Value {
    input[0].clone()
}

/// Waits until what the attackers did (`tally`) satisfies `done`, looking at each answer
/// or quit; fails naming `what` after [`PATIENCE`].
async fn acted(tally: &Tally, what: &str, done: impl Fn(&Tally) -> bool) {
    tokio::time::timeout(PATIENCE, tally.until(done))
        .await
        .unwrap_or_else(|_| panic!("never saw {what}"));
}

/// The next time the server closes `conn`, skipping what it says before.
async fn closed(mut conn: Conn) -> Closed {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Event::Closed(closed) = conn.next().await {
                return closed;
            }
        }
    })
    .await
    .expect("the server closes the connection")
}

/// Joins with a fresh key and waits for the first batch of tasks.
async fn join_with_tasks(url: &str, label: &str) -> (Conn, Key, Vec<Task>) {
    let key = Key::new(label);
    let mut conn = Conn::join(url, &key, label, 1).await.unwrap();
    let tasks = tokio::time::timeout(PATIENCE, async {
        loop {
            match conn.next().await {
                Event::Tasks(tasks) => return tasks,
                Event::Closed(closed) => panic!("{label}: closed before any task: {closed:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("tasks for a new worker");
    (conn, key, tasks)
}

fn right_answer(task: &Task) -> Answer {
    Answer {
        id: task.id,
        outcome: Outcome::Output(square(&task.value())),
        fuel: 1_000,
        micros: 100,
    }
}

fn assert_refused(closed: &Closed, what: &str) {
    assert!(
        !closed.reason.is_empty(),
        "{what}: closed without a reason: {closed:?}"
    );
}

// Classes already refused.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_protocol_joins_without_a_proof_or_a_hello_are_refused() {
    let mut run = Run::start(squares_job(50, ""), RunOptions::default()).await;
    let url = run.url.clone();

    // Claiming a key, proving with another.
    let forged = Conn::join_signing(&url, &Key::new("victim"), &Key::new("forger"), "f", 1).await;
    assert_refused(&forged.err().expect("a forged proof is refused"), "forged");

    // A proof seen on one connection, replayed on another.
    let honest = Key::new("honest");
    let challenged = async || {
        let mut conn = Conn::connect(&url).await.unwrap();
        conn.send_json(&attacker::wire::hello(&honest.public(), "h", 1))
            .await;
        let Event::Challenge(nonce) = conn.next().await else {
            panic!("no challenge")
        };
        (conn, nonce)
    };
    let (mut first, nonce) = challenged().await;
    let (mut second, _) = challenged().await;
    second.prove(&honest, &honest.public(), &nonce).await;
    assert_refused(&closed(second).await, "replayed proof");
    first.prove(&honest, &honest.public(), &nonce).await;
    assert!(
        matches!(first.next().await, Event::Welcome),
        "the proof is good on its own connection"
    );
    drop(first);

    // Garbage, a binary frame, or nothing at all instead of a hello.
    for frame in [
        Message::text("not json at all"),
        Message::binary(vec![0u8; 64]),
    ] {
        let mut conn = Conn::connect(&url).await.unwrap();
        conn.send_raw(frame).await;
        assert_refused(&closed(conn).await, "no hello");
    }
    let silent = Conn::connect(&url).await.unwrap();
    assert_refused(&closed(silent).await, "silent");

    let _honest = run.honest(1);
    assert_all_right(&run.finished().await, 50, square);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_protocol_violations_close_the_connection_with_a_reason() {
    let options = RunOptions {
        // A violator's tasks must come back because it was closed, not by speculation.
        speculate: false,
        ..RunOptions::default()
    };
    let mut run = Run::start(squares_job(500, ""), options).await;
    let url = run.url.clone();

    // An attempt never given.
    let (mut conn, key, tasks) = join_with_tasks(&url, "stranger").await;
    let mut forged = right_answer(&tasks[0]);
    forged.id = 987_654_321;
    conn.answer(&key, &[forged], Receipt::Right).await;
    assert_refused(&closed(conn).await, "an attempt never given");

    // An attempt answered twice, both correctly signed.
    let (mut conn, key, tasks) = join_with_tasks(&url, "twice").await;
    let answer = right_answer(&tasks[0]);
    conn.answer(&key, std::slice::from_ref(&answer), Receipt::Right)
        .await;
    conn.held.insert(tasks[0].id, tasks[0].clone());
    conn.answer(&key, &[answer], Receipt::Right).await;
    assert_refused(&closed(conn).await, "a duplicate result");

    // A receipt that does not check.
    let (mut conn, key, tasks) = join_with_tasks(&url, "unsigned").await;
    conn.answer(&key, &[right_answer(&tasks[0])], Receipt::Wrong)
        .await;
    assert_refused(&closed(conn).await, "a bad receipt");

    // Garbage and binary frames after joining.
    for frame in [
        Message::text("{\"nonsense\":"),
        Message::binary(vec![1u8; 10]),
    ] {
        let (mut conn, _, _) = join_with_tasks(&url, "garbage").await;
        conn.send_raw(frame).await;
        assert_refused(&closed(conn).await, "garbage");
    }

    // A flood of (empty, correctly signed) results: the server still admits workers after.
    let (mut flood, key, _) = join_with_tasks(&url, "flood").await;
    for _ in 0..5_000 {
        flood.answer(&key, &[], Receipt::Right).await;
    }
    let after = Key::new("after the flood");
    let joined = tokio::time::timeout(PATIENCE, Conn::join(&url, &after, "after", 1)).await;
    assert!(
        joined.expect("a join after the flood is answered").is_ok(),
        "the server admits workers after a flood"
    );
    drop(flood);

    let _honest = run.honest(1);
    assert_all_right(&run.finished().await, 500, square);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_protocol_a_frame_over_16_mib_is_refused_as_too_big() {
    let mut run = Run::start(squares_job(50, ""), RunOptions::default()).await;
    // A frame over the 16 MiB cap: "message too big". Its header says so; 64 KiB of the
    // payload follow, the rest is never sent (the server should not need it to judge).
    let (mut conn, _, _) = join_with_tasks(&run.url, "huge").await;
    conn.send_bytes(&attacker::frame_start(17 << 20, 64 << 10))
        .await;
    let huge = closed(conn).await;
    assert_eq!(huge.code, Some(1009), "{huge:?}");
    assert_refused(&huge, "an oversized frame");

    let _honest = run.honest(1);
    assert_all_right(&run.finished().await, 50, square);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_protocol_a_staller_answering_pings_loses_its_tasks_past_their_deadline() {
    let options = RunOptions {
        // Only the deadline can take its tasks back: no copies for idle workers, and a
        // heartbeat that would drop it within the job if it did not answer pings (short, yet
        // three beats long enough for a loaded machine to answer: at 200 ms a busy 2-core
        // host missed them and the staller was dropped as silent).
        speculate: false,
        heartbeat: Duration::from_millis(1_000),
        ..RunOptions::default()
    };
    let mut run = Run::start(squares_job(200, "deadline_secs = 1"), options).await;
    let (conn, key, tasks) = join_with_tasks(&run.url, "staller").await;
    let tally = Tally::default();
    tally.given(tasks.len());
    let stalled = tokio::spawn(async move { serve(conn, &key, &tally, |_| None).await });

    let _honest = run.honest(1);
    assert_all_right(&run.finished().await, 200, square);
    // It held its tasks to the end, connected: the job finished without it.
    let end = stalled.await.unwrap();
    assert!(
        matches!(end, Event::Goodbye(_)),
        "the staller was dropped: {end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_protocol_a_liar_is_untrusted_and_none_of_its_outputs_is_written() {
    let job = squares_job(300, "replicate = 1.0\n        quorum = 2");
    let mut run = Run::start(job, RunOptions::default()).await;
    let key = Arc::new(Key::new("liar"));
    let tally = Arc::new(Tally::default());
    let liar = {
        let (url, key, tally) = (run.url.clone(), key.clone(), tally.clone());
        tokio::spawn(async move {
            let conn = Conn::join(&url, &key, "liar", 1).await.unwrap();
            serve(conn, &key, &tally, |task| {
                let x = task.value().as_u64().unwrap();
                Some(Answer {
                    outcome: Outcome::Output(json!(x * x + 1)),
                    ..right_answer(task)
                })
            })
            .await
        })
    };
    acted(&tally, "the liar lie", |t| Tally::get(&t.answered) > 0).await;

    let _honest = run.honest(2);
    assert_all_right(&run.finished().await, 300, square);
    liar.await.unwrap();
    let reason = untrusted(&run.state, &key);
    assert!(reason.is_some(), "the liar is not marked untrusted");
}

// Attacks on the failure model and the scheduler (issue 16).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_protocol_claimed_failures_fail_no_task_and_mark_the_identity() {
    let mut run = Run::start(squares_job(500, ""), RunOptions::default()).await;
    let key = Arc::new(Key::new("claimer"));
    let tally = Arc::new(Tally::default());
    let claimers: Vec<_> = (0..3)
        .map(|_| claim_failures(&run.url, &key, 1, &tally))
        .collect();
    acted(&tally, "a failure claimed", |t| Tally::get(&t.answered) > 0).await;

    let _honest = run.honest(2);
    assert_all_right(&run.finished().await, 500, square);
    for claimer in claimers {
        claimer.await.unwrap();
    }
    let reason = untrusted(&run.state, &key);
    assert!(reason.is_some(), "the claimer is not marked untrusted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_protocol_polite_disconnects_fail_no_task_and_mark_the_identity() {
    let mut run = Run::start(squares_job(500, ""), RunOptions::default()).await;
    let key = Arc::new(Key::new("quitter"));
    let tally = Arc::new(Tally::default());
    let quitters: Vec<_> = (0..3)
        .map(|_| quit_politely(&run.url, &key, &tally, 500))
        .collect();
    acted(&tally, "a polite disconnect", |t| Tally::get(&t.quits) > 0).await;

    let _honest = run.honest(2);
    assert_all_right(&run.finished().await, 500, square);
    for quitter in quitters {
        quitter.await.unwrap();
    }
    let reason = untrusted(&run.state, &key);
    assert!(reason.is_some(), "the quitter is not marked untrusted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_protocol_claimed_speed_and_cores_buy_no_big_window() {
    let job = burn_job(600, 200_000);
    let manifest = std::fs::read_to_string(&job.manifest).unwrap();
    std::fs::write(
        &job.manifest,
        format!("{manifest}\n        deadline_secs = 1\n"),
    )
    .unwrap();
    let mut run = Run::start(job, RunOptions::default()).await;
    let key = Arc::new(Key::new("speedy"));
    let tally = Arc::new(Tally::default());
    // Three connections each answer their first 3 tasks right at once, claiming 1 µs, then
    // hold whatever they are given: what they hold is what the server chose to give.
    let speedy: Vec<_> = (0..3)
        .map(|_| {
            let (url, key, tally) = (run.url.clone(), key.clone(), tally.clone());
            tokio::spawn(async move {
                let conn = Conn::join(&url, &key, "speedy", 100_000).await.ok()?;
                let mut left = 3;
                let answer = |task: &Task| {
                    (left > 0).then(|| {
                        left -= 1;
                        fast(task, Outcome::Output(seed(&task.value())))
                    })
                };
                Some(serve(conn, &key, &tally, answer).await)
            })
        })
        .collect();
    let (answered, url) = (tally.clone(), run.url.clone());
    let records = tokio::task::spawn_blocking(move || {
        eventually("the speedy joined and answering", || {
            let records: Vec<Value> = status(&url)["workers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|w| w["name"] == "speedy" && !w["record"].is_null())
                .map(|w| w["record"].clone())
                .collect();
            (records.len() == 3 && Tally::get(&answered.answered) > 0).then_some(records)
        })
    })
    .await
    .unwrap();
    for record in records {
        let cores = record["cores"].as_u64().unwrap();
        assert!(
            cores <= MAX_CORES_PER_WORKER,
            "claimed cores taken: {record}"
        );
    }

    let _honest = run.honest(2);
    assert_all_right(&run.finished().await, 600, seed);
    for speedy in speedy {
        speedy.await.unwrap();
    }
    let most = tally.most.load(Ordering::SeqCst);
    assert!(
        most <= NEW_IDENTITY_WINDOW,
        "a new identity held {most} tasks at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_protocol_oversized_names_are_cut_short_in_the_api_and_the_journal() {
    const JOINS: usize = 30;
    let mut run = Run::start(squares_job(300, "deadline_secs = 1"), RunOptions::default()).await;
    let name = Arc::new("x".repeat(8 << 20));
    let welcomed = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tally = Arc::new(Tally::default());
    let holders: Vec<_> = (0..JOINS)
        .map(|i| {
            let (url, name, tally) = (run.url.clone(), name.clone(), tally.clone());
            let (welcomed, refused) = (welcomed.clone(), refused.clone());
            tokio::spawn(async move {
                let key = Key::new(&format!("long name {i}"));
                match Conn::join(&url, &key, &name, 1).await {
                    Ok(conn) => {
                        welcomed.fetch_add(1, Ordering::SeqCst);
                        serve(conn, &key, &tally, |_| None).await;
                    }
                    Err(closed) => refused.lock().unwrap().push(closed),
                }
            })
        })
        .collect();
    eventually_async("every join answered", async || {
        (Tally::get(&welcomed) as usize + refused.lock().unwrap().len() == JOINS).then_some(())
    })
    .await;
    for closed in refused.lock().unwrap().iter() {
        assert_refused(closed, "a long name");
    }
    let status = run.status().await;
    let names: Vec<&str> = status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len() as u64, Tally::get(&welcomed), "{names:?}");
    for name in names {
        let chars = name.chars().count();
        assert!(
            chars <= MAX_NAME_CHARS,
            "a name of {chars} characters shown"
        );
    }

    let _honest = run.honest(1);
    assert_all_right(&run.finished().await, 300, square);
    for holder in holders {
        holder.await.unwrap();
    }
    let bytes = journal_bytes(&run.state);
    assert!(bytes < 4 << 20, "the journal holds {bytes} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_protocol_one_identity_cannot_wipe_out_a_job() {
    const TASKS: usize = 2_000;
    let mut run = Run::start(squares_job(TASKS as u64, ""), RunOptions::default()).await;
    let key = Arc::new(Key::new("wipeout"));
    let tally = Arc::new(Tally::default());
    // Four connections of one key: two claim every task failed in 1 µs, two take tasks on
    // 64 claimed cores and leave politely, again and again.
    let wipeout = Wipeout::start(&run.url, &key, &tally);
    acted(&tally, "the attack under way", Wipeout::under_way).await;

    let _honest = run.honest(2);
    assert_all_right(&run.finished().await, TASKS, square);
    wipeout.ended().await.unwrap();
    let reason = untrusted(&run.state, &key);
    assert!(
        reason.is_some(),
        "the hostile identity is not marked untrusted"
    );
}
