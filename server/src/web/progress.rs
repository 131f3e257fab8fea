//! Progress in the terminal while `dipla-server run` works: a bar with the rate and ETA when
//! stderr is a terminal (indicatif), or a plain line every few seconds when it is not (logs,
//! CI), so a long job is never silent.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::net::state::Handle;

/// How often a plain line is written by default when stderr is not a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Reports `handle`'s progress on stderr until the task running it is dropped: a bar on a
/// terminal, else a line every `every`.
pub async fn report(handle: Handle, every: Duration) {
    if std::io::stderr().is_terminal() {
        bar(handle).await;
    } else {
        lines(handle, every).await;
    }
}

/// Done and total results over all stages.
fn progress(handle: &Handle) -> (u64, u64) {
    let core = handle.lock();
    let coordinator = &core.coordinator;
    (0..coordinator.stage_count())
        .map(|stage| coordinator.progress(stage))
        .fold((0, 0), |(done, tasks), p| (done + p.done, tasks + p.tasks))
}

async fn bar(handle: Handle) {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(5));
    bar.set_style(
        ProgressStyle::with_template("{bar:40.cyan/blue} {pos}/{len} tasks  {msg}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_millis(200));
    loop {
        ticks.tick().await;
        let (done, tasks) = progress(&handle);
        bar.set_length(tasks);
        bar.set_position(done);
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "{rate:.0} tasks/s  {} workers",
            handle.workers().len()
        ));
        if tasks > 0 && done >= tasks {
            bar.finish_and_clear();
            return;
        }
    }
}

async fn lines(handle: Handle, every: Duration) {
    let started = Instant::now();
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(100)));
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let (done, tasks) = progress(&handle);
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let eta = if rate > 0.0 {
            format!("{:.0} s", tasks.saturating_sub(done) as f64 / rate)
        } else {
            "unknown".to_owned()
        };
        eprintln!(
            "dipla-server: {done}/{tasks} tasks done ({rate:.0} tasks/s), {} workers, ETA {eta}",
            handle.workers().len()
        );
    }
}
