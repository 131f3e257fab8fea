//! Reading a module, and writing it back with its functions instrumented and the ABI added.
//!
//! Every section but the type, function, global, export and code sections is copied byte for
//! byte (custom sections too, in place: the `dipla` section still lists the tasks, a `name`
//! section still names every function). Those five get entries appended: the types of the
//! helper functions and of multi-value function bodies, the helpers (out of fuel, the memory
//! and table guards), the ABI globals and their exports. Nothing is renumbered.

use std::collections::HashMap;

use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{
    CodeSection, ConstExpr, ExportKind, ExportSection, Function, FunctionSection, GlobalSection,
    GlobalType, RawSection, TypeSection, ValType,
};
use wasmparser::{
    FuncToValidate, FuncType, MemoryType, Operator, Parser, Payload, TableType, ValidPayload,
    Validator, ValidatorResources, WasmFeatures,
};

use crate::fuel::Walker;
use crate::memory::{self, GuardGlobals};
use crate::startup::{self, Startup};
use crate::{FUEL, InstrumentError, MEMORY_MAX_BYTES, TRAP_DETAIL, TRAP_REASON};

/// The proposals a guest may use: what the sandbox enables that the pass mirrors exactly
/// (WebAssembly 2.0 without `externref`, plus tail calls and extended constants). Threads,
/// relaxed SIMD, memory64 and multiple memories are off in the sandbox; exceptions, GC and
/// typed function references are refused.
fn features() -> WasmFeatures {
    (WasmFeatures::WASM2 - WasmFeatures::GC_TYPES)
        | WasmFeatures::TAIL_CALL
        | WasmFeatures::EXTENDED_CONST
}

/// A module read and validated, with what instrumenting it needs.
pub(crate) struct Module<'a> {
    pub(crate) bytes: &'a [u8],
    types: Vec<FuncType>,
    /// The type of each function.
    funcs: Vec<u32>,
    pub(crate) tables: Vec<TableType>,
    pub(crate) memory: Option<MemoryType>,
    /// Each global, with the `iconst` Cranelift makes of it if it is immutable and constant.
    globals: Vec<Option<i64>>,
    exports: Vec<String>,
    /// The section ids present.
    sections: Vec<u8>,
    bodies: Vec<FuncToValidate<ValidatorResources>>,
}

impl<'a> Module<'a> {
    /// Reads and validates `bytes`, refusing what the pass cannot instrument.
    pub(crate) fn read(bytes: &'a [u8]) -> Result<Self, InstrumentError> {
        let mut validator = Validator::new_with_features(features());
        let mut startup = Startup::default();
        let mut module = Module {
            bytes,
            types: Vec::new(),
            funcs: Vec::new(),
            tables: Vec::new(),
            memory: None,
            globals: Vec::new(),
            exports: Vec::new(),
            sections: Vec::new(),
            bodies: Vec::new(),
        };
        for payload in Parser::new(0).parse_all(bytes) {
            let payload = payload?;
            if let ValidPayload::Func(func, _) = validator.payload(&payload)? {
                module.bodies.push(func);
            }
            if let Some((id, _)) = payload.as_section() {
                module.sections.push(id);
            }
            match payload {
                Payload::TypeSection(reader) => {
                    for ty in reader.into_iter_err_on_gc_types() {
                        module.types.push(ty?);
                    }
                }
                Payload::ImportSection(reader) if reader.count() > 0 => {
                    return Err(InstrumentError::Imports);
                }
                Payload::FunctionSection(reader) => {
                    for ty in reader {
                        module.funcs.push(ty?);
                    }
                }
                Payload::TableSection(reader) => {
                    for table in reader {
                        let table = table?;
                        startup.table(&table.init);
                        module.tables.push(table.ty);
                    }
                }
                Payload::MemorySection(reader) => {
                    for memory in reader {
                        module.memory = Some(memory?);
                    }
                }
                Payload::GlobalSection(reader) => {
                    for global in reader {
                        let global = global?;
                        startup.global(&global.init_expr);
                        let konst = match startup::const_eval(&global.init_expr) {
                            _ if global.ty.mutable => None,
                            // `translate_global_get`: `iconst(I32, i64::from(x))`.
                            Some(Operator::I32Const { value }) => Some(i64::from(value)),
                            Some(Operator::I64Const { value }) => Some(value),
                            _ => None,
                        };
                        module.globals.push(konst);
                    }
                }
                Payload::ExportSection(reader) => {
                    for export in reader {
                        module.exports.push(export?.name.to_owned());
                    }
                }
                Payload::StartSection { .. } => startup.start(),
                Payload::ElementSection(reader) => {
                    for element in reader {
                        startup.element(&element?);
                    }
                }
                Payload::DataSection(reader) => {
                    for data in reader {
                        startup.data(&data?);
                    }
                }
                _ => {}
            }
        }
        startup.check(&module.tables, module.memory.as_ref())?;
        // The sandbox's pool holds one table per instance, of at most `MAX_TABLE_ELEMENTS`:
        // such a module fails there at instantiation, in a way no engine reproduces.
        if module.tables.len() > 1 {
            return Err(InstrumentError::Unsupported(
                "more than one table (the sandbox instantiates at most one)".into(),
            ));
        }
        if let Some(table) = module.tables.first()
            && table.initial > memory::MAX_TABLE_ELEMENTS
        {
            return Err(InstrumentError::Unsupported(format!(
                "a table of {} elements (the sandbox allows {})",
                table.initial,
                memory::MAX_TABLE_ELEMENTS
            )));
        }
        for name in [FUEL, TRAP_REASON, MEMORY_MAX_BYTES, TRAP_DETAIL] {
            if module.exports.iter().any(|export| export == name) {
                return Err(InstrumentError::NameTaken(name));
            }
        }
        Ok(module)
    }

