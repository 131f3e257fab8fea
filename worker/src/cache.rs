//! Compiled modules by content hash, in memory and on disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use dipla_protocol::ModuleHash;
use dipla_sandbox::abi::AbiError;
use dipla_sandbox::{Guest, Sandbox};

/// Compiled modules by content hash: in memory for the life of the worker, and on disk as
/// wasmtime artifacts so a restarted worker need not fetch or compile them again.
///
/// On disk, a module `H` is two files: `H.wasm` (the bytes, checked against `H` on every
/// load) and `H-K.cwasm` (the code compiled by an engine with compatibility key `K`). Only
/// artifacts this program wrote are ever loaded; precompiled code never comes over the
/// network. Cheap to clone.
#[derive(Clone)]
pub struct ModuleCache {
    inner: Arc<Inner>,
}

struct Inner {
    sandbox: Sandbox,
    dir: Option<PathBuf>,
    key: String,
    // Held only to look up or insert, never across an await or a compilation.
    ready: Mutex<HashMap<ModuleHash, Guest>>,
}

impl ModuleCache {
    /// A cache for `sandbox`'s modules, kept on disk under `dir` when given (created with
    /// owner-only permissions).
    ///
    /// # Errors
    /// When `dir` cannot be created.
    pub fn new(sandbox: Sandbox, dir: Option<PathBuf>) -> std::io::Result<Self> {
        if let Some(dir) = &dir {
            create_private_dir(dir)?;
        }
        let key = sandbox.compatibility_key();
        let inner = Inner {
            sandbox,
            dir,
            key,
            ready: Mutex::default(),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The sandbox modules are compiled for.
    pub fn sandbox(&self) -> &Sandbox {
        &self.inner.sandbox
    }

    /// The compiled module `hash`, from memory or disk, if this worker has it.
    ///
    /// Blocks on disk reads: call it off the async runtime.
    pub fn get(&self, hash: &ModuleHash) -> Option<Guest> {
        if let Some(guest) = self.lock().get(hash) {
            return Some(guest.clone());
        }
        let guest = self.load(hash)?;
        self.lock().insert(*hash, guest.clone());
        Some(guest)
    }

    /// Checks and compiles `bytes`, which must hash to `hash`, and keeps the result.
    ///
    /// Blocks while compiling: call it off the async runtime.
    ///
    /// # Errors
    /// When the bytes do not match the hash or are not a runnable guest.
    pub fn insert(&self, hash: &ModuleHash, bytes: &[u8]) -> Result<Guest, AbiError> {
        let actual = ModuleHash::of(bytes);
        if actual != *hash {
            return Err(AbiError::Invalid(format!(
                "the bytes hash to {actual}, not {hash}"
            )));
        }
        let guest = self.inner.sandbox.compile(bytes)?;
        if let Err(error) = self.store(hash, bytes, &guest) {
            tracing::warn!(%hash, %error, "cannot write the module cache; continuing without it");
        }
        self.lock().insert(*hash, guest.clone());
        Ok(guest)
    }

    /// Keeps a module compiled elsewhere in this process (the server hands its local workers
    /// the modules it compiled when it admitted them).
    pub fn seed(&self, hash: ModuleHash, guest: Guest) {
        self.lock().insert(hash, guest);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ModuleHash, Guest>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.inner
            .ready
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn paths(&self, hash: &ModuleHash) -> Option<(PathBuf, PathBuf)> {
        let dir = self.inner.dir.as_ref()?;
        Some((
            dir.join(format!("{hash}.wasm")),
            dir.join(format!("{hash}-{}.cwasm", self.inner.key)),
        ))
    }

    fn load(&self, hash: &ModuleHash) -> Option<Guest> {
        let (wasm, artifact) = self.paths(hash)?;
        let bytes = std::fs::read(&wasm).ok()?;
        if ModuleHash::of(&bytes) != *hash {
            tracing::warn!(path = %wasm.display(), "cached module is corrupt; fetching it again");
            return None;
        }
        if artifact.exists() {
            // SAFETY: the artifact is in this worker's private cache directory and was written
            // by `store` below, never received from anyone.
            match unsafe { self.inner.sandbox.load_precompiled(&bytes, &artifact) } {
                Ok(guest) => return Some(guest),
                Err(error) => tracing::warn!(%hash, %error, "cannot load cached code; recompiling"),
            }
        }
        self.insert(hash, &bytes).ok()
    }

    fn store(&self, hash: &ModuleHash, bytes: &[u8], guest: &Guest) -> std::io::Result<()> {
        let Some((wasm, artifact)) = self.paths(hash) else {
            return Ok(());
        };
        write_atomically(&wasm, |path| std::fs::write(path, bytes))?;
        write_atomically(&artifact, |path| guest.serialize(path))
    }
}

/// Writes through a temporary file and renames it, so a reader never sees half a file.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    write(&temp)?;
    std::fs::rename(&temp, path)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Where modules are cached by default: `$XDG_CACHE_HOME/dipla/modules`, or
/// `~/.cache/dipla/modules`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("dipla").join("modules"))
}
