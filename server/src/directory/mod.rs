//! The project directory (`dipla-server directory`): where servers announce their projects
//! and volunteers find one to join (`dipla-worker --directory URL [--project NAME]`).
//!
//! A server started with `--announce URL` ([`crate::directory::announce`]) posts an [`Announcement`]
//! to `POST /api/projects` when it starts and then every `--announce-secs`. The directory
//! keeps the announcements by name, and checks each project's `health` URL (the server's
//! `GET /health`) every `--check-secs`; `GET /api/projects` (JSON, [`Listing`]) and `GET /`
//! (an HTML table) list only the projects whose latest check answered `2xx` and whose
//! announcement was renewed within the TTL (`--ttl-secs`).
//!
//! The rules, kept simple:
//! - A name belongs to the project (worker `url`) that announced it. The same `url`
//!   announcing again renews the entry and refreshes what it says (description, counts,
//!   health URL). A different `url` takes the name over only once the holder's latest
//!   health check failed (or its announcement expired); before that it is refused with
//!   `409 Conflict`. So a server that restarts on another address gets its name back within
//!   one check period plus one announce period, and nobody can take a live project's name.
//! - Announcements not renewed within the TTL are dropped.
//! - The directory is public: no authentication, but at most
//!   [`DirectoryOptions::max_projects`] entries (`503` when full) and bodies of at most
//!   [`MAX_BODY_BYTES`].
//! - To keep anonymous callers from pointing the checker anywhere, the health URL must be on
//!   the same host as the worker URL; checks follow no redirects, wait at most
//!   [`DirectoryOptions::check_timeout`] and read only the status code.

pub mod announce;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use dipla_protocol::text::printable;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// The largest announcement body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The longest project name, in characters (`A-Z a-z 0-9 . _ -`).
pub const MAX_NAME_CHARS: usize = 64;
/// The longest project description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// The longest `url` or `health` URL, in characters.
pub const MAX_URL_CHARS: usize = 2048;
/// How many health checks run at once.
const CHECKS_AT_ONCE: usize = 64;

/// How a directory runs.
#[derive(Debug, Clone)]
pub struct DirectoryOptions {
    /// How often every project's health URL is checked.
    pub check_every: Duration,
    /// How long one health check may take before it counts as failed.
    pub check_timeout: Duration,
    /// How long an announcement lasts when it is not renewed.
    pub ttl: Duration,
    /// The most projects stored at once.
    pub max_projects: usize,
}

impl Default for DirectoryOptions {
    fn default() -> Self {
        Self {
            check_every: Duration::from_secs(10),
            check_timeout: Duration::from_secs(2),
            ttl: Duration::from_secs(90),
            max_projects: 10_000,
        }
    }
}

/// What a server says about its project (`POST /api/projects`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// The project's name: 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// What the project computes, for volunteers: at most 500 characters, no control
    /// characters.
    #[serde(default)]
    pub description: String,
    /// The WebSocket URL workers connect to (`ws://` or `wss://`).
    pub url: String,
    /// The server's health check (`http://` or `https://`, on the host of `url`).
    pub health: String,
    /// How many workers the project wants (0: as many as come).
    #[serde(default)]
    pub wants_workers: u32,
    /// How many workers are connected now.
    #[serde(default)]
    pub workers: u32,
}

/// Why an announcement was refused as malformed: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// The JSON field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: Fault,
}

/// What is wrong with a field of an announcement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// The name is empty or too long.
    #[error("must be 1 to {MAX_NAME_CHARS} characters long")]
    NameLength,
    /// The name holds other characters than letters, digits and `. _ -`.
    #[error("may hold only letters A-Z a-z, digits and . _ -")]
    NameCharacters,
    /// The description is too long.
    #[error("must be at most {MAX_DESCRIPTION_CHARS} characters long")]
    DescriptionLength,
    /// The field holds control characters.
    #[error("must not hold control characters")]
    Control,
    /// The URL is too long.
    #[error("must be at most {MAX_URL_CHARS} characters long")]
    UrlLength,
    /// The URL holds characters that are not printable.
    #[error("must hold only printable characters")]
    Unprintable,
    /// The text is not a URL.
    #[error("not a URL: {0}")]
    NotUrl(url::ParseError),
    /// The URL has another scheme than those allowed.
    #[error("must be a {} URL, not {scheme}", .wanted.join(" or "))]
    Scheme {
        /// The schemes allowed.
        wanted: &'static [&'static str],
        /// The URL's.
        scheme: String,
    },
    /// The URL names no host.
    #[error("must name a host")]
    NoHost,
    /// The URL holds a user name or a password.
    #[error("must not hold credentials")]
    Credentials,
    /// The health URL is on another host than the worker URL.
    #[error("must be on the same host as url")]
    OtherHost,
}

