//! Who may drive the simulator from where, and a trace of every request.
//!
//! The control API changes the world with one unauthenticated POST, so a web page the
//! developer visits must not be able to send one (docs/security.md "Browsers"):
//! - the control API and the live page answer only to the names the server listens as
//!   (`Host`), which stops DNS rebinding: a page on `evil.example` that re-resolves its name to
//!   127.0.0.1 still sends `Host: evil.example:5985`;
//! - a state change (any method but GET, HEAD, OPTIONS) is refused when it carries a foreign
//!   `Origin`, or a body that is not `application/json` (an HTML form can send `text/plain`
//!   cross-origin without a preflight; it cannot send `application/json`);
//! - WS-Management is not held to `Host` (real WinRM does not check it and clients may reach
//!   it under any name), but a request with an `Origin` header is refused: no WinRM client
//!   sends one, every browser does.
//!
//! The same middleware logs every request at debug level, so a refused password leaves a trace.

use crate::app::HostCtx;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

/// The address a client can reach a listener at: 127.0.0.1 for one bound to 0.0.0.0, [::1]
/// for one bound to [::] (an unspecified address in a URL reaches nothing on most systems).
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// The middleware of every listener: the checks above, then the request, then its log line.
pub async fn guard(State(ctx): State<HostCtx>, req: Request, next: Next) -> Response<Body> {
    let refused = refusal(&ctx, req.method(), req.uri().path(), req.headers());
    // The log line's fields are gathered only when it will be written: decoding the
    // credentials and copying the path and host cost a few percent of a request.
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return match refused {
            Some(r) => r,
            None => next.run(req).await,
        };
    }
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let host = header_text(req.headers(), header::HOST).to_string();
    let auth = auth_of(req.headers());
    let resp = match refused {
        Some(r) => r,
        None => next.run(req).await,
    };
    tracing::debug!(
        %method,
        path,
        host,
        status = resp.status().as_u16(),
        auth,
        auth_ok = resp.status() != StatusCode::UNAUTHORIZED,
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

/// Which credentials a request offered, without the secret: `none`, `basic user=NAME`,
/// `bearer`, `token` or the scheme's name.
fn auth_of(headers: &HeaderMap) -> String {
    if headers.contains_key("x-replica-token") {
        return "token".into();
    }
    let value = header_text(headers, header::AUTHORIZATION);
    if value.is_empty() {
        return "none".into();
    }
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        let user = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| t.split_once(':').map(|(u, _)| u.to_string()));
        return match user {
            // The user name only, and cut short: the log is not a place for client text.
            Some(u) => format!("basic user={}", u.chars().take(64).collect::<String>()),
            None => "basic (undecodable)".into(),
        };
    }
    scheme
        .chars()
        .take(32)
        .collect::<String>()
        .to_ascii_lowercase()
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn refuse(status: StatusCode, msg: String) -> Response<Body> {
    (status, axum::Json(json!({ "error": msg }))).into_response()
}

/// `/_replica/...` and `/worlds/NAME/_replica/...`: the control API and the live page.
fn is_control(path: &str) -> bool {
    path.starts_with("/_replica/")
        || path
            .strip_prefix("/worlds/")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(_, rest)| rest.starts_with("_replica/"))
}

/// The scheme and port of this listener, from the URL the server publishes for it.
fn listener_of(ctx: &HostCtx) -> Option<(String, u16)> {
    let urls = ctx.app.host_urls.read().ok()?;
    let url = urls.get(&ctx.host)?;
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let port = authority.rsplit_once(':')?.1.parse().ok()?;
    Some((scheme.to_string(), port))
}