    /// The type of function `index`.
    pub(crate) fn func_type(&self, index: u32) -> &FuncType {
        self.type_at(self.funcs[index as usize])
    }

    /// Type `index`.
    pub(crate) fn type_at(&self, index: u32) -> &FuncType {
        &self.types[index as usize]
    }

    /// The `iconst` Cranelift makes of `global.get index`, if it makes one.
    pub(crate) fn global_const(&self, index: u32) -> Option<i64> {
        self.globals[index as usize]
    }
}

/// Where the pass puts what it adds.
pub(crate) struct Layout {
    pub(crate) fuel: u32,
    pub(crate) reason: u32,
    memory_max: u32,
    detail: u32,
    pub(crate) out_of_fuel: u32,
    pub(crate) memory_guard: Option<u32>,
    pub(crate) table_guards: Vec<u32>,
    /// The types the pass appends: `(i64) -> ()`, `(i32) -> (i32)`, then `() -> results` for
    /// the bodies of multi-value functions.
    out_of_fuel_type: u32,
    guard_type: u32,
    results_types: HashMap<Vec<wasmparser::ValType>, u32>,
    new_results_types: Vec<Vec<wasmparser::ValType>>,
}

impl Layout {
    fn new(module: &Module) -> Self {
        let types = module.types.len() as u32;
        let mut results_types = HashMap::new();
        let mut new_results_types = Vec::new();
        for &ty in &module.funcs {
            let results = module.type_at(ty).results();
            if results.len() > 1 && !results_types.contains_key(results) {
                results_types.insert(results.to_vec(), types + 2 + new_results_types.len() as u32);
                new_results_types.push(results.to_vec());
            }
        }
        let globals = module.globals.len() as u32;
        let funcs = module.funcs.len() as u32;
        let mut next = funcs + 1;
        let memory_guard = module.memory.is_some().then(|| {
            next += 1;
            next - 1
        });
        let table_guards = (0..module.tables.len() as u32).map(|i| next + i).collect();
        Layout {
            fuel: globals,
            reason: globals + 1,
            memory_max: globals + 2,
            detail: globals + 3,
            out_of_fuel: funcs,
            memory_guard,
            table_guards,
            out_of_fuel_type: types,
            guard_type: types + 1,
            results_types,
            new_results_types,
        }
    }

