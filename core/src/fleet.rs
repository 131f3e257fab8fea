//! The connected workers as the scheduler sees them: how many tasks each may have in flight,
//! and how fast each really is.
//!
//! A worker's speed is in fuel per microsecond of one core, the unit of its benchmark score.
//! Before it has finished a few tasks, its speed is its checked benchmark score, scaled by how
//! the job's tasks ran on workers whose score and tasks are both known (a float-heavy job
//! burns fuel slower than the benchmark's mix); a worker without a score counts as the
//! median of the others. After a few tasks, its speed is what its tasks showed: fuel burnt
//! over time spent. Claims do not outlive evidence.
//!
//! How much work a worker holds is the server's own judgement, never the worker's word: its
//! in-flight window follows the rate at which the server sees it answer (sent → answered), and
//! every identity, over all its connections, holds at most an allowance it earns with accepted
//! results and loses with abandoned work and failures nobody confirms.

use std::collections::HashMap;

use crate::types::WorkerId;

/// A worker identity (a public key, or a connection that did not give one), interned.
pub type IdentityId = u32;

/// What the server knows of an identity, across its connections: its trust record, kept by
/// public key in the journal so that it outlives reconnects and restarts.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Credibility {
    /// Its replicated results that agreed with the canonical one.
    pub agreed: u64,
    /// Its outputs a verifier rejected.
    pub rejected: u64,
    /// Why it was caught returning a wrong result, if it was: it then gets no work.
    pub untrusted: Option<String>,
    /// The fuel per µs per core its tasks last showed.
    pub speed: Option<f64>,
    /// Its answers that were accepted: outputs that became results, and failures another
    /// identity confirmed.
    pub accepted: u64,
    /// Times it let work down: a connection that ended with tasks in flight, a protocol
    /// violation, or a failure that another identity's accepted output refuted.
    pub strikes: u64,
}

impl Credibility {
    /// Merges `from` into this record: the larger of each count, any untrusted mark, the
    /// latest speed. Records only grow, so two views of one identity merge this way.
    pub fn merge(&mut self, from: &Self) {
        self.agreed = self.agreed.max(from.agreed);
        self.rejected = self.rejected.max(from.rejected);
        self.accepted = self.accepted.max(from.accepted);
        self.strikes = self.strikes.max(from.strikes);
        if self.untrusted.is_none() {
            self.untrusted.clone_from(&from.untrusted);
        }
        if from.speed.is_some() {
            self.speed = from.speed;
        }
    }

    /// How many tasks an identity with this record may hold at once, over all its
    /// connections: [`START_ALLOWANCE`] plus one per accepted answer (so a worker whose
    /// answers are all accepted doubles it every round trip), divided by one plus its strikes.
    pub fn allowance(&self) -> usize {
        let earned = (START_ALLOWANCE as u64).saturating_add(self.accepted);
        usize::try_from(earned / (1 + self.strikes)).unwrap_or(usize::MAX)
    }

    /// Whether it lets work down so often that it should get none: at least [`MAX_STRIKES`]
    /// strikes, and more than one per [`ACCEPTED_PER_STRIKE`] accepted answers.
    pub fn unreliable(&self) -> bool {
        self.strikes >= MAX_STRIKES
            && self.strikes.saturating_mul(ACCEPTED_PER_STRIKE) > self.accepted
    }
}

/// Tasks a new identity may hold at once, over all its connections.
pub const START_ALLOWANCE: usize = 16;
/// Strikes an identity may have before it can be found unreliable.
pub const MAX_STRIKES: u64 = 8;
/// Accepted answers that make up for one strike.
pub const ACCEPTED_PER_STRIKE: u64 = 20;

