//! Stages reading stages: maps, zips, reduce trees, early stops, explore stages, stages
//! added while the job runs, and results dropped once read.

use super::*;

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
fn a_zip_of_stages_that_read_each_other_is_fed_each_item_once() {
    // Found by the simulator: stage 2 zips stage 0 and stage 1, which maps stage 0; item 1
    // of stage 0 failing reached stage 2 twice (from stage 0, and through stage 1), and its
    // task failed twice.
    let mut c = Coordinator::new(vec![
        StagePlan {
            max_attempts: 1,
            ..plan(2)
        },
        fed(2, Feed::Items(vec![0])),
        fed(2, Feed::Items(vec![0, 1])),
    ]);
    c.join(1, 2);
    run_all(&mut c, |task, _| {
        if task == (TaskRef { stage: 0, index: 1 }) {
            panic()
        } else {
            output("1")
        }
    });
    assert_eq!((c.done(2), c.tasks(2)), (2, 2));
    let lines: Vec<(usize, u64, bool)> = c
        .take_ready()
        .iter()
        .map(|f| (f.task.stage, f.task.index, f.outcome.is_ok()))
        .collect();
    assert_eq!(
        lines,
        [
            (0, 0, true),
            (0, 1, false),
            (1, 0, true),
            (1, 1, false),
            (2, 0, true),
            (2, 1, false)
        ]
    );
    assert_eq!(c.counts().failed, 3);
    assert!(c.is_complete());
}

#[test]
fn a_reduce_of_a_stage_without_tasks_fails_at_once_for_want_of_outputs() {
    // Found by the simulator: it waited forever for a tree of no items.
    let mut c = Coordinator::new(vec![
        plan(0),
        fed(
            0,
            Feed::Reduce {
                stage: 0,
                fan_in: 2,
            },
        ),
    ]);
    assert!(c.is_stage_complete(1), "without any worker");
    let ready = c.take_ready();
    assert_eq!(ready.len(), 1);
    let failed = ready[0].outcome.as_ref().unwrap_err();
    assert_eq!(failed.kind, FailureKind::Upstream);
    assert!(
        failed.message.contains("no outputs to fold"),
        "{}",
        failed.message
    );
    assert!(c.is_complete());
}

#[test]
fn a_reduce_of_one_failed_item_fails_as_upstream() {
    // Found by the simulator: the item's failure was passed on as the reduce's own, unlike
    // a failed item of any larger tree.
    let mut c = Coordinator::new(vec![
        StagePlan {
            max_attempts: 1,
            ..plan(1)
        },
        fed(
            1,
            Feed::Reduce {
                stage: 0,
                fan_in: 2,
            },
        ),
    ]);
    c.join(1, 1);
    run_all(&mut c, |_, _| panic());
    let ready = c.take_ready();
    let failed = ready[1].outcome.as_ref().unwrap_err();
    assert_eq!(failed.kind, FailureKind::Upstream);
    assert!(
        failed.message.contains("task 0 of stage \"s\""),
        "{}",
        failed.message
    );
    assert!(c.is_complete());
}

#[test]
fn items_a_zip_holds_for_tasks_that_never_run_are_let_go() {
    // Found by the simulator: stage 2 zips stages 0 and 1, and stage 0 stops at its first
    // output; stage 1's other items, which no task will read, stayed in memory to the end.
    // They are let go when the stage stops, or as they arrive after.
    for goal_first in [false, true] {
        let mut c = Coordinator::new(vec![
            StagePlan {
                keep: Keep::Nothing,
                stoppable: true,
                ..plan(4)
            },
            StagePlan {
                keep: Keep::Nothing,
                ..plan(4)
            },
            fed(4, Feed::Items(vec![0, 1])),
        ]);
        c.join(1, 4);
        let running = ids(&c.assign(1));
        assert_eq!(running.len(), 8);
        let (goal, _) = running
            .iter()
            .find(|&&(_, task)| task == (TaskRef { stage: 0, index: 0 }))
            .copied()
            .unwrap();
        let meet_goal = |c: &mut Coordinator| {
            c.complete_with(1, goal, 0, 5, output("0"), true).unwrap();
        };
        if goal_first {
            meet_goal(&mut c);
        }
        for &(id, item) in running.iter().filter(|(_, task)| task.stage == 1) {
            c.complete(1, id, 5, output(&item.index.to_string()))
                .unwrap();
        }
        if !goal_first {
            meet_goal(&mut c);
        }
        assert!(c.stopped(0).is_some());
        run_all(&mut c, |_, _| output("0"));
        assert_eq!(c.take_ready().len(), 1, "goal first: {goal_first}");
        assert_eq!(c.kept(), 0, "goal first: {goal_first}");
        assert!(c.is_complete());
    }
}

#[test]
fn a_zip_whose_later_source_stops_early_completes_once_its_fed_tasks_are_done() {
    // Found by the simulator: a zip counted its results against its first source's, and
    // when a later source stopped early, it never completed.
    let mut c = Coordinator::new(vec![
        plan(3),
        StagePlan {
            stoppable: true,
            ..plan(3)
        },
        fed(3, Feed::Items(vec![0, 1])),
    ]);
    c.join(1, 4);
    // Stage 0 finishes; stage 1's task 1 meets the goal (task 2 is cancelled).
    for (id, task) in ids(&c.assign(1)) {
        let stop = task == (TaskRef { stage: 1, index: 1 });
        if task != (TaskRef { stage: 1, index: 2 }) {
            c.complete_with(1, id, 0, 5, output("1"), stop).unwrap();
        }
    }
    assert!(c.stopped(1).is_some());
    let zipped = ids(&c.assign(1));
    assert_eq!(tasks_of(&zipped), [task(2, 0), task(2, 1)]);
    c.complete(1, zipped[0].0, 5, output("2")).unwrap();
    assert!(!c.is_stage_complete(2), "task 1 runs");
    c.complete(1, zipped[1].0, 5, output("2")).unwrap();
    assert!(c.is_stage_complete(2));
    assert_eq!(c.take_ready().len(), 3 + 2 + 2);
    assert!(c.is_complete());
}
