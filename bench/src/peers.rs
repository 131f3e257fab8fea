//! Ray and Dask on the same workloads: runs `bench/peers/run_ray.py` and `run_dask.py` in the
//! virtual environment `bench/peers/setup.sh` makes, and reads the JSON they print.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use serde::Deserialize;

/// What one peer's runner printed.
#[derive(Debug, Deserialize)]
pub struct PeerReport {
    /// "ray" or "dask".
    pub system: String,
    /// Its version.
    pub version: String,
    /// Seconds its cluster took to start (not counted in any workload).
    pub startup_secs: f64,
    /// The 1-minute load average before it started.
    pub loadavg_before: f64,
    /// Each workload's figures, by name.
    pub workloads: BTreeMap<String, PeerWorkload>,
}

/// One workload on a peer.
#[derive(Debug, Deserialize)]
pub struct PeerWorkload {
    /// Tasks it counted.
    pub tasks: u64,
    /// Median seconds.
    pub secs: f64,
    /// Its check value (a list when runs disagreed).
    pub check: serde_json::Value,
    /// Whether the check value and task count were right.
    pub ok: bool,
}

/// Makes (or reuses) the venv; its path.
pub fn venv(root: &Path) -> Result<PathBuf> {
    let setup = root.join("bench/peers/setup.sh");
    let output = Command::new("bash")
        .arg(&setup)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", setup.display()))?;
    ensure!(
        output.status.success(),
        "{} failed: Ray and Dask could not be installed",
        setup.display()
    );
    let path = String::from_utf8(output.stdout)?.trim().to_owned();
    ensure!(!path.is_empty(), "{} printed no venv path", setup.display());
    Ok(PathBuf::from(path))
}

/// Runs one peer's runner (`run_ray.py`, `run_dask.py`): `runs` timed runs per workload,
/// `pi_runs` of the pure-Python pi (minutes each); `only`: these workloads (empty: all).
pub fn run(
    root: &Path,
    venv: &Path,
    runner: &str,
    runs: usize,
    pi_runs: usize,
    only: &[String],
) -> Result<PeerReport> {
    let script = root.join("bench/peers").join(runner);
    let output = Command::new(venv.join("bin/python"))
        .arg(&script)
        .args([
            "--runs",
            &runs.to_string(),
            "--pi-runs",
            &pi_runs.to_string(),
        ])
        .args(only.iter().flat_map(|name| ["--only", name]))
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    // Kept for a second look: target/bench/peers-<runner>.json.
    let saved = root.join("target/bench");
    std::fs::create_dir_all(&saved)?;
    std::fs::write(
        saved.join(format!("peers-{}.json", runner.trim_end_matches(".py"))),
        &output.stdout,
    )?;
    let report: PeerReport = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "{} printed no report (exit {})",
            script.display(),
            output.status
        )
    })?;
    Ok(report)
}