/// In-flight tasks per core before the first result tells how long tasks take.
const START_PER_CORE: usize = 2;
/// Bounds on in-flight tasks per core.
pub(crate) const MIN_PER_CORE: usize = 2;
pub(crate) const MAX_PER_CORE: usize = 512;
/// How much work, in microseconds, to keep queued on each core: enough to hide a round trip,
/// little enough that the end of a job is not stuck behind one worker's backlog.
const TARGET_QUEUED_MICROS: f64 = 20_000.0;
/// Results after which a worker's measured speed replaces its claimed one.
const MEASURED_AFTER: u64 = 3;
/// Server time, in microseconds of a worker holding tasks, over which its answer rate is
/// sampled.
const RATE_SAMPLE_MICROS: u64 = 5_000;
/// ...and over which its first sample is taken (a fresh worker should not wait long for a
/// window that fits it).
const FIRST_SAMPLE_MICROS: u64 = 1_000;
/// Weight of a new, slower sample in a worker's answer rate (a faster one is taken at once:
/// a window that is too small is what keeps the rate down).
const RATE_WEIGHT: f64 = 0.5;
/// A worker's claimed cores are judged against its answers only when each task waits on it
/// at least this long (microseconds), so that round trips do not hide its parallelism.
const CORES_JUDGED_AFTER_MICROS: f64 = 20_000.0;
/// A worker whose measured speed per claimed point is below the best worker's by this
/// factor is noted as claiming more than it does.
const OVERCLAIM: f64 = 2.0;

/// What the scheduler knows of one worker.
#[derive(Debug)]
pub(crate) struct Worker {
    pub(crate) cores: usize,
    pub(crate) in_flight: usize,
    /// Tasks answered per µs while it held some, as the server saw it (sent → answered).
    rate: Option<f64>,
    /// The sample being gathered: answers, and server time holding tasks, since it began.
    sample_answers: u64,
    sample_micros: u64,
    /// Since when (server time) it has held tasks, if it does.
    busy_since: Option<u64>,
    /// Moving average of task time on this worker, in microseconds.
    task_micros: Option<f64>,
    /// Its checked benchmark score (fuel per µs per core).
    claimed: Option<f64>,
    /// Fuel and core time its finished tasks reported.
    fuel: u64,
    micros: u64,
    results: u64,
    /// Something the operator should know (a benchmark that did not check out...).
    note: Option<String>,
    /// Who it is.
    pub(crate) identity: IdentityId,
    /// Where it connected from, if the transport said.
    address: Option<String>,
    /// Whether its volunteer paused it: it holds no task and gets none until it resumes.
    paused: bool,
}

impl Worker {
    /// How many tasks it may have in flight: [`START_PER_CORE`] per core at first, then
    /// enough for [`TARGET_QUEUED_MICROS`] of work at the rate the server sees it answer
    /// (between [`MIN_PER_CORE`] and [`MAX_PER_CORE`] per core). What it says of its own
    /// tasks' times plays no part.
    pub(crate) fn window(&self) -> usize {
        match self.rate {
            None => self.cores * START_PER_CORE,
            Some(rate) => {
                let fit = (rate * TARGET_QUEUED_MICROS) as usize;
                fit.clamp(self.cores * MIN_PER_CORE, self.cores * MAX_PER_CORE)
            }
        }
    }

    /// Tasks were sent to it at server time `now`.
    fn sent(&mut self, tasks: usize, now: u64) {
        if self.in_flight == 0 && tasks > 0 {
            self.busy_since = Some(now);
        }
        self.in_flight += tasks;
    }

    /// One of its tasks ended at server time `now` (`answered`: by its answer, not a
    /// cancellation).
    fn ended(&mut self, now: u64, answered: bool) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(since) = self.busy_since {
            self.sample_micros += now.saturating_sub(since);
            self.busy_since = (self.in_flight > 0).then_some(now);
        }
        self.sample_answers += u64::from(answered);
        let span = if self.rate.is_some() {
            RATE_SAMPLE_MICROS
        } else {
            FIRST_SAMPLE_MICROS
        };
        if self.sample_micros >= span && self.sample_answers > 0 {
            let sample = self.sample_answers as f64 / self.sample_micros as f64;
            self.rate = Some(self.rate.map_or(sample, |rate| {
                rate + RATE_WEIGHT * (sample - rate).min(0.0) + (sample - rate).max(0.0)
            }));
            self.sample_answers = 0;
            self.sample_micros = 0;
            self.judge_cores();
        }
    }

    /// Checks its claimed cores against what its answers show: kept full, a worker with `c`
    /// cores answers `c` tasks per task time. A worker answering as if it had fewer than
    /// half of them is believed to have what it shows (its word on task times can only lower
    /// that), and noted.
    fn judge_cores(&mut self) {
        let (Some(rate), Some(micros)) = (self.rate, self.task_micros) else {
            return;
        };
        if self.in_flight < self.cores || rate <= 0.0 {
            return;
        }
        // Little's law: how long a task stays with it, queueing included.
        let held = self.in_flight as f64 / rate;
        if held < CORES_JUDGED_AFTER_MICROS {
            return;
        }
        let shown = (rate * micros).ceil().max(1.0) as usize;
        if shown.saturating_mul(2) < self.cores {
            self.note = Some(format!(
                "claims {} cores, but answers as if it had {shown}: believed to have {shown}",
                self.cores
            ));
            self.cores = shown;
        }
    }

    /// Fuel per µs per core its tasks showed, once there are enough of them.
    fn measured(&self) -> Option<f64> {
        (self.results >= MEASURED_AFTER && self.fuel > 0 && self.micros > 0)
            .then(|| self.fuel as f64 / self.micros as f64)
    }
}