impl Announcement {
    /// Checks every field; the first fault found names its field.
    pub fn validate(&self) -> Result<(), Invalid> {
        let invalid = |field, message: Fault| Err(Invalid { field, message });
        let name_chars = self.name.chars().count();
        if name_chars == 0 || name_chars > MAX_NAME_CHARS {
            return invalid("name", Fault::NameLength);
        }
        if !self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return invalid("name", Fault::NameCharacters);
        }
        if self.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return invalid("description", Fault::DescriptionLength);
        }
        if self.description.chars().any(char::is_control) {
            return invalid("description", Fault::Control);
        }
        let url = match parse_url(&self.url, &["ws", "wss"]) {
            Ok(url) => url,
            Err(message) => return invalid("url", message),
        };
        let health = match parse_url(&self.health, &["http", "https"]) {
            Ok(health) => health,
            Err(message) => return invalid("health", message),
        };
        if !url
            .host_str()
            .zip(health.host_str())
            .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
        {
            return invalid("health", Fault::OtherHost);
        }
        Ok(())
    }
}

/// `text` as a URL with one of `schemes` and a host.
fn parse_url(text: &str, schemes: &'static [&'static str]) -> Result<reqwest::Url, Fault> {
    if text.chars().count() > MAX_URL_CHARS {
        return Err(Fault::UrlLength);
    }
    // The URL parser drops tabs and line breaks, but the text as sent is what is kept,
    // listed and logged.
    if printable(text, MAX_URL_CHARS) != text {
        return Err(Fault::Unprintable);
    }
    let url = reqwest::Url::parse(text).map_err(Fault::NotUrl)?;
    if !schemes.contains(&url.scheme()) {
        return Err(Fault::Scheme {
            wanted: schemes,
            scheme: url.scheme().to_owned(),
        });
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Fault::NoHost);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Fault::Credentials);
    }
    Ok(url)
}

/// A listed project (`GET /api/projects` answers an array of these, sorted by name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listing {
    /// The project's name.
    pub name: String,
    /// What it computes.
    pub description: String,
    /// The WebSocket URL workers connect to.
    pub url: String,
    /// How many workers it wants (0: as many as come).
    pub wants_workers: u32,
    /// How many workers it had when it last announced itself.
    pub workers: u32,
    /// How long ago its health check last answered.
    pub last_checked_secs_ago: f64,
}

/// The latest health check of a project.
#[derive(Debug, Clone, Copy)]
struct Checked {
    at: Instant,
    healthy: bool,
}

/// One announced project.
#[derive(Debug)]
struct Entry {
    announcement: Announcement,
    /// When it last announced itself.
    renewed: Instant,
    /// Its latest health check (`None`: not checked since announced or since its health URL
    /// changed).
    checked: Option<Checked>,
}

/// What became of an accepted announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Announced {
    /// A name not held before.
    New,
    /// The holder renewed it.
    Renewed,
    /// Another URL took over a name whose holder failed its health check or expired.
    Replaced,
}

/// Why an announcement was refused although well formed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refused {
    /// A project at another URL holds the name and has not failed its health check.
    Taken { url: String },
    /// The directory holds as many projects as it may.
    Full,
}

/// A health check due: which entry, and where to ask.
#[derive(Debug, Clone)]
struct Due {
    name: String,
    url: String,
    health: String,
}

