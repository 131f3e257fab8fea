//! The Dipla guest ABI, version 1: what a module must look like to run as a Dipla guest.
//!
//! A guest is a core wasm module that **imports nothing** and exports:
//!
//! - `memory`: its linear memory;
//! - `cabi_realloc(old_ptr: i32, old_len: i32, align: i32, new_len: i32) -> i32`: an
//!   allocator (the component model's); the host calls `cabi_realloc(0, 0, 1, len)` to get room
//!   for a task's input;
//! - one function per task, `(in_ptr: i32, in_len: i32) -> i64`, taking the input's JSON and
//!   returning `(out_ptr << 32) | out_len`. The output's first byte is a status: `0` and the
//!   rest is the result's JSON, `1` and the rest is a UTF-8 error message, or `2` and the rest
//!   is the result's JSON, which meets the stage's goal (stop the stage);
//! - optionally `dipla_panic_message() -> i64`: after a trap, `(ptr << 32) | len` of a UTF-8
//!   message explaining it (a panic), or 0;
//! - optionally `dipla_log() -> i64`: after the task returned or trapped, `(ptr << 32) | len`
//!   of the UTF-8 text the task logged, or 0. The host reads at most
//!   [`dipla_protocol::MAX_LOG_BYTES`] of it (cut with "…"), makes it printable, and ignores
//!   a log out of bounds; the log never changes the task's output or failure;
//! - a custom section named `dipla` holding one JSON object per line for each task export:
//!   `{"abi":1,"task":"<export>"}`, optionally with `"params":[{"name":..,"type":..}]` (Rust
//!   type strings, which let the server check the types and arity of every input and edge of
//!   a job when it loads it; without them, nothing is checked), `"returns":"<type>"` and
//!   `"fold":true` (a reducer: it also folds an array of more than two values).
//!
//! The host uses a fresh instance for every task and throws it away afterwards, so a guest
//! never needs to free anything. `docs/ARCHITECTURE.md` has a worked example in WAT.

use serde::Deserialize;
use thiserror::Error;
use wasmparser::{Parser, Payload};

/// The guest ABI version this sandbox runs.
pub const ABI_VERSION: u32 = 1;
/// The name of the custom section listing a module's tasks.
pub const SECTION: &str = "dipla";
/// The exported linear memory.
pub const MEMORY: &str = "memory";
/// The exported allocator.
pub const REALLOC: &str = "cabi_realloc";
/// The optional export that explains the last trap.
pub const PANIC_MESSAGE: &str = "dipla_panic_message";
/// The optional export that points at what the task logged.
pub const LOG: &str = "dipla_log";
/// Output status: the rest of the output is the result's JSON.
pub const STATUS_OK: u8 = 0;
/// Output status: the rest of the output is an error message.
pub const STATUS_ERR: u8 = 1;
/// Output status: the rest of the output is the result's JSON, and the result meets the
/// stage's goal: the stage should stop.
pub const STATUS_STOP: u8 = 2;

/// What [`inspect`] learns about a module without compiling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The task exports the `dipla` section lists, in order.
    pub tasks: Vec<TaskInfo>,
    /// The module's imports as `module.name` (a runnable guest has none).
    pub imports: Vec<String>,
    /// The bytes of linear memory the module starts with (its largest memory's initial
    /// size): a task's memory limit must leave room beyond it.
    pub initial_memory: u64,
    /// The bytes of DWARF debug sections (`.debug_*`) the module carries: a Rust guest built
    /// without `--release` has them, and runs several times slower.
    pub debug_info: u64,
    /// Whether it is a component (a Python guest built by `dipla-py`) rather than a core
    /// module; its imports are then WASI interfaces (`wasi:io/poll@0.2.9`), which the
    /// sandbox provides closed.
    pub component: bool,
}

/// A task memory limit too small for a module: it leaves no room beyond the memory the
/// module starts with for a task's input and output.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error(
    "memory_mb = {memory_mb} is not enough: the module itself starts with {:.2} MiB of memory ({} pages of 64 KiB) and each task needs room beyond it for its input; give at least {} MiB",
    mib(.initial_memory),
    .initial_memory >> 16,
    (.initial_memory >> 20) + 1
)]
pub struct MemoryTooSmall {
    /// The limit, in MiB.
    pub memory_mb: u32,
    /// The module's initial memory, in bytes.
    pub initial_memory: u64,
}

/// `bytes` in MiB.
fn mib(bytes: &u64) -> f64 {
    *bytes as f64 / f64::from(1u32 << 20)
}

