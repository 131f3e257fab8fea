//! The driver API: Dipla from a Rust program, the way the original Dipla was used from
//! Python. Apply a task to inputs or to the promise of an earlier task, and get the results:
//!
//! ```no_run
//! # async fn demo() -> Result<(), dipla_server::DriverError> {
//! let dipla = dipla_server::Dipla::builder().local_workers(2).start().await?;
//! let m = dipla.module("target/wasm32-unknown-unknown/release/factorise.wasm")?;
//! let factors = m.task("factorise").map(1_000_000_000_000u64..1_000_000_002_000);
//! let counts = m.task("count").map(&factors);
//! let total: u64 = m.task("sum").reduce(&counts).get().await?;
//! # Ok(()) }
//! ```
//!
//! Each application adds a stage to the running job at once and returns a [`Promise`]
//! without waiting: `counts` starts as soon as the first factors exist (pipelining). A
//! mistake (no such task, wrong arity, empty inputs) is found when the stage is made and is
//! returned by the promise's `get`, and by every promise made from it. A promise keeps its
//! stage's results while it lives, so it can be read many times and mapped again; drop it
//! and they are freed as soon as the stages reading them are done with them.
//!
//! This runs the server in the program. To drive a long-running `dipla-server serve`
//! instead, use the light `dipla-driver` crate, which offers the same API without compiling
//! the server.

pub mod client;
pub(crate) mod promise;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use dipla_protocol::{ModuleHash, RawJson, TaskLimits};
use dipla_sandbox::abi::TaskInfo;
use dipla_sandbox::{LazyGuest, Limits, Sandbox};
use dipla_worker::WorkerConfig;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::manifest::stage_error::{Application, StageError};
use crate::manifest::{DEFAULT_LIMITS, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_EXPLORE_TASKS};
use crate::net::state::Handle;
use crate::net::transport::Venue;
use crate::run::engine::{Engine, LocalWorkers, worker_url};
use crate::run::stage_check::resolve;
use crate::{DriverError, Inputs, Job, Module, Part, Promise, Reduced, Source, Stage};
use dipla_core::{Keep, Replicate};

/// A running Dipla server, driven from Rust. Cheap to share by reference; it stops when it,
/// and every module, task and promise made from it, is dropped, or at [`Dipla::shutdown`].
pub struct Dipla {
    inner: Arc<Inner>,
}

/// What everything made from a [`Dipla`] shares.
pub(crate) struct Inner {
    pub(crate) handle: Handle,
    engine: Mutex<Option<Engine>>,
    url: String,
    sandbox: Sandbox,
    limits: TaskLimits,
    max_attempts: u32,
    /// How many stages each task name has given its name to, for unique stage names.
    names: Mutex<HashMap<String, u32>>,
}

/// How to start a [`Dipla`].
#[derive(Debug, Clone)]
pub struct DiplaBuilder {
    listen: Option<String>,
    local_workers: Option<usize>,
    cache_dir: Option<PathBuf>,
    caps: Limits,
    limits: TaskLimits,
    max_attempts: u32,
    speculate: bool,
    min_workers: usize,
    tokens: Vec<String>,
}

impl Dipla {
    /// How to start one: by default with a local worker per core and no remote workers.
    pub fn builder() -> DiplaBuilder {
        DiplaBuilder {
            listen: None,
            local_workers: None,
            cache_dir: None,
            caps: WorkerConfig::new("").caps,
            limits: DEFAULT_LIMITS,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            speculate: true,
            min_workers: 0,
            tokens: Vec::new(),
        }
    }

    /// The URL remote workers connect to (`dipla-worker --server URL`).
    pub fn worker_url(&self) -> &str {
        &self.inner.url
    }

    /// A handle to watch the server: workers, counters, traffic.
    pub fn handle(&self) -> Handle {
        self.inner.handle.clone()
    }

    /// Loads a guest module (`.wasm`) and checks it; its tasks are then applied with
    /// [`ModuleRef::task`]. Workers fetch it by content hash the first time they need it.
    ///
    /// # Errors
    /// [`DriverError::Module`] when the file cannot be read or is not a runnable guest.
    pub fn module(&self, path: impl AsRef<Path>) -> Result<ModuleRef, DriverError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| DriverError::Module {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let name = path.file_stem().map_or_else(
            || "module".into(),
            |stem| stem.to_string_lossy().into_owned(),
        );
        self.admit(name, bytes, path)
    }

