//! What wasmtime does when it instantiates a module, and whether that costs fuel.
//!
//! wasmtime 48 compiles a "module startup" function for modules whose instantiation needs code
//! (`wasmtime-environ`'s `module_environ.rs`: `require_startup_func`): a `start` function,
//! global initialisers other than one constant, passive element segments, table segments it
//! cannot precompute, or data it cannot map copy-on-write. That function runs under the
//! task's fuel and charges for what it does (1 to enter, per constant operator, per byte and
//! element initialised), and whether the data part runs depends on whether the host could map
//! the memory image. A module needing none of it, like every guest rustc builds, instantiates
//! for 0 fuel, which is what an instrumented module costs at instantiation; the others are
//! refused, as the pass could not say what they cost.

use wasmparser::{
    ConstExpr, Data, DataKind, Element, ElementItems, ElementKind, MemoryType, Operator, TableInit,
    TableType,
};

use crate::InstrumentError;

/// wasmtime's `memory_guaranteed_dense_image_size` (not changed by the sandbox).
const DENSE_IMAGE_BYTES: u64 = 16 << 20;
/// wasmtime's `MAX_FUNC_TABLE_SIZE` for precomputed tables.
const MAX_FUNC_TABLE_SIZE: u64 = 1 << 20;

/// What instantiating a module involves, gathered section by section.
#[derive(Debug, Default)]
pub(crate) struct Startup {
    /// Why wasmtime would run a startup function, if it would.
    needs_code: Option<String>,
    /// Active element segments in order: table, constant offset, length, as function indices.
    elements: Vec<(u32, Option<u64>, u64, bool)>,
    /// Active data segments: constant offset and length.
    data: Vec<(Option<u64>, u64)>,
}

/// The value of a constant expression that is one `i32.const`.
fn single_i32(expr: &ConstExpr) -> Option<u64> {
    let mut reader = expr.get_operators_reader();
    let first = reader.read().ok()?;
    let end = reader.read().ok()?;
    match (first, end, reader.eof()) {
        (Operator::I32Const { value }, Operator::End, true) => Some(u64::from(value as u32)),
        _ => None,
    }
}

/// Whether wasmtime evaluates `expr` at compile time (`ConstExpr::const_eval`: exactly one
/// numeric constant).
pub(crate) fn const_eval(expr: &ConstExpr) -> Option<Operator<'static>> {
    let mut reader = expr.get_operators_reader();
    let first = reader.read().ok()?;
    let end = reader.read().ok()?;
    if !matches!(end, Operator::End) || !reader.eof() {
        return None;
    }
    match first {
        Operator::I32Const { value } => Some(Operator::I32Const { value }),
        Operator::I64Const { value } => Some(Operator::I64Const { value }),
        Operator::F32Const { value } => Some(Operator::F32Const { value }),
        Operator::F64Const { value } => Some(Operator::F64Const { value }),
        Operator::V128Const { value } => Some(Operator::V128Const { value }),
        _ => None,
    }
}

impl Startup {
    fn needs(&mut self, why: &str) {
        self.needs_code.get_or_insert_with(|| why.to_owned());
    }

    /// A `start` section.
    pub(crate) fn start(&mut self) {
        self.needs("a start function");
    }

    /// A table of the table section.
    pub(crate) fn table(&mut self, init: &TableInit) {
        if matches!(init, TableInit::Expr(_)) {
            self.needs("a table with an initialiser expression");
        }
    }

    /// A global's initialiser.
    pub(crate) fn global(&mut self, init: &ConstExpr) {
        if const_eval(init).is_none() {
            self.needs("a global initialised by more than one constant");
        }
    }

    /// An element segment.
    pub(crate) fn element(&mut self, element: &Element) {
        match &element.kind {
            ElementKind::Passive => self.needs("a passive element segment"),
            ElementKind::Declared => {}
            ElementKind::Active {
                table_index,
                offset_expr,
            } => self.elements.push((
                table_index.unwrap_or(0),
                single_i32(offset_expr),
                u64::from(match &element.items {
                    ElementItems::Functions(items) => items.count(),
                    ElementItems::Expressions(_, items) => items.count(),
                }),
                matches!(element.items, ElementItems::Functions(_)),
            )),
        }
    }

    /// A data segment.
    pub(crate) fn data(&mut self, data: &Data) {
        if let DataKind::Active { offset_expr, .. } = &data.kind {
            self.data
                .push((single_i32(offset_expr), data.data.len() as u64));
        }
    }

    /// Checks that instantiating costs no fuel in the sandbox, given the module's `tables`
    /// and `memory`.
    pub(crate) fn check(
        mut self,
        tables: &[TableType],
        memory: Option<&MemoryType>,
    ) -> Result<(), InstrumentError> {
        // `try_func_table_init`: segments are applied in order while each one can be.
        for &(table, offset, len, functions) in &self.elements {
            let Some(ty) = tables.get(table as usize) else {
                continue;
            };
            let fits = offset
                .and_then(|offset| offset.checked_add(len))
                .is_some_and(|top| top <= ty.initial && top <= MAX_FUNC_TABLE_SIZE);
            if !fits || !functions || !ty.element_type.is_func_ref() {
                self.needs("an element segment wasmtime cannot precompute");
                break;
            }
        }
        // `try_static_init`: every segment at a constant offset within the initial memory,
        // and the image dense enough.
        let (mut size, mut low, mut high) = (0u64, u64::MAX, 0u64);
        for &(offset, len) in &self.data {
            let initial = memory.map_or(0, |m| m.initial.saturating_mul(1 << 16));
            let end = offset.and_then(|offset| offset.checked_add(len));
            match (offset, end) {
                (Some(offset), Some(end)) if end <= initial => {
                    if len > 0 {
                        size += len;
                        low = low.min(offset);
                        high = high.max(end);
                    }
                }
                _ => {
                    self.needs("a data segment wasmtime cannot map copy-on-write");
                    break;
                }
            }
        }
        if size > 0 {
            let image = high - low;
            if image >= size.saturating_mul(2) && image >= DENSE_IMAGE_BYTES {
                self.needs("data too sparse for wasmtime to map copy-on-write");
            }
        }
        match self.needs_code {
            Some(why) => Err(InstrumentError::Startup(why)),
            None => Ok(()),
        }
    }
}
