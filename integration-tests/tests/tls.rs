//! TLS end to end: a server with a certificate from a CA made in the test, workers that
//! trust that CA (and one that does not), and certificate pinning.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use crate::support::{JobDir, bin, server_process, squares_job};

/// A CA, written to `dir/NAME-ca.pem`; returns it to sign server certificates.
fn ca(dir: &Path, name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join(format!("{name}-ca.pem")), ca.pem()).unwrap();
    ca
}

/// A certificate for 127.0.0.1 signed by `ca`, written as `dir/NAME.pem` and `NAME.key`.
fn server_cert(dir: &Path, name: &str, ca: &CertifiedIssuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

/// `dipla-server run` on loopback with TLS from `dir/NAME.{pem,key}`; returns it, its URL and
/// what it said about plain text.
fn tls_server(job: &JobDir, dir: &Path, name: &str) -> (Child, String) {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--no-state",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let (server, url, said) = server_process(&job.manifest, &args);
    assert!(!said.contains("plain text"), "{said}");
    (server, url)
}

/// Runs a worker against `url` trusting `ca`, with its config (pins) in `home`.
fn worker(url: &str, ca: &Path, home: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(bin("dipla-worker"))
        .args([
            "--server",
            url,
            "--no-bench",
            "--no-disk-cache",
            "--max-retries",
            "0",
        ])
        .arg("--ca-cert")
        .arg(ca)
        .arg("--identity")
        .arg(home.join("identity"))
        .args(extra)
        .env("XDG_CONFIG_HOME", home)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn workers_join_over_tls_and_refuse_an_unknown_ca_or_a_changed_certificate() {
    let job = squares_job(20, "");
    let dir = job.dir.path();
    let home = dir.join("home");
    let ours = ca(dir, "ours");
    let _theirs = ca(dir, "theirs");
    server_cert(dir, "first", &ours);
    server_cert(dir, "second", &ours);

    let (mut server, url) = tls_server(&job, dir, "first");
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");

    // A worker trusting another CA cannot join.
    let refused = worker(&url, &dir.join("theirs-ca.pem"), &home, &[]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.to_lowercase().contains("certificate"), "{said}");

    // One trusting our CA runs the job, pinning the certificate.
    let joined = worker(&url, &dir.join("ours-ca.pem"), &home, &["--pin"]);
    assert!(
        joined.status.success(),
        "{}",
        String::from_utf8_lossy(&joined.stderr)
    );
    let status = server.wait().unwrap();
    assert!(status.success());
    let pins = std::fs::read_to_string(home.join("dipla/pins")).unwrap();
    assert!(pins.starts_with("127.0.0.1 "), "{pins}");

    // The same name with another certificate (even from the same CA) is refused once pinned.
    let (mut server, url) = tls_server(&job, dir, "second");
    let changed = worker(&url, &dir.join("ours-ca.pem"), &home, &["--pin"]);
    assert!(!changed.status.success());
    let said = String::from_utf8_lossy(&changed.stderr);
    assert!(said.contains("CHANGED"), "{said}");
    // Without pinning it is accepted.
    let unpinned = worker(&url, &dir.join("ours-ca.pem"), &home, &[]);
    assert!(
        unpinned.status.success(),
        "{}",
        String::from_utf8_lossy(&unpinned.stderr)
    );
    assert!(server.wait().unwrap().success());
}
