//! What the instrumentation costs: a task's median time instrumented against the same module
//! uninstrumented, both without fuel and NaN canonicalisation (wasmtime as a browser-like
//! engine, and V8 through Node.js when installed), with the sandbox for reference. Figures,
//! no assertions: `cargo test --release -p dipla-instrument slowdown -- --ignored --nocapture`.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use wasmtime::{Instance, Module, Store};

use crate::common::{browser, limits, sandbox};
use crate::guests::wasm;

const RUNS: usize = 15;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The median time of `export(input)` in the browser-like wasmtime engine.
fn in_wasmtime(module: &Module, export: &str, input: &str) -> Duration {
    median(
        (0..RUNS)
            .map(|_| {
                let mut store = Store::new(browser(), ());
                let instance = Instance::new(&mut store, module, &[]).unwrap();
                if let Some(fuel) = instance.get_global(&mut store, "dipla_fuel") {
                    fuel.set(&mut store, wasmtime::Val::I64(-(1 << 62)))
                        .unwrap();
                }
                let memory = instance.get_memory(&mut store, "memory").unwrap();
                let realloc = instance
                    .get_typed_func::<(i32, i32, i32, i32), i32>(&mut store, "cabi_realloc")
                    .unwrap();
                let task = instance
                    .get_typed_func::<(i32, i32), i64>(&mut store, export)
                    .unwrap();
                let started = Instant::now();
                let len = input.len() as i32;
                let ptr = realloc.call(&mut store, (0, 0, 1, len)).unwrap();
                memory
                    .write(&mut store, ptr as usize, input.as_bytes())
                    .unwrap();
                task.call(&mut store, (ptr, len)).unwrap();
                started.elapsed()
            })
            .collect(),
    )
}

fn in_node(bytes: &[u8], export: &str, input: &str) -> Option<f64> {
    let mut file = tempfile::NamedTempFile::new().ok()?;
    file.write_all(bytes).ok()?;
    let output = Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/bench.mjs"))
        .args([file.path().to_str()?, export, input, &RUNS.to_string()])
        .output()
        .ok()?;
    String::from_utf8(output.stdout).ok()?.parse().ok()
}

#[test]
#[ignore = "figures for the report, not a check"]
fn slowdown() {
    for (name, export, input) in [
        ("factorise", "factorise", "10000000000037"),
        ("pi", "hits", "7"),
        (
            "mandelbrot",
            "rows",
            r#"[{"width":400,"height":300,"center_re":-0.6,"center_im":0.0,"pixel":0.0075,"max_iterations":500},1,3]"#,
        ),
    ] {
        let bytes = wasm(name);
        let started = Instant::now();
        let instrumented = dipla_instrument::instrument(&bytes).unwrap();
        println!(
            "{name}: {} bytes, {} instrumented (+{:.0}%), instrumenting took {:.1} ms",
            bytes.len(),
            instrumented.len(),
            (instrumented.len() as f64 / bytes.len() as f64 - 1.0) * 100.0,
            started.elapsed().as_secs_f64() * 1000.0
        );
        let plain = Module::new(browser(), &bytes).unwrap();
        let counted = Module::new(browser(), &instrumented).unwrap();
        let (plain_time, counted_time) = (
            in_wasmtime(&plain, export, input),
            in_wasmtime(&counted, export, input),
        );
        let guest = sandbox().compile(&bytes).unwrap();
        let sandboxed = median(
            (0..RUNS)
                .map(|_| {
                    let run = guest.run(export, input.as_bytes(), &limits(u64::MAX / 2));
                    Duration::from_micros(run.micros)
                })
                .collect(),
        );
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        print!(
            "{name}.{export}: wasmtime without fuel {:.2} ms, instrumented {:.2} ms ({:.2}x); sandbox {:.2} ms",
            ms(plain_time),
            ms(counted_time),
            counted_time.as_secs_f64() / plain_time.as_secs_f64(),
            ms(sandboxed),
        );
        if let (Some(plain), Some(counted)) = (
            in_node(&bytes, export, input),
            in_node(&instrumented, export, input),
        ) {
            print!(
                "; V8 {plain:.2} ms, instrumented {counted:.2} ms ({:.2}x)",
                counted / plain
            );
        }
        println!();
    }
}
