//! What a browser worker (the `/volunteer` page, `"agent": "browser"` in its hello) is sent
//! instead of a module's bytes: the module instrumented to meter fuel exactly as wasmtime
//! does and to canonicalise NaNs as the native sandbox does (`dipla-instrument`), so that a
//! browser's engine computes bit for bit what a native worker computes. Each module is
//! instrumented once per server and kept ([`Instrumenter`]); a module the pass refuses, and
//! a component (a Python guest, which no browser can run), refuse a browser at join, naming
//! the module and why, as a module over a worker's `--max-module-mb` does. What the
//! instrumented module exports, and what a host does with it, is `dipla-instrument`'s ABI.

use std::collections::HashMap;
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

/// Every module instrumented for browsers so far, by the hash of its original bytes,
/// shared by a server's jobs. Instrumenting is a pure function of the bytes, so an entry
/// never changes; modules are few and a server keeps their bytes anyway.
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