/// The announced projects, without I/O: every method is told the time.
#[derive(Debug)]
struct Projects {
    entries: HashMap<String, Entry>,
    ttl: Duration,
    max: usize,
}

impl Projects {
    fn new(ttl: Duration, max: usize) -> Self {
        Self {
            entries: HashMap::new(),
            ttl,
            max,
        }
    }

    fn expired(&self, entry: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(entry.renewed) > self.ttl
    }

    /// Records a valid announcement made at `now`.
    fn announce(&mut self, announcement: Announcement, now: Instant) -> Result<Announced, Refused> {
        let expired = self
            .entries
            .get(&announcement.name)
            .map(|entry| self.expired(entry, now));
        let outcome = match (self.entries.get_mut(&announcement.name), expired) {
            (Some(entry), Some(false)) if entry.announcement.url == announcement.url => {
                if entry.announcement.health != announcement.health {
                    entry.checked = None;
                }
                entry.announcement = announcement;
                entry.renewed = now;
                return Ok(Announced::Renewed);
            }
            (Some(entry), Some(false)) => {
                // Unchecked or healthy at its latest check: the holder keeps it.
                if entry.checked.is_none_or(|checked| checked.healthy) {
                    return Err(Refused::Taken {
                        url: entry.announcement.url.clone(),
                    });
                }
                Announced::Replaced
            }
            (Some(_), _) => Announced::Replaced,
            (None, _) => {
                if self.entries.len() >= self.max {
                    self.prune(now);
                }
                if self.entries.len() >= self.max {
                    return Err(Refused::Full);
                }
                Announced::New
            }
        };
        self.entries.insert(
            announcement.name.clone(),
            Entry {
                announcement,
                renewed: now,
                checked: None,
            },
        );
        Ok(outcome)
    }

    /// Drops the announcements not renewed within the TTL.
    fn prune(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.entries
            .retain(|_, entry| now.saturating_duration_since(entry.renewed) <= ttl);
    }

    /// The checks to make: of every project, or only of those not checked yet.
    fn due(&self, unchecked_only: bool) -> Vec<Due> {
        self.entries
            .values()
            .filter(|entry| !unchecked_only || entry.checked.is_none())
            .map(|entry| Due {
                name: entry.announcement.name.clone(),
                url: entry.announcement.url.clone(),
                health: entry.announcement.health.clone(),
            })
            .collect()
    }

    /// Records a check's outcome, unless the entry changed hands or health URL since.
    fn record(&mut self, due: &Due, healthy: bool, at: Instant) {
        if let Some(entry) = self.entries.get_mut(&due.name)
            && entry.announcement.url == due.url
            && entry.announcement.health == due.health
        {
            entry.checked = Some(Checked { at, healthy });
        }
    }

    /// The projects listed at `now`: renewed within the TTL and healthy at their latest
    /// check, sorted by name.
    fn listed(&self, now: Instant) -> Vec<Listing> {
        let mut listed: Vec<Listing> = self
            .entries
            .values()
            .filter(|entry| !self.expired(entry, now))
            .filter_map(|entry| {
                let checked = entry.checked.filter(|checked| checked.healthy)?;
                let a = &entry.announcement;
                Some(Listing {
                    name: a.name.clone(),
                    description: a.description.clone(),
                    url: a.url.clone(),
                    wants_workers: a.wants_workers,
                    workers: a.workers,
                    last_checked_secs_ago: now.saturating_duration_since(checked.at).as_secs_f64(),
                })
            })
            .collect();
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        listed
    }
}

/// The directory's shared state.
#[derive(Clone)]
struct Directory {
    projects: Arc<Mutex<Projects>>,
    /// Wakes the checker to check new entries at once.
    fresh: Arc<Notify>,
}

impl Directory {
    fn lock(&self) -> std::sync::MutexGuard<'_, Projects> {
        // Every method leaves the map consistent before it could panic.
        self.projects.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The directory's routes: `GET /`, `GET /api/projects`, `POST /api/projects`.
fn router(directory: Directory) -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::get(page))
        .route("/api/projects", axum::routing::get(list).post(announce))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(directory)
}

