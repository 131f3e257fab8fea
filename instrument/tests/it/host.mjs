// The host protocol of an instrumented module (dipla-instrument's crate documentation) in
// JavaScript, as a browser page runs it: `node host.mjs MODULE < cases.json` runs each case
// `{export, input, fuel, memoryBytes, maxOutputBytes}` in a fresh instance and prints the
// results as JSON: `{ok: [output, stop]} | {err: [kind, message]}` with `fuel`.
import { readFileSync } from 'node:fs';

const I64_MAX = (1n << 63n) - 1n;
const SIDE_FUEL = 1000000n;
const MAX_MESSAGE_BYTES = 4096;

const module = new WebAssembly.Module(readFileSync(process.argv[2]));

function run({ export: name, input, fuel, memoryBytes, maxOutputBytes }) {
  fuel = BigInt(fuel);
  const instance = new WebAssembly.Instance(module, {});
  const e = instance.exports;
  const size = e.memory.buffer.byteLength;
  if (size > memoryBytes) {
    const message = `linear memory would grow to ${size} bytes; the limit is ${memoryBytes}`;
    return { err: ['memory_limit', message], fuel: '0' };
  }
  const given = fuel < I64_MAX ? fuel : I64_MAX;
  e.dipla_fuel.value = -given;
  e.dipla_memory_max_bytes.value = BigInt(memoryBytes);
  let outcome;
  try {
    const bytes = new TextEncoder().encode(input);
    const ptr = e.cabi_realloc(0, 0, 1, bytes.length) >>> 0;
    if (ptr + bytes.length > e.memory.buffer.byteLength) {
      throw new OutputError('`cabi_realloc` returned memory out of bounds');
    }
    new Uint8Array(e.memory.buffer).set(bytes, ptr);
    const packed = BigInt.asUintN(64, e[name](ptr, bytes.length));
    outcome = readOutput(e.memory, packed, maxOutputBytes);
  } catch (error) {
    outcome = { err: classify(error, e, fuel, memoryBytes) };
  }
  // wasmtime's get_fuel: the reserve it could not inject plus what is left of the rest.
  let remaining = fuel - given - e.dipla_fuel.value;
  if (remaining < 0n) remaining = 0n;
  return { ...outcome, fuel: (fuel - remaining).toString() };
}

class OutputError extends Error {}

function classify(error, e, fuel, memoryBytes) {
  if (error instanceof OutputError) return ['bad_output', error.message];
  const detail = e.dipla_trap_detail.value;
  switch (e.dipla_trap_reason.value) {
    case 1: return ['out_of_fuel', `the task used all of its ${fuel} fuel`];
    case 2: return ['memory_limit', `linear memory would grow to ${detail} bytes; the limit is ${memoryBytes}`];
    case 3: return ['memory_limit', `a table would grow to ${detail} bytes; the limit is 100000`];
  }
  if (error instanceof RangeError) return ['stack_overflow', 'the task overflowed the wasm stack'];
  if (!(error instanceof WebAssembly.RuntimeError)) throw error;
  if (/unreachable/.test(error.message)) {
    const message = readText(e, 'dipla_panic_message', MAX_MESSAGE_BYTES + 1);
    if (message !== null) return ['panic', text(message)];
  }
  return ['trap', wasmtimeTrap(error.message, e.dipla_trap_reason.value)];
}

// wasmtime's description of a trap V8 describes with `message`.
function wasmtimeTrap(message, reason) {
  switch (message) {
    case 'divide by zero':
    case 'remainder by zero': return 'integer divide by zero';
    case 'divide result unrepresentable': return 'integer overflow';
    case 'memory access out of bounds': return 'out of bounds memory access';
    case 'table index is out of bounds': return 'undefined element: out of bounds table access';
    case 'null function or function signature mismatch':
      return reason === 4 ? 'uninitialized element' : 'indirect call type mismatch';
    case 'float unrepresentable in integer range':
      return reason === 5 ? 'invalid conversion to integer' : 'integer overflow';
    case 'unreachable': return 'wasm `unreachable` instruction executed';
    default: return message;
  }
}

function text(bytes) {
  const decoded = new TextDecoder().decode(bytes.subarray(0, MAX_MESSAGE_BYTES));
  return bytes.length > MAX_MESSAGE_BYTES ? decoded + '...' : decoded;
}

// Calls `name: () -> i64` on fuel of its own and restores the task's.
function readText(e, name, max) {
  if (typeof e[name] !== 'function') return null;
  const saved = e.dipla_fuel.value;
  e.dipla_fuel.value = -SIDE_FUEL;
  let packed;
  try {
    packed = BigInt.asUintN(64, e[name]());
  } catch {
    return null;
  } finally {
    e.dipla_fuel.value = saved;
  }
  const ptr = Number(packed >> 32n), len = Number(packed & 0xffffffffn);
  if (len === 0 || ptr + len > e.memory.buffer.byteLength) return null;
  return new Uint8Array(e.memory.buffer, ptr, Math.min(len, max)).slice();
}

function readOutput(memory, packed, maxOutputBytes) {
  const ptr = Number(packed >> 32n), len = Number(packed & 0xffffffffn);
  if (len > maxOutputBytes) {
    return { err: ['bad_output', `the output is ${len} bytes; the limit is ${maxOutputBytes}`] };
  }
  if (ptr + len > memory.buffer.byteLength) {
    return { err: ['bad_output', `the output (${len} bytes at 0x${ptr.toString(16)}) is out of bounds`] };
  }
  const bytes = new Uint8Array(memory.buffer, ptr, len);
  if (len === 0) return { err: ['bad_output', 'the output is empty (no status byte)'] };
  const status = bytes[0];
  if (status === 1) return { err: ['guest', text(bytes.subarray(1))] };
  if (status !== 0 && status !== 2) return { err: ['bad_output', `unknown output status byte ${status}`] };
  const json = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(1));
  JSON.parse(json);
  return { ok: [json, status === 2] };
}

const cases = JSON.parse(readFileSync(0, 'utf8'));
process.stdout.write(JSON.stringify(cases.map(run)));
