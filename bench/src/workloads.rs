//! The four workloads Dipla is measured on, the same as `bench/peers/workloads.py` runs on Ray
//! and Dask, and the check value each must produce on every system.

use std::path::Path;

use anyhow::{Context, Result, ensure};

/// Tiny tasks: `square` over `0..TINY_TASKS`.
pub const TINY_TASKS: u64 = 20_000;
/// Chained: `square` then `add_one` over `0..CHAIN_INPUTS`, then a tree of `add`.
pub const CHAIN_INPUTS: u64 = 20_000;
/// The chained reduce's fan-in (Dipla's default).
pub const CHAIN_FAN_IN: u64 = 2;
/// Factorise: `FACTORISE_START..FACTORISE_START + FACTORISE_COUNT`.
pub const FACTORISE_START: u64 = 1_000_000_000_000;
/// Numbers factorised.
pub const FACTORISE_COUNT: u64 = 2_000;
/// Monte Carlo pi: seeds `1..=PI_TASKS`, each [`pi::SAMPLES`] points.
pub const PI_TASKS: u64 = 200;

/// Where the Rust guests are, under the target directory.
pub const RUST_GUESTS: &str = "wasm32-unknown-unknown/release";
/// The Python guest (`bench/python/pytestbed.py`, built by `cargo xtask build-guests`), under
/// the target directory.
pub const PYTHON_GUEST: &str = "python/pytestbed.wasm";

/// One workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// 20,000 calls of `x * x`.
    Tiny,
    /// map → map → reduce.
    Chained,
    /// Trial division of 2,000 numbers near 10^12.
    Factorise,
    /// 200 tasks of 10^6 random points.
    Pi,
    /// [`Workload::Tiny`] in Python (`bench/python/pytestbed.py`).
    PyTiny,
    /// [`Workload::Factorise`] in Python, the same function the peers run.
    PyFactorise,
}

impl Workload {
    /// Its name in the peers' JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tiny => "tiny",
            Self::Chained => "chained",
            Self::Factorise => "factorise",
            Self::Pi => "pi",
            Self::PyTiny => "py_tiny",
            Self::PyFactorise => "py_factorise",
        }
    }

    /// The workload the peers (Ray, Dask) run that this one is compared with: both are the
    /// same Python function for the Python workloads.
    pub fn peer_name(self) -> &'static str {
        match self {
            Self::PyTiny => Self::Tiny.name(),
            Self::PyFactorise => Self::Factorise.name(),
            other => other.name(),
        }
    }

    /// The workload of this name.
    pub fn named(name: &str) -> Option<Self> {
        [
            Self::Tiny,
            Self::Chained,
            Self::Factorise,
            Self::Pi,
            Self::PyTiny,
            Self::PyFactorise,
        ]
        .into_iter()
        .find(|workload| workload.name() == name)
    }

    /// How to describe it in a table.
    pub fn title(self) -> String {
        match self {
            Self::Tiny => format!("tiny: {} x square", thousands(TINY_TASKS)),
            Self::Chained => format!(
                "chained: square -> add_one -> add tree over {} ({} tasks)",
                thousands(CHAIN_INPUTS),
                thousands(self.tasks())
            ),
            Self::Factorise => format!("factorise {} near 10^12", thousands(FACTORISE_COUNT)),
            Self::Pi => format!("pi: {PI_TASKS} x 10^6 points"),
            Self::PyTiny => format!("tiny in Python: {} x square", thousands(TINY_TASKS)),
            Self::PyFactorise => format!(
                "factorise {} near 10^12 in Python",
                thousands(FACTORISE_COUNT)
            ),
        }
    }

    /// Tasks it runs (every stage).
    pub fn tasks(self) -> u64 {
        match self {
            Self::Tiny | Self::PyTiny => TINY_TASKS,
            Self::Chained => 2 * CHAIN_INPUTS + reduce_tasks(CHAIN_INPUTS, CHAIN_FAN_IN),
            Self::Factorise | Self::PyFactorise => FACTORISE_COUNT,
            Self::Pi => PI_TASKS,
        }
    }

    /// Tasks `dipla-server` reports: one per result line, a reduce stage's tree counting as
    /// one (its inner additions are tasks all the same, and [`Self::tasks`] counts them).
    pub fn result_lines(self) -> u64 {
        match self {
            Self::Chained => 2 * CHAIN_INPUTS + 1,
            _ => self.tasks(),
        }
    }

    /// The check value every system must produce.
    pub fn expected(self) -> u64 {
        match self {
            Self::Tiny | Self::PyTiny => (0..TINY_TASKS).map(|x| x * x).sum(),
            Self::Chained => (0..CHAIN_INPUTS).map(|x| x * x + 1).sum(),
            Self::Factorise | Self::PyFactorise => 120_420_195_191_265,
            Self::Pi => 157_081_786,
        }
    }

    /// The job manifest, with the guests built under the target directory `target`, and the
    /// stage whose results to write.
    pub fn manifest(self, target: &Path) -> (String, Option<&'static str>) {
        let rust = target.join(RUST_GUESTS);
        let module = |name: &str| rust.join(format!("{name}.wasm")).display().to_string();
        let one = |guest: &str, task: &str, start: u64, end: u64| {
            one_stage(&rust.join(format!("{guest}.wasm")), task, start..end)
        };
        let python = |task: &str, start: u64, end: u64| {
            one_stage(&target.join(PYTHON_GUEST), task, start..end)
        };
        let factorise = FACTORISE_START..FACTORISE_START + FACTORISE_COUNT;
        match self {
            Self::Tiny => (one("testbed", "square", 0, TINY_TASKS), None),
            Self::PyTiny => (python("square", 0, TINY_TASKS), None),
            Self::Factorise => (
                one("factorise", "factorise", factorise.start, factorise.end),
                None,
            ),
            Self::PyFactorise => (python("factorise", factorise.start, factorise.end), None),
            Self::Pi => (one("pi", "hits", 1, PI_TASKS + 1), None),
            Self::Chained => (
                format!(
                    "name = \"chained\"\n[modules]\nm = \"{}\"\n\
                     [[stages]]\nname = \"squares\"\ntask = \"m.square\"\n\
                     inputs = {{ range = {{ start = 0, end = {CHAIN_INPUTS} }} }}\n\
                     [[stages]]\nname = \"plus\"\ntask = \"m.add_one\"\n\
                     inputs = {{ stage = \"squares\" }}\n\
                     [[stages]]\nname = \"total\"\ntask = \"m.add\"\n\
                     reduce = {{ stage = \"plus\", fan_in = {CHAIN_FAN_IN} }}\n",
                    module("testbed")
                ),
                Some("total"),
            ),
        }
    }

    /// The check value of a results file: the sum of the outputs (of every factor, for
    /// factorise).
    pub fn check(self, results: &Path) -> Result<u64> {
        let text = std::fs::read_to_string(results)
            .with_context(|| format!("cannot read {}", results.display()))?;
        let mut sum = 0u64;
        let mut lines = 0;
        for line in text.lines() {
            let record: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("a results line is not JSON: {line}"))?;
            let output = &record["output"];
            let values = match output.as_array() {
                Some(values) => values.iter().map(serde_json::Value::as_u64).collect(),
                None => vec![output.as_u64()],
            };
            for value in values {
                let value = value.with_context(|| format!("an output is not a u64: {line}"))?;
                sum = sum.wrapping_add(value);
            }
            lines += 1;
        }
        ensure!(lines > 0, "{} holds no results", results.display());
        Ok(sum)
    }

    /// Bytes of JSON a task's input and output take, on average (tiny only; 0 otherwise).
    pub fn payload_bytes(self) -> f64 {
        match self {
            Self::Tiny | Self::PyTiny => {
                let digits = |x: u64| x.to_string().len() as u64;
                (0..TINY_TASKS)
                    .map(|x| digits(x) + digits(x * x))
                    .sum::<u64>() as f64
                    / TINY_TASKS as f64
            }
            _ => 0.0,
        }
    }
}

