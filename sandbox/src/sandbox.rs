use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use crate::abi::{self, AbiError};
use crate::component::{PythonCode, import_allowed};
use crate::config::{EPOCH_TICK, engine_config};
use crate::exports::Exports;
use crate::guest::{About, Code, Guest};
use crate::lazy::LazyGuest;

/// The sandbox cannot start on this machine.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the wasm engine: {0}")]
pub struct SandboxError(String);

/// One configured wasmtime engine and the ticker behind its wall-clock limits.
///
/// Cheap to clone; compile a module once with [`Sandbox::compile`] and run it many times.
#[derive(Clone)]
pub struct Sandbox {
    engine: Engine,
}

impl Sandbox {
    /// Creates the engine and starts its epoch ticker (a thread that stops by itself when the
    /// last clone of the engine is dropped).
    ///
    /// # Errors
    /// When wasmtime rejects the configuration on this machine.
    pub fn new() -> Result<Self, SandboxError> {
        Self::with_config(&engine_config())
    }

    /// Like [`Sandbox::new`], without fuel metering: for benchmarks that measure what fuel
    /// costs, never for running a job. Tasks then report 0 fuel and never run out of it, so
    /// replicas cannot be compared and an endless loop ends only at the wall-clock limit.
    ///
    /// # Errors
    /// When wasmtime rejects the configuration on this machine.
    pub fn unmetered() -> Result<Self, SandboxError> {
        let mut config = engine_config();
        config.consume_fuel(false);
        Self::with_config(&config)
    }

    fn with_config(config: &wasmtime::Config) -> Result<Self, SandboxError> {
        let engine = Engine::new(config).map_err(|e| SandboxError(format!("{e:#}")))?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("dipla-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| SandboxError(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Self { engine })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Checks that `bytes` are a runnable Dipla guest and compiles them.
    ///
    /// # Errors
    /// When the bytes are not wasm, break the guest ABI ([`crate::abi`]), or import anything.
    pub fn compile(&self, bytes: &[u8]) -> Result<Guest, AbiError> {
        let about = admit(bytes)?;
        let code = self.code(bytes, &about)?;
        Ok(Guest::new(code, Arc::new(about)))
    }

    /// Compiles `bytes` that [`Sandbox::admit`] checked, described by `about`.
    pub(crate) fn compile_admitted(
        &self,
        bytes: &[u8],
        about: Arc<About>,
    ) -> Result<Guest, AbiError> {
        Ok(Guest::new(self.code(bytes, &about)?, about))
    }

    /// The compiled code of `bytes`, which [`admit`] described as `about`.
    fn code(&self, bytes: &[u8], about: &About) -> Result<Code, AbiError> {
        let invalid = |e: wasmtime::Error| AbiError::Invalid(format!("{e:#}"));
        if about.info.component {
            let component = Component::new(&self.engine, bytes).map_err(invalid)?;
            return Ok(Code::Python(PythonCode::new(&self.engine, &component)?));
        }
        Ok(Code::Core(
            Module::new(&self.engine, bytes).map_err(invalid)?,
        ))
    }

    /// Checks that `bytes` are a runnable Dipla guest as [`Sandbox::compile`] does (wasm
    /// validation included), but compiles them only when first run: a server ships modules
    /// to workers and needs only their task lists, unless it runs a verifier. Checking the 419 KB
    /// testbed takes milliseconds; compiling it, about 0.2 s and 70 MiB at the peak.
    ///
    /// # Errors
    /// As [`Sandbox::compile`].
    pub fn admit(&self, bytes: impl Into<Arc<[u8]>>) -> Result<LazyGuest, AbiError> {
        let bytes = bytes.into();
        let about = admit(&bytes)?;
        if about.info.component {
            wasmparser::Validator::new()
                .validate_all(&bytes)
                .map_err(|e| AbiError::Invalid(e.to_string()))?;
        } else {
            Module::validate(&self.engine, &bytes)
                .map_err(|e| AbiError::Invalid(format!("{e:#}")))?;
        }
        Ok(LazyGuest::new(self.clone(), bytes, Arc::new(about)))
    }

    /// Loads a module this process compiled earlier and saved with [`Guest::serialize`],
    /// given the original bytes (checked as by [`Sandbox::compile`]).
    ///
    /// # Safety
    /// `artifact` must be a file this program wrote with [`Guest::serialize`] and nobody
    /// else could write: wasmtime trusts precompiled code completely. Never load one that
    /// came over the network.
    ///
    /// # Errors
    /// When the bytes break the ABI or the artifact is not loadable by this engine.
    pub unsafe fn load_precompiled(
        &self,
        bytes: &[u8],
        artifact: &Path,
    ) -> Result<Guest, AbiError> {
        let about = admit(bytes)?;
        let invalid = |e: wasmtime::Error| AbiError::Invalid(format!("{e:#}"));
        let code = if about.info.component {
            // SAFETY: the caller promises the artifact is our own.
            let component =
                unsafe { Component::deserialize_file(&self.engine, artifact) }.map_err(invalid)?;
            Code::Python(PythonCode::new(&self.engine, &component)?)
        } else {
            // SAFETY: the caller promises the artifact is our own.
            Code::Core(
                unsafe { Module::deserialize_file(&self.engine, artifact) }.map_err(invalid)?,
            )
        };
        Ok(Guest::new(code, Arc::new(about)))
    }

    /// A key that changes whenever this engine could not load another's precompiled code.
    pub fn compatibility_key(&self) -> String {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut hasher = DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }

    /// The wall-clock resolution of timeouts.
    pub fn tick(&self) -> Duration {
        EPOCH_TICK
    }
}

/// Reads a guest's ABI section and exports, and refuses it if it imports anything (a
/// component: anything but the WASI 0.2 interfaces the closed context provides) or lacks
/// what a guest must export.
fn admit(bytes: &[u8]) -> Result<About, AbiError> {
    let info = abi::inspect(bytes)?;
    if info.component {
        let refused: Vec<String> = info
            .imports
            .iter()
            .filter(|name| !import_allowed(name))
            .cloned()
            .collect();
        if !refused.is_empty() {
            return Err(AbiError::Imports(refused));
        }
        return Ok(About {
            info,
            exports: None,
        });
    }
    if !info.imports.is_empty() {
        return Err(AbiError::Imports(info.imports));
    }
    let exports = Exports::read(bytes)?;
    exports.check_guest()?;
    Ok(About {
        info,
        exports: Some(exports),
    })
}
