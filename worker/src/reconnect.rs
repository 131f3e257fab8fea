//! Staying with a server: reconnect with exponential backoff and jitter when the connection
//! is lost, until the server says the job is done or refuses this worker.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use crate::{ModuleCache, WorkerConfig, WorkerError, run};

/// How a worker retries a lost server.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// How many times to try again in a row before giving up (`None`: forever).
    pub retries: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
            retries: None,
        }
    }
}

/// A session that lasted this long was a success: the next failure starts the backoff over.
const STEADY: Duration = Duration::from_secs(10);

impl Backoff {
    /// The wait before try `attempt` (from 0): doubling from `initial` up to `max`, then
    /// scaled by a random factor in [0.5, 1.5) so that workers cut off together do not come
    /// back together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        let jitter = RandomState::new().hash_one(attempt) as f64 / u64::MAX as f64;
        base.mul_f64(0.5 + jitter)
    }
}

/// Serves the job at `config.server` until the server says goodbye (the reason is returned),
/// reconnecting after every lost connection, and resuming where the server is: a worker keeps
/// no state about tasks, so a new session simply asks for work again.
///
/// # Errors
/// When the server refuses this worker, the sandbox cannot start, or `backoff.retries` tries
/// in a row failed.
pub async fn serve(
    config: &WorkerConfig,
    cache: &ModuleCache,
    backoff: Backoff,
) -> Result<String, WorkerError> {
    let mut failures = 0u32;
    loop {
        let started = Instant::now();
        let error = match run(config, cache).await {
            Ok(reason) => return Ok(reason),
            Err(error) if !error.is_retryable() => return Err(error),
            Err(error) => error,
        };
        if started.elapsed() >= STEADY {
            failures = 0;
        }
        if backoff.retries.is_some_and(|retries| failures >= retries) {
            return Err(error);
        }
        let wait = backoff.delay(failures);
        tracing::warn!(%error, wait = ?wait, "connection lost; trying again");
        tokio::time::sleep(wait).await;
        failures += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_with_jitter() {
        let backoff = Backoff::default();
        for attempt in 0..12 {
            let base = (250u64 << attempt).min(30_000) as f64;
            let delay = backoff.delay(attempt).as_secs_f64() * 1000.0;
            assert!(
                delay >= base * 0.5 && delay < base * 1.5,
                "{attempt}: {delay}"
            );
        }
        let spread: std::collections::HashSet<Duration> =
            (0..20).map(|_| backoff.delay(3)).collect();
        assert!(spread.len() > 1, "jitter varies");
    }
}
