//! The stream header: the first bytes of every bidirectional stream on a link, and the
//! reply that comes back before any payload flows. A sans-IO codec: it turns bytes into
//! values and back, knows nothing of sockets, and is tested without them.
//!
//! ```text
//! request  = "CW" version:u8 kind:u8 body_len:u16 body
//! reply    = version:u8 status:u8 message_len:u16 message(utf-8)
//! address  = family:u8 (0 none | 4 | 6) ip(0 | 4 | 16 bytes) port:u16   (omitted ip/port for 0)
//! string   = len:u8 utf-8
//! ```
//!
//! All integers are big-endian. The magic lets a receiver refuse garbage at once; the
//! version lets the format grow (a receiver refuses an unknown version with
//! [`Status::UnsupportedVersion`] so the sender can say why). The body length bounds how
//! much is buffered before the header is known to be valid.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The magic bytes that open every request.
pub const MAGIC: [u8; 2] = *b"CW";
/// The version this codec writes and reads.
pub const VERSION: u8 = 1;
/// The largest request body accepted.
pub const MAX_BODY: usize = 4096;
/// The largest request, prefix included.
pub const MAX_REQUEST: usize = REQUEST_PREFIX + MAX_BODY;
/// The largest reply message accepted.
pub const MAX_MESSAGE: usize = 1024;
const REQUEST_PREFIX: usize = 6;
const REPLY_PREFIX: usize = 4;

/// What a stream is for, with what the receiving side needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Proxy a TCP connection to an endpoint on the receiving node.
    ProxyTcp(ProxyTarget),
    /// The control-plane sync session.
    ControlSync,
    /// A servicebus request to a path on the receiving node.
    ServiceBus {
        /// The local target the request is for.
        path: String,
    },
    /// Ask a relay to carry a session to `target`.
    RelayConnect {
        /// The node to reach through the relay.
        target: String,
    },
    /// A relay offers a session from `source` (as the relay authenticated it).
    RelayAccept {
        /// The node on the other end.
        source: String,
    },
    /// A UDP flow to an endpoint on the receiving node; its datagrams carry this stream's
    /// id, and datagrams too large for the path travel framed on this stream.
    UdpFlow(ProxyTarget),
    /// HTTP to an endpoint on the receiving node: the stream carries one HTTP/1.1 or
    /// HTTP/2 connection, and the receiving node applies its destination policy to each
    /// request on it before forwarding it to the endpoint.
    ProxyHttp(ProxyTarget),
}

/// An endpoint to proxy to, and who the traffic is for and from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyTarget {
    /// The endpoint (pod IP and port) on the receiving node.
    pub endpoint: SocketAddr,
    /// The service the caller addressed, as `namespace/name:port` (for policy).
    pub service: String,
    /// The original client address, when known.
    pub source: Option<SocketAddr>,
    /// The client workload, as `namespace/pod`, when known.
    pub source_workload: String,
}

impl Request {
    fn kind(&self) -> u8 {
        match self {
            Request::ProxyTcp(_) => 1,
            Request::ControlSync => 2,
            Request::ServiceBus { .. } => 3,
            Request::RelayConnect { .. } => 4,
            Request::RelayAccept { .. } => 5,
            Request::UdpFlow(_) => 6,
            Request::ProxyHttp(_) => 7,
        }
    }

