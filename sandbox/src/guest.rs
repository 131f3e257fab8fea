use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use dipla_protocol::text::printable_log;
use dipla_protocol::{FailureKind, MAX_LOG_BYTES, RawJson, TaskFailure};
use wasmtime::{Instance, Memory, Module, Store, Trap, UpdateDeadline};

use crate::component::PythonCode;

use crate::abi::{self, AbiError, ModuleInfo};
use crate::config::{EPOCH_TICK, MAX_WASM_STACK};
use crate::exports::Exports;
use crate::limits::{LimitExceeded, Limiter, Limits};

/// The longest error or panic message kept from a guest.
const MAX_MESSAGE_BYTES: usize = 4096;

/// Fuel granted to read a panic message or the log after the task (it may have used all of
/// its own).
const PANIC_MESSAGE_FUEL: u64 = 1_000_000;

/// A compiled guest module, ready to run tasks. Cheap to clone (two reference counts): a
/// worker clones it for every task.
#[derive(Clone)]
pub struct Guest {
    code: Code,
    about: Arc<About>,
}

/// A guest's compiled code: a core module (a Rust guest, or any language's following the
/// core ABI) or a component (a Python guest).
#[derive(Clone)]
pub(crate) enum Code {
    Core(Module),
    Python(PythonCode),
}

/// What a guest's bytes say of it, read once and shared by a [`crate::LazyGuest`] and the
/// guest it compiles.
pub(crate) struct About {
    /// Its `dipla` section.
    pub(crate) info: ModuleInfo,
    /// Its exports (a core module's; a component's interface is checked when it is linked).
    pub(crate) exports: Option<Exports>,
}

impl About {
    /// Checks that `export` is a task of the module with the task signature.
    pub(crate) fn check_task(&self, export: &str) -> Result<&abi::TaskInfo, AbiError> {
        let task = self.info.task(export)?;
        if let Some(exports) = &self.exports {
            exports.check_task(export)?;
        }
        Ok(task)
    }
}

/// What running one task gave.
#[derive(Debug)]
pub struct Run {
    /// Fuel consumed, up to the end or the failure (deterministic except after a timeout).
    pub fuel: u64,
    /// Wall-clock time the task took, in microseconds.
    pub micros: u64,
    /// The task's JSON output, or why it failed.
    pub outcome: Result<Box<RawJson>, TaskFailure>,
    /// Whether the output meets the stage's goal (the guest asked to stop the stage).
    pub stop: bool,
    /// What the task logged through the optional `dipla_log` export, read after it returned
    /// or trapped: printable, at most [`MAX_LOG_BYTES`] (cut with "…"); `None` when it
    /// logged nothing or its log was out of bounds. Never part of the outcome.
    pub log: Option<String>,
}

/// The task was cancelled from outside while it ran.
#[derive(Debug)]
pub(crate) struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the task was cancelled")
    }
}

impl std::error::Error for Cancelled {}

pub(crate) fn failure(kind: FailureKind, message: impl Into<String>) -> TaskFailure {
    TaskFailure {
        kind,
        message: message.into(),
    }
}

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guest")
            .field("tasks", &self.about.info.tasks)
            .finish_non_exhaustive()
    }
}

impl Guest {
    pub(crate) fn new(code: Code, about: Arc<About>) -> Self {
        Self { code, about }
    }

    /// What the module's `dipla` section says.
    pub fn info(&self) -> &ModuleInfo {
        &self.about.info
    }

    /// Checks that `export` is a task of this module with the task signature.
    ///
    /// # Errors
    /// When it is not listed in the `dipla` section or has another type.
    pub fn check_task(&self, export: &str) -> Result<&abi::TaskInfo, AbiError> {
        self.about.check_task(export)
    }

    /// Writes the compiled code to `path` for [`crate::Sandbox::load_precompiled`].
    ///
    /// # Errors
    /// When serialising or writing fails.
    pub fn serialize(&self, path: &Path) -> std::io::Result<()> {
        let bytes = match &self.code {
            Code::Core(module) => module.serialize(),
            Code::Python(python) => python.component().serialize(),
        }
        .map_err(std::io::Error::other)?;
        std::fs::write(path, bytes)
    }

