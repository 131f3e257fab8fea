//! `dipla-sim`: runs seeds of the deterministic simulator and ends with one JSON line.
//! `cargo xtask sim --seeds N` (or `just sim`) runs it; a failing seed prints the command
//! that replays it.

use std::time::Instant;

use clap::Parser;
use dipla_sim::{Summary, run};

/// Runs the scheduling core through seeded simulated jobs, fleets and faults.
#[derive(Debug, Parser)]
#[command(name = "dipla-sim")]
struct Args {
    /// How many seeds to run.
    #[arg(long, default_value_t = 2_000)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Run this one seed only (to replay a failure).
    #[arg(long)]
    seed: Option<u64>,
    /// Threads to run seeds on [default: the machine's cores].
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let (start, count) = match args.seed {
        Some(seed) => (seed, 1),
        None => (args.start, args.seeds),
    };
    let threads = args
        .threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .max(1) as u64;
    let began = Instant::now();
    let summary = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                scope.spawn(move || {
                    let mut summary = Summary::default();
                    let mut seed = start + thread;
                    while seed < start + count {
                        summary.seeds += 1;
                        match run(seed) {
                            Ok(report) => summary.add(&report),
                            Err(failure) => {
                                summary.failures += 1;
                                eprintln!(
                                    "seed {seed} failed at {:.6} virtual s: {}\n  replay: cargo xtask sim --seed {seed}",
                                    failure.at as f64 / 1e6,
                                    failure.what
                                );
                            }
                        }
                        seed += threads;
                    }
                    summary
                })
            })
            .collect();
        let mut total = Summary::default();
        for worker in workers {
            total.merge(&worker.join().expect("a simulator thread panicked"));
        }
        total
    });
    println!(
        "{{\"seeds\":{},\"failures\":{},\"tasks\":{},\"workers_max\":{},\"crashes\":{},\"restores\":{},\"liars_caught\":{},\"pauses\":{},\"virtual_secs\":{:.0},\"wall_secs\":{:.1}}}",
        summary.seeds,
        summary.failures,
        summary.tasks,
        summary.workers_max,
        summary.crashes,
        summary.restores,
        summary.liars_caught,
        summary.pauses,
        summary.virtual_micros as f64 / 1e6,
        began.elapsed().as_secs_f64()
    );
    if summary.failures == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
