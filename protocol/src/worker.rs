use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{ModuleHash, PublicKey, RawJson, Signature};

/// A message from a worker to the server (a JSON text frame).
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
pub enum WorkerMessage {
    /// The first message on every connection.
    Hello(Hello),
    /// Asks for the bytes of modules this worker does not have; the server answers with one
    /// binary frame per module.
    FetchModule {
        /// The modules wanted.
        hashes: Vec<ModuleHash>,
    },
    /// The answer to the server's challenge: the worker's signature over
    /// [`crate::identity::join_message`], proving it holds its identity's secret key.
    Proof {
        /// The signature.
        signature: Signature,
    },
    /// Results of finished tasks, in any order, batched as the worker sees fit.
    Results {
        /// The results.
        results: Vec<TaskResult>,
        /// The worker's signature over [`crate::identity::receipt_message`] of this
        /// message's results, outputs and failures alike (required).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        receipt: Option<Signature>,
    },
    /// The worker's volunteer wants its machine back for now (other programs are busy, it
    /// runs on battery, it is outside the volunteer's hours): the worker has stopped its
    /// tasks and dropped its queue, sends no results for them, and takes no work until it
    /// sends [`WorkerMessage::Resume`]. The server gives its tasks to other workers at once,
    /// neither as failures nor against the worker's trust. Sent only to a server whose
    /// [`crate::Welcome::pause`] says it understands it (an older server would take it for a
    /// protocol violation); against another, a worker closes the connection while paused.
    Pause {
        /// Why, for the server's log and dashboard (at most 200 characters are kept).
        reason: String,
    },
    /// The worker runs tasks again after a [`WorkerMessage::Pause`].
    Resume {},
}

/// The longest pause reason a server keeps, in characters.
pub const MAX_PAUSE_REASON_CHARS: usize = 200;

/// Who a worker is and what it offers.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Hello {
    /// The protocol version the worker speaks ([`crate::PROTOCOL_VERSION`]).
    pub protocol: u32,
    /// A human-readable name, for logs and dashboards. Not trusted for anything.
    pub name: String,
    /// The worker program's version.
    pub version: String,
    /// How many tasks the worker runs at once.
    pub cores: u32,
    /// The volunteer's cap on one task's memory, in MiB.
    pub max_memory_mb: u32,
    /// The volunteer's cap on one task's fuel.
    pub max_fuel: u64,
    /// The largest module, in MiB, the volunteer lets this worker download and compile. A
    /// server whose job has a larger module refuses the worker at once, naming it, rather
    /// than sending it. Absent (an older worker): the server assumes
    /// [`crate::DEFAULT_MAX_MODULE_MB`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_module_mb: Option<u32>,
    /// The worker's self-benchmark, if it ran one. The server checks each kernel's fuel and
    /// checksum and recomputes the score; it then trusts what tasks show more than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<Benchmark>,
    /// The token a server that admits only known workers asks for (`dipla-worker --token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// The worker's identity (its Ed25519 public key), proved in answer to the challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<PublicKey>,
    /// What kind of program the worker is: absent for `dipla-worker` ([`Agent::Native`]),
    /// `"browser"` for the page a server serves at `/volunteer`, which is sent modules
    /// instrumented to meter fuel and canonicalise NaNs as the native sandbox does (see
    /// [`crate::ServerMessage::Instrumented`]). An older server ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Agent>,
}

/// What kind of program a worker is.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum Agent {
    /// A browser page (`/volunteer`): it runs instrumented modules in the browser's engine,
    /// and cannot run components (Python guests).
    Browser,
    /// `dipla-worker`, or anything this server does not know (taken as native).
    #[default]
    #[serde(other)]
    Native,
}

impl Agent {
    /// The agent's name, as on the wire and in the operator's API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Browser => "browser",
        }
    }
}

/// A secret, such as a worker token: serialised as the plain string, never shown by `Debug`.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A self-benchmark: fuel-metered microkernels run in the task sandbox.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Benchmark {
    /// The weighted geometric mean over kernels of fuel per microsecond, per core.
    pub score: f64,
    /// Each kernel's best trial.
    pub kernels: Vec<KernelRun>,
}

/// One benchmark kernel's best trial.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct KernelRun {
    /// The kernel's name, such as `int_chain`.
    pub name: String,
    /// Fuel one trial consumed (the same on every machine).
    pub fuel: u64,
    /// Wall-clock time of the fastest trial, in microseconds.
    pub micros: u64,
    /// The kernel's result, 16 hex digits (the same on every machine).
    pub checksum: String,
}

/// The result of one task.
///
/// Exactly one of `output` and `error` is present; [`TaskResult::outcome`] checks that.
#[derive(Serialize, Deserialize, Debug)]
pub struct TaskResult {
    /// The id from the [`crate::TaskItem`].
    pub id: u64,
    /// Fuel the task consumed (deterministic for a given module, input and limits).
    pub fuel: u64,
    /// Wall-clock time the task took on the worker, in microseconds (for scheduling only).
    pub micros: u64,
    /// The task's return value as JSON, when it succeeded. A present `"output": null` is
    /// `Some` of `null` (a task may return `null`); only a missing field is `None`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::present::deserialize"
    )]
    pub output: Option<Box<RawJson>>,
    /// Why the task failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskFailure>,
    /// The output meets the stage's goal: the task asks the server to stop the stage.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop: bool,
    /// What the task logged (`dipla_guest::log!`), at most [`MAX_LOG_BYTES`]: the worker's
    /// report, shown to the user as it is. Not covered by the receipt, never compared,
    /// journaled or part of an output, so it cannot change a result or a vote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// The longest task log a worker sends, in bytes: a worker cuts longer ones before it sends
