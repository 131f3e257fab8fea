//! How a worker can break the protocol: every reason the server closes a worker's connection
//! on its account. Each is its own variant, so a close can be matched, counted and tested by
//! kind; its text is the close frame's reason (and the log's).

use std::time::Duration;

use dipla_core::AttemptId;
use dipla_protocol::{
    FailureKind, MAX_FAILURE_MESSAGE_BYTES, MAX_WORKER_MESSAGE_BYTES, ModuleHash, PROTOCOL_VERSION,
};
use thiserror::Error;

/// A worker broke the protocol; the server closes its connection, giving this as the reason
/// (code 1008, policy violation, or 1009 for [`Violation::TooBig`]).
#[derive(Debug, Error)]
pub enum Violation {
    // Joining: the hello.
    /// The first message is another message than `hello`.
    #[error("the first message must be hello")]
    NotHello,
    /// The first message is not a `hello` the server can read.
    #[error("bad hello: {0}")]
    BadHello(serde_json::Error),
    /// The first frame is not a text frame.
    #[error("the first message must be a hello text frame")]
    HelloNotText,
    /// No hello came in time.
    #[error("no hello within {0:?}")]
    NoHello(Duration),
    /// The hello speaks another protocol version.
    #[error("protocol version {0} is not supported; this server speaks {PROTOCOL_VERSION}")]
    Version(u32),
    /// The server admits only workers with a token, and the hello's is missing or wrong.
    #[error("this server admits only workers with a valid token (--token)")]
    Token,
    /// The hello names no identity.
    #[error("this server requires an identity (protocol 2)")]
    NoIdentity,
    /// The server has as many workers as it takes.
    #[error("this server is full ({0} workers); try again later")]
    Full(usize),
    /// Its address has as many identities as the server allows one address.
    #[error("too many identities from this address")]
    TooManyIdentities,
    /// The job has a module larger than the worker takes (its hello's `max_module_mb`):
    /// refused rather than sent a module it would refuse.
    #[error(
        "module {name} is {:.1} MiB, over this worker's limit of {limit_mb} MiB (--max-module-mb)",
        *.bytes as f64 / f64::from(1 << 20)
    )]
    ModuleOverLimit {
        /// The module's name in the job.
        name: String,
        /// Its size.
        bytes: usize,
        /// The worker's limit, in MiB.
        limit_mb: u32,
    },
    /// A browser worker joined a job with a module no browser can run (a component, or one
    /// the instrumentation pass refuses): refused rather than sent tasks it would fail.
    #[error("module {name} cannot run in a browser: {why}")]
    NotForBrowser {
        /// The module's name in the job.
        name: String,
        /// Why.
        why: String,
    },
    /// Instrumenting a module for a browser failed unexpectedly.
    #[error("the server could not prepare a module for this browser")]
    Instrumenting,

    // Joining: the identity's proof.
    /// The challenge could not be sent: the connection ended.
    #[error("the connection ended")]
    Unchallenged,
    /// The answer to the challenge is another message than `proof`.
    #[error("the answer to a challenge must be a proof")]
    NotProof,
    /// The answer to the challenge is not a message the server can read.
    #[error("bad proof: {0}")]
    BadProof(serde_json::Error),
    /// The answer to the challenge is not a text frame.
    #[error("the answer to a challenge must be a proof text frame")]
    ProofNotText,
    /// No proof came in time.
    #[error("no proof within {0:?}")]
    NoProof(Duration),
    /// The proof is not a signature of the challenge by the identity the hello named.
    #[error("the identity proof does not check: this worker does not hold that identity's key")]
    Forged,

    // Once joined: frames and messages.
    /// A worker waiting in the lobby (no job needs it) sent a message.
    #[error("a worker without a job has nothing to send")]
    Lobby,
    /// A binary frame: only the server sends them (modules).
    #[error("workers may not send binary frames")]
    Binary,
    /// A text frame that is not a worker message.
    #[error("bad message: {0}")]
    BadMessage(serde_json::Error),
    /// A message over [`MAX_WORKER_MESSAGE_BYTES`] (closed with code 1009, message too big).
    #[error("message over {} MiB", MAX_WORKER_MESSAGE_BYTES >> 20)]
    TooBig,
    /// A second `hello`.
    #[error("hello sent twice")]
    HelloTwice,
    /// A second `proof`.
    #[error("proof sent twice")]
    ProofTwice,
    /// A module the job does not have was asked for.
    #[error("asked for module {0}, which this job does not have")]
    UnknownModule(ModuleHash),
    /// A module was asked for again on the same connection.
    #[error("asked for module {0} twice")]
    ModuleTwice(ModuleHash),

    // Results and their receipts.
    /// A result for an attempt the connection was not sent, or has answered already.
    #[error("result for task {0}, which this worker was not given or already answered")]
    NotGiven(AttemptId),
    /// A result with both an output and an error, or neither.
    #[error("result {0} must have exactly one of output and error")]
    NotOneOutcome(AttemptId),
    /// A result claiming a failure only a server reports.
    #[error("result {attempt} claims a {kind:?} failure, which only a server reports")]
    ServerOnlyFailure {
        /// The result's attempt.
        attempt: AttemptId,
        /// The failure kind it claims.
        kind: FailureKind,
    },
    /// A result whose failure message is over [`MAX_FAILURE_MESSAGE_BYTES`].
    #[error("result {0}'s failure message is over {MAX_FAILURE_MESSAGE_BYTES} bytes")]
    FailureTooLong(AttemptId),
    /// Results without a receipt.
    #[error("results without a receipt")]
    NoReceipt,
    /// A receipt that is not the identity's signature over the results it comes with.
    #[error(
        "the results' receipt does not check: it is not this identity's signature over these \
         tasks and their outcomes"
    )]
    BadReceipt,
    /// The coordinator refused a result.
    #[error(transparent)]
    Core(#[from] dipla_core::Violation),
}