/// A JSON error `{"error": message}`.
fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn announce(
    State(directory): State<Directory>,
    body: Result<Json<Announcement>, JsonRejection>,
) -> Response {
    let announcement = match body {
        Ok(Json(announcement)) => announcement,
        Err(rejection) => {
            // A well-formed body of the wrong shape is bad input too (serde names the field).
            let status = match rejection.status() {
                StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
                status => status,
            };
            return error(status, rejection.body_text());
        }
    };
    if let Err(invalid) = announcement.validate() {
        return error(StatusCode::BAD_REQUEST, invalid.to_string());
    }
    let name = announcement.name.clone();
    let url = announcement.url.clone();
    let outcome = directory.lock().announce(announcement, Instant::now());
    match outcome {
        Ok(announced) => {
            match announced {
                Announced::Renewed => tracing::debug!(%name, %url, "project renewed"),
                Announced::New => tracing::info!(%name, %url, "project announced"),
                Announced::Replaced => tracing::info!(%name, %url, "project replaced"),
            }
            directory.fresh.notify_one();
            let ttl = directory.lock().ttl.as_secs_f64();
            (
                StatusCode::OK,
                Json(serde_json::json!({ "name": name, "ttl_secs": ttl })),
            )
                .into_response()
        }
        Err(Refused::Taken { url: holder }) => error(
            StatusCode::CONFLICT,
            format!(
                "name: {name:?} is held by the project at {holder}, which answers its health \
                 check; choose another name"
            ),
        ),
        Err(Refused::Full) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the directory holds as many projects as it may; try again later".into(),
        ),
    }
}

async fn list(State(directory): State<Directory>) -> Json<Vec<Listing>> {
    Json(directory.lock().listed(Instant::now()))
}

async fn page(State(directory): State<Directory>) -> Html<String> {
    Html(render_page(&directory.lock().listed(Instant::now())))
}

/// The HTML page listing `projects`.
fn render_page(projects: &[Listing]) -> String {
    let mut rows = String::new();
    for project in projects {
        let wants = match project.wants_workers {
            0 => "any".to_owned(),
            n => n.to_string(),
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td>\
             <td><code>{}</code></td><td class=n>{:.0} s ago</td></tr>\n",
            escape(&project.name),
            escape(&project.description),
            project.workers,
            escape(&wants),
            escape(&project.url),
            project.last_checked_secs_ago,
        ));
    }
    if projects.is_empty() {
        rows.push_str("<tr><td colspan=6>No project is listed now.</td></tr>\n");
    }
    format!(
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width\">\
         <meta http-equiv=refresh content=30>\
         <title>Dipla projects</title><style>\
         body{{font:15px system-ui,sans-serif;margin:2em;color:#222}}\
         table{{border-collapse:collapse}}td,th{{padding:.3em .8em;border-bottom:1px solid #ddd;\
         text-align:left;vertical-align:top}}.n{{text-align:right;white-space:nowrap}}\
         code{{font-size:13px}}</style></head><body>\n\
         <h1>Dipla projects</h1>\n\
         <p>Volunteer this machine's cores to one: <code>dipla-worker --directory \
         DIRECTORY-URL --project NAME</code>. Only projects answering their health check \
         are listed.</p>\n\
         <table><thead><tr><th>Name</th><th>Description</th><th class=n>Workers</th>\
         <th class=n>Wants</th><th>URL</th><th class=n>Checked</th></tr></thead><tbody>\n\
         {rows}</tbody></table>\n</body></html>\n"
    )
}

/// `text` safe inside HTML text and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Checks the projects' health: all of them every `check_every`, and new ones as soon as
/// they are announced.
async fn checker(directory: Directory, options: DirectoryOptions) {
    let client = match reqwest::Client::builder()
        .timeout(options.check_timeout)
        .connect_timeout(options.check_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("dipla-directory/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot make the health checker's HTTP client");
            return;
        }
    };
    let mut ticks = tokio::time::interval(options.check_every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let unchecked_only = tokio::select! {
            _ = ticks.tick() => false,
            () = directory.fresh.notified() => true,
        };
        let due = {
            let mut projects = directory.lock();
            projects.prune(Instant::now());
            projects.due(unchecked_only)
        };
        futures_util::stream::iter(due)
            .map(|due| {
                let client = &client;
                async move {
                    let healthy = check(client, &due.health).await;
                    (due, healthy)
                }
            })
            .buffer_unordered(CHECKS_AT_ONCE)
            .for_each(|(due, healthy)| {
                if !healthy {
                    tracing::debug!(name = %due.name, health = %due.health, "health check failed");
                }
                directory.lock().record(&due, healthy, Instant::now());
                std::future::ready(())
            })
            .await;
    }
}

