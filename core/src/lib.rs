//! Dipla's scheduling core: which task runs where, what happens when it fails or its worker
//! vanishes, which tasks a finished one makes ready, which results are checked and final.
//!
//! It is *sans-I/O*: it reads no clock, opens no socket or file, spawns nothing, logs
//! nothing and draws no randomness from the system. The server feeds it inputs (a worker
//! joined, identified, answered, was rejected, left or was expelled, and
//! [`Coordinator::tick`] with the time now) and carries out the [`Effect`]s it leaves
//! (journal this record, wake these connections, cancel these attempts, results are ready,
//! log this event). [`Coordinator::poll_timeout`] says when it next needs to be called if
//! nothing else happens. Its randomness (which answers to replicate) comes from a seed, so a
//! run is a function of its inputs: the simulator (`cargo xtask sim`) drives it in virtual
//! time through thousands of seeded fleets, crashes and liars.
//!
//! The map, leaves first:
//! - [`types`]: ids, tasks, outcomes, answers, counters;
//! - [`plan`]: what the core knows of a stage (feed, keep, replication, limits);
//! - [`record`]: what it asks to journal, and replays on restore;
//! - [`effect`]: what it asks of the world;
//! - `fleet` (workers, windows, speeds, trust records), `votes` (replication), `tree` (the
//!   reduce tree): the parts of
//! - [`coordinator`]: the state of one job and its inputs.

pub mod coordinator;
pub mod effect;
mod fleet;
pub mod plan;
mod queue;
pub mod record;
mod tree;
pub mod types;
mod votes;

pub use coordinator::{Coordinator, DEADLINE_GRACE, MAX_LOST, SPECULATE_FASTER, STRAGGLER};
pub use effect::{Effect, Event, Wake};
pub use fleet::{
    ACCEPTED_PER_STRIKE, Credibility, IdentityId, MAX_STRIKES, START_ALLOWANCE, WorkerRecord,
};
pub use plan::{ADAPTIVE_FLOOR, ADAPTIVE_HALF, Feed, Keep, Replicate, StagePlan};
pub use record::Record;
pub use types::{
    Answer, Assignment, AttemptId, Check, Counts, Departure, Finished, Outcome, StageProgress,
    TaskRef, Violation, WorkerId,
};
