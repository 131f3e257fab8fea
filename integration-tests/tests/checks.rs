//! Result checking against lying workers: replication with a quorum, verifiers, and honest
//! workers agreeing bit for bit on floating point. The liar is a worker built from the worker
//! library with a hook that rewrites its results; the shipped binary has no such option.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dipla_protocol::RawJson;
use dipla_server::{RunOptions, WorkerRecord};
use dipla_worker::{ModuleCache, WorkerConfig};

use crate::support::{
    JobDir, PATIENCE, WorkerProcess, finish, remote_server, remote_server_with, watch,
};

/// Starts an in-process worker named `liar` that answers honestly `honest_first` times, then
/// replaces every `every`-th output with `[7]`.
fn start_liar(url: &str, honest_first: u64, every: u64) -> tokio::task::JoinHandle<()> {
    let answered = Arc::new(AtomicU64::new(0));
    let mut config = WorkerConfig::new(url);
    config.name = "liar".into();
    config.cores = 1;
    config.tamper = Some(Arc::new(move |result| {
        if result.output.is_none() {
            return;
        }
        let n = answered.fetch_add(1, Ordering::Relaxed);
        if n >= honest_first && n.is_multiple_of(every) {
            result.output = Some(RawJson::from_string("[7]".into()).unwrap());
        }
    }));
    tokio::spawn(async move {
        let cache = ModuleCache::new(dipla_sandbox::Sandbox::new().unwrap(), None).unwrap();
        let _ = dipla_worker::run(&config, &cache).await;
    })
}

/// Runs factorise over 5,000 numbers near 10^12 with `checks` on the stage, on 4 honest
/// worker processes and a liar that turns bad after 50 answers, lying on every 5th after.
async fn factorise_with_a_liar(checks: &str) -> (dipla_server::Summary, WorkerRecord) {
    let job = JobDir::new(&format!(
        r#"
        name = "checked"
        [modules]
        factor = "{{factorise}}"
        [[stages]]
        name = "factors"
        task = "factor.factorise"
        inputs = {{ range = {{ start = 1000000000000, end = 1000000005000 }} }}
        {checks}
        "#
    ));
    // Every worker is in before the first task, so each has a record to check.
    let options = RunOptions {
        min_workers: 5,
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let records = watch(server.handle());
    let liar = start_liar(&url, 50, 5);
    let _honest: Vec<WorkerProcess> = (0..4)
        .map(|i| WorkerProcess::start(&url, &format!("honest-{i}")))
        .collect();
    let (summary, lines) = tokio::time::timeout(PATIENCE, finish(server))
        .await
        .expect("the job finishes");
    liar.abort();
    assert_eq!(lines.len(), 5000);
    for line in &lines {
        let n = line["input"].as_u64().unwrap();
        let output: Vec<u64> = serde_json::from_value(line["output"].clone()).unwrap();
        assert_eq!(output, factorise::factorise(n), "{line}");
    }
    let records = records.await.unwrap();
    for i in 0..4 {
        let honest = &records[&format!("honest-{i}")];
        assert!(honest.trusted, "{honest:?}");
    }
    (summary, records["liar"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_catches_a_liar_and_reruns_what_it_slipped_through() {
    let (summary, liar) = factorise_with_a_liar("replicate = 0.1").await;
    assert!(summary.success(), "{summary}");
    assert!(!liar.trusted, "{liar:?}");
    assert!(
        liar.note
            .as_deref()
            .unwrap_or_default()
            .contains("disagreed"),
        "{liar:?}"
    );
    assert_eq!(summary.counts.untrusted, 1, "{summary}");
    assert!(
        summary.counts.revoked > 0,
        "its unchecked results ran again: {summary}"
    );
    assert!(summary.counts.replicas >= 400, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_catches_a_liar_without_replication() {
    let (summary, liar) = factorise_with_a_liar(r#"verify = "factor.check""#).await;
    assert!(summary.success(), "{summary}");
    assert!(!liar.trusted, "{liar:?}");
    assert!(liar.rejected > 0, "{liar:?}");
    assert!(summary.counts.rejected > 0, "{summary}");
    assert_eq!(summary.counts.replicas, 0, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_workers_agree_bit_for_bit_on_floating_point() {
    let job = JobDir::new(
        r#"
        name = "floats"
        [modules]
        bed = "{testbed}"
        [[stages]]
        name = "wobble"
        task = "bed.wobble"
        inputs = { range = { start = 0, end = 3000 } }
        replicate = 1
        "#,
    );
    let (server, url) = remote_server(job.job()).await;
    let _workers: Vec<WorkerProcess> = (0..2)
        .map(|i| WorkerProcess::start(&url, &format!("w{i}")))
        .collect();
    let (summary, lines) = finish(server).await;
    assert!(summary.success(), "{summary}");
    assert_eq!(summary.counts.untrusted, 0, "{summary}");
    assert_eq!(lines.len(), 3000);
    assert!(lines.iter().all(|line| line["check"] == "replicated:2"));
    assert!(lines.iter().all(|line| line["output"].is_f64()));
}
