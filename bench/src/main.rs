//! `cargo xtask bench` (`just bench`): Dipla's own benchmarks, printed as one table; with
//! `--peers` (`just bench-peers`), the same workloads on Ray and Dask beside them.
//!
//! Every job runs as a user runs it (see [`rig`]): `dipla-server run` with its defaults (a
//! durable journal, signed receipts) and separate `dipla-worker` processes of one core each,
//! on loopback. A job's time is the server's, from accepting workers to the last result
//! written: it includes the workers joining and loading the module. Each figure is the median
//! of several runs, after one run that warms the workers' module cache (the first run's time to
//! first result is reported apart, as the cold start).
//!
//! Also measured: the same Rust functions compiled natively and run on one and two threads, the
//! bytes on the wire, the processes' peak memory, speculative copies of straggling tasks, the
//! cost of each result check, and a job beside a hostile identity against the same job
//! without it (see [`wipeout`]).
//!
//! When Chromium is installed, the volunteer page in a browser against a native worker
//! follows, in a table of its own (see [`volunteers`]; `--only browser` for that alone).

mod peers;
mod polite;
mod python;
mod rig;
mod volunteers;
mod wipeout;
mod workloads;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use clap::Parser;
use dipla_sandbox::Sandbox;
use dipla_server::{RunOptions, Server, Summary, manifest};

use dipla_bench::machine;
use rig::{Rig, Run};
use workloads::{PYTHON_GUEST, RUST_GUESTS, Workload, thousands};

#[derive(Parser)]
#[command(about = "Dipla's benchmarks")]
struct Cli {
    /// Timed runs per figure (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Only this workload on `--workers` workers, one line (for profiling); `wipeout` is
    /// always on 2 workers, without and with an attacker beside them; `browser` is the
    /// volunteer page in headless Chromium against one native worker (its own table);
    /// `polite` is one worker at `--cpu-percent 50` on a CPU-bound job for 20 s, and the
    /// share of a core it used.
    #[arg(long, value_parser = ["tiny", "chained", "factorise", "pi", "py_tiny", "py_factorise", "wipeout", "browser", "polite"])]
    only: Option<String>,
    /// Workers for `--only`.
    #[arg(long, default_value_t = 2, requires = "only")]
    workers: usize,
    /// Also run the workloads on Ray and Dask (installed into a venv by
    /// bench/peers/setup.sh) and print them side by side.
    #[arg(long)]
    peers: bool,
    /// Timed runs per workload on each peer.
    #[arg(long, default_value_t = 3)]
    peer_runs: usize,
    /// Timed runs of the pure-Python pi on each peer (minutes each).
    #[arg(long, default_value_t = 1)]
    peer_pi_runs: usize,
    /// Run only this workload on the peers (repeatable; default: all of them).
    #[arg(long, value_parser = ["tiny", "chained", "factorise", "pi", "pi_numpy"])]
    peer_only: Vec<String>,
    /// Skip the stragglers and result-check rows.
    #[arg(long)]
    no_extras: bool,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench lives in the workspace")
        .to_owned()
}

/// The target directory, holding the Rust and Python guests the workloads run.
fn target_dir() -> Result<PathBuf> {
    let target = root().join("target");
    let rust = ["testbed", "factorise", "pi"].map(|guest| format!("{RUST_GUESTS}/{guest}.wasm"));
    for guest in rust.iter().map(String::as_str).chain([PYTHON_GUEST]) {
        let path = target.join(guest);
        ensure!(
            path.exists(),
            "{} is missing: run `cargo xtask build-guests`",
            path.display()
        );
    }
    Ok(target)
}

/// Where the Rust guests are.
fn wasm_dir() -> Result<PathBuf> {
    Ok(target_dir()?.join(RUST_GUESTS))
}

