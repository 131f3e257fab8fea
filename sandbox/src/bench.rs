//! The self-benchmark: small kernels written in WAT, each run in the task sandbox's exact
//! configuration (fuel metering, NaN canonicalisation), timed against the fuel they burn.
//!
//! A kernel's fuel count and checksum are the same on every machine (fuel is deterministic for
//! a given wasmtime and module), so a server that runs the kernels once knows both and catches
//! a worker that reports a benchmark it did not run ([`check`]). Only the time is the worker's
//! word: the server ranks workers by what their tasks show as soon as it can.
//!
//! The score is the weighted geometric mean over kernels of fuel per microsecond. One fuel
//! unit costs about 20 times more time in some kernels than in others, so an arithmetic mean
//! would be one kernel's figure; the pointer chase, the noisiest kernel (it measures the
//! memory system more than the core), counts half.

use std::sync::OnceLock;
use std::time::Instant;

use dipla_protocol::{Benchmark, KernelRun};
use wasmtime::{Instance, Module, Store};

use crate::Sandbox;

/// One kernel of the suite.
#[derive(Debug)]
pub struct Kernel {
    /// Its name in reports.
    pub name: &'static str,
    wat: &'static str,
    /// Iterations per trial: about 25 ms on a 2020s server core.
    iterations: i64,
    /// Its weight in the score.
    weight: f64,
}

/// The suite, in report order.
pub const KERNELS: &[Kernel] = &[
    Kernel {
        name: "int_chain",
        wat: include_str!("kernels/int_chain.wat"),
        iterations: 12_000_000,
        weight: 1.0,
    },
    Kernel {
        name: "float_chain",
        wat: include_str!("kernels/float_chain.wat"),
        iterations: 800_000,
        weight: 1.0,
    },
    Kernel {
        name: "seq_memory",
        wat: include_str!("kernels/seq_memory.wat"),
        iterations: 10_000_000,
        weight: 1.0,
    },
    Kernel {
        name: "random_loads",
        wat: include_str!("kernels/random_loads.wat"),
        iterations: 250_000,
        weight: 0.5,
    },
    Kernel {
        name: "branches",
        wat: include_str!("kernels/branches.wat"),
        iterations: 2_000_000,
        weight: 1.0,
    },
    Kernel {
        name: "calls",
        wat: include_str!("kernels/calls.wat"),
        iterations: 3_000_000,
        weight: 1.0,
    },
];

/// Rounds of trials, each in a fresh engine; each kernel's fastest trial counts (the first
/// round doubles as the warm-up).
pub const ROUNDS: usize = 6;

/// Fuel a kernel may burn in one trial (far more than any needs). The fuel a trial reports is
/// this less what is left after its `run`.
pub const FUEL: u64 = 1 << 40;

/// The benchmark cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("benchmark kernel {kernel}: {message}")]
pub struct BenchError {
    kernel: &'static str,
    message: String,
}

/// A kernel compiled and initialised, ready for trials.
struct Loaded {
    store: Store<()>,
    run: wasmtime::TypedFunc<i64, i64>,
}

impl Kernel {
    /// The kernel's module: `init: () -> ()`, called once on fuel of its own, then each
    /// trial `run: (iterations i64) -> i64`, the checksum, on [`FUEL`] (a worker that runs
    /// the kernels elsewhere, such as a browser, runs these bytes instrumented).
    ///
    /// # Errors
    /// When the kernel's text does not assemble (never for the suite's kernels).
    pub fn wasm(&self) -> Result<Vec<u8>, BenchError> {
        wat::parse_str(self.wat).map_err(|e| BenchError {
            kernel: self.name,
            message: e.to_string(),
        })
    }

    /// Iterations per trial (the argument of `run`).
    pub fn iterations(&self) -> i64 {
        self.iterations
    }

    /// The kernel's weight in the score.
    pub fn weight(&self) -> f64 {
        self.weight
    }

    fn load(&self, sandbox: &Sandbox) -> Result<Loaded, BenchError> {
        let fail = |message: String| BenchError {
            kernel: self.name,
            message,
        };
        let bytes = self.wasm()?;
        let module = Module::new(sandbox.engine(), bytes).map_err(|e| fail(format!("{e:#}")))?;
        let mut store = Store::new(sandbox.engine(), ());
        store.set_epoch_deadline(u64::MAX / 2);
        store.set_fuel(FUEL).map_err(|e| fail(format!("{e:#}")))?;
        let instance =
            Instance::new(&mut store, &module, &[]).map_err(|e| fail(format!("{e:#}")))?;
        let init = instance
            .get_typed_func::<(), ()>(&mut store, "init")
            .map_err(|e| fail(format!("{e:#}")))?;
        init.call(&mut store, ())
            .map_err(|e| fail(format!("{e:#}")))?;
        let run = instance
            .get_typed_func::<i64, i64>(&mut store, "run")
            .map_err(|e| fail(format!("{e:#}")))?;
        Ok(Loaded { store, run })
    }