    /// Runs task `export` on the JSON `input` in a fresh instance under `limits`.
    ///
    /// Never panics on anything the guest does: every misbehaviour ends as a
    /// [`TaskFailure`] naming its cause.
    pub fn run(&self, export: &str, input: &[u8], limits: &Limits) -> Run {
        self.run_cancellable(export, input, limits, Arc::new(AtomicBool::new(false)))
    }

    /// Like [`Guest::run`], but the task stops within one epoch tick (10 ms) once `cancel`
    /// is set, failing as a `worker` failure.
    pub fn run_cancellable(
        &self,
        export: &str,
        input: &[u8],
        limits: &Limits,
        cancel: Arc<AtomicBool>,
    ) -> Run {
        self.run_paced(export, input, limits, cancel, None)
    }

    /// Like [`Guest::run_cancellable`], calling `pace` (if any) at every epoch tick (10 ms)
    /// of the task, on the thread running it: a worker capping its CPU use sleeps there.
    /// The sleeps change nothing the task computes (its outcome and fuel are the same), and
    /// they do not count against `limits.timeout`, which counts the ticks at which the task
    /// ran (see [`Pace`]).
    pub fn run_paced(
        &self,
        export: &str,
        input: &[u8],
        limits: &Limits,
        cancel: Arc<AtomicBool>,
        pace: Option<Pace>,
    ) -> Run {
        let module = match &self.code {
            Code::Core(module) => module,
            Code::Python(python) => return python.run(export, input, limits, cancel, pace),
        };
        let started = Instant::now();
        let mut store = Store::new(module.engine(), Limiter::core(limits.memory_bytes));
        store.limiter(|limiter| limiter);
        arm_deadline(&mut store, limits, cancel, pace);
        let mut instance = None;
        let (outcome, stop, fuel) = with_fuel(&mut store, limits, |store| {
            call(module, store, &mut instance, export, input, limits)
        });
        let log = instance.and_then(|instance| read_log(&mut store, &instance));
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        Run {
            fuel,
            micros,
            outcome,
            stop,
            log,
        }
    }
}

/// Gives `store` the task's fuel and runs `call` in it: the outcome, whether the output
/// meets the stage's goal, and the fuel burnt (0 in an engine without fuel metering,
/// [`crate::Sandbox::unmetered`]).
pub(crate) fn with_fuel<T: 'static>(
    store: &mut Store<T>,
    limits: &Limits,
    call: impl FnOnce(&mut Store<T>) -> Result<(Box<RawJson>, bool), TaskFailure>,
) -> (Result<Box<RawJson>, TaskFailure>, bool, u64) {
    if store.get_fuel().is_err() {
        let (outcome, stop) = match call(store) {
            Ok((output, stop)) => (Ok(output), stop),
            Err(failure) => (Err(failure), false),
        };
        return (outcome, stop, 0);
    }
    let (outcome, stop) = match store.set_fuel(limits.fuel) {
        Ok(()) => match call(store) {
            Ok((output, stop)) => (Ok(output), stop),
            Err(failure) => (Err(failure), false),
        },
        Err(error) => (
            Err(failure(
                FailureKind::Worker,
                format!("cannot set fuel: {error}"),
            )),
            false,
        ),
    };
    let fuel = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    (outcome, stop, fuel)
}

/// A pacing hook: called on the task's thread at every epoch tick with the task's cancel
/// flag, it may sleep (and should stop sleeping soon after the flag is set). The wall-clock
/// backstop counts one tick per call, whatever the hook slept, so pacing never makes a task
/// time out.
pub type Pace = Arc<dyn Fn(&AtomicBool) + Send + Sync>;

