//! A deterministic simulator for Dipla's scheduling core ([`dipla_core`]).
//!
//! One seed is one run: it chooses the job's shape (maps, zips, reduces, explore stages,
//! early stops, replication, verifiers), a fleet of 1 to 1,000 volunteers with speeds spread
//! 100x, when they join, leave and crash, which of them lie, claim false failures, break the
//! protocol or take work and go silent (up to the bound the trust model states), how long
//! each message takes, and when the server itself crashes and is restored from the journal
//! records emitted so far. Everything happens in virtual time, so a run of a thousand
//! workers takes milliseconds and the same seed always does the same thing.
//!
//! After every step the invariants are checked (see [`world`] and [`ledger`]): each task is
//! final once; every accepted output is what the task computes on its input; nothing of an
//! identity caught lying stands in a stage that can still take it back; no honest worker is
//! untrusted; nothing final is lost across a restore; results kept are bounded by the work
//! in flight and the results retained; the job does not hang and ends within its bound of
//! virtual time. When it ends, [`check`] compares what was written with the reference.
//!
//! The map: [`rng`] (the seeded randomness), [`shape`] (the job and what its tasks compute),
//! [`fleet`] (the volunteers), [`ledger`] (the journal as read), [`world`] (the run),
//! [`check`] (the written results).

pub mod check;
pub mod fleet;
pub mod ledger;
pub mod rng;
pub mod shape;
pub mod world;

pub use world::{Failure, Report, World};

/// Runs seed `seed`.
///
/// # Errors
/// The first invariant it broke (a panic in the core counts as one).
pub fn run(seed: u64) -> Result<Report, Failure> {
    std::panic::catch_unwind(|| World::new(seed).run()).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        Err(Failure {
            at: 0,
            what: format!("panicked: {what} (seed {seed})"),
        })
    })
}

/// What a batch of seeds did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Seeds that broke an invariant.
    pub failures: u64,
    /// Result lines over all runs.
    pub tasks: u64,
    /// The largest fleet.
    pub workers_max: usize,
    /// Machines that crashed with work.
    pub crashes: u64,
    /// Server restarts restored from the journal.
    pub restores: u64,
    /// Liars caught.
    pub liars_caught: u64,
    /// Times a worker paused.
    pub pauses: u64,
    /// Virtual time over all runs, in µs.
    pub virtual_micros: u64,
}

impl Summary {
    /// Adds one run's report.
    pub fn add(&mut self, report: &Report) {
        self.tasks += report.tasks;
        self.workers_max = self.workers_max.max(report.workers);
        self.crashes += report.crashes;
        self.restores += report.restores;
        self.liars_caught += report.liars_caught;
        self.pauses += report.pauses;
        self.virtual_micros += report.virtual_micros;
    }

    /// Adds another batch's summary.
    pub fn merge(&mut self, other: &Self) {
        self.seeds += other.seeds;
        self.failures += other.failures;
        self.tasks += other.tasks;
        self.workers_max = self.workers_max.max(other.workers_max);
        self.crashes += other.crashes;
        self.restores += other.restores;
        self.liars_caught += other.liars_caught;
        self.pauses += other.pauses;
        self.virtual_micros += other.virtual_micros;
    }
}
