//! A client of a long-running server's API (`/api/jobs`): what `dipla-server submit`,
//! `results`, `jobs`, `status` and `cancel` use.

use std::io::Write;
use std::path::Path;

use base64::Engine as _;

use crate::run::serve::{JobBrief, Submission};

/// Why a call to a server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach {url}: {source}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The server refused the call; its message says why.
    #[error("the server answered {status}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// A file the job names could not be read.
    #[error("{0}")]
    Io(String),
    /// The results could not be written.
    #[error("cannot write the results: {0}")]
    Write(std::io::Error),
    /// The answer was not what the API promises.
    #[error("unexpected answer from the server: {0}")]
    Unexpected(String),
    /// The server URL is not the server's web address.
    #[error("{0}")]
    BadUrl(String),
}

/// A long-running server's API, as an admin.
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    /// A client of the server at `base` (`http://HOST:PORT` or `https://...`) presenting
    /// admin token `token`.
    ///
    /// # Errors
    /// When `base` is not an http:// or https:// URL (a worker's `ws://HOST:PORT/ws` is
    /// named as such, with the address wanted), or the HTTP client cannot start (no TLS
    /// roots).
    pub fn new(base: &str, token: &str) -> Result<Self, ClientError> {
        check_base(base)?;
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| ClientError::Io(format!("cannot start an HTTP client: {e}")))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http,
        })
    }

    /// Calls `method path`, with what `body` adds to the request.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}{path}", self.base);
        let request = body(self.http.request(method, &url).bearer_auth(&self.token));
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Unreachable { url, source })?;
        Self::checked(response).await
    }

    /// The response if it succeeded, else the server's message.
    async fn checked(response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|value| value["error"].as_str().map(str::to_owned))
            .unwrap_or(text);
        Err(ClientError::Refused { status, message })
    }

    async fn json<T: serde::de::DeserializeOwned>(
        response: reqwest::Response,
    ) -> Result<T, ClientError> {
        response
            .json()
            .await
            .map_err(|e| ClientError::Unexpected(e.to_string()))
    }

    /// Submits the job the manifest at `path` describes, with the files it names.
    ///
    /// # Errors
    /// When a file cannot be read, or the server refuses the job (a wrong manifest: the
    /// message names what is wrong).
    pub async fn submit(&self, path: &Path) -> Result<JobBrief, ClientError> {
        let submission = bundle(path)?;
        let response = self
            .call(reqwest::Method::POST, "/api/jobs", |request| {
                request.json(&submission)
            })
            .await?;
        Self::json(response).await
    }

    /// Every job on the server.
    ///
    /// # Errors
    /// When the call fails.
    pub async fn jobs(&self) -> Result<Vec<JobBrief>, ClientError> {
        let response = self
            .call(reqwest::Method::GET, "/api/jobs", |request| request)
            .await?;
        Self::json(response).await
    }

    /// Job `id`'s status: its [`JobBrief`] fields, and while it runs its progress per
    /// stage and its workers.
    ///
    /// # Errors
    /// When the call fails (`404`: no such job).
    pub async fn status(&self, id: &str) -> Result<serde_json::Value, ClientError> {
        let response = self
            .call(
                reqwest::Method::GET,
                &format!("/api/jobs/{id}"),
                |request| request,
            )
            .await?;
        Self::json(response).await
    }

    /// Job `id` in the list.
    ///
    /// # Errors
    /// When the call fails (`404`: no such job).
    pub async fn brief(&self, id: &str) -> Result<JobBrief, ClientError> {
        let status = self.status(id).await?;
        let field = |key: &str| status.get(key).cloned().unwrap_or_default();
        let number = |key: &str| field(key).as_u64().unwrap_or(0);
        Ok(JobBrief {
            id: id.to_owned(),
            name: field("name").as_str().unwrap_or_default().to_owned(),
            state: serde_json::from_value(field("state"))
                .map_err(|e| ClientError::Unexpected(format!("state: {e}")))?,
            submitted: number("submitted"),
            tasks: number("tasks"),
            done: number("done"),
            failed: number("failed"),
            workers: field("workers").as_array().map_or(0, Vec::len),
            summary: field("summary").as_str().map(str::to_owned),
        })
    }

    /// Cancels job `id`.
    ///
    /// # Errors
    /// When the call fails (`409`: the job had ended).
    pub async fn cancel(&self, id: &str) -> Result<(), ClientError> {
        self.call(
            reqwest::Method::POST,
            &format!("/api/jobs/{id}/cancel"),
            |request| request,
        )
        .await?;
        Ok(())
    }

    /// Writes job `id`'s results to `out` as JSON Lines: those written so far, and with
    /// `follow` the rest as they come until the job ends. Returns the job as it is then.
    ///
    /// # Errors
    /// When the call fails or `out` cannot be written.
    pub async fn results(
        &self,
        id: &str,
        follow: bool,
        out: &mut impl Write,
    ) -> Result<JobBrief, ClientError> {
        let path = format!("/api/jobs/{id}/results?follow={follow}");
        self.follow(&path, |lines| {
            out.write_all(lines)
                .and_then(|()| out.flush())
                .map_err(ClientError::Write)
        })
        .await?;
        self.brief(id).await
    }

    /// Reads the JSON Lines at `path` as they come, giving `each` whole lines, until the
    /// server ends them.
    ///
    /// # Errors
    /// When the call fails, or `each` does (its error is returned as it is).
    pub async fn follow(
        &self,
        path: &str,
        mut each: impl FnMut(&[u8]) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        let mut response = self
            .call(reqwest::Method::GET, path, |request| request)
            .await?;
        let mut partial = Vec::new();
        while let Some(chunk) =
            response
                .chunk()
                .await
                .map_err(|source| ClientError::Unreachable {
                    url: format!("{}{path}", self.base),
                    source,
                })?
        {
            partial.extend_from_slice(&chunk);
            if let Some(at) = partial.iter().rposition(|&b| b == b'\n') {
                let rest = partial.split_off(at + 1);
                each(&partial)?;
                partial = rest;
            }
        }
        Ok(())
    }
}

