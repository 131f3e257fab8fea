//! Explore stages: tasks that discover new inputs, which the stage runs once each up to its
//! `max_tasks`.

use dipla_protocol::{FailureKind, RawJson, TaskFailure};

use super::Coordinator;
use crate::effect::{Effect, Wake};
use crate::record::Record;
use crate::types::Outcome;

/// An explore task's output `{"output": O, "next": [T, ...]}`, split.
struct Explored {
    output: Box<RawJson>,
    next: Vec<Box<RawJson>>,
}

/// Splits an explore task's output, or says why it is not one.
fn split(output: &RawJson) -> Result<Explored, TaskFailure> {
    #[derive(serde::Deserialize)]
    struct Shape {
        output: Box<RawJson>,
        next: Vec<Box<RawJson>>,
    }
    let Shape { output, next } = serde_json::from_str(output.get()).map_err(|e| TaskFailure {
        kind: FailureKind::BadOutput,
        message: format!("an explore task must return {{\"output\": .., \"next\": [..]}}: {e}"),
    })?;
    Ok(Explored { output, next })
}

/// Checks that an explore task's answer has the shape `{"output": O, "next": [..]}`, keeping
/// it whole: replicas compare all of it (the inputs it discovers too), and its `next` inputs
/// are queued only once the answer is accepted, so no answer that is then outvoted or
/// rejected adds work to the stage.
pub(super) fn checked(output: Box<RawJson>) -> Outcome {
    split(&output)?;
    Ok(output)
}

impl Coordinator {
    /// The accepted output of explore task `task`, checked by [`checked`]: queues the new
    /// inputs it discovered not seen before (up to `max` tasks in the stage) and returns `O`,
    /// the task's output.
    pub(super) fn explored(
        &mut self,
        stage: usize,
        output: Box<RawJson>,
        max: u64,
    ) -> Box<RawJson> {
        let Explored { output, next } = match split(&output) {
            Ok(explored) => explored,
            // Not reached: every answer is checked before it can be accepted.
            Err(_) => return output,
        };
        let state = &mut self.stages[stage];
        let mut grew = false;
        if state.stopped.is_none() {
            for input in next {
                if !state.seen.insert(input.get().to_owned()) {
                    continue;
                }
                if state.plan.tasks >= max {
                    state.dropped += 1;
                    continue;
                }
                if self.journaling {
                    self.effects.push(Effect::Journal(Record::Discovered {
                        stage,
                        input: input.clone(),
                    }));
                }
                state.discovered.push(input);
                state.plan.tasks += 1;
                grew = true;
            }
        }
        if grew {
            // New inputs to run.
            self.wake(Wake::All);
        }
        output
    }

    /// Records the inputs an explore stage starts with, so they are not run again.
    pub fn seed(&mut self, stage: usize, inputs: impl IntoIterator<Item = String>) {
        self.stages[stage].seen.extend(inputs);
    }

    /// Input `n` (counting from 0) that explore stage `stage` discovered.
    pub fn discovered(&self, stage: usize, n: u64) -> Option<&RawJson> {
        self.stages[stage]
            .discovered
            .get(n as usize)
            .map(|input| &**input)
    }

    /// How many new inputs explore stage `stage` dropped at its `max_tasks`.
    pub fn dropped(&self, stage: usize) -> u64 {
        self.stages[stage].dropped
    }
}
