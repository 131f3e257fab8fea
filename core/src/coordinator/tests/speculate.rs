//! Copies of tasks running on slow workers or straggling.

use super::*;

#[test]
fn an_idle_faster_worker_copies_a_slow_workers_task_and_the_first_answer_wins() {
    let mut c = Coordinator::new(vec![plan(2)]);
    c.join(1, 1);
    c.join(2, 1);
    c.claim(1, 1000.0);
    c.claim(2, 4000.0);
    let slow = ids(&c.assign(1));
    let fast = ids(&c.assign(2));
    assert_eq!((slow.len(), fast.len()), (1, 1));
    c.complete(2, fast[0].0, 5, output("\"fast\"")).unwrap();
    let copy = ids(&c.assign(2));
    assert_eq!(copy.len(), 1);
    assert_eq!(copy[0].1, slow[0].1, "a copy of the slow worker's task");
    assert!(
        c.assign(1).is_empty(),
        "the slow worker gets no copy of anything"
    );
    c.complete(2, copy[0].0, 5, output("\"copy\"")).unwrap();
    assert_eq!(cancels(&mut c, 1), [slow[0].0], "the original is cancelled");
    c.complete(1, slow[0].0, 5, output("\"late\"")).unwrap();
    let outputs: Vec<String> = c
        .take_ready()
        .iter()
        .map(|f| f.outcome.as_ref().unwrap().get().to_owned())
        .collect();
    let copied = slow[0].1.index as usize;
    assert_eq!(outputs[copied], "\"copy\"");
    assert_eq!(outputs.len(), 2);
    assert!(c.is_complete());
    assert_eq!((c.counts().speculated, c.counts().succeeded), (1, 2));
    assert_eq!(c.running(), 0);
}

#[test]
fn a_failed_or_lost_copy_leaves_the_other_attempt_running() {
    let mut c = Coordinator::new(vec![plan(1), plan(1)]);
    c.join(1, 1);
    c.join(2, 1);
    c.claim(1, 1000.0);
    c.claim(2, 4000.0);
    let slow = ids(&c.assign(1));
    let fast = ids(&c.assign(2));
    c.complete(2, fast[0].0, 5, output("1")).unwrap();
    let copy = ids(&c.assign(2));
    c.complete(2, copy[0].0, 5, panic()).unwrap();
    assert_eq!(c.counts().retried, 0, "the original still runs");
    assert!(c.assign(2).is_empty(), "no copy of a task that failed here");
    c.join(3, 1);
    c.claim(3, 4000.0);
    let copy = ids(&c.assign(3));
    assert_eq!(copy.len(), 1);
    c.leave(3);
    assert_eq!(c.counts().requeued, 0, "the original still runs");
    c.complete(1, slow[0].0, 5, output("0")).unwrap();
    assert!(c.take_ready().iter().all(|f| f.outcome.is_ok()));
    assert!(c.is_complete());
}

#[test]
fn a_task_running_far_longer_than_its_stage_usually_takes_is_copied() {
    let mut c = Coordinator::new(vec![plan(3)]);
    c.join(1, 1);
    c.join(2, 2);
    let first = ids(&c.assign(1));
    let second = ids(&c.assign(2));
    assert_eq!(first.len() + second.len(), 3);
    c.set_clock(100_000);
    for &(id, _) in &second {
        c.complete(2, id, 100_000, output("0")).unwrap();
    }
    assert!(
        c.assign(2).is_empty(),
        "100 ms is not yet twice the usual 100 ms"
    );
    c.set_clock(250_000);
    let copy = ids(&c.assign(2));
    assert_eq!(copy.len(), 1, "{copy:?}");
    assert_eq!(copy[0].1, first[0].1);
}

#[test]
fn no_copies_between_workers_of_a_speed_or_when_turned_off() {
    for (fast, speculate) in [(1200.0, true), (4000.0, false)] {
        let mut c = Coordinator::new(vec![plan(2)]);
        c.set_speculation(speculate);
        c.join(1, 1);
        c.join(2, 1);
        c.claim(1, 1000.0);
        c.claim(2, fast);
        let _slow = ids(&c.assign(1));
        let done = ids(&c.assign(2));
        c.complete(2, done[0].0, 5, output("1")).unwrap();
        assert!(c.assign(2).is_empty());
    }
}

#[test]
fn a_copy_of_a_replica_never_goes_to_an_identity_already_asked() {
    // Found by the simulator: an idle fast worker copied the replica checking its own answer,
    // agreed with itself, and its lie was accepted as replicated.
    let mut c = Coordinator::new(vec![StagePlan {
        replicate: Replicate::Fraction(1.0),
        ..plan(1)
    }]);
    // Workers 1 and 3 are one fast identity, worker 2 a slow one.
    for (worker, key, score) in [
        (1, "fast", 4000.0),
        (2, "slow", 1000.0),
        (3, "fast", 4000.0),
    ] {
        c.join(worker, 1);
        c.identify(worker, key, None);
        c.claim(worker, score);
    }
    let (first, task) = ids(&c.assign(1))[0];
    c.complete(1, first, 5, output("7")).unwrap();
    assert_eq!(
        tasks(&c.assign(2)),
        [task],
        "the replica, on the slow worker"
    );
    // Idle and faster, the identity that gave the answer may not copy its check.
    assert!(c.assign(1).is_empty());
    assert!(c.assign(3).is_empty());
    // Another fast identity may.
    c.join(4, 1);
    c.identify(4, "other", None);
    c.claim(4, 4000.0);
    assert_eq!(tasks(&c.assign(4)), [task]);
    assert_eq!(c.counts().speculated, 1);
}
