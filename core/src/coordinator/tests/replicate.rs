//! Replication and verifiers: quorums, dissenters, adaptive checks, held stages.

use super::*;

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

#[test]
fn a_claimed_goal_counts_only_once_the_quorum_agrees_on_it_claim_included() {
    // Found by the simulator: one worker's claim ended a replicated stage before anyone
    // checked it (a liar could stop any stage), and workers agreeing on an output agreed on
    // the claim too, whatever each said.
    let mut c = Coordinator::new(vec![StagePlan {
        replicate: Replicate::Fraction(1.0),
        stoppable: true,
        ..plan(3)
    }]);
    for worker in 1..=3 {
        c.join(worker, 1);
    }
    let answer = |c: &mut Coordinator, worker: WorkerId, text: &str, stop: bool| {
        let (id, task) = ids(&c.assign(worker))[0];
        c.complete_with(worker, id, 0, 5, output(text), stop)
            .unwrap();
        task
    };
    // Worker 1 claims task 0 meets the goal; workers 2 and 3 give its output without the claim.
    assert_eq!(answer(&mut c, 1, "7", true), task(0, 0));
    assert!(c.stopped(0).is_none(), "one worker's word");
    assert_eq!(answer(&mut c, 2, "7", false), task(0, 0));
    assert!(
        c.take_ready().is_empty(),
        "the same output, another claim: no quorum"
    );
    assert_eq!(answer(&mut c, 3, "7", false), task(0, 0));
    assert!(c.stopped(0).is_none());
    assert!(!c.record(1).unwrap().trusted, "{:?}", c.record(1));
    // Workers 2 and 3 both find task 1 meets the goal: it does.
    assert_eq!(answer(&mut c, 2, "\"goal\"", true), task(0, 1));
    assert!(c.stopped(0).is_none());
    assert_eq!(answer(&mut c, 3, "\"goal\"", true), task(0, 1));
    assert!(c.stopped(0).unwrap().contains("task 1"));
    let ready = c.take_ready();
    assert_eq!(ready.len(), 2);
    assert!(ready.iter().all(|f| f.check == Check::Replicated(2)));
    assert!(c.is_complete());
}

#[test]
fn a_stopped_stage_drops_its_pending_votes() {
    // Found by the simulator: votes still open when a replicated stage stopped stayed; once a
    // liar among their answers was caught, they were decided again and a task of the stopped
    // stage ran once more.
    let mut c = Coordinator::new(vec![StagePlan {
        replicate: Replicate::Fraction(1.0),
        stoppable: true,
        ..plan(2)
    }]);
    c.join(1, 1);
    let first = ids(&c.assign(1));
    assert_eq!(first.len(), 2);
    // Worker 1 answers both; task 0 meets the goal.
    for &(id, task) in first.iter().rev() {
        let goal = task.index == 0;
        let text = if goal { "\"goal\"" } else { "1" };
        c.complete_with(1, id, 0, 5, output(text), goal).unwrap();
    }
    // Worker 3 lies about both: task 0's replica goes first, then task 1's.
    c.join(3, 2);
    let lies = ids(&c.assign(3));
    assert_eq!(tasks_of(&lies), [task(0, 1), task(0, 0)]);
    for &(id, _) in lies.iter().rev() {
        c.complete(3, id, 5, output("666")).unwrap();
    }
    // Worker 2 agrees with worker 1 on task 0: the goal is met, the stage stops, and worker 3
    // is caught. Task 1's vote, with its answer, is dropped, not decided again.
    c.join(2, 1);
    let (id, goal) = ids(&c.assign(2))[0];
    assert_eq!(goal, task(0, 0));
    c.complete_with(2, id, 0, 5, output("\"goal\""), true)
        .unwrap();
    assert!(c.stopped(0).is_some());
    assert!(!c.record(3).unwrap().trusted);
    assert_eq!(c.queued(), 0);
    assert!(c.assign(2).is_empty());
    assert_eq!(c.done(0), 1);
    assert_eq!(c.take_ready().len(), 1);
    assert!(c.is_complete());
}

#[test]
fn a_replicated_explore_stage_queues_only_the_inputs_its_quorum_agreed_on() {
    let mut c = Coordinator::new(vec![StagePlan {
        explore: Some(100),
        replicate: Replicate::Fraction(1.0),
        ..plan(1)
    }]);
    c.seed(0, ["1".to_owned()]);
    for worker in 1..=3 {
        c.join(worker, 1);
    }
    // The liar answers first, with the right output but inputs of its own making.
    let first = ids(&c.assign(3));
    assert_eq!(tasks_of(&first), [task(0, 0)]);
    c.complete(
        3,
        first[0].0,
        5,
        output(r#"{"output":10,"next":[666,667]}"#),
    )
    .unwrap();
    assert!(
        c.discovered(0, 0).is_none(),
        "nothing discovered before the vote"
    );
    assert!(
        !journal(&mut c)
            .iter()
            .any(|record| matches!(record, Record::Discovered { .. })),
        "nor journaled"
    );
    // Two honest replicas agree on the whole answer, its inputs too: the liar is outvoted.
    let honest = r#"{"output":10,"next":[2,3]}"#;
    for worker in [1, 2] {
        let replica = ids(&c.assign(worker));
        assert_eq!(tasks_of(&replica), [task(0, 0)], "worker {worker}");
        c.complete(worker, replica[0].0, 5, output(honest)).unwrap();
    }
    assert!(!c.record(3).unwrap().trusted, "the liar is untrusted");
    let discovered: Vec<&str> = (0..3)
        .filter_map(|n| c.discovered(0, n))
        .map(|input| input.get())
        .collect();
    assert_eq!(discovered, ["2", "3"], "only the agreed inputs");
    // The stage runs the agreed inputs and is released whole.
    run_all_on(&mut c, &[1, 2], |_, task| {
        output(&format!(
            r#"{{"output":{},"next":[]}}"#,
            (task.index + 1) * 10
        ))
    });
    let outputs: Vec<String> = c
        .take_ready()
        .iter()
        .map(|f| f.outcome.as_ref().unwrap().get().to_owned())
        .collect();
    assert_eq!(outputs, ["10", "20", "30"]);
    assert!(c.is_complete());
}