/// A job of one stage: the export `task` of the guest at `module` over the integers of
/// `inputs`, with the default limits.
pub fn one_stage(module: &Path, task: &str, inputs: std::ops::Range<u64>) -> String {
    format!(
        "name = \"{task}\"\n[modules]\nm = \"{}\"\n[[stages]]\nname = \"{task}\"\n\
         task = \"m.{task}\"\ninputs = {{ range = {{ start = {}, end = {} }} }}\n",
        module.display(),
        inputs.start,
        inputs.end
    )
}

/// Tasks a reduce of `values` values with fan-in `fan_in` runs: groups of `fan_in`, level by
/// level, a lone last value passing through without a task.
pub fn reduce_tasks(mut values: u64, fan_in: u64) -> u64 {
    let mut tasks = 0;
    while values > 1 {
        let groups = values / fan_in;
        let rest = values % fan_in;
        // A partial group of two or more is a task too; a lone value passes through.
        let partial = u64::from(rest >= 2);
        tasks += groups + partial;
        values = groups + partial + u64::from(rest == 1);
    }
    tasks
}

/// `n` with thousands separators.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Workload {
    /// The same Rust function compiled natively, over the same inputs dealt out in turn to
    /// `threads` threads: the time, and the check value (factorise and pi only).
    pub fn native(self, threads: u64) -> Option<(std::time::Duration, u64)> {
        let (inputs, task): (std::ops::Range<u64>, fn(u64) -> u64) = match self {
            Self::Factorise => (FACTORISE_START..FACTORISE_START + FACTORISE_COUNT, |n| {
                factorise::factorise(n).iter().sum()
            }),
            Self::Pi => (1..PI_TASKS + 1, pi::hits),
            Self::Tiny | Self::Chained | Self::PyTiny | Self::PyFactorise => return None,
        };
        let started = std::time::Instant::now();
        let sum = std::thread::scope(|scope| {
            let parts: Vec<_> = (0..threads)
                .map(|thread| {
                    let inputs = inputs.clone();
                    scope.spawn(move || {
                        inputs
                            .skip(thread as usize)
                            .step_by(threads as usize)
                            .map(|input| task(std::hint::black_box(input)))
                            .fold(0u64, u64::wrapping_add)
                    })
                })
                .collect();
            parts
                .into_iter()
                .map(|part| part.join().expect("the tasks do not panic"))
                .fold(0u64, u64::wrapping_add)
        });
        Some((started.elapsed(), sum))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_counts_every_addition() {
        assert_eq!(reduce_tasks(1, 2), 0);
        assert_eq!(reduce_tasks(2, 2), 1);
        assert_eq!(reduce_tasks(5, 2), 4);
        assert_eq!(reduce_tasks(20_000, 2), 19_999);
        assert_eq!(reduce_tasks(10, 4), 4);
    }

    #[test]
    fn native_checks_match_the_pinned_values() {
        for threads in [1, 3] {
            for workload in [Workload::Factorise, Workload::Pi] {
                let (_, check) = workload.native(threads).expect("a native version");
                assert_eq!(check, workload.expected(), "{workload:?} on {threads}");
            }
        }
        assert!(Workload::Tiny.native(1).is_none());
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(20_000), "20,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
