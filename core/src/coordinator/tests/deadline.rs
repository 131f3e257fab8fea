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

#[test]
fn poll_timeout_is_the_soonest_deadline_and_a_tick_past_it_reissues_the_attempt() {
    let mut c = Coordinator::new(vec![StagePlan {
        deadline: Some(1_000_000),
        ..plan(2)
    }]);
    c.set_speculation(false);
    c.join(1, 1);
    c.join(2, 1);
    let early = ids(&c.assign(1));
    c.set_clock(500_000);
    let late = ids(&c.assign(2));
    assert_eq!((early.len(), late.len()), (1, 1));
    // The first instant worker 1's attempt is overdue, not worker 2's.
    let first = 1_000_000 + DEADLINE_GRACE + 1;
    assert_eq!(c.poll_timeout(), Some(first));
    c.take_effects();
    // Just before it, nothing is overdue.
    c.tick(first - 1);
    assert_eq!(c.counts().expired, 0);
    assert!(!woke_all(&mut c));
    assert_eq!(c.poll_timeout(), Some(first));
    c.tick(first);
    assert_eq!(c.counts().expired, 1);
    let effects = c.take_effects();
    assert!(
        effects.iter().any(|effect| matches!(
            effect,
            Effect::Event(Event::Overdue { attempt, task })
                if (*attempt, *task) == early[0]
        )),
        "{effects:?}"
    );
    assert!(
        effects
            .iter()
            .any(|effect| matches!(effect, Effect::Wake(Wake::All))),
        "{effects:?}"
    );
    // Next: worker 2's deadline; its task went back on the queue, for worker 2.
    assert_eq!(c.poll_timeout(), Some(500_000 + first));
    let again = ids(&c.assign(2));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1, early[0].1);
}

#[test]
fn poll_timeout_is_none_when_nothing_runs_and_nothing_may_be_copied() {
    let mut c = Coordinator::new(vec![plan(2)]);
    assert_eq!(c.poll_timeout(), None, "nothing runs yet");
    c.set_speculation(false);
    c.join(1, 1);
    let running = ids(&c.assign(1));
    assert_eq!(running.len(), 2);
    // No deadline in the plan: the task's wall-clock limit.
    assert_eq!(c.poll_timeout(), Some(60_000_000 + DEADLINE_GRACE + 1));
    for (id, _) in running {
        c.complete(1, id, 5, output("1")).unwrap();
    }
    assert!(c.is_stage_complete(0));
    assert_eq!(c.poll_timeout(), None, "nothing runs");
}

#[test]
fn poll_timeout_says_when_a_running_task_becomes_a_straggler_and_a_tick_then_wakes_the_idle() {
    let mut c = Coordinator::new(vec![plan(3)]);
    c.join(1, 1);
    c.join(2, 2);
    let slow = ids(&c.assign(1));
    let fast = ids(&c.assign(2));
    assert_eq!((slow.len(), fast.len()), (1, 2));
    c.set_clock(100_000);
    for &(id, _) in &fast {
        c.complete(2, id, 100_000, output("0")).unwrap();
    }
    // Worker 2 finds nothing to copy yet: worker 1's task runs for as long as the stage's
    // tasks take, and straggles once it has run twice that.
    assert!(c.assign(2).is_empty());
    let straggles = 2 * 100_000 + 1;
    assert_eq!(c.poll_timeout(), Some(straggles));
    c.take_effects();
    c.tick(straggles - 1);
    assert!(!woke_all(&mut c));
    c.tick(straggles);
    assert!(woke_all(&mut c), "idle workers look for copies");
    assert_eq!(
        c.poll_timeout(),
        Some(60_000_000 + DEADLINE_GRACE + 1),
        "only the deadline is left"
    );
    let copy = ids(&c.assign(2));
    assert_eq!(copy.len(), 1);
    assert_eq!(copy[0].1, slow[0].1);
    // Without speculation, a task that may straggle is no reason to be called.
    let mut c = Coordinator::new(vec![plan(3)]);
    c.set_speculation(false);
    c.join(1, 1);
    c.join(2, 2);
    ids(&c.assign(1));
    for (id, _) in ids(&c.assign(2)) {
        c.set_clock(100_000);
        c.complete(2, id, 100_000, output("0")).unwrap();
    }
    assert!(c.assign(2).is_empty());
    assert_eq!(c.poll_timeout(), Some(60_000_000 + DEADLINE_GRACE + 1));
}

/// How worker 2's attempt ends.
type End = fn(&mut Coordinator, AttemptId);

#[test]
fn nothing_waits_on_an_overdue_attempt() {
    // Found by the simulator: a task whose other attempt was overdue waited for its answer
    // (which a silent worker never gives) when the attempt running in time failed, was
    // rejected or left with its worker.
    let ends: [(&str, End); 3] = [
        ("fails it", |c, id| c.complete(2, id, 5, panic()).unwrap()),
        ("is rejected", |c, id| {
            c.reject(2, id, 5, "the verifier returned false".into())
                .unwrap();
        }),
        ("leaves", |c, _| c.leave(2)),
    ];
    for (how, end) in ends {
        let mut c = Coordinator::new(vec![StagePlan {
            deadline: Some(1_000_000),
            ..plan(1)
        }]);
        c.set_speculation(false);
        for worker in 1..=3 {
            c.join(worker, 1);
        }
        // Worker 1 goes silent with the task; once it is overdue, worker 2 runs it too.
        let (_, silent) = ids(&c.assign(1))[0];
        c.tick(OVERDUE);
        let (again, task) = ids(&c.assign(2))[0];
        assert_eq!(task, silent);
        end(&mut c, again);
        assert_eq!(
            tasks(&c.assign(3)),
            [task],
            "worker 2 {how}: the task goes to worker 3"
        );
    }
}

#[test]
fn a_replica_on_a_silent_worker_does_not_hold_up_the_vote() {
    // Found by the simulator: the vote counted an overdue replica as one still to come.
    let mut c = Coordinator::new(vec![StagePlan {
        deadline: Some(1_000_000),
        replicate: Replicate::Fraction(1.0),
        ..plan(1)
    }]);
    c.set_speculation(false);
    for worker in 1..=4 {
        c.join(worker, 1);
    }
    let (first, task) = ids(&c.assign(1))[0];
    c.complete(1, first, 5, output("7")).unwrap();
    // Worker 2 takes the replica and goes silent; once it is overdue, worker 3 runs it and
    // disagrees with worker 1.
    assert_eq!(tasks(&c.assign(2)), [task]);
    c.tick(OVERDUE);
    let (third, _) = ids(&c.assign(3))[0];
    c.complete(3, third, 5, output("8")).unwrap();
    // One more answer is needed, and worker 2's may never come: worker 4 is asked.
    let (fourth, again) = ids(&c.assign(4))[0];
    assert_eq!(again, task);
    c.complete(4, fourth, 5, output("7")).unwrap();
    let ready = c.take_ready();
    assert_eq!(ready[0].outcome.as_ref().unwrap().get(), "7");
    assert_eq!(ready[0].check, Check::Replicated(2));
    assert!(!c.record(3).unwrap().trusted);
}
