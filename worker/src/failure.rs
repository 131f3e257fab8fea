//! What a failed attempt to open the WebSocket means, in plain words: a wrong URL (a web
//! page, nothing at that path), a certificate this worker does not trust, or a server that
//! cannot be reached now. The first two are final (trying again meets the same answer); the
//! last is worth another try.

use rustls::CertificateError;
use tokio_tungstenite::tungstenite;

use crate::WorkerError;
use crate::server_url::{address_of, endpoint_of, host_of};
use crate::tls::PinChanged;

/// The worker's error for `error`, met opening a WebSocket to `url`.
pub(crate) fn connect_failure(url: &str, error: tungstenite::Error) -> WorkerError {
    match error {
        tungstenite::Error::Http(response) => {
            http_answer(url, &response).unwrap_or_else(|| WorkerError::Connect {
                url: url.to_owned(),
                source: tungstenite::Error::Http(response),
            })
        }
        tungstenite::Error::Io(io) => match io.get_ref().and_then(|inner| inner.downcast_ref()) {
            Some(tls) => tls_failure(url, tls),
            None => WorkerError::Connect {
                url: url.to_owned(),
                source: tungstenite::Error::Io(io),
            },
        },
        tungstenite::Error::Tls(tungstenite::error::TlsError::Rustls(tls)) => {
            tls_failure(url, &tls)
        }
        tungstenite::Error::Tls(tungstenite::error::TlsError::InvalidDnsName) => WorkerError::Tls {
            url: url.to_owned(),
            problem: "its host is not a name a TLS certificate can be checked against".to_owned(),
        },
        tungstenite::Error::Url(problem) => {
            WorkerError::BadUrl(crate::server_url::UrlError::Malformed {
                url: url.to_owned(),
                reason: problem.to_string(),
            })
        }
        other => WorkerError::Connect {
            url: url.to_owned(),
            source: other,
        },
    }
}

/// What the right URL looks like, for a URL that is not it.
fn advice(url: &str) -> String {
    match endpoint_of(url) {
        Some(right) if right != url => format!("the worker URL is {right}"),
        _ => "the worker URL is the one the server prints when it starts (\"workers connect \
              to ws://HOST:PORT/ws\"); behind a proxy, check that it passes WebSocket \
              upgrades to the server's /ws"
            .to_owned(),
    }
}

/// The error for an HTTP answer instead of a WebSocket, or `None` when it is worth trying
/// again (the server is busy or restarting behind a proxy: 408, 429, 5xx).
fn http_answer(
    url: &str,
    response: &tungstenite::http::Response<Option<Vec<u8>>>,
) -> Option<WorkerError> {
    let status = response.status();
    if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
        return None;
    }
    let code = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("");
    let answer = if status.is_success() {
        format!("it answered with a web page (HTTP {code} {reason}), not a WebSocket")
    } else if status.is_redirection() {
        let to = response
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("elsewhere");
        format!("it redirects (HTTP {code} {reason}) to {to}, which a WebSocket does not follow")
    } else if code == 404 {
        format!("nothing answers at this path (HTTP {code} {reason})")
    } else {
        format!("it refused the WebSocket (HTTP {code} {reason})")
    };
    Some(WorkerError::NotAnEndpoint {
        url: url.to_owned(),
        answer,
        advice: advice(url),
    })
}

/// The error for a TLS failure: all are final.
fn tls_failure(url: &str, error: &rustls::Error) -> WorkerError {
    let host = host_of(url).unwrap_or_else(|| url.to_owned());
    let problem = match error {
        rustls::Error::InvalidCertificate(certificate) => certificate_problem(&host, certificate),
        rustls::Error::InvalidMessage(_) => format!(
            "what answered at {} does not speak TLS; if the server runs without \
             --tls-cert, its URL starts with ws://, not wss://",
            address_of(url).unwrap_or(host)
        ),
        other => format!("the TLS handshake failed: {other}"),
    };
    WorkerError::Tls {
        url: url.to_owned(),
        problem,
    }
}

/// What is wrong with the certificate of `host`, and how to fix it.
fn certificate_problem(host: &str, error: &CertificateError) -> String {
    let fix_trust = "if the server has a self-signed certificate or one from a private CA, \
                     give --ca-cert FILE with that certificate or CA (ask the server's \
                     operator for it)";
    match error {
        CertificateError::UnknownIssuer => format!(
            "the server's certificate for {host} is not signed by an authority this worker \
             trusts (--ca-cert, or else the system's roots): {fix_trust}"
        ),
        CertificateError::BadSignature => format!(
            "the server's certificate for {host} is not signed by an authority this worker \
             trusts (one it trusts has the issuer's name, but the signature does not check \
             with its key): {fix_trust}"
        ),
        CertificateError::NotValidForNameContext { presented, .. } => {
            let names = if presented.is_empty() {
                "no name at all".to_owned()
            } else {
                presented
                    .iter()
                    .map(|name| plain_name(name))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "the server's certificate is for {names}, not {host}, the host in the URL: \
                 connect by a name the certificate has (wss://NAME:PORT/ws), or have the \
                 operator make a certificate for {host}"
            )
        }
        CertificateError::NotValidForName => format!(
            "the server's certificate is not for {host}, the host in the URL: connect by a \
             name the certificate has, or have the operator make one for {host}"
        ),
        CertificateError::ExpiredContext { not_after, .. } => format!(
            "the server's certificate for {host} expired {} ago (check this machine's clock; \
             otherwise the server's operator must renew it)",
            ago(*not_after)
        ),
        CertificateError::Expired => format!(
            "the server's certificate for {host} has expired (check this machine's clock; \
             otherwise the server's operator must renew it)"
        ),
        CertificateError::NotValidYetContext { .. } | CertificateError::NotValidYet => format!(
            "the server's certificate for {host} is not valid yet: check this machine's clock"
        ),
        CertificateError::Revoked => {
            format!("the server's certificate for {host} has been revoked by its authority")
        }
        CertificateError::Other(other) => {
            if let Some(changed) = other.0.downcast_ref::<PinChanged>() {
                return changed.to_string();
            }
            // webpki's own error kinds reach here only as text.
            let kind = format!("{:?}", other.0);
            if kind.contains("CaUsedAsEndEntity") {
                format!(
                    "the server presents a CA certificate as its own for {host} (a self-signed \
                     certificate made with CA:TRUE, as `openssl req -x509` makes them) that \
                     this worker was not given: give exactly that certificate with --ca-cert \
                     FILE (ask the server's operator for it)"
                )
            } else {
                format!("the server's certificate for {host} is refused: {other}")
            }
        }
        other => format!("the server's certificate for {host} is refused: {other}"),
    }
}

