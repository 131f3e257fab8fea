//! What a module exports, with the types the guest ABI cares about, read without compiling
//! it: a server admits modules by their exports long before (if ever) it runs one.

use std::collections::HashMap;

use wasmparser::{ExternalKind, Parser, Payload, TypeRef, ValType};

use crate::abi::{self, AbiError};

/// One export's kind, with its type where the ABI checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Export {
    /// A function of these parameter and result types.
    Func {
        params: Vec<ValType>,
        results: Vec<ValType>,
    },
    /// A linear memory.
    Memory { memory64: bool, shared: bool },
    /// A table, global or tag.
    Other,
}

/// A module's exports by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Exports(HashMap<String, Export>);

impl Exports {
    /// Reads the exports of the module `bytes`.
    ///
    /// # Errors
    /// When the bytes do not parse, or an export names an item that does not exist.
    pub(crate) fn read(bytes: &[u8]) -> Result<Self, AbiError> {
        let invalid = |why: String| AbiError::Invalid(why);
        let mut types = Vec::new();
        let mut funcs = Vec::new();
        let mut memories = Vec::new();
        let mut exports = Vec::new();
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.map_err(|e| invalid(e.to_string()))? {
                Payload::TypeSection(reader) => {
                    for ty in reader.into_iter_err_on_gc_types() {
                        types.push(ty.map_err(|e| invalid(e.to_string()))?);
                    }
                }
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        match import.map_err(|e| invalid(e.to_string()))?.ty {
                            TypeRef::Func(ty) | TypeRef::FuncExact(ty) => funcs.push(ty),
                            TypeRef::Memory(memory) => memories.push(memory),
                            _ => {}
                        }
                    }
                }
                Payload::FunctionSection(reader) => {
                    for ty in reader {
                        funcs.push(ty.map_err(|e| invalid(e.to_string()))?);
                    }
                }
                Payload::MemorySection(reader) => {
                    for memory in reader {
                        memories.push(memory.map_err(|e| invalid(e.to_string()))?);
                    }
                }
                Payload::ExportSection(reader) => {
                    for export in reader {
                        let export = export.map_err(|e| invalid(e.to_string()))?;
                        exports.push((export.name.to_owned(), export.kind, export.index));
                    }
                }
                _ => {}
            }
        }
        let mut by_name = HashMap::new();
        for (name, kind, index) in exports {
            let missing = || invalid(format!("export `{name}` names a missing item {index}"));
            let export = match kind {
                ExternalKind::Func | ExternalKind::FuncExact => {
                    let ty = funcs.get(index as usize).ok_or_else(missing)?;
                    let ty = types.get(*ty as usize).ok_or_else(missing)?;
                    Export::Func {
                        params: ty.params().to_vec(),
                        results: ty.results().to_vec(),
                    }
                }
                ExternalKind::Memory => {
                    let memory = memories.get(index as usize).ok_or_else(missing)?;
                    Export::Memory {
                        memory64: memory.memory64,
                        shared: memory.shared,
                    }
                }
                _ => Export::Other,
            };
            by_name.insert(name, export);
        }
        Ok(Self(by_name))
    }

    /// Whether the module exports a function `name` of exactly these types.
    pub(crate) fn has_func(&self, name: &str, params: &[ValType], results: &[ValType]) -> bool {
        matches!(
            self.0.get(name),
            Some(Export::Func { params: p, results: r }) if p == params && r == results
        )
    }

    /// Checks the exports every guest needs: a 32-bit unshared `memory`, `cabi_realloc`, and
    /// `dipla_panic_message` and `dipla_log` only with their type.
    ///
    /// # Errors
    /// [`AbiError::Export`], naming the export and the type it must have.
    pub(crate) fn check_guest(&self) -> Result<(), AbiError> {
        let missing = |what: &str| AbiError::Export {
            what: what.to_owned(),
        };
        match self.0.get(abi::MEMORY) {
            Some(Export::Memory {
                memory64: false,
                shared: false,
            }) => {}
            _ => return Err(missing("`memory`, a 32-bit unshared linear memory")),
        }
        if !self.has_func(abi::REALLOC, &[ValType::I32; 4], &[ValType::I32]) {
            return Err(missing("`cabi_realloc: (i32, i32, i32, i32) -> i32`"));
        }
        if self.0.contains_key(abi::PANIC_MESSAGE)
            && !self.has_func(abi::PANIC_MESSAGE, &[], &[ValType::I64])
        {
            return Err(missing("`dipla_panic_message` only as `() -> i64`"));
        }
        if self.0.contains_key(abi::LOG) && !self.has_func(abi::LOG, &[], &[ValType::I64]) {
            return Err(missing("`dipla_log` only as `() -> i64`"));
        }
        Ok(())
    }

    /// Checks that `export` has the task signature, `(i32, i32) -> i64`.
    ///
    /// # Errors
    /// [`AbiError::Export`] when it is missing or has another type.
    pub(crate) fn check_task(&self, export: &str) -> Result<(), AbiError> {
        if self.has_func(export, &[ValType::I32, ValType::I32], &[ValType::I64]) {
            Ok(())
        } else {
            Err(AbiError::Export {
                what: format!("task `{export}` as `(i32, i32) -> i64`"),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exports(wat: &str) -> Exports {
        Exports::read(&wat::parse_str(wat).unwrap()).unwrap()
    }

    #[test]
    fn reads_function_and_memory_types_through_imports() {
        let exports = exports(
            r#"(module
                (import "env" "f" (func $imported (param i32) (result i32)))
                (memory (export "memory") 1)
                (func (export "task") (param i32 i32) (result i64) i64.const 0)
                (func (export "other") (param f64))
                (export "again" (func $imported))
                (global (export "g") i32 (i32.const 0)))"#,
        );
        assert!(exports.has_func("task", &[ValType::I32, ValType::I32], &[ValType::I64]));
        assert!(exports.has_func("again", &[ValType::I32], &[ValType::I32]));
        assert!(exports.check_task("task").is_ok());
        assert!(exports.check_task("other").is_err());
        assert!(exports.check_task("g").is_err());
        assert!(exports.check_task("absent").is_err());
        assert_eq!(
            exports.check_guest().unwrap_err().to_string(),
            "the module must export `cabi_realloc: (i32, i32, i32, i32) -> i32`"
        );
    }

    #[test]
    fn the_optional_exports_must_have_their_type() {
        let guest = |extra: &str| {
            exports(&format!(
                r#"(module (memory (export "memory") 1)
                    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) i32.const 0)
                    {extra})"#
            ))
            .check_guest()
        };
        assert!(guest("").is_ok());
        assert!(guest(r#"(func (export "dipla_log") (result i64) i64.const 0)"#).is_ok());
        assert_eq!(
            guest(r#"(func (export "dipla_log") (result i32) i32.const 0)"#)
                .unwrap_err()
                .to_string(),
            "the module must export `dipla_log` only as `() -> i64`"
        );
        assert!(guest(r#"(global (export "dipla_panic_message") i64 (i64.const 0))"#).is_err());
    }

    #[test]
    fn a_64_bit_or_missing_memory_is_refused() {
        for memory in ["(memory (export \"memory\") i64 1)", "(memory 1)"] {
            let exports = exports(&format!(
                r#"(module {memory}
                    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) i32.const 0))"#
            ));
            assert_eq!(
                exports.check_guest().unwrap_err().to_string(),
                "the module must export `memory`, a 32-bit unshared linear memory"
            );
        }
    }
}
