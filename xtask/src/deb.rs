//! `cargo xtask deb`: the Debian package of the worker, `dipla-worker_VERSION_ARCH.deb`, a
//! systemd service under a dedicated `dipla` user (`packaging/`: the unit, the configuration
//! template, the maintainer scripts, the copyright).
//!
//! Which binary: `--binary PATH` packages that one (CI packages the release build it already
//! has); `--musl` the static one `cargo xtask dist` builds (no `Depends` at all); neither, a
//! release build for this machine, which depends on the glibc it was linked against (read
//! from the binary). Built with `dpkg-deb --root-owner-group --build`, so no root is needed.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, cargo, dist, elf, package_version, root, run, target_dir};

const USAGE: &str =
    "usage: cargo xtask deb [--binary PATH | --musl] [--out-dir DIR] [--compression xz|gzip]";

/// Builds the package; prints its path.
pub fn deb(args: &[String]) -> Result {
    let mut binary = None;
    let mut musl = false;
    let mut out_dir = None;
    // xz, as Debian's own packages; the test takes gzip, a tenth of the time (about 1 s
    // against 15 for the worker).
    let mut compression = "xz".to_owned();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--binary" => binary = Some(PathBuf::from(args.next().ok_or(USAGE)?)),
            "--musl" => musl = true,
            "--out-dir" => out_dir = Some(PathBuf::from(args.next().ok_or(USAGE)?)),
            "--compression" => match args.next().map(String::as_str) {
                Some(kind @ ("xz" | "gzip")) => kind.clone_into(&mut compression),
                _ => return Err(USAGE.to_owned()),
            },
            _ => return Err(format!("unknown argument {arg}\n{USAGE}")),
        }
    }
    let binary = match (binary, musl) {
        (Some(_), true) => return Err(format!("--binary or --musl, not both\n{USAGE}")),
        (Some(binary), false) => binary,
        // Built with the server, as `dist` builds it: the same features, so the same build.
        (None, true) => dist::build_musl(&dist::BINARIES)?.remove(0),
        (None, false) => {
            run(cargo().args([
                "build",
                "--release",
                "--locked",
                "--package",
                "dipla-worker",
            ]))?;
            target_dir()?.join("release/dipla-worker")
        }
    };
    let out_dir = match out_dir {
        Some(dir) => dir,
        None => target_dir()?.join("dist"),
    };
    let deb = build(&binary, &out_dir, &compression)?;
    let size = std::fs::metadata(&deb).map_or(0, |m| m.len());
    eprintln!(
        "xtask: wrote {} ({:.1} MiB)",
        deb.display(),
        dist::mib(size)
    );
    Ok(())
}

/// Packages `binary` as `out_dir/dipla-worker_VERSION_ARCH.deb`, its files compressed with
/// `compression` (dpkg-deb's `-Z`); returns that path.
fn build(binary: &Path, out_dir: &Path, compression: &str) -> Result<PathBuf> {
    let info = elf::inspect(binary)?;
    let version = package_version("dipla-worker")?;
    let name = format!("dipla-worker_{version}_{}", info.debian_arch);
    let stage = out_dir.join(&name);
    if stage.exists() {
        std::fs::remove_dir_all(&stage)
            .map_err(|e| format!("cannot clear {}: {e}", stage.display()))?;
    }
    let packaging = root().join("packaging");
    let file = |from: &Path, to: &str, mode: u32| place(from, &stage.join(to), mode);
    file(binary, "usr/bin/dipla-worker", 0o755)?;
    file(
        &packaging.join("dipla-worker.service"),
        "lib/systemd/system/dipla-worker.service",
        0o644,
    )?;
    file(
        &packaging.join("worker.toml"),
        "etc/dipla/worker.toml",
        0o644,
    )?;
    file(
        &packaging.join("debian/copyright"),
        "usr/share/doc/dipla-worker/copyright",
        0o644,
    )?;
    for script in ["postinst", "prerm", "postrm"] {
        file(
            &packaging.join("debian").join(script),
            &format!("DEBIAN/{script}"),
            0o755,
        )?;
    }
    write(&stage.join("DEBIAN/conffiles"), "/etc/dipla/worker.toml\n")?;
    directories_0755(&stage)?;
    let installed_kib = installed_size(&stage)?;
    write(
        &stage.join("DEBIAN/control"),
        &control(&version, &info, installed_kib),
    )?;

    let deb = out_dir.join(format!("{name}.deb"));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", &format!("-Z{compression}"), "--build"])
        .arg(&stage)
        .arg(&deb))
    .map_err(|e| format!("{e} (dpkg-deb comes with dpkg: apt-get install dpkg)"))?;
    std::fs::remove_dir_all(&stage)
        .map_err(|e| format!("cannot remove {}: {e}", stage.display()))?;
    Ok(deb)
}

