//! Fuel, counted in wasm exactly where and as much as wasmtime 48's Cranelift code counts it.
//!
//! wasmtime (`wasmtime-internal-cranelift`'s `func_environ.rs`) keeps the fuel of a running
//! function in a variable: loaded from the store on entry (`fuel_function_entry`), increased by
//! the statically accumulated cost of the operators translated so far (`fuel_increment_var`)
//! before every branch, `if`, `loop`, `else` and `end`, stored back (`fuel_save_from_var`)
//! before every call, `return`, `unreachable` and tail call and at the function's exit,
//! reloaded after calls, and checked (`fuel_check`: `>= 0` is out of fuel) on entry, at every
//! loop header and for large or dynamic bulk operations (`pre_translate_bulk_op`). Operators
//! cost `default_operator_cost` (`wasmtime-environ`'s `tunables.rs`): 0 for `nop`, `drop`,
//! `block`, `loop`, `unreachable`, `return`, `else` and `end`, 1 for anything else, plus 1 per
//! byte or element for the bulk operators (0 per page for `memory.grow`); code Cranelift knows
//! is unreachable costs nothing.
//!
//! [`Walker`] replays that translation over a function's operators, tracking reachability as
//! the translator does (`code_translator.rs`, `translate_unreachable_operator`), and emits the
//! same increments, saves, reloads and checks around the original operators, with a local `f`
//! for the variable and the exported global `dipla_fuel` for the store. The global then holds
//! what wasmtime's store holds at every save, so a task reports the same fuel whether it
//! returns or traps, and runs out of fuel at the same check.

use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{BlockType, Function, InstructionSink, ValType};
use wasmparser::{
    BlockType as WasmBlockType, FuncValidator, FunctionBody, Operator, ValType as WasmValType,
    ValidatorResources,
};

use crate::module::{Layout, Module};
use crate::ssa::{Block, Ssa, Val, Var};
use crate::{InstrumentError, TrapReason, memory, nan};

/// The fuel wasmtime charges for `op` itself (`default_operator_cost`).
fn cost(op: &Operator) -> i64 {
    match op {
        Operator::Nop
        | Operator::Drop
        | Operator::Block { .. }
        | Operator::Loop { .. }
        | Operator::Unreachable
        | Operator::Return
        | Operator::Else
        | Operator::End => 0,
        _ => 1,
    }
}

/// The fuel per unit of a bulk operator (`VariableOperatorCost::new`), if it is one.
fn per_unit(op: &Operator) -> Option<i64> {
    match op {
        Operator::MemoryCopy { .. }
        | Operator::MemoryFill { .. }
        | Operator::MemoryInit { .. }
        | Operator::TableCopy { .. }
        | Operator::TableFill { .. }
        | Operator::TableInit { .. }
        | Operator::TableGrow { .. } => Some(1),
        Operator::MemoryGrow { .. } => Some(0),
        _ => None,
    }
}

/// The most locals a function may have in wasmparser, V8 and SpiderMonkey.
const MAX_LOCALS: u32 = 50_000;

/// The statically known cost above which a bulk operation is followed by a fuel check
/// (`SMALL_BULK_OP_COST`).
const SMALL_BULK_OP_COST: i64 = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Function,
    Block,
    Loop,
    If {
        head_reachable: bool,
        consequent_ends_reachable: Option<bool>,
    },
}

/// A control frame, as Cranelift's `ControlStackFrame`.
#[derive(Debug)]
struct Frame {
    kind: Kind,
    exit_branched_to: bool,
    /// The block after the construct, and the variables of its parameters (the construct's
    /// results).
    following: Block,
    result_vars: Vec<Var>,
    /// A loop's header and the variables of its parameters.
    header: Block,
    header_vars: Vec<Var>,
    /// An `if`'s block, and its `else` block once known.
    head: Block,
    else_block: Option<Block>,
    /// Whether an `if`'s parameters equal its results (no `else` is needed).
    no_else: bool,
    original_stack_size: usize,
    params: usize,
    results: usize,
}

