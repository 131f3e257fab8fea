//! The server URL a volunteer gives (`--server`, `DIPLA_WORKER_SERVER`): the forms people
//! write, the WebSocket URL the worker connects to, and what is wrong with one that cannot be
//! used.
//!
//! Accepted: `ws://HOST:PORT/ws` and `wss://HOST:PORT/ws` as they are (any path, for a server
//! behind a proxy), `ws://HOST:PORT` and `wss://HOST:PORT` (no path: `/ws` is added), and the
//! server's web address `http://HOST:PORT[/PATH]` or `https://...` (the one `dipla-server
//! submit` takes: `ws://` or `wss://` with `/ws` appended to its path).

use reqwest::Url;

/// An example of the URL a worker takes, for messages.
const EXAMPLE: &str = "ws://HOST:PORT/ws";

/// Why a server URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Nothing was given.
    #[error("the server URL is empty: give the URL the server prints, such as {EXAMPLE}")]
    Empty,
    /// No `scheme://`.
    #[error("`{url}` has no scheme: the worker URL is {suggest}")]
    NoScheme {
        /// What was given.
        url: String,
        /// The URL meant, as far as it can be told.
        suggest: String,
    },
    /// A scheme a worker cannot connect with.
    #[error(
        "`{url}`: a worker cannot connect with {scheme}://; the worker URL is {suggest} \
         (ws://HOST:PORT/ws, or wss:// with TLS; the server's http:// or https:// address is \
         understood too)"
    )]
    Scheme {
        /// What was given.
        url: String,
        /// Its scheme.
        scheme: String,
        /// The URL meant, as far as it can be told.
        suggest: String,
    },
    /// Not a URL at all.
    #[error("`{url}` is not a usable URL ({reason}): the worker URL looks like {EXAMPLE}")]
    Malformed {
        /// What was given.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// The WebSocket URL a worker connects to for `given` (see the module's documentation).
///
/// # Errors
/// When `given` is empty, has no scheme or another scheme than ws, wss, http or https, or is
/// not a URL with a host.
pub fn worker_url(given: &str) -> Result<String, UrlError> {
    let given = given.trim();
    if given.is_empty() {
        return Err(UrlError::Empty);
    }
    let Some((scheme, rest)) = given.split_once("://") else {
        let host = given.split('/').next().unwrap_or_default();
        let suggest = if host.is_empty() {
            EXAMPLE.to_owned()
        } else {
            format!("ws://{host}/ws")
        };
        return Err(UrlError::NoScheme {
            url: given.to_owned(),
            suggest,
        });
    };
    let scheme = scheme.to_ascii_lowercase();
    let secure = match scheme.as_str() {
        "ws" | "http" => false,
        "wss" | "https" => true,
        _ => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let suggest = if host.is_empty() {
                EXAMPLE.to_owned()
            } else {
                format!("ws://{host}/ws")
            };
            return Err(UrlError::Scheme {
                url: given.to_owned(),
                scheme,
                suggest,
            });
        }
    };
    let malformed = |reason: String| UrlError::Malformed {
        url: given.to_owned(),
        reason,
    };
    let mut url = Url::parse(given).map_err(|e| malformed(e.to_string()))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(malformed("it names no host".to_owned()));
    }
    if url.fragment().is_some() {
        return Err(malformed("a WebSocket URL has no #fragment".to_owned()));
    }
    let websocket = scheme.starts_with("ws");
    let bare = !rest.contains(['/', '?']);
    if !websocket || bare {
        let path = url.path().trim_end_matches('/');
        let path = if path.ends_with("/ws") {
            path.to_owned()
        } else {
            format!("{path}/ws")
        };
        url.set_path(&path);
    }
    url.set_scheme(if secure { "wss" } else { "ws" })
        .map_err(|()| malformed("its scheme cannot be changed to ws".to_owned()))?;
    Ok(url.into())
}

