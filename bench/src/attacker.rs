//! A hostile worker written from the protocol documentation (`docs/ARCHITECTURE.md`, "The
//! wire protocol"), not from the server's or the worker's types: JSON built by hand, Ed25519
//! from `ed25519-dalek`, sha256 from `sha2`, the WebSocket from tokio-tungstenite. It does
//! what the tests tell it to, right or wrong: join with any key, name and core count, open
//! several connections with one key, answer with any outputs, errors, `micros` and `fuel`,
//! sign its receipts correctly or not, stall, close politely, or send raw frames.
//!
//! Everything the protocol fixes byte for byte is in [`wire`], so that a change of format is
//! one edit.
//!
//! It serves the hostile-protocol integration tests and the benchmark of a job under attack
//! (`--only wipeout`); [`crate::attacks`] drives it. It is a test tool: it panics when the
//! server sends something the protocol does not allow (a failed test, not a bug to recover
//! from).

use std::collections::HashMap;

use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;

/// A raw WebSocket client connection, plain or TLS.
pub type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The protocol's version and every byte a worker signs (protocol version 3: failures are
/// signed like outputs).
pub mod wire {
    use serde_json::{Value, json};

    use super::{Outcome, sha256};

    /// The protocol version the hello announces.
    pub const PROTOCOL: u64 = 3;
    /// Prefix of the signed join proof.
    const JOIN: &[u8] = b"dipla-join-v2\0";
    /// Prefix of a signed receipt.
    const RECEIPT: &[u8] = b"dipla-receipt-v3\0";
    /// Prefix of a failure's outcome digest.
    const FAILURE: &[u8] = b"dipla-failure\0";
    /// Whether failures have receipt entries (protocol 3) or only outputs do (protocol 2).
    const SIGNS_FAILURES: bool = true;

    /// The first message: a hello from `identity` (hex public key).
    pub fn hello(identity: &str, name: &str, cores: u64) -> Value {
        json!({"hello": {
            "protocol": PROTOCOL,
            "name": name,
            "version": "hostile",
            "cores": cores,
            "max_memory_mb": 256,
            "max_fuel": 100_000_000_000u64,
            "identity": identity,
        }})
    }

    /// What a worker signs to prove its key, answering the server's `nonce`.
    pub fn join_message(nonce: &[u8], public: &[u8]) -> Vec<u8> {
        [JOIN, nonce, public].concat()
    }

    /// One result's entry in a receipt: what the server sent (attempt id, module, input as
    /// received) and what the worker answered (outcome, fuel).
    pub struct Entry<'a> {
        /// The attempt id.
        pub id: u64,
        /// The module's sha256.
        pub module: [u8; 32],
        /// The task's input JSON as received.
        pub input: &'a str,
        /// What the worker answered.
        pub outcome: &'a Outcome,
        /// The fuel it claims.
        pub fuel: u64,
    }

    /// sha256 of an output's JSON as sent, or of a failure's kind and message.
    pub fn outcome_digest(outcome: &Outcome) -> [u8; 32] {
        match outcome {
            Outcome::Output(value) => sha256(value.to_string().as_bytes()),
            Outcome::Failure { kind, message } => {
                sha256(&[FAILURE, kind.as_bytes(), b"\0", message.as_bytes()].concat())
            }
        }
    }

    /// What a worker signs for a `results` message of job `job`, its entries in the
    /// message's order.
    pub fn receipt_message(job: &str, entries: &[Entry<'_>]) -> Vec<u8> {
        let mut message = RECEIPT.to_vec();
        message.extend_from_slice(&(job.len() as u64).to_le_bytes());
        message.extend_from_slice(job.as_bytes());
        for entry in entries {
            if !SIGNS_FAILURES && matches!(entry.outcome, Outcome::Failure { .. }) {
                continue;
            }
            message.extend_from_slice(&entry.id.to_le_bytes());
            message.extend_from_slice(&entry.module);
            message.extend_from_slice(&sha256(entry.input.as_bytes()));
            message.extend_from_slice(&outcome_digest(entry.outcome));
            message.extend_from_slice(&entry.fuel.to_le_bytes());
        }
        message
    }

    /// One result as it goes on the wire.
    pub fn result(id: u64, outcome: &Outcome, fuel: u64, micros: u64) -> Value {
        let mut result = json!({"id": id, "fuel": fuel, "micros": micros});
        match outcome {
            Outcome::Output(value) => result["output"] = value.clone(),
            Outcome::Failure { kind, message } => {
                result["error"] = json!({"kind": kind, "message": message});
            }
        }
        result
    }
}

/// The sha256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// `bytes` in lower-case hex, as the protocol spells keys, hashes and signatures.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex from the server"))
        .collect()
}

