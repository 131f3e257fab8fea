//! The `[modules]` table: each module read, hashed and admitted by the sandbox.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use dipla_protocol::{ModuleHash, TaskLimits};
use dipla_sandbox::{LazyGuest, Sandbox};

use super::{Fault, ReadFile};
use crate::Module;

/// The admitted modules by their manifest names, for the stages to find their tasks in.
pub(super) type Guests<'a> = HashMap<&'a str, (ModuleHash, LazyGuest)>;

/// Reads and admits every module `modules` names (by name, as the manifest has them, read
/// by `read`), checking each starts within `limits`; `path` names the manifest in warnings.
pub(super) fn load<'a>(
    modules: &'a BTreeMap<String, PathBuf>,
    limits: TaskLimits,
    path: &Path,
    sandbox: &Sandbox,
    read: &ReadFile<'_>,
) -> Result<(Vec<Module>, Guests<'a>), Fault> {
    if modules.is_empty() {
        return Err(Fault::new("modules", "declare at least one module"));
    }
    let mut loaded = Vec::new();
    let mut guests = HashMap::new();
    for (name, module_path) in modules {
        let key = format!("modules.{name}");
        let bytes = read(module_path).map_err(|e| Fault::new(key.clone(), e))?;
        let hash = ModuleHash::of(&bytes);
        let guest = sandbox
            .admit(bytes)
            .map_err(|e| Fault::new(key.clone(), format!("{}: {e}", module_path.display())))?;
        guest.info().check_memory(limits.memory_mb).map_err(|e| {
            Fault::new(
                "limits.memory_mb",
                format!("module {name} ({}): {e}", module_path.display()),
            )
        })?;
        if let Some(warning) = guest.info().debug_warning() {
            // Logged as the manifest's, where it was before the manifest was split.
            tracing::warn!(
                target: "dipla_server::manifest",
                "{}: module {name} ({}): {warning}",
                path.display(),
                module_path.display()
            );
        }
        loaded.push(Module {
            name: name.clone(),
            hash,
            bytes: guest.bytes().clone(),
            guest: guest.clone(),
        });
        guests.insert(name.as_str(), (hash, guest));
    }
    Ok((loaded, guests))
}
