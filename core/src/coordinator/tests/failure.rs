//! Failures: when one is final, and the server's own workers.

use super::*;

#[test]
fn a_failure_confirmed_by_another_identity_is_final() {
    let mut c = Coordinator::new(vec![StagePlan {
        max_attempts: 2,
        ..plan(1)
    }]);
    c.join(1, 1);
    c.join(2, 1);
    let (id, _) = ids(&c.assign(1))[0];
    c.complete(1, id, 1, panic()).unwrap();
    assert!(
        c.assign(1).is_empty(),
        "worker 1 failed it and worker 2 has not tried"
    );
    let (id, _) = ids(&c.assign(2))[0];
    c.complete(2, id, 1, panic()).unwrap();
    let finished = c.take_ready();
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].attempts, 2);
    assert_eq!(finished[0].outcome.as_ref().unwrap_err().message, "boom");
    assert_eq!(
        c.counts(),
        Counts {
            succeeded: 0,
            failed: 1,
            retried: 1,
            requeued: 0,
            stopped: 0,
            speculated: 0,
            ..Counts::default()
        }
    );
}

#[test]
fn a_failure_waits_for_another_identity_to_confirm_it() {
    let mut c = Coordinator::new(vec![plan(1)]);
    c.join(1, 1);
    let (id, _) = ids(&c.assign(1))[0];
    c.complete(1, id, 1, panic()).unwrap();
    assert!(
        c.assign(1).is_empty(),
        "the same identity again proves nothing"
    );
    assert!(
        c.take_ready().is_empty(),
        "one identity's failure is not final"
    );
    // Another identity answers: the failure was not the task's.
    c.join(2, 1);
    let (id, _) = ids(&c.assign(2))[0];
    c.complete(2, id, 1, output("1")).unwrap();
    assert!(c.take_ready()[0].outcome.is_ok());
    let identity = c.fleet.identity(1).unwrap();
    assert_eq!(
        c.fleet.credibility(identity).strikes,
        1,
        "its failure was refuted"
    );
}

#[test]
fn the_servers_own_workers_deterministic_failures_are_final_at_once() {
    let mut c = Coordinator::new(vec![StagePlan {
        max_attempts: 3,
        ..plan(2)
    }]);
    c.own_identity("local");
    c.join(1, 1);
    c.identify(1, "local", None);
    let assigned = ids(&c.assign(1));
    c.complete(1, assigned[0].0, 1, panic()).unwrap();
    let timeout = Err(TaskFailure {
        kind: FailureKind::Timeout,
        message: "slow".into(),
    });
    c.complete(1, assigned[1].0, 1, timeout).unwrap();
    let ready = c.take_ready();
    assert_eq!(ready.len(), 1, "the panic is final, the timeout runs again");
    assert_eq!(
        ready[0].outcome.as_ref().unwrap_err().kind,
        FailureKind::Panic
    );
    assert_eq!(ready[0].attempts, 1);
    assert_eq!(ids(&c.assign(1)).len(), 1, "its own worker may try again");
}

#[test]
fn every_deterministic_failure_of_the_servers_own_workers_takes_one_attempt() {
    let kinds = [
        FailureKind::Guest,
        FailureKind::Panic,
        FailureKind::Trap,
        FailureKind::OutOfFuel,
        FailureKind::MemoryLimit,
        FailureKind::StackOverflow,
        FailureKind::BadOutput,
        FailureKind::Rejected,
    ];
    for kind in kinds {
        let mut c = Coordinator::new(vec![StagePlan {
            max_attempts: 5,
            ..plan(1)
        }]);
        c.own_identity("local");
        c.join(1, 1);
        c.identify(1, "local", None);
        let (id, _) = ids(&c.assign(1))[0];
        let failure = TaskFailure {
            kind,
            message: "no".into(),
        };
        c.complete(1, id, 1, Err(failure)).unwrap();
        let ready = c.take_ready();
        assert_eq!(ready.len(), 1, "{kind:?} is final at once");
        assert_eq!(ready[0].attempts, 1, "{kind:?}");
        assert_eq!(ready[0].check, Check::Unchecked, "{kind:?}");
        assert_eq!(c.counts().retried, 0, "{kind:?}");
    }
    // A remote identity's stack overflow waits for a second identity, as any failure.
    let mut c = Coordinator::new(vec![StagePlan {
        max_attempts: 5,
        ..plan(1)
    }]);
    c.join(1, 1);
    c.identify(1, "remote", None);
    let (id, _) = ids(&c.assign(1))[0];
    let overflow = || {
        Err(TaskFailure {
            kind: FailureKind::StackOverflow,
            message: "deep".into(),
        })
    };
    c.complete(1, id, 1, overflow()).unwrap();
    assert!(c.take_ready().is_empty());
    c.join(2, 1);
    c.identify(2, "another", None);
    let (id, _) = ids(&c.assign(2))[0];
    c.complete(2, id, 1, overflow()).unwrap();
    let ready = c.take_ready();
    assert_eq!(ready[0].attempts, 2);
    assert_eq!(ready[0].check, Check::Replicated(2));
}

