//! Where each stage's tasks get their inputs, resolved upstream first (a stage reading
//! another needs to know how many outputs it has), with the types of every edge checked.

use super::graph::Graph;
use super::inputs;
use super::schema::StageFile;
use super::{Fault, ReadFile};
use crate::Source;
use crate::manifest::task_fit::check_reducer;
use crate::manifest::types::{self, Signature, Upstream};

/// Each stage's source and number of tasks, in manifest order.
pub(super) fn resolve(
    stages: &[StageFile],
    graph: &Graph,
    read: &ReadFile<'_>,
) -> Result<Vec<(Source, u64)>, Fault> {
    // What each stage outputs, for the type check of the stages that read it.
    let outputs: Vec<Upstream> = stages
        .iter()
        .zip(&graph.tasks)
        .map(|(stage, (_, _, info))| Upstream {
            name: stage.name.clone(),
            output: Signature::of(info).output(stage.explore.is_some()),
        })
        .collect();
    let mut resolved: Vec<Option<(Source, u64)>> = (0..stages.len()).map(|_| None).collect();
    for &i in &graph.order {
        let stage = &stages[i];
        let key = |field: &str| format!("stages[{i}].{field}");
        // How many outputs a stage has: one for a reduce, one per task otherwise.
        let count = |index: usize| match resolved[index].as_ref().expect("upstream first") {
            (Source::Reduce { .. }, _) => 1,
            (_, tasks) => *tasks,
        };
        let info = &graph.tasks[i].2;
        let check = stage.check_types.unwrap_or(true);
        let (source, count) = match (&stage.inputs, &stage.reduce) {
            (_, Some(reduce)) => {
                let fan_in = reduce.fan_in.unwrap_or(2);
                check_reducer(info, fan_in).map_err(|error| {
                    let field = if fan_in < 2 { "reduce.fan_in" } else { "task" };
                    Fault::new(key(field), error.to_string())
                })?;
                let folded = graph.find(&reduce.stage).expect("checked");
                (
                    Source::Reduce {
                        stage: folded,
                        fan_in,
                    },
                    count(folded),
                )
            }
            (Some(inputs), None) => {
                let find = |name: &str| graph.find(name);
                inputs::source(inputs, read, info, check, &find, &count)
                    .map_err(|why| Fault::new(key("inputs"), why))?
            }
            (None, None) => unreachable!("checked by the graph"),
        };
        if check {
            types::check_feed(info, &source, stage.explore.is_some(), true, &|stage| {
                outputs[stage].clone()
            })
            .map_err(|error| {
                Fault::new(format!("stages[{i}] {:?}", stage.name), error.to_string())
            })?;
        }
        resolved[i] = Some((source, count));
    }
    Ok(resolved
        .into_iter()
        .map(|source| source.expect("every stage resolved"))
        .collect())
}
