//! How a Service port is proxied: the protocol its Service declares, and, for ports
//! that declare none, what a client's first bytes look like.
//!
//! [`classify`] reads a port's `appProtocol` and name, as Kubernetes and Istio define
//! them; [`sniff`] looks at the first bytes a client sent on a port left to
//! [`PortProtocol::Detect`]. Both are pure functions of their arguments: this module
//! reads no sockets, keeps no state and may not touch the network, the store or the
//! clock (the caller waits at most [`SNIFF_TIMEOUT`] for the bytes it passes in).

use std::time::Duration;

/// How the mesh proxies one Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortProtocol {
    /// HTTP/1.1 requests, proxied one by one.
    Http1,
    /// HTTP/2 without TLS (prior knowledge).
    H2c,
    /// gRPC: HTTP/2 with gRPC status codes in trailers.
    Grpc,
    /// Opaque bytes, copied both ways.
    Tcp,
    /// Nothing declared: sniff the client's first bytes.
    Detect,
}

/// How long the mesh waits for a client's first bytes on a [`PortProtocol::Detect`]
/// port before it treats the connection as opaque TCP. Server-first protocols (MySQL,
/// SMTP, …) send nothing until the server greets them, so waiting longer only delays
/// them; 100 ms is well above the time an HTTP client takes to write its request after
/// connecting.
pub const SNIFF_TIMEOUT: Duration = Duration::from_millis(100);

/// The most bytes [`sniff`] looks at: an HTTP/1 request line longer than this is treated
/// as not HTTP, so the proxy never buffers more than this before deciding.
pub const MAX_SNIFF: usize = 8192;

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The request methods of RFC 9110 §9 and PATCH (RFC 5789), each followed by the space
/// that ends it in a request line.
const METHODS: &[&[u8]] = &[
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"CONNECT ",
    b"OPTIONS ",
    b"TRACE ",
    b"PATCH ",
];

/// The protocol of a port from its `appProtocol` and its name.
///
/// `appProtocol` wins when it is one the mesh knows (case-insensitively): `http`,
/// `h2c`/`kubernetes.io/h2c`/`http2`, `grpc`, `grpc-web` (HTTP/1), `tcp`,
/// `kubernetes.io/ws` (HTTP/1, the upgrade is proxied as HTTP) and `kubernetes.io/wss`
/// (TCP: the TLS inside is opaque). An unknown `appProtocol` falls through to the name.
/// The name is read as Istio reads it: `http`, `http2`, `grpc`, `grpc-web` or `tcp`,
/// alone or followed by `-` or `_` and anything (`http2-api` is HTTP/2, not HTTP/1).
/// Anything else is [`PortProtocol::Detect`].
pub fn classify(app_protocol: Option<&str>, port_name: Option<&str>) -> PortProtocol {
    if let Some(declared) = app_protocol.and_then(from_app_protocol) {
        return declared;
    }
    port_name
        .and_then(from_port_name)
        .unwrap_or(PortProtocol::Detect)
}

fn from_app_protocol(app_protocol: &str) -> Option<PortProtocol> {
    let p = app_protocol.trim().to_ascii_lowercase();
    match p.as_str() {
        "http" | "kubernetes.io/ws" | "grpc-web" => Some(PortProtocol::Http1),
        "h2c" | "kubernetes.io/h2c" | "http2" => Some(PortProtocol::H2c),
        "grpc" => Some(PortProtocol::Grpc),
        "tcp" | "kubernetes.io/wss" => Some(PortProtocol::Tcp),
        _ => None,
    }
}

fn from_port_name(name: &str) -> Option<PortProtocol> {
    let name = name.to_ascii_lowercase();
    // Longer names first where one is a prefix of another: `grpc-web` before `grpc`.
    const PREFIXES: &[(&str, PortProtocol)] = &[
        ("grpc-web", PortProtocol::Http1),
        ("http2", PortProtocol::H2c),
        ("http", PortProtocol::Http1),
        ("grpc", PortProtocol::Grpc),
        ("tcp", PortProtocol::Tcp),
    ];
    PREFIXES
        .iter()
        .find(|(proto, _)| has_protocol_prefix(&name, proto))
        .map(|(_, protocol)| *protocol)
}