/// Why a module is not a runnable Dipla guest.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AbiError {
    /// The bytes are not a valid wasm module.
    #[error("not a valid wasm module: {0}")]
    Invalid(String),
    /// The module is larger than whoever compiles it takes.
    #[error(
        "the module is {:.1} MiB, over the limit of {} MiB",
        *.bytes as f64 / f64::from(1 << 20),
        .limit >> 20
    )]
    TooLarge {
        /// Its size in bytes.
        bytes: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The bytes are not wasm at all: what they look like instead.
    #[error("not a wasm module: {0}")]
    NotWasm(String),
    /// The module imports something; the sandbox provides nothing to import.
    #[error(
        "the module imports {}; a Dipla guest may import nothing (the sandbox has no host functions)",
        .0.join(", ")
    )]
    Imports(Vec<String>),
    /// A required export is missing or has the wrong type.
    #[error("the module must export {what}")]
    Export {
        /// The export and the type it must have.
        what: String,
    },
    /// There is no `dipla` custom section.
    #[error(
        "the module has no `dipla` custom section listing its tasks (was it built with the Dipla guest SDK?)"
    )]
    NoSection,
    /// The `dipla` custom section is malformed.
    #[error("the `dipla` custom section is malformed at line {line}: {why}")]
    BadSection {
        /// The 1-based line at fault.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
    /// The module was built for another ABI version.
    #[error(
        "the module was built for guest ABI version {0}; this sandbox runs version {ABI_VERSION}"
    )]
    Version(u32),
    /// A named task is not one of the module's tasks.
    #[error("`{name}` is not a task of this module (its tasks: {})", list(.tasks))]
    NotATask {
        /// The name asked for.
        name: String,
        /// The module's tasks.
        tasks: Vec<String>,
    },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// One task, as the `dipla` section describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct TaskInfo {
    /// The export's name.
    #[serde(rename = "task")]
    pub name: String,
    /// The parameters, when the module says (the Rust SDK always does).
    #[serde(default)]
    pub params: Option<Vec<Param>>,
    /// The result type's name, when the module says.
    #[serde(default)]
    pub returns: Option<String>,
    /// Whether the task is a reducer that folds arrays of any length of at least 2.
    #[serde(default)]
    pub fold: bool,
    /// Whether the export is a verifier: it takes `[input, output]` of another task and
    /// returns `true` when the output is right for the input.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verifier: bool,
}

/// A task parameter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Param {
    /// Its name in the source.
    pub name: String,
    /// Its type's name in the source.
    #[serde(rename = "type")]
    pub ty: String,
}

impl TaskInfo {
    /// How many parameters the task takes, when the module says.
    pub fn arity(&self) -> Option<usize> {
        self.params.as_ref().map(Vec::len)
    }
}

impl std::fmt::Display for TaskInfo {
    /// `name(a: u64, b: u64) -> u64`, or `name(?)` when the module does not say.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.params {
            Some(params) => {
                let params: Vec<String> = params
                    .iter()
                    .map(|p| format!("{}: {}", p.name, p.ty))
                    .collect();
                write!(f, "{}({})", self.name, params.join(", "))?;
            }
            None => write!(f, "{}(?)", self.name)?,
        }
        if let Some(returns) = &self.returns {
            write!(f, " -> {returns}")?;
        }
        if self.fold {
            f.write_str(" [can reduce]")?;
        }
        if self.verifier {
            f.write_str(" [verifier]")?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Record {
    abi: u32,
    #[serde(flatten)]
    task: TaskInfo,
}

/// Reads a module's imports and its `dipla` section, without compiling it.
///
/// # Errors
/// When the bytes are not wasm, or the section is missing, malformed or of another version.
pub fn inspect(bytes: &[u8]) -> Result<ModuleInfo, AbiError> {
    if !bytes.starts_with(b"\0asm") {
        return Err(AbiError::NotWasm(what_it_is(bytes)));
    }
    // The version's layer: 0 for a core module, 1 for a component.
    if bytes.get(6..8) == Some(&[1, 0]) {
        let found = crate::component::read_sections(bytes)?;
        let interface = crate::component::INTERFACE;
        if !found.exports.iter().any(|name| {
            name.strip_prefix(interface)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('@'))
        }) {
            return Err(AbiError::Export {
                what: format!(
                    "the interface `{interface}` (a component must be built by `dipla-py build`); it exports {}",
                    list(&found.exports)
                ),
            });
        }
        return Ok(ModuleInfo {
            tasks: tasks(&found.dipla.ok_or(AbiError::NoSection)?)?,
            imports: found.imports,
            initial_memory: found.initial_memory,
            debug_info: found.debug_info,
            component: true,
        });
    }
    let mut imports = Vec::new();
    let mut section = None::<Vec<u8>>;
    let mut initial_memory = 0u64;
    let mut debug_info = 0u64;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| AbiError::Invalid(e.to_string()))? {
            Payload::MemorySection(reader) => {
                for memory in reader {
                    let memory = memory.map_err(|e| AbiError::Invalid(e.to_string()))?;
                    let page = memory.page_size_log2.map_or(1 << 16, |log2| 1u64 << log2);
                    initial_memory = initial_memory.max(memory.initial.saturating_mul(page));
                }
            }
            Payload::CustomSection(reader) if reader.name().starts_with(".debug_") => {
                debug_info += reader.data().len() as u64;
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(|e| AbiError::Invalid(e.to_string()))?;
                    imports.push(format!("{}.{}", import.module, import.name));
                }
            }
            Payload::CustomSection(reader) if reader.name() == SECTION => {
                // The linker concatenates the records of every task into one section; tolerate
                // several sections too, as a hand-written guest may have.
                section
                    .get_or_insert_default()
                    .extend_from_slice(reader.data());
            }
            _ => {}
        }
    }
    Ok(ModuleInfo {
        tasks: tasks(&section.ok_or(AbiError::NoSection)?)?,
        imports,
        initial_memory,
        debug_info,
        component: false,
    })
}