/// A worker's record, for operators and tests.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkerRecord {
    /// Its identity: its public key (or `connection:N` for one that gave none).
    pub identity: String,
    /// Tasks it runs at once.
    pub cores: usize,
    /// Tasks it is running.
    pub running: usize,
    /// Its checked benchmark score, fuel per µs per core.
    pub claimed: Option<f64>,
    /// The fuel per µs per core its tasks showed, once known.
    pub measured: Option<f64>,
    /// The speed the scheduler ranks it by, fuel per µs per core.
    pub speed: f64,
    /// Results it has returned.
    pub results: u64,
    /// What the operator should know about it, if anything.
    pub note: Option<String>,
    /// Whether it still gets work: false once caught returning a wrong result.
    pub trusted: bool,
    /// Whether its volunteer paused it (it holds no task and gets none until it resumes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Its identity's replicated results that agreed with the canonical one (its
    /// credibility).
    pub agreed: u64,
    /// Its outputs a verifier rejected.
    pub rejected: u64,
}

/// Every connected worker, and every identity seen.
#[derive(Debug, Default)]
pub(crate) struct Fleet {
    workers: HashMap<WorkerId, Worker>,
    /// Identities' keys, by id.
    keys: Vec<String>,
    interned: HashMap<String, IdentityId>,
    /// The identity of every connection ever seen (a replica never goes to an identity that
    /// was given the task, even on an earlier connection).
    identity_of: HashMap<WorkerId, IdentityId>,
    credibility: HashMap<IdentityId, Credibility>,
    /// Fleet-wide figures every ranking uses, kept rather than computed per call.
    estimates: Estimates,
    /// Tasks each identity holds, over all its connections.
    holding: HashMap<IdentityId, usize>,
    /// The server's own identities (its local workers): trusted with any amount of work, and
    /// their deterministic failures are final.
    own: std::collections::HashSet<IdentityId>,
    /// Changes (joins, leaves, claims, results) since `estimates` were computed.
    changes: usize,
}

/// What the scheduler derives from the whole fleet. Computing them walks every worker, and
/// the scheduler asks for them on every assignment (for each worker, when it ranks them), so
/// they are recomputed after every change in a small fleet and after every eighth-of-the-
/// fleet changes in a large one: with 5,000 workers, computing them per call took the server
/// minutes at the end of a job.
#[derive(Debug, Default, Clone, Copy)]
struct Estimates {
    /// The median over workers of measured speed / claimed score.
    ratio: Option<f64>,
    /// The best such ratio (a worker far below it claims more than it does).
    best: Option<f64>,
    /// The speed of a worker nothing is known of: the median of the others'.
    unknown: f64,
    /// The sum of every worker's capacity.
    capacity: f64,
}

impl Fleet {
    pub(crate) fn join(&mut self, id: WorkerId, cores: usize) {
        let worker = Worker {
            cores: cores.max(1),
            in_flight: 0,
            rate: None,
            sample_answers: 0,
            sample_micros: 0,
            busy_since: None,
            task_micros: None,
            claimed: None,
            fuel: 0,
            micros: 0,
            results: 0,
            note: None,
            identity: 0,
            address: None,
            paused: false,
        };
        self.workers.insert(id, worker);
        // Until it says who it is, a connection is its own identity.
        self.identify(id, &format!("connection:{id}"));
        self.changed();
    }

    /// Something that moves the estimates happened: recompute them when enough has.
    fn changed(&mut self) {
        self.changes += 1;
        if self.changes >= (self.workers.len() / 8).max(1) {
            self.refresh();
        }
    }

