//! The live dashboard at `/` and the Prometheus metrics at `/metrics` ([`crate::net::metrics`]).
//!
//! The dashboard is one page (HTML, CSS and JS embedded in the binary, no build
//! step) fed by server-sent events at `/events`, the job's status twice a second — the same
//! JSON as `GET /api/job`. Both are read-only: nothing on them controls the job, which is
//! what the token-protected `/api` is for.

use std::convert::Infallible;
use std::time::Duration;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use futures_util::Stream;

use crate::net::state::Handle;
use crate::run::serve::Service;
use crate::web::api::status_of;

/// How often the page is sent the status.
const EVERY: Duration = Duration::from_millis(500);

/// The dashboard's routes.
pub(crate) fn router(handle: Handle) -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::get(page))
        .route("/events", axum::routing::get(events))
        .route("/metrics", axum::routing::get(metrics))
        .with_state(handle)
}

async fn page() -> impl IntoResponse {
    Html(include_str!("dashboard.html"))
}

async fn metrics(State(handle): State<Handle>) -> impl IntoResponse {
    let job = handle.lock().job.name.clone();
    let text = crate::net::metrics::render_jobs(handle.gate(), &[(job, handle.clone())]);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

async fn events(
    State(handle): State<Handle>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    every_tick(move || serde_json::to_value(status_of(&handle)).unwrap_or_default())
}

/// The status `status()` gives, sent every [`EVERY`].
fn every_tick(
    status: impl Fn() -> serde_json::Value + Send + 'static,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stream = futures_util::stream::unfold((ticks, status), |(mut ticks, status)| async move {
        ticks.tick().await;
        let event = Event::default()
            .event("status")
            .json_data(status())
            .unwrap_or_else(|_| Event::default().comment("status unavailable"));
        Some((Ok(event), (ticks, status)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The dashboard of a long-running server: the same page, with the list of jobs; it shows
/// the job `?job=ID` names, or the newest running one. `/metrics` labels each job's series
/// with its id.
pub(crate) fn service_router(service: Arc<Service>) -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::get(page))
        .route("/events", axum::routing::get(service_events))
        .route("/metrics", axum::routing::get(service_metrics))
        .with_state(service)
}

#[derive(serde::Deserialize)]
struct Selected {
    job: Option<String>,
}

async fn service_events(
    State(service): State<Arc<Service>>,
    Query(Selected { job }): Query<Selected>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    every_tick(move || service_status(&service, job.as_deref()))
}

/// What the page shows of job `id` (else the newest running job, else the newest).
fn service_status(service: &Service, id: Option<&str>) -> serde_json::Value {
    let jobs = service.jobs();
    let chosen = match id {
        Some(id) => jobs.iter().find(|entry| entry.id() == id),
        None => jobs
            .iter()
            .rev()
            .find(|entry| !entry.state().ended())
            .or(jobs.last()),
    };
    let briefs: Vec<_> = jobs.iter().map(|entry| entry.brief()).collect();
    let mut status = match chosen {
        Some(entry) => match entry.handle() {
            Some(handle) => serde_json::to_value(status_of(handle)).unwrap_or_default(),
            None => {
                let brief = entry.brief();
                serde_json::json!({
                    "job": brief.name, "complete": true,
                    "cancelled": brief.state == crate::JobState::Cancelled,
                    "stages": [], "workers": [], "eta_secs": null,
                    "counts": { "failed": brief.failed },
                })
            }
        },
        None => serde_json::json!({
            "job": "no jobs yet", "complete": false, "cancelled": false,
            "stages": [], "workers": [], "eta_secs": null, "counts": { "failed": 0 },
        }),
    };
    if let Some(object) = status.as_object_mut() {
        object.insert(
            "jobs".into(),
            serde_json::to_value(briefs).unwrap_or_default(),
        );
        object.insert(
            "id".into(),
            chosen.map_or(serde_json::Value::Null, |entry| entry.id().into()),
        );
    }
    status
}

async fn service_metrics(State(service): State<Arc<Service>>) -> impl IntoResponse {
    let jobs: Vec<_> = service
        .jobs()
        .into_iter()
        .filter_map(|entry| Some((entry.id().to_owned(), entry.handle()?.clone())))
        .collect();
    let text = crate::net::metrics::render_jobs(service.gate(), &jobs);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