impl Frame {
    fn placeholder(kind: Kind, stack: usize) -> Self {
        Frame {
            kind,
            exit_branched_to: false,
            following: Block::MAX,
            result_vars: Vec::new(),
            header: Block::MAX,
            header_vars: Vec::new(),
            head: Block::MAX,
            else_block: None,
            no_else: true,
            original_stack_size: stack,
            params: 0,
            results: 0,
        }
    }

    /// Where a branch to this frame goes, and the variables it defines.
    fn br_destination(&self) -> (Block, &[Var]) {
        match self.kind {
            Kind::Loop => (self.header, &self.header_vars),
            _ => (self.following, &self.result_vars),
        }
    }

    fn set_branched_to_exit(&mut self) {
        if self.kind != Kind::Loop {
            self.exit_branched_to = true;
        }
    }
}

/// The locals the instrumentation adds to a function after its own: `f`, then scratch locals
/// of the types it needs, in the order it first needs them (fewer locals, smaller frames).
#[derive(Debug)]
struct Scratch {
    fuel: u32,
    added: Vec<ValType>,
}

impl Scratch {
    /// The scratch local of type `ty`.
    fn of(&mut self, ty: ValType) -> u32 {
        let at = match self.added.iter().position(|&added| added == ty) {
            Some(at) => at,
            None => {
                self.added.push(ty);
                self.added.len() - 1
            }
        };
        self.fuel + 1 + at as u32
    }
}

/// Instruments one function body.
pub(crate) struct Walker<'m> {
    module: &'m Module<'m>,
    layout: &'m Layout,
    out: Vec<u8>,
    ssa: Ssa,
    cur: Block,
    stack: Vec<Val>,
    frames: Vec<Frame>,
    reachable: bool,
    /// Fuel counted statically and not yet added to `f` (Cranelift's `fuel_consumed`).
    pending: i64,
    scratch: Scratch,
}

fn convert(ty: WasmValType) -> Result<ValType, InstrumentError> {
    Ok(RoundtripReencoder.val_type(ty)?)
}

impl<'m> Walker<'m> {
    /// Instruments the body of defined function `index`, validating it with `validator`.
    pub(crate) fn function(
        module: &'m Module<'m>,
        layout: &'m Layout,
        index: u32,
        body: &FunctionBody<'_>,
        mut validator: FuncValidator<ValidatorResources>,
    ) -> Result<Function, InstrumentError> {
        let ty = module.func_type(index);
        let mut ssa = Ssa::default();
        let entry = ssa.block();
        ssa.seal(entry);
        // Locals: parameters, then each declaration's zero (one `iconst` per declaration).
        let mut locals = Vec::new();
        let mut count = 0u32;
        for _ in ty.params() {
            let var = ssa.var();
            let val = ssa.value(None);
            ssa.def(var, entry, val);
            count += 1;
        }
        let mut reader = body.get_locals_reader()?;
        for _ in 0..reader.get_count() {
            let offset = reader.original_position();
            let (n, ty) = reader.read()?;
            validator.define_locals(offset, n, ty)?;
            let zero = ssa.value(match ty {
                WasmValType::I32 | WasmValType::I64 => Some(0),
                _ => None,
            });
            for _ in 0..n {
                let var = ssa.var();
                ssa.def(var, entry, zero);
            }
            count = count
                .checked_add(n)
                .ok_or_else(|| InstrumentError::Unsupported("too many locals".into()))?;
            locals.push((n, convert(ty)?));
        }
        // `f` and at most four scratch locals must fit engines' limit on locals.
        if count > MAX_LOCALS - 5 {
            return Err(InstrumentError::Unsupported(format!(
                "a function of {count} locals (engines allow {MAX_LOCALS}, and the pass adds 5)"
            )));
        }
        let scratch = Scratch {
            fuel: count,
            added: Vec::new(),
        };
        let function_results = ssa_vars(&mut ssa, ty.results().len());
        let exit = ssa.block();
        let mut walker = Walker {
            module,
            layout,
            out: Vec::new(),
            ssa,
            cur: entry,
            stack: Vec::new(),
            frames: vec![Frame {
                kind: Kind::Function,
                following: exit,
                result_vars: function_results,
                results: ty.results().len(),
                ..Frame::placeholder(Kind::Function, 0)
            }],
            reachable: true,
            pending: 1,
            scratch,
        };
        walker.prologue(ty.results())?;
        let mut ops = body.get_operators_reader()?;
        while !ops.eof() {
            let start = ops.original_position();
            let op = ops.read()?;
            let end = ops.original_position();
            let arity = op.operator_arity(&validator);
            validator.op(start, &op)?;
            let raw = &module.bytes[start..end];
            walker.visit(&op, raw, arity)?;
        }
        ops.finish()?;

        locals.push((1, ValType::I64));
        locals.extend(walker.scratch.added.iter().map(|&ty| (1, ty)));
        let mut func = Function::new(locals);
        func.raw(walker.out);
        Ok(func)
    }

