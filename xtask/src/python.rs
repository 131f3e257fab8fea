//! Python guests: a virtual environment with the project's Python SDK (`dipla-guest`, which
//! brings componentize-py from PyPI) in `target/python-venv`, and the Python examples and
//! the integration tests' Python guests built into components in `target/python/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, apt_install, root, run};

/// Where the virtual environment lives.
fn venv() -> PathBuf {
    root().join("target/python-venv")
}

/// Where the examples' components go.
pub fn components() -> PathBuf {
    root().join("target/python")
}

/// A program of the virtual environment.
fn bin(name: &str) -> PathBuf {
    venv().join("bin").join(name)
}

/// Whether `python3 -m venv` works here (Debian splits venv out of python3).
fn can_make_venvs() -> bool {
    Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .status()
        .is_ok_and(|status| status.success())
}

/// The virtual environment with the SDK installed, made (and Python installed) if missing;
/// the SDK is installed again when its sources are newer than the environment's copy.
fn ensure_venv() -> Result {
    if !can_make_venvs() {
        apt_install(&["python3", "python3-venv", "python3-pip"], "Python guests")?;
    }
    if !bin("python").exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(venv()))?;
    }
    let sdk = root().join("guest-sdk/python");
    let stamp = venv().join(".dipla-guest-installed");
    if newest(&sdk.join("src"))? > modified(&stamp)
        || newest(&sdk.join("pyproject.toml"))? > modified(&stamp)
    {
        run(Command::new(bin("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(&sdk))?;
        std::fs::write(&stamp, b"").map_err(|e| format!("cannot write {stamp:?}: {e}"))?;
    }
    Ok(())
}

/// When `path` was last changed, or never for a missing one.
fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .unwrap_or(std::time::UNIX_EPOCH)
}

/// The latest change below `path` (a file or a folder), Python caches aside.
fn newest(path: &Path) -> Result<std::time::SystemTime> {
    let mut latest = modified(path);
    if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
        for entry in entries.flatten() {
            if entry.file_name() != "__pycache__" {
                latest = latest.max(newest(&entry.path())?);
            }
        }
    }
    Ok(latest)
}

/// The Python guests to build: each example's `examples/python/NAME/tasks.py`, and the
/// integration tests' and benchmarks' `integration-tests/python/NAME.py` and
/// `bench/python/NAME.py`, as `NAME`.
fn sources() -> Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    let read = |dir: &Path| {
        std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read {dir:?}: {e}"))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|entry| entry.path())
                    .collect::<Vec<_>>()
            })
    };
    for dir in read(&root().join("examples/python"))? {
        let tasks = dir.join("tasks.py");
        if tasks.is_file() {
            let name = dir
                .file_name()
                .expect("a folder")
                .to_string_lossy()
                .into_owned();
            found.push((name, tasks));
        }
    }
    let loose = [
        read(&root().join("integration-tests/python"))?,
        read(&root().join("bench/python"))?,
    ];
    for file in loose.into_iter().flatten() {
        if file.extension().is_some_and(|ext| ext == "py") {
            let name = file
                .file_stem()
                .expect("a file")
                .to_string_lossy()
                .into_owned();
            found.push((name, file));
        }
    }
    found.sort();
    Ok(found)
}

/// Builds every Python guest into `target/python/NAME.wasm`, unless the component is newer
/// than its source and the SDK.
pub fn build_examples() -> Result {
    ensure_venv()?;
    std::fs::create_dir_all(components()).map_err(|e| format!("cannot make target/python: {e}"))?;
    let sdk = newest(&root().join("guest-sdk/python/src"))?;
    for (name, source) in sources()? {
        let output = components().join(format!("{name}.wasm"));
        if modified(&output) > modified(&source).max(sdk) {
            continue;
        }
        run(Command::new(bin("dipla-py"))
            .args(["build", "--quiet"])
            .arg(&source)
            .arg("-o")
            .arg(&output))?;
    }
    Ok(())
}

/// Runs the Python SDK's own tests under the virtual environment's Python.
pub fn test_sdk() -> Result {
    ensure_venv()?;
    run(Command::new(bin("python"))
        .args(["-m", "unittest", "discover", "--quiet", "-s"])
        .arg(root().join("guest-sdk/python/tests")))
}
