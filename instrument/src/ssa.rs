//! Which integer operands Cranelift sees as constants when it translates a bulk operation.
//!
//! wasmtime charges `memory.copy`, `memory.fill`, `memory.init`, `table.*` and `memory.grow`
//! per unit, and how it does so depends on whether the count is an `iconst` in the CLIF it is
//! building (`FuncEnvironment::value_as_const_int`): a constant count is folded into the fuel
//! counted statically and needs no fuel check when small; any other count is added at run time
//! and followed by a check. A count is an `iconst` when it comes from `i32.const`, from an
//! immutable global with a constant initialiser, from `table.size` of a fixed-size table or
//! from a local's zero initialiser, directly or through locals and block parameters, which
//! Cranelift's frontend turns into SSA values with the algorithm of Braun et al.
//!
//! This is a port of that algorithm (`cranelift-frontend`'s `ssa.rs`) over the blocks the
//! translator creates for the wasm control flow, which is enough to know, for every operand,
//! which SSA value it is and whether that value is a constant. The blocks Cranelift adds inside
//! one wasm operator (a fuel check, a lazy table initialisation) are diamonds that define no
//! wasm variable, so they change no answer and are left out.

use std::collections::{HashMap, HashSet};

/// An SSA value.
pub(crate) type Val = u32;
/// A variable: a wasm local or one parameter of a block's continuation.
pub(crate) type Var = u32;
/// A basic block.
pub(crate) type Block = u32;

#[derive(Debug, Clone, Copy)]
struct ValueData {
    /// The immediate of an `iconst`, as Cranelift stores it (`Imm64` bits).
    konst: Option<i64>,
    /// What this value became when its block parameter was found redundant.
    alias: Option<Val>,
}

#[derive(Debug, Default)]
struct BlockData {
    /// The blocks that branch here, once each.
    preds: Vec<Block>,
    sealed: bool,
    /// Parameters added while the block was not sealed, resolved when it is.
    undef: Vec<(Var, Val)>,
    /// The only predecessor of a sealed block that has exactly one.
    single_pred: Option<Block>,
}

enum Call {
    UseVar(Block),
    Finish(Val, Block),
}

/// The SSA state of one function.
#[derive(Default)]
pub(crate) struct Ssa {
    values: Vec<ValueData>,
    blocks: Vec<BlockData>,
    /// The definition of a variable at the end of a block (so far).
    defs: HashMap<(Var, Block), Val>,
    vars: u32,
    calls: Vec<Call>,
    results: Vec<Val>,
    visited: HashSet<Block>,
}

impl Ssa {
    /// A new value, an `iconst` of `konst` if given.
    pub(crate) fn value(&mut self, konst: Option<i64>) -> Val {
        self.values.push(ValueData { konst, alias: None });
        (self.values.len() - 1) as Val
    }

    /// A new variable.
    pub(crate) fn var(&mut self) -> Var {
        self.vars += 1;
        self.vars - 1
    }

    /// A new, unsealed block without predecessors.
    pub(crate) fn block(&mut self) -> Block {
        self.blocks.push(BlockData::default());
        (self.blocks.len() - 1) as Block
    }

    /// A new block whose only predecessor is `pred`, sealed (a branch's fall-through, an
    /// `if`'s arms).
    pub(crate) fn block_after(&mut self, pred: Block) -> Block {
        let block = self.block();
        self.edge(pred, block);
        self.seal(block);
        block
    }

    /// Defines `var` as `val` at the current end of `block`.
    pub(crate) fn def(&mut self, var: Var, block: Block, val: Val) {
        self.defs.insert((var, block), val);
    }

    /// Declares a branch from `from` to `to` (once per pair, as a jump table's are).
    pub(crate) fn edge(&mut self, from: Block, to: Block) {
        let preds = &mut self.blocks[to as usize].preds;
        if !preds.contains(&from) {
            preds.push(from);
        }
    }

    /// Forgets the branch from `from` to `to` (an `if`'s branch moved to its `else`).
    pub(crate) fn remove_edge(&mut self, from: Block, to: Block) {
        self.blocks[to as usize].preds.retain(|&pred| pred != from);
    }

    /// The value a resolved alias chain ends at.
    fn resolve(&self, mut val: Val) -> Val {
        while let Some(next) = self.values[val as usize].alias {
            val = next;
        }
        val
    }

    /// The constant `val` is, if it is an `iconst`.
    pub(crate) fn konst(&self, val: Val) -> Option<i64> {
        self.values[self.resolve(val) as usize].konst
    }

    /// Declares that `block` gets no more predecessors, resolving the parameters it was given
    /// meanwhile.
    pub(crate) fn seal(&mut self, block: Block) {
        let data = &mut self.blocks[block as usize];
        if data.sealed {
            return;
        }
        data.sealed = true;
        if data.preds.len() == 1 {
            data.single_pred = Some(data.preds[0]);
        }
        let undef = std::mem::take(&mut data.undef);
        for (var, val) in undef {
            self.begin_lookup(val, block);
            self.run_for(var);
        }
    }