/// Arms `store`'s wall-clock limit: the epoch callback runs every tick, calls `pace` if
/// given, and stops the task once it ran for `limits.timeout` worth of ticks, or at the next
/// tick once `cancel` is set.
pub(crate) fn arm_deadline<T: 'static>(
    store: &mut Store<T>,
    limits: &Limits,
    cancel: Arc<AtomicBool>,
    pace: Option<Pace>,
) {
    let ticks = limits
        .timeout
        .as_millis()
        .div_ceil(EPOCH_TICK.as_millis())
        .max(1);
    let mut left = u64::try_from(ticks).unwrap_or(u64::MAX);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if let Some(pace) = &pace {
            pace(&cancel);
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(wasmtime::Error::new(Cancelled));
        }
        left = left.saturating_sub(1);
        if left == 0 {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Continue(1))
        }
    });
}

/// Instantiates `module` (into `instance`, for what is read afterwards) and runs the task.
fn call(
    module: &Module,
    store: &mut Store<Limiter>,
    instance: &mut Option<Instance>,
    export: &str,
    input: &[u8],
    limits: &Limits,
) -> Result<(Box<RawJson>, bool), TaskFailure> {
    let instance = *instance.insert(
        Instance::new(&mut *store, module, &[]).map_err(|e| classify(store, None, e, limits))?,
    );
    let rejected = |what: String| failure(FailureKind::Rejected, what);
    let memory = instance
        .get_memory(&mut *store, abi::MEMORY)
        .ok_or_else(|| rejected("the module exports no `memory`".into()))?;
    let realloc = instance
        .get_typed_func::<(i32, i32, i32, i32), i32>(&mut *store, abi::REALLOC)
        .map_err(|e| rejected(format!("bad `cabi_realloc` export: {e}")))?;
    let task = instance
        .get_typed_func::<(i32, i32), i64>(&mut *store, export)
        .map_err(|_| {
            rejected(format!(
                "the module has no task `{export}` of type (i32, i32) -> i64"
            ))
        })?;

    let len = i32::try_from(input.len())
        .map_err(|_| failure(FailureKind::BadOutput, "the input is larger than 2 GiB"))?;
    let ptr = realloc
        .call(&mut *store, (0, 0, 1, len))
        .map_err(|e| classify(store, Some(&instance), e, limits))?;
    memory
        .write(&mut *store, ptr as u32 as usize, input)
        .map_err(|_| {
            failure(
                FailureKind::BadOutput,
                "`cabi_realloc` returned memory out of bounds",
            )
        })?;
    let packed = task
        .call(&mut *store, (ptr, len))
        .map_err(|e| classify(store, Some(&instance), e, limits))? as u64;
    read_output(store, memory, packed, limits)
}

/// Reads and checks the output a task returned as `(ptr << 32) | len`.
fn read_output(
    store: &Store<Limiter>,
    memory: Memory,
    packed: u64,
    limits: &Limits,
) -> Result<(Box<RawJson>, bool), TaskFailure> {
    let bad = |why: String| failure(FailureKind::BadOutput, why);
    let (ptr, len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
    if len > limits.max_output_bytes {
        return Err(bad(format!(
            "the output is {len} bytes; the limit is {}",
            limits.max_output_bytes
        )));
    }
    let bytes = memory.data(store).get(ptr..ptr + len).ok_or_else(|| {
        bad(format!(
            "the output ({len} bytes at {ptr:#x}) is out of bounds"
        ))
    })?;
    match bytes.split_first() {
        Some((&status @ (abi::STATUS_OK | abi::STATUS_STOP), json)) => {
            let text = std::str::from_utf8(json)
                .map_err(|_| bad("the output is not UTF-8 JSON".to_owned()))?;
            let output = RawJson::from_string(text.to_owned())
                .map_err(|e| bad(format!("the output is not valid JSON: {e}")))?;
            Ok((output, status == abi::STATUS_STOP))
        }
        Some((&abi::STATUS_ERR, message)) => Err(failure(FailureKind::Guest, text(message))),
        Some((status, _)) => Err(bad(format!("unknown output status byte {status}"))),
        None => Err(bad("the output is empty (no status byte)".to_owned())),
    }
}

/// A message, at most [`MAX_MESSAGE_BYTES`] of it.
pub(crate) fn cut(message: &str) -> String {
    text(message.as_bytes())
}

/// A guest message as text: lossy UTF-8, at most [`MAX_MESSAGE_BYTES`].
fn text(bytes: &[u8]) -> String {
    let mut text =
        String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_MESSAGE_BYTES)]).into_owned();
    if bytes.len() > MAX_MESSAGE_BYTES {
        text.push_str("...");
    }
    text
}

