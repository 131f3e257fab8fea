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