    /// The type index of `() -> results`, for a multi-value function's body block.
    pub(crate) fn results_type(
        &self,
        results: &[wasmparser::ValType],
    ) -> Result<u32, InstrumentError> {
        self.results_types
            .get(results)
            .copied()
            .ok_or_else(|| InstrumentError::Unsupported("a multi-value block type".into()))
    }

    fn guard_globals(&self) -> GuardGlobals {
        GuardGlobals {
            reason: self.reason,
            detail: self.detail,
            memory_max: self.memory_max,
        }
    }

    /// The helper functions, in index order from `out_of_fuel`.
    fn helpers(&self, module: &Module) -> Vec<(u32, Function)> {
        let mut helpers = Vec::new();
        let mut out_of_fuel = Function::new([]);
        out_of_fuel
            .instructions()
            .local_get(0)
            .global_set(self.fuel)
            .i32_const(crate::TrapReason::OutOfFuel as i32)
            .global_set(self.reason)
            .unreachable()
            .end();
        helpers.push((self.out_of_fuel_type, out_of_fuel));
        if self.memory_guard.is_some() {
            helpers.push((self.guard_type, memory::memory_guard(self.guard_globals())));
        }
        for table in 0..module.tables.len() as u32 {
            helpers.push((
                self.guard_type,
                memory::table_guard(self.guard_globals(), table),
            ));
        }
        helpers
    }
}

/// Writes `module` instrumented.
pub(crate) fn write(mut module: Module) -> Result<Vec<u8>, InstrumentError> {
    let layout = Layout::new(&module);
    let mut bodies = std::mem::take(&mut module.bodies).into_iter();
    let mut out = wasm_encoder::Module::new();
    let mut reencoder = RoundtripReencoder;
    let mut code: Option<(CodeSection, u32, u32)> = None;
    let mut added = Added::default();
    let mut func_index = 0u32;
    for payload in Parser::new(0).parse_all(module.bytes) {
        let payload = payload?;
        if let Some((id, range)) = payload.as_section() {
            added.before(id, &module, &layout, &mut out)?;
            match payload {
                Payload::TypeSection(reader) => {
                    let mut types = TypeSection::new();
                    reencoder.parse_type_section(&mut types, reader)?;
                    added.types(&layout, &mut types)?;
                    out.section(&types);
                }
                Payload::FunctionSection(reader) => {
                    let mut funcs = FunctionSection::new();
                    reencoder.parse_function_section(&mut funcs, reader)?;
                    added.functions(&layout, &module, &mut funcs);
                    out.section(&funcs);
                }
                Payload::GlobalSection(reader) => {
                    let mut globals = GlobalSection::new();
                    reencoder.parse_global_section(&mut globals, reader)?;
                    added.globals(&mut globals);
                    out.section(&globals);
                }
                Payload::ExportSection(reader) => {
                    let mut exports = ExportSection::new();
                    reencoder.parse_export_section(&mut exports, reader)?;
                    added.exports(&layout, &mut exports);
                    out.section(&exports);
                }
                Payload::CodeSectionStart { count, .. } => {
                    code = Some((CodeSection::new(), count, 0));
                    if count == 0 {
                        added.code(&layout, &module, &mut code, &mut out);
                    }
                }
                _ => {
                    out.section(&RawSection {
                        id,
                        data: &module.bytes[range],
                    });
                }
            }
        } else if let Payload::CodeSectionEntry(body) = payload {
            let validator = bodies
                .next()
                .ok_or_else(|| InstrumentError::Invalid("a body without a function".into()))?
                .into_validator(Default::default());
            let func = Walker::function(&module, &layout, func_index, &body, validator)?;
            func_index += 1;
            if let Some((section, count, done)) = code.as_mut() {
                section.function(&func);
                *done += 1;
                if *done == *count {
                    added.code(&layout, &module, &mut code, &mut out);
                }
            }
        }
    }
    added.before(u8::MAX, &module, &layout, &mut out)?;
    Ok(out.finish())
}

