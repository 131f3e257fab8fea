//! Shared helpers: paths to the built guests and binaries, worker processes, jobs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use dipla_sandbox::Sandbox;
use dipla_server::{Job, RunOptions, Server, Summary, manifest};

mod said;
mod wait;

pub use dipla_bench::browser::{Browser, Page};
pub use said::Said;
pub use wait::{PATIENCE, QUIET, eventually, eventually_async, seen_while_quiet};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A guest module built by `cargo xtask build-guests`.
pub fn wasm(name: &str) -> PathBuf {
    let path = root().join(format!("target/wasm32-unknown-unknown/release/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask build-guests`",
        path.display()
    );
    path
}

/// A binary of this workspace, built in the same profile as the running test.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release --bins`",
        path.display()
    );
    path
}

/// A manifest written to a fresh folder; `{testbed}` and `{factorise}` in `text` become
/// the guests' absolute paths.
pub struct JobDir {
    pub dir: tempfile::TempDir,
    pub manifest: PathBuf,
}

impl JobDir {
    pub fn new(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = text
            .replace("{testbed}", &wasm("testbed").display().to_string())
            .replace("{factorise}", &wasm("factorise").display().to_string());
        let manifest = dir.path().join("job.toml");
        std::fs::write(&manifest, text).unwrap();
        Self { dir, manifest }
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn job(&self) -> Job {
        manifest::load(&self.manifest, &Sandbox::new().unwrap()).unwrap()
    }
}

/// A server for `job` accepting remote workers on a free loopback port.
pub async fn remote_server(job: Job) -> (Server, String) {
    remote_server_with(job, RunOptions::default()).await
}

/// Like [`remote_server`], with `options` (their address and local workers are replaced:
/// a free loopback port, none).
pub async fn remote_server_with(job: Job, options: RunOptions) -> (Server, String) {
    let options = RunOptions {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        local_workers: 0,
        ..options
    };
    let server = Server::bind(job, options).await.unwrap();
    let url = server.worker_url().unwrap();
    (server, url)
}

/// A job of `count` tasks of the testbed's `burn`, each burning `rounds` iterations and
/// returning its index.
pub fn burn_job(count: u64, rounds: u64) -> JobDir {
    burn_job_of((0..count).map(|_| rounds))
}

/// A job of tasks of the testbed's `burn`, task `i` burning the `i`th of `rounds` iterations
/// and returning `i`.
pub fn burn_job_of(rounds: impl IntoIterator<Item = u64>) -> JobDir {
    let inputs: Vec<String> = (rounds.into_iter().enumerate())
        .map(|(i, rounds)| format!("[{i}, {rounds}]"))
        .collect();
    JobDir::new(&format!(
        r#"
        name = "burn"
        [modules]
        bed = "{{testbed}}"
        [[stages]]
        name = "burn"
        task = "bed.burn"
        inputs = {{ values = [{}] }}
        "#,
        inputs.join(", ")
    ))
}

/// `dipla-server run MANIFEST ARGS` as a process, once it accepts workers: the process, the
/// URL workers connect to, and what it said before that. Its stderr is drained from then on
/// (a server whose stderr is closed fails when it logs).
pub fn server_process(manifest: &Path, args: &[&str]) -> (Child, String, String) {
    let mut all = vec!["run", manifest.to_str().unwrap()];
    all.extend(args);
    dipla_server(&all)
}

/// `dipla-server ARGS` as a process (`run` or `serve`), once it accepts workers: the process,
/// the URL workers connect to, and what it said before that.
pub fn dipla_server(args: &[&str]) -> (Child, String, String) {
    use std::io::BufRead;
    let mut server = Command::new(bin("dipla-server"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(server.stderr.take().unwrap());
    let mut said = String::new();
    let url = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the server exited: {said}"
        );
        said.push_str(&line);
        if let Some(url) = line
            .trim()
            .strip_prefix("dipla-server: workers connect to ")
        {
            break url.to_owned();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (server, url, said)
}

/// A job of one stage, the testbed's `square` over `0..count`, with `extra` manifest lines
/// added to the stage.
pub fn squares_job(count: u64, extra: &str) -> JobDir {
    JobDir::new(&format!(
        r#"
        name = "squares"
        [modules]
        bed = "{{testbed}}"
        [[stages]]
        name = "squares"
        task = "bed.square"
        inputs = {{ range = {{ start = 0, end = {count} }} }}
        {extra}
        "#
    ))
}

/// Runs `server` to the end and returns the summary and the parsed result lines.
pub async fn finish(server: Server) -> (Summary, Vec<serde_json::Value>) {
    let mut out = Vec::new();
    let summary = server.run(&mut out).await.unwrap();
    let lines = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    (summary, lines)
}

/// Runs `job` on `workers` one-core `dipla-worker` processes and returns the summary and the
/// parsed result lines.
pub async fn run_on_workers(job: &JobDir, workers: usize) -> (Summary, Vec<serde_json::Value>) {
    let (server, url) = remote_server(job.job()).await;
    let _workers: Vec<WorkerProcess> = (0..workers)
        .map(|i| WorkerProcess::start(&url, &format!("worker-{i}")))
        .collect();
    finish(server).await
}

/// A `dipla-worker` process, killed when dropped.
pub struct WorkerProcess {
    pub child: Child,
    pub cache: tempfile::TempDir,
    /// What it says on stderr.
    pub said: Said,
}

impl WorkerProcess {
    /// Starts a one-core worker named `name` with a fresh module cache.
    pub fn start(url: &str, name: &str) -> Self {
        Self::with_cache(url, name, tempfile::tempdir().unwrap())
    }

    /// Starts a one-core worker named `name` caching modules in `cache`.
    pub fn with_cache(url: &str, name: &str, cache: tempfile::TempDir) -> Self {
        Self::with_args(url, name, cache, &[])
    }

    /// Starts a one-core worker with extra command-line arguments, joining without a
    /// benchmark (a second saved per worker).
    pub fn with_args(url: &str, name: &str, cache: tempfile::TempDir, args: &[&str]) -> Self {
        let mut args = args.to_vec();
        args.push("--no-bench");
        Self::spawn(url, name, cache, &args)
    }

    /// Starts a one-core worker that runs its benchmark before joining.
    pub fn benchmarked(url: &str, name: &str, args: &[&str]) -> Self {
        Self::spawn(url, name, tempfile::tempdir().unwrap(), args)
    }

    /// Spawns the worker; unless `args` say otherwise, it runs one task at a time, and its
    /// identity and its state file live beside its cache (each test worker is its own
    /// volunteer; one restarted on the same cache is the same; none writes the state file of
    /// the user running the tests).
    fn spawn(url: &str, name: &str, cache: tempfile::TempDir, args: &[&str]) -> Self {
        let mut args = args.to_vec();
        let identity = cache.path().join("identity");
        if !args.contains(&"--identity") {
            args.extend(["--identity", identity.to_str().unwrap()]);
        }
        let state = cache.path().join("status.json");
        if !args.contains(&"--state-file") {
            args.extend(["--state-file", state.to_str().unwrap()]);
        }
        if !args.contains(&"--cores") {
            args.extend(["--cores", "1"]);
        }
        let mut child = Command::new(bin("dipla-worker"))
            .args(["--server", url, "--name", name, "--cache-dir"])
            .arg(cache.path())
            .args(args)
            // Test workers run as before the politeness controls (a test that checks them
            // says so): at normal priority, so that timings compare with the in-process
            // server's, and on battery too, so that a laptop runs the suite.
            .env("DIPLA_PRIORITY", "normal")
            .env("DIPLA_ON_BATTERY", "run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let said = Said::new(child.stderr.take().unwrap());
        Self { child, cache, said }
    }

    /// Waits for the process to exit by itself and tells whether it succeeded.
    pub fn wait_success(&mut self) -> bool {
        let child = &mut self.child;
        eventually("the worker exit", || child.try_wait().unwrap()).success()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Samples the workers' records until the job ends (every worker gone), keeping the last of
/// each, by name.
pub fn watch(
    handle: dipla_server::Handle,
) -> tokio::task::JoinHandle<std::collections::HashMap<String, dipla_server::WorkerRecord>> {
    tokio::task::spawn_blocking(move || {
        let mut last = std::collections::HashMap::new();
        eventually("every worker gone", || {
            for worker in handle.workers() {
                if let Some(record) = worker.record {
                    last.insert(worker.name, record);
                }
            }
            (handle.connected() == 0 && !last.is_empty()).then_some(())
        });
        last
    })
}

/// A raw WebSocket client, for tests that play a (misbehaving) worker by hand.
pub type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A test hello from `name`, for `identity`.
pub fn test_hello(name: &str, identity: &dipla_worker::Identity) -> dipla_protocol::Hello {
    dipla_protocol::Hello {
        protocol: dipla_protocol::PROTOCOL_VERSION,
        name: name.into(),
        version: "test".into(),
        cores: 1,
        max_memory_mb: 256,
        max_fuel: 100_000_000_000,
        max_module_mb: None,
        benchmark: None,
        token: None,
        identity: Some(identity.public()),
        agent: None,
    }
}

/// Connects to `url` and joins with `hello`, signing the challenge with `identity`; returns
/// the socket once welcomed, or the reason the server closed it.
pub async fn join_with(
    url: &str,
    hello: dipla_protocol::Hello,
    identity: &dipla_worker::Identity,
) -> Result<RawSocket, String> {
    use dipla_protocol::{ServerMessage, WorkerMessage};
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let send = |message: &WorkerMessage| Message::text(serde_json::to_string(message).unwrap());
    socket
        .send(send(&WorkerMessage::Hello(hello)))
        .await
        .unwrap();
    let ServerMessage::Challenge { nonce } = next_message(&mut socket).await? else {
        panic!("expected a challenge");
    };
    let proof = dipla_protocol::identity::join_message(&nonce.0, &identity.public());
    let signature = identity.sign(&proof);
    socket
        .send(send(&WorkerMessage::Proof { signature }))
        .await
        .unwrap();
    match next_message(&mut socket).await? {
        ServerMessage::Welcome(_) => Ok(socket),
        other => panic!("expected a welcome, got {other:?}"),
    }
}

/// Joins `url` as a hand-played worker called `name` with a new identity.
pub async fn join(url: &str, name: &str) -> RawSocket {
    let identity = dipla_worker::Identity::generate();
    join_with(url, test_hello(name, &identity), &identity)
        .await
        .unwrap()
}

/// The next message the server sends, or the reason it closed.
pub async fn next_message(socket: &mut RawSocket) -> Result<dipla_protocol::ServerMessage, String> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(frame))) => {
                return Err(frame.map_or(String::new(), |f| f.reason.to_string()));
            }
            Some(Ok(_)) => {}
            other => return Err(format!("the connection ended: {other:?}")),
        }
    }
}

/// Sends one HTTP/1.1 request to `addr` and returns the status code, the headers and the body.
pub fn http(addr: &str, method: &str, path: &str, token: Option<&str>) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    // Read the head, then the body by its length (some servers keep the connection open).
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "{method} {path}: not an HTTP response: {bytes:?}");
        bytes.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    let mut body = bytes[head_end + 4..].to_vec();
    loop {
        if length.is_some_and(|length| body.len() >= length) {
            break;
        }
        let n = stream.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

pub fn addr_of(url: &str) -> String {
    url.trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_owned()
}

/// Whether the job whose status (`GET /api/job` or `/api/jobs/ID`) is `status` has
/// committed to its journal the `sent` records an earlier status showed: what that status
/// showed would survive a crash now.
pub fn journaled_through(status: &serde_json::Value, sent: u64) -> bool {
    status["journal"]["committed"].as_u64().unwrap() >= sent
}

/// A worker called "liar" with `identity` that answers 7 for every task, in this process.
pub fn start_liar(
    url: &str,
    identity: std::sync::Arc<dipla_worker::Identity>,
) -> tokio::task::JoinHandle<()> {
    let mut config = dipla_worker::WorkerConfig::new(url);
    config.name = "liar".into();
    config.cores = 1;
    config.identity = identity;
    config.tamper = Some(std::sync::Arc::new(|result| {
        if result.output.is_some() {
            result.output = Some(dipla_protocol::RawJson::from_string("7".into()).unwrap());
        }
    }));
    tokio::spawn(async move {
        let sandbox = dipla_sandbox::Sandbox::new().unwrap();
        let cache = dipla_worker::ModuleCache::new(sandbox, None).unwrap();
        let _ = dipla_worker::run(&config, &cache).await;
    })
}
