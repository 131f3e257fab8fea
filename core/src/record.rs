//! What the core asks to be journaled: everything that happened to a job that a restarted
//! server needs to carry on where it stopped, in the order it happened. The core emits them
//! as [`crate::Effect::Journal`]; the server's journal writes them, and
//! [`crate::Coordinator::restore`] replays them.

use dipla_protocol::RawJson;

use crate::fleet::{Credibility, WorkerRecord};
use crate::types::{Check, Outcome, TaskRef};

/// Something that happened to a job, in the order it happened.
#[derive(Debug, Clone)]
pub enum Record {
    /// A task's outcome became final.
    Result {
        /// The task.
        task: TaskRef,
        /// Its output or failure.
        outcome: Outcome,
        /// How the output was checked.
        check: Check,
        /// The identity that gave it (none when replicas agreed on it).
        by: Option<String>,
    },
    /// An output of this task met its stage's goal.
    Goal(TaskRef),
    /// An explore stage discovered a new input (its next task).
    Discovered {
        /// The stage.
        stage: usize,
        /// The input.
        input: Box<RawJson>,
    },
    /// A final result was withdrawn: its worker was caught lying, and the task runs again.
    Revoked(TaskRef),
    /// An identity's trust record changed (it agreed, was rejected, was caught, left).
    Identity {
        /// Its public key.
        key: String,
        /// Its record.
        credibility: Credibility,
    },
    /// A worker's signed receipt for one results message, and the tasks its entries
    /// answered (entry number in the receipt).
    Receipt {
        /// The worker's identity.
        identity: String,
        /// Its signature over `body`.
        signature: String,
        /// The signed bytes ([`dipla_protocol::identity::receipt_message`]).
        body: Vec<u8>,
        /// Each answered task and its entry in `body`.
        tasks: Vec<(TaskRef, u32)>,
    },
    /// A worker left; what the scheduler knew of it.
    Worker {
        /// The name it gave.
        name: String,
        /// Its record.
        record: WorkerRecord,
    },
}
