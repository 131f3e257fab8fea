//! The journal: a run cut anywhere and replayed reaches the same results.

use super::*;

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