/// The order of the known sections in a module.
fn rank(id: u8) -> u8 {
    match id {
        1 => 1,   // type
        2 => 2,   // import
        3 => 3,   // function
        4 => 4,   // table
        5 => 5,   // memory
        13 => 6,  // tag
        6 => 7,   // global
        7 => 8,   // export
        8 => 9,   // start
        9 => 10,  // element
        12 => 11, // data count
        10 => 12, // code
        11 => 13, // data
        _ => u8::MAX,
    }
}

/// The sections the pass adds to, and whether each was written.
#[derive(Default)]
struct Added {
    types: bool,
    functions: bool,
    globals: bool,
    exports: bool,
    code: bool,
}

impl Added {
    /// Writes the sections the module lacks that go before section `id` (custom sections
    /// stay where they are).
    fn before(
        &mut self,
        id: u8,
        module: &Module,
        layout: &Layout,
        out: &mut wasm_encoder::Module,
    ) -> Result<(), InstrumentError> {
        if id == 0 {
            return Ok(());
        }
        let at = rank(id);
        let missing = |section: u8| !module.sections.contains(&section) && at > rank(section);
        if !self.types && missing(1) {
            let mut types = TypeSection::new();
            self.types(layout, &mut types)?;
            out.section(&types);
        }
        if !self.functions && missing(3) {
            let mut funcs = FunctionSection::new();
            self.functions(layout, module, &mut funcs);
            out.section(&funcs);
        }
        if !self.globals && missing(6) {
            let mut globals = GlobalSection::new();
            self.globals(&mut globals);
            out.section(&globals);
        }
        if !self.exports && missing(7) {
            let mut exports = ExportSection::new();
            self.exports(layout, &mut exports);
            out.section(&exports);
        }
        if !self.code && missing(10) {
            let mut code = Some((CodeSection::new(), 0, 0));
            self.code(layout, module, &mut code, out);
        }
        Ok(())
    }

    fn types(&mut self, layout: &Layout, types: &mut TypeSection) -> Result<(), InstrumentError> {
        self.types = true;
        types.ty().function([ValType::I64], []);
        types.ty().function([ValType::I32], [ValType::I32]);
        for results in &layout.new_results_types {
            let results = results
                .iter()
                .map(|&ty| RoundtripReencoder.val_type(ty))
                .collect::<Result<Vec<_>, _>>()?;
            types.ty().function([], results);
        }
        Ok(())
    }

    fn functions(&mut self, layout: &Layout, module: &Module, funcs: &mut FunctionSection) {
        self.functions = true;
        for (ty, _) in layout.helpers(module) {
            funcs.function(ty);
        }
    }

    fn globals(&mut self, globals: &mut GlobalSection) {
        self.globals = true;
        let mutable = |val_type| GlobalType {
            val_type,
            mutable: true,
            shared: false,
        };
        // No fuel until the host gives some; no limit but the engine's until it sets one.
        globals.global(mutable(ValType::I64), &ConstExpr::i64_const(0));
        globals.global(mutable(ValType::I32), &ConstExpr::i32_const(0));
        globals.global(mutable(ValType::I64), &ConstExpr::i64_const(i64::MAX));
        globals.global(mutable(ValType::I64), &ConstExpr::i64_const(0));
    }

    fn exports(&mut self, layout: &Layout, exports: &mut ExportSection) {
        self.exports = true;
        exports.export(FUEL, ExportKind::Global, layout.fuel);
        exports.export(TRAP_REASON, ExportKind::Global, layout.reason);
        exports.export(MEMORY_MAX_BYTES, ExportKind::Global, layout.memory_max);
        exports.export(TRAP_DETAIL, ExportKind::Global, layout.detail);
    }

    fn code(
        &mut self,
        layout: &Layout,
        module: &Module,
        code: &mut Option<(CodeSection, u32, u32)>,
        out: &mut wasm_encoder::Module,
    ) {
        self.code = true;
        if let Some((mut section, _, _)) = code.take() {
            for (_, helper) in layout.helpers(module) {
                section.function(&helper);
            }
            out.section(&section);
        }
    }
}

impl<E: std::fmt::Display> From<wasm_encoder::reencode::Error<E>> for InstrumentError {
    fn from(error: wasm_encoder::reencode::Error<E>) -> Self {
        InstrumentError::Unsupported(error.to_string())
    }
}
