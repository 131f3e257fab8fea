//! The tasks a guest module says it has: its `dipla` custom section, one JSON object per
//! line (see the guest ABI in `docs/ARCHITECTURE.md`), read without compiling the module.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use wasmparser::{BinaryReaderError, Chunk, Parser, Payload};

/// The custom section listing a module's tasks.
const SECTION: &str = "dipla";
/// The guest ABI version this driver speaks.
const ABI_VERSION: u32 = 1;

/// One task of a module, as its `#[task]` recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Whether the export is a verifier of another task's outputs.
    #[serde(default)]
    pub verifier: bool,
}

/// A task parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    /// Its name in the source.
    pub name: String,
    /// Its type's name in the source.
    #[serde(rename = "type")]
    pub ty: String,
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

/// Why bytes are not a Dipla guest.
#[derive(Debug, Error)]
pub(crate) enum NotAGuest {
    /// Not wasm, or not valid wasm.
    #[error("not a WebAssembly module: {}", .0.message())]
    NotWasm(BinaryReaderError),
    /// The bytes end in the middle of a section.
    #[error("the module is truncated")]
    Truncated,
    /// No `dipla` custom section.
    #[error(
        "the module has no `dipla` custom section listing its tasks (was it built with the Dipla guest SDK?)"
    )]
    NoSection,
    /// The `dipla` section is not text.
    #[error("the `dipla` custom section is not UTF-8: {0}")]
    NotUtf8(std::str::Utf8Error),
    /// A line of the `dipla` section is not a task record.
    #[error("the `dipla` custom section is malformed at line {line}: {error}")]
    Malformed {
        /// The 1-based line.
        line: usize,
        /// Why.
        error: serde_json::Error,
    },
    /// The module was built for another guest ABI.
    #[error("the module speaks guest ABI version {0}; this driver speaks {ABI_VERSION}")]
    Version(u32),
}

/// The tasks listed in a module's `dipla` section: a core module's (a Rust guest's), or a
/// component's top-level one (a Python guest's, which `dipla-py build` appends).
///
/// # Errors
/// [`NotAGuest`], saying why the bytes are not a Dipla guest: not wasm, no `dipla` section,
/// or a malformed one.
pub(crate) fn tasks_of(bytes: &[u8]) -> Result<Vec<TaskInfo>, NotAGuest> {
    let mut section = None::<Vec<u8>>;
    // The top level only: a component's nested modules are stepped over whole.
    let mut parser = Parser::new(0);
    let mut offset = 0;
    loop {
        let (payload, consumed) = match parser
            .parse(&bytes[offset..], true)
            .map_err(NotAGuest::NotWasm)?
        {
            Chunk::NeedMoreData(_) => return Err(NotAGuest::Truncated),
            Chunk::Parsed { payload, consumed } => (payload, consumed),
        };
        offset += consumed;
        match payload {
            Payload::CustomSection(reader) if reader.name() == SECTION => {
                section
                    .get_or_insert_default()
                    .extend_from_slice(reader.data());
            }
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => offset = unchecked_range.end,
            Payload::End(_) => break,
            _ => {}
        }
    }
    let section = section.ok_or(NotAGuest::NoSection)?;
    let text = std::str::from_utf8(&section).map_err(NotAGuest::NotUtf8)?;
    let mut tasks: Vec<TaskInfo> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(line)
            .map_err(|error| NotAGuest::Malformed { line: i + 1, error })?;
        if record.abi != ABI_VERSION {
            return Err(NotAGuest::Version(record.abi));
        }
        if !tasks.iter().any(|task| task.name == record.task.name) {
            tasks.push(record.task);
        }
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_tasks_a_module_lists() {
        let bytes = wat::parse_str(
            r#"(module (@custom "dipla" "{\"abi\":1,\"task\":\"add\",\"params\":[{\"name\":\"a\",\"type\":\"u64\"},{\"name\":\"b\",\"type\":\"u64\"}],\"returns\":\"u64\",\"fold\":true}\n"))"#,
        )
        .unwrap();
        let tasks = tasks_of(&bytes).unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(
            tasks[0].to_string(),
            "add(a: u64, b: u64) -> u64 [can reduce]"
        );
    }

    #[test]
    fn says_why_bytes_are_not_a_guest() {
        let error = tasks_of(b"not wasm at all").unwrap_err().to_string();
        assert!(error.starts_with("not a WebAssembly module"), "{error}");
        let bare = wat::parse_str("(module)").unwrap();
        assert!(
            tasks_of(&bare)
                .unwrap_err()
                .to_string()
                .contains("no `dipla` custom section")
        );
        let v2 =
            wat::parse_str(r#"(module (@custom "dipla" "{\"abi\":2,\"task\":\"a\"}"))"#).unwrap();
        assert!(tasks_of(&v2).unwrap_err().to_string().contains("version 2"));
    }

    #[test]
    fn reads_a_components_top_level_section() {
        // A component's header, then a custom section `dipla`, as `dipla-py build` appends it.
        let record =
            br#"{"abi":1,"task":"square","params":[{"name":"x","type":"i128"}],"returns":"i128"}"#;
        let mut body = vec![5];
        body.extend_from_slice(b"dipla");
        body.extend_from_slice(record);
        let mut bytes = b"\0asm\x0d\x00\x01\x00".to_vec();
        bytes.push(0);
        bytes.push(u8::try_from(body.len()).unwrap());
        bytes.extend_from_slice(&body);
        let tasks = tasks_of(&bytes).unwrap();
        assert_eq!(tasks[0].to_string(), "square(x: i128) -> i128");
    }
}
