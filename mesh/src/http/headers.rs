//! Header rules of a proxy: hop-by-hop headers removed, the mesh's own headers never
//! taken from a client, `x-forwarded-for`/`forwarded` added as configured, and the
//! answers the mesh makes itself — plain HTTP or, for gRPC callers, a trailers-only
//! gRPC status.
//!
//! Pure functions over header maps; no I/O.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::pool::Body;

/// The header in which a source mesh tells the destination mesh who the client is
/// (`ip:port`). Only meshes send it: it is removed from every request a client sends.
pub const SOURCE_HEADER: HeaderName = HeaderName::from_static("causeway-source");

/// Which header tells an application who called it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    /// None is added.
    None,
    /// `x-forwarded-for: <client>` appended (the de-facto standard).
    #[default]
    XForwardedFor,
    /// `forwarded: for=<client>` appended (RFC 7239).
    Forwarded,
}

impl std::str::FromStr for ForwardedHeader {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(ForwardedHeader::None),
            "x-forwarded-for" => Ok(ForwardedHeader::XForwardedFor),
            "forwarded" => Ok(ForwardedHeader::Forwarded),
            other => Err(format!(
                "`{other}` is not a forwarded header mode; use none, x-forwarded-for or forwarded"
            )),
        }
    }
}

/// Whether the request asks to leave HTTP/1.1 for another protocol (WebSocket…).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::UPGRADE)
        && headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Whether the request is gRPC (its errors are then answered as gRPC statuses).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// Removes the headers that belong to one hop (RFC 9110 §7.6.1), with those the
/// message's own `Connection` header names — except `te: trailers`, which gRPC needs
/// end to end, and, for an upgrade, `connection: upgrade` and `upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let te_trailers = headers
        .get(http::header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    let upgrade_value = headers.get(http::header::UPGRADE).cloned();
    let named: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
    if te_trailers {
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
    if upgrade && let Some(value) = upgrade_value {
        headers.insert(http::header::UPGRADE, value);
        headers.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("upgrade"),
        );
    }
}

/// Removes every `causeway-*` header: only meshes speak them, to each other.
pub fn strip_mesh_headers(headers: &mut HeaderMap) {
    let ours: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("causeway-"))
        .cloned()
        .collect();
    for name in ours {
        headers.remove(name);
    }
}

/// Appends the client to the forwarded header `mode` names.
pub fn add_forwarded(headers: &mut HeaderMap, mode: ForwardedHeader, client: IpAddr) {
    let (name, value) = match mode {
        ForwardedHeader::None => return,
        ForwardedHeader::XForwardedFor => (
            HeaderName::from_static("x-forwarded-for"),
            client.to_string(),
        ),
        ForwardedHeader::Forwarded => (
            http::header::FORWARDED,
            match client {
                IpAddr::V4(ip) => format!("for={ip}"),
                IpAddr::V6(ip) => format!("for=\"[{ip}]\""),
            },
        ),
    };
    let joined = match headers.get(&name).and_then(|v| v.to_str().ok()) {
        Some(existing) => format!("{existing}, {value}"),
        None => value,
    };
    if let Ok(value) = HeaderValue::from_str(&joined) {
        headers.insert(name, value);
    }
}

/// The gRPC status that stands for an HTTP status the mesh answers with (the mapping
/// of gRPC's HTTP-to-gRPC status table, with 429 as RESOURCE_EXHAUSTED).
pub fn grpc_code(status: StatusCode) -> u32 {
    match status.as_u16() {
        400 => 13,       // INTERNAL
        401 => 16,       // UNAUTHENTICATED
        403 => 7,        // PERMISSION_DENIED
        404 => 12,       // UNIMPLEMENTED
        429 => 8,        // RESOURCE_EXHAUSTED
        504 => 4,        // DEADLINE_EXCEEDED
        502..=503 => 14, // UNAVAILABLE
        _ => 2,          // UNKNOWN
    }
}

/// `grpc-message` is percent-encoded: everything outside printable ASCII, and `%`.
fn grpc_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An answer the mesh makes itself: `status` with `message` as text, or for a gRPC
/// caller a trailers-only response with the matching `grpc-status`. `retry_after`
/// becomes `Retry-After` in whole seconds, rounded up.
pub fn answer(
    status: StatusCode,
    message: &str,
    grpc: bool,
    retry_after: Option<Duration>,
) -> Response<Body> {
    let mut response = if grpc {
        let mut response = Response::new(empty());
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", HeaderValue::from(grpc_code(status)));
        if let Ok(value) = HeaderValue::from_str(&grpc_message(message)) {
            headers.insert("grpc-message", value);
        }
        response
    } else {
        let mut response = Response::new(
            Full::new(Bytes::from(format!("{message}\n")))
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        response
    };
    if let Some(wait) = retry_after {
        let seconds = wait.as_millis().div_ceil(1000).max(1);
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds as u64));
    }
    response
}

/// An empty body.
pub fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn hop_by_hop_headers_go_and_te_trailers_stays() {
        let mut map = headers(&[
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers, deflate"),
            ("upgrade", "websocket"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut map, false);
        assert!(map.get("x-private").is_none());
        assert!(map.get("keep-alive").is_none());
        assert!(map.get("upgrade").is_none());
        assert_eq!(map.get("te").unwrap(), "trailers");
        assert_eq!(map.get("x-kept").unwrap(), "yes");
    }

    #[test]
    fn an_upgrade_keeps_its_upgrade_headers() {
        let mut map = headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade(&map));
        strip_hop_by_hop(&mut map, true);
        assert_eq!(map.get("upgrade").unwrap(), "websocket");
        assert_eq!(map.get("connection").unwrap(), "upgrade");
    }

    #[test]
    fn clients_cannot_send_mesh_headers() {
        let mut map = headers(&[("causeway-source", "10.0.0.1:1"), ("x-a", "b")]);
        strip_mesh_headers(&mut map);
        assert!(map.get("causeway-source").is_none());
        assert!(map.get("x-a").is_some());
    }

    #[test]
    fn forwarded_headers_append() {
        let mut map = headers(&[("x-forwarded-for", "192.0.2.1")]);
        add_forwarded(
            &mut map,
            ForwardedHeader::XForwardedFor,
            "10.0.0.2".parse().unwrap(),
        );
        assert_eq!(map.get("x-forwarded-for").unwrap(), "192.0.2.1, 10.0.0.2");
        let mut map = HeaderMap::new();
        add_forwarded(
            &mut map,
            ForwardedHeader::Forwarded,
            "2001:db8::1".parse().unwrap(),
        );
        assert_eq!(map.get("forwarded").unwrap(), "for=\"[2001:db8::1]\"");
        let mut map = HeaderMap::new();
        add_forwarded(&mut map, ForwardedHeader::None, "10.0.0.2".parse().unwrap());
        assert!(map.is_empty());
    }

    #[test]
    fn grpc_callers_get_grpc_statuses() {
        let response = answer(
            StatusCode::TOO_MANY_REQUESTS,
            "over the limit: 100%",
            true,
            Some(Duration::from_millis(1500)),
        );
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "8");
        assert_eq!(response.headers()["grpc-message"], "over the limit: 100%25");
        assert_eq!(response.headers()["retry-after"], "2");
        let plain = answer(StatusCode::SERVICE_UNAVAILABLE, "down", false, None);
        assert_eq!(plain.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(plain.headers().get("grpc-status").is_none());
    }
}