/// A worker's key pair, made from a label (tests are reproducible; each server is new).
pub struct Key(SigningKey);

impl Key {
    /// The key made from `label` (the same label, the same key).
    pub fn new(label: &str) -> Self {
        Self(SigningKey::from_bytes(&sha256(label.as_bytes())))
    }

    /// The public key, as hellos and the journal spell it.
    pub fn public(&self) -> String {
        hex(self.0.verifying_key().as_bytes())
    }

    fn sign(&self, message: &[u8]) -> String {
        hex(&self.0.sign(message).to_bytes())
    }
}

/// What a task ended as, in a result.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// An output, sent as this JSON.
    Output(Value),
    /// A failure of this kind (as on the wire: `panic`, `trap`, …) and message.
    Failure {
        /// The failure kind.
        kind: String,
        /// The failure message.
        message: String,
    },
}

impl Outcome {
    /// A failure of `kind` with `message`.
    pub fn failure(kind: &str, message: &str) -> Self {
        Self::Failure {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

/// One answer to send.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The attempt id it answers.
    pub id: u64,
    /// What it says the task ended as.
    pub outcome: Outcome,
    /// The fuel it claims the task took.
    pub fuel: u64,
    /// The microseconds it claims the task took.
    pub micros: u64,
}

/// How to sign a `results` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// As the protocol says.
    Right,
    /// A valid signature by the right key over the wrong bytes (one flipped).
    Wrong,
}

/// A task the server gave, as received.
#[derive(Debug, Clone)]
pub struct Task {
    /// The attempt id.
    pub id: u64,
    /// The module's sha256.
    pub module: [u8; 32],
    /// The input's JSON text exactly as received.
    pub input: String,
}

impl Task {
    /// The input, parsed.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.input).unwrap()
    }
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The close frame's code; `None` without a close frame.
    pub code: Option<u16>,
    /// The close frame's reason, or how the connection ended without one.
    pub reason: String,
}

/// What the server said.
#[derive(Debug)]
pub enum Event {
    /// A challenge with its nonce.
    Challenge(Vec<u8>),
    /// A welcome (the job it names is kept in [`Conn::job`]).
    Welcome,
    /// A batch of tasks (also kept in [`Conn::held`]).
    Tasks(Vec<Task>),
    /// Cancelled attempts this connection held.
    Cancel(Vec<u64>),
    /// A goodbye with its reason.
    Goodbye(String),
    /// The connection ended.
    Closed(Closed),
    /// Any other message.
    Other,
}

/// One connection to the server, joined or not.
pub struct Conn {
    socket: RawSocket,
    /// The job the welcome named, which receipts sign.
    pub job: String,
    /// The tasks given and not answered or cancelled, by attempt id.
    pub held: HashMap<u64, Task>,
}

