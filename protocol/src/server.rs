use serde::{Deserialize, Serialize};

use crate::{ModuleHash, Nonce, RawJson, TaskLimits};

/// A message from the server to a worker (a JSON text frame).
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to an acceptable `hello`: a fresh random nonce the worker signs with its
    /// identity's key ([`crate::identity::join_message`]) and returns in a `proof`.
    Challenge {
        /// The nonce.
        nonce: Nonce,
    },
    /// The answer to a valid `proof`.
    Welcome(Welcome),
    /// Tasks to run. The worker answers each task, in any order, with a [`crate::TaskResult`].
    Tasks(TaskBatch),
    /// Tasks the worker was given and need not run any more (their stage met its goal): drop
    /// them if queued, interrupt them if running, and send no results for them.
    Cancel {
        /// The task ids.
        ids: Vec<u64>,
    },
    /// Sent to a browser worker just before the binary frame answering its `fetch_module`:
    /// the bytes that follow are `module` instrumented for the browser (counting fuel and
    /// canonicalising NaNs as the native sandbox does), whose sha256 is `sha256`. The worker
    /// checks the bytes against `sha256` before compiling them; tasks keep naming `module`,
    /// and receipts sign `module`. Never sent to a native worker.
    Instrumented {
        /// The module the tasks name (the sha256 of its original bytes).
        module: ModuleHash,
        /// The sha256 of the instrumented bytes that follow.
        sha256: ModuleHash,
    },
    /// The server is alive: sent to a browser worker with every WebSocket ping (a page cannot
    /// see pings, which its browser answers unseen), so that it can take a server silent for
    /// three heartbeats for dead, as a native worker does from the pings. Never sent to a
    /// native worker.
    Heartbeat {},
    /// The server has no more work for this worker on this connection and is closing it.
    Goodbye {
        /// Why, for the worker's log.
        reason: String,
        /// Come back at once: a server running several jobs (`dipla-server serve`) moves a
        /// worker to another job, or to the job that just arrived, by asking it to connect
        /// again. Absent (false): the work is done and the worker may stop.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        rejoin: bool,
    },
}

/// The server's answer to a `hello`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The protocol version the server speaks (equal to the worker's).
    pub protocol: u32,
    /// The id the server gave this connection, for logs on both sides.
    pub worker: u64,
    /// How often the server pings, in milliseconds: a worker that hears nothing for three
    /// times as long may take the connection for dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ms: Option<u64>,
    /// The job's fingerprint, which the worker's receipts name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The server understands [`crate::WorkerMessage::Pause`] and
    /// [`crate::WorkerMessage::Resume`]. Absent (an older server): a worker that must pause
    /// closes the connection instead, and connects again when it resumes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pause: bool,
}

/// Tasks that share a module, an export and limits.
#[derive(Serialize, Deserialize, Debug)]
pub struct TaskBatch {
    /// The module to run, by content hash. A worker without it asks with `fetch_module`.
    pub module: ModuleHash,
    /// The task export to call.
    pub export: String,
    /// Limits for each task of the batch.
    pub limits: TaskLimits,
    /// The tasks.
    pub tasks: Vec<TaskItem>,
}

/// One task of a [`TaskBatch`].
#[derive(Serialize, Deserialize, Debug)]
pub struct TaskItem {
    /// The server's id for this attempt at the task; the result must carry it back.
    pub id: u64,
    /// The task's argument as JSON (an array of the arguments when the task takes several).
    pub input: Box<RawJson>,
}
