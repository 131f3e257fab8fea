//! The worker trusts no server: a test plays a server that sends it a module with imports,
//! then a good one, then a module it never asked for.

use dipla_protocol::{
    FailureKind, ModuleHash, RawJson, ServerMessage, TaskBatch, TaskItem, TaskLimits, Welcome,
    WorkerMessage,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{PATIENCE, WorkerProcess, wasm};

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn receive(socket: &mut Socket) -> WorkerMessage {
    loop {
        let frame = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("the worker went quiet")
            .expect("the worker closed")
            .unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

async fn send(socket: &mut Socket, message: &ServerMessage) {
    socket
        .send(Message::text(serde_json::to_string(message).unwrap()))
        .await
        .unwrap();
}

fn batch(module: ModuleHash, export: &str, ids: std::ops::Range<u64>) -> ServerMessage {
    let limits = TaskLimits {
        fuel: 100_000_000,
        memory_mb: 64,
        timeout_ms: 10_000,
    };
    let tasks = ids
        .map(|id| TaskItem {
            id,
            input: RawJson::from_string(id.to_string()).unwrap(),
        })
        .collect();
    ServerMessage::Tasks(TaskBatch {
        module,
        export: export.into(),
        limits,
        tasks,
    })
}

/// Serves the module the worker asks for and returns the results of `count` tasks.
async fn serve_module(
    socket: &mut Socket,
    bytes: &[u8],
    count: usize,
) -> Vec<dipla_protocol::TaskResult> {
    match receive(socket).await {
        WorkerMessage::FetchModule { hashes } => assert_eq!(hashes, [ModuleHash::of(bytes)]),
        other => panic!("expected fetch_module, got {other:?}"),
    }
    socket.send(Message::binary(bytes.to_vec())).await.unwrap();
    let mut results = Vec::new();
    while results.len() < count {
        match receive(socket).await {
            WorkerMessage::Results { results: more, .. } => results.extend(more),
            other => panic!("expected results, got {other:?}"),
        }
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_modules_with_imports_and_unrequested_modules() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let mut worker = WorkerProcess::start(&url, "wary");
    let (stream, _) = listener.accept().await.unwrap();
    let mut socket = tokio_tungstenite::accept_async(stream).await.unwrap();

    let WorkerMessage::Hello(hello) = receive(&mut socket).await else {
        panic!("no hello")
    };
    assert_eq!(hello.name, "wary");
    send(
        &mut socket,
        &ServerMessage::Challenge {
            nonce: dipla_protocol::Nonce([9; 32]),
        },
    )
    .await;
    let WorkerMessage::Proof { signature } = receive(&mut socket).await else {
        panic!("no proof")
    };
    let key = hello.identity.unwrap();
    assert!(key.verifies(
        &dipla_protocol::identity::join_message(&[9; 32], &key),
        &signature
    ));
    send(
        &mut socket,
        &ServerMessage::Welcome(Welcome {
            protocol: dipla_protocol::PROTOCOL_VERSION,
            worker: 1,
            heartbeat_ms: None,
            job: Some("job".into()),
            pause: false,
        }),
    )
    .await;

    // A module that imports a host function: every task fails, naming the import.
    let importer = wat::parse_str(
        r#"(module
            (import "env" "read_secrets" (func))
            (memory (export "memory") 1)
            (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 0))
            (func (export "steal") (param i32 i32) (result i64) (call 0) (i64.const 0))
            (@custom "dipla" "{\"abi\":1,\"task\":\"steal\"}\n"))"#,
    )
    .unwrap();
    send(
        &mut socket,
        &batch(ModuleHash::of(&importer), "steal", 1..3),
    )
    .await;
    let results = serve_module(&mut socket, &importer, 2).await;
    for result in &results {
        let failure = result
            .error
            .as_ref()
            .expect("a module with imports must not run");
        assert_eq!(failure.kind, FailureKind::Rejected);
        assert!(
            failure.message.contains("env.read_secrets"),
            "{}",
            failure.message
        );
    }

    // The same worker still runs a good module.
    let good = std::fs::read(wasm("testbed")).unwrap();
    send(&mut socket, &batch(ModuleHash::of(&good), "square", 10..20)).await;
    let mut results = serve_module(&mut socket, &good, 10).await;
    results.sort_by_key(|r| r.id);
    for result in &results {
        assert_eq!(
            result.output.as_ref().unwrap().get(),
            (result.id * result.id).to_string()
        );
    }

    // A module nobody asked for ends the session.
    socket
        .send(Message::binary(b"\0asm\x01\0\0\0".to_vec()))
        .await
        .unwrap();
    let closed = tokio::time::timeout(PATIENCE, async {
        while let Some(Ok(frame)) = socket.next().await {
            if frame.is_close() {
                return;
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the worker should hang up on an unrequested module"
    );
    assert!(
        !worker.wait_success(),
        "the worker should report the broken protocol"
    );
}