/// Names the cause of an error raised while a guest ran.
fn classify(
    store: &mut Store<Limiter>,
    instance: Option<&Instance>,
    error: wasmtime::Error,
    limits: &Limits,
) -> TaskFailure {
    if let Some(Trap::UnreachableCodeReached) = error.downcast_ref::<Trap>()
        && let Some(message) = instance.and_then(|i| panic_message(store, i))
    {
        return failure(FailureKind::Panic, message);
    }
    classify_error(error, limits)
}

/// Names the cause of an error raised while a guest ran, from the error alone.
pub(crate) fn classify_error(error: wasmtime::Error, limits: &Limits) -> TaskFailure {
    if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
        return failure(limit.kind(), limit.to_string());
    }
    if error.downcast_ref::<Cancelled>().is_some() {
        return failure(FailureKind::Worker, Cancelled.to_string());
    }
    let Some(trap) = error.downcast_ref::<Trap>() else {
        return failure(FailureKind::Trap, cut(&format!("{error:#}")));
    };
    match trap {
        Trap::OutOfFuel => failure(
            FailureKind::OutOfFuel,
            format!("the task used all of its {} fuel", limits.fuel),
        ),
        Trap::StackOverflow => failure(
            FailureKind::StackOverflow,
            format!(
                "the task overflowed the {} KiB wasm stack",
                MAX_WASM_STACK / 1024
            ),
        ),
        Trap::Interrupt => failure(
            FailureKind::Timeout,
            format!(
                "the task ran past the wall-clock limit of {:?}",
                limits.timeout
            ),
        ),
        other => failure(FailureKind::Trap, describe(*other)),
    }
}

/// A trap's description without wasmtime's "wasm trap: " prefix.
fn describe(trap: Trap) -> String {
    let text = trap.to_string();
    text.strip_prefix("wasm trap: ")
        .map_or(text.clone(), str::to_owned)
}

/// The guest's explanation of its last trap, if it exports one.
fn panic_message(store: &mut Store<Limiter>, instance: &Instance) -> Option<String> {
    read_text(store, instance, abi::PANIC_MESSAGE, MAX_MESSAGE_BYTES + 1).map(|bytes| text(&bytes))
}

/// What the task logged, if the guest exports `dipla_log` and logged anything in bounds.
fn read_log(store: &mut Store<Limiter>, instance: &Instance) -> Option<String> {
    let bytes = read_text(store, instance, abi::LOG, MAX_LOG_BYTES + 1)?;
    Some(printable_log(
        &String::from_utf8_lossy(&bytes),
        MAX_LOG_BYTES,
    ))
}

