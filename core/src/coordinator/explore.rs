//! Explore stages: tasks that discover new inputs, which the stage runs once each up to its
//! `max_tasks`.

use dipla_protocol::{FailureKind, RawJson, TaskFailure};

use super::Coordinator;
use crate::effect::{Effect, Wake};
use crate::record::Record;
use crate::types::Outcome;

impl Coordinator {
    /// Splits an explore task's output `{"output": O, "next": [T, ...]}`, queues the new
    /// inputs not seen before (up to `max` tasks in the stage) and returns `O`.
    pub(super) fn explored(&mut self, stage: usize, output: &RawJson, max: u64) -> Outcome {
        #[derive(serde::Deserialize)]
        struct Explored {
            output: Box<RawJson>,
            next: Vec<Box<RawJson>>,
        }
        let Explored { output, next } =
            serde_json::from_str(output.get()).map_err(|e| TaskFailure {
                kind: FailureKind::BadOutput,
                message: format!(
                    "an explore task must return {{\"output\": .., \"next\": [..]}}: {e}"
                ),
            })?;
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
        Ok(output)
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
