//! The volunteer page at `/volunteer`: open it in a browser and the browser joins the server
//! as a worker, running tasks in Web Workers, with the same protocol and trust model as
//! `dipla-worker` (see `volunteer.html`, one page with its script and style inline, no build
//! step). Beside it, two read-only endpoints the page needs and that need no token:
//!
//! - `GET /volunteer/about`: `{"name", "description", "jobs": [{"job", "name"}],
//!   "test_hooks"}`: the project's name and description (`--description`), and each running
//!   job's name by the id its receipts name (the `job` of the page's welcome), so the page
//!   shows the job it is working for. Asking also starts instrumenting the jobs' modules for
//!   browsers, in the background, while the page benchmarks itself.
//! - `GET /volunteer/kernels`: the self-benchmark's kernels ([`dipla_sandbox::bench`])
//!   instrumented as tasks' modules are for browsers, base64, with their iterations and
//!   weights, the fuel each trial is given and the rounds: the page reports the same fuel
//!   and checksums as a native worker, and a score the server recomputes.

use std::sync::{Arc, LazyLock, OnceLock};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

use crate::net::gate::Gate;
use crate::net::state::Handle;
use crate::run::serve::Service;

/// What `/volunteer/about` says, made when asked.
pub(crate) type About = Arc<dyn Fn() -> AboutPage + Send + Sync>;

/// The project as the volunteer page shows it.
#[derive(Debug, Serialize)]
pub(crate) struct AboutPage {
    name: String,
    description: Option<String>,
    jobs: Vec<JobName>,
    test_hooks: bool,
}

/// A running job: the id its receipts name, and its name.
#[derive(Debug, Serialize)]
struct JobName {
    job: String,
    name: String,
}

/// The routes of the volunteer page.
pub(crate) fn router(about: About) -> axum::Router {
    axum::Router::new()
        .route("/volunteer", axum::routing::get(page))
        .route("/volunteer/about", axum::routing::get(about_page))
        .route("/volunteer/kernels", axum::routing::get(kernels))
        .with_state(about)
}

/// What the page says of the one job of `run` (or of a driver program).
pub(crate) fn of_job(handle: &Handle) -> About {
    let handle = handle.clone();
    Arc::new(move || {
        let (name, modules) = {
            let core = handle.lock();
            (core.job.name.clone(), core.job.modules.clone())
        };
        handle.gate().browser.prepare(modules);
        let volunteer = handle.gate().volunteer();
        AboutPage {
            name: volunteer.name.unwrap_or_else(|| name.clone()),
            description: volunteer.description,
            jobs: vec![JobName {
                job: handle.job_id(),
                name,
            }],
            test_hooks: volunteer.test_hooks,
        }
    })
}

/// What the page says of a long-running server and its running jobs.
pub(crate) fn of_service(service: &Arc<Service>, gate: &Arc<Gate>) -> About {
    let (service, gate) = (Arc::downgrade(service), gate.clone());
    Arc::new(move || {
        let volunteer = gate.volunteer();
        let jobs = service.upgrade().map_or_else(Vec::new, |service| {
            service
                .jobs()
                .iter()
                .filter(|entry| !entry.state().ended())
                .filter_map(|entry| {
                    let handle = entry.handle()?;
                    let (name, modules) = {
                        let core = handle.lock();
                        (core.job.name.clone(), core.job.modules.clone())
                    };
                    gate.browser.prepare(modules);
                    Some(JobName {
                        job: handle.job_id(),
                        name,
                    })
                })
                .collect()
        });
        AboutPage {
            name: volunteer.name.unwrap_or_else(|| "dipla".to_owned()),
            description: volunteer.description,
            jobs,
            test_hooks: volunteer.test_hooks,
        }
    })
}

async fn page() -> impl IntoResponse {
    static PAGE: LazyLock<String> = LazyLock::new(|| {
        include_str!("volunteer.html").replace("{{version}}", env!("CARGO_PKG_VERSION"))
    });
    ([(header::CACHE_CONTROL, "no-cache")], Html(PAGE.clone()))
}

async fn about_page(State(about): State<About>) -> Json<AboutPage> {
    Json(about())
}

/// The benchmark as a browser runs it.
#[derive(Debug, Serialize)]
struct Kernels {
    /// The fuel each trial is given.
    fuel: u64,
    /// Rounds over the kernels; each kernel's fastest trial counts.
    rounds: usize,
    kernels: Vec<KernelModule>,
}

#[derive(Debug, Serialize)]
struct KernelModule {
    name: &'static str,
    iterations: i64,
    weight: f64,
    /// The instrumented module, base64.
    wasm: String,
}

async fn kernels() -> Response {
    static KERNELS: OnceLock<Result<String, String>> = OnceLock::new();
    let made = tokio::task::spawn_blocking(|| {
        KERNELS
            .get_or_init(|| {
                use base64::Engine as _;
                let kernels = dipla_sandbox::bench::KERNELS
                    .iter()
                    .map(|kernel| {
                        let wasm = kernel.wasm().map_err(|e| e.to_string())?;
                        let wasm = crate::net::browser::instrument(&wasm)
                            .map_err(|e| format!("kernel {}: {e}", kernel.name))?;
                        Ok(KernelModule {
                            name: kernel.name,
                            iterations: kernel.iterations(),
                            weight: kernel.weight(),
                            wasm: base64::engine::general_purpose::STANDARD.encode(wasm),
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                let kernels = Kernels {
                    fuel: dipla_sandbox::bench::FUEL,
                    rounds: dipla_sandbox::bench::ROUNDS,
                    kernels,
                };
                serde_json::to_string(&kernels).map_err(|e| e.to_string())
            })
            .clone()
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match made {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}