    fn refresh(&mut self) {
        self.changes = 0;
        let ratios = || {
            self.workers
                .values()
                .filter_map(|w| Some(w.measured()? / w.claimed?))
        };
        let ratio = median(&mut ratios().collect::<Vec<_>>());
        let best = ratios().reduce(f64::max);
        let mut known: Vec<f64> = self
            .workers
            .values()
            .filter_map(|w| w.measured().or(w.claimed.map(|c| c * ratio.unwrap_or(1.0))))
            .collect();
        let unknown = median(&mut known).unwrap_or(1.0);
        self.estimates = Estimates {
            ratio,
            best,
            unknown,
            capacity: 0.0,
        };
        self.estimates.capacity = self.workers.keys().map(|&id| self.capacity(id)).sum();
    }

    /// The sum of every worker's capacity (as of the last estimates).
    pub(crate) fn total_capacity(&self) -> f64 {
        self.estimates.capacity
    }

    /// The id of identity `key`.
    pub(crate) fn intern(&mut self, key: &str) -> IdentityId {
        if let Some(&id) = self.interned.get(key) {
            return id;
        }
        let id = IdentityId::try_from(self.keys.len()).unwrap_or(IdentityId::MAX);
        self.keys.push(key.to_owned());
        self.interned.insert(key.to_owned(), id);
        id
    }

    /// Identity `id`'s key.
    pub(crate) fn key(&self, id: IdentityId) -> &str {
        self.keys.get(id as usize).map_or("", String::as_str)
    }

    /// Worker `id` proved it is identity `key`: it inherits that identity's record.
    pub(crate) fn identify(&mut self, id: WorkerId, key: &str) -> IdentityId {
        let identity = self.intern(key);
        self.identity_of.insert(id, identity);
        if let Some(worker) = self.workers.get_mut(&id) {
            let held = worker.in_flight;
            let before = std::mem::replace(&mut worker.identity, identity);
            self.release(before, held);
            *self.holding.entry(identity).or_default() += held;
        }
        identity
    }

    /// Identity `identity` no longer holds `tasks` tasks.
    fn release(&mut self, identity: IdentityId, tasks: usize) {
        if let Some(held) = self.holding.get_mut(&identity) {
            *held = held.saturating_sub(tasks);
            if *held == 0 {
                self.holding.remove(&identity);
            }
        }
    }

    /// Worker `id` connected from `address`.
    pub(crate) fn place(&mut self, id: WorkerId, address: &str) {
        if let Some(worker) = self.workers.get_mut(&id) {
            worker.address = Some(address.to_owned());
        }
    }

    /// Where worker `id` connected from, if known.
    pub(crate) fn address(&self, id: WorkerId) -> Option<String> {
        self.workers.get(&id)?.address.clone()
    }

    /// Marks `key` as the server's own identity (a local worker's).
    pub(crate) fn own(&mut self, key: &str) {
        let identity = self.intern(key);
        self.own.insert(identity);
    }

    /// Whether `identity` is the server's own.
    pub(crate) fn is_own(&self, identity: IdentityId) -> bool {
        self.own.contains(&identity)
    }

    /// Room for more tasks on worker `id`: what its window leaves, and what its identity's
    /// allowance leaves over all its connections.
    pub(crate) fn room(&self, id: WorkerId) -> usize {
        let Some(worker) = self.workers.get(&id).filter(|worker| !worker.paused) else {
            return 0;
        };
        let window = worker.window().saturating_sub(worker.in_flight);
        if self.own.contains(&worker.identity) {
            return window;
        }
        let held = self.holding.get(&worker.identity).copied().unwrap_or(0);
        let allowance = self
            .credibility
            .get(&worker.identity)
            .map_or(START_ALLOWANCE, Credibility::allowance);
        window.min(allowance.saturating_sub(held))
    }

    /// `tasks` tasks were sent to worker `id` at server time `now`.
    pub(crate) fn sent(&mut self, id: WorkerId, tasks: usize, now: u64) {
        if let Some(worker) = self.workers.get_mut(&id) {
            worker.sent(tasks, now);
            *self.holding.entry(worker.identity).or_default() += tasks;
        }
    }

    /// One of worker `id`'s tasks was cancelled at server time `now`.
    pub(crate) fn cancelled(&mut self, id: WorkerId, now: u64) {
        if let Some(worker) = self.workers.get_mut(&id) {
            worker.ended(now, false);
            let identity = worker.identity;
            self.release(identity, 1);
        }
    }

