//! The HTTP API of a long-running server (`dipla-server serve`), under `/api/jobs`. Every
//! call needs `Authorization: Bearer TOKEN` with one of the server's admin tokens, as for
//! [`crate::web::api`].
//!
//! - `POST /api/jobs` with a [`Submission`] (JSON: the manifest's text and its files,
//!   base64): `201` with the job's [`JobBrief`]; `400` naming what is wrong.
//! - `GET /api/jobs`: every job, oldest first.
//! - `GET /api/jobs/ID`: the job's progress (as `GET /api/job` of `run`), with its id and
//!   state.
//! - `GET /api/jobs/ID/results`: its results as JSON Lines, streamed as they are written
//!   until the job ends (`?follow=false`: what is written now).
//! - `POST /api/jobs/ID/cancel`: cancels it; results so far are kept.
//!
//! A remote driver ([`crate::web::mirror`]) builds its job as it runs:
//!
//! - `POST /api/drivers` with `{"name": NAME}`: `201` with the new, empty job's brief and
//!   `"heartbeat_ms"`, how often the driver must say it is alive.
//! - `PUT /api/jobs/ID/modules` with a module's bytes: `{"hash": SHA256}`.
//! - `POST /api/jobs/ID/stages` with a stage (JSON): `{"stage": N}`, numbered in order; `400`
//!   naming what is wrong (the server checks the stage and counts its tasks itself).
//! - `GET /api/jobs/ID/events`: what its coordinator decides, as JSON Lines, until it ends.
//! - `POST /api/jobs/ID/heartbeat`: the driver is alive; `409` once the job has ended. A job
//!   whose driver is silent for the server's driver timeout is cancelled, saying so.
//! - `POST /api/jobs/ID/close`: the driver is done; the job ends.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::run::serve::{Entry, MAX_SUBMISSION_BYTES, Service, Submission, SubmitError};
use crate::web::api::{authorise, status_of};

/// The routes, under `/api/jobs`.
pub(crate) fn router(service: Arc<Service>) -> axum::Router {
    axum::Router::new()
        .route("/api/jobs", axum::routing::get(list).post(submit))
        .route("/api/jobs/{id}", axum::routing::get(status))
        .route("/api/jobs/{id}/results", axum::routing::get(results))
        .route("/api/jobs/{id}/cancel", axum::routing::post(cancel))
        .route("/api/drivers", axum::routing::post(open_driver))
        .route("/api/jobs/{id}/modules", axum::routing::put(driver_module))
        .route("/api/jobs/{id}/stages", axum::routing::post(driver_stage))
        .route("/api/jobs/{id}/events", axum::routing::get(events))
        .route("/api/jobs/{id}/close", axum::routing::post(close))
        .route("/api/jobs/{id}/heartbeat", axum::routing::post(heartbeat))
        .route_layer(axum::middleware::from_fn_with_state(
            service.gate().clone(),
            authorise,
        ))
        .layer(DefaultBodyLimit::max(MAX_SUBMISSION_BYTES))
        .with_state(service)
}

/// An error answer: a status and a message in JSON.
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": message.into() });
    (status, Json(body)).into_response()
}

fn no_such_job(id: &str) -> Response {
    refuse(StatusCode::NOT_FOUND, format!("there is no job {id}"))
}

async fn list(State(service): State<Arc<Service>>) -> Response {
    let jobs: Vec<_> = service.jobs().iter().map(|entry| entry.brief()).collect();
    Json(jobs).into_response()
}

async fn submit(
    State(service): State<Arc<Service>>,
    body: Result<Json<Submission>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(submission) = match body {
        Ok(body) => body,
        Err(rejection) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("not a submission: {}", rejection.body_text()),
            );
        }
    };
    match service.submit(submission).await {
        Ok(entry) => (StatusCode::CREATED, Json(entry.brief())).into_response(),
        Err(SubmitError::Invalid(message)) => refuse(StatusCode::BAD_REQUEST, message),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

async fn status(State(service): State<Arc<Service>>, Path(id): Path<String>) -> Response {
    let Some(entry) = service.job(&id) else {
        return no_such_job(&id);
    };
    // The brief, with the progress of a job this server runs (its workers listed).
    let mut body = serde_json::to_value(entry.brief()).unwrap_or_default();
    let progress = entry
        .handle()
        .and_then(|handle| serde_json::to_value(status_of(handle)).ok());
    if let Some(object) = body.as_object_mut() {
        object.insert("workers".into(), serde_json::json!([]));
        if let Some(serde_json::Value::Object(progress)) = progress {
            object.extend(progress);
        }
    }
    Json(body).into_response()
}

async fn cancel(State(service): State<Arc<Service>>, Path(id): Path<String>) -> Response {
    let Some(entry) = service.job(&id) else {
        return no_such_job(&id);
    };
    match entry.handle() {
        Some(handle) if !entry.state().ended() => {
            tracing::warn!(%id, "a job was cancelled through the API");
            handle.cancel();
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({ "id": id, "cancelled": true })),
            )
                .into_response()
        }
        _ => refuse(
            StatusCode::CONFLICT,
            format!("job {id} has ended ({:?})", entry.state()),
        ),
    }
}

#[derive(Deserialize)]
struct Opening {
    #[serde(default)]
    name: String,
}

