//! Who may come in: the worker tokens, the operator's admin tokens, the caps on workers, on
//! identities and on connections per address, and the heartbeat every connection keeps; and what is measured
//! of everyone who came in. One gate serves a whole server: the job of `run`, or every job
//! of `serve`.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dipla_protocol::PublicKey;

use crate::Tokens;
use crate::net::door::Door;
use crate::store::trust::TrustStore;

/// How often connections are pinged unless the server is told otherwise.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);

/// The most cores a worker is believed to have unless the server is told otherwise
/// (`--max-cores-per-worker`).
pub const DEFAULT_MAX_CORES: usize = 256;

/// A server's admission rules and the counters they need.
pub(crate) struct Gate {
    /// The tokens workers must present (none: all are admitted).
    tokens: Mutex<Tokens>,
    /// The tokens the operator's API accepts (`None`: the API is off).
    admin: Mutex<Option<Tokens>>,
    /// How often connections are pinged; three silent periods end one.
    heartbeat: Mutex<Duration>,
    /// The most workers joined at once.
    max_workers: AtomicUsize,
    /// Workers joined now, over every job.
    joined: AtomicUsize,
    /// The most cores a worker is believed to have.
    max_cores: AtomicUsize,
    /// The identities of the server's own local workers.
    own: Mutex<HashSet<PublicKey>>,
    /// Trust records shared by every job of the server (`serve`).
    trust: Mutex<Option<Arc<TrustStore>>>,
    /// The most identities accepted from one IP address (`None`: no cap), and those seen.
    identities_per_ip: Mutex<(Option<usize>, IdentitiesByIp)>,
    /// What `/metrics` measures as it happens.
    pub(crate) metrics: crate::net::metrics::Metrics,
    /// The connections open, by address, and their caps.
    pub(crate) door: Arc<Door>,
    /// Modules instrumented for browser workers, shared by every job.
    pub(crate) browser: Arc<crate::net::browser::Instrumenter>,
    /// What the `/volunteer` page says of the project.
    volunteer: Mutex<Volunteer>,
}

/// What the `/volunteer` page says of the project, beside each job's name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Volunteer {
    /// The project's name (`serve`'s; `None`: the job's).
    pub(crate) name: Option<String>,
    /// What it computes (`--description`).
    pub(crate) description: Option<String>,
    /// Whether the page honours its test hooks (tests only).
    pub(crate) test_hooks: bool,
}

/// The identities seen from each IP address.
type IdentitiesByIp = HashMap<IpAddr, HashSet<PublicKey>>;

