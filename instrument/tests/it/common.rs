//! Running a task twice: (a) in `dipla_sandbox` as a worker does, (b) instrumented, in a plain
//! wasmtime engine without fuel and without NaN canonicalisation, as a browser would, with the
//! host protocol of the crate documentation. Both give a [`Ran`] to compare.

use std::sync::OnceLock;

use dipla_instrument::{FUEL, MEMORY_MAX_BYTES, TRAP_DETAIL, TRAP_REASON, TrapReason};
use dipla_protocol::FailureKind;
use dipla_sandbox::{Guest, Limits, Sandbox};
use wasmtime::{Config, Engine, Instance, Module, Store, Trap, Val};

/// What a task gave: its output and whether it stops the stage, or its failure; its fuel;
/// its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub outcome: Result<(String, bool), (FailureKind, String)>,
    pub fuel: u64,
    pub log: Option<String>,
}

impl Ran {
    pub fn kind(&self) -> Option<FailureKind> {
        self.outcome.as_ref().err().map(|(kind, _)| *kind)
    }

    pub fn output(&self) -> &str {
        &self.outcome.as_ref().expect("an output").0
    }
}

const MAX_MESSAGE_BYTES: usize = 4096;
const SIDE_FUEL: i64 = 1_000_000;

pub fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| Sandbox::new().unwrap())
}

/// An engine like a browser's: no fuel, NaNs as the hardware makes them.
pub fn browser() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config
            .consume_fuel(false)
            .cranelift_nan_canonicalization(false)
            .max_wasm_stack(512 * 1024);
        Engine::new(&config).unwrap()
    })
}

pub fn limits(fuel: u64) -> Limits {
    Limits {
        fuel,
        memory_bytes: 64 << 20,
        ..Limits::default()
    }
}

/// (a): the sandbox, as a worker runs a task.
pub fn in_sandbox(guest: &Guest, export: &str, input: &str, limits: &Limits) -> Ran {
    let run = guest.run(export, input.as_bytes(), limits);
    Ran {
        outcome: match run.outcome {
            Ok(output) => Ok((output.get().to_owned(), run.stop)),
            Err(failure) => Err((failure.kind, failure.message)),
        },
        fuel: run.fuel,
        log: run.log,
    }
}

/// (b): the instrumented module in the browser-like engine.
pub fn in_browser(instrumented: &Module, export: &str, input: &str, limits: &Limits) -> Ran {
    let mut store = Store::new(browser(), ());
    let instance = Instance::new(&mut store, instrumented, &[]).unwrap();
    let global =
        |store: &mut Store<()>, name: &str| instance.get_global(&mut *store, name).unwrap();
    let fuel = global(&mut store, FUEL);
    let memory = instance.get_memory(&mut store, "memory").unwrap();
    let size = memory.data_size(&store);
    if size > limits.memory_bytes {
        return Ran {
            outcome: Err((
                FailureKind::MemoryLimit,
                format!(
                    "linear memory would grow to {size} bytes; the limit is {}",
                    limits.memory_bytes
                ),
            )),
            fuel: 0,
            log: None,
        };
    }
    let given = limits.fuel.min(i64::MAX as u64) as i64;
    fuel.set(&mut store, Val::I64(-given)).unwrap();
    global(&mut store, MEMORY_MAX_BYTES)
        .set(&mut store, Val::I64(limits.memory_bytes as i64))
        .unwrap();

    let outcome = (|| {
        let realloc = instance
            .get_typed_func::<(i32, i32, i32, i32), i32>(&mut store, "cabi_realloc")
            .unwrap();
        let task = instance
            .get_typed_func::<(i32, i32), i64>(&mut store, export)
            .unwrap();
        let len = input.len() as i32;
        let ptr = realloc
            .call(&mut store, (0, 0, 1, len))
            .map_err(|e| classify(&mut store, &instance, e, limits))?;
        memory
            .write(&mut store, ptr as u32 as usize, input.as_bytes())
            .map_err(|_| {
                (
                    FailureKind::BadOutput,
                    "`cabi_realloc` returned memory out of bounds".to_owned(),
                )
            })?;
        let packed = task
            .call(&mut store, (ptr, len))
            .map_err(|e| classify(&mut store, &instance, e, limits))? as u64;
        read_output(memory.data(&store), packed, limits)
    })();
    let left = match fuel.get(&mut store) {
        Val::I64(value) => value,
        _ => unreachable!(),
    };
    // wasmtime's `get_fuel`: what it could not inject, plus what is left of what it did.
    let reserve = limits.fuel - given as u64;
    let remaining = reserve.saturating_add_signed(left.checked_neg().unwrap_or(i64::MAX));
    let log = read_text(&mut store, &instance, "dipla_log", 8193).map(|bytes| {
        dipla_protocol::text::printable_log(
            &String::from_utf8_lossy(&bytes),
            dipla_protocol::MAX_LOG_BYTES,
        )
    });
    Ran {
        outcome,
        fuel: limits.fuel.saturating_sub(remaining),
        log,
    }
}

