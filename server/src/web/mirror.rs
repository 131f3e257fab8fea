//! The events of a remote driver's job (`dipla-driver`'s `Dipla::builder().remote(URL,
//! TOKEN)`).
//!
//! The driver runs no workers: every module and stage it makes is sent, in order, to a driver
//! job on the server (`POST /api/drivers`, then `PUT /api/jobs/ID/modules`, `POST
//! /api/jobs/ID/stages`, which checks the stage and counts its tasks), whose workers run it.
//! What the coordinator decides (final results, goals met, inputs discovered, results
//! revoked, stages complete) comes back as [`Event`]s (`GET /api/jobs/ID/events`, JSON
//! Lines), from which the driver answers its promises. The driver says it is alive with
//! `POST /api/jobs/ID/heartbeat`; a job whose driver went silent is cancelled.

use dipla_protocol::{RawJson, TaskFailure};
use serde::{Deserialize, Serialize};

use dipla_core::Record;

/// What the remote coordinator decided, on the wire.
#[derive(Debug, Serialize, Deserialize)]
// Externally tagged: raw JSON values cannot be read through an internal tag.
#[serde(rename_all = "snake_case")]
pub(crate) enum Event {
    /// A task's outcome became final.
    Result {
        stage: usize,
        index: u64,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "dipla_protocol::present::deserialize"
        )]
        output: Option<Box<RawJson>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<TaskFailure>,
        check: String,
    },
    /// An output of this task met its stage's goal.
    Goal { stage: usize, index: u64 },
    /// An explore stage discovered a new input.
    Discovered { stage: usize, input: Box<RawJson> },
    /// A final result was withdrawn.
    Revoked { stage: usize, index: u64 },
    /// Every result of the stage is final, as the events before this one say (written when
    /// it becomes so, again after a revoked result is final again).
    Complete {
        stage: usize,
        /// Why it stopped early, if it met its goal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stopped: Option<String>,
    },
}

impl Event {
    /// The event for `record`, if the driver needs it.
    pub(crate) fn of(record: &Record) -> Option<Self> {
        Some(match record {
            Record::Result {
                task,
                outcome,
                check,
                ..
            } => {
                let (output, error) = match outcome {
                    Ok(output) => (Some(output.clone()), None),
                    Err(failure) => (None, Some(failure.clone())),
                };
                Self::Result {
                    stage: task.stage,
                    index: task.index,
                    output,
                    error,
                    check: check.to_string(),
                }
            }
            Record::Goal(task) => Self::Goal {
                stage: task.stage,
                index: task.index,
            },
            Record::Discovered { stage, input } => Self::Discovered {
                stage: *stage,
                input: input.clone(),
            },
            Record::Revoked(task) => Self::Revoked {
                stage: task.stage,
                index: task.index,
            },
            Record::Identity { .. } | Record::Receipt { .. } | Record::Worker { .. } => {
                return None;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dipla_core::{Check, TaskRef};

    #[test]
    fn events_carry_what_the_journal_records() {
        let output = RawJson::from_string("[1,2]".into()).unwrap();
        let record = Record::Result {
            task: TaskRef { stage: 1, index: 7 },
            outcome: Ok(output),
            check: Check::Replicated(2),
            by: Some("key".into()),
        };
        let line = serde_json::to_string(&Event::of(&record).unwrap()).unwrap();
        assert_eq!(
            line,
            r#"{"result":{"stage":1,"index":7,"output":[1,2],"check":"replicated:2"}}"#
        );
        let complete = Event::Complete {
            stage: 2,
            stopped: None,
        };
        assert_eq!(
            serde_json::to_string(&complete).unwrap(),
            r#"{"complete":{"stage":2}}"#
        );
    }

    #[test]
    fn a_null_output_is_an_output() {
        for output in ["null", "[null,1]", r#"{"a":null}"#] {
            let record = Record::Result {
                task: TaskRef { stage: 0, index: 2 },
                outcome: Ok(RawJson::from_string(output.into()).unwrap()),
                check: Check::Unchecked,
                by: None,
            };
            let line = serde_json::to_string(&Event::of(&record).unwrap()).unwrap();
            assert_eq!(
                line,
                format!(
                    r#"{{"result":{{"stage":0,"index":2,"output":{output},"check":"unchecked"}}}}"#
                )
            );
            let back: Event = serde_json::from_str(&line).unwrap();
            let Event::Result {
                output: back,
                error,
                ..
            } = back
            else {
                panic!("not a result");
            };
            assert_eq!(back.unwrap().get(), output);
            assert!(error.is_none());
        }
    }
}