/// The tasks a `dipla` section lists.
fn tasks(section: &[u8]) -> Result<Vec<TaskInfo>, AbiError> {
    let text = std::str::from_utf8(section).map_err(|e| AbiError::BadSection {
        line: 1,
        why: format!("not UTF-8: {e}"),
    })?;
    let mut tasks: Vec<TaskInfo> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(line).map_err(|e| AbiError::BadSection {
            line: i + 1,
            why: e.to_string(),
        })?;
        if record.abi != ABI_VERSION {
            return Err(AbiError::Version(record.abi));
        }
        if !tasks.iter().any(|task| task.name == record.task.name) {
            tasks.push(record.task);
        }
    }
    Ok(tasks)
}

/// What `bytes`, which are not wasm, look like, for a one-line message.
fn what_it_is(bytes: &[u8]) -> String {
    let hint = "build the guest with `cargo build --release --target wasm32-unknown-unknown` and give the .wasm file";
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if bytes.is_empty() {
        return "the file is empty".to_owned();
    }
    let kind = if starts(b"\x7fELF") {
        "an ELF executable or library (a native build)"
    } else if starts(&[0xcf, 0xfa, 0xed, 0xfe]) || starts(&[0xca, 0xfe, 0xba, 0xbe]) {
        "a Mach-O executable (a native build)"
    } else if starts(b"MZ") {
        "a Windows executable (a native build)"
    } else if starts(b"!<arch>") {
        "a static library archive (an .rlib or .a, not the linked .wasm)"
    } else if starts(&[0x1f, 0x8b]) {
        "gzip-compressed data (decompress it first)"
    } else if starts(b"PK\x03\x04") {
        "a zip archive"
    } else if let Ok(text) = std::str::from_utf8(&bytes[..bytes.len().min(256)]) {
        let first = text.trim_start();
        if first.starts_with("(module") || first.starts_with(";;") {
            return "it is WebAssembly text (WAT); compile it to a binary module first (such as with `wat2wasm`)".to_owned();
        }
        let line: String = first
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(40)
            .collect();
        return format!("it is text, starting {line:?}; {hint}");
    } else {
        let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return format!(
            "it is binary data starting with bytes {} (a wasm module starts with 00 61 73 6d, \"\\0asm\"); {hint}",
            head.join(" ")
        );
    };
    format!("it is {kind}; {hint}")
}

impl ModuleInfo {
    /// A warning when the module looks like a debug build (it carries DWARF debug
    /// sections), which runs several times slower than a release build.
    pub fn debug_warning(&self) -> Option<String> {
        (self.debug_info > 0).then(|| {
            format!(
                "it carries {} KiB of debug info (.debug_* sections): it looks like a debug build, which runs several times slower; build it with `cargo build --release --target wasm32-unknown-unknown`",
                self.debug_info.div_ceil(1024)
            )
        })
    }

    /// Checks that a task memory limit of `memory_mb` MiB leaves room for a task's input
    /// and output beyond the memory the module starts with.
    ///
    /// # Errors
    /// [`MemoryTooSmall`], whose message names both figures and the least limit that works.
    pub fn check_memory(&self, memory_mb: u32) -> Result<(), MemoryTooSmall> {
        let limit = u64::from(memory_mb) << 20;
        if limit > self.initial_memory {
            return Ok(());
        }
        Err(MemoryTooSmall {
            memory_mb,
            initial_memory: self.initial_memory,
        })
    }
}

