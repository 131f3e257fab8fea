//! Results as JSON Lines, one line per task in input order, each saying how its output was
//! checked (`"unchecked"`, `"verified"` by the stage's verifier, or `"replicated:K"`: K
//! workers agreed):
//!
//! ```json
//! {"stage":"factors","index":0,"input":1000000000000,"output":[2,2,2,2,2,2,2,2,2,2,2,2,5,5,5,5,5,5,5,5,5,5,5,5],"check":"replicated:2"}
//! {"stage":"factors","index":1,"input":1000000000001,"error":"panic: ...","kind":"panic","check":"replicated:2"}
//! ```
//!
//! A failure's line names its `kind` as on the wire beside the readable `error` (`"<kind>:
//! <message>"`), so the failure a worker signed can be matched to it (`dipla-server audit`);
//! its `check` says how many identities reported it (`replicated:K`), or `unchecked` for
//! one the server decided (an upstream failure, workers lost) or took from its own worker.
//! A failure's line also carries what the task logged, `"log"`, when the worker that reported
//! the failure sent its log (the worker's word, never checked; see [`crate::store::task_logs`]).

use std::io::Write;

use dipla_protocol::{FailureKind, RawJson};
use serde::Serialize;

use dipla_core::Finished;

#[derive(Serialize)]
struct Line<'a> {
    stage: &'a str,
    index: u64,
    input: &'a RawJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a RawJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<FailureKind>,
    check: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<&'a str>,
}

/// Writes one result line for `finished`, the task of stage `stage` with input `input`; a
/// failure's line carries what the task logged, `log`, if a worker reported it.
///
/// # Errors
/// When writing fails.
pub fn write_line(
    out: &mut impl Write,
    stage: &str,
    input: &RawJson,
    finished: &Finished,
    log: Option<&str>,
) -> std::io::Result<()> {
    let line = Line {
        stage,
        index: finished.task.index,
        input,
        output: finished.outcome.as_ref().ok().map(|output| &**output),
        error: finished.outcome.as_ref().err().map(ToString::to_string),
        kind: finished.outcome.as_ref().err().map(|failure| failure.kind),
        check: finished.check.to_string(),
        log: log.filter(|_| finished.outcome.is_err()),
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use dipla_protocol::TaskFailure;

    use super::*;
    use dipla_core::{Check, TaskRef};

    fn raw(text: &str) -> Box<RawJson> {
        RawJson::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn lines_match_the_documented_format() {
        let mut out = Vec::new();
        let task = TaskRef { stage: 0, index: 3 };
        let ok = Finished {
            task,
            outcome: Ok(raw("[2,2,3]")),
            attempts: 1,
            items: Vec::new(),
            check: Check::Replicated(2),
        };
        write_line(&mut out, "factors", &raw("12"), &ok, Some("not shown")).unwrap();
        let failure = TaskFailure {
            kind: FailureKind::Panic,
            message: "boom (at src/lib.rs:3)".into(),
        };
        let failed = Finished {
            task,
            outcome: Err(failure),
            attempts: 3,
            items: Vec::new(),
            check: Check::Unchecked,
        };
        write_line(&mut out, "factors", &raw("12"), &failed, None).unwrap();
        write_line(&mut out, "factors", &raw("12"), &failed, Some("a\nb\n")).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                r#"{"stage":"factors","index":3,"input":12,"output":[2,2,3],"check":"replicated:2"}"#,
                "\n",
                r#"{"stage":"factors","index":3,"input":12,"error":"panic: boom (at src/lib.rs:3)","kind":"panic","check":"unchecked"}"#,
                "\n",
                r#"{"stage":"factors","index":3,"input":12,"error":"panic: boom (at src/lib.rs:3)","kind":"panic","check":"unchecked","log":"a\nb\n"}"#,
                "\n"
            )
        );
    }

    #[test]
    fn a_null_output_is_written() {
        for output in ["null", "[null,1]", r#"{"a":null}"#] {
            let mut out = Vec::new();
            let finished = Finished {
                task: TaskRef { stage: 0, index: 1 },
                outcome: Ok(raw(output)),
                attempts: 1,
                items: Vec::new(),
                check: Check::Unchecked,
            };
            write_line(&mut out, "s", &raw("1"), &finished, None).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!(
                    r#"{{"stage":"s","index":1,"input":1,"output":{output},"check":"unchecked"}}"#
                ) + "\n"
            );
        }
    }
}
