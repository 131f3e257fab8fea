//! `cargo xtask bench` (or `just bench`): Dipla's own benchmarks, printed as one table.
//!
//! - tiny tasks: 20,000 calls of `square` (x * x) on 2 local workers, end to end;
//! - factorise: 2,000 numbers near 10^12 by trial division on 1 and 2 local workers, against
//!   the same Rust function compiled natively and run on one thread.
//!
//! - stragglers: 30 tasks of ~70 ms on three `dipla-worker` processes, one of them 8 times
//!   slower (`--throttle 8`), with and without speculative copies of its tasks.
//!
//! Each figure is the median of several runs. Times are from the server accepting workers to
//! the last result written, so they include workers connecting, fetching and compiling the
//! module.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::Parser;
use dipla_sandbox::Sandbox;
use dipla_server::{RunOptions, Server, Summary, manifest};

#[derive(Parser)]
#[command(about = "Dipla's benchmarks")]
struct Cli {
    /// Runs per figure (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Only the tiny-task benchmark (for profiling).
    #[arg(long)]
    tiny_only: bool,
    /// Tiny tasks per run.
    #[arg(long, default_value_t = 20_000)]
    tiny_tasks: u64,
}

const FACTORISE_START: u64 = 1_000_000_000_000;
const FACTORISE_COUNT: u64 = 2_000;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench lives in the workspace")
        .to_owned()
}

