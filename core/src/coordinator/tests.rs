//! The coordinator's examples.

use super::*;

/// The records `c` asked to journal since its effects were last taken (taking them).
fn journal(c: &mut Coordinator) -> Vec<Record> {
    c.take_effects()
        .into_iter()
        .filter_map(|effect| match effect {
            Effect::Journal(record) => Some(record),
            _ => None,
        })
        .collect()
}

/// The attempts `c` asked `worker` to stop since its effects were last taken (taking them).
fn cancels(c: &mut Coordinator, worker: WorkerId) -> Vec<AttemptId> {
    c.take_effects()
        .into_iter()
        .filter_map(|effect| match effect {
            Effect::Cancel {
                worker: w,
                attempts,
            } if w == worker => Some(attempts),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Whether `c` asked to wake every connection since its effects were last taken (taking
/// them).
fn woke_all(c: &mut Coordinator) -> bool {
    c.take_effects()
        .iter()
        .any(|effect| matches!(effect, Effect::Wake(Wake::All)))
}

fn output(text: &str) -> Result<Box<RawJson>, TaskFailure> {
    Ok(RawJson::from_string(text.to_owned()).unwrap())
}

fn panic() -> Result<Box<RawJson>, TaskFailure> {
    Err(TaskFailure {
        kind: FailureKind::Panic,
        message: "boom".into(),
    })
}

fn plan(tasks: u64) -> StagePlan {
    StagePlan {
        name: "s".into(),
        tasks,
        max_attempts: 3,
        feed: Feed::Inputs,
        stop_after: 1,
        stoppable: false,
        explore: None,
        keep: Keep::Ordered,
        replicate: Replicate::Off,
        quorum: 2,
        deadline: None,
        fuel: 1_000_000_000,
        timeout: 60_000_000,
    }
}

fn ids(assignments: &[Assignment]) -> Vec<(AttemptId, TaskRef)> {
    assignments
        .iter()
        .flat_map(|a| {
            a.tasks.iter().map(|&(id, index)| {
                (
                    id,
                    TaskRef {
                        stage: a.stage,
                        index,
                    },
                )
            })
        })
        .collect()
}

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

fn fed(tasks: u64, feed: Feed) -> StagePlan {
    StagePlan {
        name: "d".into(),
        tasks,
        max_attempts: 1,
        feed,
        stop_after: 1,
        stoppable: false,
        explore: None,
        keep: Keep::Ordered,
        replicate: Replicate::Off,
        quorum: 2,
        deadline: None,
        fuel: 1_000_000_000,
        timeout: 60_000_000,
    }
}

/// Runs every assignable task on worker 1, answering with `answer(task, input values)`.
fn run_all(c: &mut Coordinator, answer: impl Fn(TaskRef, &Coordinator) -> Outcome) {
    loop {
        let tasks = ids(&c.assign(1));
        if tasks.is_empty() {
            return;
        }
        for (id, task) in tasks {
            let outcome = answer(task, c);
            c.complete(1, id, 5, outcome).unwrap();
        }
    }
}

#[test]
fn a_mapped_stage_starts_as_soon_as_its_item_exists() {
    let mut c = Coordinator::new(vec![plan(3), fed(3, Feed::Items(vec![0]))]);
    c.join(1, 1);
    let first = ids(&c.assign(1));
    assert!(
        first.iter().all(|(_, t)| t.stage == 0),
        "nothing downstream is ready yet"
    );
    c.complete(1, first[0].0, 5, output("10")).unwrap();
    let next = ids(&c.assign(1));
    assert_eq!(
        next[0].1,
        TaskRef { stage: 1, index: 0 },
        "downstream task 0 goes first"
    );
    assert_eq!(c.item(0, 0).unwrap().get(), "10");
    assert!(c.item(0, 1).is_none());
}

#[test]
fn a_zip_waits_for_every_part_and_a_failed_part_fails_the_task() {
    let once = StagePlan {
        max_attempts: 1,
        ..plan(2)
    };
    let mut c = Coordinator::new(vec![once, plan(2), fed(2, Feed::Items(vec![0, 1]))]);
    c.join(1, 8);
    let tasks = ids(&c.assign(1));
    assert_eq!(tasks.len(), 4);
    c.complete(1, tasks[0].0, 5, output("1")).unwrap();
    assert!(c.assign(1).is_empty(), "item 0 of stage 1 is missing");
    c.complete(1, tasks[2].0, 5, output("2")).unwrap();
    assert_eq!(ids(&c.assign(1))[0].1, TaskRef { stage: 2, index: 0 });
    c.complete(1, tasks[1].0, 5, panic()).unwrap();
    c.complete(1, tasks[3].0, 5, output("3")).unwrap();
    assert!(c.assign(1).is_empty(), "task 1 of the zip cannot run");
    let failed = c.result_of(2, 1).unwrap().as_ref().unwrap_err();
    assert_eq!(failed.kind, FailureKind::Upstream);
    assert!(
        failed.message.contains("task 1 of stage \"s\""),
        "{}",
        failed.message
    );
}

#[test]
fn a_reduce_tree_has_a_fixed_shape() {
    for fan_in in [2, 3, 5] {
        let mut c = Coordinator::new(vec![plan(7), fed(7, Feed::Reduce { stage: 0, fan_in })]);
        c.join(1, 4);
        run_all(&mut c, |task, c| {
            if task.stage == 0 {
                return output(&(task.index + 1).to_string());
            }
            let values: Vec<u64> = c
                .group(task)
                .iter()
                .map(|v| v.get().parse().unwrap())
                .collect();
            output(&values.iter().sum::<u64>().to_string())
        });
        let ready = c.take_ready();
        let total = ready.iter().find(|f| f.task.stage == 1).unwrap();
        assert_eq!(
            total.outcome.as_ref().unwrap().get(),
            "28",
            "fan-in {fan_in}"
        );
        assert!(c.is_complete());
    }
}

#[test]
fn a_reduce_of_one_item_needs_no_task_and_a_failed_item_fails_it() {
    let mut c = Coordinator::new(vec![
        plan(1),
        fed(
            1,
            Feed::Reduce {
                stage: 0,
                fan_in: 2,
            },
        ),
    ]);
    c.join(1, 1);
    run_all(&mut c, |_, _| output("5"));
    assert_eq!(c.take_ready()[1].outcome.as_ref().unwrap().get(), "5");

    let mut c = Coordinator::new(vec![
        StagePlan {
            max_attempts: 1,
            ..plan(4)
        },
        fed(
            4,
            Feed::Reduce {
                stage: 0,
                fan_in: 2,
            },
        ),
    ]);
    c.join(1, 4);
    run_all(&mut c, |task, _| {
        if task == (TaskRef { stage: 0, index: 2 }) {
            panic()
        } else {
            output("1")
        }
    });
    let ready = c.take_ready();
    let total = ready[4].outcome.as_ref().unwrap_err();
    assert_eq!(total.kind, FailureKind::Upstream);
    assert!(c.is_complete());
}

#[test]
fn a_goal_met_stops_the_stage_and_cancels_what_runs() {
    let mut c = Coordinator::new(vec![
        StagePlan {
            stop_after: 2,
            stoppable: true,
            ..plan(1000)
        },
        plan(3),
    ]);
    c.join(1, 2);
    c.join(2, 2);
    let on_one = ids(&c.assign(1));
    let on_two = ids(&c.assign(2));
    c.complete_with(1, on_one[0].0, 0, 5, output("\"a\""), true)
        .unwrap();
    assert!(c.stopped(0).is_none(), "two goals are needed");
    c.complete_with(1, on_one[1].0, 0, 5, output("1"), false)
        .unwrap();
    c.complete_with(2, on_two[2].0, 0, 5, output("\"b\""), true)
        .unwrap();
    assert!(
        c.stopped(0)
            .unwrap()
            .contains("2 output(s), the last from task 6")
    );
    // Worker 2's other stage-0 task is cancelled; its late answer is ignored.
    let cancelled: Vec<AttemptId> = on_two
        .iter()
        .filter(|(_, t)| t.stage == 0 && t.index != 6)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(cancels(&mut c, 2), cancelled);
    assert!(cancels(&mut c, 2).is_empty());
    c.complete(2, cancelled[0], 5, output("9")).unwrap();
    // Only stage 1 is handed out now.
    run_all(&mut c, |_, _| output("0"));
    let lines: Vec<(usize, u64)> = c
        .take_ready()
        .iter()
        .map(|f| (f.task.stage, f.task.index))
        .collect();
    assert_eq!(lines, [(0, 0), (0, 1), (0, 6), (1, 0), (1, 1), (1, 2)]);
    assert!(c.is_complete());
    assert_eq!(c.counts().stopped, 1000 - 3);
}

#[test]
fn an_explore_stage_grows_until_nothing_is_pending_and_runs_each_input_once() {
    let mut c = Coordinator::new(vec![StagePlan {
        explore: Some(6),
        ..plan(1)
    }]);
    c.seed(0, ["1".to_owned()]);
    c.join(1, 1);
    // Each n discovers n + 1 and n + 2 (and 1 again, which was seen).
    run_all(&mut c, |task, c| {
        let n = if task.index == 0 {
            1
        } else {
            c.discovered(0, task.index - 1)
                .unwrap()
                .get()
                .parse()
                .unwrap()
        };
        output(&format!(
            r#"{{"output":{},"next":[1,{},{}]}}"#,
            n * 10,
            n + 1,
            n + 2
        ))
    });
    let outputs: Vec<String> = c
        .take_ready()
        .iter()
        .map(|f| f.outcome.as_ref().unwrap().get().to_owned())
        .collect();
    assert_eq!(outputs, ["10", "20", "30", "40", "50", "60"]);
    assert!(c.is_complete());
    assert!(c.dropped(0) > 0, "the bound of 6 tasks was reached");
    assert_eq!(c.total_lines(), 6);
}

#[test]
fn results_are_dropped_once_read_and_written() {
    // Stage 0 is read by stage 1 and not written; stage 1 is written.
    let mut c = Coordinator::new(vec![
        StagePlan {
            keep: Keep::Nothing,
            ..plan(50)
        },
        fed(50, Feed::Items(vec![0])),
    ]);
    c.join(1, 4);
    run_all(&mut c, |task, c| {
        if task.stage == 0 {
            return output(&task.index.to_string());
        }
        output(c.item(0, task.index).unwrap().get())
    });
    assert_eq!(
        c.kept(),
        100,
        "stage 0 waits for the writer of stage 1 (its input)"
    );
    let ready = c.take_ready();
    assert_eq!(ready.len(), 50);
    assert_eq!(ready[7].items[0].as_ref().unwrap().get(), "7");
    assert_eq!(c.kept(), 0, "nothing is kept once written");
    assert!(c.is_complete());
}

#[test]
fn a_stage_added_late_replays_what_its_source_has_and_release_frees_it() {
    let mut c = Coordinator::default();
    let squares = c.add_stage(StagePlan {
        keep: Keep::All,
        ..plan(4)
    });
    c.join(1, 4);
    run_all(&mut c, |task, _| {
        output(&(task.index * task.index).to_string())
    });
    assert!(c.is_stage_complete(squares));
    assert_eq!(c.log(squares).len(), 4);

    let total = c.add_stage(StagePlan {
        keep: Keep::All,
        ..fed(
            4,
            Feed::Reduce {
                stage: squares,
                fan_in: 2,
            },
        )
    });
    let plus = c.add_stage(StagePlan {
        keep: Keep::All,
        ..fed(4, Feed::Items(vec![squares]))
    });
    run_all(&mut c, |task, c| {
        let values: Vec<u64> = if task.stage == total {
            c.group(task)
                .iter()
                .map(|v| v.get().parse().unwrap())
                .collect()
        } else {
            vec![
                c.item(squares, task.index)
                    .unwrap()
                    .get()
                    .parse::<u64>()
                    .unwrap(),
                1,
            ]
        };
        output(&values.iter().sum::<u64>().to_string())
    });
    assert_eq!(c.result_of(total, 0).unwrap().as_ref().unwrap().get(), "14");
    let plus: Vec<&str> = c
        .results(plus)
        .map(|(_, o)| o.as_ref().unwrap().get())
        .collect();
    assert_eq!(plus, ["1", "2", "5", "10"]);
    assert_eq!(c.kept(), 9);
    c.release_stage(squares);
    assert_eq!(c.kept(), 5, "the readers were done with every square");
}

#[test]
fn a_reduce_of_a_stopped_stage_folds_what_it_found() {
    let mut c = Coordinator::new(vec![
        StagePlan {
            stoppable: true,
            keep: Keep::Nothing,
            ..plan(100)
        },
        fed(
            100,
            Feed::Reduce {
                stage: 0,
                fan_in: 2,
            },
        ),
    ]);
    assert!(!c.is_dense(0));
    c.join(1, 1);
    // Tasks 0 and 1 finish; task 1 meets the goal: 2 items to fold, 98 never run.
    let tasks = ids(&c.assign(1));
    c.complete(1, tasks[0].0, 5, output("3")).unwrap();
    c.complete_with(1, tasks[1].0, 0, 5, output("4"), true)
        .unwrap();
    assert!(c.stopped(0).is_some());
    run_all(&mut c, |task, c| {
        assert_eq!(task.stage, 1);
        let sum: u64 = c
            .group(task)
            .iter()
            .map(|v| v.get().parse::<u64>().unwrap())
            .sum();
        output(&sum.to_string())
    });
    let ready = c.take_ready();
    assert_eq!(ready.last().unwrap().outcome.as_ref().unwrap().get(), "7");
    assert_eq!(c.tasks(1), 2);
    assert_eq!(c.counts().stopped, 98);
    assert!(c.is_complete());
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
fn a_replicated_answer_needs_a_quorum_and_a_dissenter_is_untrusted_and_revoked() {
    let mut c = Coordinator::new(vec![StagePlan {
        replicate: Replicate::Fraction(0.5),
        ..plan(40)
    }]);
    c.rng = 7 | 1;
    for worker in 1..=3 {
        c.join(worker, 4);
    }
    // Worker 3 lies about every task (adds 1); 1 and 2 are honest.
    run_all_on(&mut c, &[1, 2, 3], |worker, task| {
        let honest = task.index * 10;
        output(&(honest + u64::from(worker == 3)).to_string())
    });
    assert!(c.is_stage_complete(0));
    let counts = c.counts();
    assert!(counts.replicas > 0);
    assert_eq!(counts.untrusted, 1);
    assert!(!c.record(3).unwrap().trusted);
    assert!(c.record(3).unwrap().note.unwrap().contains("disagreed"));
    assert!(counts.revoked > 0, "{counts:?}");
    let ready = c.take_ready();
    assert_eq!(ready.len(), 40);
    for finished in &ready {
        let output = finished.outcome.as_ref().unwrap().get();
        assert_eq!(
            output,
            (finished.task.index * 10).to_string(),
            "{finished:?}"
        );
    }
    assert!(ready.iter().any(|f| f.check == Check::Replicated(2)));
    assert!(ready.iter().any(|f| f.check == Check::Unchecked));
}

#[test]
fn a_replicated_stage_is_released_only_once_complete() {
    let mut c = Coordinator::new(vec![
        StagePlan {
            replicate: Replicate::Fraction(1.0),
            keep: Keep::Nothing,
            ..plan(2)
        },
        fed(2, Feed::Items(vec![0])),
    ]);
    c.join(1, 1);
    c.join(2, 1);
    let first = ids(&c.assign(1));
    c.complete(1, first[0].0, 5, output("3")).unwrap();
    assert_eq!(c.counts().replicas, 1);
    let next = ids(&c.assign(1));
    assert!(
        next.iter().all(|(_, t)| t.stage == 0),
        "no downstream task yet"
    );
    c.complete(1, next[0].0, 5, output("4")).unwrap();
    run_all_on(&mut c, &[1, 2], |_, task| {
        output(&(task.index + 3).to_string())
    });
    let ready = c.take_ready();
    assert_eq!(ready.len(), 2, "{ready:?}");
    let inputs: Vec<&str> = ready
        .iter()
        .map(|f| f.items[0].as_ref().unwrap().get())
        .collect();
    assert_eq!(
        inputs,
        ["3", "4"],
        "the replicated outputs fed the next stage"
    );
    assert!(c.is_complete());
}

#[test]
fn adaptive_replication_checks_new_workers_more_than_proven_ones() {
    let mut c = Coordinator::new(vec![StagePlan {
        replicate: Replicate::Adaptive,
        ..plan(2000)
    }]);
    c.rng = 3 | 1;
    c.join(1, 8);
    c.join(2, 8);
    run_all_on(&mut c, &[1, 2], |_, task| output(&task.index.to_string()));
    assert!(c.is_stage_complete(0));
    let replicas = c.counts().replicas;
    // Every first answer is checked, then fewer and fewer, never under 5%.
    assert!(replicas >= 100, "{replicas}");
    assert!(replicas < 600, "{replicas}");
    assert!(c.record(1).unwrap().agreed > 20);
}

#[test]
fn a_verifier_rejection_retries_elsewhere_and_untrusts_the_liar_once_proven() {
    let mut c = Coordinator::new(vec![plan(1)]);
    c.join(1, 1);
    c.join(2, 1);
    let (id, _) = ids(&c.assign(1))[0];
    c.reject(1, id, 5, "the verifier returned false".into())
        .unwrap();
    assert!(c.record(1).unwrap().trusted, "not proven yet");
    assert!(c.assign(1).is_empty(), "the retry goes to the other worker");
    let (id, _) = ids(&c.assign(2))[0];
    let answer = Answer {
        fuel: 1,
        micros: 5,
        outcome: output("1"),
        stop: false,
        verified: true,
        capped: false,
    };
    c.answer(2, id, answer).unwrap();
    assert!(!c.record(1).unwrap().trusted);
    let ready = c.take_ready();
    assert_eq!(ready[0].check, Check::Verified);
    assert_eq!(c.counts().rejected, 1);
}

/// Runs every assignable task on `workers` in turn until none is left, answering with
/// `answer(worker, task)`.
fn run_all_on(
    c: &mut Coordinator,
    workers: &[WorkerId],
    answer: impl Fn(WorkerId, TaskRef) -> Outcome,
) {
    loop {
        let mut any = false;
        for &worker in workers {
            for (id, task) in ids(&c.assign(worker)) {
                any = true;
                let outcome = answer(worker, task);
                let answer = Answer {
                    fuel: 0,
                    micros: 5,
                    outcome,
                    stop: false,
                    verified: false,
                    capped: false,
                };
                c.answer(worker, id, answer).unwrap();
            }
        }
        if !any {
            return;
        }
    }
}

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

#[test]
fn a_promise_sees_a_replicated_stage_only_once_it_is_released() {
    let mut c = Coordinator::new(vec![StagePlan {
        replicate: Replicate::Fraction(1.0),
        keep: Keep::All,
        ..plan(3)
    }]);
    c.join(1, 1);
    c.join(2, 1);
    for (id, task) in ids(&c.assign(1)) {
        c.complete(1, id, 5, output(&task.index.to_string()))
            .unwrap();
    }
    for (id, task) in ids(&c.assign(2)) {
        c.complete(2, id, 5, output(&task.index.to_string()))
            .unwrap();
    }
    assert!(
        c.log(0).is_empty(),
        "two tasks are agreed, but the stage is not complete"
    );
    run_all_on(&mut c, &[1, 2], |_, task| output(&task.index.to_string()));
    assert_eq!(c.log(0).len(), 3);
    assert_eq!(c.results(0).count(), 3);
}

/// A line as the writer would see it: stage, index, and output or failure.
fn line(f: &Finished) -> String {
    let outcome = match &f.outcome {
        Ok(output) => output.get().to_owned(),
        Err(failure) => failure.to_string(),
    };
    format!("{}/{} {outcome} {}", f.task.stage, f.task.index, f.check)
}

/// Stages 0 (inputs, some failing once), 1 (a map of 0), 2 (a reduce of 1), 3 (explore), 4
/// (stops after 2 goals).
fn replay_plans() -> Vec<StagePlan> {
    vec![
        plan(60),
        fed(60, Feed::Items(vec![0])),
        fed(
            60,
            Feed::Reduce {
                stage: 1,
                fan_in: 4,
            },
        ),
        StagePlan {
            explore: Some(25),
            ..plan(1)
        },
        StagePlan {
            stop_after: 2,
            stoppable: true,
            ..plan(50)
        },
    ]
}

fn replay_coordinator() -> Coordinator {
    let mut c = Coordinator::new(replay_plans());
    c.seed(3, ["1".to_owned()]);
    c
}

/// Runs `c` to the end on two workers, answering in an order `seed` shuffles, and
/// returns the lines it writes and the tasks the workers ran.
fn drive(c: &mut Coordinator, seed: u64) -> (Vec<String>, Vec<TaskRef>) {
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    c.join(1, 3);
    c.join(2, 3);
    let mut pending = Vec::new();
    let mut lines = Vec::new();
    let mut ran = Vec::new();
    let mut failed_once = HashSet::new();
    loop {
        for worker in [1, 2] {
            for (id, task) in ids(&c.assign(worker)) {
                pending.push((worker, id, task));
            }
        }
        lines.extend(c.take_ready().iter().map(line));
        if pending.is_empty() {
            break;
        }
        let at = (next() % pending.len() as u64) as usize;
        let (worker, id, task) = pending.swap_remove(at);
        let n = |text: &RawJson| text.get().parse::<u64>().unwrap();
        let (outcome, stop) = match task.stage {
            // Some tasks fail on their first attempt (and are retried).
            0 if task.index % 13 == 5 && failed_once.insert(task) => (panic(), false),
            0 => (output(&(task.index * task.index).to_string()), false),
            1 => (
                output(&(n(c.item(0, task.index).unwrap()) + 1).to_string()),
                false,
            ),
            2 => {
                let sum: u64 = c.group(task).into_iter().map(n).sum();
                (output(&sum.to_string()), false)
            }
            3 => {
                let input = match task.index {
                    0 => 1,
                    i => n(c.discovered(3, i - 1).unwrap()),
                };
                let text = format!(
                    r#"{{"output":{},"next":[{},{}]}}"#,
                    input * 3,
                    (input + 1) % 20,
                    (input * 2) % 20
                );
                (output(&text), false)
            }
            _ => (output(&task.index.to_string()), task.index % 10 == 9),
        };
        if c.attempt_task(worker, id).is_some() {
            ran.push(task);
        }
        c.complete_with(worker, id, 0, 5, outcome, stop).unwrap();
    }
    lines.extend(c.take_ready().iter().map(line));
    assert!(c.is_complete(), "{:?}", c.counts());
    (lines, ran)
}

/// The lines of the stages whose results do not depend on completion order (every one but
/// the explore and the stopping stage), and the explore stage's outputs as a set.
fn order_free(lines: &[String]) -> (Vec<&String>, std::collections::BTreeSet<&str>) {
    let fixed = lines
        .iter()
        .filter(|l| ["0/", "1/", "2/"].iter().any(|p| l.starts_with(p)))
        .collect();
    let explored = lines
        .iter()
        .filter(|l| l.starts_with("3/"))
        .map(|l| l.split(' ').nth(1).unwrap())
        .collect();
    (fixed, explored)
}

#[test]
fn a_journal_cut_anywhere_replays_to_the_same_results_without_running_them_again() {
    let mut a = replay_coordinator();
    a.set_journaling(true);
    let (expected, _) = drive(&mut a, 0x1234_5678);
    a.set_journaling(false);
    let records: Vec<Record> = journal(&mut a).into_iter().collect();
    assert!(records.iter().any(|r| matches!(r, Record::Goal(_))));
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::Discovered { .. }))
    );
    let mut finals: Vec<TaskRef> = records
        .iter()
        .filter_map(|r| match r {
            Record::Result { task, .. } => Some(*task),
            _ => None,
        })
        .collect();
    let journaled = finals.len();
    finals.sort_unstable();
    finals.dedup();
    assert_eq!(finals.len(), journaled, "each task is final once");
    let n = records.len();
    for cut in [0, 1, n / 5, n / 3, n / 2, 2 * n / 3, n - 1, n] {
        let mut b = replay_coordinator();
        let journaled: Vec<TaskRef> = records[..cut]
            .iter()
            .filter_map(|r| match r {
                Record::Result { task, .. } => Some(*task),
                _ => None,
            })
            .collect();
        for record in records[..cut].iter().cloned() {
            b.restore(record);
        }
        // Stage 2's inner tree values are journaled but are not results: only its one
        // result, the root, is.
        let outside = journaled.iter().filter(|task| task.stage != 2).count();
        let root = u64::from(b.is_stage_complete(2));
        assert_eq!(b.counts().restored, outside as u64 + root, "cut {cut}");
        let (lines, ran) = drive(&mut b, cut as u64 * 7919 + 3);
        for task in &ran {
            assert!(!journaled.contains(task), "cut {cut}: {task:?} ran again");
        }
        assert_eq!(order_free(&lines), order_free(&expected), "cut {cut}");
        let goals_journaled = records[..cut]
            .iter()
            .filter(|r| matches!(r, Record::Goal(_)))
            .count();
        let stage4 = |lines: &[String]| -> Vec<String> {
            lines
                .iter()
                .filter(|l| l.starts_with("4/"))
                .cloned()
                .collect()
        };
        if goals_journaled == 2 {
            assert_eq!(stage4(&lines), stage4(&expected), "cut {cut}");
        }
        assert!(b.stopped(4).is_some());
    }
}

#[test]
fn a_replayed_revocation_runs_the_liars_task_again() {
    let mut a = Coordinator::new(vec![StagePlan {
        replicate: Replicate::Fraction(0.5),
        ..plan(40)
    }]);
    a.rng = 7 | 1;
    a.set_journaling(true);
    for worker in 1..=3 {
        a.join(worker, 4);
    }
    // Worker 3 lies; the stage is held until complete, so nothing is written before.
    let lie = |worker: WorkerId, task: TaskRef| {
        output(&(task.index * 10 + u64::from(worker == 3)).to_string())
    };
    run_all_on(&mut a, &[1, 2, 3], lie);
    assert!(a.counts().revoked > 0);
    let records: Vec<Record> = journal(&mut a).into_iter().collect();
    let first = records
        .iter()
        .position(|r| matches!(r, Record::Revoked(_)))
        .unwrap();
    let revoked = first
        + records[first..]
            .iter()
            .take_while(|r| matches!(r, Record::Revoked(_)))
            .count()
        - 1;
    // Cut just after the liar's results were revoked: those tasks are not final any
    // more.
    let mut b = Coordinator::new(vec![StagePlan {
        replicate: Replicate::Fraction(0.5),
        ..plan(40)
    }]);
    for record in records[..=revoked].iter().cloned() {
        b.restore(record);
    }
    let Record::Revoked(task) = records[revoked] else {
        unreachable!()
    };
    assert!(b.result_of(0, task.index).is_none());
    b.join(1, 4);
    b.join(2, 4);
    run_all_on(&mut b, &[1, 2], lie);
    let outputs: Vec<String> = b
        .take_ready()
        .iter()
        .map(|f| f.outcome.as_ref().unwrap().get().to_owned())
        .collect();
    let honest: Vec<String> = (0..40).map(|i| (i * 10).to_string()).collect();
    assert_eq!(outputs, honest);
}

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
