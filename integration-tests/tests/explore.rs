//! A stage whose tasks add inputs to it (the original Dipla's explorer).

use crate::support::{JobDir, run_on_workers};

const REACH: &str = r#"
    name = "reach"
    [modules]
    bed = "{testbed}"
    [[stages]]
    name = "reach"
    task = "bed.reach"
    inputs = { values = [1] }
    explore = { max_tasks = MAX }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exploring_visits_every_reachable_input_once() {
    let job = JobDir::new(&REACH.replace("MAX", "1000"));
    let (summary, lines) = run_on_workers(&job, 2).await;
    assert!(summary.success(), "{summary}");
    let mut visited: Vec<u64> = lines
        .iter()
        .map(|l| l["output"].as_u64().unwrap())
        .collect();
    assert_eq!(lines[0]["input"], 1);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], i as u64);
        assert_eq!(line["input"], line["output"]);
    }
    visited.sort_unstable();
    assert_eq!(
        visited,
        (1..=100).collect::<Vec<u64>>(),
        "each number 1..=100 exactly once"
    );
    assert_eq!(summary.tasks, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_tasks_bounds_a_runaway_exploration() {
    let job = JobDir::new(&REACH.replace("MAX", "10"));
    let (summary, lines) = run_on_workers(&job, 1).await;
    assert!(summary.success(), "{summary}");
    assert_eq!(lines.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_can_map_and_reduce_what_an_exploration_found() {
    let manifest = REACH.replace("MAX", "1000")
        + r#"
    [[stages]]
    name = "squares"
    task = "bed.square"
    inputs = { stage = "reach" }
    [[stages]]
    name = "total"
    task = "bed.add"
    reduce = { stage = "squares", fan_in = 3 }
"#;
    let job = JobDir::new(&manifest);
    let (summary, lines) = run_on_workers(&job, 2).await;
    assert!(summary.success(), "{summary}");
    let squares: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["stage"] == "squares").collect();
    assert_eq!(squares.len(), 100, "one per input the exploration found");
    for line in &squares {
        let x = line["input"].as_u64().unwrap();
        assert_eq!(line["output"], x * x);
    }
    let total = lines.iter().find(|l| l["stage"] == "total").unwrap();
    assert_eq!(total["output"], (1..=100u64).map(|x| x * x).sum::<u64>());
}
