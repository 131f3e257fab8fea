//! The driver API: every job shape from Rust, checked against local computations, with its
//! errors and its memory.

use std::collections::BTreeSet;

use dipla_protocol::FailureKind;
use dipla_server::{Dipla, DriverError, Input};
use futures_util::StreamExt;

use crate::support::{QUIET, eventually_async, wasm};

async fn dipla() -> Dipla {
    Dipla::builder().local_workers(2).start().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_reads_like_local_code() {
    let dipla = dipla().await;
    let m = dipla.module(wasm("factorise")).unwrap();
    let factors = m
        .task("factorise")
        .map(1_000_000_000_000u64..1_000_000_002_000);
    let counts = m.task("count").map(&factors);
    let total: u64 = m.task("sum").reduce(&counts).get().await.unwrap();

    let expected: u64 = (1_000_000_000_000u64..1_000_000_002_000)
        .map(|n| factorise::factorise(n).len() as u64)
        .sum();
    assert_eq!(total, expected);
    let factors: Vec<Vec<u64>> = factors.get().await.unwrap();
    assert_eq!(factors.len(), 2000);
    assert_eq!(factors[7], factorise::factorise(1_000_000_000_007));
    dipla.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zip_scatter_and_explore() {
    let dipla = dipla().await;
    let bed = dipla.module(wasm("testbed")).unwrap();
    let squares = bed.task("square").map(vec![3u64, 4, 5]);
    let sums = bed
        .task("add")
        .zip([Input::from(&squares), Input::from(vec![1u64, 2, 3])]);
    assert_eq!(sums.get::<u64>().await.unwrap(), [10, 18, 28]);

    let parts = bed.task("part").scatter("job", 3);
    assert_eq!(
        parts.get::<String>().await.unwrap(),
        ["job:0/3", "job:1/3", "job:2/3"]
    );

    let reached = bed.task("reach").explore(vec![1u64], 1000);
    let mut visited: Vec<u64> = reached.get().await.unwrap();
    visited.sort_unstable();
    assert_eq!(visited, (1..=100).collect::<Vec<u64>>());
    // A map over an exploration has one task per input it found.
    let squared = bed.task("square").map(&reached);
    let total: u64 = bed.task("add").reduce(&squared).get().await.unwrap();
    assert_eq!(total, (1..=100u64).map(|x| x * x).sum::<u64>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_stop_says_so_and_keeps_what_finished() {
    let dipla = dipla().await;
    let bed = dipla.module(wasm("testbed")).unwrap();
    let search = bed.task("seek").stop_after(2).map(0u64..1_000_000);
    let outcomes = search.outcomes::<u64>().await.unwrap();
    let found: Vec<u64> = outcomes
        .iter()
        .map(|(_, o)| *o.as_ref().unwrap())
        .filter(|x| x % 1000 == 777)
        .collect();
    // The first two goals to complete (usually 777 and 1777) stop the stage.
    assert!(found.len() >= 2, "{found:?}");
    assert!(outcomes.len() < 20_000, "{} tasks ran", outcomes.len());
    assert!(
        outcomes
            .iter()
            .all(|(index, output)| output.as_ref().unwrap() == index)
    );
    let why = search.stopped().expect("the stage says it stopped");
    assert!(why.contains("met its goal"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_yields_every_result_once_as_it_completes() {
    let dipla = dipla().await;
    let bed = dipla.module(wasm("testbed")).unwrap();
    let squares = bed.task("square").map(0u64..500);
    let mut seen = BTreeSet::new();
    let mut stream = Box::pin(squares.stream::<u64>());
    while let Some(item) = stream.next().await {
        let (index, square) = item.unwrap();
        assert_eq!(square, index * index);
        assert!(seen.insert(index), "index {index} came twice");
    }
    assert_eq!(seen.len(), 500);
    // A second stream of a finished promise replays the results.
    assert_eq!(squares.stream::<u64>().count().await, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_results_arrive_while_upstream_still_runs() {
    let dipla = dipla().await;
    let bed = dipla.module(wasm("testbed")).unwrap();
    let slow = bed
        .task("burn")
        .zip([Input::from(0u64..400), Input::from(vec![300_000u64; 400])]);
    let squares = bed.task("square").map(&slow);
    let mut stream = Box::pin(squares.stream::<u64>());
    let (index, square) = stream.next().await.unwrap().unwrap();
    assert!(
        !slow.is_complete(),
        "the first square came after every burn finished"
    );
    let burnt: Vec<u64> = slow.get().await.unwrap();
    assert_eq!(
        square,
        burnt[index as usize].wrapping_mul(burnt[index as usize])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_are_typed_errors_naming_what_is_wrong() {
    let dipla = dipla().await;
    let bed = dipla.module(wasm("testbed")).unwrap();

    let missing = bed.task("sqaure").map(0u64..3);
    let error = missing.get::<u64>().await.unwrap_err();
    assert!(
        matches!(&error, DriverError::Invalid { stage, message }
            if stage == "sqaure" && message.contains("sqaure") && message.contains("square")),
        "{error}"
    );
    // Whatever is made from it fails too, saying why.
    let after = bed.task("square").map(&missing);
    let error = after.get::<u64>().await.unwrap_err();
    assert!(
        error.to_string().contains("which could not be made"),
        "{error}"
    );

    let arity = bed.task("add").zip([
        Input::from(vec![1u64]),
        Input::from(vec![2u64]),
        Input::from(vec![3u64]),
    ]);
    let error = arity.get::<u64>().await.unwrap_err();
    assert!(error.to_string().contains("takes 2"), "{error}");

    // Types are checked when the stage is made, from the signatures the module records.
    let invalid = |error: DriverError, stage: &str, says: &str| match &error {
        DriverError::Invalid { stage: s, message } if s == stage && message.contains(says) => {}
        other => panic!("{stage}: {other:?} should say {says:?}"),
    };
    invalid(
        bed.task("add")
            .named("pairs")
            .map(0u64..4)
            .get::<u64>()
            .await
            .unwrap_err(),
        "pairs",
        "a range gives each task one integer but add(a: u64, b: u64) -> u64 [can reduce] takes 2 arguments",
    );
    invalid(
        bed.task("add")
            .named("three")
            .map(vec![vec![100u64, 200, 300]])
            .get::<u64>()
            .await
            .unwrap_err(),
        "three",
        "values[0]: [100,200,300] gives 3 argument(s) but add(a: u64, b: u64) -> u64 [can reduce] takes 2",
    );
    let words = bed.task("part").named("words").scatter("w", 3);
    invalid(
        bed.task("square")
            .named("of-words")
            .map(&words)
            .get::<u64>()
            .await
            .unwrap_err(),
        "of-words",
        "map over \"words\": square(x: u64) -> u64 takes u64 but \"words\" outputs String",
    );
    invalid(
        bed.task("add")
            .named("sum-words")
            .reduce(&words)
            .get::<u64>()
            .await
            .unwrap_err(),
        "sum-words",
        "reduce over \"words\": the reducer takes u64 but \"words\" outputs String",
    );
    invalid(
        bed.task("square")
            .named("tiny")
            .limits(dipla_protocol::TaskLimits {
                fuel: 1_000_000,
                memory_mb: 1,
                timeout_ms: 10_000,
            })
            .map(0u64..2)
            .get::<u64>()
            .await
            .unwrap_err(),
        "tiny",
        "memory_mb = 1 is not enough",
    );
    // Turned off, the mistake is left to run time.
    let unchecked = bed.task("square").check_types(false).map(&words);
    assert!(matches!(
        unchecked.get::<u64>().await.unwrap_err(),
        DriverError::Task { .. }
    ));

    let uneven = bed
        .task("add")
        .zip([Input::from(vec![1u64, 2]), Input::from(vec![3u64])]);
    let error = uneven.get::<u64>().await.unwrap_err();
    assert!(error.to_string().contains("differ in length"), "{error}");

    let empty = bed.task("square").map(Vec::<u64>::new());
    let error = empty.get::<u64>().await.unwrap_err();
    assert!(error.to_string().contains("no inputs"), "{error}");

    let error = bed.task("square").reduce(&bed.task("square").map(0u64..4));
    let error = error.get::<u64>().await.unwrap_err();
    assert!(error.to_string().contains("cannot reduce"), "{error}");

    let halves = bed.task("even_only").max_attempts(1).map(vec![2u64, 3, 4]);
    match halves.get::<u64>().await.unwrap_err() {
        DriverError::Task {
            stage,
            index,
            failure,
        } => {
            assert_eq!((stage.as_str(), index), ("even_only", 1));
            assert_eq!(failure.kind, FailureKind::Guest);
        }
        other => panic!("{other}"),
    }
    let outcomes = halves.outcomes::<u64>().await.unwrap();
    assert_eq!(*outcomes[0].1.as_ref().unwrap(), 1);
    assert_eq!(*outcomes[2].1.as_ref().unwrap(), 2);

    // The first result in input order decides: output 0 is a number, not a string.
    let error = halves.get::<String>().await.unwrap_err();
    assert!(
        matches!(&error, DriverError::Decode { index: 0, .. }),
        "{error}"
    );
    let words = bed.task("part").scatter("w", 2);
    let error = words.get::<u64>().await.unwrap_err();
    assert!(
        matches!(
            &error,
            DriverError::Decode {
                index: 0,
                expected: "u64",
                ..
            }
        ),
        "{error}"
    );

    let error = dipla.module("no/such/module.wasm").unwrap_err();
    assert!(error.to_string().contains("no/such/module.wasm"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_freed_once_nothing_can_read_them() {
    let dipla = dipla().await;
    let handle = dipla.handle();
    let bed = dipla.module(wasm("testbed")).unwrap();

    let squares = bed.task("square").map(0u64..1000);
    let total = bed.task("add").reduce(&squares);
    assert_eq!(
        total.get::<u64>().await.unwrap(),
        (0..1000u64).map(|x| x * x).sum::<u64>()
    );
    assert_eq!(handle.kept(), 1001, "both promises hold their results");
    drop(squares);
    assert_eq!(handle.kept(), 1, "only the total is held");
    drop(total);
    assert_eq!(handle.kept(), 0);

    // A dropped promise's results live only until the stage reading them is done.
    let squares = bed.task("square").map(0u64..1000);
    let plus_one = bed
        .task("add")
        .zip([Input::from(&squares), Input::from(vec![1u64; 1000])]);
    drop(squares);
    let values: Vec<u64> = plus_one.get().await.unwrap();
    assert_eq!(values[999], 999 * 999 + 1);
    assert_eq!(handle.kept(), 1000, "only plus_one's results are kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_from_the_driver_api() {
    use dipla_server::Replicate;
    let dipla = dipla().await;
    let m = dipla.module(wasm("factorise")).unwrap();
    let numbers = 1_000_000_000_000u64..1_000_000_000_200;
    let expected: Vec<Vec<u64>> = numbers.clone().map(factorise::factorise).collect();

    let verified = m.task("factorise").verify(&m, "check").map(numbers.clone());
    assert_eq!(verified.get::<Vec<u64>>().await.unwrap(), expected);
    let replicated = m
        .task("factorise")
        .replicate(Replicate::Fraction(1.0))
        .map(numbers.clone());
    let counts = m.task("count").map(&replicated);
    assert_eq!(replicated.get::<Vec<u64>>().await.unwrap(), expected);
    let total: u64 = counts.get::<u64>().await.unwrap().iter().sum();
    assert_eq!(total, expected.iter().map(|f| f.len() as u64).sum::<u64>());
    assert!(dipla.handle().counts().replicas >= 200);

    let error = m
        .task("factorise")
        .verify(&m, "count")
        .map(numbers)
        .get::<Vec<u64>>()
        .await;
    let error = error.unwrap_err().to_string();
    assert!(error.contains("not a #[verifier]"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_workers_holds_the_tasks_until_a_remote_worker_joins_the_local_one() {
    let dipla = Dipla::builder()
        .local_workers(1)
        .listen("127.0.0.1:0")
        .min_workers(2)
        .start()
        .await
        .unwrap();
    let bed = dipla.module(wasm("testbed")).unwrap();
    let squares = bed.task("square").map(vec![3u64, 4, 5]);
    // Alone, the local worker would finish these three squares in milliseconds. Nothing
    // shows that they are held: once the local worker has joined, watch them for a while.
    let handle = dipla.handle();
    eventually_async("the local worker joined", async || {
        handle
            .workers()
            .iter()
            .any(|w| w.record.is_some())
            .then_some(())
    })
    .await;
    let held = tokio::time::timeout(QUIET, squares.get::<u64>()).await;
    assert!(held.is_err(), "the local worker ran alone: {held:?}");
    let _remote = crate::support::WorkerProcess::start(dipla.worker_url(), "remote");
    assert_eq!(squares.get::<u64>().await.unwrap(), [9, 16, 25]);
    dipla.shutdown().await;
}

/// The light driver's `local` feature: the same program with the server inside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_light_driver_runs_a_server_of_its_own_with_the_local_feature() {
    let dipla = dipla_driver::Dipla::builder()
        .local_workers(2)
        .start()
        .await
        .unwrap();
    let m = dipla.module(wasm("factorise")).unwrap();
    let factors = m.task("factorise").map(1_000_000u64..1_000_200);
    let counts = m.task("count").map(&factors);
    let total: u64 = m.task("sum").reduce(&counts).get().await.unwrap();
    let expected: u64 = (1_000_000u64..1_000_200)
        .map(|n| factorise::factorise(n).len() as u64)
        .sum();
    assert_eq!(total, expected);
    let wrong = m.task("sum").map(0..3u64).get::<u64>().await;
    assert!(
        matches!(wrong, Err(dipla_driver::DriverError::Invalid { .. })),
        "{wrong:?}"
    );
    dipla.shutdown().await;
}