fn classify(
    store: &mut Store<()>,
    instance: &Instance,
    error: wasmtime::Error,
    limits: &Limits,
) -> (FailureKind, String) {
    let int = |store: &mut Store<()>, name: &str| match instance
        .get_global(&mut *store, name)
        .unwrap()
        .get(&mut *store)
    {
        Val::I32(value) => i64::from(value),
        Val::I64(value) => value,
        _ => unreachable!(),
    };
    let reason = TrapReason::from_i32(int(store, TRAP_REASON) as i32).unwrap();
    let detail = int(store, TRAP_DETAIL);
    match reason {
        TrapReason::OutOfFuel => {
            return (
                FailureKind::OutOfFuel,
                format!("the task used all of its {} fuel", limits.fuel),
            );
        }
        TrapReason::MemoryLimit => {
            return (
                FailureKind::MemoryLimit,
                format!(
                    "linear memory would grow to {detail} bytes; the limit is {}",
                    limits.memory_bytes
                ),
            );
        }
        TrapReason::TableLimit => {
            return (
                FailureKind::MemoryLimit,
                format!(
                    "a table would grow to {detail} bytes; the limit is {}",
                    dipla_instrument::MAX_TABLE_ELEMENTS
                ),
            );
        }
        TrapReason::None | TrapReason::NullElement | TrapReason::NanToInteger => {}
    }
    let trap = error.downcast_ref::<Trap>().copied();
    if trap == Some(Trap::UnreachableCodeReached)
        && let Some(bytes) = read_text(
            store,
            instance,
            "dipla_panic_message",
            MAX_MESSAGE_BYTES + 1,
        )
    {
        return (FailureKind::Panic, text(&bytes));
    }
    match trap {
        Some(Trap::StackOverflow) => (
            FailureKind::StackOverflow,
            "the task overflowed the 512 KiB wasm stack".to_owned(),
        ),
        Some(trap) => {
            let text = trap.to_string();
            let text = text.strip_prefix("wasm trap: ").unwrap_or(&text).to_owned();
            (FailureKind::Trap, text)
        }
        None => (FailureKind::Trap, format!("{error:#}")),
    }
}

fn text(bytes: &[u8]) -> String {
    let mut text =
        String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_MESSAGE_BYTES)]).into_owned();
    if bytes.len() > MAX_MESSAGE_BYTES {
        text.push_str("...");
    }
    text
}

