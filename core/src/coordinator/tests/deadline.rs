//! Deadlines: overdue attempts and their tasks given out again.

use super::*;

#[test]
fn an_overdue_task_goes_to_another_worker_and_the_first_answer_counts_once() {
    let mut c = Coordinator::new(vec![StagePlan {
        deadline: Some(1_000_000),
        ..plan(1)
    }]);
    c.set_speculation(false);
    c.join(1, 1);
    c.join(2, 1);
    let stuck = ids(&c.assign(1));
    assert!(c.assign(2).is_empty());
    c.set_clock(1_000_000 + DEADLINE_GRACE + 1);
    let again = ids(&c.assign(2));
    assert_eq!(again.len(), 1, "overdue: given to worker 2");
    assert_eq!(again[0].1, stuck[0].1);
    assert_eq!(c.counts().expired, 1);
    // The late answer from worker 1 still counts, and worker 2's attempt is cancelled.
    c.complete(1, stuck[0].0, 5, output("1")).unwrap();
    assert_eq!(cancels(&mut c, 2), [again[0].0]);
    c.complete(2, again[0].0, 5, output("1")).unwrap();
    assert_eq!(c.take_ready().len(), 1);
    assert_eq!(c.counts().succeeded, 1, "counted once");
    assert!(c.is_complete());

    // An overdue task still queued when the late answer comes is not run again.
    let mut c = Coordinator::new(vec![StagePlan {
        deadline: Some(1_000_000),
        ..plan(1)
    }]);
    c.join(1, 1);
    let stuck = ids(&c.assign(1));
    c.set_clock(10_000_000);
    assert!(c.assign(1).is_empty(), "not to the worker that has it");
    c.complete(1, stuck[0].0, 5, output("1")).unwrap();
    c.join(2, 1);
    assert!(c.assign(2).is_empty(), "the queued copy was dropped");
    assert_eq!(c.counts().succeeded, 1);
}

#[test]
fn a_task_every_holder_of_which_stalls_goes_out_again_and_again() {
    let mut c = Coordinator::new(vec![StagePlan {
        deadline: Some(1_000_000),
        ..plan(1)
    }]);
    c.set_speculation(false);
    for staller in 1..=3 {
        c.join(staller, 1);
    }
    let first = ids(&c.assign(1));
    let mut now = 1_000_000 + DEADLINE_GRACE + 1;
    c.set_clock(now);
    assert_eq!(ids(&c.assign(2)), [(first[0].0 + 1, first[0].1)]);
    // Two stallers hold it now, both overdue in time: a third gets it.
    now += 1_000_000 + DEADLINE_GRACE + 1;
    c.set_clock(now);
    assert_eq!(
        ids(&c.assign(3)).len(),
        1,
        "reissued though two attempts run"
    );
    assert_eq!(c.counts().expired, 2);
}
