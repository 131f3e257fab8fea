//! Announcing a server's project to a project directory ([`crate::directory`]).
//!
//! With `--announce URL`, the server posts an [`Announcement`] (its name, description, the
//! URL workers connect to, its health check URL, how many workers it wants and has) to
//! `URL/api/projects` as soon as it accepts workers and then every `--announce-secs`. A
//! failed announcement is logged and tried again the next period: the directory being away
//! never stops the job.

use std::sync::Arc;
use std::time::Duration;

use dipla_protocol::text::printable;
use reqwest::Url;

use crate::directory::Announcement;

/// How many workers are connected now (cheap to clone, called at every announcement and
/// health check).
pub type WorkerCount = Arc<dyn Fn() -> usize + Send + Sync>;

/// How long one announcement may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of a directory's refusal read (its start is logged).
const MAX_ANSWER_BYTES: usize = 4 << 10;

/// How often a server announces itself unless told otherwise, in seconds.
pub const DEFAULT_ANNOUNCE_SECS: f64 = 30.0;

/// How a server announces itself to a project directory (`--announce` and the flags
/// beside it).
#[derive(Debug, Clone)]
pub struct AnnounceOptions {
    /// The directory to announce the project to (`None`: none).
    pub announce: Option<Url>,
    /// The project's name in the directory, 1 to 64 characters of A-Z a-z 0-9 . _ -
    /// (`None`: the job's name).
    pub project_name: Option<String>,
    /// What the project computes, for volunteers (at most 500 characters).
    pub description: Option<String>,
    /// How many workers the project wants (0: as many as come).
    pub wants_workers: u32,
    /// How often to announce it again, in seconds (a directory forgets a project that
    /// stops announcing itself).
    pub announce_secs: f64,
    /// The ws:// or wss:// URL workers should connect to, as announced (`None`: the one
    /// derived from the listening address). The health check announced is its /health
    /// beside /ws.
    pub public_url: Option<Url>,
}

impl Default for AnnounceOptions {
    /// No announcement.
    fn default() -> Self {
        Self {
            announce: None,
            project_name: None,
            description: None,
            wants_workers: 0,
            announce_secs: DEFAULT_ANNOUNCE_SECS,
            public_url: None,
        }
    }
}

/// Why a project cannot be announced, or an announcement failed.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// The worker URL is not a WebSocket URL.
    #[error("{url}: expected a ws:// or wss:// URL, not {scheme}://")]
    NotWebSocket {
        /// The URL.
        url: Url,
        /// Its scheme.
        scheme: String,
    },
    /// The health check's URL cannot be made from the worker URL.
    #[error("cannot make an {scheme} URL of {url}")]
    NoHealthUrl {
        /// The scheme wanted.
        scheme: &'static str,
        /// The worker URL.
        url: Url,
    },
    /// `--announce-secs` is too small (or not a number).
    #[error("--announce-secs must be at least 0.05")]
    Period,
    /// The worker URL does not parse.
    #[error("the worker URL {url} is not a URL")]
    NotAUrl {
        /// What was given.
        url: String,
        /// Why it does not parse.
        #[source]
        error: url::ParseError,
    },
    /// The directory would refuse the announcement.
    #[error("cannot announce the project: {flag}: {fault}")]
    Refused {
        /// The flag to change.
        flag: &'static str,
        /// What is wrong with it.
        fault: String,
    },
    /// The directory's API URL cannot be made from its URL.
    #[error("cannot make the directory's URL of {directory}")]
    Endpoint {
        /// The directory's URL.
        directory: Url,
        /// Why.
        #[source]
        error: url::ParseError,
    },
    /// The directory could not be reached.
    #[error("cannot reach the directory")]
    Unreachable(#[source] reqwest::Error),
    /// The directory refused the announcement.
    #[error("the directory answered {status}: {body}")]
    Answered {
        /// Its status.
        status: reqwest::StatusCode,
        /// The start of its answer, printable.
        body: String,
    },
}

