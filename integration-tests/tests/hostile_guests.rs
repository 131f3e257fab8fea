use dipla_server::RunOptions;

use crate::support::{JobDir, WorkerProcess, finish, remote_server, remote_server_with};

/// Every way a guest can misbehave ends as a failed task naming its cause, and the same two
/// worker processes go on to finish the good tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_guests_fail_cleanly_and_the_workers_keep_serving() {
    let job = JobDir::new(
        r#"
        name = "hostile"
        [modules]
        bed = "{testbed}"
        [[stages]]
        name = "loop"
        task = "bed.spin"
        inputs = { values = [1] }
        max_attempts = 2
        [[stages]]
        name = "memory-bomb"
        task = "bed.hog"
        inputs = { values = [512] }
        max_attempts = 2
        [[stages]]
        name = "recursion-bomb"
        task = "bed.recurse"
        inputs = { values = [100000000] }
        max_attempts = 2
        [[stages]]
        name = "panic"
        task = "bed.explode"
        inputs = { values = [3] }
        max_attempts = 2
        [[stages]]
        name = "wild-pointer"
        task = "bed.wild_read"
        inputs = { values = [4294967280] }
        max_attempts = 2
        [[stages]]
        name = "error"
        task = "bed.even_only"
        inputs = { values = [4, 3] }
        max_attempts = 2
        [[stages]]
        name = "flood"
        task = "bed.flood"
        inputs = { values = [20000000] }
        max_attempts = 2
        [[stages]]
        name = "wrong-input"
        task = "bed.square"
        inputs = { values = ["twelve"] }
        check_types = false  # the load-time check would refuse it: this is the run-time path
        max_attempts = 2
        [[stages]]
        name = "good"
        task = "bed.square"
        inputs = { range = { start = 0, end = 300 } }
        [[stages]]
        name = "several-arguments"
        task = "bed.describe"
        inputs = { values = [["apples", 3, ["red", "green"]]] }
        [limits]
        fuel = 1_500_000_000
        memory_mb = 128
        "#,
    );
    // Both workers join before any task is given out: each failure is retried on the other.
    let options = RunOptions {
        min_workers: 2,
        ..RunOptions::default()
    };
    let (server, url) = remote_server_with(job.job(), options).await;
    let mut workers = [
        WorkerProcess::start(&url, "one"),
        WorkerProcess::start(&url, "two"),
    ];
    let (summary, lines) = finish(server).await;

    let error = |stage: &str| -> String {
        let line = lines.iter().find(|l| l["stage"] == stage).unwrap();
        assert!(
            line.get("output").is_none(),
            "{stage} should have failed: {line}"
        );
        line["error"].as_str().unwrap().to_owned()
    };
    assert!(
        error("loop").starts_with("out of fuel: "),
        "{}",
        error("loop")
    );
    assert!(
        error("memory-bomb").starts_with("memory limit: "),
        "{}",
        error("memory-bomb")
    );
    assert!(
        error("recursion-bomb").starts_with("stack overflow: "),
        "{}",
        error("recursion-bomb")
    );
    assert!(
        error("panic").starts_with("panic: exploded on 3 (at "),
        "{}",
        error("panic")
    );
    assert_eq!(error("wild-pointer"), "trap: out of bounds memory access");
    assert!(
        error("flood").starts_with("bad output: the output is"),
        "{}",
        error("flood")
    );
    assert!(
        error("wrong-input").starts_with("task error: the input does not match"),
        "{}",
        error("wrong-input")
    );
    let errors: Vec<_> = lines.iter().filter(|l| l["stage"] == "error").collect();
    assert_eq!(errors[0]["output"], 2);
    assert_eq!(errors[1]["error"], "task error: 3 is odd");

    let good: Vec<_> = lines.iter().filter(|l| l["stage"] == "good").collect();
    assert_eq!(good.len(), 300);
    for (i, line) in good.iter().enumerate() {
        assert_eq!(line["output"], (i * i) as u64);
    }
    let described = lines
        .iter()
        .find(|l| l["stage"] == "several-arguments")
        .unwrap();
    assert_eq!(described["output"], "apples x3 [red,green]");

    // 8 hostile tasks failed, each retried once on the other worker.
    assert_eq!(summary.counts.failed, 8, "{summary}");
    assert_eq!(summary.counts.retried, 8, "{summary}");
    assert_eq!(summary.counts.succeeded, 300 + 1 + 1);
    for worker in &mut workers {
        assert!(
            worker.wait_success(),
            "a worker did not survive the hostile guests"
        );
    }
}

/// The volunteer's caps win over what the server asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_volunteers_caps_win_over_the_servers_limits() {
    let job = JobDir::new(
        r#"
        name = "greedy"
        [modules]
        bed = "{testbed}"
        [[stages]]
        name = "work"
        task = "bed.burn"
        inputs = { values = [[1, 1000000000]] }
        max_attempts = 1
        [[stages]]
        name = "memory"
        task = "bed.hog"
        inputs = { values = [40] }
        max_attempts = 1
        [limits]
        fuel = 100_000_000_000
        memory_mb = 1024
        "#,
    );
    let (server, url) = remote_server(job.job()).await;
    let cache = tempfile::tempdir().unwrap();
    let caps = ["--max-fuel", "50000000", "--max-memory-mb", "16"];
    let _frugal = WorkerProcess::with_args(&url, "frugal", cache, &caps);
    let (_, lines) = finish(server).await;
    assert_eq!(
        lines[0]["error"],
        "out of fuel: the task used all of its 50000000 fuel"
    );
    let memory = lines[1]["error"].as_str().unwrap();
    assert!(
        memory.starts_with("memory limit: ") && memory.ends_with("the limit is 16777216"),
        "{memory}"
    );
}