/// Whether `base` is a server's web address, `http://HOST:PORT` or `https://...`; the error
/// says what it is instead and what the address looks like.
fn check_base(base: &str) -> Result<(), ClientError> {
    let wanted = "the server's web address, http://HOST:PORT (https:// behind TLS)";
    if !base.contains("://") {
        return Err(ClientError::BadUrl(format!(
            "`{base}` has no scheme: give {wanted}"
        )));
    }
    let url = reqwest::Url::parse(base.trim())
        .map_err(|e| ClientError::BadUrl(format!("`{base}` is not a URL ({e}): give {wanted}")))?;
    // The same place without the worker endpoint: the address the API is at.
    let mut web = url.clone();
    let path = url.path().trim_end_matches('/');
    web.set_path(path.strip_suffix("/ws").unwrap_or(path));
    web.set_query(None);
    let web = web.as_str().trim_end_matches('/').to_owned();
    match url.scheme() {
        "http" | "https" if url.path().trim_end_matches('/').ends_with("/ws") => {
            Err(ClientError::BadUrl(format!(
                "`{base}` is the worker endpoint (/ws), where workers connect; API commands \
                 want {wanted}: here {web}"
            )))
        }
        "http" | "https" => Ok(()),
        scheme @ ("ws" | "wss") => {
            let http = if scheme == "wss" { "https" } else { "http" };
            let web = web.replacen(scheme, http, 1);
            Err(ClientError::BadUrl(format!(
                "`{base}` is a worker URL (for dipla-worker); API commands want {wanted}: \
                 here {web}"
            )))
        }
        other => Err(ClientError::BadUrl(format!(
            "`{base}`: {other}:// is not a scheme the API speaks; give {wanted}"
        ))),
    }
}

/// The manifest at `path` with the files it names, as a server takes it.
///
/// # Errors
/// When the manifest or a file it names cannot be read.
pub fn bundle(path: &Path) -> Result<Submission, ClientError> {
    let manifest = std::fs::read_to_string(path)
        .map_err(|e| ClientError::Io(format!("cannot read {}: {e}", path.display())))?;
    let named = crate::manifest::named_files(&manifest)
        .map_err(|e| ClientError::Io(format!("{} is not a job manifest: {e}", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut files = std::collections::BTreeMap::new();
    for file in named {
        let full = base.join(&file);
        let bytes = std::fs::read(&full).map_err(|e| {
            ClientError::Io(format!(
                "cannot read {} (named in {}): {e}",
                full.display(),
                path.display()
            ))
        })?;
        files.insert(
            file.to_string_lossy().into_owned(),
            base64::engine::general_purpose::STANDARD.encode(bytes),
        );
    }
    Ok(Submission {
        manifest,
        files,
        manifest_name: Some(path.display().to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_url_is_refused_with_the_address_wanted() {
        for good in [
            "http://h:7070",
            "https://example.org/dipla/",
            "http://h:7070/",
        ] {
            assert!(check_base(good).is_ok(), "{good}");
        }
        for (bad, wanted) in [
            ("ws://h:7070/ws", "here http://h:7070"),
            ("wss://example.org/ws", "here https://example.org"),
            (
                "wss://example.org/dipla/ws",
                "here https://example.org/dipla",
            ),
            ("http://h:7070/ws", "here http://h:7070"),
            ("ftp://h:7070", "http://HOST:PORT"),
            ("h:7070", "http://HOST:PORT"),
        ] {
            let said = check_base(bad).unwrap_err().to_string();
            assert!(said.contains(wanted), "{bad}: {said}");
        }
    }
}