impl Conn {
    /// Opens a WebSocket to `url`; says nothing.
    pub async fn connect(url: &str) -> Result<Self, Closed> {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|error| Closed {
                code: None,
                reason: format!("cannot connect: {error}"),
            })?;
        Ok(Self {
            socket,
            job: String::new(),
            held: HashMap::new(),
        })
    }

    /// Connects and joins as `key`, naming itself `name` with `cores`; the server's close
    /// when it refuses.
    pub async fn join(url: &str, key: &Key, name: &str, cores: u64) -> Result<Self, Closed> {
        Self::join_signing(url, key, key, name, cores).await
    }

    /// Joins claiming `claimed`'s public key but proving with `signer`'s secret.
    pub async fn join_signing(
        url: &str,
        claimed: &Key,
        signer: &Key,
        name: &str,
        cores: u64,
    ) -> Result<Self, Closed> {
        let mut conn = Self::connect(url).await?;
        conn.send_json(&wire::hello(&claimed.public(), name, cores))
            .await;
        let nonce = match conn.next().await {
            Event::Challenge(nonce) => nonce,
            Event::Closed(closed) => return Err(closed),
            other => panic!("expected a challenge, got {other:?}"),
        };
        conn.prove(signer, &claimed.public(), &nonce).await;
        match conn.next().await {
            Event::Welcome => Ok(conn),
            Event::Closed(closed) => Err(closed),
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    /// Sends the proof for `nonce`, signed by `signer`, for the public key `public` (hex).
    pub async fn prove(&mut self, signer: &Key, public: &str, nonce: &[u8]) {
        let signature = signer.sign(&wire::join_message(nonce, &unhex(public)));
        self.send_json(&json!({"proof": {"signature": signature}}))
            .await;
    }

    /// Sends one JSON text frame (errors ignored: the server may have closed already).
    pub async fn send_json(&mut self, message: &Value) {
        self.send_raw(Message::text(message.to_string())).await;
    }

    /// Sends any frame (errors ignored).
    pub async fn send_raw(&mut self, frame: Message) {
        let _ = self.socket.send(frame).await;
    }

    /// Writes `bytes` straight to the TCP stream, under the WebSocket framing (for frames
    /// no WebSocket library would send; errors ignored). Reading stays possible afterwards,
    /// which a library write failing halfway would prevent.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = self.socket.get_mut() else {
            panic!("raw bytes over plain TCP only");
        };
        let _ = tcp.write_all(bytes).await;
        let _ = tcp.flush().await;
    }

    /// Answers `answers` in one `results` message with a receipt signed by `key`; answered
    /// tasks are no longer held. An id never given is signed with a zero module and an empty
    /// input.
    pub async fn answer(&mut self, key: &Key, answers: &[Answer], receipt: Receipt) {
        let given: Vec<Option<Task>> = answers.iter().map(|a| self.held.remove(&a.id)).collect();
        let entries: Vec<wire::Entry<'_>> = answers
            .iter()
            .zip(&given)
            .map(|(answer, task)| wire::Entry {
                id: answer.id,
                module: task.as_ref().map_or([0; 32], |t| t.module),
                input: task.as_ref().map_or("", |t| &t.input),
                outcome: &answer.outcome,
                fuel: answer.fuel,
            })
            .collect();
        let mut signed = wire::receipt_message(&self.job, &entries);
        if receipt == Receipt::Wrong {
            *signed.last_mut().unwrap() ^= 1;
        }
        let results: Vec<Value> = answers
            .iter()
            .map(|a| wire::result(a.id, &a.outcome, a.fuel, a.micros))
            .collect();
        let message = json!({"results": {"results": results, "receipt": key.sign(&signed)}});
        self.send_json(&message).await;
    }

    /// The next message from the server (pings are answered while reading).
    pub async fn next(&mut self) -> Event {
        loop {
            let text = match self.socket.next().await {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => {
                    return Event::Closed(Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map_or(String::new(), |f| f.reason.to_string()),
                    });
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => {
                    return Event::Closed(Closed {
                        code: None,
                        reason: format!("connection error: {error}"),
                    });
                }
                None => {
                    return Event::Closed(Closed {
                        code: None,
                        reason: "the connection ended".into(),
                    });
                }
            };
            return self.read(&text);
        }
    }

    fn read(&mut self, text: &str) -> Event {
        let message: HashMap<String, &RawValue> = serde_json::from_str(text).unwrap();
        let Some((tag, body)) = message.into_iter().next() else {
            return Event::Other;
        };
        let value: Value = serde_json::from_str(body.get()).unwrap();
        match tag.as_str() {
            "challenge" => Event::Challenge(unhex(value["nonce"].as_str().unwrap())),
            "welcome" => {
                self.job = value["job"].as_str().unwrap_or_default().to_owned();
                Event::Welcome
            }
            "tasks" => {
                let tasks = parse_tasks(body);
                for task in &tasks {
                    self.held.insert(task.id, task.clone());
                }
                Event::Tasks(tasks)
            }
            "cancel" => Event::Cancel(
                value["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|id| self.held.remove(&id.as_u64().unwrap()).map(|t| t.id))
                    .collect(),
            ),
            "goodbye" => Event::Goodbye(value["reason"].as_str().unwrap_or_default().into()),
            _ => Event::Other,
        }
    }

    /// Closes politely (a close frame, then reads until the server's) and tells how many
    /// tasks it dropped.
    pub async fn close(mut self) -> usize {
        let _ = self.socket.close(None).await;
        while let Some(Ok(_)) = self.socket.next().await {}
        self.held.len()
    }
}

/// The start of a masked text frame from a client announcing `length` bytes of payload, with
/// the first `sent` of them (all `x`).
pub fn frame_start(length: u64, sent: usize) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&mask);
    frame.extend((0..sent).map(|i| b'x' ^ mask[i % 4]));
    frame
}

/// The tasks of a `tasks` message's body, each input kept as the exact text received.
fn parse_tasks(body: &RawValue) -> Vec<Task> {
    let fields: HashMap<String, &RawValue> = serde_json::from_str(body.get()).unwrap();
    let module: String = serde_json::from_str(fields["module"].get()).unwrap();
    let module: [u8; 32] = unhex(&module).try_into().unwrap();
    let tasks: Vec<HashMap<String, &RawValue>> =
        serde_json::from_str(fields["tasks"].get()).unwrap();
    tasks
        .into_iter()
        .map(|task| Task {
            id: serde_json::from_str(task["id"].get()).unwrap(),
            module,
            input: task["input"].get().to_owned(),
        })
        .collect()
}