/// The median of `values` (the upper one of an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The medians of several runs of one workload on one worker count.
struct Figures {
    workload: Workload,
    secs: f64,
    /// Bytes both ways per task, modules excluded.
    wire_per_task: f64,
    /// Bytes both ways for the whole job, modules included.
    wire_per_job: f64,
    server_peak: f64,
    worker_peak: f64,
    to_first_result: f64,
    check: u64,
}

impl Figures {
    fn tasks_per_sec(&self) -> f64 {
        self.workload.tasks() as f64 / self.secs
    }
}

/// Runs `workload` on `workers` workers: one warm-up run, then `runs` timed ones.
fn measure(rig: &Rig, workload: Workload, workers: usize, runs: usize) -> Result<Figures> {
    let (manifest, stage) = workload.manifest(&target_dir()?);
    let extra: Vec<&str> = stage
        .map(|stage| vec!["--stage", stage])
        .unwrap_or_default();
    let once = || -> Result<(Run, u64)> {
        let run = rig.run(&manifest, workers, &extra)?;
        let check = workload.check(&run.results)?;
        ensure!(
            check == workload.expected(),
            "{}: check value {check}, expected {}",
            workload.name(),
            workload.expected()
        );
        ensure!(
            run.summary.tasks == workload.result_lines(),
            "{}: {} tasks, expected {}",
            workload.name(),
            run.summary.tasks,
            workload.result_lines()
        );
        Ok((run, check))
    };
    once().with_context(|| format!("warming up {}", workload.name()))?;
    let mut all = Vec::new();
    for _ in 0..runs {
        let (run, check) = once()?;
        eprintln!(
            "{} on {workers} worker(s): {} tasks in {:.3} s, the first after {:.3} s",
            workload.name(),
            run.summary.tasks,
            run.summary.elapsed_secs,
            run.summary.first_result_secs.unwrap_or(f64::NAN)
        );
        all.push((run, check));
    }
    let of = |f: &dyn Fn(&Run) -> f64| median(all.iter().map(|(run, _)| f(run)).collect());
    let tasks = workload.tasks() as f64;
    Ok(Figures {
        workload,
        secs: of(&|run| run.summary.elapsed_secs),
        wire_per_task: of(&|run| {
            let t = run.summary.traffic;
            (t.total() - t.module_bytes) as f64 / tasks
        }),
        wire_per_job: of(&|run| run.summary.traffic.total() as f64),
        server_peak: of(&|run| run.server_peak as f64),
        worker_peak: of(&|run| run.worker_peak as f64),
        to_first_result: of(&|run| run.to_first_result.map_or(f64::NAN, |d| d.as_secs_f64())),
        check: all[0].1,
    })
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / f64::from(1 << 20))
}

