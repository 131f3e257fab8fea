//! Hostile workers: garbage, oversized frames, floods, answers for tasks they were not given,
//! and too many of them. Each is refused with a reason, and an honest worker finishes the
//! job undisturbed.

use std::time::Duration;

use dipla_server::RunOptions;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{JobDir, WorkerProcess, finish, remote_server_with};

const HELLO: &str = r#"{"hello":{"protocol":1,"name":"hostile","version":"test","cores":1,"max_memory_mb":256,"max_fuel":100000000000}}"#;

/// Connects, sends `frames`, and returns the reason of the close frame the server sends
/// (or why the connection ended without one).
async fn refused(url: &str, frames: Vec<Message>) -> String {
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    for frame in frames {
        if socket.send(frame).await.is_err() {
            break;
        }
    }
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
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
    let job = JobDir::new(
        r#"
        name = "squares"
        [modules]
        bed = "{testbed}"
        [[stages]]
        name = "squares"
        task = "bed.square"
        inputs = { range = { start = 0, end = 2000 } }
        "#,
    );
    let options = RunOptions {
        max_workers: 2,
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let run = tokio::spawn(finish(server));

    let reason = refused(&url, vec![Message::text("not json at all")]).await;
    assert!(reason.contains("bad hello"), "{reason}");
    let reason = refused(&url, vec![Message::binary(vec![0u8; 64])]).await;
    assert!(reason.contains("hello"), "{reason}");
    let reason = refused(&url, vec![Message::text(HELLO), Message::text(HELLO)]).await;
    assert!(reason.contains("hello sent twice"), "{reason}");
    let reason = refused(
        &url,
        vec![Message::text(HELLO), Message::binary(vec![1u8; 10])],
    )
    .await;
    assert!(reason.contains("binary"), "{reason}");
    let forged = r#"{"results":{"results":[{"id":987654321,"fuel":1,"micros":1,"output":1}]}}"#;
    let reason = refused(&url, vec![Message::text(HELLO), Message::text(forged)]).await;
    assert!(reason.contains("not given"), "{reason}");
    let both = r#"{"results":{"results":[{"id":1,"fuel":1,"micros":1,"output":1,"error":{"kind":"panic","message":"x"}}]}}"#;
    let reason = refused(&url, vec![Message::text(HELLO), Message::text(both)]).await;
    assert!(reason.contains("exactly one"), "{reason}");
    let huge = "x".repeat(17 << 20);
    let reason = refused(&url, vec![Message::text(HELLO), Message::text(huge)]).await;
    assert!(!reason.is_empty(), "an oversized frame ends the connection");

    // A flood of (harmless) messages does not stall the server.
    let (mut flood, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    flood.send(Message::text(HELLO)).await.unwrap();
    for _ in 0..5_000 {
        flood
            .send(Message::text(r#"{"results":{"results":[]}}"#))
            .await
            .unwrap();
    }
    // The server is full with the flooder and one honest worker: a third is refused.
    let _honest = WorkerProcess::start(&url, "honest");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reason = refused(&url, vec![Message::text(HELLO)]).await;
    assert!(reason.contains("full"), "{reason}");

    drop(flood);
    let (summary, lines) = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the honest worker finishes")
        .unwrap();
    assert!(summary.success(), "{summary}");
    assert_eq!(lines.len(), 2000);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["output"], (i * i) as u64);
    }
}
