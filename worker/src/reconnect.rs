//! Staying with a server: reconnect with exponential backoff and jitter when the connection
//! is lost, until the server says the job is done or refuses this worker.
//!
//! A server never reached is another matter than a connection lost: a worker that has not
//! opened a single connection tries a bounded number of times ([`Backoff::first_retries`],
//! about two minutes by default: long enough for a server still starting, short enough that
//! a wrong address or port is reported rather than retried forever), then says what it tried
//! and the likely causes. Once it has been connected, it retries a lost connection with
//! backoff as long as [`Backoff::retries`] allows (forever by default), as a server
//! restarting or a network coming back is worth waiting for.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use crate::failure::unreachable_cause;
use crate::server_url::address_of;
use crate::session::run_tracked;
use crate::{ModuleCache, WorkerConfig, WorkerError};

/// How a worker retries a lost server.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// How many times to try again in a row before giving up, once connected (`None`:
    /// forever).
    pub retries: Option<u32>,
    /// How many times to try again before giving up while the server was never reached.
    pub first_retries: u32,
}

/// [`Backoff::first_retries`] by default: about two minutes of tries with the default waits.
pub const FIRST_RETRIES: u32 = 10;

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
            retries: None,
            first_retries: FIRST_RETRIES,
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
/// When the server refuses this worker, the URL or the server's certificate is wrong, the
/// sandbox cannot start, the server was never reached in `backoff.first_retries` tries, or
/// `backoff.retries` tries in a row failed after it was.
pub async fn serve(
    config: &WorkerConfig,
    cache: &ModuleCache,
    backoff: Backoff,
) -> Result<String, WorkerError> {
    let mut failures = 0u32;
    let mut connected = false;
    loop {
        let started = Instant::now();
        let mut opened = false;
        let result = run_tracked(config, cache, &mut opened).await;
        connected |= opened;
        let error = match result {
            Ok(reason) => return Ok(reason),
            Err(error) if !error.is_retryable() => return Err(error),
            Err(error) => error,
        };
        if opened && started.elapsed() >= STEADY {
            failures = 0;
        }
        let limit = if connected {
            backoff.retries
        } else {
            Some(backoff.first_retries)
        };
        if limit.is_some_and(|retries| failures >= retries) {
            return Err(if connected {
                error
            } else {
                never_connected(config, failures + 1, &error)
            });
        }
        let wait = backoff.delay(failures);
        if connected {
            tracing::warn!(%error, wait = ?wait, "connection lost; trying again");
        } else {
            let cause = unreachable_cause(&config.server, &error);
            tracing::warn!(
                url = %config.server,
                wait = ?wait,
                "never connected yet: {cause}; trying again ({} of {} tries)",
                failures + 1,
                backoff.first_retries.saturating_add(1)
            );
        }
        tokio::time::sleep(wait).await;
        failures += 1;
    }
}

/// The error of a worker that never reached its server in `tries` tries, the last failing
/// with `last`.
fn never_connected(config: &WorkerConfig, tries: u32, last: &WorkerError) -> WorkerError {
    let url = config.server.clone();
    let cause = format!(
        "{}; give --max-retries N to keep trying longer for a server still starting",
        unreachable_cause(&url, last)
    );
    WorkerError::NeverConnected {
        address: address_of(&url).unwrap_or_else(|| url.clone()),
        url,
        tries,
        cause,
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