/// The median time of `workload` compiled natively on `threads` threads.
fn native(runs: usize, workload: Workload, threads: u64) -> f64 {
    median(
        (0..runs)
            .map(|_| {
                workload
                    .native(threads)
                    .map_or(f64::NAN, |(time, _)| time.as_secs_f64())
            })
            .collect(),
    )
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    ensure!(cli.runs > 0, "--runs must be at least 1");
    let root = root();
    eprintln!("machine: {}", machine());

    // A fresh rig: the first run of tiny is a cold start (nothing cached by the workers).
    let rig = Rig::new(&root)?;
    if cli.only.as_deref() == Some("wipeout") {
        let figures = wipeout::measure(&rig, &wasm_dir()?, cli.runs)?;
        println!(
            "wipeout on 2 workers: {:.3} s with one hostile identity beside them, {:.3} s \
             without (with / without {:.2}, target under 2; the attacker: {})",
            figures.with,
            figures.without,
            figures.ratio(),
            figures.attacker
        );
        return Ok(());
    }
    if cli.only.as_deref() == Some("browser") {
        let figures = volunteers::measure(&rig, &target_dir()?, cli.runs)?;
        println!(
            "Dipla in a browser on {} (load average before: {})\n",
            machine(),
            load_average()
        );
        print!("{}", figures.table());
        return Ok(());
    }
    if cli.only.as_deref() == Some("polite") {
        let share = polite::measure(&target_dir()?, &wasm_dir()?, 50)?;
        println!(
            "--cpu-percent 50 on a CPU-bound job: the task thread used {share:.1}% of one core \
             over {} s (target 50 within 10 points)",
            polite::WINDOW.as_secs()
        );
        return Ok(());
    }
    if let Some(name) = &cli.only {
        let workload = Workload::named(name).expect("clap checked the name");
        let figures = measure(&rig, workload, cli.workers, cli.runs)?;
        println!(
            "{} on {} worker(s): {:.3} s, {:.0} tasks/s, {:.1} B on the wire per task",
            workload.name(),
            cli.workers,
            figures.secs,
            figures.tasks_per_sec(),
            figures.wire_per_task
        );
        if workload == Workload::PyFactorise {
            let python = python::measure(&root, &target_dir()?, cli.runs)?;
            println!(
                "native python3 {}, one process: {:.3} s (ratio {:.2}); the sandbox alone, fuel \
                 on / off: {:.3} s / {:.3} s",
                python.native_version,
                python.native_secs,
                figures.secs / python.native_secs,
                python.sandbox_secs,
                python.unmetered_secs
            );
        }
        if workload.native(1).is_some() {
            let native = native(cli.runs, workload, 1);
            println!(
                "native Rust, 1 thread: {native:.3} s (ratio {:.2})",
                figures.secs / native
            );
        }
        return Ok(());
    }
    let (manifest, _) = Workload::Tiny.manifest(&target_dir()?);
    let cold = rig.run(&manifest, 2, &[])?;
    let cold_first = cold.to_first_result.map(|d| d.as_secs_f64() * 1000.0);
    let tiny = measure(&rig, Workload::Tiny, 2, cli.runs)?;
    let chained = measure(&rig, Workload::Chained, 2, cli.runs)?;
    let factorise = [
        measure(&rig, Workload::Factorise, 1, cli.runs)?,
        measure(&rig, Workload::Factorise, 2, cli.runs)?,
    ];
    let pi = [
        measure(&rig, Workload::Pi, 1, cli.runs)?,
        measure(&rig, Workload::Pi, 2, cli.runs)?,
    ];
    let py_tiny = measure(&rig, Workload::PyTiny, 2, cli.runs)?;
    let py_factorise = measure(&rig, Workload::PyFactorise, 1, cli.runs)?;
    let python = python::measure(&root, &target_dir()?, cli.runs)?;
    let wipeout = wipeout::measure(&rig, &wasm_dir()?, cli.runs)?;
    let native_factorise = [1, 2].map(|threads| native(cli.runs, Workload::Factorise, threads));
    let native_pi = [1, 2].map(|threads| native(cli.runs, Workload::Pi, threads));

    let peers = if cli.peers {
        let venv = peers::venv(&root)?;
        let mut reports = Vec::new();
        for runner in ["run_ray.py", "run_dask.py"] {
            reports.push(peers::run(
                &root,
                &venv,
                runner,
                cli.peer_runs,
                cli.peer_pi_runs,
                &cli.peer_only,
            )?);
        }
        reports
    } else {
        Vec::new()
    };

    let extras = if cli.no_extras {
        None
    } else {
        Some(extras(&rig, cli.runs)?)
    };
    let browser = if dipla_bench::browser::Browser::available() {
        Some(volunteers::measure(&rig, &target_dir()?, cli.runs)?)
    } else {
        None
    };

    println!(
        "Dipla benchmarks on {} (median of {} runs; 2 workers unless stated)",
        machine(),
        cli.runs
    );
    println!();
    println!("| benchmark | figure |");
    println!("|---|---|");
    for figures in [&tiny, &chained] {
        println!(
            "| {} | {:.0} tasks/s ({:.3} s) |",
            figures.workload.title(),
            figures.tasks_per_sec(),
            figures.secs
        );
    }
    for (workload, [one, two], [native1, native2]) in [
        (Workload::Factorise, &factorise, native_factorise),
        (Workload::Pi, &pi, native_pi),
    ] {
        println!(
            "| {}, native Rust, 1 thread / 2 threads | {native1:.3} s / {native2:.3} s \
             ({:.2}x: this machine's own gain from a second thread) |\n\
             | {}, 1 worker | {:.3} s (wasm/native {:.2}) |\n\
             | {}, 2 workers | {:.3} s ({:.2}x one worker) |",
            workload.title(),
            native1 / native2,
            workload.name(),
            one.secs,
            one.secs / native1,
            workload.name(),
            two.secs,
            one.secs / two.secs
        );
    }
    print_python(&tiny, &py_tiny, &py_factorise, &python);
    let payload = Workload::Tiny.payload_bytes();
    println!(
        "| wire bytes per tiny task, both ways, modules excluded | {:.1} B ({:.1} B of input and \
         output JSON, {:.1} B of protocol) |",
        tiny.wire_per_task,
        payload,
        tiny.wire_per_task - payload
    );
    let cold_traffic = cold.summary.traffic;
    println!(
        "| wire bytes per tiny job, both ways | {:.0} KB with workers already holding the \
         module; the first run: {:.0} KB, the {:.0} KB module sent {} times (once per worker) |",
        tiny.wire_per_job / 1000.0,
        cold_traffic.total() as f64 / 1000.0,
        cold_traffic.module_bytes as f64 / 1000.0 / cold_traffic.module_transfers.max(1) as f64,
        cold_traffic.module_transfers
    );
    println!(
        "| peak memory, tiny job | server {}, worker {} |",
        mib(tiny.server_peak),
        mib(tiny.worker_peak)
    );
    println!(
        "| peak memory, factorise on 2 workers | server {}, worker {} |",
        mib(factorise[1].server_peak),
        mib(factorise[1].worker_peak)
    );
    if let Some(cold) = cold_first {
        println!(
            "| from `dipla-server run` to first result (tiny) | {cold:.0} ms cold (module \
             compiled), {:.0} ms warm (module cached on disk) |",
            tiny.to_first_result * 1000.0
        );
    }
    println!(
        "| {} squares on 2 workers beside one hostile identity on 4 connections (failures \
         claimed, polite quits), no failure, no wrong output / without it | {:.3} s / {:.3} s \
         ({:.2}x; target under 2; the attacker: {}) |",
        thousands(wipeout::TASKS),
        wipeout.with,
        wipeout.without,
        wipeout.ratio(),
        wipeout.attacker
    );
    if let Some(extras) = extras {
        print!("{extras}");
    }
    println!();
    match browser {
        Some(browser) => print!("{}", browser.table()),
        None => println!(
            "(The browser volunteers' figures are skipped: Chromium is not installed; \
             `apt-get install chromium`, then `--only browser`.)"
        ),
    }
    if !peers.is_empty() {
        print_peers(&[&tiny, &chained, &factorise[1], &pi[1], &py_tiny], &peers)?;
    }
    Ok(())
}