    /// One trial: (fuel, microseconds, checksum).
    fn trial(&self, loaded: &mut Loaded) -> Result<(u64, u64, u64), BenchError> {
        let fail = |message: String| BenchError {
            kernel: self.name,
            message,
        };
        loaded
            .store
            .set_fuel(FUEL)
            .map_err(|e| fail(format!("{e:#}")))?;
        let started = Instant::now();
        let checksum = loaded
            .run
            .call(&mut loaded.store, self.iterations)
            .map_err(|e| fail(format!("{e:#}")))?;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let left = loaded
            .store
            .get_fuel()
            .map_err(|e| fail(format!("{e:#}")))?;
        Ok((FUEL - left, micros.max(1), checksum as u64))
    }
}

/// Runs the whole suite (about a second) and returns each kernel's best trial and the score.
///
/// Each round of trials runs in a new engine with the task configuration. The speed of the
/// same compiled loop differed up to 2x between engines in one process (most likely where the
/// engine's epoch counter lands relative to the code's other memory traffic); the best over
/// several engines is what this machine can do, and is stable from run to run.
///
/// # Errors
/// When the engine cannot start or a kernel cannot be compiled or run, or does not repeat
/// itself.
pub fn run() -> Result<Benchmark, BenchError> {
    let mut first: Vec<Option<(u64, u64)>> = vec![None; KERNELS.len()];
    let mut best = vec![u64::MAX; KERNELS.len()];
    for _ in 0..ROUNDS {
        let sandbox = Sandbox::new().map_err(|e| BenchError {
            kernel: "(engine)",
            message: e.to_string(),
        })?;
        // One kernel after another, round after round: a burst of noise on the machine costs
        // each kernel at most a trial or two.
        for (i, kernel) in KERNELS.iter().enumerate() {
            let mut loaded = kernel.load(&sandbox)?;
            let (fuel, micros, checksum) = kernel.trial(&mut loaded)?;
            match first[i] {
                None => first[i] = Some((fuel, checksum)),
                Some(expected) if expected == (fuel, checksum) => {}
                Some(_) => {
                    return Err(BenchError {
                        kernel: kernel.name,
                        message: "two runs gave different fuel or checksums".into(),
                    });
                }
            }
            best[i] = best[i].min(micros);
        }
    }
    let kernels: Vec<KernelRun> = KERNELS
        .iter()
        .zip(first)
        .zip(best)
        .map(|((kernel, first), micros)| {
            let (fuel, checksum) = first.expect("at least one round");
            KernelRun {
                name: kernel.name.to_owned(),
                fuel,
                micros,
                checksum: format!("{checksum:016x}"),
            }
        })
        .collect();
    Ok(Benchmark {
        score: score(&kernels),
        kernels,
    })
}

/// The score of these kernel runs: the weighted geometric mean of fuel per microsecond
/// (unknown kernels count for nothing; no known kernel gives 0).
pub fn score(kernels: &[KernelRun]) -> f64 {
    let (mut logs, mut weights) = (0.0, 0.0);
    for run in kernels {
        if let Some(kernel) = KERNELS.iter().find(|k| k.name == run.name) {
            let rate = run.fuel as f64 / run.micros.max(1) as f64;
            logs += kernel.weight * rate.max(f64::MIN_POSITIVE).ln();
            weights += kernel.weight;
        }
    }
    if weights == 0.0 {
        0.0
    } else {
        (logs / weights).exp()
    }
}

/// What every honest run of each kernel reports: (fuel, checksum), computed once per process.
///
/// # Errors
/// A [`BenchError`] when the kernels cannot run here.
pub fn expected(sandbox: &Sandbox) -> Result<&'static [(u64, String)], BenchError> {
    static EXPECTED: OnceLock<Result<Vec<(u64, String)>, BenchError>> = OnceLock::new();
    EXPECTED
        .get_or_init(|| {
            KERNELS
                .iter()
                .map(|kernel| {
                    let mut loaded = kernel.load(sandbox)?;
                    let (fuel, _, checksum) = kernel.trial(&mut loaded)?;
                    Ok((fuel, format!("{checksum:016x}")))
                })
                .collect()
        })
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

/// Why a worker's benchmark does not check out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Mismatch {
    /// The kernels cannot run here, so nothing can be checked.
    #[error(transparent)]
    Kernels(#[from] BenchError),
    /// Another number of kernels than the suite has.
    #[error("{reported} kernels reported, the suite has {suite}")]
    Count {
        /// How many were reported.
        reported: usize,
        /// How many the suite has.
        suite: usize,
    },
    /// A kernel missing, or reported more than once.
    #[error("kernel {0} must be reported once")]
    NotOnce(&'static str),
    /// A kernel's fuel or checksum is not what running it gives: it was not run.
    #[error(
        "kernel {kernel} reports fuel {fuel} and checksum {checksum}, but running it gives {expected_fuel} and {expected_checksum}"
    )]
    Figures {
        /// The kernel.
        kernel: &'static str,
        /// The fuel reported.
        fuel: u64,
        /// The checksum reported.
        checksum: String,
        /// The fuel every run burns.
        expected_fuel: u64,
        /// The checksum every run gives.
        expected_checksum: String,
    },
    /// A kernel reported as taking no time.
    #[error("kernel {0} reports no time")]
    NoTime(&'static str),
    /// The score is not the one the kernels' figures give.
    #[error("the score {claimed} does not follow from the kernels ({score:.1})")]
    Score {
        /// The score reported.
        claimed: f64,
        /// The score the figures give.
        score: f64,
    },
}