    /// An answer of `identity` was accepted (an output became a result, or another identity
    /// confirmed its failure).
    pub(crate) fn accepted(&mut self, identity: IdentityId) {
        self.credibility.entry(identity).or_default().accepted += 1;
    }

    /// `identity` let work down (see [`Credibility::strikes`]); returns whether it is now
    /// unreliable.
    pub(crate) fn strike(&mut self, identity: IdentityId) -> bool {
        if self.own.contains(&identity) {
            return false;
        }
        let record = self.credibility.entry(identity).or_default();
        record.strikes += 1;
        record.unreliable()
    }

    /// Who worker `id` is (also after it left).
    pub(crate) fn identity(&self, id: WorkerId) -> Option<IdentityId> {
        self.identity_of.get(&id).copied()
    }

    /// Identity `identity`'s record.
    pub(crate) fn credibility(&self, identity: IdentityId) -> Credibility {
        self.credibility.get(&identity).cloned().unwrap_or_default()
    }

    /// Takes an identity's record from a journal.
    pub(crate) fn restore(&mut self, key: &str, credibility: Credibility) {
        let identity = self.intern(key);
        self.credibility.insert(identity, credibility);
    }

    /// Merges what the server knows of identity `key` from its other jobs into this job's
    /// record of it.
    pub(crate) fn adopt(&mut self, key: &str, record: &Credibility) {
        let identity = self.intern(key);
        self.credibility.entry(identity).or_default().merge(record);
    }

    /// Whether identity `identity` was caught lying.
    pub(crate) fn untrusted_identity(&self, identity: IdentityId) -> bool {
        self.credibility
            .get(&identity)
            .is_some_and(|c| c.untrusted.is_some())
    }

