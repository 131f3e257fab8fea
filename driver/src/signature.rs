//! The tasks a guest module says it has: its `dipla` custom section, one JSON object per
//! line (see the guest ABI in `docs/ARCHITECTURE.md`), read without compiling the module.

use serde::{Deserialize, Serialize};
use wasmparser::{Encoding, Parser, Payload};

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

/// The tasks listed in a module's `dipla` section.
///
/// # Errors
/// A message saying why the bytes are not a Dipla guest: not wasm, a component, no `dipla`
/// section, or a malformed one.
pub(crate) fn tasks_of(bytes: &[u8]) -> Result<Vec<TaskInfo>, String> {
    let mut section = None::<Vec<u8>>;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| format!("not a WebAssembly module: {}", e.message()))? {
            Payload::Version {
                encoding: Encoding::Component,
                ..
            } => return Err("this is a component; Dipla runs core modules".into()),
            Payload::CustomSection(reader) if reader.name() == SECTION => {
                section
                    .get_or_insert_default()
                    .extend_from_slice(reader.data());
            }
            _ => {}
        }
    }
    let section = section.ok_or(
        "the module has no `dipla` custom section listing its tasks (was it built with the Dipla guest SDK?)",
    )?;
    let text = std::str::from_utf8(&section)
        .map_err(|e| format!("the `dipla` custom section is not UTF-8: {e}"))?;
    let mut tasks: Vec<TaskInfo> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(line).map_err(|e| {
            format!(
                "the `dipla` custom section is malformed at line {}: {e}",
                i + 1
            )
        })?;
        if record.abi != ABI_VERSION {
            return Err(format!(
                "the module speaks guest ABI version {}; this driver speaks {ABI_VERSION}",
                record.abi
            ));
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
        let error = tasks_of(b"not wasm at all").unwrap_err();
        assert!(error.starts_with("not a WebAssembly module"), "{error}");
        let bare = wat::parse_str("(module)").unwrap();
        assert!(
            tasks_of(&bare)
                .unwrap_err()
                .contains("no `dipla` custom section")
        );
        let v2 =
            wat::parse_str(r#"(module (@custom "dipla" "{\"abi\":2,\"task\":\"a\"}"))"#).unwrap();
        assert!(tasks_of(&v2).unwrap_err().contains("version 2"));
    }
}