    /// A short name for logs.
    pub fn purpose(&self) -> &'static str {
        match self {
            Request::ProxyTcp(_) => "proxy-tcp",
            Request::ControlSync => "control-sync",
            Request::ServiceBus { .. } => "servicebus",
            Request::RelayConnect { .. } => "relay-connect",
            Request::RelayAccept { .. } => "relay-accept",
            Request::UdpFlow(_) => "udp-flow",
            Request::ProxyHttp(_) => "proxy-http",
        }
    }

    /// Appends the encoded request to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), HeaderError> {
        let start = out.len();
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.kind());
        out.extend_from_slice(&[0, 0]);
        let body_start = out.len();
        match self {
            Request::ProxyTcp(target) | Request::UdpFlow(target) | Request::ProxyHttp(target) => {
                put_address(out, Some(target.endpoint));
                put_string(out, &target.service)?;
                put_address(out, target.source);
                put_string(out, &target.source_workload)?;
            }
            Request::ControlSync => {}
            Request::ServiceBus { path } => put_string(out, path)?,
            Request::RelayConnect { target } => put_string(out, target)?,
            Request::RelayAccept { source } => put_string(out, source)?,
        }
        let body_len = out.len() - body_start;
        let len = u16::try_from(body_len)
            .ok()
            .filter(|l| usize::from(*l) <= MAX_BODY)
            .ok_or(HeaderError::TooLarge { len: body_len })?;
        out[start + 4..start + 6].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// Decodes a request from the front of `buf`: `Ok(None)` when more bytes are needed,
    /// else the request and how many bytes it took.
    pub fn decode(buf: &[u8]) -> Result<Option<(Request, usize)>, HeaderError> {
        if buf.len() >= 2 && buf[..2] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        if buf.len() >= 3 && buf[2] != VERSION {
            return Err(HeaderError::UnsupportedVersion(buf[2]));
        }
        if buf.len() < REQUEST_PREFIX {
            return Ok(None);
        }
        let kind = buf[3];
        let len = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
        if len > MAX_BODY {
            return Err(HeaderError::TooLarge { len });
        }
        let Some(body) = buf.get(REQUEST_PREFIX..REQUEST_PREFIX + len) else {
            return Ok(None);
        };
        let mut r = Reader { buf: body };
        let request = match kind {
            1 | 6 | 7 => {
                let endpoint = r.address()?.ok_or(HeaderError::Malformed(
                    "proxy target has no endpoint address",
                ))?;
                let target = ProxyTarget {
                    endpoint,
                    service: r.string()?,
                    source: r.address()?,
                    source_workload: r.string()?,
                };
                match kind {
                    1 => Request::ProxyTcp(target),
                    6 => Request::UdpFlow(target),
                    _ => Request::ProxyHttp(target),
                }
            }
            2 => Request::ControlSync,
            3 => Request::ServiceBus { path: r.string()? },
            4 => Request::RelayConnect {
                target: r.string()?,
            },
            5 => Request::RelayAccept {
                source: r.string()?,
            },
            other => return Err(HeaderError::UnknownKind(other)),
        };
        if !r.buf.is_empty() {
            return Err(HeaderError::Malformed(
                "bytes left over after the request body",
            ));
        }
        Ok(Some((request, REQUEST_PREFIX + len)))
    }
}

/// The answer to a request, sent before any payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// What happened.
    pub status: Status,
    /// Why, for people (may be empty).
    pub message: String,
}

/// Reply statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Accepted: payload may flow.
    Ok,
    /// Refused by policy or by the receiver's role.
    Refused,
    /// The endpoint is not on the receiving node, or nothing listens there.
    NoEndpoint,
    /// Over a rate limit; try later.
    RateLimited,
    /// The receiver (or a relay) cannot reach the target.
    Unreachable,
    /// The request could not be decoded.
    BadRequest,
    /// The request's header version is not one the receiver speaks.
    UnsupportedVersion,
    /// The receiver is at a limit (streams, flows, queue).
    Overloaded,
}

impl Status {
    fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Refused => 1,
            Status::NoEndpoint => 2,
            Status::RateLimited => 3,
            Status::Unreachable => 4,
            Status::BadRequest => 5,
            Status::UnsupportedVersion => 6,
            Status::Overloaded => 7,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Status::Ok,
            1 => Status::Refused,
            2 => Status::NoEndpoint,
            3 => Status::RateLimited,
            4 => Status::Unreachable,
            5 => Status::BadRequest,
            6 => Status::UnsupportedVersion,
            7 => Status::Overloaded,
            _ => return None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Refused => "refused",
            Status::NoEndpoint => "no such endpoint",
            Status::RateLimited => "rate limited",
            Status::Unreachable => "unreachable",
            Status::BadRequest => "bad request",
            Status::UnsupportedVersion => "unsupported header version",
            Status::Overloaded => "overloaded",
        })
    }
}

impl Reply {
    /// A reply with no message.
    pub fn status(status: Status) -> Self {
        Self {
            status,
            message: String::new(),
        }
    }

    /// Appends the encoded reply to `out`; a message over [`MAX_MESSAGE`] is cut at a
    /// character boundary.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut end = self.message.len().min(MAX_MESSAGE);
        while !self.message.is_char_boundary(end) {
            end -= 1;
        }
        let message = &self.message.as_bytes()[..end];
        out.push(VERSION);
        out.push(self.status.code());
        out.extend_from_slice(&(message.len() as u16).to_be_bytes());
        out.extend_from_slice(message);
    }

    /// Decodes a reply from the front of `buf`, as [`Request::decode`] does.
    pub fn decode(buf: &[u8]) -> Result<Option<(Reply, usize)>, HeaderError> {
        if let Some(&version) = buf.first()
            && version != VERSION
        {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        if buf.len() < REPLY_PREFIX {
            return Ok(None);
        }
        let status = Status::from_code(buf[1]).ok_or(HeaderError::UnknownStatus(buf[1]))?;
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if len > MAX_MESSAGE {
            return Err(HeaderError::TooLarge { len });
        }
        let Some(message) = buf.get(REPLY_PREFIX..REPLY_PREFIX + len) else {
            return Ok(None);
        };
        let message = std::str::from_utf8(message)
            .map_err(|_| HeaderError::Malformed("reply message is not UTF-8"))?
            .to_string();
        Ok(Some((Reply { status, message }, REPLY_PREFIX + len)))
    }
}