impl Violation {
    /// Whether the connection is closed as sending a message too big (code 1009) rather than
    /// as a policy violation (code 1008).
    pub fn is_too_big(&self) -> bool {
        matches!(self, Self::TooBig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The close reasons workers, tests and the threat table in `docs/ARCHITECTURE.md` read.
    #[test]
    fn close_reasons_read_as_before() {
        let bad = || serde_json::from_str::<u8>("x").unwrap_err();
        let module = ModuleHash::of(b"m");
        for (violation, reason) in [
            (
                Violation::NotHello,
                "the first message must be hello".to_owned(),
            ),
            (Violation::BadHello(bad()), format!("bad hello: {}", bad())),
            (
                Violation::NoHello(Duration::from_secs(10)),
                "no hello within 10s".into(),
            ),
            (
                Violation::Version(1),
                format!(
                    "protocol version 1 is not supported; this server speaks {PROTOCOL_VERSION}"
                ),
            ),
            (
                Violation::NoIdentity,
                "this server requires an identity (protocol 2)".into(),
            ),
            (
                Violation::ModuleOverLimit {
                    name: "t".into(),
                    bytes: 19_600_000,
                    limit_mb: 16,
                },
                "module t is 18.7 MiB, over this worker's limit of 16 MiB (--max-module-mb)".into(),
            ),
            (
                Violation::NotForBrowser {
                    name: "tasks".into(),
                    why: "it is a component (a Python guest)".into(),
                },
                "module tasks cannot run in a browser: it is a component (a Python guest)".into(),
            ),
            (
                Violation::Full(2),
                "this server is full (2 workers); try again later".into(),
            ),
            (
                Violation::TooManyIdentities,
                "too many identities from this address".into(),
            ),
            (
                Violation::Forged,
                "the identity proof does not check: this worker does not hold that identity's key"
                    .into(),
            ),
            (
                Violation::Binary,
                "workers may not send binary frames".into(),
            ),
            (
                Violation::BadMessage(bad()),
                format!("bad message: {}", bad()),
            ),
            (Violation::TooBig, "message over 16 MiB".into()),
            (Violation::HelloTwice, "hello sent twice".into()),
            (
                Violation::ModuleTwice(module),
                format!("asked for module {module} twice"),
            ),
            (
                Violation::NotGiven(7),
                "result for task 7, which this worker was not given or already answered".into(),
            ),
            (
                Violation::NotOneOutcome(7),
                "result 7 must have exactly one of output and error".into(),
            ),
            (
                Violation::ServerOnlyFailure {
                    attempt: 7,
                    kind: FailureKind::Stopped,
                },
                "result 7 claims a Stopped failure, which only a server reports".into(),
            ),
            (
                Violation::BadReceipt,
                "the results' receipt does not check: it is not this identity's signature \
                 over these tasks and their outcomes"
                    .into(),
            ),
            (
                Violation::Core(dipla_core::Violation::UnknownAttempt(7)),
                "result for task 7, which this worker was not given or already answered".into(),
            ),
        ] {
            assert_eq!(violation.to_string(), reason);
        }
        assert!(Violation::TooBig.is_too_big());
        assert!(!Violation::Binary.is_too_big());
    }
}
