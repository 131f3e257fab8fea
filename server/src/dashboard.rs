//! The live dashboard at `/` and the Prometheus metrics at `/metrics` ([`crate::metrics`]).
//!
//! The dashboard is one page (HTML, CSS and JS embedded in the binary, no build
//! step) fed by server-sent events at `/events`, the job's status twice a second — the same
//! JSON as `GET /api/job`. Both are read-only: nothing on them controls the job, which is
//! what the token-protected `/api` is for.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use futures_util::Stream;

use crate::api::status_of;
use crate::state::Handle;

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
    let text = handle.shared.metrics.render(&handle);
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
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stream = futures_util::stream::unfold((ticks, handle), |(mut ticks, handle)| async move {
        ticks.tick().await;
        let status = status_of(&handle);
        let event = Event::default()
            .event("status")
            .json_data(&status)
            .unwrap_or_else(|_| Event::default().comment("status unavailable"));
        Some((Ok(event), (ticks, handle)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