/// `name` is `proto`, or `proto` followed by `-` or `_` and anything.
fn has_protocol_prefix(name: &str, proto: &str) -> bool {
    match name.strip_prefix(proto) {
        Some(rest) => rest.is_empty() || rest.starts_with('-') || rest.starts_with('_'),
        None => false,
    }
}

/// What a client's first bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// An HTTP/1.0 or HTTP/1.1 request line.
    Http1,
    /// The HTTP/2 connection preface.
    H2,
    /// Neither: proxy the connection as opaque TCP.
    Other,
    /// Still consistent with HTTP/1 or HTTP/2: read more (until [`SNIFF_TIMEOUT`]).
    NeedMore,
}

/// What `first_bytes`, the start of what a client sent, are.
///
/// [`Sniffed::H2`] when they start with the HTTP/2 preface; [`Sniffed::Http1`] when
/// they start with a request line: a known method, a space, a non-empty request-target
/// without control characters, and ` HTTP/1.0` or ` HTTP/1.1` before the first CRLF.
/// [`Sniffed::NeedMore`] while they are a strict prefix of either, with no CRLF yet
/// and fewer than [`MAX_SNIFF`] bytes; [`Sniffed::Other`] otherwise.
///
/// Only the first [`MAX_SNIFF`] bytes are read, so the answer is monotone: once it is
/// not `NeedMore`, more bytes never change it.
pub fn sniff(first_bytes: &[u8]) -> Sniffed {
    let seen = &first_bytes[..first_bytes.len().min(MAX_SNIFF)];
    match sniff_unbounded(seen) {
        Sniffed::NeedMore if first_bytes.len() >= MAX_SNIFF => Sniffed::Other,
        answer => answer,
    }
}

fn sniff_unbounded(bytes: &[u8]) -> Sniffed {
    if bytes.starts_with(H2_PREFACE) {
        return Sniffed::H2;
    }
    if H2_PREFACE.starts_with(bytes) {
        // Also the empty input: nothing seen yet.
        return Sniffed::NeedMore;
    }
    sniff_http1(bytes)
}

fn sniff_http1(bytes: &[u8]) -> Sniffed {
    let Some(method) = METHODS.iter().find(|m| {
        let n = m.len().min(bytes.len());
        bytes[..n] == m[..n]
    }) else {
        return Sniffed::Other;
    };
    if bytes.len() < method.len() {
        return Sniffed::NeedMore;
    }
    // The rest of the line: request-target, a space, the version, CRLF.
    let rest = &bytes[method.len()..];
    for (i, &b) in rest.iter().enumerate() {
        if b == b'\r' {
            return match rest.get(i + 1) {
                None => Sniffed::NeedMore,
                Some(b'\n') => request_line_end(&rest[..i]),
                Some(_) => Sniffed::Other,
            };
        }
        if b.is_ascii_control() {
            return Sniffed::Other;
        }
    }
    Sniffed::NeedMore
}

