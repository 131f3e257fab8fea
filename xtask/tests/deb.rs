//! The worker's Debian package, built as CI builds it (`cargo xtask deb --binary` on the
//! release build of `dipla-worker` it already has) and unpacked in a scratch root with
//! `dpkg-deb -x`: its files, modes and owners, its control fields, conffiles and maintainer
//! scripts, the binary runs from there, the unit's directives, and the unit passes
//! `systemd-analyze verify` where that tool exists.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace's version, which the worker's is.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The package, built once for every test here.
struct Package {
    deb: PathBuf,
    /// `dpkg-deb -x`: the files as installed.
    root: PathBuf,
    /// `dpkg-deb -e`: control, conffiles, the maintainer scripts.
    control: PathBuf,
}

fn package() -> &'static Package {
    static PACKAGE: OnceLock<Package> = OnceLock::new();
    PACKAGE.get_or_init(|| {
        assert!(
            Command::new("dpkg-deb").arg("--version").output().is_ok(),
            "dpkg-deb is missing: it comes with dpkg (apt-get install dpkg; `cargo xtask test` \
             installs it)"
        );
        let worker = Path::new(env!("CARGO_BIN_EXE_xtask")).with_file_name("dipla-worker");
        assert!(
            worker.exists(),
            "{} is missing: build it first (cargo build --release -p dipla-worker; \
             `cargo xtask test` does)",
            worker.display()
        );
        let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deb-test");
        if scratch.exists() {
            std::fs::remove_dir_all(&scratch).unwrap();
        }
        std::fs::create_dir_all(&scratch).unwrap();
        succeed(
            Command::new(env!("CARGO_BIN_EXE_xtask"))
                .args(["deb", "--binary"])
                .arg(&worker)
                .arg("--out-dir")
                .arg(&scratch)
                .args(["--compression", "gzip"]),
        );
        let deb = scratch.join(format!("dipla-worker_{VERSION}_amd64.deb"));
        assert!(deb.exists(), "no {}", deb.display());
        let root = scratch.join("root");
        let control = scratch.join("control");
        succeed(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
        succeed(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
        Package { deb, root, control }
    })
}

/// Runs `command`, fails the test unless it succeeds, returns its output.
fn succeed(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn the_package_holds_the_binary_the_unit_the_config_and_the_copyright_all_root_owned() {
    let package = package();
    let listing = succeed(Command::new("dpkg-deb").arg("-c").arg(&package.deb));
    let listing = String::from_utf8(listing.stdout).unwrap();
    let mut files = BTreeMap::new();
    for line in listing.lines() {
        // drwxr-xr-x root/root         0 2024-01-01 00:00 ./usr/bin/
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (perms, owner, path) = (fields[0], fields[1], fields[5]);
        assert_eq!(owner, "root/root", "{line}");
        if perms.starts_with('d') {
            assert_eq!(perms, "drwxr-xr-x", "{line}");
        } else {
            files.insert(path.trim_start_matches("./").to_owned(), perms.to_owned());
        }
    }
    let expected: BTreeMap<String, String> = [
        ("etc/dipla/worker.toml", "-rw-r--r--"),
        ("lib/systemd/system/dipla-worker.service", "-rw-r--r--"),
        ("usr/bin/dipla-worker", "-rwxr-xr-x"),
        ("usr/share/doc/dipla-worker/copyright", "-rw-r--r--"),
    ]
    .into_iter()
    .map(|(path, perms)| (path.to_owned(), perms.to_owned()))
    .collect();
    assert_eq!(files, expected, "{listing}");
    assert_eq!(mode(&package.root.join("usr/bin/dipla-worker")), 0o755);
}

#[test]
fn the_binary_runs_from_the_scratch_root() {
    let output =
        succeed(Command::new(package().root.join("usr/bin/dipla-worker")).arg("--version"));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("dipla-worker {VERSION}")
    );
}

#[test]
fn control_fields_conffiles_and_maintainer_scripts() {
    let package = package();
    let info = succeed(Command::new("dpkg-deb").arg("-I").arg(&package.deb));
    let info = String::from_utf8(info.stdout).unwrap();
    assert!(info.contains(" Package: dipla-worker\n"), "{info}");

    let field = |name: &str| {
        let output = succeed(
            Command::new("dpkg-deb")
                .args(["--field"])
                .arg(&package.deb)
                .arg(name),
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(field("Package"), "dipla-worker");
    assert_eq!(field("Version"), VERSION);
    assert_eq!(field("Architecture"), "amd64");
    assert!(field("Maintainer").contains('@'));
    assert!(field("Installed-Size").parse::<u64>().unwrap() > 1000);
    // The CI build links glibc: the package says which (the static musl one has no Depends).
    let depends = field("Depends");
    assert!(depends.starts_with("libc6 (>= 2."), "Depends: {depends}");
    assert!(field("Description").starts_with("Dipla volunteer worker"));

    assert_eq!(
        std::fs::read_to_string(package.control.join("conffiles")).unwrap(),
        "/etc/dipla/worker.toml\n"
    );
    for script in ["postinst", "prerm", "postrm"] {
        let path = package.control.join(script);
        assert_eq!(mode(&path), 0o755, "{script}");
        succeed(Command::new("sh").arg("-n").arg(&path));
    }
    let postinst = std::fs::read_to_string(package.control.join("postinst")).unwrap();
    // The user: a system one, no login, its home the state directory (nothing in /home).
    assert!(postinst.contains("useradd --system"), "{postinst}");
    assert!(postinst.contains("--shell /usr/sbin/nologin"), "{postinst}");
    assert!(postinst.contains("--home-dir /var/lib/dipla --no-create-home"));
    assert!(postinst.contains("systemctl daemon-reload"));
    // Never started (or enabled) by installing: the volunteer sets a server first.
    assert!(!postinst.contains("systemctl start") && !postinst.contains("enable dipla"));
    let prerm = std::fs::read_to_string(package.control.join("prerm")).unwrap();
    assert!(prerm.contains("systemctl stop dipla-worker.service"));
    let postrm = std::fs::read_to_string(package.control.join("postrm")).unwrap();
    assert!(postrm.contains("rm -rf /var/lib/dipla /var/cache/dipla"));
}

/// The unit's `Key=value` lines, in order.
fn directives(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('['))
        .map(|line| {
            let (key, value) = line.split_once('=').expect("Key=value");
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn the_unit_runs_as_dipla_from_the_config_hardened_and_at_idle_priority() {
    let unit = std::fs::read_to_string(
        package()
            .root
            .join("lib/systemd/system/dipla-worker.service"),
    )
    .unwrap();
    let directives = directives(&unit);
    for (key, value) in [
        ("User", "dipla"),
        (
            "ExecStart",
            "/usr/bin/dipla-worker --config /etc/dipla/worker.toml",
        ),
        ("StateDirectory", "dipla"),
        ("CacheDirectory", "dipla"),
        ("Environment", "DIPLA_IDENTITY=/var/lib/dipla/identity"),
        ("Environment", "DIPLA_CACHE_DIR=/var/cache/dipla"),
        ("Restart", "always"),
        ("RestartPreventExitStatus", "2"),
        ("CPUSchedulingPolicy", "idle"),
        ("Nice", "19"),
        ("IOSchedulingClass", "idle"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("SystemCallArchitectures", "native"),
        ("WantedBy", "multi-user.target"),
    ] {
        assert!(
            directives.iter().any(|(k, v)| k == key && v == value),
            "the unit has no {key}={value}:\n{unit}"
        );
    }
    let restart_secs: u64 = directives
        .iter()
        .find(|(key, _)| key == "RestartSec")
        .expect("RestartSec")
        .1
        .parse()
        .unwrap();
    assert!(
        (10..=300).contains(&restart_secs),
        "RestartSec={restart_secs}"
    );
    // wasmtime's compiler maps code writable, then executable.
    assert!(
        !directives
            .iter()
            .any(|(key, _)| key == "MemoryDenyWriteExecute"),
        "{unit}"
    );
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("note: no systemd-analyze on this machine: the unit is not verified");
        return;
    }
    let package = package();
    // The unit as installed, but starting the binary of the scratch root (verify checks that
    // ExecStart is an executable; `--root` would also want the whole of systemd's units there).
    let installed = package.root.join("usr/bin/dipla-worker");
    let unit =
        std::fs::read_to_string(package.root.join("lib/systemd/system/dipla-worker.service"))
            .unwrap();
    let scratch_unit = unit.replace(
        "ExecStart=/usr/bin/dipla-worker ",
        &format!("ExecStart={} ", installed.display()),
    );
    assert_ne!(unit, scratch_unit, "no ExecStart=/usr/bin/dipla-worker");
    let dir = package.deb.with_file_name("verify");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dipla-worker.service");
    std::fs::write(&path, scratch_unit).unwrap();
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // It warns about unknown keys and bad values without failing: any word from it fails.
    assert!(
        output.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

#[test]
fn the_config_template_is_all_comments_and_its_examples_are_the_worker_s_keys() {
    let template = std::fs::read_to_string(package().root.join("etc/dipla/worker.toml")).unwrap();
    assert!(
        template
            .lines()
            .all(|line| line.trim().is_empty() || line.starts_with('#')),
        "the template sets something: a worker must have no server until the volunteer sets one"
    );
    // Uncommented, its examples are valid TOML whose keys are the worker's long options.
    let examples: String = template
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .filter(|line| {
            line.split_once(" = ").is_some_and(|(key, _)| {
                !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            })
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let table: toml::Table = examples
        .parse()
        .unwrap_or_else(|e| panic!("{e}\n{examples}"));
    let known = [
        "server",
        "cores",
        "max-memory-mb",
        "cpu-percent",
        "pause-when-busy",
        "on-battery",
        "hours",
        "priority",
        "identity",
        "cache-dir",
        "state-file",
        "token",
    ];
    for key in table.keys() {
        assert!(known.contains(&key.as_str()), "unknown key {key}");
    }
    assert!(table.contains_key("server"));
}