/// `/proc/loadavg`'s three averages: how busy the machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|avg| avg.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// The Python rows: tasks written in Python, run as components (CPython in wasm).
fn print_python(
    tiny: &Figures,
    py_tiny: &Figures,
    py_factorise: &Figures,
    python: &python::Figures,
) {
    println!(
        "| {}, 2 workers | {:.0} tasks/s ({:.3} s; the Rust guest: {:.0} tasks/s) |",
        py_tiny.workload.title(),
        py_tiny.tasks_per_sec(),
        py_tiny.secs,
        tiny.tasks_per_sec()
    );
    println!(
        "| {}, 1 worker, default limits (fuel on) | {:.2} s (native python3 {}, one process: \
         {:.2} s; {:.2}x) |",
        py_factorise.workload.title(),
        py_factorise.secs,
        python.native_version,
        python.native_secs,
        py_factorise.secs / python.native_secs
    );
    println!(
        "| the same calls in the sandbox alone, one thread: fuel on / fuel off | {:.2} s / \
         {:.2} s ({:.2}x / {:.2}x native; fuel costs {:+.0}%, {:.1}e9 fuel/s) |",
        python.sandbox_secs,
        python.unmetered_secs,
        python.sandbox_secs / python.native_secs,
        python.unmetered_secs / python.native_secs,
        (python.sandbox_secs / python.unmetered_secs - 1.0) * 100.0,
        python.fuel as f64 / python.sandbox_secs / 1e9
    );
    println!(
        "| one tiny Python task in the sandbox: fresh instance, call, JSON both ways | {:.2} ms \
         (median of {} calls) |",
        python.per_task_secs * 1000.0,
        thousands(python.per_task_calls)
    );
    println!(
        "| the Python component ({:.1} MB): compiled once per worker / loaded compiled from \
         its disk cache | {:.1} s / {:.1} ms ({:.0} MB on disk) |",
        python.component_bytes as f64 / 1e6,
        python.compile_secs,
        python.load_secs * 1000.0,
        python.compiled_bytes as f64 / 1e6
    );
}