/// them, and a server cuts what it receives to this (see [`crate::text::printable_log`]).
pub const MAX_LOG_BYTES: usize = 8192;

impl TaskResult {
    /// A successful result.
    pub fn success(id: u64, fuel: u64, micros: u64, output: Box<RawJson>) -> Self {
        Self {
            id,
            fuel,
            micros,
            output: Some(output),
            error: None,
            stop: false,
            log: None,
        }
    }

    /// A failed result.
    pub fn failure(id: u64, fuel: u64, micros: u64, error: TaskFailure) -> Self {
        Self {
            id,
            fuel,
            micros,
            output: None,
            error: Some(error),
            stop: false,
            log: None,
        }
    }

    /// The output or the failure, consuming the result; `None` when the message has both or
    /// neither (a protocol violation).
    pub fn into_outcome(self) -> Option<Result<Box<RawJson>, TaskFailure>> {
        match (self.output, self.error) {
            (Some(output), None) => Some(Ok(output)),
            (None, Some(error)) => Some(Err(error)),
            _ => None,
        }
    }

    /// The output or the failure; `None` when the message has both or neither (a protocol
    /// violation).
    pub fn outcome(&self) -> Option<Result<&RawJson, &TaskFailure>> {
        match (&self.output, &self.error) {
            (Some(output), None) => Some(Ok(output)),
            (None, Some(error)) => Some(Err(error)),
            _ => None,
        }
    }
}

/// Why a task failed.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    /// The class of failure; decides whether a retry can help.
    pub kind: FailureKind,
    /// A human-readable reason (a panic message, the guest's error, the trap).
    pub message: String,
}

/// The longest failure message a worker may send, in bytes: a worker cuts longer ones
/// ([`TaskFailure::bounded`]) before it signs them, and a server refuses longer ones.
pub const MAX_FAILURE_MESSAGE_BYTES: usize = 4096;

impl TaskFailure {
    /// The failure with its message cut to [`MAX_FAILURE_MESSAGE_BYTES`] (at a character
    /// boundary, ending in `…`).
    pub fn bounded(mut self) -> Self {
        if self.message.len() > MAX_FAILURE_MESSAGE_BYTES {
            let ellipsis = '…';
            let mut end = MAX_FAILURE_MESSAGE_BYTES - ellipsis.len_utf8();
            while !self.message.is_char_boundary(end) {
                end -= 1;
            }
            self.message.truncate(end);
            self.message.push(ellipsis);
        }
        self
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// The class of a task failure.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The task returned an error.
    Guest,
    /// The task panicked.
    Panic,
    /// The task trapped (out-of-bounds access, division by zero, unreachable, ...).
    Trap,
    /// The task used all its fuel.
    OutOfFuel,
    /// The task tried to grow its memory past the limit.
    MemoryLimit,
    /// The task overflowed the wasm stack.
    StackOverflow,
    /// The task hit the wall-clock backstop (not deterministic: depends on the machine).
    Timeout,
    /// The module or export cannot be run (imports, missing export, wrong signature, bad ABI).
    Rejected,
    /// The task's output broke the ABI (out-of-bounds pointer, too large, not JSON).
    BadOutput,
    /// The worker itself failed (for example it could not fetch the module).
    Worker,
    /// An input the task needed, the output of another task, failed; the task never ran.
    /// Only the server uses it.
    Upstream,
    /// The task's stage met its goal before the task finished, so it was not run or was
    /// cancelled. Only the server uses it.
    Stopped,
    /// The stage's verifier rejected the output, or workers could not agree on it. Only the
    /// server uses it.
    Unverified,
}

impl FailureKind {
    /// Whether only a server reports this kind (a worker claiming it breaks the protocol).
    pub fn is_server_only(self) -> bool {
        matches!(self, Self::Upstream | Self::Stopped | Self::Unverified)
    }

    /// Whether every honest worker gets the same failure for the same task: if so, running
    /// the task again elsewhere gives the same answer.
    pub fn is_deterministic(self) -> bool {
        !matches!(
            self,
            Self::Timeout | Self::Worker | Self::StackOverflow | Self::Unverified
        )
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Guest => "task error",
            Self::Panic => "panic",
            Self::Trap => "trap",
            Self::OutOfFuel => "out of fuel",
            Self::MemoryLimit => "memory limit",
            Self::StackOverflow => "stack overflow",
            Self::Timeout => "timeout",
            Self::Rejected => "module rejected",
            Self::BadOutput => "bad output",
            Self::Worker => "worker error",
            Self::Upstream => "upstream failure",
            Self::Stopped => "stopped",
            Self::Unverified => "unverified",
        })
    }
}