/// Splits a `Host` value into a lower-case name (IPv6 without brackets) and a port.
fn split_host(value: &str, default_port: u16) -> Option<(String, u16)> {
    let value = value.trim();
    let (name, port) = if let Some(v6) = value.strip_prefix('[') {
        let (name, after) = v6.split_once(']')?;
        match after.strip_prefix(':') {
            Some(p) => (name, p.parse().ok()?),
            None if after.is_empty() => (name, default_port),
            None => return None,
        }
    } else {
        match value.rsplit_once(':') {
            Some((name, p)) => (name, p.parse().ok()?),
            None => (value, default_port),
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    (!name.is_empty()).then_some((name, port))
}

pub fn refusal(
    ctx: &HostCtx,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<Response<Body>> {
    let origin = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    if !is_control(path) {
        return match origin {
            Some(o) if path.ends_with("/wsman") => Some(refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "WS-Management from a web page (Origin `{o}`) is refused: WinRM clients send no Origin"
                ),
            )),
            _ => None,
        };
    }
    let (scheme, port) = listener_of(ctx)?;
    let default_port = if scheme == "https" { 443 } else { 80 };
    let listen = ctx.app.listen.ip();
    // A request without Host (HTTP/1.0) cannot come from a browser: nothing to check.
    if let Some(value) = headers.get(header::HOST) {
        let text = value.to_str().unwrap_or_default();
        let ok = listen.is_unspecified()
            || split_host(text, default_port).is_some_and(|(name, p)| {
                p == port
                    && (name == "localhost"
                        || name == "127.0.0.1"
                        || name == "::1"
                        || name.parse::<IpAddr>().is_ok_and(|ip| ip == listen))
            });
        if !ok {
            let own = SocketAddr::new(listen, port);
            return Some(refuse(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "Host `{text}` is not a name this simulator listens as ({own}, localhost:{port}, 127.0.0.1:{port} or [::1]:{port}); refused against DNS rebinding (listen on 0.0.0.0 to accept any name)"
                ),
            ));
        }
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    if let Some(o) = origin {
        // Same origin: the page was served by this listener under the name the request used.
        let own = format!("{scheme}://{}", header_text(headers, header::HOST));
        if !o.eq_ignore_ascii_case(&own) {
            return Some(refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "a {method} from another origin (`{o}`) is refused: the control API changes state only for same-origin pages and non-browser clients"
                ),
            ));
        }
    }
    let has_body = header_text(headers, header::CONTENT_LENGTH)
        .trim()
        .parse::<u64>()
        .map_or(headers.contains_key(header::TRANSFER_ENCODING), |n| n > 0);
    if has_body {
        let ct = header_text(headers, header::CONTENT_TYPE);
        let media = ct.split(';').next().unwrap_or_default().trim();
        if !media.eq_ignore_ascii_case("application/json") {
            let shown = if ct.is_empty() { "none" } else { ct };
            return Some(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "a {method} with a body needs Content-Type: application/json (got {shown}); e.g. curl -H 'Content-Type: application/json' -d '{{...}}'"
                ),
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_values_split_into_name_and_port() {
        assert_eq!(
            split_host("LocalHost:7000", 80),
            Some(("localhost".into(), 7000))
        );
        assert_eq!(split_host("[::1]:5985", 80), Some(("::1".into(), 5985)));
        assert_eq!(split_host("[::1]", 443), Some(("::1".into(), 443)));
        assert_eq!(
            split_host("example.com.", 80),
            Some(("example.com".into(), 80))
        );
        assert_eq!(split_host("a:b", 80), None);
        assert_eq!(split_host("[::1]x", 80), None);
    }

    #[test]
    fn unspecified_addresses_are_shown_as_loopback() {
        let a: SocketAddr = "0.0.0.0:5985".parse().unwrap();
        assert_eq!(reachable(a).to_string(), "127.0.0.1:5985");
        let b: SocketAddr = "[::]:5985".parse().unwrap();
        assert_eq!(reachable(b).to_string(), "[::1]:5985");
        let c: SocketAddr = "10.1.2.3:5985".parse().unwrap();
        assert_eq!(reachable(c), c);
    }
}
