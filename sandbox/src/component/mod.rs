//! Components: Python guests, built by `dipla-py build` (componentize-py) against the WIT
//! world `dipla:guest/python-tasks` (`guest-sdk/python/src/dipla/wit/dipla.wit`).
//!
//! A component exports `tasks()` and `run(name, input) -> result<output, failure>`; its
//! top-level `dipla` custom section lists the tasks exactly as a core guest's does, so the
//! server reads them without compiling anything. It imports WASI 0.2, which it gets from a
//! closed, deterministic context ([`host`]). Fuel, memory, stack and the wall clock limit it
//! as they limit a core module.

mod host;
mod log;
mod sections;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use dipla_protocol::text::printable_log;
use dipla_protocol::{FailureKind, MAX_LOG_BYTES, RawJson, TaskFailure};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

use crate::abi::AbiError;
use crate::guest::{Run, arm_deadline, classify_error, failure, with_fuel};
use crate::limits::{Limiter, Limits};
use host::{Host, VirtualClock};
use log::BoundedLog;

pub(crate) use sections::read as read_sections;

wasmtime::component::bindgen!({
    path: "../guest-sdk/python/src/dipla/wit",
    world: "python-tasks",
});

use exports::dipla::guest::task::{Failure, FailureKind as PyFailureKind, Output};

/// The export interface a Python guest must have.
pub const INTERFACE: &str = "dipla:guest/task";

/// The WASI 0.2 interfaces a component may import (the closed context provides them all);
/// anything else is refused before compiling.
pub const ALLOWED_IMPORTS: &[&str] = &[
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// Whether a component may import `name` (`wasi:io/poll@0.2.9`).
pub fn import_allowed(name: &str) -> bool {
    ALLOWED_IMPORTS
        .iter()
        .any(|prefix| name.starts_with(prefix))
        && name
            .split_once('@')
            .is_some_and(|(_, version)| version.starts_with("0.2."))
}

/// A compiled Python guest, linked and ready to instantiate.
#[derive(Clone)]
pub(crate) struct PythonCode {
    pre: Arc<PythonTasksPre<Host>>,
}

impl PythonCode {
    /// Links `component` against the closed WASI context.
    pub(crate) fn new(engine: &Engine, component: &Component) -> Result<Self, AbiError> {
        let invalid = |e: wasmtime::Error| AbiError::Invalid(format!("{e:#}"));
        let mut linker = Linker::<Host>::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(invalid)?;
        linker.allow_shadowing(true);
        wasmtime_wasi::p2::bindings::clocks::monotonic_clock::add_to_linker::<Host, VirtualClock>(
            &mut linker,
            Host::clock,
        )
        .map_err(invalid)?;
        let pre = linker.instantiate_pre(component).map_err(invalid)?;
        let pre = PythonTasksPre::new(pre).map_err(|e| AbiError::Export {
            what: format!("the interface `{INTERFACE}` of the world `python-tasks` ({e:#})"),
        })?;
        Ok(Self { pre: Arc::new(pre) })
    }

    /// The compiled component.
    pub(crate) fn component(&self) -> &Component {
        self.pre.instance_pre().component()
    }

    /// Runs task `export` on `input` in a fresh instance under `limits`.
    pub(crate) fn run(
        &self,
        export: &str,
        input: &[u8],
        limits: &Limits,
        cancel: Arc<AtomicBool>,
        pace: Option<crate::guest::Pace>,
    ) -> Run {
        let started = Instant::now();
        let log = BoundedLog::new(MAX_LOG_BYTES + 1);
        let host = Host::new(export, input, &log, Limiter::component(limits.memory_bytes));
        let mut store = Store::new(self.pre.engine(), host);
        store.limiter(|host| &mut host.limiter);
        arm_deadline(&mut store, limits, cancel, pace);
        let (outcome, stop, fuel) = with_fuel(&mut store, limits, |store| {
            self.call(store, export, input, limits)
        });
        drop(store);
        let log = log.text().map(|text| printable_log(&text, MAX_LOG_BYTES));
        Run {
            fuel,
            micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            outcome,
            stop,
            log,
        }
    }

    fn call(
        &self,
        store: &mut Store<Host>,
        export: &str,
        input: &[u8],
        limits: &Limits,
    ) -> Result<(Box<RawJson>, bool), TaskFailure> {
        let input = std::str::from_utf8(input)
            .map_err(|_| failure(FailureKind::Guest, "the input is not UTF-8 JSON"))?;
        let tasks = self
            .pre
            .instantiate(&mut *store)
            .map_err(|e| classify_error(e, limits))?;
        let answer = tasks
            .dipla_guest_task()
            .call_run(&mut *store, export, input)
            .map_err(|e| classify_error(e, limits))?;
        match answer {
            Ok(Output { json, stop }) => {
                if json.len() > limits.max_output_bytes {
                    return Err(failure(
                        FailureKind::BadOutput,
                        format!(
                            "the output is {} bytes; the limit is {}",
                            json.len(),
                            limits.max_output_bytes
                        ),
                    ));
                }
                let output = RawJson::from_string(json).map_err(|e| {
                    failure(
                        FailureKind::BadOutput,
                        format!("the output is not valid JSON: {e}"),
                    )
                })?;
                Ok((output, stop))
            }
            Err(python) => Err(python_failure(python)),
        }
    }
}

/// A failure the Python side reported, as the sandbox reports failures.
fn python_failure(python: Failure) -> TaskFailure {
    let kind = match python.kind {
        PyFailureKind::Guest | PyFailureKind::BadInput => FailureKind::Guest,
        PyFailureKind::Exception => FailureKind::Panic,
        PyFailureKind::BadOutput => FailureKind::BadOutput,
        PyFailureKind::NoSuchTask => FailureKind::Rejected,
    };
    let mut message = python.message;
    for frame in python.frames.iter().rev() {
        message.push_str("\n  at ");
        message.push_str(frame);
    }
    failure(kind, crate::guest::cut(&message))
}
