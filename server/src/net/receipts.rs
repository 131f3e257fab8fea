//! Receipts on the server's side: what each connection was sent, so that every results
//! message's signature can be checked against the server's own record of the tasks (module,
//! input) and the outcomes (outputs and failures) it carries — the worker's word is taken only for what it signs.
//! A message whose signature does not check ends the connection; one that does is journaled
//! with the tasks it answered, for `dipla-server audit`.

use std::collections::HashMap;

use dipla_protocol::identity::{ReceiptEntry, receipt_message};
use dipla_protocol::{
    MAX_FAILURE_MESSAGE_BYTES, ModuleHash, PublicKey, Signature, TaskItem, TaskResult,
};

use dipla_core::AttemptId;

use crate::net::violation::Violation;

/// The tasks a connection was sent and has not answered: module and input digest by attempt.
#[derive(Default)]
pub(crate) struct Sent {
    tasks: HashMap<AttemptId, (ModuleHash, [u8; 32])>,
}

/// A results message whose receipt checked.
pub(crate) struct Receipted {
    /// The signed bytes.
    pub(crate) body: Vec<u8>,
    /// The attempt of each entry, in order.
    pub(crate) attempts: Vec<AttemptId>,
}

impl Sent {
    /// Notes tasks sent to run `module`.
    pub(crate) fn record(&mut self, module: ModuleHash, items: &[TaskItem]) {
        for item in items {
            self.tasks
                .insert(item.id, (module, ReceiptEntry::digest(item.input.get())));
        }
    }

    /// Checks that `results` answer tasks this connection was sent (once each), that each
    /// failure is one a worker may report, and that `receipt` is `identity`'s signature over
    /// their outcomes, outputs and failures alike, for job `job`. Returns what to journal
    /// (`None` for an empty message), or why the message is refused.
    pub(crate) fn check(
        &mut self,
        identity: &PublicKey,
        job: &str,
        results: &[TaskResult],
        receipt: Option<&Signature>,
    ) -> Result<Option<Receipted>, Violation> {
        let mut entries = Vec::with_capacity(results.len());
        for result in results {
            let Some((module, input)) = self.tasks.remove(&result.id) else {
                return Err(Violation::NotGiven(result.id));
            };
            let Some(outcome) = result.outcome() else {
                return Err(Violation::NotOneOutcome(result.id));
            };
            if let Err(failure) = outcome {
                if failure.kind.is_server_only() {
                    return Err(Violation::ServerOnlyFailure {
                        attempt: result.id,
                        kind: failure.kind,
                    });
                }
                if failure.message.len() > MAX_FAILURE_MESSAGE_BYTES {
                    return Err(Violation::FailureTooLong(result.id));
                }
            }
            entries.push(ReceiptEntry {
                id: result.id,
                module,
                input,
                output: ReceiptEntry::outcome_digest(outcome),
                fuel: result.fuel,
            });
        }
        if entries.is_empty() {
            return Ok(None);
        }
        let Some(signature) = receipt else {
            return Err(Violation::NoReceipt);
        };
        let body = receipt_message(job, &entries);
        if !identity.verifies(&body, signature) {
            return Err(Violation::BadReceipt);
        }
        Ok(Some(Receipted {
            body,
            attempts: entries.iter().map(|entry| entry.id).collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use dipla_protocol::{RawJson, WorkerMessage};

    use super::*;

    /// A worker signs the outcome of a task that returned `null` over the same bytes the
    /// server checks, after the results crossed the wire as JSON.
    #[test]
    fn a_null_output_is_signed_and_checked_like_any_other() {
        let identity = dipla_worker::Identity::generate();
        let module = ModuleHash::of(b"module");
        for output in ["null", "[null,1]", r#"{"a":null}"#] {
            let mut sent = Sent::default();
            let input = RawJson::from_string("3".into()).unwrap();
            sent.record(module, &[TaskItem { id: 9, input }]);
            let result =
                TaskResult::success(9, 40, 1, RawJson::from_string(output.into()).unwrap());
            let entry = ReceiptEntry {
                id: 9,
                module,
                input: ReceiptEntry::digest("3"),
                output: ReceiptEntry::outcome_digest(result.outcome().unwrap()),
                fuel: 40,
            };
            assert_eq!(entry.output, ReceiptEntry::digest(output));
            let receipt = identity.sign(&receipt_message("job", &[entry]));
            let wire = serde_json::to_string(&WorkerMessage::Results {
                results: vec![result],
                receipt: Some(receipt),
            })
            .unwrap();
            let Ok(WorkerMessage::Results { results, receipt }) = serde_json::from_str(&wire)
            else {
                panic!("{wire} is a results message");
            };
            let checked = sent
                .check(&identity.public(), "job", &results, receipt.as_ref())
                .unwrap_or_else(|why| panic!("{output}: {why}"));
            assert_eq!(checked.unwrap().attempts, vec![9]);
        }
    }
}