/// The side-by-side table; fails when any system's check value is wrong.
fn print_peers(dipla: &[&Figures], peers: &[peers::PeerReport]) -> Result<()> {
    println!();
    println!(
        "Dipla, {} on one machine, 2 workers each",
        peers
            .iter()
            .map(|peer| format!("{} {}", peer.system, peer.version))
            .collect::<Vec<_>>()
            .join(" and ")
    );
    println!();
    let mut header = "| workload | Dipla |".to_owned();
    let mut rule = "|---|---|".to_owned();
    for peer in peers {
        header += &format!(" {} | Dipla vs {} |", peer.system, peer.system);
        rule += "---|---|";
    }
    println!("{header}\n{rule}");
    let mut wrong = Vec::new();
    for figures in dipla {
        let workload = figures.workload;
        let throughput = matches!(
            workload,
            Workload::Tiny | Workload::Chained | Workload::PyTiny
        );
        let show = |secs: f64, tasks: u64| {
            if throughput {
                format!(
                    "{} tasks/s",
                    thousands((tasks as f64 / secs).round() as u64)
                )
            } else {
                format!("{secs:.2} s")
            }
        };
        let mut row = format!(
            "| {} | {} |",
            workload.title(),
            show(figures.secs, workload.tasks())
        );
        for peer in peers {
            match peer.workloads.get(workload.peer_name()) {
                Some(theirs) => {
                    if !theirs.ok || theirs.check != serde_json::json!(figures.check) {
                        wrong.push(format!(
                            "{} {}: check {} (Dipla {})",
                            peer.system,
                            workload.name(),
                            theirs.check,
                            figures.check
                        ));
                    }
                    let ratio =
                        theirs.secs / figures.secs * workload.tasks() as f64 / theirs.tasks as f64;
                    let versus = if ratio >= 1.0 {
                        format!("{ratio:.1}x faster")
                    } else {
                        format!("{:.1}x slower", 1.0 / ratio)
                    };
                    row += &format!(" {} | {versus} |", show(theirs.secs, theirs.tasks));
                }
                None => row += " - | - |",
            }
        }
        println!("{row}");
    }
    for peer in peers {
        if let Some(numpy) = peer.workloads.get("pi_numpy") {
            println!(
                "\n{} pi with numpy (vectorised, bit-identical): {:.2} s; cluster start-up {:.1} s \
                 (not counted); load average before: {}",
                peer.system, numpy.secs, peer.startup_secs, peer.loadavg_before
            );
        }
    }
    ensure!(
        wrong.is_empty(),
        "check values differ: {}",
        wrong.join("; ")
    );
    Ok(())
}

