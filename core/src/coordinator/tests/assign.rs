//! Handing out work: order, windows, fair shares, waiting for workers, and answers from the
//! wrong worker.

use super::*;

#[test]
fn hands_out_tasks_in_order_up_to_the_window() {
    let mut c = Coordinator::new(vec![plan(3), plan(10)]);
    c.join(1, 2);
    let first = c.assign(1);
    assert_eq!(
        first,
        vec![
            Assignment {
                stage: 0,
                tasks: vec![(1, 0), (2, 1), (3, 2)]
            },
            Assignment {
                stage: 1,
                tasks: vec![(4, 0)]
            },
        ]
    );
    assert!(c.assign(1).is_empty(), "the window of 2 cores x 2 is full");
    assert_eq!(c.running_on(1), 4);
}

#[test]
fn results_come_out_in_input_order_whatever_the_completion_order() {
    let mut c = Coordinator::new(vec![plan(3)]);
    c.join(1, 2);
    let tasks = ids(&c.assign(1));
    c.complete(1, tasks[2].0, 5, output("2")).unwrap();
    c.complete(1, tasks[1].0, 5, output("1")).unwrap();
    assert!(c.take_ready().is_empty(), "task 0 is still running");
    c.complete(1, tasks[0].0, 5, output("0")).unwrap();
    let ready: Vec<u64> = c.take_ready().iter().map(|f| f.task.index).collect();
    assert_eq!(ready, [0, 1, 2]);
    assert!(c.is_complete());
}

#[test]
fn a_later_stage_waits_for_the_earlier_one() {
    let mut c = Coordinator::new(vec![plan(1), plan(1)]);
    c.join(1, 1);
    let tasks = ids(&c.assign(1));
    c.complete(1, tasks[1].0, 5, output("1")).unwrap();
    assert!(c.take_ready().is_empty());
    c.complete(1, tasks[0].0, 5, output("0")).unwrap();
    assert_eq!(c.take_ready().len(), 2);
}

#[test]
fn tasks_wait_until_enough_workers_have_joined_then_run_on_whoever_is_left() {
    let mut c = Coordinator::new(vec![plan(8)]);
    c.wait_for_workers(2);
    c.join(1, 1);
    assert!(c.assign(1).is_empty(), "one worker of two");
    c.join(2, 1);
    assert_eq!(ids(&c.assign(1)).len(), 2);
    assert_eq!(ids(&c.assign(2)).len(), 2);
    c.leave(2);
    c.leave(1);
    c.join(3, 1);
    assert_eq!(
        ids(&c.assign(3)).len(),
        2,
        "the wait is over once it was met"
    );
}

#[test]
fn the_window_follows_the_pace_the_server_sees_not_the_pace_workers_claim() {
    let mut c = Coordinator::new(vec![plan(1_000_000)]);
    c.join(1, 1);
    c.join(2, 1);
    let mut now = 0;
    // Worker 1 answers within 10 µs of server time but claims a second per task;
    // worker 2 takes a second and claims 10 µs.
    for (worker, took, claimed, rounds) in [(1, 10, 1_000_000, 400), (2, 1_000_000, 10, 3)] {
        for _ in 0..rounds {
            for (id, _) in ids(&c.assign(worker)) {
                now += took;
                c.set_clock(now);
                c.complete(worker, id, claimed, output("0")).unwrap();
            }
        }
    }
    assert_eq!(ids(&c.assign(1)).len(), MAX_PER_CORE);
    assert_eq!(ids(&c.assign(2)).len(), MIN_PER_CORE);
}

#[test]
fn scarce_work_goes_to_faster_workers_first() {
    let mut c = Coordinator::new(vec![plan(6)]);
    c.join(1, 4);
    c.join(2, 4);
    c.claim(1, 3000.0);
    c.claim(2, 1000.0);
    // Room for 16, work for 6: the slow worker asks first but gets a quarter.
    assert_eq!(ids(&c.assign(2)).len(), 2);
    assert!(woke_all(&mut c), "the others must be woken for the rest");
    let fast = ids(&c.assign(1)).len() + ids(&c.assign(1)).len();
    assert_eq!(fast, 4);
    assert!(c.assign(2).is_empty());
}

#[test]
fn answers_from_the_wrong_worker_are_violations() {
    let mut c = Coordinator::new(vec![plan(1)]);
    c.join(1, 1);
    c.join(2, 1);
    let (id, _) = ids(&c.assign(1))[0];
    assert_eq!(
        c.complete(2, id, 1, output("0")),
        Err(Violation::UnknownAttempt(id))
    );
    c.complete(1, id, 1, output("0")).unwrap();
    assert_eq!(
        c.complete(1, id, 1, output("0")),
        Err(Violation::UnknownAttempt(id))
    );
}

#[test]
fn retries_passed_over_wake_nobody() {
    // Found by the simulator: a worker passing over a retry it may not run put it back as if
    // it were new work, woke every connection, and that one looked again, forever.
    let mut c = Coordinator::new(vec![plan(1)]);
    c.join(1, 1);
    c.join(2, 1);
    let (id, failed) = ids(&c.assign(1))[0];
    c.complete(1, id, 5, panic()).unwrap();
    assert!(woke_all(&mut c), "the retry is new work");
    assert!(c.assign(1).is_empty(), "it failed on worker 1");
    assert!(!woke_all(&mut c), "the retry was put back: nothing new");
    assert_eq!(tasks(&c.assign(2)), [failed], "it waits for worker 2");
}

#[test]
fn a_worker_that_finds_less_than_its_share_wakes_nobody() {
    // Found by the simulator: a worker whose share left work over woke the others for it even
    // when it took none (nothing there was for it), and they woke it again, forever.
    let mut c = Coordinator::new(vec![plan(3)]);
    c.join(1, 2);
    for (id, _) in ids(&c.assign(1)) {
        c.complete(1, id, 5, panic()).unwrap();
    }
    c.join(2, 1);
    c.take_effects();
    // Three retries, room for six: worker 1's share is two, but it may run none of them.
    assert!(c.assign(1).is_empty());
    assert!(
        !woke_all(&mut c),
        "it took nothing: nothing is left for the others"
    );
    // Worker 2 takes its share, and leaves the rest to the others.
    assert_eq!(ids(&c.assign(2)).len(), 1);
    assert!(woke_all(&mut c));
}
