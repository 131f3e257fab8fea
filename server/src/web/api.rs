//! The operator's HTTP API, beside the worker endpoint: every call needs
//! `Authorization: Bearer TOKEN` with one of the server's admin tokens (`--admin-token`);
//! a missing or wrong token gets `401 Unauthorized`, and a server started without one
//! answers every call so (the API is off). Tokens are compared in constant time
//! ([`crate::Tokens`]) and never logged.
//!
//! - `GET /api/job`: the job's progress as JSON: its stages (tasks, done, complete), counts,
//!   connected workers with what the scheduler knows of them, the ETA, and how far the
//!   journal's writer has got (`journal: {sent, committed}`, records in this run; `null`
//!   without a journal): what the status shows is durable once `committed` reaches the
//!   `sent` it showed.
//! - `POST /api/job/cancel`: stops the job. Results written so far are kept (and journaled:
//!   running the same command again resumes it); `dipla-server run` exits with code 3.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use std::sync::Arc;

use crate::net::gate::Gate;
use crate::net::state::{Handle, WorkerSummary};
use crate::store::journal::Backlog;
use dipla_core::{Counts, StageProgress};

/// The API's routes, under `/api`.
pub(crate) fn router(handle: Handle) -> axum::Router {
    axum::Router::new()
        .route("/api/job", axum::routing::get(status))
        .route("/api/job/cancel", axum::routing::post(cancel))
        .route_layer(axum::middleware::from_fn_with_state(
            handle.shared.gate.clone(),
            authorise,
        ))
        .with_state(handle)
}

/// Lets a request through only with a known admin token.
pub(crate) async fn authorise(
    State(gate): State<Arc<Gate>>,
    request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if gate.admin_admits(token) {
        return next.run(request).await;
    }
    tracing::warn!(
        path = %request.uri().path(),
        with_token = token.is_some(),
        "refused an API call without a valid admin token"
    );
    let message = if gate.admin_required() {
        "a valid admin token is required: Authorization: Bearer TOKEN"
    } else {
        "the API is off: start the server with --admin-token"
    };
    let mut response = (StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"dipla\""),
    );
    response
}

/// A job's progress, as the API and the dashboard show it.
#[derive(Serialize)]
pub(crate) struct Status {
    job: String,
    complete: bool,
    cancelled: bool,
    stages: Vec<StageStatus>,
    counts: Counts,
    workers: Vec<WorkerSummary>,
    eta_secs: Option<f64>,
    journal: Option<Backlog>,
}

#[derive(Serialize)]
struct StageStatus {
    name: String,
    complete: bool,
    #[serde(flatten)]
    progress: StageProgress,
}

async fn status(State(handle): State<Handle>) -> Json<Status> {
    Json(status_of(&handle))
}

/// The job's progress now.
pub(crate) fn status_of(handle: &Handle) -> Status {
    let workers = handle.workers();
    let eta = handle.eta();
    let core = handle.lock();
    let coordinator = &core.coordinator;
    let stages = core
        .job
        .stages
        .iter()
        .enumerate()
        .map(|(i, stage)| StageStatus {
            name: stage.name.clone(),
            complete: coordinator.is_stage_complete(i),
            progress: coordinator.progress(i),
        })
        .collect();
    Status {
        job: core.job.name.clone(),
        complete: coordinator.is_complete(),
        cancelled: handle.is_cancelled(),
        stages,
        counts: coordinator.counts(),
        workers,
        eta_secs: eta.map(|eta| eta.as_secs_f64()),
        journal: core.journal_backlog(),
    }
}

async fn cancel(State(handle): State<Handle>) -> (StatusCode, Json<serde_json::Value>) {
    tracing::warn!("the job was cancelled through the API");
    handle.cancel();
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "cancelled": true })),
    )
}
