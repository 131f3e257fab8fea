//! What the server's coordinator decides for a driver's job, as its events stream
//! (`GET /api/jobs/ID/events`) says it, one JSON object per line.

use dipla_protocol::{RawJson, TaskFailure};
use serde::Deserialize;
use thiserror::Error;

/// An event this driver cannot read: the server and the driver disagree on the protocol.
#[derive(Debug, Error)]
pub(crate) enum BadEvent {
    /// The line is not an event.
    #[error("{0}")]
    NotJson(serde_json::Error),
    /// A result with both an output and an error, or neither.
    #[error("a result needs exactly one of output and error")]
    NotOneOutcome,
}

/// One event of a driver's job.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Event {
    /// A task's outcome became final.
    Result {
        stage: usize,
        index: u64,
        /// Present (`null` included) for an output; missing for a failure.
        #[serde(default, deserialize_with = "dipla_protocol::present::deserialize")]
        output: Option<Box<RawJson>>,
        #[serde(default)]
        error: Option<TaskFailure>,
    },
    /// An output met its stage's goal.
    Goal {},
    /// An explore stage discovered a new input.
    Discovered {},
    /// A final result was withdrawn (it will be final again later).
    Revoked { stage: usize, index: u64 },
    /// Every result of the stage is final.
    Complete {
        stage: usize,
        #[serde(default)]
        stopped: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_servers_lines() {
        let event: Event = serde_json::from_str(
            r#"{"result":{"stage":1,"index":7,"output":[1,2],"check":"replicated:2"}}"#,
        )
        .unwrap();
        assert!(matches!(
            event,
            Event::Result {
                stage: 1,
                index: 7,
                output: Some(_),
                error: None
            }
        ));
        // A task that returned `null` (None, (), NaN) has an output all the same.
        let event: Event =
            serde_json::from_str(r#"{"result":{"stage":0,"index":3,"output":null}}"#).unwrap();
        let Event::Result { output, error, .. } = event else {
            panic!("not a result")
        };
        assert_eq!(
            output.map(|output| output.get().to_owned()),
            Some("null".into())
        );
        assert!(error.is_none());
        let event: Event = serde_json::from_str(r#"{"goal":{"stage":1,"index":2}}"#).unwrap();
        assert!(matches!(event, Event::Goal {}));
        let event: Event = serde_json::from_str(r#"{"complete":{"stage":3}}"#).unwrap();
        assert!(matches!(
            event,
            Event::Complete {
                stage: 3,
                stopped: None
            }
        ));
    }
}