async fn open_driver(
    State(service): State<Arc<Service>>,
    body: Result<Json<Opening>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let name = body.map(|Json(opening)| opening.name).unwrap_or_default();
    match service.open_driver(&name).await {
        Ok(entry) => {
            let mut body = serde_json::to_value(entry.brief()).unwrap_or_default();
            // A few beats per timeout, so one late beat is not taken for a vanished driver.
            let beat = service.driver_timeout / 4;
            if let Some(object) = body.as_object_mut() {
                let millis = u64::try_from(beat.as_millis()).unwrap_or(u64::MAX).max(1);
                object.insert("heartbeat_ms".into(), millis.into());
            }
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

async fn driver_module(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> Response {
    let Some(entry) = service.job(&id) else {
        return no_such_job(&id);
    };
    let module = tokio::task::spawn_blocking(move || service.driver_module(&entry, &bytes)).await;
    match module {
        Ok(Ok(hash)) => Json(serde_json::json!({ "hash": hash })).into_response(),
        Ok(Err(error)) => refuse(StatusCode::BAD_REQUEST, error.to_string()),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

async fn driver_stage(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    body: Result<Json<crate::Stage>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(entry) = service.job(&id) else {
        return no_such_job(&id);
    };
    let stage = match body {
        Ok(Json(stage)) => stage,
        Err(rejection) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("not a stage: {}", rejection.body_text()),
            );
        }
    };
    match service.driver_stage(&entry, stage) {
        Ok(number) => Json(serde_json::json!({ "stage": number })).into_response(),
        Err(error) => refuse(StatusCode::BAD_REQUEST, error.to_string()),
    }
}

async fn close(State(service): State<Arc<Service>>, Path(id): Path<String>) -> Response {
    let Some(entry) = service.job(&id) else {
        return no_such_job(&id);
    };
    if !entry.is_driver() {
        return refuse(
            StatusCode::CONFLICT,
            format!("job {id} is not a driver's job: cancel it instead"),
        );
    }
    entry.close();
    Json(serde_json::json!({ "id": id, "closed": true })).into_response()
}

async fn heartbeat(State(service): State<Arc<Service>>, Path(id): Path<String>) -> Response {
    let Some(entry) = service.job(&id) else {
        return no_such_job(&id);
    };
    if !entry.is_driver() {
        return refuse(
            StatusCode::CONFLICT,
            format!("job {id} is not a driver's job"),
        );
    }
    if entry.state().ended() {
        let summary = entry.brief().summary.unwrap_or_default();
        return refuse(
            StatusCode::CONFLICT,
            format!("job {id} has ended ({:?}): {summary}", entry.state()),
        );
    }
    entry.hear();
    Json(serde_json::json!({ "id": id, "alive": true })).into_response()
}

async fn events(State(service): State<Arc<Service>>, Path(id): Path<String>) -> Response {
    let Some(entry) = service.job(&id) else {
        return no_such_job(&id);
    };
    if entry.is_driver() {
        entry.hear();
    }
    let path = entry.events();
    follow_file(entry, path, true)
}

#[derive(Deserialize)]
struct Follow {
    follow: Option<bool>,
}

async fn results(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    Query(Follow { follow }): Query<Follow>,
) -> Response {
    let Some(entry) = service.job(&id) else {
        return no_such_job(&id);
    };
    let path = entry.results();
    follow_file(entry, path, follow.unwrap_or(true))
}

/// Streams the whole lines of a job's file at `path`, following it until the job ends.
fn follow_file(entry: Arc<Entry>, path: std::path::PathBuf, follow: bool) -> Response {
    let stream = futures_util::stream::unfold(
        Tail {
            entry,
            path,
            offset: 0,
            follow,
            finished: false,
        },
        |mut tail| async move {
            let chunk = tail.next().await?;
            Some((chunk, tail))
        },
    );
    (
        [(header::CONTENT_TYPE, "application/jsonl; charset=utf-8")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Follows a job's results file: whole lines, as they are written, until the job ends.
struct Tail {
    entry: Arc<Entry>,
    path: std::path::PathBuf,
    offset: u64,
    follow: bool,
    finished: bool,
}

impl Tail {
    /// The next lines, or `None` at the end.
    async fn next(&mut self) -> Option<std::io::Result<Vec<u8>>> {
        let mut state = self.entry.watch();
        loop {
            if self.finished {
                return None;
            }
            // Read the state first: lines written before the job ended are all read below.
            let ended = state.borrow_and_update().ended();
            match self.read().await {
                Err(error) => {
                    self.finished = true;
                    return Some(Err(error));
                }
                Ok(lines) if !lines.is_empty() => return Some(Ok(lines)),
                Ok(_) if ended || !self.follow => {
                    self.finished = true;
                    return None;
                }
                Ok(_) => {}
            }
            let progress = self
                .entry
                .handle()
                .map(|handle| handle.shared.progress.subscribe());
            let wait = async {
                match progress {
                    Some(mut progress) => {
                        let _ = progress.changed().await;
                    }
                    None => std::future::pending().await,
                }
            };
            // The writer flushes after the progress notice: look again shortly anyway.
            tokio::select! {
                () = wait => tokio::time::sleep(Duration::from_millis(20)).await,
                _ = state.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }

    /// The whole lines written past `offset`.
    async fn read(&mut self) -> std::io::Result<Vec<u8>> {
        let mut file = match tokio::fs::File::open(&self.path).await {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        file.seek(std::io::SeekFrom::Start(self.offset)).await?;
        // A few MiB at a time, more when one line is longer.
        let mut bytes = Vec::new();
        let whole = loop {
            let read = (&mut file).take(4 << 20).read_to_end(&mut bytes).await?;
            if let Some(at) = bytes.iter().rposition(|&b| b == b'\n') {
                break at + 1;
            }
            if read == 0 {
                break 0;
            }
        };
        bytes.truncate(whole);
        self.offset += whole as u64;
        Ok(bytes)
    }
}
