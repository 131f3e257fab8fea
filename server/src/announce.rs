//! Announcing a server's project to a project directory ([`crate::directory`]).
//!
//! With `--announce URL`, the server posts an [`Announcement`] (its name, description, the
//! URL workers connect to, its health check URL, how many workers it wants and has) to
//! `URL/api/projects` as soon as it accepts workers and then every `--announce-secs`. A
//! failed announcement is logged and tried again the next period: the directory being away
//! never stops the job.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
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

/// The flags of a server that announces itself to a project directory.
#[derive(Debug, Clone, clap::Args)]
pub struct AnnounceArgs {
    /// Announce this project to the project directory at URL (`dipla-server directory`,
    /// such as `https://directory.example.org`) now and every --announce-secs, so volunteers
    /// can find it with `dipla-worker --directory URL`.
    #[arg(long, value_name = "URL", env = "DIPLA_ANNOUNCE", value_parser = http_url)]
    pub announce: Option<Url>,
    /// With --announce: the project's name in the directory, 1 to 64 characters of
    /// A-Z a-z 0-9 . _ - [default: the job's name].
    #[arg(long = "name", value_name = "NAME", env = "DIPLA_PROJECT_NAME")]
    pub project_name: Option<String>,
    /// With --announce: what the project computes, for volunteers (at most 500
    /// characters).
    #[arg(long, value_name = "TEXT", env = "DIPLA_PROJECT_DESCRIPTION")]
    pub description: Option<String>,
    /// With --announce: how many workers the project wants (0: as many as come).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        env = "DIPLA_WANTS_WORKERS"
    )]
    pub wants_workers: u32,
    /// With --announce: announce again this often, in seconds (a directory forgets a
    /// project that stops announcing itself).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 30.0,
        env = "DIPLA_ANNOUNCE_SECS"
    )]
    pub announce_secs: f64,
    /// The ws:// or wss:// URL workers should connect to, as announced to the directory:
    /// needed when listening on 0.0.0.0 or behind a reverse proxy [default: the one derived
    /// from the listening address]. The health check announced is its /health beside /ws.
    #[arg(long, value_name = "URL", env = "DIPLA_PUBLIC_URL", value_parser = ws_url)]
    pub public_url: Option<Url>,
}

/// Parses an `http://` or `https://` URL.
fn http_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|error| error.to_string())?;
    match url.scheme() {
        "http" | "https" if url.has_host() => Ok(url),
        _ => Err("expected an http:// or https:// URL".into()),
    }
}

/// Parses a `ws://` or `wss://` URL.
fn ws_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|error| error.to_string())?;
    match url.scheme() {
        "ws" | "wss" if url.has_host() => Ok(url),
        _ => Err("expected a ws:// or wss:// URL".into()),
    }
}

/// The health check URL beside a worker URL: `ws://host/ws` → `http://host/health`,
/// `wss://host/prefix/ws` → `https://host/prefix/health`.
pub fn health_url(worker_url: &Url) -> anyhow::Result<Url> {
    let scheme = match worker_url.scheme() {
        "ws" => "http",
        "wss" => "https",
        other => anyhow::bail!("{worker_url}: expected a ws:// or wss:// URL, not {other}://"),
    };
    let mut health = worker_url.clone();
    health
        .set_scheme(scheme)
        .map_err(|()| anyhow::anyhow!("cannot make an {scheme} URL of {worker_url}"))?;
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

impl AnnounceArgs {
    /// The announcer these flags describe, or `None` without `--announce`: for a project
    /// named `default_name` unless `--name` says otherwise, whose workers connect to
    /// `worker_url` unless `--public-url` says otherwise. Fails on a name, description or
    /// URL the directory would refuse.
    pub fn announcer(
        &self,
        default_name: &str,
        worker_url: &str,
    ) -> anyhow::Result<Option<Announcer>> {
        let Some(directory) = &self.announce else {
            return Ok(None);
        };
        anyhow::ensure!(
            self.announce_secs.is_finite() && self.announce_secs >= 0.05,
            "--announce-secs must be at least 0.05"
        );
        let url = match &self.public_url {
            Some(url) => url.clone(),
            None => {
                let url = Url::parse(worker_url)
                    .with_context(|| format!("the worker URL {worker_url} is not a URL"))?;
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
            anyhow::bail!("cannot announce the project: {flag}: {}", invalid.message);
        }
        let mut endpoint = directory.clone();
        if !endpoint.path().ends_with('/') {
            endpoint.set_path(&format!("{}/", endpoint.path()));
        }
        let endpoint = endpoint
            .join("api/projects")
            .with_context(|| format!("cannot make the directory's URL of {directory}"))?;
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
    async fn post(&mut self, client: &reqwest::Client, workers: usize) -> anyhow::Result<()> {
        self.announcement.workers = u32::try_from(workers).unwrap_or(u32::MAX);
        let response = client
            .post(self.endpoint.clone())
            .json(&self.announcement)
            .send()
            .await
            .context("cannot reach the directory")?;
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
        anyhow::bail!("the directory answered {status}: {body}")
    }
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
                        error = format!("{error:#}"),
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
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        announce: AnnounceArgs,
    }

    fn args(line: &[&str]) -> AnnounceArgs {
        Cli::try_parse_from(std::iter::once("test").chain(line.iter().copied()))
            .unwrap()
            .announce
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
    fn the_flags_make_an_announcement() {
        assert!(
            args(&[])
                .announcer("job", "ws://127.0.0.1:1/ws")
                .unwrap()
                .is_none()
        );
        let announcer = args(&[
            "--announce",
            "http://127.0.0.1:9/prefix",
            "--description",
            "Squares",
            "--wants-workers",
            "8",
            "--public-url",
            "wss://example.org/ws",
        ])
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

        let error = args(&["--announce", "http://d"])
            .announcer("my job", "ws://127.0.0.1:1/ws")
            .unwrap_err()
            .to_string();
        assert!(error.contains("give --name"), "{error}");
        let error = args(&["--announce", "http://d", "--name", "a/b"])
            .announcer("job", "ws://127.0.0.1:1/ws")
            .unwrap_err()
            .to_string();
        assert!(error.contains("--name"), "{error}");
        assert!(
            Cli::try_parse_from(["test", "--announce", "ws://d"]).is_err(),
            "the directory is reached over http(s)"
        );
        assert!(Cli::try_parse_from(["test", "--public-url", "http://d"]).is_err());
    }
}
