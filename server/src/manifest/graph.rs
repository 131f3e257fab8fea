//! How the stages chain: each stage's task, the stages it reads, and an order where every
//! stage comes after those it reads.

use dipla_protocol::ModuleHash;
use dipla_sandbox::abi::TaskInfo;

use super::modules::Guests;
use super::schema::{InputsFile, StageFile};
use super::{Fault, may_stop};

/// The stages' tasks and the order they resolve in.
pub(super) struct Graph {
    /// The stages' names, in manifest order.
    pub names: Vec<String>,
    /// Each stage's task: its module, export and what the module records of it.
    pub tasks: Vec<(ModuleHash, String, TaskInfo)>,
    /// The stages, every one after those it reads.
    pub order: Vec<usize>,
}

impl Graph {
    /// Checks each stage's name, task and the stages it reads, that a zip reads only stages
    /// of known length, and that no stages read each other in a cycle.
    pub fn of(stages: &[StageFile], guests: &Guests<'_>) -> Result<Self, Fault> {
        if stages.is_empty() {
            return Err(Fault::new("stages", "declare at least one [[stages]]"));
        }
        let names: Vec<String> = stages.iter().map(|stage| stage.name.clone()).collect();
        let mut graph = Self {
            names,
            tasks: Vec::new(),
            order: Vec::new(),
        };
        let mut reads = Vec::new();
        for (i, stage) in stages.iter().enumerate() {
            graph.tasks.push(graph.task(i, stage, guests)?);
            reads.push(graph.reads(i, stage)?);
        }
        graph.check_zips(stages)?;
        graph.order = topological_order(&reads).map_err(|cycle| {
            let path: Vec<&str> = cycle.iter().map(|&i| graph.names[i].as_str()).collect();
            Fault::new(
                "stages",
                format!(
                    "the stages read each other in a cycle: {}",
                    path.join(" -> ")
                ),
            )
        })?;
        Ok(graph)
    }

    /// The index of the stage named `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Stage `i`'s name checked, and its task found in its module.
    fn task(
        &self,
        i: usize,
        stage: &StageFile,
        guests: &Guests<'_>,
    ) -> Result<(ModuleHash, String, TaskInfo), Fault> {
        let key = |field: &str| format!("stages[{i}].{field}");
        if stage.name.trim().is_empty() {
            return Err(Fault::new(key("name"), "a stage needs a name"));
        }
        if self.names[..i].contains(&stage.name) {
            return Err(Fault::new(
                key("name"),
                format!("another stage is named {:?}", stage.name),
            ));
        }
        let Some((module_name, export)) = stage.task.split_once('.') else {
            return Err(Fault::new(
                key("task"),
                format!(
                    "{:?} should be \"module.export\", such as \"factor.factorise\"",
                    stage.task
                ),
            ));
        };
        let Some((hash, guest)) = guests.get(module_name) else {
            let known: Vec<_> = guests.keys().copied().collect();
            return Err(Fault::new(
                key("task"),
                format!(
                    "no module named {module_name:?} in [modules] (there is: {})",
                    known.join(", ")
                ),
            ));
        };
        let info = guest
            .check_task(export)
            .map_err(|e| Fault::new(key("task"), format!("module {module_name}: {e}")))?
            .clone();
        Ok((*hash, export.to_owned(), info))
    }

    /// The stages stage `i` reads: by its inputs, or the one it reduces.
    fn reads(&self, i: usize, stage: &StageFile) -> Result<Vec<usize>, Fault> {
        let key = |field: &str| format!("stages[{i}].{field}");
        let mut referenced = Vec::new();
        let mut unknown = None;
        let mut note = |name: &str| match self.find(name) {
            Some(index) => referenced.push(index),
            None => unknown = Some(name.to_owned()),
        };
        match (&stage.inputs, &stage.reduce) {
            (Some(inputs), None) => inputs.stage_refs(&mut note),
            (None, Some(reduce)) => note(&reduce.stage),
            (Some(_), Some(_)) => {
                return Err(Fault::new(
                    key("reduce"),
                    "give either inputs or reduce, not both",
                ));
            }
            (None, None) => {
                return Err(Fault::new(
                    key("inputs"),
                    "give the stage inputs (or a reduce)",
                ));
            }
        }
        if let Some(name) = unknown {
            let field = if stage.reduce.is_some() {
                "reduce"
            } else {
                "inputs"
            };
            return Err(Fault::new(
                key(field),
                format!(
                    "no stage named {name:?} (stages: {})",
                    self.names.join(", ")
                ),
            ));
        }
        Ok(referenced)
    }

    /// A zip matches its parts by index, so each part must have a known length: no stage it
    /// reads may explore or stop early.
    fn check_zips(&self, stages: &[StageFile]) -> Result<(), Fault> {
        for (i, stage) in stages.iter().enumerate() {
            let Some(InputsFile::Zip(parts)) = &stage.inputs else {
                continue;
            };
            for part in parts {
                let InputsFile::Stage(name) = part else {
                    continue;
                };
                let source = self.find(name).expect("checked");
                let why = if stages[source].explore.is_some() {
                    Some("explores")
                } else if may_stop(&self.tasks[source].2) {
                    Some("can stop early")
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err(Fault::new(
                        format!("stages[{i}].inputs"),
                        format!(
                            "stage {name:?} {why}, so its number of outputs is known only at the end and a zip cannot match it by index (map over it, or reduce it)"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The stages in an order where every stage comes after those it reads, or a cycle.
fn topological_order(reads: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    fn visit(
        stage: usize,
        reads: &[Vec<usize>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), Vec<usize>> {
        match marks[stage] {
            Mark::Done => return Ok(()),
            Mark::Visiting => {
                let start = path.iter().position(|&s| s == stage).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(stage);
                return Err(cycle);
            }
            Mark::New => {}
        }
        marks[stage] = Mark::Visiting;
        path.push(stage);
        for &upstream in &reads[stage] {
            visit(upstream, reads, marks, path, order)?;
        }
        path.pop();
        marks[stage] = Mark::Done;
        order.push(stage);
        Ok(())
    }
    let mut marks = vec![Mark::New; reads.len()];
    let mut order = Vec::new();
    for stage in 0..reads.len() {
        visit(stage, reads, &mut marks, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}