impl ModuleInfo {
    /// The task named `name`.
    ///
    /// # Errors
    /// [`AbiError::NotATask`], listing the tasks there are.
    pub fn task(&self, name: &str) -> Result<&TaskInfo, AbiError> {
        self.tasks
            .iter()
            .find(|task| task.name == name)
            .ok_or_else(|| AbiError::NotATask {
                name: name.to_owned(),
                tasks: self.tasks.iter().map(|task| task.name.clone()).collect(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(wat: &str) -> Vec<u8> {
        wat::parse_str(wat).unwrap()
    }

    #[test]
    fn reads_tasks_and_imports() {
        let info = inspect(&module(
            r#"(module
                (import "env" "clock" (func))
                (@custom "dipla" "{\"abi\":1,\"task\":\"a\"}\n")
                (@custom "dipla" "{\"abi\":1,\"task\":\"b\"}\n{\"abi\":1,\"task\":\"a\"}\n"))"#,
        ))
        .unwrap();
        let names: Vec<&str> = info.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(info.imports, ["env.clock"]);
        assert_eq!(info.task("b").unwrap().arity(), None);
        assert_eq!(
            info.task("c").unwrap_err().to_string(),
            "`c` is not a task of this module (its tasks: a, b)"
        );
    }

    #[test]
    fn reads_signatures() {
        let info = inspect(&module(
            r#"(module (@custom "dipla" "{\"abi\":1,\"task\":\"add\",\"params\":[{\"name\":\"a\",\"type\":\"u64\"},{\"name\":\"b\",\"type\":\"u64\"}],\"returns\":\"u64\",\"fold\":true}\n"))"#,
        ))
        .unwrap();
        let add = info.task("add").unwrap();
        assert_eq!(add.arity(), Some(2));
        assert_eq!(add.to_string(), "add(a: u64, b: u64) -> u64 [can reduce]");
    }

    #[test]
    fn a_module_without_the_section_is_refused() {
        assert_eq!(inspect(&module("(module)")), Err(AbiError::NoSection));
    }

    #[test]
    fn other_versions_and_malformed_records_are_refused() {
        let v2 = module(r#"(module (@custom "dipla" "{\"abi\":2,\"task\":\"a\"}"))"#);
        assert_eq!(inspect(&v2), Err(AbiError::Version(2)));
        let bad = module(r#"(module (@custom "dipla" "{\"abi\":1,\"task\":\"a\"}\nnope"))"#);
        assert!(matches!(
            inspect(&bad),
            Err(AbiError::BadSection { line: 2, .. })
        ));
    }

    #[test]
    fn files_that_are_not_wasm_are_named_in_one_line() {
        let error = |bytes: &[u8]| inspect(bytes).unwrap_err().to_string();
        assert_eq!(error(b""), "not a wasm module: the file is empty");
        let elf = error(b"\x7fELF\x02\x01\x01\0\0\0");
        assert!(elf.starts_with("not a wasm module: it is an ELF executable or library (a native build); build the guest with `cargo build --release --target wasm32-unknown-unknown`"), "{elf}");
        let wat = error(b"  (module (func))");
        assert!(wat.contains("WebAssembly text (WAT)"), "{wat}");
        let text = error(b"name = \"job\"\n[modules]\n");
        assert!(
            text.contains("it is text, starting \"name = \\\"job\\\"\""),
            "{text}"
        );
        let binary = error(&[0x01, 0x02, 0x03, 0xff, 0x00]);
        assert!(
            binary.contains("binary data starting with bytes 01 02 03 ff"),
            "{binary}"
        );
        for message in [elf, wat, text, binary] {
            assert!(
                !message.contains('\n') && !message.contains("actual=["),
                "{message}"
            );
        }
    }

    #[test]
    fn reads_the_initial_memory_and_the_debug_sections() {
        let info = inspect(&module(
            r#"(module (memory 17) (@custom "dipla" "{\"abi\":1,\"task\":\"a\"}\n"))"#,
        ))
        .unwrap();
        assert_eq!(info.initial_memory, 17 << 16);
        assert_eq!(info.debug_info, 0);
        assert_eq!(info.debug_warning(), None);
        assert!(info.check_memory(2).is_ok());
        assert_eq!(
            info.check_memory(1).unwrap_err().to_string(),
            "memory_mb = 1 is not enough: the module itself starts with 1.06 MiB of memory (17 pages of 64 KiB) and each task needs room beyond it for its input; give at least 2 MiB"
        );
        let debug = inspect(&module(
            r#"(module (memory 1) (@custom ".debug_info" "0123456789") (@custom ".debug_line" "01234")
                (@custom "dipla" "{\"abi\":1,\"task\":\"a\"}\n"))"#,
        ))
        .unwrap();
        assert_eq!(debug.debug_info, 15);
        assert!(debug.check_memory(1).is_ok());
        let warning = debug.debug_warning().unwrap();
        assert!(warning.contains("looks like a debug build"), "{warning}");
        assert!(warning.contains("--release"), "{warning}");
    }

    #[test]
    fn garbage_is_not_a_module() {
        assert!(matches!(
            inspect(b"\0asm garbage"),
            Err(AbiError::Invalid(_))
        ));
        assert!(matches!(inspect(b"hello"), Err(AbiError::NotWasm(_))));
    }
}
