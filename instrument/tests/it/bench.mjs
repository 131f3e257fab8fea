// `node bench.mjs MODULE EXPORT INPUT RUNS`: the median milliseconds of a task over RUNS
// fresh instances, instrumented (fuel given) or not.
import { readFileSync } from 'node:fs';

const [path, name, input, runs] = process.argv.slice(2);
const module = new WebAssembly.Module(readFileSync(path));
const times = [];
for (let i = 0; i < Number(runs); i++) {
  const e = new WebAssembly.Instance(module, {}).exports;
  if (e.dipla_fuel) e.dipla_fuel.value = -(1n << 62n);
  const bytes = new TextEncoder().encode(input);
  const started = performance.now();
  const ptr = e.cabi_realloc(0, 0, 1, bytes.length) >>> 0;
  new Uint8Array(e.memory.buffer).set(bytes, ptr);
  e[name](ptr, bytes.length);
  times.push(performance.now() - started);
}
times.sort((a, b) => a - b);
process.stdout.write(String(times[times.length >> 1]));