/// The worker URL at `url`'s host and port: `ws://HOST:PORT/ws` (or `wss://`), for messages
/// that say what the right URL looks like. `None` when `url` is not a URL.
pub fn endpoint_of(url: &str) -> Option<String> {
    let mut url = Url::parse(url).ok()?;
    url.set_path("/ws");
    url.set_query(None);
    url.set_fragment(None);
    Some(url.into())
}

/// `HOST:PORT` of `url`, the address a worker connects to (the port the scheme implies when
/// none is written). `None` when `url` is not a URL with a host.
pub fn address_of(url: &str) -> Option<String> {
    let url = Url::parse(url).ok()?;
    let host = url.host_str()?.to_owned();
    let port = url.port_or_known_default()?;
    Some(format!("{host}:{port}"))
}

/// The host name of `url`, as a TLS certificate must name it.
pub fn host_of(url: &str) -> Option<String> {
    Some(Url::parse(url).ok()?.host_str()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accepted_form_gives_the_websocket_url() {
        for (given, want) in [
            ("ws://h:7070/ws", "ws://h:7070/ws"),
            ("ws://h:7070", "ws://h:7070/ws"),
            ("WS://h:7070", "ws://h:7070/ws"),
            ("wss://example.org", "wss://example.org/ws"),
            (
                "wss://example.org:443/dipla/ws",
                "wss://example.org/dipla/ws",
            ),
            ("http://h:7070", "ws://h:7070/ws"),
            ("http://h:7070/", "ws://h:7070/ws"),
            ("http://h:7070/ws", "ws://h:7070/ws"),
            ("https://example.org/dipla/", "wss://example.org/dipla/ws"),
            ("  http://127.0.0.1:7070  ", "ws://127.0.0.1:7070/ws"),
            ("http://[::1]:7070", "ws://[::1]:7070/ws"),
        ] {
            assert_eq!(worker_url(given).as_deref(), Ok(want), "{given}");
        }
    }

    #[test]
    fn a_path_given_with_ws_is_kept_for_the_server_to_judge() {
        // A proxy may serve the worker endpoint anywhere, the root included; a wrong one is
        // told apart by what the server answers (see `failure`).
        assert_eq!(worker_url("ws://h:7070/").as_deref(), Ok("ws://h:7070/"));
        assert_eq!(
            worker_url("wss://h/workers?x=1").as_deref(),
            Ok("wss://h/workers?x=1")
        );
    }

    #[test]
    fn each_mistake_says_what_the_url_should_be() {
        let error = worker_url("ftp://h:7070/ws").unwrap_err();
        assert!(matches!(error, UrlError::Scheme { ref scheme, .. } if scheme == "ftp"));
        assert!(error.to_string().contains("ws://h:7070/ws"), "{error}");

        let error = worker_url("h:7070").unwrap_err();
        assert!(matches!(error, UrlError::NoScheme { .. }), "{error}");
        assert!(error.to_string().contains("ws://h:7070/ws"), "{error}");

        assert_eq!(worker_url("   "), Err(UrlError::Empty));
        for bad in ["ws://", "ws://:7070/ws", "http://h:99999", "ws://h/ws#x"] {
            let error = worker_url(bad).unwrap_err();
            assert!(
                matches!(error, UrlError::Malformed { .. }),
                "{bad}: {error}"
            );
            assert!(error.to_string().contains(EXAMPLE), "{error}");
        }
    }

    #[test]
    fn the_endpoint_and_address_of_a_url() {
        assert_eq!(
            endpoint_of("ws://h:7070/").as_deref(),
            Some("ws://h:7070/ws")
        );
        assert_eq!(endpoint_of("wss://h/x?y").as_deref(), Some("wss://h/ws"));
        assert_eq!(address_of("wss://h/ws").as_deref(), Some("h:443"));
        assert_eq!(
            address_of("ws://127.0.0.1:9/ws").as_deref(),
            Some("127.0.0.1:9")
        );
        assert_eq!(
            host_of("wss://localhost:1/ws").as_deref(),
            Some("localhost")
        );
    }
}