    /// The value of `var` in `block`.
    pub(crate) fn use_var(&mut self, var: Var, block: Block) -> Val {
        self.use_var_nonlocal(var, block);
        self.run_for(var)
    }

    fn run_for(&mut self, var: Var) -> Val {
        while let Some(call) = self.calls.pop() {
            match call {
                Call::UseVar(block) => self.use_var_nonlocal(var, block),
                Call::Finish(sentinel, block) => {
                    let val = self.finish(sentinel, block);
                    self.results.push(val);
                }
            }
        }
        self.results.pop().unwrap_or_default()
    }

    fn use_var_nonlocal(&mut self, var: Var, mut block: Block) {
        if let Some(&val) = self.defs.get(&(var, block)) {
            self.results.push(val);
            return;
        }
        let (val, from) = self.find_var(var, block);
        while block != from {
            self.defs.insert((var, block), val);
            match self.blocks[block as usize].single_pred {
                Some(pred) => block = pred,
                None => break,
            }
        }
    }

    /// The most recent definition along single-predecessor edges, or a new parameter.
    fn find_var(&mut self, var: Var, mut block: Block) -> (Val, Block) {
        self.visited.clear();
        while let Some(pred) = self.blocks[block as usize].single_pred {
            if !self.visited.insert(block) {
                break;
            }
            block = pred;
            if let Some(&val) = self.defs.get(&(var, block)) {
                self.results.push(val);
                return (val, block);
            }
        }
        let val = self.value(None);
        self.defs.insert((var, block), val);
        if self.blocks[block as usize].sealed {
            self.begin_lookup(val, block);
        } else {
            self.blocks[block as usize].undef.push((var, val));
            self.results.push(val);
        }
        (val, block)
    }

    fn begin_lookup(&mut self, sentinel: Val, block: Block) {
        self.calls.push(Call::Finish(sentinel, block));
        let preds = &self.blocks[block as usize].preds;
        self.calls
            .extend(preds.iter().rev().map(|&pred| Call::UseVar(pred)));
    }

    /// The value of a parameter once its predecessors' values are known: the one value they
    /// all give (the parameter becomes an alias of it), or the parameter itself.
    fn finish(&mut self, sentinel: Val, block: Block) -> Val {
        let count = self.blocks[block as usize].preds.len();
        let results = self.results.split_off(self.results.len() - count);
        let mut defined = results
            .iter()
            .map(|&val| self.resolve(val))
            .filter(|&val| val != sentinel);
        let agreed = match defined.next() {
            Some(first) => defined.all(|val| val == first).then_some(first),
            // Never defined: Cranelift emits a zero (only in code that cannot run).
            None => Some(self.value(Some(0))),
        };
        match agreed {
            Some(val) => {
                self.values[sentinel as usize].alias = Some(val);
                val
            }
            None => sentinel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_flows_through_straight_line_code_and_agreeing_joins() {
        let mut ssa = Ssa::default();
        let (x, entry) = (ssa.var(), ssa.block());
        ssa.seal(entry);
        let five = ssa.value(Some(5));
        ssa.def(x, entry, five);
        let then = ssa.block_after(entry);
        let join = ssa.block();
        ssa.edge(then, join);
        ssa.edge(entry, join);
        ssa.seal(join);
        let val = ssa.use_var(x, join);
        assert_eq!(ssa.konst(val), Some(5));
    }

    #[test]
    fn disagreeing_joins_and_unsealed_loop_headers_give_parameters() {
        let mut ssa = Ssa::default();
        let (x, entry) = (ssa.var(), ssa.block());
        ssa.seal(entry);
        let five = ssa.value(Some(5));
        ssa.def(x, entry, five);
        let header = ssa.block();
        ssa.edge(entry, header);
        let in_loop = ssa.use_var(x, header);
        assert_eq!(ssa.konst(in_loop), None, "the header is not sealed yet");
        // The loop does not change x: once sealed, the parameter is an alias of 5.
        ssa.edge(header, header);
        ssa.seal(header);
        assert_eq!(ssa.konst(in_loop), Some(5));
        let after = ssa.block_after(header);
        let val = ssa.use_var(x, after);
        assert_eq!(ssa.konst(val), Some(5));

        let other = ssa.block_after(entry);
        let six = ssa.value(Some(6));
        ssa.def(x, other, six);
        let join = ssa.block();
        ssa.edge(other, join);
        ssa.edge(after, join);
        ssa.seal(join);
        let val = ssa.use_var(x, join);
        assert_eq!(ssa.konst(val), None);
    }
}