/// Speculative copies of straggling tasks, and the cost of each result check.
fn extras(rig: &Rig, runs: usize) -> Result<String> {
    let runtime = tokio::runtime::Runtime::new()?;
    let sandbox = Sandbox::new().context("cannot start the sandbox")?;
    let inputs: Vec<String> = (0..30).map(|i| format!("[{i}, 30000000]")).collect();
    let stragglers = format!(
        r#"name = "stragglers"
        [modules]
        m = "{}"
        [[stages]]
        name = "burn"
        task = "m.burn"
        inputs = {{ values = [{}] }}"#,
        wasm_dir()?.join("testbed.wasm").display(),
        inputs.join(", ")
    );
    let mut tails = [Vec::new(), Vec::new()];
    for (i, speculate) in [false, true].into_iter().enumerate() {
        for _ in 0..runs {
            let summary =
                runtime.block_on(run_throttled(&sandbox, &stragglers, &[1, 1, 8], speculate))?;
            tails[i].push(summary.elapsed.as_secs_f64());
            eprintln!("stragglers, speculation {speculate}: {summary}");
        }
    }
    let [without, with] = tails.map(median);
    let mut out = format!(
        "| 30 tasks of ~70 ms, 2 workers + 1 eight times slower, no speculation | {without:.2} s |\n\
         | the same with speculative copies | {with:.2} s ({:.1}x faster) |\n",
        without / with
    );

    // The cost of checking results: factorise on 2 workers, plain and with each check.
    let (plain, _) = Workload::Factorise.manifest(&target_dir()?);
    let mut base = None;
    for (name, extra) in [
        ("no checks", ""),
        ("replicate = 0.1", "replicate = 0.1"),
        ("replicate = \"adaptive\"", "replicate = \"adaptive\""),
        ("verify = \"m.check\"", "verify = \"m.check\""),
    ] {
        let manifest = format!("{plain}{extra}\n");
        let mut seconds = Vec::new();
        for _ in 0..runs {
            let run = rig.run(&manifest, 2, &[])?;
            seconds.push(run.summary.elapsed_secs);
        }
        let seconds = median(seconds);
        match base {
            None => base = Some(seconds),
            Some(plain) => {
                out += &format!(
                    "| factorise 2,000 with {name} | {seconds:.3} s ({:+.0}% time) |\n",
                    (seconds / plain - 1.0) * 100.0
                )
            }
        }
    }
    Ok(out)
}

/// Runs `text` on a server in this process and worker processes, one per entry of `throttles`
/// (1: full speed; n: n times slower).
async fn run_throttled(
    sandbox: &Sandbox,
    text: &str,
    throttles: &[u32],
    speculate: bool,
) -> Result<Summary> {
    let path = root().join("bench/job.toml");
    let job = manifest::parse(text, &path, sandbox)?;
    let options = RunOptions {
        listen: Some("127.0.0.1:0".parse()?),
        local_workers: 0,
        speculate,
        min_workers: throttles.len(),
        ..RunOptions::default()
    };
    let server = Server::bind(job, options).await?;
    let url = server.worker_url()?;
    let worker = root().join("target/release/dipla-worker");
    let identities = tempfile::tempdir()?;
    let mut children = Vec::new();
    for (i, throttle) in throttles.iter().enumerate() {
        let child = std::process::Command::new(&worker)
            .args(["--server", &url, "--cores", "1", "--no-bench"])
            .args([
                "--name",
                &format!("w{i}"),
                "--throttle",
                &throttle.to_string(),
            ])
            .arg("--identity")
            .arg(identities.path().join(format!("w{i}")))
            .arg("--cache-dir")
            .arg(identities.path().join("cache"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("cannot start dipla-worker")?;
        children.push(child);
    }
    let summary = server.run(std::io::sink()).await;
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let summary = summary?;
    ensure!(summary.success(), "the benchmark job failed: {summary}");
    Ok(summary)
}
