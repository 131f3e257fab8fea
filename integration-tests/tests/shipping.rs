use crate::support::{JobDir, WorkerProcess, finish, remote_server};

const TWO_STAGES_ONE_MODULE: &str = r#"
    name = "shipping"
    [modules]
    bed = "{testbed}"
    [[stages]]
    name = "squares"
    task = "bed.square"
    inputs = { range = { start = 0, end = 2000 } }
    [[stages]]
    name = "depths"
    task = "bed.recurse"
    inputs = { range = { start = 0, end = 1000 } }
"#;

/// Many batches and two stages of one module: the module crosses the wire once per worker,
/// and a worker restarted with its disk cache does not fetch it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_crosses_the_wire_once_per_worker() {
    let job = JobDir::new(TWO_STAGES_ONE_MODULE);
    let cache = tempfile::tempdir().unwrap();
    let cache_path = cache.path().to_owned();

    let first_run = job.job();
    let module = first_run.modules[0].guest.clone();
    let (server, url) = remote_server(first_run).await;
    let mut worker = WorkerProcess::with_cache(&url, "first", cache);
    let (summary, lines) = finish(server).await;
    assert!(summary.success(), "{summary}");
    assert!(
        !module.is_compiled(),
        "a server that runs nothing of a module never compiles it"
    );
    assert_eq!(lines.len(), 3000);
    assert_eq!(lines[2999]["output"], 999);
    assert!(
        summary.stats.messages_sent > 10,
        "the job should take many batches: {summary:?}"
    );
    assert_eq!(summary.stats.module_transfers, 1);
    assert_eq!(
        summary.stats.module_bytes,
        std::fs::metadata(crate::support::wasm("testbed"))
            .unwrap()
            .len()
    );
    assert!(worker.wait_success());
    // (The test worker keeps its identity and its state file beside its cache.)
    let cached: Vec<_> = std::fs::read_dir(&cache_path)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != "identity" && name != "status.json")
        .collect();
    assert_eq!(
        cached.len(),
        2,
        "the module and its compiled code: {cached:?}"
    );

    // Same cache, new process: nothing to fetch.
    let cache = std::mem::replace(&mut worker.cache, tempfile::tempdir().unwrap());
    let (server, url) = remote_server(job.job()).await;
    let _again = WorkerProcess::with_cache(&url, "again", cache);
    let (summary, lines) = finish(server).await;
    assert!(summary.success(), "{summary}");
    assert_eq!(lines.len(), 3000);
    assert_eq!(summary.stats.module_transfers, 0);
}
