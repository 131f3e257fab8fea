//! Volunteers pausing and resuming.

use super::*;

#[test]
fn a_paused_workers_tasks_go_to_others_at_once_and_it_gets_none_until_it_resumes() {
    let mut c = Coordinator::new(vec![plan(4)]);
    c.join(1, 1);
    c.identify(1, "pauser", None);
    c.join(2, 1);
    c.identify(2, "other", None);
    let on_one = ids(&c.assign(1));
    assert_eq!(tasks_of(&on_one), [task(0, 0), task(0, 1)]);
    let _ = c.take_effects();
    c.pause(1);
    assert!(c.is_paused(1));
    assert!(woke_all(&mut c), "the others are told there is work");
    assert_eq!(c.running_on(1), 0);
    assert!(c.assign(1).is_empty(), "a paused worker gets nothing");
    let on_two = ids(&c.assign(2));
    assert_eq!(
        tasks_of(&on_two),
        [task(0, 0), task(0, 1)],
        "its tasks go first, in order, without waiting for a deadline"
    );
    // A result that crossed the pause on the wire is ignored, not a violation.
    assert_eq!(c.complete(1, on_one[0].0, 1, output("7")), Ok(()));
    for (id, _) in on_two {
        c.complete(2, id, 1, output("1")).unwrap();
    }
    c.resume(1);
    assert!(!c.is_paused(1));
    let again = ids(&c.assign(1));
    // Work is scarce: it takes its share, and worker 2 the rest.
    assert_eq!(tasks_of(&again), [task(0, 2)], "it works again");
    for (id, _) in again {
        c.complete(1, id, 1, output("1")).unwrap();
    }
    run_all_on(&mut c, &[1, 2], |_, _| output("1"));
    let results = c.take_ready();
    assert_eq!(results.len(), 4);
    assert!(
        results
            .iter()
            .all(|r| r.outcome.as_ref().unwrap().get() == "1"),
        "the ignored late answer made nothing final"
    );
    assert_eq!(c.counts().failed, 0);
}

#[test]
fn pausing_is_neither_a_loss_nor_a_strike() {
    let mut c = Coordinator::new(vec![plan(1)]);
    // One worker pausing over and over with the task: it is never failed for killing
    // workers, and the identity keeps its record clean.
    c.join(1, 1);
    c.identify(1, "pauser", None);
    for _ in 0..=MAX_LOST {
        assert_eq!(ids(&c.assign(1)).len(), 1);
        c.pause(1);
        c.resume(1);
    }
    assert!(c.take_ready().is_empty(), "nothing failed");
    let record = c.record(1).unwrap();
    assert!(record.trusted);
    let pauser = c.fleet.intern("pauser");
    assert_eq!(c.fleet.credibility(pauser).strikes, 0);
    // It finishes the task in the end.
    let (id, _) = ids(&c.assign(1))[0];
    c.complete(1, id, 1, output("3")).unwrap();
    assert_eq!(c.take_ready().len(), 1);
}

#[test]
fn a_paused_worker_holds_none_of_its_identitys_allowance_and_no_share_of_scarce_work() {
    let mut c = Coordinator::new(vec![plan(2)]);
    c.join(1, 8);
    c.identify(1, "a", None);
    c.join(2, 8);
    c.identify(2, "b", None);
    c.pause(2);
    // Work is scarce: worker 1 would otherwise leave worker 2 its share.
    assert_eq!(tasks(&c.assign(1)), [task(0, 0), task(0, 1)]);
    assert!(c.record(2).unwrap().paused);
    assert!(!c.record(1).unwrap().paused);
}

#[test]
fn a_copy_running_elsewhere_carries_on_when_its_worker_pauses() {
    let mut c = Coordinator::new(vec![plan(1)]);
    c.join(1, 1);
    c.identify(1, "a", None);
    let mine = ids(&c.assign(1));
    assert_eq!(mine.len(), 1);
    c.pause(1);
    c.join(2, 1);
    c.identify(2, "b", None);
    let theirs = ids(&c.assign(2));
    assert_eq!(tasks_of(&theirs), tasks_of(&mine));
    // Pausing and leaving after that changes nothing for worker 2's attempt.
    c.leave(1);
    assert_eq!(c.running_on(2), 1);
    c.complete(2, theirs[0].0, 1, output("5")).unwrap();
    assert_eq!(c.take_ready().len(), 1);
}

#[test]
fn pausing_or_resuming_twice_or_an_unknown_worker_changes_nothing() {
    let mut c = Coordinator::new(vec![plan(2)]);
    c.join(1, 1);
    c.pause(9);
    c.resume(9);
    c.resume(1);
    assert!(!c.is_paused(1));
    let held = ids(&c.assign(1));
    c.pause(1);
    c.pause(1);
    assert_eq!(c.counts().requeued, held.len() as u64);
    c.resume(1);
    c.resume(1);
    assert_eq!(tasks_of(&ids(&c.assign(1))), tasks_of(&held));
}