/// Whether `health` answers `2xx`.
async fn check(client: &reqwest::Client, health: &str) -> bool {
    client
        .get(health)
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
}

/// Serves a directory on `listener` until the task is dropped or the listener fails.
pub async fn serve(listener: TcpListener, options: DirectoryOptions) -> std::io::Result<()> {
    let directory = Directory {
        projects: Arc::new(Mutex::new(Projects::new(options.ttl, options.max_projects))),
        fresh: Arc::new(Notify::new()),
    };
    let checks = tokio::spawn(checker(directory.clone(), options));
    // Stop the checker however serving ends (an error, or this future dropped).
    struct AbortOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _checks = AbortOnDrop(checks);
    let door = Arc::new(crate::net::door::Door::default());
    let listener = crate::net::http::PlainListener::new(listener, door);
    crate::net::http::serve(
        listener,
        router(directory),
        crate::net::http::HEAD_TIMEOUT,
        std::future::pending(),
    )
    .await;
    Ok(())
}

/// `dipla-server directory`: its command-line flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DirectoryArgs {
    /// Serve the directory on this address, such as 0.0.0.0:7080 (port 0: any free port;
    /// the address is printed on stderr).
    #[arg(long, env = "DIPLA_LISTEN")]
    pub listen: SocketAddr,
    /// Check every project's health URL this often, in seconds; only projects whose latest
    /// check answered 2xx are listed.
    #[arg(long, default_value_t = 10.0, env = "DIPLA_CHECK_SECS")]
    pub check_secs: f64,
    /// Forget a project that has not announced itself again within this many seconds
    /// (servers announce every 30 s by default).
    #[arg(long, default_value_t = 90.0, env = "DIPLA_TTL_SECS")]
    pub ttl_secs: f64,
    /// The most projects held at once; announcements of new ones are refused beyond it.
    #[arg(long, default_value_t = 10_000, env = "DIPLA_MAX_PROJECTS")]
    pub max_projects: usize,
}

/// Why `dipla-server directory` cannot run, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// A period given in seconds is too short (or not a number).
    #[error("{flag} must be at least 0.05")]
    TooShort {
        /// The flag.
        flag: &'static str,
    },
    /// The address cannot be listened on.
    #[error("cannot listen on {address}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The listener's own address cannot be read.
    #[error(transparent)]
    Address(std::io::Error),
    /// Serving failed.
    #[error("the directory stopped")]
    Stopped(#[source] std::io::Error),
}

impl DirectoryArgs {
    /// The options these flags describe.
    ///
    /// # Errors
    /// [`DirectoryError::TooShort`] for a period under 0.05 s.
    pub fn options(&self) -> Result<DirectoryOptions, DirectoryError> {
        let secs = |value: f64, flag: &'static str| {
            if value.is_finite() && value >= 0.05 {
                Ok(Duration::from_secs_f64(value))
            } else {
                Err(DirectoryError::TooShort { flag })
            }
        };
        Ok(DirectoryOptions {
            check_every: secs(self.check_secs, "--check-secs")?,
            ttl: secs(self.ttl_secs, "--ttl-secs")?,
            max_projects: self.max_projects,
            ..DirectoryOptions::default()
        })
    }
}