#[test]
fn a_failure_under_replication_needs_the_quorum_and_a_capped_one_says_nothing() {
    let mut c = Coordinator::new(vec![StagePlan {
        replicate: Replicate::Fraction(1.0),
        quorum: 3,
        max_attempts: 5,
        ..plan(1)
    }]);
    let fail = |c: &mut Coordinator, worker: WorkerId, capped: bool| {
        let (id, _) = ids(&c.assign(worker))[0];
        let answer = Answer {
            fuel: 7,
            micros: 1,
            outcome: Err(TaskFailure {
                kind: FailureKind::OutOfFuel,
                message: "out of fuel".into(),
            }),
            stop: false,
            verified: false,
            capped,
        };
        c.answer(worker, id, answer).unwrap();
    };
    for worker in 1..=4 {
        c.join(worker, 1);
    }
    fail(&mut c, 1, false);
    fail(&mut c, 2, true);
    fail(&mut c, 3, false);
    assert!(
        c.take_ready().is_empty(),
        "two agree, one was capped: not 3"
    );
    fail(&mut c, 4, false);
    let ready = c.take_ready();
    assert_eq!(ready[0].check, Check::Replicated(3));
    assert_eq!(
        ready[0].outcome.as_ref().unwrap_err().kind,
        FailureKind::OutOfFuel
    );
}

#[test]
fn out_of_attempts_the_failure_most_identities_reported_stands_not_the_last() {
    // Found by the simulator: the last failure stood, which a hostile identity may make up.
    let mut c = Coordinator::new(vec![StagePlan {
        replicate: Replicate::Fraction(1.0),
        quorum: 3,
        ..plan(1)
    }]);
    for worker in 1..=3 {
        c.join(worker, 1);
    }
    // It fails after three identities; a failure is final on its own once three agree. Two
    // agree, and a third makes one up.
    let reports = [
        (1, panic()),
        (2, panic()),
        (3, failure(FailureKind::Guest, "made up")),
    ];
    for (worker, report) in reports {
        let (id, _) = ids(&c.assign(worker))[0];
        c.complete(worker, id, 1, report).unwrap();
    }
    let ready = c.take_ready();
    assert_eq!(ready.len(), 1);
    let failed = ready[0].outcome.as_ref().unwrap_err();
    assert_eq!(
        (failed.kind, failed.message.as_str()),
        (FailureKind::Panic, "boom")
    );
    assert_eq!(ready[0].check, Check::Unchecked, "no quorum confirmed it");
}

#[test]
fn a_tie_between_failures_goes_to_the_reporters_with_more_accepted_answers() {
    // Found by the simulator: on a tie, the first failure reported stood, whoever made it up.
    let mut c = Coordinator::new(vec![plan(1)]);
    let proven = crate::Credibility {
        accepted: 50,
        ..Default::default()
    };
    for (worker, key) in [(1, "new"), (2, "proven"), (3, "newer")] {
        c.join(worker, 1);
        c.identify(worker, key, (key == "proven").then_some(&proven));
    }
    // Three identities, three different failures: the proven identity's stands, neither the
    // first nor the last.
    for (worker, message) in [(1, "first"), (2, "proven"), (3, "last")] {
        let (id, _) = ids(&c.assign(worker))[0];
        c.complete(worker, id, 1, failure(FailureKind::Panic, message))
            .unwrap();
    }
    let ready = c.take_ready();
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].outcome.as_ref().unwrap_err().message, "proven");
}