/// Calls the guest's `export: () -> i64` and reads the `(ptr << 32) | len` bytes it points
/// at, at most `max` of them: `None` when there is no such export, it fails, points at
/// nothing (`len` 0), or out of bounds. Runs on fuel and time of its own, and leaves the
/// task's fuel as it was.
fn read_text(
    store: &mut Store<Limiter>,
    instance: &Instance,
    export: &str,
    max: usize,
) -> Option<Vec<u8>> {
    let get = instance
        .get_typed_func::<(), i64>(&mut *store, export)
        .ok()?;
    let memory = instance.get_memory(&mut *store, abi::MEMORY)?;
    // Reading must not count against the task: restore its fuel afterwards. A task stopped by
    // the wall clock has no time left: give the call until the next tick.
    let remaining = store.get_fuel().ok()?;
    store.set_fuel(PANIC_MESSAGE_FUEL).ok()?;
    store.set_epoch_deadline(1);
    let packed = get.call(&mut *store, ());
    store.set_fuel(remaining).ok()?;
    let packed = packed.ok()? as u64;
    let (ptr, len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
    if len == 0 {
        return None;
    }
    let bytes = memory.data(&*store).get(ptr..ptr.checked_add(len)?)?;
    Some(bytes[..len.min(max)].to_vec())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Sandbox;

    /// A hand-written guest: `echo` returns its input, and the other tasks misbehave.
    const GUEST: &str = r#"(module
        (memory (export "memory") 1)
        (global $heap (mut i32) (i32.const 1024))
        (func $alloc (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
            (local $p i32)
            (local.set $p (global.get $heap))
            (global.set $heap (i32.add (global.get $heap) (local.get 3)))
            (local.get $p))
        (func $pack (param $ptr i32) (param $len i32) (result i64)
            (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
                    (i64.extend_i32_u (local.get $len))))
        (func (export "echo") (param $ptr i32) (param $len i32) (result i64)
            (local $out i32)
            (local.set $out (call $alloc (i32.const 0) (i32.const 0) (i32.const 1)
                                         (i32.add (local.get $len) (i32.const 1))))
            (i32.store8 (local.get $out) (i32.const 0))
            (memory.copy (i32.add (local.get $out) (i32.const 1)) (local.get $ptr) (local.get $len))
            (call $pack (local.get $out) (i32.add (local.get $len) (i32.const 1))))
        (func (export "refuse") (param i32 i32) (result i64)
            (i32.store (i32.const 0) (i32.const 0x6f6e01)) ;; bytes 01 "n" "o"
            (call $pack (i32.const 0) (i32.const 3)))
        (func (export "spin") (param i32 i32) (result i64)
            (loop $l (br $l)) (unreachable))
        (func (export "grow") (param i32 i32) (result i64)
            (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
            (i64.const 0))
        (func $deep (export "deep") (param i32 i32) (result i64)
            (call $deep (local.get 0) (local.get 1)))
        (func (export "crash") (param i32 i32) (result i64) (unreachable))
        (func (export "wild") (param i32 i32) (result i64) (i64.const 0xffff000000000010))
        (func (export "nan") (param i32 i32) (result i64)
            ;; Writes the bits of 0.0/0.0 as 16 hex digits and returns them as a JSON string.
            (local $bits i64) (local $i i32) (local $nibble i32)
            (local.set $bits (i64.reinterpret_f64 (f64.div (f64.const 0) (f64.const 0))))
            (i32.store8 (i32.const 100) (i32.const 0))
            (i32.store8 (i32.const 101) (i32.const 34))
            (i32.store8 (i32.const 118) (i32.const 34))
            (loop $l
                (local.set $nibble (i32.wrap_i64 (i64.and (i64.shr_u (local.get $bits)
                    (i64.extend_i32_u (i32.sub (i32.const 60) (i32.mul (local.get $i) (i32.const 4)))))
                    (i64.const 15))))
                (i32.store8 (i32.add (i32.const 102) (local.get $i))
                    (i32.add (local.get $nibble)
                        (select (i32.const 48) (i32.const 87) (i32.lt_u (local.get $nibble) (i32.const 10)))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $l (i32.lt_u (local.get $i) (i32.const 16))))
            (call $pack (i32.const 100) (i32.const 19)))
        (@custom "dipla" "{\"abi\":1,\"task\":\"echo\"}\n{\"abi\":1,\"task\":\"spin\"}\n")
    )"#;

    fn guest() -> Guest {
        let sandbox = Sandbox::new().unwrap();
        sandbox.compile(&wat::parse_str(GUEST).unwrap()).unwrap()
    }

    fn limits() -> Limits {
        Limits {
            fuel: 50_000_000,
            memory_bytes: 4 << 20,
            ..Limits::default()
        }
    }

    fn fails(export: &str, limits: &Limits) -> TaskFailure {
        let run = guest().run(export, b"1", limits);
        run.outcome.expect_err("the task should fail")
    }

    #[test]
    fn a_hand_written_guest_runs() {
        let run = guest().run("echo", br#"{"a":[1,2]}"#, &limits());
        assert_eq!(run.outcome.unwrap().get(), r#"{"a":[1,2]}"#);
        assert!(run.fuel > 0);
    }

    #[test]
    fn fuel_is_deterministic() {
        let guest = guest();
        let a = guest.run("echo", b"[1,2,3]", &limits()).fuel;
        let b = guest.run("echo", b"[1,2,3]", &limits()).fuel;
        assert_eq!(a, b);
    }

    #[test]
    fn guest_errors_carry_their_message() {
        assert_eq!(
            fails("refuse", &limits()),
            failure(FailureKind::Guest, "no")
        );
    }

    #[test]
    fn infinite_loops_run_out_of_fuel() {
        let failure = fails("spin", &limits());
        assert_eq!(failure.kind, FailureKind::OutOfFuel);
        assert!(failure.message.contains("50000000 fuel"), "{failure}");
    }

    #[test]
    fn the_wall_clock_backstop_stops_a_task_with_fuel_to_spare() {
        let limits = Limits {
            fuel: u64::MAX / 2,
            timeout: Duration::from_millis(50),
            ..limits()
        };
        let started = Instant::now();
        assert_eq!(fails("spin", &limits).kind, FailureKind::Timeout);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn pacing_sleeps_change_no_outcome_nor_fuel_and_never_time_a_task_out() {
        let limits = Limits {
            fuel: 50_000_000,
            timeout: Duration::from_secs(1),
            ..limits()
        };
        let guest = guest();
        let plain = guest.run("spin", b"1", &limits);
        let ticks = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = ticks.clone();
        let pace: Pace = Arc::new(move |_: &AtomicBool| {
            counted.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(200));
        });
        let started = Instant::now();
        let paced = guest.run_paced(
            "spin",
            b"1",
            &limits,
            Arc::new(AtomicBool::new(false)),
            Some(pace),
        );
        // It slept past its timeout (every tick slept 200 ms)...
        assert!(
            ticks.load(Ordering::Relaxed) >= 5,
            "the task ran too few ticks to tell"
        );
        assert!(started.elapsed() > limits.timeout);
        // ...and still ran out of fuel, not time, exactly as without pacing.
        assert_eq!(plain.outcome.unwrap_err().kind, FailureKind::OutOfFuel);
        assert_eq!(paced.outcome.unwrap_err().kind, FailureKind::OutOfFuel);
        assert_eq!((paced.fuel, paced.stop), (plain.fuel, plain.stop));
    }

    #[test]
    fn a_cancelled_task_stops_within_a_tick() {
        let limits = Limits {
            fuel: u64::MAX / 2,
            ..limits()
        };
        let cancel = Arc::new(AtomicBool::new(false));
        let setter = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            setter.store(true, Ordering::Relaxed);
        });
        let started = Instant::now();
        let run = guest().run_cancellable("spin", b"1", &limits, cancel);
        assert_eq!(run.outcome.unwrap_err().kind, FailureKind::Worker);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn status_two_is_an_output_that_stops_the_stage() {
        let module = GUEST.replace(
            "(i32.store8 (local.get $out) (i32.const 0))",
            "(i32.store8 (local.get $out) (i32.const 2))",
        );
        let guest = Sandbox::new()
            .unwrap()
            .compile(&wat::parse_str(module).unwrap())
            .unwrap();
        let run = guest.run("echo", b"[1]", &limits());
        assert!(run.stop);
        assert_eq!(run.outcome.unwrap().get(), "[1]");
        assert!(!self::guest().run("echo", b"[1]", &limits()).stop);
    }

    #[test]
    fn memory_bombs_hit_the_limit() {
        let failure = fails("grow", &limits());
        assert_eq!(failure.kind, FailureKind::MemoryLimit);
        assert!(failure.message.contains("limit is 4194304"), "{failure}");
    }

    #[test]
    fn a_memory_larger_than_the_limit_cannot_even_start() {
        let tight = Limits {
            memory_bytes: 1000,
            ..limits()
        };
        assert_eq!(fails("echo", &tight).kind, FailureKind::MemoryLimit);
    }

    #[test]
    fn deep_recursion_overflows_the_stack() {
        assert_eq!(fails("deep", &limits()).kind, FailureKind::StackOverflow);
    }

    #[test]
    fn traps_are_failures() {
        let failure = fails("crash", &limits());
        assert_eq!(failure.kind, FailureKind::Trap);
        assert!(failure.message.contains("unreachable"), "{failure}");
    }

    #[test]
    fn outputs_out_of_bounds_are_refused() {
        assert_eq!(fails("wild", &limits()).kind, FailureKind::BadOutput);
        let small = Limits {
            max_output_bytes: 4,
            ..limits()
        };
        let run = guest().run("echo", b"[1,2,3,4,5]", &small);
        assert_eq!(run.outcome.unwrap_err().kind, FailureKind::BadOutput);
    }

    #[test]
    fn input_that_is_not_json_comes_back_as_bad_output() {
        let run = guest().run("echo", b"not json", &limits());
        assert_eq!(run.outcome.unwrap_err().kind, FailureKind::BadOutput);
    }

    #[test]
    fn unknown_exports_are_rejected() {
        assert_eq!(fails("nope", &limits()).kind, FailureKind::Rejected);
        assert_eq!(fails("memory", &limits()).kind, FailureKind::Rejected);
    }

    #[test]
    fn nan_bits_are_canonical() {
        let run = guest().run("nan", b"0", &limits());
        assert_eq!(run.outcome.unwrap().get(), r#""7ff8000000000000""#);
    }

    #[test]
    fn modules_that_import_anything_are_refused() {
        let sandbox = Sandbox::new().unwrap();
        let module = GUEST.replacen(
            "(memory",
            r#"(import "env" "now" (func (result i64))) (memory"#,
            1,
        );
        let error = sandbox
            .compile(&wat::parse_str(module).unwrap())
            .err()
            .unwrap();
        assert_eq!(error, AbiError::Imports(vec!["env.now".into()]));
        assert!(error.to_string().contains("may import nothing"));
    }

    #[test]
    fn missing_abi_exports_are_refused() {
        let sandbox = Sandbox::new().unwrap();
        let module = GUEST.replace(r#"(export "cabi_realloc")"#, "");
        let error = sandbox
            .compile(&wat::parse_str(module).unwrap())
            .err()
            .unwrap();
        assert!(error.to_string().contains("cabi_realloc"), "{error}");
    }

    #[test]
    fn check_task_needs_the_listing_and_the_signature() {
        let guest = guest();
        assert!(guest.check_task("echo").is_ok());
        assert!(matches!(
            guest.check_task("refuse"),
            Err(AbiError::NotATask { .. })
        ));
        assert!(guest.check_task("spin").is_ok());
    }

    /// A guest that logs: `dipla_log` returns what the task last stored in `$log`.
    const LOGGER: &str = r#"(module
        (memory (export "memory") 1)
        (global $log (mut i64) (i64.const 0))
        (data (i32.const 16) "checking\n\1b[31mred")
        (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
        (func (export "dipla_log") (result i64) (global.get $log))
        (func $one (result i64)
            (i32.store16 (i32.const 0) (i32.const 0x3100)) ;; status 0, then "1"
            (i64.const 2))
        (func (export "ok") (param i32 i32) (result i64)
            (global.set $log (i64.const 68719476753)) ;; 16 << 32 | 17
            (call $one))
        (func (export "quiet") (param i32 i32) (result i64) (call $one))
        (func (export "boom") (param i32 i32) (result i64)
            (global.set $log (i64.const 68719476753))
            (unreachable))
        (func (export "spin") (param i32 i32) (result i64)
            (global.set $log (i64.const 68719476753))
            (loop $l (br $l))
            (unreachable))
        (func (export "wild") (param i32 i32) (result i64)
            (global.set $log (i64.const 0xffff000000000010))
            (call $one))
        (func (export "past_the_end") (param i32 i32) (result i64)
            (global.set $log (i64.const 65537)) ;; 0 << 32 | 65537: one byte past the memory
            (call $one))
        (func (export "whole_memory") (param i32 i32) (result i64)
            (global.set $log (i64.const 65536))
            (call $one))
        (@custom "dipla" "{\"abi\":1,\"task\":\"ok\"}\n")
    )"#;

    fn logger(wat: &str) -> Guest {
        Sandbox::new()
            .unwrap()
            .compile(&wat::parse_str(wat).unwrap())
            .unwrap()
    }

    #[test]
    fn the_log_is_read_after_the_task_returns_and_made_printable() {
        let run = logger(LOGGER).run("ok", b"0", &limits());
        assert_eq!(run.outcome.unwrap().get(), "1");
        assert_eq!(run.log.as_deref(), Some("checking\n\u{FFFD}[31mred"));
        let quiet = logger(LOGGER).run("quiet", b"0", &limits());
        assert_eq!(quiet.log, None, "an empty log is no log");
        assert_eq!(guest().run("echo", b"1", &limits()).log, None);
    }

    #[test]
    fn the_log_survives_a_trap_and_running_out_of_fuel() {
        let run = logger(LOGGER).run("boom", b"0", &limits());
        assert_eq!(run.outcome.unwrap_err().kind, FailureKind::Trap);
        assert_eq!(run.log.as_deref(), Some("checking\n\u{FFFD}[31mred"));
        let run = logger(LOGGER).run("spin", b"0", &limits());
        assert_eq!(run.outcome.unwrap_err().kind, FailureKind::OutOfFuel);
        assert_eq!(
            run.fuel,
            limits().fuel,
            "reading the log costs the task nothing"
        );
        assert_eq!(run.log.as_deref(), Some("checking\n\u{FFFD}[31mred"));
    }

    #[test]
    fn a_hostile_log_pointer_is_ignored_or_bounded() {
        for export in ["wild", "past_the_end"] {
            let run = logger(LOGGER).run(export, b"0", &limits());
            assert_eq!(run.outcome.unwrap().get(), "1", "{export}");
            assert_eq!(run.log, None, "{export}");
        }
        let run = logger(LOGGER).run("whole_memory", b"0", &limits());
        assert_eq!(run.outcome.unwrap().get(), "1");
        let log = run.log.unwrap();
        assert!(log.len() <= MAX_LOG_BYTES && log.len() > MAX_LOG_BYTES - 8);
        assert!(log.ends_with('…'), "a log cut short says so");
    }

    #[test]
    fn a_log_export_that_misbehaves_changes_nothing_of_the_task() {
        let honest = logger(LOGGER).run("ok", b"0", &limits());
        for body in ["(loop $l (br $l)) (unreachable)", "(unreachable)"] {
            let hostile = LOGGER.replace(
                "(func (export \"dipla_log\") (result i64) (global.get $log))",
                &format!("(func (export \"dipla_log\") (result i64) {body})"),
            );
            let run = logger(&hostile).run("ok", b"0", &limits());
            assert_eq!(run.outcome.unwrap().get(), "1");
            assert_eq!(run.fuel, honest.fuel);
            assert_eq!(run.log, None);
        }
    }

    #[test]
    fn precompiled_modules_load_back() {
        let sandbox = Sandbox::new().unwrap();
        let bytes = wat::parse_str(GUEST).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("echo.cwasm");
        sandbox.compile(&bytes).unwrap().serialize(&path).unwrap();
        // SAFETY: written just above by this process.
        let loaded = unsafe { sandbox.load_precompiled(&bytes, &path) }.unwrap();
        assert_eq!(
            loaded.run("echo", b"7", &limits()).outcome.unwrap().get(),
            "7"
        );
    }
}
