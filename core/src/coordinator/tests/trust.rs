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

/// The sum of the values reduce task `task` folds, plus `lie`.
fn fold(c: &Coordinator, task: TaskRef, lie: u64) -> Outcome {
    let sum: u64 = c
        .group(task)
        .iter()
        .map(|value| value.get().parse::<u64>().unwrap())
        .sum();
    output(&(sum + lie).to_string())
}

/// The tasks `records` revoke, in order.
fn revoked(records: &[Record]) -> Vec<TaskRef> {
    records
        .iter()
        .filter_map(|record| match record {
            Record::Revoked(task) => Some(*task),
            _ => None,
        })
        .collect()
}

#[test]
fn a_liar_caught_before_a_replicated_reduce_completes_has_its_groups_revoked() {
    // Found by the simulator: a liar's group values stood once it was caught, and the
    // reduce's result with them.
    //
    // Stage 1 sums stage 0's items 1..=8 by twos: tasks 0-3 fold the items, 4 and 5 fold
    // those, 6 is the root. It is replicated, so held until complete, but rarely checked (1%:
    // none of its answers here is drawn). Stage 2 catches the liar.
    let mut c = Coordinator::new(vec![
        StagePlan {
            keep: Keep::Nothing,
            ..plan(8)
        },
        StagePlan {
            replicate: Replicate::Fraction(0.01),
            ..fed(
                8,
                Feed::Reduce {
                    stage: 0,
                    fan_in: 2,
                },
            )
        },
        StagePlan {
            replicate: Replicate::Fraction(1.0),
            ..plan(1)
        },
    ]);
    c.set_journaling(true);
    c.join(1, 4);
    for (id, item) in ids(&c.assign(1)) {
        assert_eq!(item.stage, 0);
        c.complete(1, id, 5, output(&(item.index + 1).to_string()))
            .unwrap();
    }
    // Worker 3 folds items 1 and 2 into 4 (a lie); worker 1 folds the rest, then the groups
    // above them (4 + 7 = 11 from the lie), and answers stage 2.
    c.join(3, 1);
    let (id, group) = ids(&c.assign(3))[0];
    assert_eq!(group, task(1, 0));
    c.complete(3, id, 5, fold(&c, group, 1)).unwrap();
    let honest = ids(&c.assign(1));
    assert_eq!(
        tasks_of(&honest),
        [task(1, 1), task(1, 2), task(1, 3), task(2, 0)]
    );
    for (id, task) in honest {
        let answer = if task.stage == 1 {
            fold(&c, task, 0)
        } else {
            output("0")
        };
        c.complete(1, id, 5, answer).unwrap();
    }
    let above = ids(&c.assign(1));
    assert_eq!(tasks_of(&above), [task(1, 4), task(1, 5)]);
    for (id, task) in above {
        c.complete(1, id, 5, fold(&c, task, 0)).unwrap();
    }
    // Worker 3 lies about stage 2 and worker 2 agrees with worker 1: worker 3 is caught.
    let (id, checked) = ids(&c.assign(3))[0];
    assert_eq!(checked, task(2, 0));
    c.complete(3, id, 5, output("1")).unwrap();
    c.join(2, 1);
    let (id, checked) = ids(&c.assign(2))[0];
    assert_eq!(checked, task(2, 0));
    c.complete(2, id, 5, output("0")).unwrap();
    assert!(!c.record(3).unwrap().trusted);
    // Its group is revoked, and the group folded from it; the root was not folded yet.
    assert_eq!(revoked(&journal(&mut c)), [task(1, 0), task(1, 4)]);
    run_all(&mut c, |task, c| fold(c, task, 0));
    let ready = c.take_ready();
    let root = ready.iter().find(|f| f.task.stage == 1).unwrap();
    assert_eq!(root.outcome.as_ref().unwrap().get(), "36");
    assert_eq!(c.counts().replicas, 2, "only stage 2 was checked");
    assert!(c.is_complete());
}

#[test]
fn a_replicated_result_folded_from_a_liars_group_is_accepted_then_withdrawn() {
    // Found by the simulator: the dissenter of a replicated root was untrusted before the
    // root was accepted, so the root, folded from the dissenter's group, stood; the group was
    // folded again later, and the reduce was final twice.
    //
    // Stage 1 sums items 1..=4 by twos: tasks 0 and 1 fold the items, 2 is the root. Its
    // checks are adaptive: workers 1 and 3, with long records, are rarely checked (none of
    // their answers is drawn here); worker 2, new, always is.
    let mut c = Coordinator::new(vec![
        StagePlan {
            keep: Keep::Nothing,
            ..plan(4)
        },
        StagePlan {
            replicate: Replicate::Adaptive,
            ..fed(
                4,
                Feed::Reduce {
                    stage: 0,
                    fan_in: 2,
                },
            )
        },
    ]);
    c.set_journaling(true);
    let record = crate::Credibility {
        agreed: 1000,
        ..Default::default()
    };
    c.join(1, 2);
    c.identify(1, "one", Some(&record));
    for (id, item) in ids(&c.assign(1)) {
        c.complete(1, id, 5, output(&(item.index + 1).to_string()))
            .unwrap();
    }
    c.join(3, 1);
    c.identify(3, "liar", Some(&record));
    c.join(2, 1);
    c.identify(2, "new", None);
    // Worker 3 folds items 1 and 2 into 4 (a lie), worker 1 folds 3 and 4 into 7.
    for (worker, lie) in [(3, 1), (1, 0)] {
        let (id, group) = ids(&c.assign(worker))[0];
        assert_eq!(group.stage, 1);
        c.complete(worker, id, 5, fold(&c, group, lie)).unwrap();
    }
    // The root: worker 2 folds 4 + 7 = 11 and is checked; worker 3 says 12, worker 1 11.
    for (worker, lie) in [(2, 0), (3, 1), (1, 0)] {
        let (id, root) = ids(&c.assign(worker))[0];
        assert_eq!(root, task(1, 2));
        c.complete(worker, id, 5, fold(&c, root, lie)).unwrap();
    }
    // The root was accepted, then withdrawn with worker 3's group when it was caught.
    assert!(!c.record(3).unwrap().trusted);
    let records = journal(&mut c);
    let accepted = records
        .iter()
        .position(|record| matches!(record, Record::Result { task: t, .. } if *t == task(1, 2)))
        .expect("the root was accepted");
    let revoking = records
        .iter()
        .position(|record| matches!(record, Record::Revoked(_)))
        .expect("revoked");
    assert!(accepted < revoking, "accepted first: {records:?}");
    assert_eq!(revoked(&records), [task(1, 0), task(1, 2)]);
    assert!(!c.is_stage_complete(1));
    run_all_reading(&mut c, &[1, 2], |_, task, c| fold(c, task, 0));
    let ready = c.take_ready();
    assert_eq!(ready.len(), 1, "{ready:?}");
    assert_eq!(ready[0].outcome.as_ref().unwrap().get(), "10");
    assert_eq!(c.done(1), 1);
    assert!(c.is_complete());
}
