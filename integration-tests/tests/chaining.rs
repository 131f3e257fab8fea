//! Stages that read other stages: map over a promise, zip, reduce, scatter, pipelining.

use crate::support::{
    JobDir, WorkerProcess, eventually_async, finish, remote_server, run_on_workers,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_zip_reduce_and_scatter_give_the_local_answer() {
    let job = JobDir::new(
        r#"
        name = "chain"
        [modules]
        bed = "{testbed}"
        [[stages]]
        name = "squares"
        task = "bed.square"
        inputs = { range = { start = 0, end = 100 } }
        [[stages]]
        name = "pairs"
        task = "bed.add"
        inputs = { zip = [ { stage = "squares" }, { range = { start = 0, end = 100 } } ] }
        [[stages]]
        name = "total"
        task = "bed.add"
        reduce = { stage = "pairs", fan_in = 3 }
        [[stages]]
        name = "pairs-total"
        task = "bed.add"
        reduce = { stage = "pairs" }
        [[stages]]
        name = "parts"
        task = "bed.part"
        inputs = { scatter = { value = "job", count = 4 } }
        [[stages]]
        name = "squared-again"
        task = "bed.square"
        inputs = { stage = "squares" }
        "#,
    );
    let (summary, lines) = run_on_workers(&job, 2).await;
    assert!(summary.success(), "{summary}");

    let stage = |name: &str| -> Vec<&serde_json::Value> {
        lines.iter().filter(|line| line["stage"] == name).collect()
    };
    let pairs = stage("pairs");
    assert_eq!(pairs.len(), 100);
    for (x, line) in pairs.iter().enumerate() {
        let x = x as u64;
        assert_eq!(line["input"], serde_json::json!([x * x, x]));
        assert_eq!(line["output"], x * x + x);
    }
    let expected: u64 = (0..100u64).map(|x| x * x + x).sum();
    for name in ["total", "pairs-total"] {
        let total = stage(name);
        assert_eq!(total.len(), 1, "a reduce stage writes one line");
        assert_eq!(total[0]["output"], expected, "{name}");
        assert_eq!(
            total[0]["input"],
            serde_json::json!({"reduce": "pairs", "items": 100})
        );
    }
    let parts: Vec<&str> = stage("parts")
        .iter()
        .map(|l| l["output"].as_str().unwrap())
        .collect();
    assert_eq!(parts, ["job:0/4", "job:1/4", "job:2/4", "job:3/4"]);
    let again = stage("squared-again");
    assert_eq!(again[9]["input"], 81);
    assert_eq!(again[9]["output"], 6561);
    // Stages are written in manifest order, each in input order.
    let order: Vec<&str> = lines.iter().map(|l| l["stage"].as_str().unwrap()).collect();
    let mut sorted = order.clone();
    sorted.dedup();
    assert_eq!(
        sorted,
        [
            "squares",
            "pairs",
            "total",
            "pairs-total",
            "parts",
            "squared-again"
        ]
    );
}

/// A failed upstream task fails exactly the downstream tasks that needed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_failure_fails_only_what_depends_on_it() {
    let job = JobDir::new(
        r#"
        name = "fragile"
        [modules]
        bed = "{testbed}"
        [[stages]]
        name = "halves"
        task = "bed.even_only"
        inputs = { values = [2, 3, 4] }
        max_attempts = 1
        [[stages]]
        name = "squares"
        task = "bed.square"
        inputs = { stage = "halves" }
        [[stages]]
        name = "sum"
        task = "bed.add"
        reduce = { stage = "squares" }
        "#,
    );
    let (summary, lines) = run_on_workers(&job, 1).await;
    assert_eq!(lines[3]["output"], 1);
    assert_eq!(lines[4]["input"], serde_json::Value::Null);
    let error = lines[4]["error"].as_str().unwrap();
    assert!(
        error.starts_with("upstream failure: its input, task 1 of stage \"halves\", failed"),
        "{error}"
    );
    assert_eq!(lines[5]["output"], 4);
    assert!(
        lines[6]["error"]
            .as_str()
            .unwrap()
            .starts_with("upstream failure")
    );
    assert_eq!(summary.counts.failed, 3);
}

/// Downstream tasks run while upstream tasks are still running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_tasks_complete_while_upstream_still_runs() {
    let job = JobDir::new(
        r#"
        name = "pipeline"
        [modules]
        bed = "{testbed}"
        [[stages]]
        name = "slow"
        task = "bed.burn"
        inputs = { file = "slow.jsonl" }
        [[stages]]
        name = "fast"
        task = "bed.square"
        inputs = { stage = "slow" }
        "#,
    );
    let inputs: String = (0..60).map(|i| format!("[{i}, 2000000]\n")).collect();
    job.write("slow.jsonl", &inputs);
    let (server, url) = remote_server(job.job()).await;
    let handle = server.handle();
    let _workers = [
        WorkerProcess::start(&url, "one"),
        WorkerProcess::start(&url, "two"),
    ];
    let run = tokio::spawn(finish(server));
    // Watched for as long as the job runs.
    let overlapped = eventually_async("an overlap or the job's end", async || {
        let (slow, fast) = (handle.stage_done(0), handle.stage_done(1));
        if fast > 0 && slow < 60 {
            return Some(true);
        }
        run.is_finished().then_some(false)
    })
    .await;
    let (summary, lines) = run.await.unwrap();
    assert!(summary.success(), "{summary}");
    assert!(
        overlapped,
        "no downstream task finished before the upstream stage did"
    );
    assert_eq!(lines[60 + 59]["output"], 59 * 59);
}