    /// The connected workers of `identity`.
    pub(crate) fn connections_of(&self, identity: IdentityId) -> Vec<WorkerId> {
        self.workers
            .iter()
            .filter(|(_, worker)| worker.identity == identity)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Worker `id` left: what its tasks showed of its speed stays with its identity.
    pub(crate) fn leave(&mut self, id: WorkerId) {
        if let Some(worker) = self.workers.remove(&id) {
            self.release(worker.identity, worker.in_flight);
            if let Some(speed) = worker.measured() {
                self.credibility.entry(worker.identity).or_default().speed = Some(speed);
            }
            self.changed();
        }
    }

    /// Worker `id`'s volunteer paused it: what it held is no longer its (the caller puts the
    /// tasks back), and it has no room and no capacity until [`Fleet::resume`]. Whether it
    /// was connected and running.
    pub(crate) fn pause(&mut self, id: WorkerId) -> bool {
        let Some(worker) = self.workers.get_mut(&id).filter(|worker| !worker.paused) else {
            return false;
        };
        worker.paused = true;
        let (identity, held) = (worker.identity, worker.in_flight);
        worker.in_flight = 0;
        // Time paused is not time holding tasks: the answer rate stays what it was.
        worker.busy_since = None;
        self.release(identity, held);
        self.refresh();
        true
    }

    /// Worker `id` runs again. Whether it was paused.
    pub(crate) fn resume(&mut self, id: WorkerId) -> bool {
        let Some(worker) = self.workers.get_mut(&id).filter(|worker| worker.paused) else {
            return false;
        };
        worker.paused = false;
        self.refresh();
        true
    }

    /// Whether worker `id` is paused.
    pub(crate) fn paused(&self, id: WorkerId) -> bool {
        self.workers.get(&id).is_some_and(|worker| worker.paused)
    }

    pub(crate) fn get(&self, id: WorkerId) -> Option<&Worker> {
        self.workers.get(&id)
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = WorkerId> + '_ {
        self.workers.keys().copied()
    }

    /// Records a worker's checked benchmark score.
    pub(crate) fn claim(&mut self, id: WorkerId, score: f64) {
        if let Some(worker) = self.workers.get_mut(&id)
            && score.is_finite()
            && score > 0.0
        {
            worker.claimed = Some(score);
            self.changed();
        }
    }

    /// Notes something about a worker for its record.
    pub(crate) fn note(&mut self, id: WorkerId, note: String) {
        if let Some(worker) = self.workers.get_mut(&id) {
            worker.note = Some(note);
        }
    }

    /// Marks identity `identity` as caught returning a wrong result, saying why; its
    /// connected workers are noted.
    pub(crate) fn untrust(&mut self, identity: IdentityId, why: &str) {
        let record = self.credibility.entry(identity).or_default();
        if record.untrusted.is_none() {
            record.untrusted = Some(why.to_owned());
        }
        for worker in self.workers.values_mut() {
            if worker.identity == identity {
                worker.note = Some(format!("untrusted: {why}"));
            }
        }
    }

    /// One of `id`'s replicated results agreed with the canonical one.
    pub(crate) fn agreed(&mut self, id: WorkerId) {
        if let Some(identity) = self.identity(id) {
            self.credibility.entry(identity).or_default().agreed += 1;
        }
    }

    /// A verifier rejected one of `id`'s outputs.
    pub(crate) fn rejected(&mut self, id: WorkerId) {
        if let Some(identity) = self.identity(id) {
            self.credibility.entry(identity).or_default().rejected += 1;
        }
    }

    /// Whether `id` is connected and its identity trusted.
    pub(crate) fn trusted(&self, id: WorkerId) -> bool {
        self.workers
            .get(&id)
            .is_some_and(|w| !self.untrusted_identity(w.identity))
    }

    /// How many replicated results of `id`'s identity agreed.
    pub(crate) fn agreements(&self, id: WorkerId) -> u64 {
        self.identity(id)
            .map_or(0, |identity| self.credibility(identity).agreed)
    }

    /// A task finished on `id` at server time `now`, after `micros` of its time (its word),
    /// burning `fuel`.
    pub(crate) fn finished(&mut self, id: WorkerId, fuel: u64, micros: u64, now: u64) {
        let Some(worker) = self.workers.get_mut(&id) else {
            return;
        };
        worker.ended(now, true);
        let sample = micros as f64;
        worker.task_micros = Some(match worker.task_micros {
            None => sample,
            Some(average) => 0.8 * average + 0.2 * sample,
        });
        worker.fuel = worker.fuel.saturating_add(fuel);
        worker.micros = worker.micros.saturating_add(micros);
        worker.results += 1;
        let identity = worker.identity;
        self.release(identity, 1);
        self.changed();
        self.check_claim(id);
    }

    /// The speed `id` is ranked by, in fuel per µs per core (1.0 when nothing is known of
    /// any worker: everyone ranks the same).
    pub(crate) fn speed(&self, id: WorkerId) -> f64 {
        let Some(worker) = self.workers.get(&id) else {
            return 0.0;
        };
        if let Some(measured) = worker.measured() {
            return measured;
        }
        if let Some(known) = self.credibility.get(&worker.identity).and_then(|c| c.speed) {
            // What its identity's tasks showed on an earlier connection.
            return known;
        }
        if let Some(claimed) = worker.claimed {
            // How the job's tasks run per benchmark point, on workers where both are known.
            return claimed * self.estimates.ratio.unwrap_or(1.0);
        }
        // No claim, no evidence: the median of what is known of the others.
        self.estimates.unknown
    }

    /// Speed times cores: how much work `id` does per µs.
    pub(crate) fn capacity(&self, id: WorkerId) -> f64 {
        self.workers
            .get(&id)
            .filter(|worker| !worker.paused)
            .map_or(0.0, |w| self.speed(id) * w.cores as f64)
    }

    /// Notes a worker whose tasks run far slower than its benchmark promised, compared with
    /// the others.
    fn check_claim(&mut self, id: WorkerId) {
        let Some(worker) = self.workers.get(&id) else {
            return;
        };
        let (Some(measured), Some(claimed)) = (worker.measured(), worker.claimed) else {
            return;
        };
        let ratio = measured / claimed;
        // The best worker's ratio (its own included: it is never below itself).
        if let Some(best) = self.estimates.best
            && ratio * OVERCLAIM < best
        {
            let note = format!(
                "claims {claimed:.0} fuel/µs per core, but its tasks run at {measured:.0}: {:.1}x slower than the best worker for its claim",
                best / ratio
            );
            if let Some(worker) = self.workers.get_mut(&id) {
                worker.note = Some(note);
            }
        }
    }

    /// Estimated microseconds to finish `tasks` more tasks at the workers' measured pace.
    pub(crate) fn eta_micros(&self, tasks: u64) -> Option<u64> {
        let per_micro: f64 = self
            .workers
            .values()
            .filter_map(|w| Some(w.cores as f64 / w.task_micros?.max(1.0)))
            .sum();
        (per_micro > 0.0).then(|| (tasks as f64 / per_micro) as u64)
    }

    /// The record of worker `id`.
    pub(crate) fn record(&self, id: WorkerId) -> Option<WorkerRecord> {
        let worker = self.workers.get(&id)?;
        let credibility = self.credibility(worker.identity);
        Some(WorkerRecord {
            identity: self.key(worker.identity).to_owned(),
            cores: worker.cores,
            running: worker.in_flight,
            claimed: worker.claimed,
            measured: worker.measured(),
            speed: self.speed(id),
            results: worker.results,
            note: worker.note.clone().or_else(|| {
                credibility
                    .untrusted
                    .as_ref()
                    .map(|why| format!("untrusted: {why}"))
            }),
            trusted: credibility.untrusted.is_none(),
            paused: worker.paused,
            agreed: credibility.agreed,
            rejected: credibility.rejected,
        })
    }
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        f64::midpoint(values[middle - 1], values[middle])
    } else {
        values[middle]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_rank_workers_until_their_tasks_show_the_truth() {
        let mut fleet = Fleet::default();
        fleet.join(1, 1);
        fleet.join(2, 1);
        fleet.join(3, 1);
        fleet.claim(1, 3000.0);
        fleet.claim(2, 3000.0);
        assert_eq!(fleet.speed(1), 3000.0);
        assert_eq!(fleet.speed(3), 3000.0, "no claim: the median of the others");
        // Worker 1's tasks run at 1000 fuel/µs: a third of its claim.
        for _ in 0..3 {
            fleet.finished(1, 1_000_000, 1000, 0);
        }
        assert_eq!(fleet.speed(1), 1000.0);
        assert_eq!(fleet.speed(2), 1000.0, "claims scale by what tasks showed");
        // Worker 2 claims the same but its tasks run 4x slower: it is noted.
        for _ in 0..3 {
            fleet.finished(2, 250_000, 1000, 0);
        }
        assert_eq!(fleet.speed(2), 250.0);
        let note = fleet.record(2).unwrap().note.unwrap();
        assert!(note.contains("4.0x slower"), "{note}");
        assert!(fleet.record(1).unwrap().note.is_none());
    }

    #[test]
    fn windows_follow_the_rate_the_server_sees_not_the_times_workers_claim() {
        let mut fleet = Fleet::default();
        fleet.join(1, 1);
        fleet.join(2, 4);
        assert_eq!(fleet.get(1).unwrap().window(), START_PER_CORE);
        assert_eq!(fleet.get(2).unwrap().window(), 4 * START_PER_CORE);
        // Worker 1 claims its tasks take 1 µs, worker 2 a second; the server sees both
        // answer 10 tasks in 5 ms.
        for (id, claimed) in [(1, 1), (2, 1_000_000)] {
            fleet.sent(id, 10, 0);
            for n in 1..=10 {
                fleet.finished(id, 100, claimed, n * 500);
            }
        }
        // 2 tasks per ms: 40 tasks in 20 ms, whatever they claimed (worker 2's 4 cores keep
        // their floor of 2 each).
        assert_eq!(fleet.get(1).unwrap().window(), 40);
        assert_eq!(fleet.get(2).unwrap().window(), 40);
        // Faster answers grow the window at once (10 tasks per ms: 200); slower ones shrink
        // it by half the gap per sample.
        fleet.sent(1, 200, 5_000);
        for n in 1..=200 {
            fleet.finished(1, 100, 1, 5_000 + n * 100);
        }
        let fast = fleet.get(1).unwrap().window();
        assert!((198..=200).contains(&fast), "{fast}");
        fleet.sent(1, 40, 25_000);
        for n in 1..=40 {
            fleet.finished(1, 100, 1, 25_000 + n * 500);
        }
        let slower = fleet.get(1).unwrap().window();
        assert!(40 < slower && slower < fast, "{slower}");
    }

    #[test]
    fn claimed_cores_its_answers_do_not_bear_out_are_not_believed() {
        let mut fleet = Fleet::default();
        // Both claim 64 cores and keep 256 tasks; both say a task takes 10 ms. The server
        // sees the honest one answer 64 tasks per 10 ms, the other one task per 10 ms.
        fleet.join(1, 64);
        fleet.join(2, 64);
        for (id, every) in [(1, 10_000 / 64), (2, 10_000)] {
            fleet.sent(id, 256, 0);
            for n in 1..=100 {
                fleet.finished(id, 1, 10_000, n * every);
                fleet.sent(id, 1, n * every);
            }
        }
        assert_eq!(fleet.record(1).unwrap().cores, 64);
        assert!(fleet.record(1).unwrap().note.is_none());
        let liar = fleet.record(2).unwrap();
        assert_eq!(liar.cores, 1);
        assert!(liar.note.unwrap().contains("claims 64 cores"));
    }

    #[test]
    fn an_identity_holds_no_more_than_it_has_earned_over_all_its_connections() {
        let mut fleet = Fleet::default();
        for id in [1, 2, 3] {
            fleet.join(id, 256);
            fleet.identify(id, "one-key");
        }
        assert_eq!(
            fleet.room(1),
            START_ALLOWANCE,
            "not the 512 its claim would give"
        );
        fleet.sent(1, START_ALLOWANCE, 0);
        assert_eq!(
            fleet.room(2),
            0,
            "its other connections share the allowance"
        );
        // Each accepted answer earns one more.
        let identity = fleet.identity(1).unwrap();
        for _ in 0..START_ALLOWANCE {
            fleet.finished(1, 1, 1, 10);
            fleet.accepted(identity);
        }
        assert_eq!(fleet.room(3), 2 * START_ALLOWANCE);
        // Strikes divide it; enough of them, against few accepted answers, make it
        // unreliable.
        assert!(!fleet.strike(identity));
        assert_eq!(fleet.room(3), START_ALLOWANCE);
        let unreliable = (0..MAX_STRIKES).any(|_| fleet.strike(identity));
        assert!(unreliable);
        // The server's own identities are not limited, and never struck.
        fleet.own("local");
        fleet.join(4, 1);
        fleet.identify(4, "local");
        assert_eq!(fleet.room(4), START_PER_CORE);
        assert!(!fleet.strike(fleet.identity(4).unwrap()));
        // A reliable identity with a few strikes keeps working.
        let record = Credibility {
            accepted: 10_000,
            strikes: 20,
            ..Credibility::default()
        };
        assert!(!record.unreliable());
        assert_eq!(record.allowance(), (10_000 + START_ALLOWANCE) / 21);
    }

    #[test]
    fn the_estimate_follows_the_measured_pace() {
        let mut fleet = Fleet::default();
        assert_eq!(fleet.eta_micros(100), None);
        fleet.join(1, 2);
        fleet.finished(1, 1, 1000, 0);
        // 2 cores at 1 ms a task: 100 tasks in 50 ms.
        assert_eq!(fleet.eta_micros(100), Some(50_000));
    }

    #[test]
    fn a_large_fleet_refreshes_its_estimates_after_an_eighth_of_it_changed() {
        let mut fleet = Fleet::default();
        for id in 1..=80 {
            fleet.join(id, 1);
            fleet.claim(id, 1000.0);
        }
        assert_eq!(fleet.speed(81), 0.0, "not connected");
        fleet.join(81, 1);
        assert_eq!(fleet.speed(81), 1000.0, "the median of the others");
        // Every worker's tasks run at half its claim: the estimates catch up within an
        // eighth of the fleet's worth of results, not at every one.
        let mut refreshed_after = None;
        for (n, id) in (1..=80).cycle().take(400).enumerate() {
            fleet.finished(id, 500, 1, 0);
            if refreshed_after.is_none() && fleet.speed(81) < 1000.0 {
                refreshed_after = Some(n + 1);
            }
        }
        // The first speed is measured at the 161st result (worker 1's third); the estimates
        // take it in at the next refresh, at most an eighth of the fleet (10) changes later.
        let after = refreshed_after.expect("the estimates were refreshed");
        assert!(
            (161..=171).contains(&after),
            "refreshed after {after} results"
        );
        assert_eq!(fleet.speed(81), 500.0, "the median measured speed");
        assert_eq!(fleet.speed(1), 500.0, "measured, not claimed");
        assert!((fleet.total_capacity() - 81.0 * 500.0).abs() < 1e-6);
    }
}
