//! `/metrics`: the server in Prometheus's text format (prometheus-client), for `run --listen`
//! as for anything else serving the endpoint. Counts come from the coordinator and the traffic
//! counters when scraped; task latency is a histogram of the times workers report.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::net::gate::Gate;
use crate::net::state::Handle;

/// What is measured as it happens (the rest is read when scraped).
pub(crate) struct Metrics {
    /// Task latency on workers, in seconds.
    latency: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            // 100 µs to about 26 s.
            latency: Histogram::new(exponential_buckets(1e-4, 4.0, 10)),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Job {
    job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobState {
    job: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobOutcome {
    job: String,
    outcome: &'static str,
}

impl Metrics {
    /// A task took `micros` on its worker.
    pub(crate) fn observe(&self, micros: u64) {
        self.latency.observe(micros as f64 / 1e6);
    }
}

/// The server's metrics now, in Prometheus's text format: each job's series labelled with
/// `job` (its name for `run`, its id for `serve`).
pub(crate) fn render_jobs(gate: &Gate, jobs: &[(String, Handle)]) -> String {
    let mut registry = Registry::with_prefix("dipla");
    let tasks = Family::<JobState, Gauge>::default();
    let checks = Family::<JobOutcome, Counter>::default();
    let untrusted = Family::<Job, Counter>::default();
    let retries = Family::<Job, Counter>::default();
    let transfers = Family::<Job, Counter>::default();
    let module_bytes = Family::<Job, Counter>::default();
    let seated = Family::<Job, Gauge>::default();
    let unjournaled = Family::<Job, Gauge>::default();
    for (name, handle) in jobs {
        let (progress, counts, backlog) = {
            let core = handle.lock();
            let coordinator = &core.coordinator;
            let progress: Vec<_> = (0..coordinator.stage_count())
                .map(|stage| coordinator.progress(stage))
                .collect();
            (progress, coordinator.counts(), core.journal_backlog())
        };
        let sum = |f: fn(&dipla_core::StageProgress) -> u64| progress.iter().map(f).sum::<u64>();
        let job = || Job { job: name.clone() };
        let state = |state| JobState {
            job: name.clone(),
            state,
        };
        let outcome = |outcome| JobOutcome {
            job: name.clone(),
            outcome,
        };
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        tasks
            .get_or_create(&state("queued"))
            .set(gauge(sum(|p| p.queued)));
        tasks
            .get_or_create(&state("running"))
            .set(gauge(sum(|p| p.running)));
        tasks
            .get_or_create(&state("done"))
            .set(gauge(sum(|p| p.done)));
        tasks
            .get_or_create(&state("failed"))
            .set(gauge(sum(|p| p.failed)));
        for (name, value) in [
            ("unchecked", sum(|p| p.unchecked)),
            ("verified", sum(|p| p.verified)),
            ("replicated", sum(|p| p.replicated)),
            ("rejected", counts.rejected),
            ("revoked", counts.revoked),
            ("replicas", counts.replicas),
        ] {
            checks.get_or_create(&outcome(name)).inc_by(value);
        }
        untrusted.get_or_create(&job()).inc_by(counts.untrusted);
        retries.get_or_create(&job()).inc_by(counts.retried);
        let stats = handle.stats();
        transfers
            .get_or_create(&job())
            .inc_by(stats.module_transfers);
        module_bytes
            .get_or_create(&job())
            .inc_by(stats.module_bytes);
        seated
            .get_or_create(&job())
            .set(i64::try_from(handle.workers().len()).unwrap_or(i64::MAX));
        if let Some(backlog) = backlog {
            unjournaled
                .get_or_create(&job())
                .set(gauge(backlog.pending()));
        }
    }
    registry.register("tasks", "Tasks by state, over all stages", tasks);
    registry.register(
        "checks",
        "Outputs by how they were checked, outputs a verifier rejected, results revoked and replicas issued",
        checks,
    );
    registry.register(
        "workers_untrusted",
        "Worker identities caught returning a wrong result",
        untrusted,
    );
    registry.register(
        "task_retries",
        "Attempts that failed and were retried",
        retries,
    );
    registry.register("module_transfers", "Modules sent to workers", transfers);
    registry.register(
        "module_bytes",
        "Bytes of modules sent to workers",
        module_bytes,
    );
    registry.register("job_workers", "Workers serving each job now", seated);
    registry.register(
        "journal_pending_records",
        "Records sent to the job's journal and not yet committed (lost in a crash)",
        unjournaled,
    );
    let connected = Gauge::<i64>::default();
    connected.set(i64::try_from(gate.joined()).unwrap_or(i64::MAX));
    registry.register("workers_connected", "Workers connected now", connected);
    registry.register(
        "task_latency_seconds",
        "Time tasks took on their workers",
        gate.metrics.latency.clone(),
    );
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}
