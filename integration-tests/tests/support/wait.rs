//! Waiting for a condition, never for a time: the one poll loop of the suite.
//!
//! A test that needs something to have happened asks for it by name and polls a probe until
//! it holds; a loaded machine only makes the wait longer. [`PATIENCE`] bounds every wait so
//! that a test whose event never comes fails naming it instead of hanging. A check that
//! something does *not* happen watches for [`QUIET`] instead, from the event that makes it
//! meaningful.

use std::time::{Duration, Instant};

/// How long any wait lasts before the test fails: generous, so that only an event that never
/// comes (not a slow machine) ends a test.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// How long a test looks for something that must not happen. No event shows that nothing
/// happened, so such a check watches for a while: from the event that makes it meaningful
/// (so that a slow machine cannot shorten the watch), and a correct program passes it
/// however slow the machine.
pub const QUIET: Duration = Duration::from_secs(1);

/// Between two looks at a condition.
const BETWEEN: Duration = Duration::from_millis(20);

/// Asks `probe` until it gives a value and returns it; fails naming `what` once
/// [`PATIENCE`] has passed. Blocks the thread: from async code, use [`eventually_async`].
pub fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "never saw {what} (waited {PATIENCE:?})"
        );
        std::thread::sleep(BETWEEN);
    }
}

/// Asks `probe` for [`QUIET`] and returns the first value it gives, if it gives one: what
/// was seen that should not have happened.
pub fn seen_while_quiet<T>(mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    while started.elapsed() < QUIET {
        if let Some(value) = probe() {
            return Some(value);
        }
        std::thread::sleep(BETWEEN);
    }
    probe()
}

/// [`eventually`] for async code: `probe` may await, and the runtime keeps running between
/// looks.
pub async fn eventually_async<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let started = tokio::time::Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "never saw {what} (waited {PATIENCE:?})"
        );
        tokio::time::sleep(BETWEEN).await;
    }
}
