//! A polite worker (issue 21): its task threads at idle priority as `/proc` shows them,
//! `--cpu-percent` keeping its share of the CPU, and pauses (a fake battery, a fake busy
//! machine, through the worker's test hooks) that stop its tasks and tell the server, which
//! gives them to another worker at once; against a server that does not understand pauses,
//! the worker disconnects while paused and comes back when it resumes.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dipla_protocol::{ServerMessage, Welcome, WorkerMessage};
use dipla_server::{Handle, RunOptions};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{
    PATIENCE, QUIET, Said, WorkerProcess, bin, burn_job, burn_job_of, eventually, eventually_async,
    finish, remote_server, remote_server_with,
};

/// One thread of a process, as `/proc/PID/task/TID/stat` shows it.
#[derive(Debug)]
struct Thread {
    name: String,
    /// Field 41: 0 `SCHED_OTHER`, 5 `SCHED_IDLE`.
    policy: u32,
    /// Field 19.
    nice: i32,
    /// Fields 14 and 15, in clock ticks (100 a second).
    cpu_ticks: u64,
}

/// The task threads (`dipla-task-N`) of process `pid`.
fn task_threads(pid: u32) -> Vec<Thread> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            let name = stat[stat.find('(')? + 1..stat.rfind(')')?].to_owned();
            let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
            // `fields` starts at field 3.
            let field = |n: usize| fields.get(n - 3).copied().unwrap_or_default();
            Some(Thread {
                name,
                policy: field(41).parse().ok()?,
                nice: field(19).parse().ok()?,
                cpu_ticks: field(14).parse::<u64>().ok()? + field(15).parse::<u64>().ok()?,
            })
        })
        .filter(|thread| thread.name.starts_with("dipla-task-"))
        .collect()
}