    /// Like [`Dipla::module`], for a module's bytes (such as `include_bytes!`).
    ///
    /// # Errors
    /// [`DriverError::Module`] when the bytes are not a runnable guest.
    pub fn module_from_bytes(
        &self,
        name: &str,
        bytes: impl Into<Vec<u8>>,
    ) -> Result<ModuleRef, DriverError> {
        self.admit(name.to_owned(), bytes.into(), Path::new(name))
    }

    fn admit(&self, name: String, bytes: Vec<u8>, path: &Path) -> Result<ModuleRef, DriverError> {
        let hash = ModuleHash::of(&bytes);
        let guest = self
            .inner
            .sandbox
            .admit(bytes)
            .map_err(|e| DriverError::Module {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        if let Some(warning) = guest.info().debug_warning() {
            tracing::warn!("module {}: {warning}", path.display());
        }
        let module = Module {
            name: name.clone(),
            hash,
            bytes: guest.bytes().clone(),
            guest: guest.clone(),
        };
        if let Some(engine) = lock(&self.inner.engine).as_ref() {
            engine.seed(&module);
        }
        let hash = module.hash;
        self.inner.handle.lock().add_module(module);
        Ok(ModuleRef {
            inner: self.inner.clone(),
            name,
            hash,
            guest,
        })
    }

    /// Says goodbye to the workers and stops serving. Promises still waiting then return
    /// [`DriverError::Closed`].
    pub async fn shutdown(self) {
        let engine = lock(&self.inner.engine).take();
        if let Some(engine) = engine {
            engine.shutdown().await;
        }
        self.inner.handle.progressed();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DiplaBuilder {
    /// Accepts remote workers on this address, such as `"0.0.0.0:7070"` (default: loopback
    /// on a free port, for local workers only).
    #[must_use]
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.listen = Some(addr.into());
        self
    }

    /// Runs `count` workers inside this process, one core each (default: one per core
    /// without [`DiplaBuilder::listen`], none with it).
    #[must_use]
    pub fn local_workers(mut self, count: usize) -> Self {
        self.local_workers = Some(count);
        self
    }

    /// Where local workers cache compiled modules (default: in memory only).
    #[must_use]
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// The limits every task gets unless its [`Task::limits`] says otherwise.
    #[must_use]
    pub fn limits(mut self, limits: TaskLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Failures a task may have before it is reported as failed (default 3).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Whether idle faster workers may run copies of tasks straggling on slower ones
    /// (default yes; the first answer wins).
    #[must_use]
    pub fn speculation(mut self, speculate: bool) -> Self {
        self.speculate = speculate;
        self
    }

    /// Gives out no task until `workers` workers have joined, local ones included (default:
    /// start with the first); after that, tasks run on whoever is connected.
    #[must_use]
    pub fn min_workers(mut self, workers: usize) -> Self {
        self.min_workers = workers;
        self
    }

    /// Admits only workers presenting `token` (`dipla-worker --token`); call again to
    /// accept several.
    #[must_use]
    pub fn worker_token(mut self, token: impl Into<String>) -> Self {
        self.tokens.push(token.into());
        self
    }

    /// Binds the worker endpoint and starts the local workers.
    ///
    /// # Errors
    /// [`DriverError::Start`] when the address cannot be resolved or bound, the sandbox
    /// cannot start, or there would be no workers at all.
    pub async fn start(self) -> Result<Dipla, DriverError> {
        let start = |message: String| DriverError::Start(message);
        let addr: SocketAddr = match &self.listen {
            None => (Ipv4Addr::LOCALHOST, 0).into(),
            Some(addr) => tokio::net::lookup_host(addr.as_str())
                .await
                .map_err(|e| start(format!("cannot resolve {addr}: {e}")))?
                .next()
                .ok_or_else(|| start(format!("{addr} resolves to no address")))?,
        };
        let local_workers = self.local_workers.unwrap_or(if self.listen.is_some() {
            0
        } else {
            std::thread::available_parallelism().map_or(1, usize::from)
        });
        if local_workers == 0 && self.listen.is_none() {
            return Err(start(
                "no workers: give local_workers(n), or listen(addr) for remote workers".into(),
            ));
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| start(format!("cannot listen on {addr}: {e}")))?;
        let url = worker_url(
            listener.local_addr().map_err(|e| start(e.to_string()))?,
            false,
        );
        let sandbox = Sandbox::new().map_err(|e| start(format!("the sandbox: {e}")))?;
        let job = Job {
            name: "driver".into(),
            modules: Vec::new(),
            stages: Vec::new(),
            sandbox: sandbox.clone(),
        };
        let gate = crate::net::gate::Gate::default();
        gate.require_tokens(crate::Tokens::new(&self.tokens));
        let handle = Handle::new(job, |_| Keep::All, Arc::new(gate));
        // A driver's job grows as it runs: its receipts name this run.
        let mut nonce = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        let id: String = nonce.iter().map(|byte| format!("{byte:02x}")).collect();
        handle.set_job_id(format!("driver-{id}"));
        handle.lock().coordinator.set_speculation(self.speculate);
        handle.lock().coordinator.wait_for_workers(self.min_workers);
        let local = LocalWorkers {
            count: local_workers,
            cache_dir: self.cache_dir,
            caps: self.caps,
            token: self.tokens.first().cloned(),
        };
        let engine = Engine::start(
            listener,
            None,
            Venue::Job(handle.clone()),
            crate::run::engine::job_routes(&handle),
            &[],
            &sandbox,
            &local,
        )
        .map_err(|e| start(e.to_string()))?;
        let inner = Inner {
            handle,
            engine: Mutex::new(Some(engine)),
            url,
            sandbox,
            limits: self.limits,
            max_attempts: self.max_attempts,
            names: Mutex::default(),
        };
        Ok(Dipla {
            inner: Arc::new(inner),
        })
    }
}

/// A guest module loaded into a [`Dipla`].
#[derive(Clone)]
pub struct ModuleRef {
    inner: Arc<Inner>,
    name: String,
    hash: ModuleHash,
    guest: LazyGuest,
}

impl std::fmt::Debug for ModuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleRef")
            .field("name", &self.name)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl ModuleRef {
    /// The module's content hash, by which workers fetch and cache it.
    pub fn hash(&self) -> ModuleHash {
        self.hash
    }

    /// Its tasks' signatures, as its `#[task]`s recorded them.
    pub fn tasks(&self) -> &[TaskInfo] {
        &self.guest.info().tasks
    }

    /// The task export `name`, ready to be applied. A name the module does not export is
    /// reported by the promises it makes.
    pub fn task(&self, name: &str) -> Task {
        let info = self
            .guest
            .check_task(name)
            .cloned()
            .map_err(|error| StageError::Task {
                module: self.name.clone(),
                error,
            });
        Task {
            inner: self.inner.clone(),
            module: self.hash,
            export: name.to_owned(),
            info,
            name: None,
            limits: self.inner.limits,
            max_attempts: self.inner.max_attempts,
            stop_after: 1,
            fan_in: 2,
            replicate: Replicate::Off,
            quorum: 2,
            verify: None,
            deadline: None,
            check_types: true,
        }
    }
}

/// A task of a module, with its options, about to be applied.
#[must_use = "a task does nothing until it is applied with map, zip, scatter, explore or reduce"]
pub struct Task {
    inner: Arc<Inner>,
    module: ModuleHash,
    export: String,
    info: Result<TaskInfo, StageError>,
    name: Option<String>,
    limits: TaskLimits,
    max_attempts: u32,
    stop_after: u64,
    fan_in: u64,
    replicate: Replicate,
    quorum: u32,
    verify: Option<(ModuleHash, String)>,
    deadline: Option<std::time::Duration>,
    check_types: bool,
}

/// What a task is applied to: values known now, or the outputs of a promise.
pub struct Input(InputKind);

enum InputKind {
    List(Result<Inputs, StageError>),
    Stage(Promise),
}

impl Input {
    /// One task per value, each value serialised to JSON.
    pub fn values<T: Serialize>(values: impl IntoIterator<Item = T>) -> Self {
        let values: Result<Vec<Box<RawJson>>, StageError> = values
            .into_iter()
            .enumerate()
            .map(|(index, value)| {
                serde_json::value::to_raw_value(&value)
                    .map_err(|error| StageError::InputNotJson { index, error })
            })
            .collect();
        Self(InputKind::List(values.map(Inputs::Values)))
    }
}

impl From<Range<u64>> for Input {
    fn from(range: Range<u64>) -> Self {
        Self(InputKind::List(Ok(Inputs::Range {
            start: range.start,
            end: range.end,
        })))
    }
}

impl From<RangeInclusive<u64>> for Input {
    fn from(range: RangeInclusive<u64>) -> Self {
        let (start, end) = range.into_inner();
        match end.checked_add(1) {
            Some(end) => (start..end).into(),
            None => Self(InputKind::List(Err(StageError::RangeToMax))),
        }
    }
}

impl<T: Serialize> From<Vec<T>> for Input {
    fn from(values: Vec<T>) -> Self {
        Self::values(values)
    }
}

impl<T: Serialize> From<&[T]> for Input {
    fn from(values: &[T]) -> Self {
        Self::values(values)
    }
}

impl From<&Promise> for Input {
    fn from(promise: &Promise) -> Self {
        Self(InputKind::Stage(promise.clone()))
    }
}

impl From<&Reduced> for Input {
    fn from(reduced: &Reduced) -> Self {
        Self(InputKind::Stage(reduced.promise().clone()))
    }
}

impl Task {
    /// Names the stage (in errors and logs; default: the task's name, numbered when used
    /// again).
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// The limits each of its tasks gets.
    pub fn limits(mut self, limits: TaskLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Failures a task may have before it is reported as failed.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// For a task returning `Flow`: how many outputs that meet the goal end the stage
    /// (default 1). The stage's other tasks are then cancelled or never run.
    pub fn stop_after(mut self, outputs: u64) -> Self {
        self.stop_after = outputs.max(1);
        self
    }

    /// Checks results by running a fraction of tasks (or, [`Replicate::Adaptive`], more
    /// of new workers' and fewer of proven ones') on [`Task::quorum`] workers: a worker whose
    /// answer disagrees with the majority is untrusted and its unchecked results re-run.
    pub fn replicate(mut self, replicate: Replicate) -> Self {
        self.replicate = replicate;
        self
    }

    /// How long a task may run on a worker before it is given to another one as well (the
    /// first answer wins); by default, from its limits and the worker's measured speed.
    pub fn deadline(mut self, deadline: std::time::Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Agreeing workers a replicated task needs (default 2, at least 2).
    pub fn quorum(mut self, quorum: u32) -> Self {
        self.quorum = quorum.clamp(2, 9);
        self
    }

    /// Checks every output with `module`'s `#[verifier]` `name`, run by the server; a
    /// rejected output runs again on another worker.
    pub fn verify(mut self, module: &ModuleRef, name: &str) -> Self {
        match module.guest.check_task(name) {
            Ok(info) if info.verifier => self.verify = Some((module.hash, name.to_owned())),
            Ok(info) => {
                self.info = Err(StageError::NotVerifier {
                    task: info.to_string(),
                });
            }
            Err(error) => {
                self.info = Err(StageError::Verifier {
                    module: module.name.clone(),
                    error,
                });
            }
        }
        self
    }

    /// Whether the stage's inputs and the outputs it reads are checked against the types the
    /// module records when the stage is made (default yes). Turn it off only for a type the
    /// check cannot see through, such as a struct that serialises as a bare number.
    pub fn check_types(mut self, check: bool) -> Self {
        self.check_types = check;
        self
    }

    /// For a reduce: how many values each task folds (default 2).
    pub fn fan_in(mut self, fan_in: u64) -> Self {
        self.fan_in = fan_in;
        self
    }

    /// One task per input, in order: values, a range, or the outputs of a promise (a task
    /// then starts as soon as its input exists).
    pub fn map(self, inputs: impl Into<Input>) -> Promise {
        let mut inputs = inputs.into();
        self.make(None, || source_of(&mut inputs, Application::Map))
    }

    /// One task per index, its arguments taken from each part at that index (a task of
    /// several parameters); the parts must have the same length.
    pub fn zip(self, parts: impl IntoIterator<Item = Input>) -> Promise {
        let mut parts: Vec<Input> = parts.into_iter().collect();
        self.make(None, || {
            let mut resolved = Vec::new();
            for (j, part) in parts.iter_mut().enumerate() {
                resolved.push(match &mut part.0 {
                    InputKind::List(list) => {
                        Part::List(take(list).map_err(|e| e.of(Application::Zip(j)))?)
                    }
                    InputKind::Stage(promise) => Part::Stage(promise.stage_for_reading()?),
                });
            }
            Ok(Source::Zip(resolved))
        })
    }

    /// `count` tasks over one value, task `i` given `(value, i, count)`.
    pub fn scatter(self, value: impl Serialize, count: u64) -> Promise {
        let value = serde_json::value::to_raw_value(&value);
        self.make(None, move || {
            let value = value.map_err(StageError::ScatterNotJson)?;
            Ok(Source::Scatter { value, count })
        })
    }

    /// A stage that grows: each task returns its output and new inputs (`Explore`), which
    /// run in turn unless seen before, up to `max_tasks` tasks in all.
    pub fn explore(self, inputs: impl Into<Input>, max_tasks: u64) -> Promise {
        let mut inputs = inputs.into();
        let max = if max_tasks == 0 {
            DEFAULT_MAX_EXPLORE_TASKS
        } else {
            max_tasks
        };
        self.make(Some(max), || source_of(&mut inputs, Application::Explore))
    }

    /// Folds every output of `of` into one, as a tree of tasks of fixed shape (the result
    /// is the same on every run).
    pub fn reduce(self, of: &Promise) -> Reduced {
        let fan_in = self.fan_in;
        Reduced::new(self.make(None, || {
            Ok(Source::Reduce {
                stage: of.stage_for_reading()?,
                fan_in,
            })
        }))
    }

    /// Makes the stage: resolves its source, then checks it and adds it to the job under the
    /// lock. The source borrows the promises it reads, so none is dropped (and releases its
    /// stage, which takes the lock) while the lock is held.
    fn make(
        self,
        explore: Option<u64>,
        source: impl FnOnce() -> Result<Source, StageError>,
    ) -> Promise {
        let name = self.stage_name();
        let inner = self.inner.clone();
        let stage = (|| {
            let info = self.info?;
            let source = source()?;
            let mut stage = Stage {
                deadline: self.deadline,
                replicate: self.replicate,
                quorum: self.quorum,
                verify: self.verify.clone(),
                name: name.clone(),
                module: self.module,
                export: self.export,
                source,
                tasks: 0,
                limits: self.limits,
                max_attempts: self.max_attempts,
                stop_after: self.stop_after,
                stoppable: false,
                explore,
                check_types: self.check_types,
            };
            let mut core = inner.handle.lock();
            resolve(&core, &mut stage, &info)?;
            Ok(core.add_stage(stage, Keep::All))
        })()
        .map_err(|error: StageError| DriverError::Invalid {
            stage: name.clone(),
            message: error.to_string(),
        });
        if stage.is_ok() {
            inner.handle.wake_all();
            inner.handle.progressed();
        }
        Promise::new(inner, name, stage)
    }

    fn stage_name(&self) -> String {
        let base = self.name.clone().unwrap_or_else(|| self.export.clone());
        let mut names = lock(&self.inner.names);
        let uses = names.entry(base.clone()).or_default();
        *uses += 1;
        if *uses == 1 {
            base
        } else {
            format!("{base}#{uses}")
        }
    }
}

/// The source of a one-argument application.
fn source_of(input: &mut Input, application: Application) -> Result<Source, StageError> {
    match &mut input.0 {
        InputKind::List(list) => Ok(Source::List(take(list).map_err(|e| e.of(application))?)),
        InputKind::Stage(promise) => Ok(Source::Stage(promise.stage_for_reading()?)),
    }
}

/// Moves a list out of an input (each input is used once).
fn take(list: &mut Result<Inputs, StageError>) -> Result<Inputs, StageError> {
    std::mem::replace(list, Err(StageError::InputsUsed))
}