    fn sink(&mut self) -> InstructionSink<'_> {
        InstructionSink::new(&mut self.out)
    }

    /// Loads `f` and checks it, wrapping the body in a block for the exit's save.
    fn prologue(&mut self, results: &[WasmValType]) -> Result<(), InstrumentError> {
        self.reload();
        self.check();
        let ty = match results {
            [] => BlockType::Empty,
            [one] => BlockType::Result(convert(*one)?),
            _ => BlockType::FunctionType(self.layout.results_type(results)?),
        };
        self.sink().block(ty);
        Ok(())
    }

    /// `f += pending` (`fuel_increment_var`).
    fn flush(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        if pending != 0 {
            let f = self.scratch.fuel;
            self.sink()
                .local_get(f)
                .i64_const(pending)
                .i64_add()
                .local_set(f);
        }
    }

    /// `dipla_fuel = f` (`fuel_save_from_var`).
    fn save(&mut self) {
        let (f, global) = (self.scratch.fuel, self.layout.fuel);
        self.sink().local_get(f).global_set(global);
    }

    /// `f = dipla_fuel` (`fuel_load_into_var`).
    fn reload(&mut self) {
        let (f, global) = (self.scratch.fuel, self.layout.fuel);
        self.sink().global_get(global).local_set(f);
    }

    /// `fuel_check`: flush, and stop with the fuel saved when `f >= 0`.
    fn check(&mut self) {
        self.flush();
        let (f, oof) = (self.scratch.fuel, self.layout.out_of_fuel);
        self.sink()
            .local_get(f)
            .i64_const(0)
            .i64_ge_s()
            .if_(BlockType::Empty)
            .local_get(f)
            .call(oof)
            .end();
    }

    fn raw(&mut self, raw: &[u8]) {
        self.out.extend_from_slice(raw);
    }

    fn fresh(&mut self, n: usize) {
        for _ in 0..n {
            let val = self.ssa.value(None);
            self.stack.push(val);
        }
    }

    fn pop(&mut self) -> Val {
        self.stack.pop().unwrap_or(Val::MAX)
    }

    fn popn(&mut self, n: usize) {
        let len = self.stack.len().saturating_sub(n);
        self.stack.truncate(len);
    }

    fn peekn(&self, n: usize) -> Vec<Val> {
        self.stack[self.stack.len().saturating_sub(n)..].to_vec()
    }

    /// Defines `vars` as the top values in the current block and branches to `dest`
    /// (`canonicalise_then_jump`'s `set_block_params`).
    fn jump(&mut self, dest: Block, vars: &[Var], values: &[Val]) {
        for (&var, &val) in vars.iter().zip(values) {
            self.ssa.def(var, self.cur, val);
        }
        self.ssa.edge(self.cur, dest);
    }

    /// Pushes the values of `vars` at the start of the current block (`push_block_params`).
    fn push_params(&mut self, vars: &[Var]) {
        for &var in vars {
            let val = self.ssa.use_var(var, self.cur);
            self.stack.push(val);
        }
    }

    fn block_arity(&self, ty: WasmBlockType) -> (Vec<WasmValType>, Vec<WasmValType>) {
        match ty {
            WasmBlockType::Empty => (vec![], vec![]),
            WasmBlockType::Type(ty) => (vec![], vec![ty]),
            WasmBlockType::FuncType(index) => {
                let ty = self.module.type_at(index);
                (ty.params().to_vec(), ty.results().to_vec())
            }
        }
    }

    fn visit(
        &mut self,
        op: &Operator,
        raw: &[u8],
        arity: Option<(u32, u32)>,
    ) -> Result<(), InstrumentError> {
        if !self.reachable {
            self.visit_unreachable(op, raw);
            return Ok(());
        }
        // `fuel_before_op`.
        self.pending += cost(op);
        match op {
            Operator::Unreachable
            | Operator::Return
            | Operator::Call { .. }
            | Operator::CallIndirect { .. }
            | Operator::ReturnCall { .. }
            | Operator::ReturnCallIndirect { .. } => {
                self.flush();
                self.save();
            }
            Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::Br { .. }
            | Operator::BrIf { .. }
            | Operator::BrTable { .. }
            | Operator::End
            | Operator::Else => self.flush(),
            _ => {}
        }
        self.translate(op, raw, arity)?;
        // `fuel_after_op`.
        if self.reachable && matches!(op, Operator::Call { .. } | Operator::CallIndirect { .. }) {
            self.reload();
        }
        Ok(())
    }

    fn translate(
        &mut self,
        op: &Operator,
        raw: &[u8],
        arity: Option<(u32, u32)>,
    ) -> Result<(), InstrumentError> {
        if let Some((memarg, size)) = memory::access(op)
            && let Some(memory) = self.module.memory.as_ref()
            && memory::always_traps(memory, memarg.offset, size)
        {
            // `before_unconditionally_trapping_memory_access`.
            self.flush();
            self.save();
            self.raw(raw);
            self.reachable = false;
            return Ok(());
        }
        if let Some(per_unit) = per_unit(op) {
            self.bulk(per_unit);
        }
        match *op {
            Operator::Block { blockty } => {
                self.raw(raw);
                let (params, results) = self.block_arity(blockty);
                let following = self.ssa.block();
                let result_vars = ssa_vars(&mut self.ssa, results.len());
                self.frames.push(Frame {
                    following,
                    result_vars,
                    original_stack_size: self.stack.len() - params.len(),
                    params: params.len(),
                    results: results.len(),
                    ..Frame::placeholder(Kind::Block, 0)
                });
            }
            Operator::Loop { blockty } => {
                self.raw(raw);
                let (params, results) = self.block_arity(blockty);
                let header = self.ssa.block();
                let header_vars = ssa_vars(&mut self.ssa, params.len());
                let following = self.ssa.block();
                let result_vars = ssa_vars(&mut self.ssa, results.len());
                let values = self.peekn(params.len());
                self.jump(header, &header_vars, &values);
                self.frames.push(Frame {
                    kind: Kind::Loop,
                    following,
                    result_vars,
                    header,
                    header_vars: header_vars.clone(),
                    original_stack_size: self.stack.len() - params.len(),
                    params: params.len(),
                    results: results.len(),
                    ..Frame::placeholder(Kind::Loop, 0)
                });
                self.popn(params.len());
                self.cur = header;
                self.push_params(&header_vars);
                // `translate_loop_header`.
                self.check();
            }
            Operator::If { blockty } => {
                self.raw(raw);
                self.pop();
                let (params, results) = self.block_arity(blockty);
                let destination = self.ssa.block();
                let result_vars = ssa_vars(&mut self.ssa, results.len());
                let no_else = params == results;
                let head = self.cur;
                let mut else_block = None;
                if no_else {
                    let values = self.peekn(params.len());
                    self.jump(destination, &result_vars, &values);
                } else {
                    else_block = Some(self.ssa.block_after(head));
                }
                let then = self.ssa.block_after(head);
                let start = self.stack.len() - params.len();
                for i in start..self.stack.len() {
                    self.stack.push(self.stack[i]);
                }
                self.frames.push(Frame {
                    kind: Kind::If {
                        head_reachable: true,
                        consequent_ends_reachable: None,
                    },
                    following: destination,
                    result_vars,
                    head,
                    else_block,
                    no_else,
                    original_stack_size: self.stack.len() - params.len(),
                    params: params.len(),
                    results: results.len(),
                    ..Frame::placeholder(Kind::Block, 0)
                });
                self.cur = then;
            }
            Operator::Else => {
                self.raw(raw);
                let frame = self.frames.last().expect("validated");
                let (no_else, params, results) = (frame.no_else, frame.params, frame.results);
                let (destination, vars) = (frame.following, frame.result_vars.clone());
                let count = if no_else { params } else { results };
                let values = self.peekn(count);
                self.jump(destination, &vars, &values);
                self.popn(count);
                self.enter_else(true);
            }
            Operator::End => {
                let frame = self.frames.pop().expect("validated");
                if frame.kind == Kind::Function {
                    self.function_end(true);
                    return Ok(());
                }
                self.raw(raw);
                let values = self.peekn(frame.results);
                self.jump(frame.following, &frame.result_vars, &values);
                self.cur = frame.following;
                self.ssa.seal(frame.following);
                if frame.kind == Kind::Loop {
                    self.ssa.seal(frame.header);
                }
                self.truncate_to_original(&frame);
                self.push_params(&frame.result_vars);
            }
            Operator::Br { relative_depth } => {
                self.raw(raw);
                let n = self.branch(relative_depth);
                self.popn(n);
                self.reachable = false;
            }
            Operator::BrIf { relative_depth } => {
                self.raw(raw);
                self.pop();
                self.branch(relative_depth);
                self.cur = self.ssa.block_after(self.cur);
            }
            Operator::BrTable { ref targets } => {
                self.raw(raw);
                self.pop();
                let mut depths = targets.targets().collect::<Result<Vec<_>, _>>()?;
                depths.push(targets.default());
                let min_depth = *depths.iter().min().expect("a default");
                let frame = &self.frames[self.frames.len() - 1 - min_depth as usize];
                let count = if frame.kind == Kind::Loop {
                    frame.params
                } else {
                    frame.results
                };
                let values = self.peekn(count);
                let mut done = Vec::new();
                for depth in depths {
                    let i = self.frames.len() - 1 - depth as usize;
                    self.frames[i].set_branched_to_exit();
                    if done.contains(&depth) {
                        continue;
                    }
                    done.push(depth);
                    let (dest, vars) = self.frames[i].br_destination();
                    let vars = vars.to_vec();
                    if count == 0 {
                        self.ssa.edge(self.cur, dest);
                    } else {
                        // Cranelift splits the edge: a block per target that jumps on.
                        let split = self.ssa.block_after(self.cur);
                        for (&var, &val) in vars.iter().zip(&values) {
                            self.ssa.def(var, split, val);
                        }
                        self.ssa.edge(split, dest);
                    }
                }
                self.popn(count);
                self.reachable = false;
            }
            Operator::ReturnCallIndirect { table_index, .. } => {
                self.mark_null_element(table_index);
                self.raw(raw);
                self.reachable = false;
            }
            Operator::Unreachable | Operator::Return | Operator::ReturnCall { .. } => {
                self.raw(raw);
                self.reachable = false;
            }
            Operator::Call { function_index } => {
                self.raw(raw);
                let ty = self.module.func_type(function_index);
                let (params, results) = (ty.params().len(), ty.results().len());
                self.popn(params);
                self.fresh(results);
            }
            Operator::CallIndirect {
                type_index,
                table_index,
            } => {
                self.mark_null_element(table_index);
                self.raw(raw);
                let ty = self.module.type_at(type_index);
                let (params, results) = (ty.params().len(), ty.results().len());
                self.popn(params + 1);
                self.fresh(results);
            }
            Operator::LocalGet { local_index } => {
                self.raw(raw);
                let val = self.ssa.use_var(local_index, self.cur);
                self.stack.push(val);
            }
            Operator::LocalSet { local_index } => {
                self.raw(raw);
                let val = self.pop();
                self.ssa.def(local_index, self.cur, val);
            }
            Operator::LocalTee { local_index } => {
                self.raw(raw);
                let val = *self.stack.last().expect("validated");
                self.ssa.def(local_index, self.cur, val);
            }
            Operator::I32Const { value } => {
                self.raw(raw);
                self.push_const(i64::from(value as u32));
            }
            Operator::I64Const { value } => {
                self.raw(raw);
                self.push_const(value);
            }
            Operator::GlobalGet { global_index } => {
                self.raw(raw);
                match self.module.global_const(global_index) {
                    Some(value) => self.push_const(value),
                    None => self.fresh(1),
                }
            }
            Operator::TableSize { table } => {
                self.raw(raw);
                let ty = self.module.tables[table as usize];
                // A fixed-size table's size is an `iconst` (`TableSize::Static`).
                if Some(ty.initial) == ty.maximum {
                    self.push_const(ty.initial as i64);
                } else {
                    self.fresh(1);
                }
            }
            Operator::MemoryGrow { .. } => {
                let guard = self.layout.memory_guard.expect("a memory");
                self.sink().call(guard);
                self.raw(raw);
                self.pop();
                self.fresh(1);
            }
            Operator::TableGrow { table } => {
                let guard = self.layout.table_guards[table as usize];
                self.sink().call(guard);
                self.raw(raw);
                // `translate_table_grow` commits the flat cost after the growth.
                self.flush();
                self.popn(2);
                self.fresh(1);
            }
            _ => {
                if let Some(ty) = nan::trapping_conversion(op) {
                    self.mark_nan_conversion(ty);
                }
                self.raw(raw);
                if let Some(float) = nan::canonicalised(op) {
                    let tmp = self.scratch.of(match float {
                        nan::Float::F32 => ValType::F32,
                        nan::Float::F64 => ValType::F64,
                        nan::Float::F32x4 | nan::Float::F64x2 => ValType::V128,
                    });
                    nan::emit(&mut self.sink(), float, tmp);
                }
                let (pops, pushes) = arity
                    .ok_or_else(|| InstrumentError::Unsupported(format!("the operator {op:?}")))?;
                self.popn(pops as usize);
                self.fresh(pushes as usize);
            }
        }
        Ok(())
    }

    /// Before a `call_indirect` through `table`, whose element index is on top of the stack:
    /// sets [`TrapReason::NullElement`] when the element is null, so that a host can tell
    /// wasmtime's "uninitialized element" from its "indirect call type mismatch" (engines
    /// may report both alike). Changes nothing else: the call traps as it would.
    fn mark_null_element(&mut self, table: u32) {
        let (index, reason) = (self.scratch.of(ValType::I32), self.layout.reason);
        self.sink()
            .local_tee(index)
            .local_get(index)
            .table_size(table)
            .i32_lt_u()
            .if_(BlockType::Empty)
            .local_get(index)
            .table_get(table)
            .ref_is_null()
            .if_(BlockType::Empty)
            .i32_const(TrapReason::NullElement as i32)
            .global_set(reason)
            .end()
            .end();
    }

    /// Before a trapping float-to-integer conversion of the value on top of the stack, of
    /// type `ty`: sets [`TrapReason::NanToInteger`] when it is a NaN, so that a host can tell
    /// wasmtime's "invalid conversion to integer" from its "integer overflow" (engines may
    /// report both alike). Changes nothing else.
    fn mark_nan_conversion(&mut self, ty: ValType) {
        let (value, reason) = (self.scratch.of(ty), self.layout.reason);
        let mut sink = self.sink();
        sink.local_tee(value).local_get(value).local_get(value);
        if ty == ValType::F32 {
            sink.f32_ne();
        } else {
            sink.f64_ne();
        }
        sink.if_(BlockType::Empty)
            .i32_const(TrapReason::NanToInteger as i32)
            .global_set(reason)
            .end();
    }

    fn push_const(&mut self, value: i64) {
        let val = self.ssa.value(Some(value));
        self.stack.push(val);
    }

    /// Defines the parameters of the target of a branch `depth` frames out and declares the
    /// edge; the number of values it passes.
    fn branch(&mut self, depth: u32) -> usize {
        let i = self.frames.len() - 1 - depth as usize;
        self.frames[i].set_branched_to_exit();
        let frame = &self.frames[i];
        let count = if frame.kind == Kind::Loop {
            frame.params
        } else {
            frame.results
        };
        let (dest, vars) = frame.br_destination();
        let vars = vars.to_vec();
        let values = self.peekn(count);
        self.jump(dest, &vars, &values);
        count
    }

    /// `pre_translate_bulk_op` for the operator about to run, whose unit count is on top of
    /// the stack.
    fn bulk(&mut self, per_unit: i64) {
        let units = self.stack.last().copied().unwrap_or(Val::MAX);
        // `value_as_const_int`: the `iconst`'s bits as a u64, then as an i64 or i64::MAX.
        let konst = if units == Val::MAX {
            None
        } else {
            self.ssa
                .konst(units)
                .map(|bits| if bits < 0 { i64::MAX } else { bits })
        };
        match konst {
            Some(units) => {
                if per_unit > 0 {
                    self.pending = self.pending.saturating_add(units.saturating_mul(per_unit));
                }
                let small = units
                    .checked_mul(per_unit)
                    .is_some_and(|cost| cost <= SMALL_BULK_OP_COST);
                if !small {
                    self.check();
                }
            }
            None => {
                if per_unit > 0 {
                    self.flush();
                    let (f, tmp) = (self.scratch.fuel, self.scratch.of(ValType::I32));
                    let mut sink = self.sink();
                    sink.local_tee(tmp)
                        .local_get(f)
                        .local_get(tmp)
                        .i64_extend_i32_u();
                    if per_unit != 1 {
                        sink.i64_const(per_unit).i64_mul();
                    }
                    sink.i64_add().local_set(f);
                }
                self.check();
            }
        }
    }

    /// Enters the `else` of the innermost `if` (its `then` ended reachable or not).
    fn enter_else(&mut self, consequent_reachable: bool) {
        let frame = self.frames.last_mut().expect("validated");
        let Kind::If {
            head_reachable,
            ref mut consequent_ends_reachable,
        } = frame.kind
        else {
            unreachable!("validated: else in an if");
        };
        *consequent_ends_reachable = Some(consequent_reachable);
        if !head_reachable {
            return;
        }
        self.reachable = true;
        let else_block = match frame.else_block {
            Some(block) => block,
            None => {
                // The `if` branched to its end; now it branches to the `else`.
                let (head, following) = (frame.head, frame.following);
                self.ssa.remove_edge(head, following);
                let block = self.ssa.block_after(head);
                self.frames.last_mut().expect("validated").else_block = Some(block);
                block
            }
        };
        let original = self.frames.last().expect("validated").original_stack_size;
        self.stack.truncate(original);
        self.cur = else_block;
    }

    fn truncate_to_original(&mut self, frame: &Frame) {
        let duplicated = match frame.kind {
            Kind::If { .. } => frame.params,
            _ => 0,
        };
        self.stack
            .truncate(frame.original_stack_size.saturating_sub(duplicated));
    }

    /// The function's last `end`: closes the wrapper block, saves the fuel if the exit is
    /// reachable (`fuel_function_exit`), and ends the body.
    fn function_end(&mut self, reachable: bool) {
        self.sink().end();
        if reachable {
            self.save();
        }
        self.sink().end();
    }

    /// An operator in code Cranelift does not translate: only the control frames matter.
    fn visit_unreachable(&mut self, op: &Operator, raw: &[u8]) {
        match op {
            Operator::If { .. } => self.frames.push(Frame::placeholder(
                Kind::If {
                    head_reachable: false,
                    consequent_ends_reachable: None,
                },
                self.stack.len(),
            )),
            Operator::Block { .. } | Operator::Loop { .. } => self
                .frames
                .push(Frame::placeholder(Kind::Block, self.stack.len())),
            Operator::Else => self.enter_else(false),
            Operator::End => {
                let frame = self.frames.pop().expect("validated");
                self.truncate_to_original(&frame);
                if frame.kind == Kind::Loop {
                    self.ssa.seal(frame.header);
                }
                let reachable_anyway = match frame.kind {
                    Kind::If {
                        head_reachable,
                        consequent_ends_reachable: None,
                    } => head_reachable,
                    Kind::If {
                        head_reachable,
                        consequent_ends_reachable: Some(consequent),
                    } => head_reachable && consequent,
                    _ => false,
                };
                if frame.exit_branched_to || reachable_anyway {
                    self.cur = frame.following;
                    self.ssa.seal(frame.following);
                    self.push_params(&frame.result_vars);
                    self.reachable = true;
                }
                if frame.kind == Kind::Function {
                    let reachable = self.reachable;
                    self.function_end(reachable);
                    return;
                }
            }
            _ => {}
        }
        self.raw(raw);
    }
}

fn ssa_vars(ssa: &mut Ssa, n: usize) -> Vec<Var> {
    (0..n).map(|_| ssa.var()).collect()
}