/// `dipla-server directory`: binds, prints `dipla-server: directory listening on
/// http://ADDR` on stderr and serves until Ctrl-C.
///
/// # Errors
/// A [`DirectoryError`] when the flags are wrong, the address cannot be listened on, or
/// serving fails.
pub async fn run(args: DirectoryArgs) -> Result<(), DirectoryError> {
    let options = args.options()?;
    let listener =
        TcpListener::bind(args.listen)
            .await
            .map_err(|source| DirectoryError::Listen {
                address: args.listen,
                source,
            })?;
    let addr = listener.local_addr().map_err(DirectoryError::Address)?;
    eprintln!("dipla-server: directory listening on http://{addr}");
    tokio::select! {
        served = serve(listener, options) => served.map_err(DirectoryError::Stopped)?,
        _ = tokio::signal::ctrl_c() => eprintln!("dipla-server: directory interrupted"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn announcement(name: &str, port: u16) -> Announcement {
        Announcement {
            name: name.into(),
            description: "Squares of numbers".into(),
            url: format!("ws://127.0.0.1:{port}/ws"),
            health: format!("http://127.0.0.1:{port}/health"),
            wants_workers: 4,
            workers: 1,
        }
    }

    #[test]
    fn validation_names_the_field_at_fault() {
        let good = announcement("squares-1.0_beta", 7070);
        assert_eq!(good.validate(), Ok(()));
        let field = |change: &dyn Fn(&mut Announcement)| {
            let mut a = good.clone();
            change(&mut a);
            a.validate().map_err(|invalid| invalid.field)
        };
        assert_eq!(field(&|a| a.name = String::new()), Err("name"));
        assert_eq!(field(&|a| a.name = "x".repeat(65)), Err("name"));
        assert_eq!(field(&|a| a.name = "x".repeat(64)), Ok(()));
        assert_eq!(field(&|a| a.name = "two words".into()), Err("name"));
        assert_eq!(field(&|a| a.name = "<b>".into()), Err("name"));
        assert_eq!(field(&|a| a.name = "é".into()), Err("name"));
        assert_eq!(field(&|a| a.description = "é".repeat(500)), Ok(()));
        assert_eq!(
            field(&|a| a.description = "x".repeat(501)),
            Err("description")
        );
        assert_eq!(
            field(&|a| a.description = "red \x1b[31m".into()),
            Err("description")
        );
        assert_eq!(
            field(&|a| a.url = "http://127.0.0.1:7070/ws".into()),
            Err("url")
        );
        assert_eq!(field(&|a| a.url = "not a url".into()), Err("url"));
        assert_eq!(field(&|a| a.url = "wss://127.0.0.1/ws".into()), Ok(()));
        assert_eq!(
            field(&|a| a.url = "ws://user:pw@127.0.0.1:7070/ws".into()),
            Err("url")
        );
        assert_eq!(
            field(&|a| a.health = "ws://127.0.0.1:7070/health".into()),
            Err("health")
        );
        assert_eq!(
            field(&|a| a.health = "https://127.0.0.1:7070/health".into()),
            Ok(())
        );
        assert_eq!(
            field(&|a| a.health = "http://10.0.0.1/health".into()),
            Err("health"),
            "the health URL must be on the worker URL's host"
        );
        assert_eq!(
            field(&|a| a.url = format!("ws://h/{}", "x".repeat(MAX_URL_CHARS))),
            Err("url")
        );
        assert_eq!(
            field(&|a| a.url = "ws://127.0.0.1:7070/w\ns".into()),
            Err("url"),
            "a line break the URL parser would drop still forges a log line"
        );
        assert_eq!(
            field(&|a| a.health = "http://127.0.0.1:7070/\u{202E}health".into()),
            Err("health")
        );
        let message = good
            .clone()
            .tap(|a| a.name = "a b".into())
            .validate()
            .unwrap_err()
            .to_string();
        assert!(message.starts_with("name: "), "{message}");
    }

    trait Tap: Sized {
        fn tap(self, change: impl FnOnce(&mut Self)) -> Self;
    }
    impl Tap for Announcement {
        fn tap(mut self, change: impl FnOnce(&mut Self)) -> Self {
            change(&mut self);
            self
        }
    }

    #[test]
    fn announcements_expire_unless_renewed() {
        let ttl = Duration::from_secs(90);
        let mut projects = Projects::new(ttl, 100);
        let t0 = Instant::now();
        let squares = announcement("squares", 1);
        assert_eq!(projects.announce(squares.clone(), t0), Ok(Announced::New));
        let due = projects.due(true);
        assert_eq!(due.len(), 1);
        projects.record(&due[0], true, t0);
        assert_eq!(projects.listed(t0).len(), 1);
        assert_eq!(projects.listed(t0 + ttl).len(), 1);
        assert!(
            projects
                .listed(t0 + ttl + Duration::from_secs(1))
                .is_empty()
        );

        // Renewing keeps it, and refreshes what it says.
        let renewed = squares.clone().tap(|a| a.workers = 7);
        assert_eq!(
            projects.announce(renewed, t0 + Duration::from_secs(60)),
            Ok(Announced::Renewed)
        );
        let later = t0 + ttl + Duration::from_secs(30);
        let listed = projects.listed(later);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].workers, 7);
        assert!(projects.due(true).is_empty(), "still checked");

        projects.prune(t0 + Duration::from_secs(200));
        assert!(projects.entries.is_empty());
    }

    #[test]
    fn only_healthy_projects_are_listed_sorted_by_name() {
        let mut projects = Projects::new(Duration::from_secs(90), 100);
        let t0 = Instant::now();
        for (name, port) in [("zeta", 1), ("alpha", 2), ("mid", 3), ("unchecked", 4)] {
            projects.announce(announcement(name, port), t0).unwrap();
        }
        for due in projects.due(false) {
            match due.name.as_str() {
                "unchecked" => {}
                "mid" => projects.record(&due, false, t0),
                _ => projects.record(&due, true, t0),
            }
        }
        let later = t0 + Duration::from_millis(1500);
        let listed = projects.listed(later);
        let names: Vec<_> = listed.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["alpha", "zeta"]);
        assert!((listed[0].last_checked_secs_ago - 1.5).abs() < 1e-9);
        assert_eq!(listed[0].url, "ws://127.0.0.1:2/ws");
        assert_eq!(listed[0].wants_workers, 4);
    }

    #[test]
    fn a_name_changes_hands_only_once_its_holder_fails() {
        let mut projects = Projects::new(Duration::from_secs(90), 100);
        let t0 = Instant::now();
        projects.announce(announcement("squares", 1), t0).unwrap();
        let other = announcement("squares", 2);
        // Not checked yet: the holder keeps it.
        assert_eq!(
            projects.announce(other.clone(), t0),
            Err(Refused::Taken {
                url: "ws://127.0.0.1:1/ws".into()
            })
        );
        let due = projects.due(false).remove(0);
        projects.record(&due, true, t0);
        assert!(
            projects.announce(other.clone(), t0).is_err(),
            "healthy holder"
        );
        projects.record(&due, false, t0);
        assert_eq!(
            projects.announce(other.clone(), t0),
            Ok(Announced::Replaced)
        );
        assert_eq!(projects.entries["squares"].announcement.url, other.url);
        // The old check's outcome, arriving late, does not apply to the new holder.
        projects.record(&due, true, t0);
        assert!(projects.listed(t0).is_empty());
        // An expired holder gives its name up too.
        let t1 = t0 + Duration::from_secs(91);
        assert_eq!(
            projects.announce(announcement("squares", 3), t1),
            Ok(Announced::Replaced)
        );
    }

    #[test]
    fn the_directory_holds_at_most_max_projects() {
        let mut projects = Projects::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        projects.announce(announcement("a", 1), t0).unwrap();
        projects.announce(announcement("b", 2), t0).unwrap();
        assert_eq!(
            projects.announce(announcement("c", 3), t0),
            Err(Refused::Full)
        );
        // Renewals still pass, and expired entries make room.
        assert_eq!(
            projects.announce(announcement("a", 1), t0),
            Ok(Announced::Renewed)
        );
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(
            projects.announce(announcement("c", 3), t1),
            Ok(Announced::New)
        );
        assert_eq!(projects.entries.len(), 1);
    }

    #[test]
    fn the_page_escapes_what_projects_say() {
        let listing = Listing {
            name: "squares".into(),
            description: "<script>alert('x')</script> & more".into(),
            url: "ws://127.0.0.1:1/ws?a=\"b\"".into(),
            wants_workers: 0,
            workers: 3,
            last_checked_secs_ago: 2.0,
        };
        let page = render_page(&[listing]);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"));
        assert!(page.contains("ws://127.0.0.1:1/ws?a=&quot;b&quot;"));
        assert!(page.contains("<td class=n>any</td>"));
        assert!(render_page(&[]).contains("No project is listed now."));
    }

    /// A health endpoint on a free loopback port answering 200 or 500 as `healthy` says.
    async fn health_endpoint(healthy: Arc<AtomicBool>) -> u16 {
        let app = axum::Router::new().route(
            "/health",
            axum::routing::get(move || {
                let healthy = healthy.load(Ordering::SeqCst);
                async move {
                    if healthy {
                        StatusCode::OK
                    } else {
                        StatusCode::INTERNAL_SERVER_ERROR
                    }
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        port
    }

    /// Asks `directory` for its listing until `wanted` holds of it, for at most 5 s.
    async fn wait_listing(
        client: &reqwest::Client,
        directory: &str,
        wanted: impl Fn(&[Listing]) -> bool,
    ) -> Vec<Listing> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let listed: Vec<Listing> = client
                .get(format!("{directory}/api/projects"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if wanted(&listed) {
                return listed;
            }
            assert!(Instant::now() < deadline, "still listed: {listed:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn the_directory_lists_only_projects_answering_their_health_check() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let directory = format!("http://{}", listener.local_addr().unwrap());
        let options = DirectoryOptions {
            check_every: Duration::from_millis(100),
            // Generous: a slow check on a loaded machine must not read as a failed one.
            check_timeout: Duration::from_secs(5),
            ..DirectoryOptions::default()
        };
        let served = tokio::spawn(serve(listener, options));
        let client = reqwest::Client::new();

        let healthy = Arc::new(AtomicBool::new(true));
        let port = health_endpoint(healthy.clone()).await;
        let sick = Arc::new(AtomicBool::new(false));
        let sick_port = health_endpoint(sick.clone()).await;
        // A port nothing listens on: its check fails to connect.
        let dead_port = {
            let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            socket.local_addr().unwrap().port()
        };
        for (name, port) in [("squares", port), ("sick", sick_port), ("gone", dead_port)] {
            let response = client
                .post(format!("{directory}/api/projects"))
                .json(&announcement(name, port))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{name}");
        }
        let listed = wait_listing(&client, &directory, |l| !l.is_empty()).await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].name, "squares");
        assert_eq!(listed[0].url, format!("ws://127.0.0.1:{port}/ws"));

        // It goes when its health check fails, and comes back when it answers again.
        healthy.store(false, Ordering::SeqCst);
        wait_listing(&client, &directory, |l| l.is_empty()).await;
        healthy.store(true, Ordering::SeqCst);
        sick.store(true, Ordering::SeqCst);
        let listed = wait_listing(&client, &directory, |l| l.len() == 2).await;
        let names: Vec<_> = listed.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["sick", "squares"]);

        // The page shows them.
        let page = client.get(&directory).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let page = page.text().await.unwrap();
        assert!(page.contains("<td>squares</td>"), "{page}");
        assert!(!page.contains("<td>gone</td>"), "{page}");

        // Bad input: 400 naming the field; a live project's name is not for the taking.
        let post = |body: String| {
            client
                .post(format!("{directory}/api/projects"))
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        let bad = serde_json::to_string(&announcement("a b", port)).unwrap();
        let response = post(bad).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.text().await.unwrap().contains("name"));
        let response = post(r#"{"name": "x", "url": "ws://h/ws"}"#.into())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.text().await.unwrap().contains("health"));
        let response = post("{".into()).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let huge = announcement("huge", port).tap(|a| a.description = "x".repeat(MAX_BODY_BYTES));
        let response = post(serde_json::to_string(&huge).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let thief = announcement("squares", sick_port);
        let response = post(serde_json::to_string(&thief).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert!(response.text().await.unwrap().contains("squares"));

        served.abort();
    }
}
