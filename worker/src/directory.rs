//! Finding a project in a project directory (`dipla-server directory`): `dipla-worker
//! --directory URL` lists the projects it lists ([`list`], [`table`]), and with `--project
//! NAME` joins that project's server ([`find`]).
//!
//! The directory lists only projects whose server answers its health check, as JSON at
//! `GET URL/api/projects`: an array of `{name, description, url, wants_workers, workers,
//! last_checked_secs_ago}` sorted by name. What it says is not trusted: the answer is
//! capped in size, URLs other than `ws://` and `wss://` are refused, and control characters
//! are not printed.

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

/// The largest directory answer read.
const MAX_ANSWER_BYTES: usize = 8 << 20;
/// How long asking the directory may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// A project a directory lists.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Project {
    /// Its name (what `--project` gives).
    pub name: String,
    /// What it computes.
    #[serde(default)]
    pub description: String,
    /// The WebSocket URL its workers connect to.
    pub url: String,
    /// How many workers it wants (0: as many as come).
    #[serde(default)]
    pub wants_workers: u32,
    /// How many workers it had when it last announced itself.
    #[serde(default)]
    pub workers: u32,
}

/// Why a project could not be found in a directory.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The directory's URL is not an `http://` or `https://` one.
    #[error("--directory {0}: expected an http:// or https:// URL")]
    BadUrl(String),
    /// The directory could not be asked, or gave no project list.
    #[error("cannot read the project directory at {url}: {reason}")]
    Unreadable {
        /// The URL asked.
        url: String,
        /// Why.
        reason: String,
    },
    /// The directory does not list the project asked for.
    #[error("the directory lists no project named {name:?}; {}", listed_names(.listed))]
    UnknownProject {
        /// The name asked for.
        name: String,
        /// The names it lists.
        listed: Vec<String>,
    },
    /// The directory gave the project a URL a worker cannot join.
    #[error("the directory gives project {name:?} the URL {url:?}, not a ws:// or wss:// one")]
    BadProjectUrl {
        /// The project.
        name: String,
        /// Its URL.
        url: String,
    },
}

/// "it lists: a, b" or "it lists none now".
fn listed_names(names: &[String]) -> String {
    if names.is_empty() {
        "it lists none now".to_owned()
    } else {
        let names: Vec<String> = names.iter().map(|name| printable(name)).collect();
        format!("it lists: {}", names.join(", "))
    }
}

/// `GET DIRECTORY/api/projects`.
fn projects_url(directory: &str) -> Result<Url, DirectoryError> {
    let bad = || DirectoryError::BadUrl(directory.to_owned());
    let mut url = Url::parse(directory).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(bad());
    }
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    url.join("api/projects").map_err(|_| bad())
}

/// The projects the directory at `directory` (such as `https://directory.example.org`)
/// lists now.
pub async fn list(directory: &str) -> Result<Vec<Project>, DirectoryError> {
    let url = projects_url(directory)?;
    let unreadable = |reason: String| DirectoryError::Unreadable {
        url: url.to_string(),
        reason,
    };
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("dipla-worker/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| unreadable(chain(&error)))?;
    let mut response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|error| unreadable(chain(&error)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(unreadable(format!("it answered {status}")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| unreadable(chain(&error)))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(unreadable(format!(
                "its answer is larger than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .map_err(|error| unreadable(format!("not a list of projects: {error}")))
}

/// An error and its sources, `a: b: c`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(error) = source {
        text.push_str(&format!(": {error}"));
        source = error.source();
    }
    text
}

/// The project named `name` among `projects`, with a URL a worker can join.
pub fn find<'a>(projects: &'a [Project], name: &str) -> Result<&'a Project, DirectoryError> {
    let Some(project) = projects.iter().find(|project| project.name == name) else {
        return Err(DirectoryError::UnknownProject {
            name: name.to_owned(),
            listed: projects
                .iter()
                .map(|project| project.name.clone())
                .collect(),
        });
    };
    let joinable = Url::parse(&project.url)
        .is_ok_and(|url| matches!(url.scheme(), "ws" | "wss") && url.has_host());
    if !joinable {
        return Err(DirectoryError::BadProjectUrl {
            name: project.name.clone(),
            url: project.url.clone(),
        });
    }
    Ok(project)
}

/// `text` with control characters (terminal escapes) replaced.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// The projects as a table, one line each: name, workers wanted, workers connected, URL
/// and description.
pub fn table(projects: &[Project]) -> String {
    let rows: Vec<[String; 5]> = projects
        .iter()
        .map(|project| {
            [
                printable(&project.name),
                match project.wants_workers {
                    0 => "any".to_owned(),
                    n => n.to_string(),
                },
                project.workers.to_string(),
                printable(&project.url),
                printable(&project.description),
            ]
        })
        .collect();
    let header = ["NAME", "WANTS", "WORKERS", "URL", "DESCRIPTION"].map(str::to_owned);
    let mut widths = [0; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let [name, wants, workers, url, description] = row;
        let line = format!(
            "{name:<w0$}  {wants:>w1$}  {workers:>w2$}  {url:<w3$}  {description}",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(name: &str, url: &str) -> Project {
        Project {
            name: name.into(),
            description: "Squares of numbers".into(),
            url: url.into(),
            wants_workers: 0,
            workers: 2,
        }
    }

    #[test]
    fn the_listing_url_sits_under_the_directory() {
        let url = |dir: &str| projects_url(dir).map(|url| url.to_string());
        assert_eq!(
            url("http://127.0.0.1:7080").unwrap(),
            "http://127.0.0.1:7080/api/projects"
        );
        assert_eq!(
            url("https://example.org/dipla/").unwrap(),
            "https://example.org/dipla/api/projects"
        );
        assert_eq!(
            url("https://example.org/dipla").unwrap(),
            "https://example.org/dipla/api/projects"
        );
        assert!(matches!(
            url("ws://example.org"),
            Err(DirectoryError::BadUrl(_))
        ));
        assert!(url("example.org").is_err());
    }

    #[test]
    fn find_names_the_projects_it_could_have_joined() {
        let projects = [
            project("pi", "ws://127.0.0.1:1/ws"),
            project("squares", "wss://example.org/ws"),
            project("sneaky", "file:///etc/passwd"),
        ];
        assert_eq!(
            find(&projects, "squares").unwrap().url,
            "wss://example.org/ws"
        );
        let error = find(&projects, "nope").unwrap_err().to_string();
        assert!(error.contains("\"nope\""), "{error}");
        assert!(error.contains("it lists: pi, squares, sneaky"), "{error}");
        assert!(matches!(
            find(&projects, "sneaky"),
            Err(DirectoryError::BadProjectUrl { .. })
        ));
        let error = find(&[], "pi").unwrap_err().to_string();
        assert!(error.contains("it lists none now"), "{error}");
    }

    #[test]
    fn the_table_lines_up_and_prints_no_escapes() {
        let mut evil = project("evil", "ws://h/ws");
        evil.description = "\x1b[2Jgotcha".into();
        evil.wants_workers = 12;
        let table = table(&[project("squares", "ws://127.0.0.1:7070/ws"), evil]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("NAME     WANTS  WORKERS  URL"),
            "{table}"
        );
        assert!(
            lines[1].starts_with("squares    any        2  ws://127.0.0.1:7070/ws  Squares"),
            "{table}"
        );
        assert!(lines[2].contains("   12  "), "{table}");
        assert!(!table.contains('\x1b'), "{table}");
    }
}