/// Why a header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The stream does not start with `CW`: not a Causeway stream.
    #[error("not a Causeway stream header (bad magic)")]
    BadMagic,
    /// A version this codec does not speak.
    #[error("unsupported header version {0}; this node speaks version {VERSION}")]
    UnsupportedVersion(u8),
    /// A request kind this codec does not know.
    #[error("unknown request kind {0}")]
    UnknownKind(u8),
    /// A reply status this codec does not know.
    #[error("unknown reply status {0}")]
    UnknownStatus(u8),
    /// A body or message over the limit.
    #[error("header of {len} bytes is over the limit")]
    TooLarge {
        /// The length announced or needed.
        len: usize,
    },
    /// A string field over 255 bytes.
    #[error("field of {len} bytes is longer than 255")]
    FieldTooLong {
        /// Its length.
        len: usize,
    },
    /// The stream ended before the header did.
    #[error("the stream ended inside the header")]
    Truncated,
    /// A header whose fields do not parse.
    #[error("malformed header: {0}")]
    Malformed(&'static str),
}

fn put_string(out: &mut Vec<u8>, s: &str) -> Result<(), HeaderError> {
    let len = u8::try_from(s.len()).map_err(|_| HeaderError::FieldTooLong { len: s.len() })?;
    out.push(len);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_address(out: &mut Vec<u8>, address: Option<SocketAddr>) {
    match address {
        None => out.push(0),
        Some(SocketAddr::V4(a)) => {
            out.push(4);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        Some(SocketAddr::V6(a)) => {
            out.push(6);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
    }
}

/// Reads fields from a body known to be complete.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HeaderError> {
        if self.buf.len() < n {
            return Err(HeaderError::Malformed(
                "a field runs past the end of the body",
            ));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, HeaderError> {
        Ok(self.take(1)?[0])
    }

    fn port(&mut self) -> Result<u16, HeaderError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn string(&mut self) -> Result<String, HeaderError> {
        let len = usize::from(self.u8()?);
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|_| HeaderError::Malformed("a string field is not UTF-8"))
    }

    fn address(&mut self) -> Result<Option<SocketAddr>, HeaderError> {
        let ip = match self.u8()? {
            0 => return Ok(None),
            4 => {
                let b = self.take(4)?;
                IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
            6 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(self.take(16)?);
                IpAddr::V6(Ipv6Addr::from(octets))
            }
            _ => return Err(HeaderError::Malformed("unknown address family")),
        };
        Ok(Some(SocketAddr::new(ip, self.port()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn target() -> ProxyTarget {
        ProxyTarget {
            endpoint: "10.1.2.3:8080".parse().unwrap(),
            service: "shop/reviews:9080".into(),
            source: Some("[fd00::5]:40000".parse().unwrap()),
            source_workload: "shop/web-7d9f".into(),
        }
    }

    fn roundtrip(request: Request) {
        let mut bytes = Vec::new();
        request.encode(&mut bytes).unwrap();
        assert_eq!(
            Request::decode(&bytes),
            Ok(Some((request.clone(), bytes.len())))
        );
        // Every proper prefix asks for more, never errs or panics.
        for cut in 0..bytes.len() {
            assert_eq!(Request::decode(&bytes[..cut]), Ok(None), "prefix of {cut}");
        }
        // Payload that follows is left alone.
        bytes.extend_from_slice(b"payload");
        assert_eq!(Request::decode(&bytes).unwrap().unwrap().1, bytes.len() - 7);
    }

    #[test]
    fn every_request_round_trips() {
        roundtrip(Request::ProxyTcp(target()));
        roundtrip(Request::UdpFlow(ProxyTarget {
            source: None,
            source_workload: String::new(),
            ..target()
        }));
        roundtrip(Request::ProxyHttp(target()));
        roundtrip(Request::ControlSync);
        roundtrip(Request::ServiceBus {
            path: "/devices/x".into(),
        });
        roundtrip(Request::RelayConnect {
            target: "edge-2".into(),
        });
        roundtrip(Request::RelayAccept {
            source: "edge-1".into(),
        });
    }

    #[test]
    fn the_wire_format_is_what_the_module_says() {
        let mut bytes = Vec::new();
        Request::RelayConnect { target: "b".into() }
            .encode(&mut bytes)
            .unwrap();
        assert_eq!(bytes, [b'C', b'W', 1, 4, 0, 2, 1, b'b']);
        let mut bytes = Vec::new();
        Reply {
            status: Status::RateLimited,
            message: "slow".into(),
        }
        .encode(&mut bytes);
        assert_eq!(bytes, [1, 3, 0, 4, b's', b'l', b'o', b'w']);
    }

    #[test]
    fn bad_headers_are_refused_with_the_reason() {
        assert_eq!(
            Request::decode(b"GET / HTTP/1.1"),
            Err(HeaderError::BadMagic)
        );
        assert_eq!(
            Request::decode(b"CW\x02"),
            Err(HeaderError::UnsupportedVersion(2))
        );
        assert_eq!(
            Request::decode(b"CW\x01\x09\x00\x00"),
            Err(HeaderError::UnknownKind(9))
        );
        assert_eq!(
            Request::decode(b"CW\x01\x01\xff\xff"),
            Err(HeaderError::TooLarge { len: 65535 })
        );
        assert_eq!(
            Request::decode(b"CW\x01\x02\x00\x01x"),
            Err(HeaderError::Malformed(
                "bytes left over after the request body"
            ))
        );
        assert_eq!(
            Request::decode(b"CW\x01\x03\x00\x02\x05a"),
            Err(HeaderError::Malformed(
                "a field runs past the end of the body"
            ))
        );
        assert_eq!(
            Request::decode(b"CW\x01\x03\x00\x02\x01\xff"),
            Err(HeaderError::Malformed("a string field is not UTF-8"))
        );
        assert_eq!(
            Request::decode(b"CW\x01\x01\x00\x01\x00"),
            Err(HeaderError::Malformed(
                "proxy target has no endpoint address"
            ))
        );
        let long = Request::ServiceBus {
            path: "x".repeat(256),
        };
        assert_eq!(
            long.encode(&mut Vec::new()),
            Err(HeaderError::FieldTooLong { len: 256 })
        );
    }

    #[test]
    fn replies_round_trip_and_cut_long_messages_at_a_character() {
        for status in [
            Status::Ok,
            Status::Refused,
            Status::NoEndpoint,
            Status::RateLimited,
            Status::Unreachable,
            Status::BadRequest,
            Status::UnsupportedVersion,
            Status::Overloaded,
        ] {
            let reply = Reply {
                status,
                message: format!("{status}"),
            };
            let mut bytes = Vec::new();
            reply.encode(&mut bytes);
            assert_eq!(Reply::decode(&bytes), Ok(Some((reply, bytes.len()))));
        }
        let reply = Reply {
            status: Status::Refused,
            message: "é".repeat(600),
        };
        let mut bytes = Vec::new();
        reply.encode(&mut bytes);
        let (decoded, _) = Reply::decode(&bytes).unwrap().unwrap();
        assert_eq!(decoded.message.len(), 1024);
        assert_eq!(
            Reply::decode(&[1, 99, 0, 0]),
            Err(HeaderError::UnknownStatus(99))
        );
        assert_eq!(Reply::decode(&[7]), Err(HeaderError::UnsupportedVersion(7)));
    }

    fn address() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::from((Ipv6Addr::from(ip), port))),
        ]
    }

    fn proxy_target() -> impl Strategy<Value = ProxyTarget> {
        (
            address(),
            ".{0,60}",
            proptest::option::of(address()),
            ".{0,60}",
        )
            .prop_map(|(endpoint, service, source, source_workload)| ProxyTarget {
                endpoint,
                service,
                source,
                source_workload,
            })
    }

    fn request() -> impl Strategy<Value = Request> {
        prop_oneof![
            proxy_target().prop_map(Request::ProxyTcp),
            proxy_target().prop_map(Request::UdpFlow),
            proxy_target().prop_map(Request::ProxyHttp),
            Just(Request::ControlSync),
            ".{0,60}".prop_map(|path| Request::ServiceBus { path }),
            "[a-z0-9.-]{0,60}".prop_map(|target| Request::RelayConnect { target }),
            "[a-z0-9.-]{0,60}".prop_map(|source| Request::RelayAccept { source }),
        ]
    }

    proptest! {
        #[test]
        fn any_request_round_trips(request in request()) {
            let mut bytes = Vec::new();
            if request.encode(&mut bytes).is_ok() {
                prop_assert_eq!(Request::decode(&bytes), Ok(Some((request, bytes.len()))));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Some((_, used))) = Request::decode(&bytes) {
                prop_assert!(used <= bytes.len());
            }
            if let Ok(Some((_, used))) = Reply::decode(&bytes) {
                prop_assert!(used <= bytes.len());
            }
        }

        #[test]
        fn corrupted_requests_never_panic(request in request(), at in any::<usize>(), byte in any::<u8>()) {
            let mut bytes = Vec::new();
            if request.encode(&mut bytes).is_ok() {
                let i = at % bytes.len();
                bytes[i] = byte;
                let _ = Request::decode(&bytes);
                let _ = Request::decode(&bytes[..i]);
            }
        }
    }
}