/// A one-core `dipla-worker` with `args` and only the environment `env` of the suite's
/// settings (so that its defaults are the program's own).
fn worker(url: &str, name: &str, args: &[&str], env: &[(&str, &str)]) -> WorkerProcess {
    let cache = tempfile::tempdir().unwrap();
    let mut command = Command::new(bin("dipla-worker"));
    command
        .args([
            "--server",
            url,
            "--name",
            name,
            "--no-bench",
            "--cores",
            "1",
        ])
        .arg("--cache-dir")
        .arg(cache.path())
        .arg("--identity")
        .arg(cache.path().join("identity"))
        .args(args)
        .env_remove("DIPLA_PRIORITY")
        .env_remove("DIPLA_CPU_PERCENT")
        .env_remove("DIPLA_PAUSE_WHEN_BUSY")
        .env_remove("DIPLA_HOURS")
        .env("DIPLA_ON_BATTERY", "run")
        .env("RUST_LOG", "warn,dipla_worker=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let said = Said::new(child.stderr.take().unwrap());
    WorkerProcess { child, cache, said }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_threads_run_at_idle_priority_unless_told_otherwise() {
    let job = burn_job(4, 50_000_000);
    let (server, url) = remote_server(job.job()).await;
    let run = tokio::spawn(finish(server));
    let mut polite = worker(&url, "polite", &[], &[]);
    let normal = worker(&url, "normal", &["--priority", "normal"], &[]);
    let applied = polite.said.line("task threads ").await;
    // Seen from outside while the job runs.
    let idle = eventually("the polite worker's task thread", || {
        task_threads(polite.child.id()).pop()
    });
    let plain = eventually("the normal worker's task thread", || {
        task_threads(normal.child.id()).pop()
    });
    eprintln!("policy seen: polite {idle:?}, normal {plain:?}; the worker said: {applied}");
    assert!(
        idle.policy == 5 || idle.nice == 19,
        "SCHED_IDLE (5) or nice 19: {idle:?}"
    );
    if idle.policy == 5 {
        assert!(applied.contains("SCHED_IDLE"), "{applied}");
    } else {
        assert!(applied.contains("nice 19"), "{applied}");
    }
    assert_eq!((plain.policy, plain.nice), (0, 0), "--priority normal");
    let (summary, lines) = tokio::time::timeout(PATIENCE, run).await.unwrap().unwrap();
    assert!(summary.success(), "{summary}");
    assert_eq!(lines.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_cap_keeps_the_task_threads_within_their_share() {
    // Tasks of about a second of CPU each: the cap works inside them.
    let job = burn_job(20, 400_000_000);
    let (server, url) = remote_server(job.job()).await;
    let _run = tokio::spawn(finish(server));
    let capped = worker(
        &url,
        "capped",
        &["--cpu-percent", "50", "--priority", "normal"],
        &[],
    );
    let pid = capped.child.id();
    let cpu = || -> u64 { task_threads(pid).iter().map(|t| t.cpu_ticks).sum() };
    let started = eventually("a task running", || (cpu() > 0).then(Instant::now));
    let from = cpu();
    // Wait for 1.5 s of CPU, however long a busy machine makes that take.
    let ticks = eventually("1.5 s of task CPU time", || {
        let used = cpu() - from;
        (used >= 150).then_some(used)
    });
    let share = ticks as f64 / 100.0 / started.elapsed().as_secs_f64();
    eprintln!(
        "--cpu-percent 50: the task thread used {:.1}% of one core",
        share * 100.0
    );
    // A busy machine can only lower the share; the cap must never let it rise above.
    assert!(share <= 0.60, "{share}");
}

/// Another program's load, as a fake `/proc/stat` the worker reads (its test hook): a named
/// pipe that hands each read the next snapshot, the counters grown by [`FakeLoad::STEP`]
/// ticks since the last, `busy` percent of them busy. Driven by the worker's reads, not by
/// a clock: every sample sees the load last set, however slowly a busy machine samples.
struct FakeLoad {
    path: PathBuf,
    busy: Arc<std::sync::atomic::AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl FakeLoad {
    /// Ticks between two snapshots: so many that the worker's own CPU time, which it takes
    /// off the busy ones, is lost in them.
    const STEP: u64 = 1_000_000;

    fn start(path: PathBuf) -> Self {
        let made = Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(made.success(), "mkfifo {}", path.display());
        let busy = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (share, stopped, pipe) = (busy.clone(), stop.clone(), path.clone());
        std::thread::spawn(move || {
            let (mut user, mut idle) = (0u64, 0u64);
            // Opening the pipe to write waits for a reader: one snapshot per read.
            while let Ok(mut reader) = std::fs::OpenOptions::new().write(true).open(&pipe) {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let busy = share.load(Ordering::Relaxed);
                user += busy * Self::STEP / 100;
                idle += (100 - busy) * Self::STEP / 100;
                // A reader gone before it read is only a sample lost.
                let _ = writeln!(reader, "cpu  {user} 0 0 {idle} 0 0 0 0 0 0");
            }
        });
        Self { path, busy, stop }
    }

    fn set(&self, percent: u64) {
        self.busy.store(percent, Ordering::Relaxed);
    }
}

impl Drop for FakeLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the thread if it waits for a reader (a read end opened without waiting for
        // a writer); it then sees `stop` and ends.
        let _ = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path);
    }
}

/// A fake mains supply under `dir`, online or not.
fn mains(dir: &Path, online: bool) {
    let ac = dir.join("AC");
    std::fs::create_dir_all(&ac).unwrap();
    std::fs::write(ac.join("type"), "Mains\n").unwrap();
    let tmp = ac.join("online.tmp");
    std::fs::write(&tmp, if online { "1\n" } else { "0\n" }).unwrap();
    std::fs::rename(tmp, ac.join("online")).unwrap();
}

/// The record of the worker named `name`, once it has one.
fn record(handle: &Handle, name: &str) -> Option<(u64, dipla_server::WorkerRecord)> {
    handle
        .workers()
        .into_iter()
        .find(|worker| worker.name == name)
        .and_then(|worker| Some((worker.id, worker.record?)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_worker_s_tasks_go_to_an_idle_worker_at_once() {
    // Two long tasks for the worker that will pause, short ones for the other, which is
    // idle by the time the first pauses: the long ones must go to it at once, not at a
    // deadline.
    const LONG: u64 = 400_000_000;
    let job = burn_job_of((0..20).map(|i| if i < 2 { LONG } else { 5_000_000 }));
    let options = RunOptions {
        // A copy of the paused worker's tasks would hide whether they were given back.
        speculate: false,
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let handle = server.handle();
    let run = tokio::spawn(finish(server));
    let fake = tempfile::tempdir().unwrap();
    mains(fake.path(), true);
    let mut pauser = worker(
        &url,
        "pauser",
        &["--priority", "normal"],
        &[
            ("DIPLA_ON_BATTERY", "pause"),
            ("DIPLA_POWER_SUPPLY_DIR", fake.path().to_str().unwrap()),
            ("DIPLA_PAUSE_SAMPLE_MS", "100"),
        ],
    );
    let (pauser_id, _) = eventually("the pauser holding the two long tasks", || {
        record(&handle, "pauser").filter(|(_, record)| record.running == 2)
    });
    let _other = worker(&url, "other", &["--priority", "normal"], &[]);
    let (other_id, _) = eventually("the other worker done with the short tasks", || {
        record(&handle, "other").filter(|(_, record)| record.results >= 18 && record.running == 0)
    });

    let unplugged = Instant::now();
    mains(fake.path(), false);
    let paused = eventually("the server seeing the pause", || {
        record(&handle, "pauser")
            .filter(|(_, record)| record.paused)
            .map(|_| Instant::now())
    });
    let reassigned = eventually("the long tasks given to the idle worker", || {
        (handle.running_on(other_id) == 2).then(Instant::now)
    });
    eprintln!(
        "pause on battery: seen by the server {:.0} ms after unplugging (sampled every          100 ms); both tasks given to the idle worker {:.1} ms after that",
        (paused - unplugged).as_secs_f64() * 1000.0,
        (reassigned - paused).as_secs_f64() * 1000.0
    );
    assert!(
        reassigned - paused < Duration::from_secs(1),
        "within a second, not at a deadline"
    );
    assert_eq!(handle.running_on(pauser_id), 0);
    pauser.said.line("pausing").await;
    let (summary, lines) = tokio::time::timeout(PATIENCE, run).await.unwrap().unwrap();
    assert!(summary.success(), "{summary}");
    assert_eq!(lines.len(), 20);
    for line in &lines {
        assert_eq!(line["output"], line["input"][0], "{line}");
    }
    assert_eq!(summary.counts.failed, 0);
    assert_eq!(summary.counts.requeued, 2, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_paused_on_battery_or_by_a_busy_machine_resumes_and_works_again() {
    // Tasks of about 50 ms: a worker holds a few at a time and answers often.
    let job = burn_job(400, 25_000_000);
    let options = RunOptions {
        // Copies of the paused worker's tasks would hide whether they were given back.
        speculate: false,
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let handle = server.handle();
    let run = tokio::spawn(finish(server));
    let fake = tempfile::tempdir().unwrap();
    let power = fake.path().join("power_supply");
    mains(&power, true);
    let load = FakeLoad::start(fake.path().join("stat"));
    let mut pauser = worker(
        &url,
        "pauser",
        &[
            "--priority",
            "normal",
            "--on-battery",
            "pause",
            "--pause-when-busy",
            "50",
        ],
        &[
            ("DIPLA_POWER_SUPPLY_DIR", power.to_str().unwrap()),
            (
                "DIPLA_PROC_STAT",
                fake.path().join("stat").to_str().unwrap(),
            ),
            ("DIPLA_PAUSE_SAMPLE_MS", "100"),
        ],
    );
    let _other = worker(&url, "other", &["--priority", "normal"], &[]);

    let (pauser_id, _) = eventually("the pauser holding tasks", || {
        record(&handle, "pauser").filter(|(_, record)| record.running > 0)
    });
    eventually("the other worker holding tasks", || {
        record(&handle, "other").filter(|(_, record)| record.running > 0)
    });

    // Unplugged: it pauses, and its tasks go to the other worker.
    mains(&power, false);
    pauser.said.line("pausing").await;
    eventually("the server seeing the pause", || {
        record(&handle, "pauser").filter(|(_, record)| record.paused)
    });
    assert_eq!(
        handle.running_on(pauser_id),
        0,
        "it holds nothing while paused"
    );
    eventually("its tasks given to the other worker", || {
        (handle.lock().coordinator.queued() == 0).then_some(())
    });
    assert!(
        crate::support::seen_while_quiet(|| (handle.running_on(pauser_id) > 0).then_some(()))
            .is_none(),
        "a paused worker gets no work"
    );

    // Plugged in: it resumes and works again.
    let results = record(&handle, "pauser").unwrap().1.results;
    mains(&power, true);
    pauser.said.line("resuming").await;
    eventually("the pauser working again", || {
        record(&handle, "pauser").filter(|(_, record)| !record.paused && record.results > results)
    });

    // Another program busy: it pauses after two samples over 50%, and resumes after five
    // well below.
    load.set(90);
    let line = pauser.said.line("pausing").await;
    assert!(line.contains("other programs use"), "{line}");
    eventually("the server seeing the busy pause", || {
        record(&handle, "pauser").filter(|(_, record)| record.paused)
    });
    load.set(5);
    pauser.said.line("resuming").await;
    let results = record(&handle, "pauser").unwrap().1.results;
    eventually("the pauser working again after the load", || {
        record(&handle, "pauser").filter(|(_, record)| !record.paused && record.results > results)
    });

    let (summary, lines) = tokio::time::timeout(PATIENCE, run).await.unwrap().unwrap();
    assert!(summary.success(), "{summary}");
    assert_eq!(lines.len(), 400);
    for line in &lines {
        assert_eq!(line["output"], line["input"][0], "{line}");
    }
    assert_eq!(summary.counts.failed, 0);
    assert!(summary.counts.requeued >= 1, "{summary}");
    assert_eq!(
        summary.stats.workers_joined, 2,
        "pausing kept the connection: nobody joined again"
    );
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Plays an older server's handshake on a new connection: hello, challenge, proof, and a
/// welcome that does not mention pauses.
async fn old_server_welcomes(listener: &TcpListener) -> Socket {
    let (stream, _) = tokio::time::timeout(PATIENCE, listener.accept())
        .await
        .expect("the worker connects")
        .unwrap();
    let mut socket = tokio_tungstenite::accept_async(stream).await.unwrap();
    let next = async |socket: &mut Socket| loop {
        let frame = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str::<WorkerMessage>(&text).unwrap();
        }
    };
    assert!(matches!(next(&mut socket).await, WorkerMessage::Hello(_)));
    let challenge = ServerMessage::Challenge {
        nonce: dipla_protocol::Nonce([7; 32]),
    };
    let text = serde_json::to_string(&challenge).unwrap();
    socket.send(Message::text(text)).await.unwrap();
    assert!(matches!(
        next(&mut socket).await,
        WorkerMessage::Proof { .. }
    ));
    let welcome = ServerMessage::Welcome(Welcome {
        protocol: dipla_protocol::PROTOCOL_VERSION,
        worker: 1,
        heartbeat_ms: None,
        job: Some("job".into()),
        pause: false,
    });
    let text = serde_json::to_string(&welcome).unwrap();
    // What an older server sends: no `pause` field at all.
    assert!(!text.contains("pause"));
    socket.send(Message::text(text)).await.unwrap();
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_an_older_server_a_paused_worker_stays_away_until_it_resumes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let fake = tempfile::tempdir().unwrap();
    mains(fake.path(), false);
    let mut paused = worker(
        &url,
        "paused",
        &["--priority", "normal", "--on-battery", "pause"],
        &[
            ("DIPLA_POWER_SUPPLY_DIR", fake.path().to_str().unwrap()),
            ("DIPLA_PAUSE_SAMPLE_MS", "50"),
        ],
    );
    // On battery from the start: it joins, learns the server cannot be told, and leaves
    // without a pause message (which that server would take for a violation).
    let mut socket = old_server_welcomes(&listener).await;
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => panic!("the worker sent {text}"),
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the paused worker closed the connection");
    paused.said.line("disconnected while paused").await;
    // It stays away while on battery...
    let back = tokio::time::timeout(QUIET, listener.accept()).await;
    assert!(back.is_err(), "a paused worker came back");
    // ...and comes back once plugged in, to stay until the server is done with it.
    mains(fake.path(), true);
    let mut socket = old_server_welcomes(&listener).await;
    let goodbye = ServerMessage::Goodbye {
        reason: "job finished".into(),
        rejoin: false,
    };
    socket
        .send(Message::text(serde_json::to_string(&goodbye).unwrap()))
        .await
        .unwrap();
    eventually_async("the worker's exit", async || {
        paused.child.try_wait().unwrap()
    })
    .await
    .success()
    .then_some(())
    .expect("it exits as told");
}