/// A certificate's name as webpki writes it (`DnsName("h")`, `IpAddress(1.2.3.4)`), as
/// people write it (`h`, `1.2.3.4`).
fn plain_name(name: &str) -> &str {
    let inner = ["DnsName(", "IpAddress(", "UniformResourceIdentifier("]
        .iter()
        .find_map(|kind| name.strip_prefix(kind)?.strip_suffix(')'));
    inner.map_or(name, |inner| inner.trim_matches('"'))
}

/// How long ago `then` was, roughly.
fn ago(then: rustls_pki_types::UnixTime) -> String {
    let now = rustls_pki_types::UnixTime::now().as_secs();
    let secs = now.saturating_sub(then.as_secs());
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        7200..=172_799 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

/// The likely causes of failing to reach `url` with `error`, in plain words.
pub(crate) fn unreachable_cause(url: &str, error: &WorkerError) -> String {
    let address = address_of(url).unwrap_or_else(|| url.to_owned());
    let WorkerError::Connect { source, .. } = error else {
        return error.to_string();
    };
    let tungstenite::Error::Io(io) = source else {
        return source.to_string();
    };
    use std::io::ErrorKind;
    match io.kind() {
        ErrorKind::ConnectionRefused => format!(
            "nothing listens on {address} (connection refused): is the server running, and is \
             this its port? `dipla-server run` and `serve` print the URL workers connect to \
             when they start"
        ),
        ErrorKind::TimedOut | ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
            format!(
                "no answer from {address} ({io}): the host may be down or unreachable from \
                 here, or a firewall drops the connection"
            )
        }
        _ if io.to_string().contains("lookup") || io.to_string().contains("resolve") => {
            let host = host_of(url).unwrap_or(address);
            format!("the host name {host} does not resolve ({io}): check its spelling")
        }
        _ => format!("{io} (connecting to {address})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16) -> tungstenite::Error {
        let response = tungstenite::http::Response::builder()
            .status(status)
            .header("location", "https://h/ws")
            .body(None)
            .unwrap();
        tungstenite::Error::Http(Box::new(response))
    }

    #[test]
    fn a_web_page_or_a_missing_path_is_a_wrong_url_and_final() {
        let error = connect_failure("ws://h:7070/", answer(200));
        let said = error.to_string();
        assert!(!error.is_retryable());
        assert!(said.contains("not a Dipla worker endpoint"), "{said}");
        assert!(said.contains("the worker URL is ws://h:7070/ws"), "{said}");

        let said = connect_failure("ws://h:7070/x", answer(404)).to_string();
        assert!(said.contains("HTTP 404"), "{said}");
        assert!(said.contains("ws://h:7070/ws"), "{said}");

        let said = connect_failure("ws://h/ws", answer(301)).to_string();
        assert!(said.contains("redirects"), "{said}");
        assert!(said.contains("https://h/ws"), "{said}");
    }

    #[test]
    fn a_busy_or_restarting_server_is_tried_again() {
        for status in [502, 503, 429] {
            assert!(connect_failure("ws://h/ws", answer(status)).is_retryable());
        }
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let error = connect_failure("ws://127.0.0.1:9/ws", tungstenite::Error::Io(refused));
        assert!(error.is_retryable());
        let cause = unreachable_cause("ws://127.0.0.1:9/ws", &error);
        assert!(cause.contains("nothing listens on 127.0.0.1:9"), "{cause}");
    }

    #[test]
    fn certificate_problems_say_what_to_do() {
        let tls = |error: CertificateError| {
            let io = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(error),
            );
            connect_failure("wss://localhost:7070/ws", tungstenite::Error::Io(io))
        };
        for unknown in [
            CertificateError::UnknownIssuer,
            CertificateError::BadSignature,
        ] {
            let unknown = tls(unknown);
            assert!(!unknown.is_retryable());
            let said = unknown.to_string();
            assert!(said.contains("not signed by an authority"), "{said}");
            assert!(said.contains("--ca-cert"), "{said}");
        }

        let name = tls(CertificateError::NotValidForNameContext {
            expected: rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            presented: vec!["DnsName(\"example.org\")".to_owned()],
        })
        .to_string();
        assert!(name.contains("is for example.org, not"), "{name}");
        assert!(name.contains("not localhost"), "{name}");

        let expired = tls(CertificateError::ExpiredContext {
            time: rustls_pki_types::UnixTime::now(),
            not_after: rustls_pki_types::UnixTime::since_unix_epoch(
                std::time::Duration::from_secs(1),
            ),
        })
        .to_string();
        assert!(expired.contains("expired"), "{expired}");
        assert!(expired.contains("days ago"), "{expired}");
    }
}
