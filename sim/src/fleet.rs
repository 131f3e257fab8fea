//! The volunteers of a simulated run: their speeds (spread 100x), cores, when they come and
//! go, and how they behave — honestly, or as the hostile peers the trust model names.

use crate::rng::Rng;
use crate::shape::Computed;

/// How a volunteer behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Runs every task and answers what it computed.
    Honest,
    /// Honest for its first `honest_for` answers, then gives a wrong output for one task in
    /// `one_in` (claiming it meets the goal). Colluding liars give the same wrong output.
    Liar {
        /// Answers before it starts lying.
        honest_for: u32,
        /// It lies on one answer in this many.
        one_in: u32,
        /// Whether it agrees with the other colluders.
        collude: bool,
    },
    /// Claims one task in `one_in` failed (a failure of its own making).
    FailClaimer {
        /// It claims failure on one task in this many.
        one_in: u32,
    },
    /// Takes tasks and never answers them (but stays connected, answering pings).
    Silent,
    /// Sometimes answers a task it was never given (a protocol violation).
    Violator,
}

impl Behaviour {
    /// Whether the volunteer is one of the hostile kinds the trust model bounds.
    pub fn hostile(&self) -> bool {
        matches!(
            self,
            Self::Liar { .. } | Self::FailClaimer { .. } | Self::Violator
        )
    }
}

/// One simulated volunteer: an identity and its machine.
#[derive(Debug, Clone)]
pub struct Volunteer {
    /// Its identity (public key).
    pub key: String,
    /// The address it connects from.
    pub address: String,
    /// Fuel per microsecond per core.
    pub speed: f64,
    /// The speed it claims in its benchmark.
    pub claimed: f64,
    /// Cores it runs tasks on.
    pub cores: usize,
    /// Cores it says it has (a hostile one may claim the most the server believes).
    pub claimed_cores: usize,
    /// How it behaves.
    pub behaviour: Behaviour,
    /// When it first joins (virtual µs).
    pub joins: u64,
    /// Whether its machine crashes now and then (and comes back).
    pub crashy: bool,
    /// When it leaves for good, if it does.
    pub leaves: Option<u64>,
    /// Answers it has given.
    pub answers: u32,
    /// Whether it ever left or crashed holding work (which honest workers may be struck for).
    pub let_down: bool,
    /// Whether its volunteer pauses it now and then (busy, on battery), then resumes.
    pub pausy: bool,
}

impl Volunteer {
    /// What it answers for a task whose honest result is `honest`.
    pub fn answer(&mut self, honest: &Computed, me: u64, rng: &mut Rng) -> Computed {
        self.answers += 1;
        match self.behaviour {
            Behaviour::Liar {
                honest_for,
                one_in,
                collude,
            } if self.answers > honest_for && rng.below(u64::from(one_in)) == 0 => {
                let Ok(value) = honest.value else {
                    return honest.clone();
                };
                let offset = if collude { 1 } else { 2 + me };
                // An explore task's answer also names an input no honest run discovers
                // (one outside every explore stage's space).
                let mut next = honest.next.clone();
                next.push(crate::shape::FORGED + offset);
                Computed {
                    value: Ok((value + offset) % crate::shape::MODULUS),
                    next,
                    stop: true,
                    ..honest.clone()
                }
            }
            Behaviour::FailClaimer { one_in } if rng.below(u64::from(one_in)) == 0 => Computed {
                value: Err(dipla_protocol::TaskFailure {
                    kind: dipla_protocol::FailureKind::Panic,
                    message: format!("panicked at {}", self.key),
                }),
                next: Vec::new(),
                fuel: honest.fuel / 2,
                stop: false,
            },
            _ => honest.clone(),
        }
    }
}

/// The fleet seed `rng` chooses: `count` volunteers, the first `anchors` of them honest and
/// there from early on to the end (so that a quorum of distinct honest identities can
/// always finish the job), hostile ones up to `hostile_bound`, colluding ones fewer than
/// `quorum`.
pub fn random(
    rng: &mut Rng,
    count: usize,
    anchors: usize,
    hostile_bound: usize,
    quorum: u32,
) -> Vec<Volunteer> {
    let count = count.max(anchors);
    let colluders_bound = quorum.saturating_sub(1) as usize;
    let mut hostile = 0;
    let mut colluders = 0;
    let mut fleet = Vec::with_capacity(count);
    let horizon = rng.range(1_000_000, 60_000_000);
    let shared_address = rng.chance(0.3);
    for n in 0..count {
        let anchor = n < anchors;
        let behaviour = if anchor {
            Behaviour::Honest
        } else if hostile < hostile_bound && rng.chance(0.15) {
            hostile += 1;
            match rng.below(3) {
                0 => {
                    let collude = colluders < colluders_bound && rng.chance(0.3);
                    colluders += usize::from(collude);
                    Behaviour::Liar {
                        honest_for: rng.range(0, 30) as u32,
                        one_in: rng.range(1, 6) as u32,
                        collude,
                    }
                }
                1 => Behaviour::FailClaimer {
                    one_in: rng.range(1, 4) as u32,
                },
                _ => Behaviour::Violator,
            }
        } else if rng.chance(0.05) {
            Behaviour::Silent
        } else {
            Behaviour::Honest
        };
        // Speeds spread 100x around 1,000 fuel per µs.
        let speed = 100.0 * 100f64.powf(rng.unit());
        let claimed = if behaviour.hostile() && rng.chance(0.5) {
            speed * 100.0
        } else {
            speed * (0.8 + 0.4 * rng.unit())
        };
        let address = if behaviour.hostile() && shared_address {
            "10.0.0.1".to_owned()
        } else {
            format!("10.1.{}.{}", n / 250, n % 250 + 2)
        };
        let cores = rng.range(1, 4) as usize;
        let claimed_cores = if behaviour.hostile() && rng.chance(0.5) {
            256
        } else {
            cores
        };
        fleet.push(Volunteer {
            key: format!("key{n:04}"),
            address,
            speed,
            claimed,
            cores,
            claimed_cores,
            behaviour,
            joins: if n == 0 { 0 } else { rng.below(horizon / 4) },
            crashy: !anchor && rng.chance(0.15),
            leaves: (!anchor && rng.chance(0.15)).then(|| rng.range(horizon / 8, horizon)),
            answers: 0,
            let_down: false,
            pausy: false,
        });
    }
    fleet
}
