//! `cargo xtask dist`: static release archives of `dipla-worker` and `dipla-server` for
//! x86_64 Linux (musl), so one download runs on any distribution, whatever its glibc.
//!
//! The musl target is added with rustup; its C (ring, mimalloc, SQLite) is compiled with
//! `musl-gcc` (Debian's `musl-tools`), which must be installed. The binaries are checked to be
//! static (`ldd`, and their ELF headers) inside `target/dist` before they are archived.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::{
    Result, cargo, elf, ensure_target, has_program, package_version, root, run, target_dir,
};

/// The target of the release archives.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// The two binaries a release ships (the worker first).
pub const BINARIES: [&str; 2] = ["dipla-worker", "dipla-server"];

/// Builds, checks and archives both binaries; prints what it wrote.
pub fn dist(args: &[String]) -> Result {
    if let Some(arg) = args.first() {
        return Err(format!("dist takes no arguments (got {arg})"));
    }
    let built = build_musl(&BINARIES)?;
    let out = target_dir()?.join("dist");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot make {}: {e}", out.display()))?;
    let mut archives = Vec::new();
    for (binary, path) in BINARIES.iter().zip(&built) {
        archives.push(archive(binary, path, &out)?);
    }
    let sums = Command::new("sha256sum")
        .args(&archives)
        .current_dir(&out)
        .output()
        .map_err(|e| format!("cannot run sha256sum (coreutils): {e}"))?;
    if !sums.status.success() {
        return Err(format!(
            "sha256sum failed: {}",
            String::from_utf8_lossy(&sums.stderr)
        ));
    }
    write(&out.join("SHA256SUMS"), &sums.stdout)?;
    for archive in &archives {
        let size = std::fs::metadata(out.join(archive)).map_or(0, |m| m.len());
        eprintln!(
            "xtask: wrote {} ({:.1} MiB)",
            out.join(archive).display(),
            mib(size)
        );
    }
    eprintln!("xtask: wrote {}", out.join("SHA256SUMS").display());
    Ok(())
}

/// Builds `packages` (whose binaries have their names) for the musl target in the release
/// profile and returns the binaries' paths. Installs the target if missing; fails, naming what
/// to install, without a musl C compiler.
pub fn build_musl(packages: &[&str]) -> Result<Vec<PathBuf>> {
    ensure_target(MUSL_TARGET)?;
    let cc_var = format!("CC_{}", MUSL_TARGET.replace('-', "_"));
    let cc = std::env::var(&cc_var).unwrap_or_else(|_| "musl-gcc".to_owned());
    if !has_program(&cc) {
        return Err(format!(
            "building for {MUSL_TARGET} needs a musl C compiler for the C code of ring, mimalloc \
             and SQLite, and `{cc} --version` does not run: install musl-gcc (Debian and \
             Ubuntu: apt-get install musl-tools; Fedora: dnf install musl-gcc) or set {cc_var} \
             to another musl C compiler"
        ));
    }
    let mut command = cargo();
    command
        .args(["build", "--release", "--locked", "--target", MUSL_TARGET])
        .env(&cc_var, &cc);
    for package in packages {
        command.args(["--package", package]);
    }
    let started = Instant::now();
    run(&mut command)?;
    eprintln!(
        "xtask: built {} for {MUSL_TARGET} in {:.0?}",
        packages.join(", "),
        started.elapsed()
    );
    let dir = target_dir()?.join(MUSL_TARGET).join("release");
    Ok(packages.iter().map(|package| dir.join(package)).collect())
}

/// Fails unless the binary at `path` is static: no program interpreter in its ELF headers, and
/// `ldd` agrees ("not a dynamic executable", or "statically linked" for a static-pie).
/// Returns what `ldd` said.
pub fn check_static(path: &Path) -> Result<String> {
    let binary = elf::inspect(path)?;
    let ldd = Command::new("ldd").arg(path).output().map_err(|e| {
        format!(
            "cannot run ldd (to check {} is static): {e}",
            path.display()
        )
    })?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&ldd.stdout),
        String::from_utf8_lossy(&ldd.stderr)
    )
    .trim()
    .to_owned();
    let ldd_static =
        said.contains("not a dynamic executable") || said.contains("statically linked");
    if binary.dynamic || !ldd_static {
        return Err(format!(
            "{} is not static (it would need this machine's C library); ldd says: {said}",
            path.display()
        ));
    }
    Ok(said)
}

