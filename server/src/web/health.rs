//! The server's health check, `GET /health`: `200` with
//! `{"status": "ok", "name": NAME, "workers": N}` while the server runs. The project
//! directory ([`crate::directory`]) lists a project only while this answers.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use crate::directory::announce::WorkerCount;
use crate::net::state::Handle;

/// What the health check reports: cheap to clone.
#[derive(Clone)]
pub(crate) struct HealthInfo {
    /// The project's name.
    pub(crate) name: Arc<str>,
    /// How many workers are connected now.
    pub(crate) workers: WorkerCount,
}

impl HealthInfo {
    /// A health check reporting `name` and the count `workers` yields.
    pub(crate) fn new(name: impl Into<Arc<str>>, workers: WorkerCount) -> Self {
        Self {
            name: name.into(),
            workers,
        }
    }

    /// The health of the job `handle` runs: its name and connected workers.
    pub(crate) fn of_job(handle: &Handle) -> Self {
        let name = handle.lock().job.name.clone();
        let handle = handle.clone();
        Self::new(name, Arc::new(move || handle.connected()))
    }
}

/// `GET /health`.
pub(crate) fn router(info: HealthInfo) -> axum::Router {
    axum::Router::new()
        .route("/health", axum::routing::get(health))
        .with_state(info)
}

async fn health(State(info): State<HealthInfo>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "name": &*info.name,
        "workers": (info.workers)(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn health_reports_the_name_and_the_workers() {
        let info = HealthInfo::new("squares", Arc::new(|| 3));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = tokio::spawn(async move { axum::serve(listener, router(info)).await });
        let response = reqwest::get(format!("http://{addr}/health")).await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({"status": "ok", "name": "squares", "workers": 3})
        );
        served.abort();
    }
}