/// Checks a worker's benchmark against the kernels' known fuel and checksums and returns its
/// score, recomputed from the kernel figures.
///
/// # Errors
/// A [`Mismatch`]: what does not add up: a kernel missing, repeated or unknown, a wrong fuel
/// count or checksum (the kernel was not run), an impossible time, or a score that does not
/// follow from the figures.
pub fn check(sandbox: &Sandbox, benchmark: &Benchmark) -> Result<f64, Mismatch> {
    let expected = expected(sandbox)?;
    if benchmark.kernels.len() != KERNELS.len() {
        return Err(Mismatch::Count {
            reported: benchmark.kernels.len(),
            suite: KERNELS.len(),
        });
    }
    for (kernel, (fuel, checksum)) in KERNELS.iter().zip(expected) {
        let mut runs = benchmark.kernels.iter().filter(|r| r.name == kernel.name);
        let (Some(run), None) = (runs.next(), runs.next()) else {
            return Err(Mismatch::NotOnce(kernel.name));
        };
        if run.fuel != *fuel || run.checksum != *checksum {
            return Err(Mismatch::Figures {
                kernel: kernel.name,
                fuel: run.fuel,
                checksum: run.checksum.clone(),
                expected_fuel: *fuel,
                expected_checksum: checksum.clone(),
            });
        }
        if run.micros == 0 {
            return Err(Mismatch::NoTime(kernel.name));
        }
    }
    let score = score(&benchmark.kernels);
    if !benchmark.score.is_finite() || (benchmark.score - score).abs() > score * 0.01 {
        return Err(Mismatch::Score {
            claimed: benchmark.score,
            score,
        });
    }
    Ok(score)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_repeat_and_an_honest_run_passes_the_check() {
        let sandbox = Sandbox::new().unwrap();
        let benchmark = run().unwrap();
        assert_eq!(benchmark.kernels.len(), KERNELS.len());
        assert!(benchmark.score > 0.0);
        assert_eq!(check(&sandbox, &benchmark), Ok(score(&benchmark.kernels)));
        for (run, (fuel, checksum)) in benchmark.kernels.iter().zip(expected(&sandbox).unwrap()) {
            assert_eq!((&run.fuel, &run.checksum), (fuel, checksum), "{}", run.name);
            assert!(
                run.fuel
                    >= 2 * KERNELS
                        .iter()
                        .find(|k| k.name == run.name)
                        .unwrap()
                        .iterations as u64
            );
        }
    }

    #[test]
    fn made_up_benchmarks_are_caught() {
        let sandbox = Sandbox::new().unwrap();
        let honest = Benchmark {
            score: 0.0,
            kernels: KERNELS
                .iter()
                .zip(expected(&sandbox).unwrap())
                .map(|(kernel, (fuel, checksum))| KernelRun {
                    name: kernel.name.into(),
                    fuel: *fuel,
                    micros: 1000,
                    checksum: checksum.clone(),
                })
                .collect(),
        };
        let honest = Benchmark {
            score: score(&honest.kernels),
            ..honest
        };
        assert!(check(&sandbox, &honest).is_ok());

        let mut forged = honest.clone();
        forged.kernels[2].checksum = "0000000000000000".into();
        assert!(
            check(&sandbox, &forged)
                .unwrap_err()
                .to_string()
                .contains("seq_memory")
        );

        let mut inflated = honest.clone();
        inflated.score *= 10.0;
        assert!(
            check(&sandbox, &inflated)
                .unwrap_err()
                .to_string()
                .contains("does not follow")
        );

        let mut short = honest.clone();
        short.kernels.pop();
        assert!(check(&sandbox, &short).is_err());

        let mut twice = honest;
        twice.kernels[1] = twice.kernels[0].clone();
        assert!(
            check(&sandbox, &twice)
                .unwrap_err()
                .to_string()
                .contains("once")
        );
    }

    #[test]
    fn the_score_is_a_weighted_geometric_mean() {
        let run = |name: &str, fuel, micros| KernelRun {
            name: name.into(),
            fuel,
            micros,
            checksum: String::new(),
        };
        // 100 and 10 000 fuel/µs, equal weights: 1 000.
        let score = score(&[
            run("int_chain", 100_000, 1000),
            run("calls", 10_000_000, 1000),
        ]);
        assert!((score - 1000.0).abs() < 1e-6, "{score}");
        // The pointer chase counts half: (4 ^ 1 * 1 ^ 0.5) ^ (1 / 1.5).
        let weighted = super::score(&[run("int_chain", 4, 1), run("random_loads", 1, 1)]);
        assert!((weighted - 4f64.powf(1.0 / 1.5)).abs() < 1e-9, "{weighted}");
    }
}
