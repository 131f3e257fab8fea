//! What a browser worker (the `/volunteer` page, `"agent": "browser"` in its hello) is sent
//! instead of a module's bytes: the module instrumented to meter fuel exactly as wasmtime
//! does and to canonicalise NaNs as the native sandbox does (`dipla-instrument`), so that a
//! browser's engine computes bit for bit what a native worker computes. Each module is
//! instrumented once and kept while a job uses it ([`Instrumenter`]); a module the pass refuses, and
//! a component (a Python guest, which no browser can run), refuse a browser at join, naming
//! the module and why, as a module over a worker's `--max-module-mb` does. What the
//! instrumented module exports, and what a host does with it, is `dipla-instrument`'s ABI.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use dipla_protocol::ModuleHash;

use crate::Module;
use crate::net::violation::Violation;

/// A module as a browser runs it.
#[derive(Debug)]
pub(crate) struct Instrumented {
    /// The instrumented bytes.
    pub(crate) bytes: Arc<[u8]>,
    /// Their sha256, which the page checks before compiling them.
    pub(crate) sha256: ModuleHash,
}

/// Why a module cannot run in a browser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NotForBrowser {
    /// A component (a Python guest): browsers run core modules only.
    #[error("it is a component (a Python guest)")]
    Component,
    /// The instrumentation pass refused it.
    #[error("{0}")]
    Refused(String),
}

/// The modules instrumented for browsers, by the hash of their original bytes, shared by a
/// server's jobs. Instrumenting is a pure function of the bytes, so an entry never changes and
/// forgetting one costs only its making again. Under `serve`, jobs come and go: when one ends,
/// the modules no running job uses are forgotten ([`Instrumenter::retain`]), so the cache is
/// bounded by the running jobs' modules, which the server holds anyway.
#[derive(Default)]
pub(crate) struct Instrumenter {
    done: Mutex<HashMap<ModuleHash, Result<Arc<Instrumented>, NotForBrowser>>>,
}

impl Instrumenter {
    /// `module` instrumented for a browser, made on first use (call it off the async
    /// runtime: a large module takes a while).
    ///
    /// # Errors
    /// Why a browser cannot run the module.
    pub(crate) fn get(&self, module: &Module) -> Result<Arc<Instrumented>, NotForBrowser> {
        let lock = || self.done.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(done) = lock().get(&module.hash) {
            return done.clone();
        }
        let made = if module.guest.info().component {
            Err(NotForBrowser::Component)
        } else {
            instrument(&module.bytes).map(|bytes| {
                Arc::new(Instrumented {
                    sha256: ModuleHash::of(&bytes),
                    bytes: bytes.into(),
                })
            })
        };
        if let Err(why) = &made {
            tracing::info!(module = %module.name, %why, "a module browsers cannot run");
        }
        lock().entry(module.hash).or_insert(made).clone()
    }

    /// Instruments, in the background, those of `modules` not instrumented yet: the volunteer
    /// page asks when it opens, so the work is done by the time its browser joins (a 400 KB
    /// module takes about 0.2 s).
    pub(crate) fn prepare(self: &Arc<Self>, modules: Vec<Module>) {
        let done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh: Vec<Module> = modules
            .into_iter()
            .filter(|module| !done.contains_key(&module.hash))
            .collect();
        drop(done);
        if fresh.is_empty() {
            return;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            for module in &fresh {
                let _ = this.get(module);
            }
        });
    }

    /// Whether a browser may be seated in a job of `modules`: none is a component, and none
    /// was refused by the pass so far (a module not instrumented yet is tried when the
    /// browser joins the job).
    pub(crate) fn may_run(&self, modules: &[Module]) -> bool {
        let done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        modules.iter().all(|module| {
            !module.guest.info().component && !done.get(&module.hash).is_some_and(Result::is_err)
        })
    }

    /// Forgets every module but those of `live` (the modules of the jobs still running).
    /// An entry made meanwhile for a job that has just ended (its background
    /// [`Instrumenter::prepare`] finishing late) stays until the next job ends; a module
    /// forgotten while a job still wants it is made again when asked (and a refusal then
    /// refuses again, at the browser's join, as it did the first time).
    pub(crate) fn retain(&self, live: &HashSet<ModuleHash>) {
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        done.retain(|hash, _| live.contains(hash));
    }

    /// How many modules are kept (made or refused).
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Why a browser cannot take one of `modules`, if it cannot (each is instrumented on the
    /// way, off the async runtime).
    pub(crate) async fn refuse(
        self: &Arc<Self>,
        modules: Vec<Module>,
    ) -> Result<Vec<Arc<Instrumented>>, Violation> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            modules
                .iter()
                .map(|module| {
                    this.get(module).map_err(|why| Violation::NotForBrowser {
                        name: module.name.clone(),
                        why: why.to_string(),
                    })
                })
                .collect()
        })
        .await
        .unwrap_or(Err(Violation::Instrumenting))
    }
}

/// The instrumentation pass (`dipla-instrument`), its refusal as a [`NotForBrowser`].
pub(crate) fn instrument(bytes: &[u8]) -> Result<Vec<u8>, NotForBrowser> {
    dipla_instrument::instrument(bytes).map_err(|error| NotForBrowser::Refused(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module admitted by the sandbox, with `task` as its one task (`tag` varies its bytes).
    fn module(sandbox: &dipla_sandbox::Sandbox, name: &str, tag: i64) -> Module {
        let wat = format!(
            r#"(module
                (memory (export "memory") 1)
                (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
                (func (export "task") (param i32 i32) (result i64) (i64.const {tag}))
                (@custom "dipla" "{{\"abi\":1,\"task\":\"task\"}}\n"))"#
        );
        let guest = sandbox.admit(wat::parse_str(wat).unwrap()).unwrap();
        Module {
            name: name.to_owned(),
            hash: ModuleHash::of(guest.bytes()),
            bytes: guest.bytes().clone(),
            guest,
        }
    }

    /// Under `serve` jobs come and go: a module is kept while a running job uses it and
    /// forgotten once none does, and made again (the same bytes) if a job wants it later.
    #[test]
    fn modules_no_running_job_uses_are_forgotten() {
        let sandbox = dipla_sandbox::Sandbox::new().unwrap();
        let instrumenter = Instrumenter::default();
        let (a, b) = (module(&sandbox, "a", 1), module(&sandbox, "b", 2));
        let first = instrumenter.get(&a).unwrap();
        instrumenter.get(&b).unwrap();
        assert_eq!(instrumenter.kept(), 2);

        // The job of `b` ended; `a`'s goes on.
        instrumenter.retain(&HashSet::from([a.hash]));
        assert_eq!(instrumenter.kept(), 1);
        assert!(
            Arc::ptr_eq(&instrumenter.get(&a).unwrap(), &first),
            "a is kept"
        );

        // Every job ended: nothing is kept; asked again, a module is made again, alike.
        instrumenter.retain(&HashSet::new());
        assert_eq!(instrumenter.kept(), 0);
        let again = instrumenter.get(&a).unwrap();
        assert!(!Arc::ptr_eq(&again, &first));
        assert_eq!(again.bytes, first.bytes);
        assert_eq!(again.sha256, first.sha256);
    }
}
