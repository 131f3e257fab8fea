//! Identities that survive reconnects and restarts: a worker caught lying gets no work
//! under the same key, whether it reconnects or the server restarts; one machine cannot pose
//! as more volunteers than the server allows.

use std::process::Child;
use std::sync::Arc;

use dipla_server::RunOptions;
use dipla_worker::{Identity, ModuleCache, WorkerConfig};

use crate::support::{
    JobDir, PATIENCE, WorkerProcess, addr_of, burn_job, eventually, finish, http, join_with,
    journaled_through, remote_server_with, server_process, start_liar, test_hello,
};

const TOKEN: &str = "admin-secret";

/// The server of `job`, replicating every task, as a process; returns it and its URL.
fn start_server(job: &JobDir, state: &std::path::Path) -> (Child, String) {
    let state = state.to_str().unwrap();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--no-speculation",
        "--admin-token",
        TOKEN,
        "--state",
        state,
    ];
    let (server, url, _) = server_process(&job.manifest, &args);
    (server, url)
}

/// The job's status.
fn job_status(url: &str) -> serde_json::Value {
    let (code, _, body) = http(&addr_of(url), "GET", "/api/job", Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The liar's entry in the job's status, once it has one.
fn liar_status(url: &str) -> Option<serde_json::Value> {
    job_status(url)["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "liar" && !w["record"].is_null())
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_identity_gets_no_work_after_reconnecting_or_a_server_restart() {
    let job = burn_job(400, 3_000_000);
    let manifest = std::fs::read_to_string(&job.manifest).unwrap();
    std::fs::write(
        &job.manifest,
        format!("{manifest}\n        replicate = 1.0\n"),
    )
    .unwrap();
    let state = job.dir.path().join("job.state");
    let identity = Arc::new(Identity::generate());

    let (mut server, url) = start_server(&job, &state);
    let liar = start_liar(&url, identity.clone());
    let honest: Vec<WorkerProcess> = (0..2)
        .map(|i| WorkerProcess::start(&url, &format!("honest-{i}")))
        .collect();
    let status = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            let (liar, sent) = eventually("the liar caught", || {
                let status = job_status(&url);
                let liar = status["workers"].as_array().unwrap().iter().find(|w| {
                    w["name"] == "liar" && !w["record"].is_null() && w["record"]["trusted"] == false
                })?;
                Some((liar.clone(), status["journal"]["sent"].as_u64().unwrap()))
            });
            // The journal is written behind the job: once it has committed what was sent
            // when the liar showed as caught, a crash cannot lose that.
            eventually("the journal catch up", || {
                journaled_through(&job_status(&url), sent).then_some(())
            });
            liar
        }
    })
    .await
    .unwrap();
    assert_eq!(status["record"]["identity"], identity.public().to_string());
    // Kill the server mid-job, and everyone with it.
    server.kill().unwrap();
    server.wait().unwrap();
    liar.abort();
    drop(honest);

    // Restarted on its journal, the server knows the liar's key: no work for it.
    let (mut server, url) = start_server(&job, &state);
    let liar = start_liar(&url, identity.clone());
    let joined = tokio::task::spawn_blocking({
        let url = url.clone();
        move || eventually("the liar joined again", || liar_status(&url))
    })
    .await
    .unwrap();
    assert_eq!(joined["record"]["trusted"], false, "{joined}");
    let _honest: Vec<WorkerProcess> = (0..2)
        .map(|i| WorkerProcess::start(&url, &format!("honest-again-{i}")))
        .collect();
    // While the honest workers answer tasks, the liar gets none.
    let later = tokio::task::spawn_blocking(move || {
        eventually("the honest workers at work", || {
            let honest: u64 = job_status(&url)["workers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|w| w["name"].as_str().unwrap().starts_with("honest-again"))
                .filter_map(|w| w["record"]["results"].as_u64())
                .sum();
            (honest >= 20).then_some(())
        });
        liar_status(&url).expect("the liar is still connected")
    })
    .await
    .unwrap();
    assert_eq!(later["record"]["results"], 0, "{later}");
    assert_eq!(later["running"], 0, "{later}");
    let status = tokio::task::spawn_blocking(move || server.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    liar.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_on_identities_per_address_refuses_the_next_one() {
    let job = burn_job(4, 1000);
    let options = RunOptions {
        max_identities_per_ip: Some(2),
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let run = tokio::spawn(finish(server));
    let identities: Vec<Arc<Identity>> = (0..3).map(|_| Arc::new(Identity::generate())).collect();
    let mut joined = Vec::new();
    for identity in &identities[..2] {
        joined.push(
            join_with(&url, test_hello("one", identity), identity)
                .await
                .unwrap(),
        );
    }
    // The same identity again is no new one.
    let again = join_with(&url, test_hello("again", &identities[0]), &identities[0]).await;
    assert!(again.is_ok());
    let reason = join_with(&url, test_hello("third", &identities[2]), &identities[2])
        .await
        .expect_err("a third identity from one address is refused");
    assert!(reason.contains("too many identities"), "{reason}");
    drop(joined);
    drop(again);
    // A real worker under one of the admitted identities finishes the job.
    let mut config = WorkerConfig::new(&url);
    config.identity = identities[1].clone();
    let cache = ModuleCache::new(dipla_sandbox::Sandbox::new().unwrap(), None).unwrap();
    let worker = tokio::spawn(async move { dipla_worker::run(&config, &cache).await });
    let (summary, _) = tokio::time::timeout(PATIENCE, run).await.unwrap().unwrap();
    assert!(summary.success());
    worker.await.unwrap().unwrap();
}
