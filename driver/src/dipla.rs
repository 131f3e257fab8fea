//! The driver itself: a job on a remote server, and the modules loaded into it.

use std::path::Path;
use std::sync::Arc;

use dipla_protocol::{ModuleHash, TaskLimits};

use crate::link::{Link, Up};
use crate::signature::{TaskInfo, tasks_of};
use crate::{DriverError, Task};

/// The limits a task gets unless its [`Task::limits`] says otherwise (as a manifest's).
pub const DEFAULT_LIMITS: TaskLimits = TaskLimits {
    fuel: 10_000_000_000,
    memory_mb: 256,
    timeout_ms: 300_000,
};

/// Failures a task may have before it is reported as failed, unless it says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// A job on a Dipla server, driven from Rust.
///
/// Its job is closed when it, and every module, task and promise made from it, is dropped
/// (the end of `main` does that), or at [`Dipla::shutdown`]. A program that cannot close it
/// (killed, or ended with `std::process::exit`) stops sending heartbeats, and the server
/// cancels the job after its driver timeout (`dipla-server serve --driver-timeout-secs`).
pub struct Dipla {
    link: Arc<Link>,
    /// The server run inside the program (feature `local`), stopped at shutdown.
    #[cfg(feature = "local")]
    local: Option<crate::local::Local>,
}

/// How to start a [`Dipla`].
#[derive(Debug, Clone)]
pub struct DiplaBuilder {
    remote: Option<(String, String)>,
    #[cfg(feature = "local")]
    local_workers: Option<usize>,
    name: String,
    limits: TaskLimits,
    max_attempts: u32,
}

impl Dipla {
    /// How to start one: give the server with [`DiplaBuilder::remote`].
    pub fn builder() -> DiplaBuilder {
        DiplaBuilder {
            remote: None,
            #[cfg(feature = "local")]
            local_workers: None,
            name: "driver".into(),
            limits: DEFAULT_LIMITS,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// The job's id on the server (as `dipla-server jobs` lists it).
    pub fn job_id(&self) -> &str {
        &self.link.id
    }

    /// Loads a guest module (`.wasm`) and sends it to the server; its tasks are then applied
    /// with [`ModuleRef::task`].
    ///
    /// # Errors
    /// [`DriverError::Module`] when the file cannot be read or is not a Dipla guest. (The
    /// server checks it further; a module it refuses makes the stages that use it fail,
    /// saying why.)
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
    /// [`DriverError::Module`] when the bytes are not a Dipla guest.
    pub fn module_from_bytes(
        &self,
        name: &str,
        bytes: impl Into<Vec<u8>>,
    ) -> Result<ModuleRef, DriverError> {
        self.admit(name.to_owned(), bytes.into(), Path::new(name))
    }

    fn admit(&self, name: String, bytes: Vec<u8>, path: &Path) -> Result<ModuleRef, DriverError> {
        let tasks = tasks_of(&bytes).map_err(|error| DriverError::Module {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
        let hash = ModuleHash::of(&bytes);
        self.link.send(Up::Module {
            hash,
            name: name.clone(),
            bytes,
        });
        Ok(ModuleRef {
            link: self.link.clone(),
            name,
            hash,
            tasks: tasks.into(),
        })
    }

    /// Closes the job (it ends on the server as succeeded) and stops following it.
    /// Promises still waiting then return [`DriverError::Closed`]. A server run inside the
    /// program (feature `local`) stops with its workers.
    pub async fn shutdown(self) {
        self.link.close().await;
        #[cfg(feature = "local")]
        if let Some(local) = self.local {
            local.shutdown().await;
        }
    }
}

impl DiplaBuilder {
    /// Runs the job on the long-running server at `url` (`dipla-server serve`, as
    /// `http://HOST:PORT`), whose workers it shares with that server's other jobs, calling
    /// its API with admin token `token`: modules and stages are sent as they are made,
    /// results come back as they are final.
    #[must_use]
    pub fn remote(mut self, url: impl Into<String>, token: impl Into<String>) -> Self {
        self.remote = Some((url.into(), token.into()));
        self
    }

    /// Runs the server inside this program with `count` local workers (at least 1), on
    /// loopback only, instead of a remote server (feature `local`, which compiles the whole
    /// server). The job lives in a temporary folder, removed at [`Dipla::shutdown`].
    #[cfg(feature = "local")]
    #[must_use]
    pub fn local_workers(mut self, count: usize) -> Self {
        self.local_workers = Some(count.max(1));
        self
    }

    /// The job's name on the server (default `driver`).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
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

    /// Opens the job on the server and starts following it.
    ///
    /// # Errors
    /// [`DriverError::Start`] when no server was given, or it cannot be reached or refuses
    /// the token.
    pub async fn start(self) -> Result<Dipla, DriverError> {
        #[cfg(feature = "local")]
        if let Some(count) = self.local_workers {
            if self.remote.is_some() {
                return Err(DriverError::Start(
                    "give either .remote(..) or .local_workers(..), not both".into(),
                ));
            }
            let local = crate::local::Local::start(count).await?;
            let link = Link::open(
                &local.url,
                &local.token,
                &self.name,
                self.limits,
                self.max_attempts,
            )
            .await?;
            return Ok(Dipla {
                link: Arc::new(link),
                local: Some(local),
            });
        }
        let Some((url, token)) = &self.remote else {
            return Err(DriverError::Start(NO_SERVER.into()));
        };
        let link = Link::open(url, token, &self.name, self.limits, self.max_attempts).await?;
        Ok(Dipla {
            link: Arc::new(link),
            #[cfg(feature = "local")]
            local: None,
        })
    }
}

/// Why [`DiplaBuilder::start`] has no server to run on.
#[cfg(feature = "local")]
const NO_SERVER: &str = "no server: give .remote(\"http://HOST:PORT\", ADMIN_TOKEN), or .local_workers(n) to run one inside the program";
#[cfg(not(feature = "local"))]
const NO_SERVER: &str = "no server: give .remote(\"http://HOST:PORT\", ADMIN_TOKEN) (to run one inside the program with local workers, enable dipla-driver's `local` feature and use .local_workers(n))";

/// A guest module loaded into a [`Dipla`].
#[derive(Clone)]
pub struct ModuleRef {
    pub(crate) link: Arc<Link>,
    name: String,
    pub(crate) hash: ModuleHash,
    tasks: Arc<[TaskInfo]>,
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
        &self.tasks
    }

    /// The task export `name`, ready to be applied. A name the module does not export is
    /// reported by the promises it makes.
    pub fn task(&self, name: &str) -> Task {
        Task::new(self, name)
    }
}
