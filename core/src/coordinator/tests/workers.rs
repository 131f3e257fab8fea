//! Workers leaving, being expelled, and identities on many connections or addresses.

use super::*;

#[test]
fn a_lost_workers_tasks_run_elsewhere() {
    let mut c = Coordinator::new(vec![plan(4)]);
    c.join(1, 1);
    c.join(2, 1);
    let on_one = ids(&c.assign(1));
    assert_eq!(on_one.len(), 2);
    c.leave(1);
    let on_two = ids(&c.assign(2));
    let indexes: Vec<u64> = on_two.iter().map(|(_, t)| t.index).collect();
    assert_eq!(indexes, [0, 1], "lost tasks go first");
    assert_eq!(
        c.complete(1, on_one[0].0, 1, output("0")),
        Err(Violation::UnknownAttempt(on_one[0].0))
    );
    assert_eq!(c.counts().requeued, 2);
}

#[test]
fn a_task_that_keeps_killing_workers_fails() {
    let mut c = Coordinator::new(vec![plan(1)]);
    for worker in 1..=MAX_LOST as u64 {
        c.join(worker, 1);
        assert_eq!(ids(&c.assign(worker)).len(), 1);
        c.leave(worker);
    }
    let finished = c.take_ready();
    assert_eq!(
        finished[0].outcome.as_ref().unwrap_err().kind,
        FailureKind::Worker
    );
}

#[test]
fn one_identity_on_many_connections_can_neither_fail_nor_lose_a_task() {
    let mut c = Coordinator::new(vec![plan(40)]);
    for worker in 1..=3 {
        c.join(worker, 64);
        c.identify(worker, "hostile", None);
    }
    // Its connections share one small allowance, whatever cores they claim.
    let assigned: Vec<(WorkerId, Vec<(AttemptId, TaskRef)>)> = (1..=3)
        .map(|worker| (worker, ids(&c.assign(worker))))
        .collect();
    let held: usize = assigned.iter().map(|(_, tasks)| tasks.len()).sum();
    assert_eq!(held, crate::fleet::START_ALLOWANCE);
    // It says every task panics: none is final, and its connections may not take them
    // again.
    let mut failed = Vec::new();
    for (worker, tasks) in assigned {
        for (id, task) in tasks {
            c.complete(worker, id, 1, panic()).unwrap();
            failed.push(task);
        }
    }
    assert!(c.take_ready().is_empty());
    for worker in 1..=3 {
        let again = ids(&c.assign(worker));
        assert!(
            again.iter().all(|(_, task)| !failed.contains(task)),
            "a task it failed went back to it"
        );
        // ...and it walks away with the rest, three times.
        c.leave(worker);
    }
    assert_eq!(c.counts().failed, 0, "one identity lost thrice is one loss");
    // An honest worker does everything.
    c.join(4, 2);
    c.identify(4, "honest", None);
    run_all_on(&mut c, &[4], |_, _| output("1"));
    let results = c.take_ready();
    assert_eq!(results.len(), 40);
    assert!(results.iter().all(|r| r.outcome.is_ok()));
    let hostile = c.fleet.intern("hostile");
    let hostile = c.fleet.credibility(hostile);
    assert!(hostile.strikes >= 3, "{hostile:?}");
}

#[test]
fn an_identity_that_keeps_letting_work_down_gets_none() {
    let mut c = Coordinator::new(vec![plan(1000)]);
    let mut worker = 0;
    let unreliable = loop {
        worker += 1;
        c.join(worker, 4);
        c.identify(worker, "flaky", None);
        if c.assign(worker).is_empty() {
            break worker;
        }
        c.leave(worker);
        assert!(worker < 100, "never marked");
    };
    assert_eq!(unreliable, crate::fleet::MAX_STRIKES + 1);
    let record = c.record(unreliable).unwrap();
    assert!(!record.trusted);
    assert!(record.note.unwrap().contains("unreliable"));
    assert_eq!(c.counts().failed, 0);
}

#[test]
fn a_task_lost_with_distinct_identities_on_one_address_fails_only_when_addresses_do_not_count() {
    for count_addresses in [false, true] {
        let mut c = Coordinator::new(vec![plan(1)]);
        c.count_addresses(count_addresses);
        for worker in 1..=u64::from(MAX_LOST) {
            c.join(worker, 1);
            c.place(worker, "10.0.0.1");
            assert_eq!(ids(&c.assign(worker)).len(), 1);
            c.leave(worker);
        }
        assert_eq!(c.take_ready().len(), usize::from(!count_addresses));
    }
}

#[test]
fn expelled_workers_do_not_count_towards_failing_a_task() {
    let mut c = Coordinator::new(vec![plan(1)]);
    for worker in 1..=10 {
        c.join(worker, 1);
        assert_eq!(ids(&c.assign(worker)).len(), 1);
        c.expel(worker);
    }
    c.join(11, 1);
    let (id, _) = ids(&c.assign(11))[0];
    c.complete(11, id, 5, output("1")).unwrap();
    assert!(c.take_ready()[0].outcome.is_ok());
    assert_eq!(c.counts().requeued, 10);
}
