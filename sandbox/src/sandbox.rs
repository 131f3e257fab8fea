use std::path::Path;
use std::time::Duration;

use wasmtime::{Engine, ExternType, Module, ValType};

use crate::abi::{self, AbiError, ModuleInfo};
use crate::config::{EPOCH_TICK, engine_config};
use crate::guest::Guest;

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
        let engine = Engine::new(&engine_config()).map_err(|e| SandboxError(format!("{e:#}")))?;
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
        let info = admit(bytes)?;
        let module =
            Module::new(&self.engine, bytes).map_err(|e| AbiError::Invalid(format!("{e:#}")))?;
        check_exports(&module)?;
        Ok(Guest::new(module, info))
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
        let info = admit(bytes)?;
        // SAFETY: the caller promises the artifact is our own.
        let module = unsafe { Module::deserialize_file(&self.engine, artifact) }
            .map_err(|e| AbiError::Invalid(format!("{e:#}")))?;
        check_exports(&module)?;
        Ok(Guest::new(module, info))
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

/// Reads a module's ABI section and refuses it if it imports anything.
fn admit(bytes: &[u8]) -> Result<ModuleInfo, AbiError> {
    let info = abi::inspect(bytes)?;
    if !info.imports.is_empty() {
        return Err(AbiError::Imports(info.imports));
    }
    Ok(info)
}

fn check_exports(module: &Module) -> Result<(), AbiError> {
    let missing = |what: &str| AbiError::Export {
        what: what.to_owned(),
    };
    match module.get_export(abi::MEMORY) {
        Some(ExternType::Memory(memory)) if !memory.is_64() && !memory.is_shared() => {}
        _ => return Err(missing("`memory`, a 32-bit unshared linear memory")),
    }
    let i32s = |n| vec![ValType::I32; n];
    if !has_func(module, abi::REALLOC, &i32s(4), &[ValType::I32]) {
        return Err(missing("`cabi_realloc: (i32, i32, i32, i32) -> i32`"));
    }
    if module.get_export(abi::PANIC_MESSAGE).is_some()
        && !has_func(module, abi::PANIC_MESSAGE, &[], &[ValType::I64])
    {
        return Err(missing("`dipla_panic_message` only as `() -> i64`"));
    }
    Ok(())
}

/// Whether `module` exports a function `name` with exactly these parameter and result types.
pub(crate) fn has_func(
    module: &Module,
    name: &str,
    params: &[ValType],
    results: &[ValType],
) -> bool {
    let Some(ExternType::Func(func)) = module.get_export(name) else {
        return false;
    };
    let same = |a: &mut dyn ExactSizeIterator<Item = ValType>, b: &[ValType]| {
        a.len() == b.len() && a.zip(b).all(|(x, y)| ValType::eq(&x, y))
    };
    same(&mut func.params(), params) && same(&mut func.results(), results)
}
