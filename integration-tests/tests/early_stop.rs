//! A task can end its stage early (`Flow::Stop`): the original Dipla's `terminate_tasks`.

use crate::support::{JobDir, run_on_workers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_stops_once_its_goal_is_met_and_the_job_goes_on() {
    let job = JobDir::new(
        r#"
        name = "search"
        [modules]
        bed = "{testbed}"
        [[stages]]
        name = "search"
        task = "bed.seek"
        inputs = { range = { start = 0, end = 1000000 } }
        stop_after = 2
        [[stages]]
        name = "after"
        task = "bed.square"
        inputs = { range = { start = 0, end = 10 } }
        "#,
    );
    let (summary, lines) = run_on_workers(&job, 2).await;
    assert!(summary.success(), "{summary}");

    let search: Vec<_> = lines.iter().filter(|l| l["stage"] == "search").collect();
    let found: Vec<u64> = search
        .iter()
        .map(|l| l["output"].as_u64().unwrap())
        .filter(|x| x % 1000 == 777)
        .collect();
    assert_eq!(found, [777, 1777], "both goals are in the results");
    assert!(
        search.len() < 20_000,
        "the stage went on after its goal: {} lines",
        search.len()
    );
    let indexes: Vec<u64> = search
        .iter()
        .map(|l| l["index"].as_u64().unwrap())
        .collect();
    assert!(
        indexes.windows(2).all(|w| w[0] < w[1]),
        "lines stay in index order"
    );
    assert!(summary.counts.stopped >= 1_000_000 - 20_000, "{summary}");
    assert_eq!(lines.iter().filter(|l| l["stage"] == "after").count(), 10);
}
