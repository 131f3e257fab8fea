//! Every byte from the wire is bounded: request heads have a deadline, an address may hold
//! only so many connections, an oversized frame closes with 1009, and what a worker calls
//! itself is cut to printable text.

use std::time::Duration;

use dipla_server::{RunOptions, Server};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::{
    PATIENCE, WorkerProcess, addr_of, eventually, finish, join, join_with, remote_server_with,
    squares_job, test_hello,
};

/// An honest worker joins the server at `url` and finishes the job `run` waits for, which
/// succeeds; its summary and lines.
async fn finished_by_an_honest_worker(
    url: &str,
    run: tokio::task::JoinHandle<(dipla_server::Summary, Vec<serde_json::Value>)>,
) -> (dipla_server::Summary, Vec<serde_json::Value>) {
    let _worker = WorkerProcess::start(url, "honest");
    let (summary, lines) = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the job finishes")
        .unwrap();
    assert!(summary.success(), "{summary}");
    (summary, lines)
}

/// Whether the server closes `stream` within a generous deadline (it reads end of file or a
/// reset, never an answer).
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await;
    matches!(read, Ok(Ok(0) | Err(_)))
}

/// `GET /health` on `addr`: the status, or `None` when the server closed the connection
/// without answering.
async fn health(addr: &str) -> Option<u16> {
    let addr = addr.to_owned();
    tokio::task::spawn_blocking(move || health_now(&addr))
        .await
        .unwrap()
}

/// [`health`], blocking.
fn health_now(addr: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(PATIENCE)).ok()?;
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer);
    answer.split(' ').nth(1)?.parse().ok()
}

#[test]
fn the_head_deadline_is_ten_seconds_by_default() {
    assert_eq!(dipla_server::http::HEAD_TIMEOUT, Duration::from_secs(10));
    assert_eq!(RunOptions::default().head_timeout, Duration::from_secs(10));
    assert_eq!(RunOptions::default().max_connections_per_ip, 64);
}

/// The bug: 1,100 half-sent upgrade requests were held forever, pinned 1,024 descriptors,
/// and neither `/ws` nor `/health` answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_closed_by_the_head_deadline_and_health_answers_meanwhile() {
    let job = squares_job(10, "");
    let options = RunOptions {
        head_timeout: Duration::from_millis(1500),
        max_connections_per_ip: 200,
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let addr = addr_of(&url);
    let run = tokio::spawn(finish(server));

    let mut half_open = Vec::new();
    for _ in 0..150 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
            .await
            .unwrap();
        half_open.push(stream);
    }
    // They are all held, and the server still answers.
    assert_eq!(health(&addr).await, Some(200));
    for stream in &mut half_open {
        assert!(
            closed_by_server(stream).await,
            "a half-sent request is closed once its deadline passes"
        );
    }
    // A worker still joins and finishes the job.
    finished_by_an_honest_worker(&url, run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_per_address_cap_is_refused_until_one_closes() {
    let job = squares_job(10, "");
    let options = RunOptions {
        max_connections_per_ip: 8,
        // The held connections send nothing: they must outlive the test.
        head_timeout: Duration::from_secs(600),
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let addr = addr_of(&url);
    let run = tokio::spawn(finish(server));

    // Seven held and a WebSocket worker: the address is full.
    let mut held = Vec::new();
    for _ in 0..7 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    let worker = join(&url, "capped").await;
    let mut ninth = TcpStream::connect(&addr).await.unwrap();
    assert!(
        closed_by_server(&mut ninth).await,
        "the 9th connection from one address is closed at once"
    );
    assert_eq!(
        health(&addr).await,
        None,
        "/health from loopback is capped too"
    );

    // One closes; a new connection gets in.
    held.pop();
    let probe = addr.clone();
    let status = tokio::task::spawn_blocking(move || {
        eventually("/health answering once a connection closed", || {
            health_now(&probe)
        })
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    drop(held);
    drop(worker);

    finished_by_an_honest_worker(&url, run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_workers_are_never_refused_by_the_per_address_cap() {
    let job = squares_job(200, "");
    let options = RunOptions {
        local_workers: 12,
        max_connections_per_ip: 2,
        ..RunOptions::default()
    };
    let server = Server::bind(job.job(), options).await.unwrap();
    let (summary, lines) = tokio::time::timeout(PATIENCE, finish(server))
        .await
        .expect("the job finishes");
    assert!(summary.success(), "{summary}");
    assert_eq!(lines.len(), 200);
    assert_eq!(summary.stats.workers_joined, 12, "{summary}");
}

/// An oversized frame closed the connection with 1000 and no reason, and counted the
/// worker's tasks as lost: a peer could fail any task by sending three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_with_1009_and_its_tasks_are_not_lost() {
    let job = squares_job(4, "");
    let options = RunOptions {
        // One loss fails a task: a lost task would show as a failure.
        max_lost: 1,
        speculate: false,
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let handle = server.handle();
    let run = tokio::spawn(finish(server));

    let mut socket = join(&url, "oversized").await;
    // It holds tasks (and answers none).
    let message = crate::support::next_message(&mut socket).await.unwrap();
    assert!(
        matches!(message, dipla_protocol::ServerMessage::Tasks(_)),
        "{message:?}"
    );
    // The head of a masked text frame of 17 MiB: the server refuses it on its length.
    let MaybeTlsStream::Plain(tcp) = socket.get_mut() else {
        unreachable!("a plain server")
    };
    let mut head = vec![0x81, 0xFF];
    head.extend_from_slice(&(17u64 << 20).to_be_bytes());
    head.extend_from_slice(&[1, 2, 3, 4]);
    tcp.write_all(&head).await.unwrap();
    let close = tokio::time::timeout(PATIENCE, async {
        while let Some(frame) = socket.next().await {
            if let Ok(Message::Close(close)) = frame {
                return close;
            }
        }
        None
    })
    .await
    .expect("the server closes promptly")
    .expect("with a close frame");
    assert_eq!(close.code, CloseCode::Size);
    assert!(close.reason.contains("over 16 MiB"), "{}", close.reason);

    let (summary, lines) = finished_by_an_honest_worker(&url, run).await;
    assert_eq!(summary.counts.failed, 0);
    assert_eq!(lines.len(), 4);
    drop(handle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_name_and_version_are_cut_to_printable_text() {
    let job = squares_job(4, "");
    let (server, url) = remote_server_with(job.job(), RunOptions::default()).await;
    let handle = server.handle();
    let run = tokio::spawn(finish(server));

    let identity = dipla_worker::Identity::generate();
    let mut hello = test_hello("", &identity);
    hello.name = format!("evil\nINFO forged\u{1b}[31m\u{202E}{}", "x".repeat(10_000));
    hello.version = "v".repeat(1000);
    let mut socket = join_with(&url, hello, &identity).await.unwrap();
    let name = handle
        .workers()
        .into_iter()
        .map(|worker| worker.name)
        .next()
        .expect("the worker is listed");
    assert!(
        name.starts_with("evil INFO forged\u{FFFD}[31m\u{FFFD}x"),
        "{name:?}"
    );
    assert_eq!(name.chars().count(), 64, "63 characters and an ellipsis");
    assert!(name.ends_with('…'));
    socket.close(None).await.unwrap();

    finished_by_an_honest_worker(&url, run).await;
}