/// Copies `binary` (built at `built`) with its notes into `out/NAME-VERSION-TARGET/`, checks
/// it there, and archives that directory as `NAME-VERSION-TARGET.tar.gz`; returns the
/// archive's file name.
fn archive(binary: &str, built: &Path, out: &Path) -> Result<String> {
    let version = package_version(binary)?;
    let name = format!("{binary}-{version}-{MUSL_TARGET}");
    let dir = out.join(&name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let inside = dir.join(binary);
    std::fs::copy(built, &inside)
        .map_err(|e| format!("cannot copy {} (was it built?): {e}", built.display()))?;
    let ldd = check_static(&inside)?;
    eprintln!("xtask: ldd {}: {ldd}", inside.display());

    let packaging = root().join("packaging");
    let copy = |from: &Path, to: &str| {
        std::fs::copy(from, dir.join(to))
            .map(drop)
            .map_err(|e| format!("cannot copy {}: {e}", from.display()))
    };
    copy(&packaging.join("debian/copyright"), "LICENSE")?;
    write(&dir.join("README"), readme(binary, &version).as_bytes())?;
    if binary == "dipla-worker" {
        copy(
            &packaging.join("dipla-worker.service"),
            "dipla-worker.service",
        )?;
        copy(&packaging.join("worker.toml"), "worker.toml")?;
    }

    let file = format!("{name}.tar.gz");
    run(Command::new("tar")
        .current_dir(out)
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-czf",
        ])
        .args([&file, &name]))?;
    std::fs::remove_dir_all(&dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    Ok(file)
}

/// The README of an archive.
fn readme(binary: &str, version: &str) -> String {
    let what = if binary == "dipla-worker" {
        "the Dipla volunteer worker: it runs a Dipla server's WebAssembly tasks in a sandbox.\n\
         \n\
         Run it:          ./dipla-worker --server ws://HOST:7070/ws   (--help for the options)\n\
         Its benchmark:   ./dipla-worker bench\n\
         \n\
         As a service (Debian and Ubuntu: the dipla-worker .deb does all this):\n\
         \x20 install -m 755 dipla-worker /usr/bin/\n\
         \x20 install -D -m 640 worker.toml /etc/dipla/worker.toml    # then set `server` in it\n\
         \x20 install -m 644 dipla-worker.service /etc/systemd/system/\n\
         \x20 useradd --system --home-dir /var/lib/dipla --no-create-home --shell /usr/sbin/nologin dipla\n\
         \x20 chgrp dipla /etc/dipla/worker.toml\n\
         \x20 systemctl daemon-reload && systemctl enable --now dipla-worker\n\
         \x20 dipla-worker status; journalctl -u dipla-worker\n"
    } else {
        "the Dipla server: it runs a job over sandboxed WebAssembly workers.\n\
         \n\
         Run a job:       ./dipla-server run job.toml --listen 0.0.0.0:7070\n\
         Many jobs:       ./dipla-server serve   (--help for each command)\n"
    };
    format!(
        "{binary} {version} for {MUSL_TARGET}, {what}\n\
         One static binary (musl libc linked in): it needs no particular C library and runs on\n\
         any x86_64 Linux. Check the download against SHA256SUMS: sha256sum -c SHA256SUMS\n\
         Licence: MIT or Apache-2.0 (LICENSE).\n"
    )
}

fn write(path: &Path, contents: &[u8]) -> Result {
    std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Bytes as MiB, for messages.
#[allow(clippy::cast_precision_loss)] // sizes of files, far below 2^52
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
