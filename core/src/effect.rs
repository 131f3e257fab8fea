//! What the core asks of the world around it. Every input method of
//! [`crate::Coordinator`] may leave effects behind; the server takes them with
//! [`crate::Coordinator::take_effects`] while it still holds the core, and carries them out in
//! the order given: it journals records, wakes connections, tells the writer results are ready
//! and logs events. The core itself never blocks, sends or writes.

use crate::record::Record;
use crate::types::{AttemptId, TaskRef, WorkerId};

/// One thing to do.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Write this record to the journal (and, for [`Record::Identity`], to the server's
    /// trust records), in this order.
    Journal(Record),
    /// These connections should ask for work or send what waits for them.
    Wake(Wake),
    /// Tell this worker to stop these attempts (their results are no longer wanted).
    Cancel {
        /// The worker.
        worker: WorkerId,
        /// Its attempts to stop.
        attempts: Vec<AttemptId>,
    },
    /// Final results may be ready for the writer ([`crate::Coordinator::take_ready`]), or a
    /// stage may be complete.
    Ready,
    /// Something an operator may want to read in the log.
    Event(Event),
}

/// Whom to wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Every connection: tasks went back on the queue, new ones exist, or a worker took its
    /// share and left the rest to others.
    All,
    /// One connection.
    Worker(WorkerId),
}

/// Something worth a line in the operator's log.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Enough workers joined: tasks are given out.
    Started {
        /// How many trusted workers had joined.
        joined: usize,
    },
    /// An attempt ran past its deadline; its task went to another worker too.
    Overdue {
        /// The attempt.
        attempt: AttemptId,
        /// Its task.
        task: TaskRef,
    },
    /// An identity was caught lying (or is unreliable) and gets no more work.
    Untrusted {
        /// Its public key.
        identity: String,
        /// Why.
        why: String,
    },
}