impl Default for Gate {
    fn default() -> Self {
        Self {
            tokens: Mutex::default(),
            admin: Mutex::new(None),
            heartbeat: Mutex::new(DEFAULT_HEARTBEAT),
            max_workers: AtomicUsize::new(usize::MAX),
            joined: AtomicUsize::new(0),
            max_cores: AtomicUsize::new(DEFAULT_MAX_CORES),
            own: Mutex::default(),
            trust: Mutex::default(),
            identities_per_ip: Mutex::default(),
            metrics: crate::net::metrics::Metrics::default(),
            door: Arc::default(),
            browser: Arc::default(),
            volunteer: Mutex::default(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Gate {
    /// Admits only workers presenting one of `tokens`.
    pub(crate) fn require_tokens(&self, tokens: Tokens) {
        *lock(&self.tokens) = tokens;
    }

    /// Whether `token` admits a worker.
    pub(crate) fn admits(&self, token: Option<&str>) -> bool {
        lock(&self.tokens).admits(token)
    }

    /// Accepts these admin tokens on the operator's API (none: the API stays off).
    pub(crate) fn require_admin(&self, tokens: Tokens) {
        *lock(&self.admin) = tokens.required().then_some(tokens);
    }

    /// Whether the operator's API is on.
    pub(crate) fn admin_required(&self) -> bool {
        lock(&self.admin).is_some()
    }

    /// Whether `token` may use the operator's API: never when it is off.
    pub(crate) fn admin_admits(&self, token: Option<&str>) -> bool {
        lock(&self.admin)
            .as_ref()
            .is_some_and(|tokens| token.is_some() && tokens.admits(token))
    }

    /// Pings connections every `every`; a worker silent for three of them is dropped.
    pub(crate) fn set_heartbeat(&self, every: Duration) {
        *lock(&self.heartbeat) = every.max(Duration::from_millis(50));
    }

    /// How often connections are pinged.
    pub(crate) fn heartbeat(&self) -> Duration {
        *lock(&self.heartbeat)
    }

    /// Accepts at most `count` workers at once.
    pub(crate) fn set_max_workers(&self, count: usize) {
        self.max_workers.store(count.max(1), Ordering::Relaxed);
    }

    /// The most workers accepted at once.
    pub(crate) fn max_workers(&self) -> usize {
        self.max_workers.load(Ordering::Relaxed)
    }

    /// Shares `trust` between every job of the server.
    pub(crate) fn share_trust(&self, trust: Arc<TrustStore>) {
        *lock(&self.trust) = Some(trust);
    }

    /// The trust records every job of the server shares, if they are shared.
    pub(crate) fn trust(&self) -> Option<Arc<TrustStore>> {
        lock(&self.trust).clone()
    }

    /// Notes `key` as the identity of one of the server's own local workers.
    pub(crate) fn add_own(&self, key: PublicKey) {
        lock(&self.own).insert(key);
    }

    /// Whether `key` is one of the server's own local workers.
    pub(crate) fn is_own(&self, key: &PublicKey) -> bool {
        lock(&self.own).contains(key)
    }

    /// Believes at most `cores` cores of any worker.
    pub(crate) fn set_max_cores(&self, cores: usize) {
        self.max_cores.store(cores.max(1), Ordering::Relaxed);
    }

    /// The most cores a worker is believed to have.
    pub(crate) fn max_cores(&self) -> usize {
        self.max_cores.load(Ordering::Relaxed)
    }

    /// Says `volunteer` on the `/volunteer` page.
    pub(crate) fn set_volunteer(&self, volunteer: Volunteer) {
        *lock(&self.volunteer) = volunteer;
    }

    /// What the `/volunteer` page says of the project.
    pub(crate) fn volunteer(&self) -> Volunteer {
        lock(&self.volunteer).clone()
    }

    /// Counts a worker in, unless the server is full.
    pub(crate) fn enter(&self) -> bool {
        let max = self.max_workers();
        self.joined
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |joined| {
                (joined < max).then_some(joined + 1)
            })
            .is_ok()
    }

    /// Counts a worker out.
    pub(crate) fn leave(&self) {
        self.joined.fetch_sub(1, Ordering::AcqRel);
    }

    /// Workers joined now.
    pub(crate) fn joined(&self) -> usize {
        self.joined.load(Ordering::Acquire)
    }

    /// Accepts at most `count` identities from one IP address.
    pub(crate) fn set_identities_per_ip(&self, count: Option<usize>) {
        lock(&self.identities_per_ip).0 = count.map(|count| count.max(1));
    }

    /// Whether identities per address are capped (then tasks are failed for killing workers
    /// only when workers on distinct addresses died running them).
    pub(crate) fn caps_identities_per_ip(&self) -> bool {
        lock(&self.identities_per_ip).0.is_some()
    }

    /// Whether identity `key` may join from `ip`: under the cap, or seen there before.
    pub(crate) fn admits_identity(&self, ip: IpAddr, key: PublicKey) -> bool {
        let mut guard = lock(&self.identities_per_ip);
        let (cap, seen) = &mut *guard;
        let Some(cap) = *cap else {
            return true;
        };
        let known = seen.entry(ip).or_default();
        known.contains(&key) || (known.len() < cap && known.insert(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_gate_turns_workers_away_until_one_leaves() {
        let gate = Gate::default();
        gate.set_max_workers(2);
        assert!(gate.enter() && gate.enter());
        assert!(!gate.enter());
        assert_eq!(gate.joined(), 2);
        gate.leave();
        assert!(gate.enter());
    }
}
