//! Project chores that need nothing but cargo: `cargo xtask <demo|test|sim|build-guests|lint|bench|bench-peers|bench-scale|dist|deb>`.
//!
//! Each installs what it needs (the wasm target) and builds what it uses, in the one release
//! profile the whole project shares, so a fresh machine with only the Rust toolchain can run
//! any of them.

mod deb;
mod dist;
mod elf;
mod python;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <command> [args]

commands:
  demo           build everything and run the factorise example on 2 local workers
  test           build the guests and run every test in the workspace
  sim            the deterministic simulator of the scheduling core: --seeds N (default
                 2000), --start S, or --seed S to replay one seed
  build-guests   build every guest crate (cdylib) for wasm32-unknown-unknown, and the
                 Python examples into components (a venv with the Python SDK)
  lint           cargo fmt --check and clippy with -D warnings
  bench          build and run the benchmarks (arguments are passed on)
  bench-peers    the benchmarks, then the same workloads on Ray and Dask (a venv from PyPI)
  bench-scale    one server against 1,000 then 5,000 simulated workers (arguments passed on)
  dist           static release archives of dipla-worker and dipla-server for
                 x86_64-unknown-linux-musl, with SHA256SUMS, in target/dist (needs musl-gcc)
  deb            the Debian package of dipla-worker (a systemd service), in target/dist:
                 --binary PATH packages that binary, --musl the static one `dist` builds,
                 neither a release build for this machine; --out-dir DIR";

const WASM_TARGET: &str = "wasm32-unknown-unknown";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(),
        Some("test") => test(&args[1..]),
        Some("sim") => sim(&args[1..]),
        Some("build-guests") => build_guests(),
        Some("lint") => lint(),
        Some("bench") => bench(&args[1..]),
        Some("bench-peers") => bench(&[&["--peers".to_owned()], &args[1..]].concat()),
        Some("bench-scale") => bench_scale(&args[1..]),
        Some("dist") => dist::dist(&args[1..]),
        Some("deb") => deb::deb(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, String>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    command
}

fn run(command: &mut Command) -> Result {
    eprintln!("xtask: running {command:?}");
    let status = command
        .status()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed ({status})"))
    }
}

/// Installs the wasm target with rustup unless it is there already.
fn ensure_wasm_target() -> Result {
    ensure_target(WASM_TARGET)
}

/// Installs a Rust target with rustup unless it is there already.
fn ensure_target(target: &str) -> Result {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup (needed for the {target} target): {e}"))?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|line| line.trim() == target)
    {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", target]))
}

/// Whether `program --version` runs.
fn has_program(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Installs Debian's Chromium (the dashboard's and the browser volunteers' tests drive a real
/// browser) unless it is there already.
fn ensure_chromium() -> Result {
    if has_program("chromium") {
        return Ok(());
    }
    apt_install(
        &["chromium"],
        "the dashboard's and the browser volunteers' tests",
    )
}

/// Installs Debian packages (as root, or through sudo) for `what`.
fn apt_install(packages: &[&str], what: &str) -> Result {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    let apt = |args: &[&str]| {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    let _ = run(&mut apt(&["update", "-qq"]));
    run(&mut apt(&[&["install", "-y", "-qq"], packages].concat())).map_err(|error| {
        format!(
            "{what} needs {}; install it (apt-get install {}): {error}",
            packages.join(", "),
            packages.join(" ")
        )
    })
}

/// Installs dpkg-deb (the package test builds and unpacks the worker's .deb) unless it is
/// there already: it is on every Debian system, as part of dpkg.
fn ensure_dpkg_deb() -> Result {
    if has_program("dpkg-deb") {
        return Ok(());
    }
    apt_install(&["dpkg"], "the Debian package's test")
}

/// `cargo metadata` of the workspace's own packages.
fn metadata() -> Result<serde_json::Value> {
    let output = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("bad cargo metadata: {e}"))
}

/// The cargo target directory (`target/`, or `CARGO_TARGET_DIR`).
fn target_dir() -> Result<PathBuf> {
    metadata()?["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata has no target_directory".to_owned())
}

/// A workspace package's version.
fn package_version(name: &str) -> Result<String> {
    metadata()?["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|package| package["name"] == name)
        .and_then(|package| package["version"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| format!("no package {name} in the workspace"))
}

/// The workspace packages that build a cdylib: the guests.
fn guests() -> Result<Vec<String>> {
    let metadata = metadata()?;
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    Ok(packages
        .iter()
        .filter(|package| {
            package["targets"].as_array().is_some_and(|targets| {
                targets.iter().any(|target| {
                    target["crate_types"]
                        .as_array()
                        .is_some_and(|types| types.iter().any(|t| t == "cdylib"))
                })
            })
        })
        .filter_map(|package| package["name"].as_str().map(str::to_owned))
        .collect())
}

fn build_guests() -> Result {
    ensure_wasm_target()?;
    let mut command = cargo();
    command.args(["build", "--release", "--target", WASM_TARGET]);
    for guest in guests()? {
        command.args(["--package", &guest]);
    }
    run(&mut command)?;
    python::build_examples()
}

fn build_binaries() -> Result {
    run(cargo().args([
        "build",
        "--release",
        "--package",
        "dipla-server",
        "--package",
        "dipla-worker",
    ]))
}

fn demo() -> Result {
    build_guests()?;
    build_binaries()?;
    let server = root().join("target/release/dipla-server");
    run(Command::new(server).current_dir(root()).args([
        "run",
        "examples/factorise/job.toml",
        "--local-workers",
        "2",
    ]))
}

fn test(extra: &[String]) -> Result {
    ensure_chromium()?;
    ensure_dpkg_deb()?;
    build_guests()?;
    build_binaries()?;
    python::test_sdk()?;
    run(cargo()
        .args(["test", "--release", "--workspace"])
        .args(extra))
}

/// Runs seeds of the simulator (`dipla-sim`): it needs no guest and no network.
fn sim(extra: &[String]) -> Result {
    run(cargo()
        .args([
            "run",
            "--release",
            "--quiet",
            "--package",
            "dipla-sim",
            "--",
        ])
        .args(extra))
}

fn lint() -> Result {
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--release",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
}

fn bench(extra: &[String]) -> Result {
    build_guests()?;
    build_binaries()?;
    run(cargo()
        .args(["run", "--release", "--package", "dipla-bench", "--"])
        .args(extra))
}

fn bench_scale(extra: &[String]) -> Result {
    build_guests()?;
    build_binaries()?;
    run(cargo()
        .args([
            "run",
            "--release",
            "--package",
            "dipla-bench",
            "--bin",
            "scale",
            "--",
        ])
        .args(extra))
}
