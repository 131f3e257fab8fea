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

/// A self-signed certificate for `names`, made as `openssl req -x509 -newkey rsa:2048 -nodes
/// -subj /CN=localhost -addext subjectAltName=DNS:localhost` makes them: a CA certificate
/// (basicConstraints CA:TRUE). Written as `dir/NAME.pem` and `NAME.key`.
fn self_signed(dir: &Path, name: &str, names: &[&str]) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

/// A worker against `url` trusting `ca` that would try again three times if it took its
/// failure for a passing one: it must end at once, by itself.
fn worker_retrying(url: &str, ca: &Path, home: &Path) -> (Option<i32>, String) {
    let output = Command::new(bin("dipla-worker"))
        .args(["--server", url, "--no-bench", "--no-disk-cache"])
        .args(["--max-retries", "3", "--max-retry-secs", "1"])
        .arg("--ca-cert")
        .arg(ca)
        .arg("--identity")
        .arg(home.join("identity"))
        .env("XDG_CONFIG_HOME", home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!said.contains("trying again"), "{said}");
    (output.status.code(), said)
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
    assert_eq!(refused.status.code(), Some(3), "{said}");
    assert!(said.contains("not signed by an authority"), "{said}");
    assert!(said.contains("--ca-cert"), "{said}");

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

#[test]
fn the_servers_own_self_signed_ca_certificate_is_trusted_and_a_wrong_one_is_final() {
    let job = squares_job(20, "");
    let dir = job.dir.path();
    let home = dir.join("home");
    self_signed(dir, "own", &["localhost"]);
    self_signed(dir, "other", &["localhost"]);
    let (mut server, url) = tls_server(&job, dir, "own");

    // Another self-signed certificate: refused at once, saying what to give.
    let (code, said) = worker_retrying(&url, &dir.join("other.pem"), &home);
    assert_eq!(code, Some(3), "{said}");
    assert!(said.contains("CA certificate as its own"), "{said}");
    assert!(
        said.contains("give exactly that certificate with --ca-cert"),
        "{said}"
    );

    // The server's own, though a CA certificate and for another name than 127.0.0.1:
    // matched exactly, like a pin, it is trusted; the job runs.
    let joined = worker(&url, &dir.join("own.pem"), &home, &[]);
    assert!(
        joined.status.success(),
        "{}",
        String::from_utf8_lossy(&joined.stderr)
    );
    assert!(server.wait().unwrap().success());
}

#[test]
fn a_certificate_for_another_name_or_expired_says_so_plainly() {
    let job = squares_job(5, "");
    let dir = job.dir.path();
    let home = dir.join("home");
    let ours = ca(dir, "ours");

    // For localhost, reached as 127.0.0.1.
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ours).unwrap();
    std::fs::write(dir.join("named.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("named.key"), key.serialize_pem()).unwrap();
    let (mut server, url) = tls_server(&job, dir, "named");
    let (code, said) = worker_retrying(&url, &dir.join("ours-ca.pem"), &home);
    assert_eq!(code, Some(3), "{said}");
    assert!(
        said.contains("certificate is for localhost, not 127.0.0.1"),
        "{said}"
    );
    server.kill().unwrap();
    server.wait().unwrap();

    // Expired in 2020.
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2019, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    let cert = params.signed_by(&key, &ours).unwrap();
    std::fs::write(dir.join("old.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("old.key"), key.serialize_pem()).unwrap();
    let (mut server, url) = tls_server(&job, dir, "old");
    let (code, said) = worker_retrying(&url, &dir.join("ours-ca.pem"), &home);
    assert_eq!(code, Some(3), "{said}");
    assert!(said.contains("certificate for 127.0.0.1 expired"), "{said}");
    assert!(said.contains("renew"), "{said}");
    server.kill().unwrap();
    server.wait().unwrap();
}
