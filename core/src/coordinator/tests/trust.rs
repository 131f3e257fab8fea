//! Trust: an untrusted worker's results, and trust across connections and restarts.

use super::*;

#[test]
fn an_untrusted_workers_results_are_refused() {
    let mut c = Coordinator::new(vec![StagePlan {
        replicate: Replicate::Fraction(1.0),
        ..plan(12)
    }]);
    for worker in 1..=3 {
        c.join(worker, 2);
    }
    // Worker 3 takes tasks and sits on them; the others answer honestly.
    let held = ids(&c.assign(3));
    assert!(!held.is_empty());
    let honest = |_: WorkerId, task: TaskRef| output(&(task.index * 10).to_string());
    // Catch worker 3 lying: its first answer is checked (always, here) and outvoted.
    let (lie_id, _) = held[0];
    c.complete(3, lie_id, 5, output("12345")).unwrap();
    run_all_on(&mut c, &[1, 2], honest);
    assert!(!c.record(3).unwrap().trusted, "{:?}", c.record(3));
    // Its other attempts were cancelled: their answers are refused and change nothing,
    // a second answer to one is a violation, and it gets no more work.
    for &(id, task) in &held[1..] {
        c.complete(3, id, 5, output("999")).unwrap();
        assert_ne!(
            c.result_of(0, task.index)
                .and_then(|r| r.as_ref().ok())
                .map(|o| o.get()),
            Some("999")
        );
    }
    assert_eq!(
        c.complete(3, lie_id, 5, output("1")),
        Err(Violation::UnknownAttempt(lie_id))
    );
    assert!(c.assign(3).is_empty());
    run_all_on(&mut c, &[1, 2], honest);
    let outputs: Vec<String> = c
        .take_ready()
        .iter()
        .map(|f| f.outcome.as_ref().unwrap().get().to_owned())
        .collect();
    let expected: Vec<String> = (0..12).map(|i| (i * 10).to_string()).collect();
    assert_eq!(outputs, expected);
}

#[test]
fn trust_follows_the_identity_across_connections_and_restarts() {
    let liar_key = "aa".repeat(32);
    let mut c = Coordinator::new(vec![StagePlan {
        replicate: Replicate::Fraction(1.0),
        ..plan(20)
    }]);
    c.set_journaling(true);
    for worker in 1..=3 {
        c.join(worker, 2);
    }
    assert!(c.identify(1, &"11".repeat(32), None));
    assert!(c.identify(2, &"22".repeat(32), None));
    assert!(c.identify(3, &liar_key, None));
    // A second connection of honest identity 1: replicas never go to both.
    c.join(4, 2);
    assert!(c.identify(4, &"11".repeat(32), None));
    let given: std::cell::RefCell<HashMap<TaskRef, Vec<WorkerId>>> = Default::default();
    run_all_on(&mut c, &[1, 2, 3, 4], |worker, task| {
        given.borrow_mut().entry(task).or_default().push(worker);
        output(&(task.index + u64::from(worker == 3)).to_string())
    });
    for (task, workers) in given.borrow().iter() {
        let ones = workers.iter().filter(|&&w| w == 1 || w == 4).count();
        assert!(ones <= 1, "{task:?} went to identity 1 twice: {workers:?}");
    }
    assert!(!c.record(3).unwrap().trusted);
    // The liar reconnects: same identity, no work.
    c.leave(3);
    c.join(5, 2);
    assert!(!c.identify(5, &liar_key, None));
    assert!(c.assign(5).is_empty());
    // A server restarted on the journal knows it too (here for a new job: the trust
    // records are what matters).
    let identities: Vec<Record> = journal(&mut c)
        .into_iter()
        .filter(|record| matches!(record, Record::Identity { .. }))
        .collect();
    assert!(!identities.is_empty());
    let mut restarted = Coordinator::new(vec![plan(5)]);
    for record in identities {
        restarted.restore(record);
    }
    restarted.join(1, 2);
    assert!(!restarted.identify(1, &liar_key, None));
    assert!(restarted.assign(1).is_empty());
    restarted.join(2, 2);
    assert!(restarted.identify(2, &"22".repeat(32), None));
    assert!(
        restarted.record(2).unwrap().agreed > 0,
        "credibility is kept"
    );
    assert!(!restarted.assign(2).is_empty());
}