/// The package's `DEBIAN/control`.
fn control(version: &str, binary: &elf::Binary, installed_kib: u64) -> String {
    let mut control = format!(
        "Package: dipla-worker\n\
         Version: {version}\n\
         Architecture: {}\n\
         Maintainer: Dipla project <dipla@example.invalid>\n\
         Installed-Size: {installed_kib}\n",
        binary.debian_arch
    );
    let mut depends = Vec::new();
    if binary.dynamic {
        let (major, minor) = binary.glibc.unwrap_or((2, 17));
        depends.push(format!("libc6 (>= {major}.{minor})"));
        if binary.libgcc_s {
            depends.push("libgcc-s1 (>= 4.2)".to_owned());
        }
    }
    if !depends.is_empty() {
        let _ = writeln!(control, "Depends: {}", depends.join(", "));
    }
    control.push_str(
        "Section: net\n\
         Priority: optional\n\
         Description: Dipla volunteer worker: gives this machine's spare cycles to a Dipla server\n \
         Runs the WebAssembly tasks of a Dipla server's jobs in a wasmtime sandbox with fuel,\n \
         memory and stack limits and no host functions. Installs a hardened systemd service,\n \
         dipla-worker.service, under a dedicated dipla user at idle CPU and I/O priority,\n \
         configured in /etc/dipla/worker.toml; it starts once a server is set there.\n",
    );
    control
}

/// Copies `from` to `to` (making its directories, 0755) with `mode`.
fn place(from: &Path, to: &Path, mode: u32) -> Result {
    let parent = to.parent().expect("a file in the package");
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot make {}: {e}", parent.display()))?;
    std::fs::copy(from, to).map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
    set_mode(to, mode)
}

fn write(path: &Path, contents: &str) -> Result {
    std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    set_mode(path, 0o644)
}

fn set_mode(path: &Path, mode: u32) -> Result {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))
}

/// Sets `dir` and every directory below it to 0755, whatever the umask made them.
fn directories_0755(dir: &Path) -> Result {
    set_mode(dir, 0o755)?;
    for entry in
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?
    {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            directories_0755(&path)?;
        }
    }
    Ok(())
}

/// `Installed-Size`: the KiB of the files outside `DEBIAN`, each rounded up, and directories
/// counted as one each (as dpkg-gencontrol does).
fn installed_size(stage: &Path) -> Result<u64> {
    fn walk(dir: &Path, total: &mut u64) -> Result {
        for entry in
            std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        {
            let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
            let meta = entry
                .metadata()
                .map_err(|e| format!("cannot stat {}: {e}", entry.path().display()))?;
            if meta.is_dir() {
                if entry.file_name() != "DEBIAN" {
                    *total += 1;
                    walk(&entry.path(), total)?;
                }
            } else {
                *total += meta.len().div_ceil(1024);
            }
        }
        Ok(())
    }
    let mut total = 0;
    walk(stage, &mut total)?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(dynamic: bool) -> elf::Binary {
        elf::Binary {
            debian_arch: "amd64",
            dynamic,
            glibc: dynamic.then_some((2, 34)),
            libgcc_s: dynamic,
        }
    }

    #[test]
    fn a_glibc_build_depends_on_its_glibc_and_a_static_one_on_nothing() {
        let dynamic = control("0.1.0", &binary(true), 100);
        assert!(
            dynamic.contains("\nDepends: libc6 (>= 2.34), libgcc-s1 (>= 4.2)\n"),
            "{dynamic}"
        );
        let static_build = control("0.1.0", &binary(false), 100);
        assert!(!static_build.contains("Depends"), "{static_build}");
        for control in [dynamic, static_build] {
            assert!(
                control.starts_with("Package: dipla-worker\nVersion: 0.1.0\nArchitecture: amd64\n")
            );
            assert!(control.contains("\nInstalled-Size: 100\n"));
            // Continuation lines of the description start with a space; no line is empty.
            assert!(control.ends_with('\n') && !control.contains("\n\n"));
        }
    }
}