/// The health check URL beside a worker URL: `ws://host/ws` → `http://host/health`,
/// `wss://host/prefix/ws` → `https://host/prefix/health`.
///
/// # Errors
/// When the URL is not a `ws://` or `wss://` one.
pub fn health_url(worker_url: &Url) -> Result<Url, AnnounceError> {
    let scheme = match worker_url.scheme() {
        "ws" => "http",
        "wss" => "https",
        other => {
            return Err(AnnounceError::NotWebSocket {
                url: worker_url.clone(),
                scheme: other.to_owned(),
            });
        }
    };
    let mut health = worker_url.clone();
    health
        .set_scheme(scheme)
        .map_err(|()| AnnounceError::NoHealthUrl {
            scheme,
            url: worker_url.clone(),
        })?;
    let path = worker_url.path();
    let base = path
        .strip_suffix("/ws")
        .unwrap_or(path.trim_end_matches('/'));
    health.set_path(&format!("{base}/health"));
    health.set_query(None);
    health.set_fragment(None);
    Ok(health)
}

/// Announces a project to a directory, periodically: see [`spawn`].
#[derive(Debug, Clone)]
pub struct Announcer {
    /// `DIRECTORY/api/projects`.
    endpoint: Url,
    /// What is announced; `workers` is filled in each time.
    announcement: Announcement,
    /// How often.
    every: Duration,
}

impl AnnounceOptions {
    /// The announcer these options describe, or `None` without `--announce`: for a project
    /// named `default_name` unless `--name` says otherwise, whose workers connect to
    /// `worker_url` unless `--public-url` says otherwise. Fails on a name, description or
    /// URL the directory would refuse.
    pub fn announcer(
        &self,
        default_name: &str,
        worker_url: &str,
    ) -> Result<Option<Announcer>, AnnounceError> {
        let Some(directory) = &self.announce else {
            return Ok(None);
        };
        if !(self.announce_secs.is_finite() && self.announce_secs >= 0.05) {
            return Err(AnnounceError::Period);
        }
        let url = match &self.public_url {
            Some(url) => url.clone(),
            None => {
                let url = Url::parse(worker_url).map_err(|error| AnnounceError::NotAUrl {
                    url: worker_url.to_owned(),
                    error,
                })?;
                if url.host_str().is_some_and(|host| {
                    host == "127.0.0.1" || host == "[::1]" || host == "localhost"
                }) {
                    tracing::warn!(
                        %url,
                        "announcing a URL only this machine can reach: give --public-url"
                    );
                }
                url
            }
        };
        let announcement = Announcement {
            name: self
                .project_name
                .clone()
                .unwrap_or_else(|| default_name.to_owned()),
            description: self.description.clone().unwrap_or_default(),
            health: health_url(&url)?.to_string(),
            url: url.to_string(),
            wants_workers: self.wants_workers,
            workers: 0,
        };
        if let Err(invalid) = announcement.validate() {
            let flag = match invalid.field {
                "name" if self.project_name.is_none() => {
                    "the job's name as project name (give --name)"
                }
                "name" => "--name",
                "description" => "--description",
                _ => "--public-url",
            };
            return Err(AnnounceError::Refused {
                flag,
                fault: invalid.message.to_string(),
            });
        }
        let mut endpoint = directory.clone();
        if !endpoint.path().ends_with('/') {
            endpoint.set_path(&format!("{}/", endpoint.path()));
        }
        let endpoint = endpoint
            .join("api/projects")
            .map_err(|error| AnnounceError::Endpoint {
                directory: directory.clone(),
                error,
            })?;
        Ok(Some(Announcer {
            endpoint,
            announcement,
            every: Duration::from_secs_f64(self.announce_secs),
        }))
    }
}

impl Announcer {
    /// What is announced (with `workers` as of the last announcement made).
    pub fn announcement(&self) -> &Announcement {
        &self.announcement
    }

