//! Hostile workers: garbage, oversized frames, floods, answers for tasks they were not given,
//! and too many of them. Each is refused with a reason, and an honest worker finishes the
//! job undisturbed.

use dipla_server::RunOptions;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use dipla_protocol::{ServerMessage, WorkerMessage};

use crate::support::{
    PATIENCE, RawSocket, WorkerProcess, eventually_async, finish, join, join_with,
    remote_server_with, squares_job, test_hello,
};

/// A hello with a fresh identity, as JSON.
fn hello() -> String {
    let identity = dipla_worker::Identity::generate();
    let hello = WorkerMessage::Hello(test_hello("hostile", &identity));
    serde_json::to_string(&hello).unwrap()
}

/// Connects, sends `frames`, and returns the reason of the close frame the server sends
/// (or why the connection ended without one).
async fn refused(url: &str, frames: Vec<Message>) -> String {
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    close_reason(socket, frames).await
}

/// Joins properly, then sends `frames`; returns the close reason.
async fn refused_after_join(url: &str, frames: Vec<Message>) -> String {
    close_reason(join(url, "hostile").await, frames).await
}

async fn close_reason(mut socket: RawSocket, frames: Vec<Message>) -> String {
    for frame in frames {
        if socket.send(frame).await.is_err() {
            break;
        }
    }
    let ended = tokio::time::timeout(PATIENCE, async {
        while let Some(frame) = socket.next().await {
            match frame {
                Ok(Message::Close(Some(close))) => return close.reason.to_string(),
                Ok(Message::Close(None)) => return "closed without a reason".into(),
                Ok(_) => {}
                Err(error) => return format!("connection error: {error}"),
            }
        }
        "the connection ended".into()
    })
    .await;
    ended.expect("the server ends a hostile connection promptly")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_workers_are_refused_and_honest_ones_finish() {
    let job = squares_job(2000, "");
    let options = RunOptions {
        max_workers: 2,
        // No copies of the flooder's tasks: the job cannot end while it holds them.
        speculate: false,
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let handle = server.handle();
    let run = tokio::spawn(finish(server));

    let reason = refused(&url, vec![Message::text("not json at all")]).await;
    assert!(reason.contains("bad hello"), "{reason}");
    let reason = refused(&url, vec![Message::binary(vec![0u8; 64])]).await;
    assert!(reason.contains("hello"), "{reason}");
    let reason = refused_after_join(&url, vec![Message::text(hello())]).await;
    assert!(reason.contains("hello sent twice"), "{reason}");
    let reason = refused_after_join(&url, vec![Message::binary(vec![1u8; 10])]).await;
    assert!(reason.contains("binary"), "{reason}");
    let forged = r#"{"results":{"results":[{"id":987654321,"fuel":1,"micros":1,"output":1}]}}"#;
    let reason = refused_after_join(&url, vec![Message::text(forged)]).await;
    assert!(reason.contains("not given"), "{reason}");
    let huge = "x".repeat(17 << 20);
    let reason = refused_after_join(&url, vec![Message::text(huge)]).await;
    assert!(!reason.is_empty(), "an oversized frame ends the connection");

    // A flood of (harmless) messages does not stall the server.
    let mut flood = join(&url, "flood").await;
    for _ in 0..5_000 {
        flood
            .send(Message::text(r#"{"results":{"results":[]}}"#))
            .await
            .unwrap();
    }
    // The server is full with the flooder and one honest worker: a third is refused.
    let _honest = WorkerProcess::start(&url, "honest");
    eventually_async("the honest worker joined", async || {
        handle
            .workers()
            .iter()
            .any(|w| w.name == "honest")
            .then_some(())
    })
    .await;
    let reason = refused(&url, vec![Message::text(hello())]).await;
    assert!(reason.contains("full"), "{reason}");

    drop(flood);
    let (summary, lines) = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the honest worker finishes")
        .unwrap();
    assert!(summary.success(), "{summary}");
    assert_eq!(lines.len(), 2000);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["output"], (i * i) as u64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_missing_identities_are_refused() {
    let job = squares_job(50, "");
    let (server, url) = remote_server_with(job.job(), RunOptions::default()).await;
    let run = tokio::spawn(finish(server));

    // No identity at all.
    let mut anonymous = test_hello("anonymous", &dipla_worker::Identity::generate());
    anonymous.identity = None;
    let reason = refused(
        &url,
        vec![Message::text(
            serde_json::to_string(&WorkerMessage::Hello(anonymous)).unwrap(),
        )],
    )
    .await;
    assert!(reason.contains("requires an identity"), "{reason}");

    // Claiming someone else's public key, signing with one's own.
    let victim = dipla_worker::Identity::generate();
    let forger = dipla_worker::Identity::generate();
    let reason = join_with(&url, test_hello("forger", &victim), &forger)
        .await
        .expect_err("a forged identity is refused");
    assert!(reason.contains("does not check"), "{reason}");

    // Replaying a proof seen on another connection: the nonce differs, so it fails.
    let honest = dipla_worker::Identity::generate();
    let seen = async || {
        let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let hello = WorkerMessage::Hello(test_hello("honest", &honest));
        socket
            .send(Message::text(serde_json::to_string(&hello).unwrap()))
            .await
            .unwrap();
        let Some(Ok(Message::Text(text))) = socket.next().await else {
            panic!("no challenge")
        };
        let ServerMessage::Challenge { nonce } = serde_json::from_str(&text).unwrap() else {
            panic!("no challenge")
        };
        (socket, nonce)
    };
    let (mut first, nonce) = seen().await;
    let proof = dipla_protocol::identity::join_message(&nonce.0, &honest.public());
    let signature = honest.sign(&proof);
    let message =
        Message::text(serde_json::to_string(&WorkerMessage::Proof { signature }).unwrap());
    first.send(message.clone()).await.unwrap();
    let (replay, _) = seen().await;
    let reason = close_reason(replay, vec![message]).await;
    assert!(reason.contains("does not check"), "{reason}");
    drop(first);

    let _honest = WorkerProcess::start(&url, "honest");
    let (summary, lines) = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the honest worker finishes")
        .unwrap();
    assert!(summary.success(), "{summary}");
    assert_eq!(lines.len(), 50);
}
