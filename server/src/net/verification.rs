//! Checking an output with its stage's verifier, run by the server before the output counts.

use dipla_protocol::TaskFailure;
use dipla_sandbox::abi::AbiError;
use dipla_sandbox::{LazyGuest, Limits};
use thiserror::Error;

use crate::net::state::Core;
use dipla_core::{Answer, AttemptId, WorkerId};

/// A verifier run to make: the stage's verifier, on the task's input and the output.
pub(crate) struct Verification {
    guest: LazyGuest,
    export: String,
    limits: Limits,
    input: String,
}

/// Why a verifier did not accept an output.
#[derive(Debug, Error)]
pub(crate) enum Rejection {
    /// The verifier's module cannot be compiled.
    #[error("the verifier {export} cannot be compiled: {error}")]
    Uncompiled {
        /// The verifier's export.
        export: String,
        /// Why.
        error: AbiError,
    },
    /// The verifier returned something else than `true`.
    #[error("the verifier {export} returned {verdict}")]
    Returned {
        /// The verifier's export.
        export: String,
        /// What it returned, as JSON.
        verdict: String,
    },
    /// The verifier failed.
    #[error("the verifier {export} failed: {failure}")]
    Failed {
        /// The verifier's export.
        export: String,
        /// How.
        failure: TaskFailure,
    },
}

impl Verification {
    /// Runs the verifier.
    ///
    /// # Errors
    /// A [`Rejection`] when it does not accept the output, saying why.
    pub(crate) fn run(self) -> Result<(), Rejection> {
        // The first verification compiles the module, outside the server's lock.
        let guest = self
            .guest
            .compiled()
            .map_err(|error| Rejection::Uncompiled {
                export: self.export.clone(),
                error,
            })?;
        let run = guest.run(&self.export, self.input.as_bytes(), &self.limits);
        match run.outcome {
            Ok(verdict) if verdict.get() == "true" => Ok(()),
            Ok(verdict) => Err(Rejection::Returned {
                export: self.export,
                verdict: verdict.get().to_owned(),
            }),
            Err(failure) => Err(Rejection::Failed {
                export: self.export,
                failure,
            }),
        }
    }
}

/// The check `answer` to `attempt` of worker `id` needs before it counts, if its stage has a
/// verifier and it is an output.
pub(crate) fn verification(
    core: &Core,
    id: WorkerId,
    attempt: AttemptId,
    answer: &Answer,
) -> Option<Verification> {
    let output = answer.outcome.as_ref().ok()?;
    let task = core.coordinator.attempt_task(id, attempt)?;
    let stage = &core.job.stages[task.stage];
    let (module, export) = stage.verify.as_ref()?;
    let guest = core.job.guest(module)?.clone();
    let input = core.job.input(task, &core.coordinator);
    Some(Verification {
        guest,
        export: export.clone(),
        limits: Limits::from_task(&stage.limits),
        input: format!("[{},{}]", input.get(), output.get()),
    })
}
