//! `/metrics`: the server in Prometheus's text format (prometheus-client), for `run --listen`
//! as for anything else serving the endpoint. Counts come from the coordinator and the traffic
//! counters when scraped; task latency is a histogram of the times workers report.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::Handle;

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
struct State {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

impl Metrics {
    /// A task took `micros` on its worker.
    pub(crate) fn observe(&self, micros: u64) {
        self.latency.observe(micros as f64 / 1e6);
    }

    /// The server's metrics now, in Prometheus's text format.
    pub(crate) fn render(&self, handle: &Handle) -> String {
        let mut registry = Registry::with_prefix("dipla");
        let (progress, counts) = {
            let core = handle.lock();
            let coordinator = &core.coordinator;
            let progress: Vec<_> = (0..coordinator.stage_count())
                .map(|stage| coordinator.progress(stage))
                .collect();
            (progress, coordinator.counts())
        };
        let tasks = Family::<State, Gauge>::default();
        let sum = |f: fn(&crate::coordinator::StageProgress) -> u64| {
            i64::try_from(progress.iter().map(f).sum::<u64>()).unwrap_or(i64::MAX)
        };
        tasks
            .get_or_create(&State { state: "queued" })
            .set(sum(|p| p.queued));
        tasks
            .get_or_create(&State { state: "running" })
            .set(sum(|p| p.running));
        tasks
            .get_or_create(&State { state: "done" })
            .set(sum(|p| p.done));
        tasks
            .get_or_create(&State { state: "failed" })
            .set(sum(|p| p.failed));
        registry.register("tasks", "Tasks by state, over all stages", tasks);

        let checks = Family::<Outcome, Counter>::default();
        for (outcome, value) in [
            ("unchecked", sum(|p| p.unchecked)),
            ("verified", sum(|p| p.verified)),
            ("replicated", sum(|p| p.replicated)),
        ] {
            checks
                .get_or_create(&Outcome { outcome })
                .inc_by(u64::try_from(value).unwrap_or(0));
        }
        for (outcome, value) in [
            ("rejected", counts.rejected),
            ("revoked", counts.revoked),
            ("replicas", counts.replicas),
        ] {
            checks.get_or_create(&Outcome { outcome }).inc_by(value);
        }
        registry.register(
            "checks",
            "Outputs by how they were checked, outputs a verifier rejected, results revoked and replicas issued",
            checks,
        );
        let counter = |value: u64| {
            let counter = Counter::<u64>::default();
            counter.inc_by(value);
            counter
        };
        registry.register(
            "workers_untrusted",
            "Worker identities caught returning a wrong result",
            counter(counts.untrusted),
        );
        registry.register(
            "task_retries",
            "Attempts that failed and were retried",
            counter(counts.retried),
        );
        let workers = Gauge::<i64>::default();
        workers.set(i64::try_from(handle.workers().len()).unwrap_or(i64::MAX));
        registry.register("workers_connected", "Workers connected now", workers);
        let stats = handle.stats();
        registry.register(
            "module_transfers",
            "Modules sent to workers",
            counter(stats.module_transfers),
        );
        registry.register(
            "module_bytes",
            "Bytes of modules sent to workers",
            counter(stats.module_bytes),
        );
        registry.register(
            "task_latency_seconds",
            "Time tasks took on their workers",
            self.latency.clone(),
        );
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}