    /// Where announcements are posted.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Posts the announcement once, with `workers` connected.
    async fn post(
        &mut self,
        client: &reqwest::Client,
        workers: usize,
    ) -> Result<(), AnnounceError> {
        self.announcement.workers = u32::try_from(workers).unwrap_or(u32::MAX);
        let response = client
            .post(self.endpoint.clone())
            .json(&self.announcement)
            .send()
            .await
            .map_err(AnnounceError::Unreachable)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // Only the start of the answer is read and logged, as printable text.
        let mut response = response;
        let mut body = Vec::new();
        while body.len() < MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        body.truncate(MAX_ANSWER_BYTES);
        let body = printable(String::from_utf8_lossy(&body).trim(), 300);
        Err(AnnounceError::Answered { status, body })
    }
}

/// An error and its causes, one after another (`cannot reach the directory: ...`).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}

/// Announces the project now and every period, with the worker count `workers` yields,
/// until the task is aborted. Failures are logged and tried again the next period.
pub fn spawn(mut announcer: Announcer, workers: WorkerCount) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .user_agent(concat!("dipla-server/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(client) => client,
            Err(error) => {
                tracing::warn!(%error, "cannot announce the project: no HTTP client");
                return;
            }
        };
        let mut ticks = tokio::time::interval(announcer.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut announced = false;
        loop {
            ticks.tick().await;
            match announcer.post(&client, workers()).await {
                Ok(()) if !announced => {
                    announced = true;
                    tracing::info!(
                        directory = %announcer.endpoint,
                        name = %announcer.announcement.name,
                        url = %announcer.announcement.url,
                        "announced the project to the directory"
                    );
                }
                Ok(()) => {}
                Err(error) => {
                    announced = false;
                    tracing::warn!(
                        directory = %announcer.endpoint,
                        error = chain(&error),
                        "announcing the project failed; trying again next period"
                    );
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Announcing to `directory`.
    fn to(directory: &str) -> AnnounceOptions {
        AnnounceOptions {
            announce: Some(Url::parse(directory).unwrap()),
            ..AnnounceOptions::default()
        }
    }

    #[test]
    fn health_sits_beside_the_worker_endpoint() {
        let health = |url: &str| health_url(&Url::parse(url).unwrap()).unwrap().to_string();
        assert_eq!(
            health("ws://127.0.0.1:7070/ws"),
            "http://127.0.0.1:7070/health"
        );
        assert_eq!(
            health("wss://example.org/dipla/ws?x=1"),
            "https://example.org/dipla/health"
        );
        assert_eq!(health("wss://example.org/"), "https://example.org/health");
        assert!(health_url(&Url::parse("http://example.org/").unwrap()).is_err());
    }

    #[test]
    fn the_options_make_an_announcement() {
        assert!(
            AnnounceOptions::default()
                .announcer("job", "ws://127.0.0.1:1/ws")
                .unwrap()
                .is_none()
        );
        let announcer = AnnounceOptions {
            description: Some("Squares".into()),
            wants_workers: 8,
            public_url: Some(Url::parse("wss://example.org/ws").unwrap()),
            ..to("http://127.0.0.1:9/prefix")
        }
        .announcer("squares", "ws://0.0.0.0:7070/ws")
        .unwrap()
        .unwrap();
        assert_eq!(
            announcer.endpoint().as_str(),
            "http://127.0.0.1:9/prefix/api/projects"
        );
        let a = announcer.announcement();
        assert_eq!(a.name, "squares");
        assert_eq!(a.description, "Squares");
        assert_eq!(a.url, "wss://example.org/ws");
        assert_eq!(a.health, "https://example.org/health");
        assert_eq!(a.wants_workers, 8);

        let error = to("http://d")
            .announcer("my job", "ws://127.0.0.1:1/ws")
            .unwrap_err()
            .to_string();
        assert!(error.contains("give --name"), "{error}");
        let error = AnnounceOptions {
            project_name: Some("a/b".into()),
            ..to("http://d")
        }
        .announcer("job", "ws://127.0.0.1:1/ws")
        .unwrap_err()
        .to_string();
        assert!(error.contains("--name"), "{error}");
    }
}
