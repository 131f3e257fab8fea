//! The URL mistakes a volunteer makes, each told apart with what the right URL looks like and
//! the right exit code, never retried forever: another scheme, a web page or a missing path
//! instead of the worker endpoint, a port nothing listens on; the server's web address
//! understood; a lost connection told apart from one never made; `submit` given the worker
//! URL.

use std::io::BufRead;
use std::process::{Child, Command, Output, Stdio};

use crate::support::{bin, server_process, squares_job};

/// `dipla-worker ARGS` with `env`, run to its end (it must end by itself: a retry forever
/// would hang the test, so `--max-retries 3` is given, and the test checks nothing was
/// retried where nothing should be).
fn worker(args: &[&str], env: &[(&str, &str)]) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(bin("dipla-worker"));
    command
        .args(["--no-bench", "--no-disk-cache", "--cores", "1"])
        .arg("--identity")
        .arg(dir.path().join("identity"))
        .args(args)
        .env_remove("DIPLA_SERVER")
        .env_remove("DIPLA_WORKER_SERVER")
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, said)
}

/// A `dipla-server run` of a small job, and its worker URL (`ws://127.0.0.1:PORT/ws`).
fn server(job: &crate::support::JobDir) -> (Child, String) {
    let (server, url, _) =
        server_process(&job.manifest, &["--listen", "127.0.0.1:0", "--no-state"]);
    (server, url)
}

#[test]
fn the_servers_web_address_in_the_workers_own_variable_joins() {
    let job = squares_job(10, "");
    let (mut server, url) = server(&job);
    let web = url.replace("ws://", "http://").replace("/ws", "");
    // DIPLA_SERVER, which the README sets for `submit`, is not the worker's.
    let (output, said) = worker(
        &[],
        &[
            ("DIPLA_WORKER_SERVER", web.as_str()),
            ("DIPLA_SERVER", "http://elsewhere:1"),
        ],
    );
    assert!(output.status.success(), "{said}");
    assert!(said.contains("said goodbye"), "{said}");
    assert!(server.wait().unwrap().success());
}

#[test]
fn dipla_server_alone_is_not_read_and_the_worker_says_which_variable_it_reads() {
    let (output, said) = worker(&[], &[("DIPLA_SERVER", "http://127.0.0.1:7070")]);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains("DIPLA_WORKER_SERVER"), "{said}");
}

#[test]
fn another_scheme_or_none_is_refused_before_connecting() {
    let (output, said) = worker(&["--server", "ftp://host.example:7070/ws"], &[]);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains("cannot connect with ftp://"), "{said}");
    assert!(
        said.contains("the worker URL is ws://host.example:7070/ws"),
        "{said}"
    );

    let (output, said) = worker(&["--server", "host.example:7070"], &[]);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains("has no scheme"), "{said}");
    assert!(said.contains("ws://host.example:7070/ws"), "{said}");
}

#[test]
fn a_web_page_or_a_missing_path_is_not_the_worker_endpoint() {
    let job = squares_job(10, "");
    let (mut server, url) = server(&job);
    let root = url.trim_end_matches("ws");

    // The server's dashboard answers at `/`, with a page.
    let (output, said) = worker(&["--server", root, "--max-retries", "3"], &[]);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains("is not a Dipla worker endpoint"), "{said}");
    assert!(said.contains("HTTP 200"), "{said}");
    assert!(said.contains(&format!("the worker URL is {url}")), "{said}");
    assert!(!said.contains("trying again"), "{said}");

    let (output, said) = worker(
        &[
            "--server",
            format!("{root}workers").as_str(),
            "--max-retries",
            "3",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains("HTTP 404"), "{said}");
    assert!(said.contains(&format!("the worker URL is {url}")), "{said}");
    assert!(!said.contains("trying again"), "{said}");

    // The job is still there for a worker with the right URL, given without /ws.
    let (output, said) = worker(&["--server", root.trim_end_matches('/')], &[]);
    assert!(output.status.success(), "{said}");
    assert!(server.wait().unwrap().success());
}

#[test]
fn a_port_nothing_listens_on_is_never_connected_not_lost() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("ws://{free}/ws");
    let (output, said) = worker(&["--server", url.as_str(), "--max-retries", "1"], &[]);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains("never connected"), "{said}");
    assert!(
        said.contains(&format!("nothing listens on {free}")),
        "{said}"
    );
    assert!(said.contains("tried 2 times"), "{said}");
    assert!(!said.contains("connection lost"), "{said}");
}

#[test]
fn a_connection_lost_after_joining_is_told_as_such() {
    // The job waits for two workers: the one joining waits, connected, until the server dies.
    let job = squares_job(10, "");
    let (mut server, url, _) = server_process(
        &job.manifest,
        &[
            "--listen",
            "127.0.0.1:0",
            "--no-state",
            "--min-workers",
            "2",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut worker = Command::new(bin("dipla-worker"))
        .args([
            "--no-bench",
            "--no-disk-cache",
            "--cores",
            "1",
            "--max-retries",
            "1",
        ])
        .args(["--server", &url])
        .arg("--identity")
        .arg(dir.path().join("identity"))
        .env_remove("DIPLA_WORKER_SERVER")
        .env("RUST_LOG", "warn,dipla_worker=info")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(worker.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("joined") {
        assert!(stderr.read_line(&mut said).unwrap() > 0, "{said}");
    }
    server.kill().unwrap();
    server.wait().unwrap();
    std::io::Read::read_to_string(&mut stderr, &mut said).unwrap();
    let status = worker.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains("connection lost; trying again"), "{said}");
    assert!(!said.contains("never connected"), "{said}");
}

#[test]
fn submit_given_the_worker_url_says_it_wants_the_web_address() {
    // Refused before any call: no server is needed to tell.
    let job = squares_job(3, "");
    for given in [
        "ws://127.0.0.1:7070/ws",
        "ws://127.0.0.1:7070",
        "http://127.0.0.1:7070/ws",
    ] {
        let output = Command::new(bin("dipla-server"))
            .args(["submit", job.manifest.to_str().unwrap(), "--server", given])
            .env("DIPLA_ADMIN_TOKEN", "secret")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{given}: {said}");
        assert!(said.contains("want the server's web address"), "{said}");
        assert!(said.contains("here http://127.0.0.1:7070"), "{said}");
    }
}
