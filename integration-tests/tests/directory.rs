//! The project directory: `dipla-server run --announce` announces a project to
//! `dipla-server directory`, `dipla-worker --directory` lists the projects and joins one,
//! and a project whose server is gone leaves the listing.

use crate::support::{PATIENCE, addr_of, bin, eventually, http, server_process, squares_job};
use std::io::BufRead;
use std::process::{Child, Command, Output, Stdio};

/// A `dipla-server directory` process on a free loopback port, killed when dropped.
struct Directory {
    child: Child,
    /// `http://ADDR`.
    url: String,
}

impl Directory {
    /// Starts one with extra flags, once it listens.
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(bin("dipla-server"))
            .args(["directory", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut said = String::new();
        let url = loop {
            let mut line = String::new();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "the directory exited: {said}"
            );
            said.push_str(&line);
            if let Some(url) = line
                .trim()
                .strip_prefix("dipla-server: directory listening on ")
            {
                break url.to_owned();
            }
        };
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Self { child, url }
    }

    /// `GET /api/projects`, parsed.
    fn projects(&self) -> Vec<serde_json::Value> {
        let (code, _, body) = http(self.addr(), "GET", "/api/projects", None);
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `dipla-worker ARGS` to its end (killed, failing the test, if it has not ended
/// within [`PATIENCE`]).
fn worker(args: &[&str]) -> Output {
    let child = Command::new(bin("dipla-worker"))
        .args(args)
        .env_remove("DIPLA_WORKER_SERVER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (done, output) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output().unwrap()));
    output.recv_timeout(PATIENCE).unwrap_or_else(|_| {
        let _ = Command::new("kill").arg(pid.to_string()).status();
        panic!("dipla-worker {args:?} did not exit within {PATIENCE:?}")
    })
}

/// Waits for `child` to exit.
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    eventually("the process exit", || child.try_wait().unwrap())
}

#[test]
fn a_worker_finds_an_announced_project_in_the_directory_and_joins_it() {
    // Announcements last longer than any wait: a project that leaves the listing was taken
    // off by its failed health check, not by its announcement expiring.
    let directory = Directory::start(&["--check-secs", "0.2", "--ttl-secs", "600"]);
    let job = squares_job(30, "");
    let out = job.dir.path().join("results.jsonl");
    let (mut server, url, _) = server_process(
        &job.manifest,
        &[
            "--listen",
            "127.0.0.1:0",
            "--local-workers",
            "0",
            "--no-state",
            "--out",
            out.to_str().unwrap(),
            "--announce",
            &directory.url,
            "--name",
            "squares",
            "--description",
            "Squares of 0..30 <for testing>",
            "--wants-workers",
            "3",
            "--announce-secs",
            "0.2",
        ],
    );

    // The server answers its health check, which the directory asks.
    let (code, _, body) = http(&addr_of(&url), "GET", "/health", None);
    assert_eq!(code, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["name"], "squares");

    // Once announced and checked, the project is listed: as JSON, on the page, and by the
    // worker.
    eventually("squares listed", || {
        (!directory.projects().is_empty()).then_some(())
    });
    let projects = directory.projects();
    assert_eq!(projects.len(), 1, "{projects:?}");
    assert_eq!(projects[0]["name"], "squares");
    assert_eq!(projects[0]["url"], url.as_str());
    assert_eq!(projects[0]["wants_workers"], 3);
    assert_eq!(projects[0]["workers"], 0);
    assert!(projects[0]["last_checked_secs_ago"].as_f64().unwrap() < 5.0);
    let (code, _, page) = http(directory.addr(), "GET", "/", None);
    assert_eq!(code, 200);
    assert!(page.contains("<td>squares</td>"), "{page}");
    assert!(page.contains("&lt;for testing&gt;"), "{page}");

    let listed = worker(&["--directory", &directory.url]);
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{listed:?}");
    let row = stdout
        .lines()
        .find(|line| line.starts_with("squares "))
        .unwrap_or_else(|| panic!("no squares row: {stdout}"));
    assert!(row.contains(&url), "{row}");
    assert!(row.contains("Squares of 0..30 <for testing>"), "{row}");
    assert!(stdout.starts_with("NAME"), "{stdout}");

    // A project the directory does not list: exit code 2, naming those it lists.
    let unknown = worker(&["--directory", &directory.url, "--project", "cubes"]);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("\"cubes\""), "{stderr}");
    assert!(stderr.contains("it lists: squares"), "{stderr}");
    // --directory or --server, not both.
    let both = worker(&["--directory", &directory.url, "--server", &url]);
    assert_eq!(both.status.code(), Some(2), "{both:?}");

    // Joining by name runs the job.
    let home = tempfile::tempdir().unwrap();
    let identity = home.path().join("identity");
    let joined = worker(&[
        "--directory",
        &directory.url,
        "--project",
        "squares",
        "--cores",
        "1",
        "--no-bench",
        "--cache-dir",
        home.path().to_str().unwrap(),
        "--identity",
        identity.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&joined.stderr);
    assert!(joined.status.success(), "{stderr}");
    assert!(stderr.contains("joining project squares at"), "{stderr}");
    assert!(wait_exit(&mut server).success());
    let results = std::fs::read_to_string(&out).unwrap();
    let mut outputs: Vec<(u64, u64)> = results
        .lines()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                line["input"].as_u64().unwrap(),
                line["output"].as_u64().unwrap(),
            )
        })
        .collect();
    outputs.sort_unstable();
    let expected: Vec<(u64, u64)> = (0..30).map(|x| (x, x * x)).collect();
    assert_eq!(outputs, expected);

    // Its server gone, the project fails its health check and leaves the listing (long
    // before its announcement would expire).
    eventually("squares unlisted", || {
        directory.projects().is_empty().then_some(())
    });
    let listed = worker(&["--directory", &directory.url]);
    assert!(listed.status.success(), "{listed:?}");
    assert!(
        String::from_utf8_lossy(&listed.stderr).contains("lists no projects"),
        "{listed:?}"
    );
}

#[test]
fn a_serving_server_announces_itself_and_its_workers_join_through_the_directory() {
    let directory = Directory::start(&["--check-secs", "0.2"]);
    let data = tempfile::tempdir().unwrap();
    let (server, _url, _) = crate::support::dipla_server(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-token",
        crate::serve::TOKEN,
        "--data-dir",
        data.path().to_str().unwrap(),
        "--announce",
        &directory.url,
        "--name",
        "many-jobs",
        "--description",
        "a server that takes jobs",
        "--announce-secs",
        "0.2",
    ]);
    let mut server = crate::serve::Serving(server);
    eventually("the serving server listed", || {
        directory
            .projects()
            .iter()
            .any(|project| project["name"] == "many-jobs")
            .then_some(())
    });
    let listed = worker(&["--directory", &directory.url]);
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(
        table.contains("many-jobs") && table.contains("a server that takes jobs"),
        "{table}"
    );
    server.stop();
}