fn wasm(name: &str) -> Result<PathBuf> {
    let path = root().join(format!("target/wasm32-unknown-unknown/release/{name}.wasm"));
    ensure!(
        path.exists(),
        "{} is missing: run `cargo xtask build-guests`",
        path.display()
    );
    Ok(path)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs `text` on worker processes, one per entry of `throttles` (1: full speed).
async fn run_on_processes(
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
        ..RunOptions::default()
    };
    let server = Server::bind(job, options).await?;
    let url = server.worker_url()?;
    let worker = root().join("target/release/dipla-worker");
    ensure!(
        worker.exists(),
        "{} is missing: run `cargo build --release`",
        worker.display()
    );
    let mut children = Vec::new();
    // Each worker its own volunteer, whose identity lives only as long as the run.
    let identities = std::env::temp_dir().join(format!("dipla-bench-{}", std::process::id()));
    for (i, throttle) in throttles.iter().enumerate() {
        let identity = identities.join(format!("w{i}"));
        let child = std::process::Command::new(&worker)
            .args([
                "--server",
                &url,
                "--cores",
                "1",
                "--no-bench",
                "--no-disk-cache",
            ])
            .args([
                "--name",
                &format!("w{i}"),
                "--throttle",
                &throttle.to_string(),
                "--identity",
                &identity.to_string_lossy(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("cannot start dipla-worker")?;
        children.push(child);
    }
    let summary = server.run(std::io::sink()).await;
    let _ = std::fs::remove_dir_all(&identities);
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let summary = summary?;
    ensure!(summary.success(), "the benchmark job failed: {summary}");
    Ok(summary)
}

async fn run_job(sandbox: &Sandbox, text: &str, workers: usize) -> Result<Summary> {
    let path = root().join("bench/job.toml");
    let job = manifest::parse(text, &path, sandbox)?;
    let options = RunOptions {
        local_workers: workers,
        ..RunOptions::default()
    };
    let server = Server::bind(job, options).await?;
    let summary = server.run(std::io::sink()).await?;
    ensure!(summary.success(), "the benchmark job failed: {summary}");
    Ok(summary)
}

/// A one-stage job applying guest `guest`'s task `task` to the integers `start..end`.
fn range_job(guest: &str, task: &str, start: u64, end: u64) -> Result<String> {
    Ok(format!(
        r#"name = "{task}"
        [modules]
        m = "{}"
        [[stages]]
        name = "{task}"
        task = "m.{task}"
        inputs = {{ range = {{ start = {start}, end = {end} }} }}"#,
        wasm(guest)?.display()
    ))
}

fn native_factorise() -> Duration {
    let started = Instant::now();
    let mut sum = 0u64;
    for n in FACTORISE_START..FACTORISE_START + FACTORISE_COUNT {
        sum = sum.wrapping_add(
            factorise::factorise(std::hint::black_box(n))
                .iter()
                .sum::<u64>(),
        );
    }
    std::hint::black_box(sum);
    started.elapsed()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    format!(
        "{cpu}, {cores} cores, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    ensure!(cli.runs > 0, "--runs must be at least 1");
    let sandbox = Sandbox::new().context("cannot start the sandbox")?;
    eprintln!("machine: {}", machine());

    let tiny = range_job("testbed", "square", 0, cli.tiny_tasks)?;
    let mut rates = Vec::new();
    let mut bytes_per_task = 0.0;
    for _ in 0..cli.runs {
        let summary = run_job(&sandbox, &tiny, 2).await?;
        rates.push(summary.tasks as f64 / summary.elapsed.as_secs_f64());
        bytes_per_task = (summary.stats.bytes_sent + summary.stats.bytes_received
            - summary.stats.module_bytes) as f64
            / summary.tasks as f64;
        eprintln!("tiny: {summary}");
    }

    if cli.tiny_only {
        println!(
            "tiny tasks: {:.0} tasks/s, {bytes_per_task:.1} B on the wire per task",
            median(rates)
        );
        return Ok(());
    }
    let factorise = range_job(
        "factorise",
        "factorise",
        FACTORISE_START,
        FACTORISE_START + FACTORISE_COUNT,
    )?;
    let mut times = [Vec::new(), Vec::new()];
    let mut first_results = Vec::new();
    for (i, workers) in [1, 2].into_iter().enumerate() {
        for _ in 0..cli.runs {
            let summary = run_job(&sandbox, &factorise, workers).await?;
            times[i].push(summary.elapsed.as_secs_f64());
            if let Some(first) = summary.first_result {
                first_results.push(first.as_secs_f64() * 1000.0);
            }
            eprintln!("factorise, {workers} worker(s): {summary}");
        }
    }
    let native = median(
        (0..cli.runs)
            .map(|_| native_factorise().as_secs_f64())
            .collect(),
    );
    let [one, two] = times.map(median);

    let inputs: Vec<String> = (0..30).map(|i| format!("[{i}, 30000000]")).collect();
    let stragglers = format!(
        r#"name = "stragglers"
        [modules]
        m = "{}"
        [[stages]]
        name = "burn"
        task = "m.burn"
        inputs = {{ values = [{}] }}"#,
        wasm("testbed")?.display(),
        inputs.join(", ")
    );
    let mut tails = [Vec::new(), Vec::new()];
    for (i, speculate) in [false, true].into_iter().enumerate() {
        for _ in 0..cli.runs {
            let summary = run_on_processes(&sandbox, &stragglers, &[1, 1, 8], speculate).await?;
            tails[i].push(summary.elapsed.as_secs_f64());
            eprintln!("stragglers, speculation {speculate}: {summary}");
        }
    }
    let [without, with] = tails.map(median);

    // The cost of checking results: factorise on 2 local workers, plain and with each check.
    let checked = |extra: &str| format!("{factorise}\n{extra}");
    let mut check_rows = Vec::new();
    for (name, extra) in [
        ("no checks", ""),
        ("replicate = 0.1", "replicate = 0.1"),
        ("replicate = \"adaptive\"", "replicate = \"adaptive\""),
        ("verify = \"m.check\"", "verify = \"m.check\""),
    ] {
        let mut seconds = Vec::new();
        let mut replicas = Vec::new();
        for _ in 0..cli.runs {
            let summary = run_job(&sandbox, &checked(extra), 2).await?;
            seconds.push(summary.elapsed.as_secs_f64());
            replicas.push(summary.counts.replicas as f64 / summary.tasks as f64);
            eprintln!("checks, {name}: {summary}");
        }
        check_rows.push((name, median(seconds), median(replicas)));
    }

    println!(
        "Dipla benchmarks on {} (median of {} runs)",
        machine(),
        cli.runs
    );
    println!();
    println!("| benchmark | figure |");
    println!("|---|---|");
    println!(
        "| tiny tasks ({} x square, 2 local workers) | {:.0} tasks/s |",
        cli.tiny_tasks,
        median(rates)
    );
    println!(
        "| wire bytes per tiny task (both directions, module excluded) | {bytes_per_task:.1} B |"
    );
    println!("| factorise 2,000 near 10^12, native, 1 thread | {native:.3} s |");
    println!(
        "| factorise, 1 worker | {one:.3} s (wasm/native {:.2}) |",
        one / native
    );
    println!(
        "| factorise, 2 workers | {two:.3} s (speed-up over 1 worker {:.2}x) |",
        one / two
    );
    if !first_results.is_empty() {
        println!(
            "| first result after start (factorise) | {:.1} ms |",
            median(first_results)
        );
    }
    println!(
        "| 30 tasks of ~70 ms, 2 workers + 1 eight times slower, no speculation | {without:.2} s |"
    );
    println!(
        "| the same with speculative copies | {with:.2} s ({:.1}x faster) |",
        without / with
    );
    let plain = check_rows[0].1;
    for (name, seconds, replicas) in &check_rows[1..] {
        println!(
            "| factorise 2,000 with {name} | {seconds:.3} s ({:+.0}% time, {:.2} replicas per task) |",
            (seconds / plain - 1.0) * 100.0,
            replicas
        );
    }
    Ok(())
}