/// A one-task stage with a 1 s deadline: worker 1, slow, runs the task in time, and two
/// faster workers copy it in turn and fail it the same way. Their failures wait for worker 1's
/// answer.
fn failed_twice_while_worker_1_runs_it() -> Coordinator {
    let mut c = Coordinator::new(vec![StagePlan {
        deadline: Some(1_000_000),
        ..plan(1)
    }]);
    c.join(1, 1);
    c.claim(1, 1000.0);
    let (_, task) = ids(&c.assign(1))[0];
    for copier in [2, 3] {
        c.join(copier, 1);
        c.claim(copier, 4000.0);
        let (copy, copied) = ids(&c.assign(copier))[0];
        assert_eq!(copied, task);
        c.complete(copier, copy, 5, panic()).unwrap();
    }
    assert!(
        c.take_ready().is_empty(),
        "worker 1 runs it in time: its answer decides"
    );
    c
}

/// The failure workers 2 and 3 confirmed is final.
fn confirmed(c: &mut Coordinator) {
    let ready = c.take_ready();
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].outcome.as_ref().unwrap_err().message, "boom");
    assert_eq!(ready[0].check, Check::Replicated(2));
    assert!(c.is_complete());
}

#[test]
fn failures_reported_while_a_copy_ran_are_judged_when_it_goes_overdue() {
    // Found by the simulator: once the attempt they waited for was overdue, the task went
    // back to the queue, where no connected identity that had not failed it could take it.
    let mut c = failed_twice_while_worker_1_runs_it();
    c.tick(OVERDUE);
    confirmed(&mut c);
}

#[test]
fn failures_reported_while_a_copy_ran_are_judged_when_its_worker_leaves() {
    // Found by the simulator: the same, when the worker running the attempt they waited for
    // left.
    let mut c = failed_twice_while_worker_1_runs_it();
    c.leave(1);
    confirmed(&mut c);
}

#[test]
fn a_task_retried_twice_does_not_run_again_once_final() {
    // Found by the simulator: a failure retried twice was queued twice; once final, it ran
    // again from the second entry.
    let mut c = Coordinator::new(vec![StagePlan {
        deadline: Some(1_000_000),
        ..plan(2)
    }]);
    c.join(1, 1);
    c.join(2, 1);
    c.claim(1, 1000.0);
    c.claim(2, 4000.0);
    let (original, task) = ids(&c.assign(1))[0];
    let (other, _) = ids(&c.assign(2))[0];
    // At 2 s, worker 2 is idle and copies worker 1's task; at 3 s, worker 1's attempt is
    // overdue (the copy runs in time: the task is not given out again).
    c.set_clock(2_000_000);
    c.complete(2, other, 5, output("1")).unwrap();
    let (copy, copied) = ids(&c.assign(2))[0];
    assert_eq!(copied, task);
    c.tick(OVERDUE);
    assert_eq!(c.counts().expired, 0);
    // The copy fails: retried. The late original fails otherwise: retried, not queued again.
    c.complete(2, copy, 5, panic()).unwrap();
    let timeout = failure(FailureKind::Timeout, "slow");
    c.complete(1, original, 5, timeout).unwrap();
    assert_eq!(c.queued(), 1);
    // Worker 3 confirms worker 2's failure: final.
    c.join(3, 1);
    let (id, _) = ids(&c.assign(3))[0];
    c.complete(3, id, 5, panic()).unwrap();
    let ready = c.take_ready();
    let failed = ready.iter().find(|f| f.task == task).unwrap();
    assert_eq!(failed.check, Check::Replicated(2));
    c.join(4, 1);
    assert!(c.assign(4).is_empty(), "the final task is in no queue");
    assert_eq!(c.queued(), 0);
    assert_eq!(c.counts().failed, 1);
    assert!(c.is_complete());
}
