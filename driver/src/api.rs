//! The calls a driver makes to a `dipla-server serve` (its `/api/drivers` and
//! `/api/jobs/ID/...` routes; see the server's `jobs_api`).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;

/// Why a call did not succeed.
#[derive(Debug, Clone)]
pub(crate) enum CallError {
    /// The server answered with an error status and a message.
    Refused {
        /// The status.
        status: StatusCode,
        /// The server's message.
        message: String,
    },
    /// The server could not be reached, or its answer could not be read.
    Unreachable(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused { status, message } => write!(f, "{message} ({status})"),
            Self::Unreachable(message) => f.write_str(message),
        }
    }
}

/// Why a client of a server cannot be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// The address is not an http:// or https:// URL.
    #[error(
        "{0:?} is not the server's API URL: give http://HOST:PORT (or https://), the address `dipla-server serve` prints for its API"
    )]
    NotApi(String),
    /// The HTTP client cannot start.
    #[error("{0}")]
    Http(reqwest::Error),
}

/// The answer to opening a driver's job.
#[derive(Debug, Deserialize)]
pub(crate) struct Opened {
    /// The job's id.
    pub(crate) id: String,
    /// How often the server wants to hear from the driver.
    #[serde(default)]
    pub(crate) heartbeat_ms: Option<u64>,
}

/// A client of one server, with its admin token.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// How long a call other than the events stream may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

impl Api {
    /// A client of the server at `base` (`http://HOST:PORT` or `https://...`).
    ///
    /// # Errors
    /// [`ClientError::NotApi`] when `base` is not an http:// or https:// URL.
    pub(crate) fn new(base: &str, token: &str) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::NotApi(base.to_owned()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(ClientError::Http)?;
        Ok(Self {
            http,
            base: base.to_owned(),
            token: token.to_owned(),
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Sends `request`; an error status becomes [`CallError::Refused`] with the server's
    /// message.
    async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, CallError> {
        let response = request
            .send()
            .await
            .map_err(|e| CallError::Unreachable(describe(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|body| body.get("error")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| text.chars().take(500).collect());
        Err(CallError::Refused { status, message })
    }

    async fn json<T: serde::de::DeserializeOwned>(
        request: reqwest::RequestBuilder,
    ) -> Result<T, CallError> {
        Self::send(request.timeout(CALL_TIMEOUT))
            .await?
            .json()
            .await
            .map_err(|e| CallError::Unreachable(format!("the server's answer: {e}")))
    }

    /// Opens an empty job for this driver.
    pub(crate) async fn open(&self, name: &str) -> Result<Opened, CallError> {
        let body = serde_json::json!({ "name": name });
        Self::json(self.request(Method::POST, "/api/drivers").json(&body)).await
    }

    /// Sends a module to job `id`.
    pub(crate) async fn module(&self, id: &str, bytes: Vec<u8>) -> Result<(), CallError> {
        let request = self
            .request(Method::PUT, &format!("/api/jobs/{id}/modules"))
            .body(bytes);
        Self::json::<serde_json::Value>(request).await.map(drop)
    }

    /// Sends a stage to job `id`; returns its number.
    pub(crate) async fn stage(
        &self,
        id: &str,
        stage: &serde_json::Value,
    ) -> Result<usize, CallError> {
        #[derive(Deserialize)]
        struct Added {
            stage: usize,
        }
        let request = self
            .request(Method::POST, &format!("/api/jobs/{id}/stages"))
            .json(stage);
        Ok(Self::json::<Added>(request).await?.stage)
    }

    /// Says the driver of job `id` is alive.
    pub(crate) async fn heartbeat(&self, id: &str) -> Result<(), CallError> {
        let request = self.request(Method::POST, &format!("/api/jobs/{id}/heartbeat"));
        Self::json::<serde_json::Value>(request).await.map(drop)
    }

    /// Ends job `id`: the driver is done with it.
    pub(crate) async fn close(&self, id: &str) -> Result<(), CallError> {
        let request = self.request(Method::POST, &format!("/api/jobs/{id}/close"));
        Self::json::<serde_json::Value>(request).await.map(drop)
    }

    /// The events of job `id`, streamed until it ends.
    pub(crate) async fn events(&self, id: &str) -> Result<reqwest::Response, CallError> {
        Self::send(self.request(Method::GET, &format!("/api/jobs/{id}/events"))).await
    }
}

/// A transport error with its causes, which say what actually went wrong.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
