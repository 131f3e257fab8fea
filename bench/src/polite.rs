//! `--cpu-percent`'s figure (issue 21): one `dipla-worker --cpu-percent N` on a CPU-bound job
//! (the testbed's `burn`, tasks of about a second), its task thread's CPU time read from
//! `/proc` over [`WINDOW`] of wall-clock time from its first task: the share of one core it
//! used, which should be N within 10 points. The integration test
//! `a_cpu_cap_keeps_the_task_threads_within_their_share` asserts only the upper bound (a
//! busy machine can lower the share, never raise it); this measures it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long the share is measured.
pub const WINDOW: Duration = Duration::from_secs(20);

/// Kills its processes when dropped.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The CPU time, in clock ticks (100 a second), of the threads of `pid` named `dipla-task-*`.
fn task_ticks(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            let name = &stat[stat.find('(')? + 1..stat.rfind(')')?];
            if !name.starts_with("dipla-task-") {
                return None;
            }
            let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
            // `fields` starts at field 3: utime is field 14, stime 15.
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// Runs the job with one worker capped at `percent` and returns the share of one core its
/// task thread used over [`WINDOW`], in percent.
///
/// # Errors
/// When a process cannot start or the worker never runs a task.
pub fn measure(target: &Path, wasm_dir: &Path, percent: u8) -> Result<f64> {
    let dir = tempfile::Builder::new().prefix("dipla-polite-").tempdir()?;
    // About 0.5 s of CPU per task here; twice as many as the window can use at the cap.
    let inputs: Vec<String> = (0..100).map(|i| format!("[{i}, 300000000]")).collect();
    let manifest = format!(
        "name = \"burn\"\n[modules]\nbed = \"{}\"\n[[stages]]\nname = \"burn\"\n\
         task = \"bed.burn\"\ninputs = {{ values = [{}] }}\n",
        wasm_dir.join("testbed.wasm").display(),
        inputs.join(", ")
    );
    let job = dir.path().join("job.toml");
    std::fs::write(&job, manifest)?;
    let mut server = Command::new(target.join("release/dipla-server"))
        .arg("run")
        .arg(&job)
        .args(["--listen", "127.0.0.1:0", "--local-workers", "0", "--fresh"])
        .arg("--out")
        .arg(dir.path().join("results.jsonl"))
        .arg("--state")
        .arg(dir.path().join("job.state"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start dipla-server")?;
    let stderr = server.stderr.take().context("piped")?;
    let mut children = Children(vec![server]);
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let Some(line) = lines.next() else {
            bail!("dipla-server ended before listening");
        };
        if let Some(url) = line?.strip_prefix("dipla-server: workers connect to ") {
            break url.trim().to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let worker = Command::new(target.join("release/dipla-worker"))
        .args(["--server", &url, "--cores", "1", "--no-bench"])
        .args(["--cpu-percent", &percent.to_string()])
        // The cap alone: at idle priority a busy machine would lower the share too.
        .args(["--priority", "normal", "--on-battery", "run"])
        .arg("--identity")
        .arg(dir.path().join("identity"))
        .arg("--no-disk-cache")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start dipla-worker")?;
    let pid = worker.id();
    children.0.push(worker);
    let waiting = Instant::now();
    while task_ticks(pid) == 0 {
        if waiting.elapsed() > Duration::from_secs(60) {
            bail!("the worker ran no task within a minute");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let (started, from) = (Instant::now(), task_ticks(pid));
    std::thread::sleep(WINDOW);
    let used = task_ticks(pid) - from;
    Ok(used as f64 / 100.0 / started.elapsed().as_secs_f64() * 100.0)
}
