//! What Python tasks cost, beside the jobs that run them: the same factorise function under
//! the machine's own `python3`, and in the sandbox alone (one thread, no server), with fuel
//! metering on and off; the cost of one tiny task; compiling the component and loading it
//! compiled from disk, as a worker does the first time and every time after.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use dipla_sandbox::{Guest, Limits, Sandbox};
use serde::Deserialize;

use crate::workloads::{FACTORISE_COUNT, FACTORISE_START, PYTHON_GUEST, TINY_TASKS, Workload};

/// The figures: the medians of several runs, but for the sandbox's factorise (one run each).
pub struct Figures {
    /// `factorise` over the workload's numbers under the machine's `python3`, one process.
    pub native_secs: f64,
    /// That interpreter's version.
    pub native_version: String,
    /// The same calls in the sandbox, one thread, with the default limits (fuel on).
    pub sandbox_secs: f64,
    /// The same without fuel metering.
    pub unmetered_secs: f64,
    /// Fuel the calls burnt in all.
    pub fuel: u64,
    /// One `square` in a fresh instance, JSON both ways, in seconds.
    pub per_task_secs: f64,
    /// Tiny calls timed for `per_task_secs`.
    pub per_task_calls: u64,
    /// The component's size in bytes.
    pub component_bytes: usize,
    /// Compiling it.
    pub compile_secs: f64,
    /// Loading it compiled from disk (as a worker's module cache does).
    pub load_secs: f64,
    /// The compiled artifact's size in bytes.
    pub compiled_bytes: u64,
}

#[derive(Deserialize)]
struct Native {
    secs: f64,
    check: u64,
    version: String,
}

/// Measures everything on the component under `target` (`target/python/pytestbed.wasm`) and
/// the venv `cargo xtask build-guests` made (`target/python-venv`).
pub fn measure(root: &Path, target: &Path, runs: usize) -> Result<Figures> {
    let native = (0..runs)
        .map(|_| native(root, target))
        .collect::<Result<Vec<_>>>()?;
    let native_version = native[0].version.clone();
    let native_secs = crate::median(native.iter().map(|run| run.secs).collect());

    let bytes = std::fs::read(target.join(PYTHON_GUEST))
        .with_context(|| format!("cannot read {PYTHON_GUEST}: run `cargo xtask build-guests`"))?;
    let sandbox = Sandbox::new().context("cannot start the sandbox")?;
    let started = Instant::now();
    let guest = sandbox.compile(&bytes)?;
    let compile_secs = started.elapsed().as_secs_f64();
    let dir = tempfile::tempdir()?;
    let compiled = dir.path().join("pytestbed.cwasm");
    guest.serialize(&compiled)?;
    let compiled_bytes = std::fs::metadata(&compiled)?.len();
    let loads = (0..runs)
        .map(|_| {
            let started = Instant::now();
            // SAFETY: the file was just written by this sandbox's own `serialize`.
            unsafe { sandbox.load_precompiled(&bytes, &compiled) }
                .map(|_| started.elapsed().as_secs_f64())
                .map_err(anyhow::Error::from)
        })
        .collect::<Result<Vec<_>>>()?;

    let unmetered = Sandbox::unmetered().context("cannot start an unmetered sandbox")?;
    let unmetered = unmetered.compile(&bytes)?;
    // Once each: a minute and a half together.
    let (sandbox_secs, fuel) = factorise(&guest)?;
    let (unmetered_secs, _) = factorise(&unmetered)?;

    let per_task_calls = TINY_TASKS / 10;
    let per_task = (0..runs)
        .map(|_| tiny(&guest, per_task_calls))
        .collect::<Result<Vec<_>>>()?;
    Ok(Figures {
        native_secs,
        native_version,
        sandbox_secs,
        unmetered_secs,
        fuel,
        per_task_secs: crate::median(per_task),
        per_task_calls,
        component_bytes: bytes.len(),
        compile_secs,
        load_secs: crate::median(loads),
        compiled_bytes,
    })
}

/// `factorise` over the workload's numbers in `guest`, one after another: the time and the
/// fuel; checks the sum of the factors.
fn factorise(guest: &Guest) -> Result<(f64, u64)> {
    let limits = Limits::default();
    let started = Instant::now();
    let (mut check, mut fuel) = (0u64, 0u64);
    for n in FACTORISE_START..FACTORISE_START + FACTORISE_COUNT {
        let run = guest.run("factorise", n.to_string().as_bytes(), &limits);
        let output = run
            .outcome
            .map_err(|failure| anyhow::anyhow!("factorise({n}) failed: {failure:?}"))?;
        let factors: Vec<u64> = serde_json::from_str(output.get())?;
        check = check.wrapping_add(factors.iter().sum());
        fuel += run.fuel;
    }
    let secs = started.elapsed().as_secs_f64();
    let expected = Workload::PyFactorise.expected();
    ensure!(
        check == expected,
        "factorise: check {check}, expected {expected}"
    );
    Ok((secs, fuel))
}

/// Seconds per `square` over `calls` calls, each in a fresh instance.
fn tiny(guest: &Guest, calls: u64) -> Result<f64> {
    let limits = Limits::default();
    let started = Instant::now();
    for x in 0..calls {
        let run = guest.run("square", x.to_string().as_bytes(), &limits);
        let output = run
            .outcome
            .map_err(|failure| anyhow::anyhow!("square({x}) failed: {failure:?}"))?;
        ensure!(
            output.get() == (x * x).to_string(),
            "square({x}) = {}",
            output.get()
        );
    }
    Ok(started.elapsed().as_secs_f64() / calls as f64)
}

/// The same `factorise` under the venv's `python3` (the machine's own interpreter), timed
/// inside the process.
fn native(root: &Path, target: &Path) -> Result<Native> {
    let python = target.join("python-venv/bin/python");
    let code = format!(
        "import json, sys, time\n\
         import pytestbed\n\
         started = time.perf_counter()\n\
         check = sum(sum(pytestbed.factorise(n)) for n in range({FACTORISE_START}, {}))\n\
         secs = time.perf_counter() - started\n\
         print(json.dumps({{'secs': secs, 'check': check, 'version': sys.version.split()[0]}}))",
        FACTORISE_START + FACTORISE_COUNT
    );
    let output = Command::new(&python)
        .arg("-c")
        .arg(code)
        .env("PYTHONPATH", root.join("bench/python"))
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    ensure!(
        output.status.success(),
        "native python3 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let native: Native = serde_json::from_slice(&output.stdout)?;
    let expected = Workload::PyFactorise.expected();
    ensure!(
        native.check == expected,
        "native factorise: check {}, expected {expected}",
        native.check
    );
    Ok(native)
}