/// Whether the request line after the method, `target_and_version`, is a non-empty
/// request-target followed by ` HTTP/1.0` or ` HTTP/1.1`.
fn request_line_end(target_and_version: &[u8]) -> Sniffed {
    let is_request_line = [&b" HTTP/1.1"[..], &b" HTTP/1.0"[..]]
        .iter()
        .any(|version| {
            target_and_version
                .strip_suffix(*version)
                .is_some_and(|target| !target.is_empty())
        });
    if is_request_line {
        Sniffed::Http1
    } else {
        Sniffed::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn app_protocol_decides_when_known() {
        let cases: &[(&str, PortProtocol)] = &[
            ("http", PortProtocol::Http1),
            ("HTTP", PortProtocol::Http1),
            ("kubernetes.io/h2c", PortProtocol::H2c),
            ("h2c", PortProtocol::H2c),
            ("http2", PortProtocol::H2c),
            ("grpc", PortProtocol::Grpc),
            ("gRPC", PortProtocol::Grpc),
            ("grpc-web", PortProtocol::Http1),
            ("tcp", PortProtocol::Tcp),
            ("kubernetes.io/ws", PortProtocol::Http1),
            ("kubernetes.io/wss", PortProtocol::Tcp),
        ];
        for (app, want) in cases {
            // The port name says something else: appProtocol must win.
            assert_eq!(
                classify(Some(app), Some("tcp-other")),
                *want,
                "appProtocol {app}"
            );
            assert_eq!(
                classify(Some(app), Some("http")),
                *want,
                "appProtocol {app}"
            );
            assert_eq!(classify(Some(app), None), *want, "appProtocol {app}");
        }
    }

    #[test]
    fn unknown_app_protocol_falls_through_to_the_name() {
        assert_eq!(
            classify(Some("example.com/custom"), Some("grpc-api")),
            PortProtocol::Grpc
        );
        assert_eq!(classify(Some("mysql"), Some("web")), PortProtocol::Detect);
        assert_eq!(classify(Some(""), Some("http")), PortProtocol::Http1);
    }

    #[test]
    fn port_names_are_read_as_istio_reads_them() {
        let cases: &[(&str, PortProtocol)] = &[
            ("http", PortProtocol::Http1),
            ("http-web", PortProtocol::Http1),
            ("http_web", PortProtocol::Http1),
            ("HTTP-Web", PortProtocol::Http1),
            ("http2", PortProtocol::H2c),
            ("http2-x", PortProtocol::H2c),
            ("http2_x", PortProtocol::H2c),
            ("grpc", PortProtocol::Grpc),
            ("grpc-api", PortProtocol::Grpc),
            ("grpc_api", PortProtocol::Grpc),
            ("grpc-web", PortProtocol::Http1),
            ("grpc-web-ui", PortProtocol::Http1),
            ("grpc-webby", PortProtocol::Grpc),
            ("tcp", PortProtocol::Tcp),
            ("tcp-db", PortProtocol::Tcp),
            // Not a protocol prefix: detect.
            ("https", PortProtocol::Detect),
            ("https-web", PortProtocol::Detect),
            ("httpbin", PortProtocol::Detect),
            ("http3", PortProtocol::Detect),
            ("grpcx", PortProtocol::Detect),
            ("tcpdump", PortProtocol::Detect),
            ("web-http", PortProtocol::Detect),
            ("", PortProtocol::Detect),
        ];
        for (name, want) in cases {
            assert_eq!(classify(None, Some(name)), *want, "port name {name:?}");
        }
        assert_eq!(classify(None, None), PortProtocol::Detect);
    }

    #[test]
    fn real_request_lines_are_http1() {
        for line in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET /index.html?q=1 HTTP/1.0\r\n",
            b"HEAD /health HTTP/1.1\r\n",
            b"POST /api/v1/items HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
            b"PUT /x HTTP/1.1\r\n",
            b"DELETE /x/1 HTTP/1.1\r\n",
            b"CONNECT example.com:443 HTTP/1.1\r\n",
            b"OPTIONS * HTTP/1.1\r\n",
            b"TRACE / HTTP/1.1\r\n",
            b"PATCH /x HTTP/1.1\r\n",
            b"GET http://example.com/ HTTP/1.1\r\n",
        ] {
            assert_eq!(sniff(line), Sniffed::Http1, "{}", line.escape_ascii());
        }
    }

    #[test]
    fn partial_request_lines_need_more() {
        let line = b"GET /path HTTP/1.1\r\n";
        for n in 0..line.len() {
            assert_eq!(
                sniff(&line[..n]),
                Sniffed::NeedMore,
                "{}",
                line[..n].escape_ascii()
            );
        }
        assert_eq!(sniff(line), Sniffed::Http1);
        assert_eq!(sniff(b"P"), Sniffed::NeedMore);
        assert_eq!(sniff(b"PA"), Sniffed::NeedMore);
    }

    #[test]
    fn malformed_request_lines_are_other() {
        for bytes in [
            &b"get / HTTP/1.1\r\n"[..],
            b"GET\t/ HTTP/1.1\r\n",
            b"GETS / HTTP/1.1\r\n",
            b"FETCH / HTTP/1.1\r\n",
            b"GET  HTTP/1.1\r\n",
            b"GET HTTP/1.1\r\n",
            b"GET / HTTP/2.0\r\n",
            b"GET / HTTP/1.1\n",
            b"GET / HTTP/1.1\rX",
            b"GET /a\x00b HTTP/1.1\r\n",
            b"GET /a\x7fb HTTP/1.1\r\n",
            b"GET / HTTP/1.1 \r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n",
        ] {
            assert_eq!(sniff(bytes), Sniffed::Other, "{}", bytes.escape_ascii());
        }
    }

    #[test]
    fn the_h2_preface_is_h2_and_its_prefixes_need_more() {
        assert_eq!(sniff(H2_PREFACE), Sniffed::H2);
        let mut with_settings = H2_PREFACE.to_vec();
        with_settings.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        assert_eq!(sniff(&with_settings), Sniffed::H2);
        for n in 0..H2_PREFACE.len() {
            assert_eq!(sniff(&H2_PREFACE[..n]), Sniffed::NeedMore, "{n} bytes");
        }
        assert_eq!(sniff(b"PRI * HTTP/2.0\r\n\r\nXX"), Sniffed::Other);
        assert_eq!(sniff(b"PRX"), Sniffed::Other);
    }

    #[test]
    fn binary_and_tls_are_other() {
        // A TLS ClientHello record starts with 0x16 0x03 0x01.
        assert_eq!(sniff(&[0x16, 0x03, 0x01, 0x02, 0x00]), Sniffed::Other);
        assert_eq!(sniff(&[0x16]), Sniffed::Other);
        assert_eq!(sniff(&[0x00, 0xff, 0x13, 0x37]), Sniffed::Other);
        // A PostgreSQL startup message.
        assert_eq!(sniff(&[0, 0, 0, 8, 4, 210, 22, 47]), Sniffed::Other);
    }

    #[test]
    fn a_line_longer_than_the_limit_is_other() {
        let mut long = b"GET /".to_vec();
        long.resize(MAX_SNIFF - 1, b'a');
        assert_eq!(sniff(&long), Sniffed::NeedMore);
        long.push(b'a');
        assert_eq!(sniff(&long), Sniffed::Other);
        long.extend_from_slice(b" HTTP/1.1\r\n");
        assert_eq!(sniff(&long), Sniffed::Other, "the limit is final");
    }

    /// Byte strings near the interesting cases, and arbitrary ones.
    fn sniff_input() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            "(GET|POST|PATCH|PRI|PUT) [ -~]{0,12}( HTTP/1\\.[01])?(\r\n)?(\r|\n|x)?"
                .prop_map(String::into_bytes),
            (
                0..=H2_PREFACE.len(),
                proptest::collection::vec(any::<u8>(), 0..8)
            )
                .prop_map(|(n, tail)| {
                    let mut v = H2_PREFACE[..n].to_vec();
                    v.extend(tail);
                    v
                }),
        ]
    }

    proptest! {
        #[test]
        fn sniff_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = sniff(&bytes);
        }

        #[test]
        fn sniff_is_monotone(bytes in sniff_input()) {
            let full = sniff(&bytes);
            for n in 0..=bytes.len() {
                let early = sniff(&bytes[..n]);
                if early != Sniffed::NeedMore {
                    prop_assert_eq!(early, full, "prefix {}", bytes[..n].escape_ascii());
                }
            }
        }
    }
}
