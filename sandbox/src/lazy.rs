//! A guest module admitted without compiling it, compiled the first time something runs it.

use std::sync::{Arc, OnceLock};

use crate::abi::{AbiError, ModuleInfo, TaskInfo};
use crate::guest::{About, Guest};
use crate::sandbox::Sandbox;

/// A module checked against the guest ABI by [`Sandbox::admit`], compiled on the first call
/// to [`LazyGuest::compiled`] and kept. Cheap to clone: clones share the one compilation.
#[derive(Clone)]
pub struct LazyGuest(Arc<Inner>);

struct Inner {
    sandbox: Sandbox,
    bytes: Arc<[u8]>,
    about: Arc<About>,
    compiled: OnceLock<Result<Guest, AbiError>>,
}

impl std::fmt::Debug for LazyGuest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyGuest")
            .field("tasks", &self.0.about.info.tasks)
            .field("compiled", &self.is_compiled())
            .finish_non_exhaustive()
    }
}

impl LazyGuest {
    pub(crate) fn new(sandbox: Sandbox, bytes: Arc<[u8]>, about: Arc<About>) -> Self {
        Self(Arc::new(Inner {
            sandbox,
            bytes,
            about,
            compiled: OnceLock::new(),
        }))
    }

    /// What the module's `dipla` section says.
    pub fn info(&self) -> &ModuleInfo {
        &self.0.about.info
    }

    /// The module's bytes.
    pub fn bytes(&self) -> &Arc<[u8]> {
        &self.0.bytes
    }

    /// Checks that `export` is a task of this module with the task signature, as
    /// [`Guest::check_task`] does, without compiling it.
    ///
    /// # Errors
    /// When it is not listed in the `dipla` section or has another type.
    pub fn check_task(&self, export: &str) -> Result<&TaskInfo, AbiError> {
        self.0.about.check_task(export)
    }

    /// The compiled module, compiling it on the first call (callers at the same time wait
    /// for that one compilation). What admission read is not read again.
    ///
    /// # Errors
    /// When compiling fails, which validation in [`Sandbox::admit`] makes rare (an
    /// implementation limit of the compiler, such as a function too large).
    pub fn compiled(&self) -> Result<&Guest, AbiError> {
        self.0
            .compiled
            .get_or_init(|| {
                let inner = &self.0;
                inner
                    .sandbox
                    .compile_admitted(&inner.bytes, inner.about.clone())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Whether [`LazyGuest::compiled`] has run.
    pub fn is_compiled(&self) -> bool {
        self.0.compiled.get().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUEST: &str = r#"(module
        (memory (export "memory") 1)
        (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) i32.const 16)
        (func (export "seven") (param i32 i32) (result i64)
            (i32.store8 (i32.const 0) (i32.const 0))
            (i32.store8 (i32.const 1) (i32.const 55))
            (i64.const 2))
        (@custom "dipla" "{\"abi\":1,\"task\":\"seven\"}\n{\"abi\":1,\"task\":\"absent\"}\n"))"#;

    #[test]
    fn checks_without_compiling_then_compiles_once() {
        let sandbox = Sandbox::new().unwrap();
        let lazy = sandbox.admit(wat::parse_str(GUEST).unwrap()).unwrap();
        assert!(lazy.check_task("seven").is_ok());
        assert_eq!(
            lazy.check_task("absent").unwrap_err().to_string(),
            "the module must export task `absent` as `(i32, i32) -> i64`"
        );
        assert!(!lazy.is_compiled(), "checking compiles nothing");
        let copy = lazy.clone();
        let run = lazy
            .compiled()
            .unwrap()
            .run("seven", b"null", &crate::Limits::default());
        assert_eq!(run.outcome.unwrap().get(), "7");
        assert!(copy.is_compiled(), "clones share the compilation");
    }

    #[test]
    fn admits_and_refuses_what_compile_does() {
        let sandbox = Sandbox::new().unwrap();
        let invalid = wat::parse_str(GUEST.replace("(i64.const 2)", "(i32.const 2)")).unwrap();
        for refused in [
            sandbox.admit(invalid.clone()).unwrap_err(),
            sandbox.compile(&invalid).unwrap_err(),
        ] {
            assert!(
                matches!(&refused, AbiError::Invalid(why) if why.contains("type mismatch")),
                "{refused}"
            );
        }
        let no_realloc = wat::parse_str(GUEST.replace("cabi_realloc", "realloc")).unwrap();
        assert_eq!(
            sandbox.admit(no_realloc.clone()).unwrap_err(),
            sandbox.compile(&no_realloc).unwrap_err()
        );
    }
}