/// Calls `export` on fuel of its own and restores the task's, as the sandbox does.
fn read_text(
    store: &mut Store<()>,
    instance: &Instance,
    export: &str,
    max: usize,
) -> Option<Vec<u8>> {
    let get = instance
        .get_typed_func::<(), i64>(&mut *store, export)
        .ok()?;
    let memory = instance.get_memory(&mut *store, "memory")?;
    let fuel = instance.get_global(&mut *store, FUEL)?;
    let saved = fuel.get(&mut *store);
    fuel.set(&mut *store, Val::I64(-SIDE_FUEL)).ok()?;
    let packed = get.call(&mut *store, ());
    fuel.set(&mut *store, saved).ok()?;
    let packed = packed.ok()? as u64;
    let (ptr, len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
    if len == 0 {
        return None;
    }
    let bytes = memory.data(&*store).get(ptr..ptr.checked_add(len)?)?;
    Some(bytes[..len.min(max)].to_vec())
}

fn read_output(
    memory: &[u8],
    packed: u64,
    limits: &Limits,
) -> Result<(String, bool), (FailureKind, String)> {
    let bad = |why: String| (FailureKind::BadOutput, why);
    let (ptr, len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
    if len > limits.max_output_bytes {
        return Err(bad(format!(
            "the output is {len} bytes; the limit is {}",
            limits.max_output_bytes
        )));
    }
    let bytes = memory.get(ptr..ptr + len).ok_or_else(|| {
        bad(format!(
            "the output ({len} bytes at {ptr:#x}) is out of bounds"
        ))
    })?;
    match bytes.split_first() {
        Some((&status @ (0 | 2), json)) => {
            let text = std::str::from_utf8(json)
                .map_err(|_| bad("the output is not UTF-8 JSON".to_owned()))?;
            serde_json::value::RawValue::from_string(text.to_owned())
                .map_err(|e| bad(format!("the output is not valid JSON: {e}")))?;
            Ok((text.to_owned(), status == 2))
        }
        Some((&1, message)) => Err((FailureKind::Guest, text(message))),
        Some((status, _)) => Err(bad(format!("unknown output status byte {status}"))),
        None => Err(bad("the output is empty (no status byte)".to_owned())),
    }
}

/// A module compiled both ways: for the sandbox, and instrumented for the browser-like engine.
pub struct Pair {
    pub guest: Guest,
    pub browser: Module,
}

impl Pair {
    pub fn new(module: &[u8]) -> Self {
        let bytes = dipla_instrument::instrument(module).unwrap();
        Pair {
            guest: sandbox().compile(module).unwrap(),
            browser: Module::new(browser(), &bytes).unwrap(),
        }
    }

    /// Runs `export` on `input` both ways and checks that they agree on everything: outcome
    /// (output bits or failure), fuel and log. Returns what they gave.
    pub fn agree(&self, export: &str, input: &str, limits: &Limits) -> Ran {
        let native = in_sandbox(&self.guest, export, input, limits);
        let instrumented = in_browser(&self.browser, export, input, limits);
        assert_eq!(
            native, instrumented,
            "{export}({input}) in the sandbox (left) and instrumented (right)"
        );
        native
    }

    pub fn sandbox(&self, export: &str, input: &str, limits: &Limits) -> Ran {
        in_sandbox(&self.guest, export, input, limits)
    }

    pub fn browser(&self, export: &str, input: &str, limits: &Limits) -> Ran {
        in_browser(&self.browser, export, input, limits)
    }
}

/// Runs `export` of an uninstrumented module in the browser-like engine: its output, or what
/// went wrong.
pub fn in_browser_raw(module: &Module, export: &str, input: &str) -> String {
    let mut store = Store::new(browser(), ());
    let instance = Instance::new(&mut store, module, &[]).unwrap();
    let memory = instance.get_memory(&mut store, "memory").unwrap();
    let realloc = instance
        .get_typed_func::<(i32, i32, i32, i32), i32>(&mut store, "cabi_realloc")
        .unwrap();
    let task = instance
        .get_typed_func::<(i32, i32), i64>(&mut store, export)
        .unwrap();
    let ptr = realloc
        .call(&mut store, (0, 0, 1, input.len() as i32))
        .unwrap();
    memory
        .write(&mut store, ptr as u32 as usize, input.as_bytes())
        .unwrap();
    match task.call(&mut store, (ptr, input.len() as i32)) {
        Ok(packed) => {
            let (ptr, len) = (
                (packed as u64 >> 32) as usize,
                (packed & 0xffff_ffff) as usize,
            );
            String::from_utf8_lossy(&memory.data(&store)[ptr + 1..ptr + len]).into_owned()
        }
        Err(error) => format!("{error:#}"),
    }
}
