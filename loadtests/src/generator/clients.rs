//! One connection of the load generator for each protocol, and what a call on it came
//! to. A call is one request and its whole answer: an HTTP/1.1 or HTTP/2 `GET`, a gRPC
//! unary call, a payload written to a TCP echo and read back, a UDP datagram and its
//! echo. The endpoint that answered is read from the echo app's answer (its pod name).
//!
//! Connections talk to the target they are given and nothing else; every call has the
//! deadline of [`CallSpec::timeout`].

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};

use super::Protocol;
use crate::echo::{Answer, grpc, raw};

/// What every call of a run sends.
#[derive(Debug, Clone)]
pub struct CallSpec {
    /// The request path (HTTP), or the gRPC method path.
    pub path: String,
    /// The `Host` header / `:authority` (a Service name when calling through the mesh).
    pub authority: String,
    /// The header that carries the hash key, when the run sends keys.
    pub key_header: Option<HeaderName>,
    /// Payload bytes per call (TCP and UDP echo, gRPC message).
    pub payload: usize,
    /// The deadline of one call, connecting included.
    pub timeout: Duration,
}

impl CallSpec {
    /// A `GET /` with the target address as authority, 64-byte payloads, a 5 s deadline.
    pub fn new(authority: impl Into<String>) -> Self {
        Self {
            path: "/".into(),
            authority: authority.into(),
            key_header: None,
            payload: 64,
            timeout: Duration::from_secs(5),
        }
    }
}

/// What became of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered with success by this endpoint.
    Ok {
        /// The pod that answered (`?` when the answer did not say).
        endpoint: String,
    },
    /// Refused by a rate limit: HTTP 429 or gRPC RESOURCE_EXHAUSTED.
    Limited {
        /// Whether the refusal said when to come back (`Retry-After`; gRPC: always).
        retry_after: bool,
    },
    /// Answered with another error status.
    ErrorStatus,
    /// No answer: refused, reset, timed out, or an answer that is not the echo's.
    Failed,
}

/// A connection to the target, of the run's protocol.
#[derive(Debug)]
pub enum Connection {
    /// HTTP/1.1: one request at a time.
    Http1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    /// HTTP/2 (h2c prior knowledge): requests multiplexed; clones share the connection.
    Http2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
    /// gRPC over h2c.
    Grpc(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
    /// A TCP echo connection and the pod its greeting named.
    Tcp {
        /// The stream, buffered for the greeting line.
        stream: BufReader<TcpStream>,
        /// Who answers on it: a TCP connection is balanced once, when it is made.
        endpoint: String,
    },
    /// A connected UDP socket.
    Udp(UdpSocket),
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot open a {protocol} connection to {addr}: {reason}")]
pub struct ConnectError {
    /// The protocol.
    pub protocol: &'static str,
    /// The target.
    pub addr: SocketAddr,
    /// What went wrong.
    pub reason: String,
}

impl Connection {
    /// Opens a connection of `protocol` to `addr` within `timeout`.
    pub async fn open(
        protocol: Protocol,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Self, ConnectError> {
        let fail = |reason: String| ConnectError {
            protocol: protocol.name(),
            addr,
            reason,
        };
        tokio::time::timeout(timeout, Self::open_inner(protocol, addr))
            .await
            .map_err(|_| fail(format!("not connected within {timeout:?}")))?
            .map_err(fail)
    }

    async fn open_inner(protocol: Protocol, addr: SocketAddr) -> Result<Self, String> {
        if protocol == Protocol::Udp {
            let bind: SocketAddr = if addr.is_ipv4() {
                SocketAddr::from(([127, 0, 0, 1], 0))
            } else {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))
            };
            let socket = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
            socket.connect(addr).await.map_err(|e| e.to_string())?;
            return Ok(Self::Udp(socket));
        }
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        match protocol {
            Protocol::Http1 => {
                let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(|e| format!("HTTP/1.1 handshake: {e}"))?;
                tokio::spawn(connection);
                Ok(Self::Http1(sender))
            }
            Protocol::Http2 => Ok(Self::Http2(h2_handshake(tcp).await?)),
            Protocol::Grpc => Ok(Self::Grpc(h2_handshake(tcp).await?)),
            Protocol::Tcp => {
                let mut stream = BufReader::new(tcp);
                let mut greeting = String::new();
                stream
                    .read_line(&mut greeting)
                    .await
                    .map_err(|e| format!("reading the echo's greeting: {e}"))?;
                let identity = raw::parse_greeting(&greeting).ok_or_else(|| {
                    format!(
                        "expected the echo's greeting line, got {:?}",
                        greeting.chars().take(80).collect::<String>()
                    )
                })?;
                Ok(Self::Tcp {
                    stream,
                    endpoint: identity.pod,
                })
            }
            Protocol::Udp => Err("unreachable: UDP handled above".into()),
        }
    }

    /// Whether the connection can take no more calls (it must be opened again).
    pub fn is_closed(&self) -> bool {
        match self {
            Self::Http1(s) => s.is_closed(),
            Self::Http2(s) => s.is_closed(),
            Self::Grpc(s) => s.is_closed(),
            Self::Tcp { .. } | Self::Udp(_) => false,
        }
    }

    /// A handle for a concurrent call on the same connection (HTTP/2 and gRPC only).
    pub fn multiplexed(&self) -> Option<Self> {
        match self {
            Self::Http2(s) => Some(Self::Http2(s.clone())),
            Self::Grpc(s) => Some(Self::Grpc(s.clone())),
            _ => None,
        }
    }

    /// Makes one call; `key` is the hash key to send, if any. A failed call may leave
    /// the connection unusable: check [`Connection::is_closed`] or open a new one
    /// after [`Outcome::Failed`].
    pub async fn call(&mut self, spec: &CallSpec, key: Option<&str>) -> Outcome {
        match tokio::time::timeout(spec.timeout, self.call_inner(spec, key)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Failed,
        }
    }

    async fn call_inner(&mut self, spec: &CallSpec, key: Option<&str>) -> Outcome {
        match self {
            Self::Http1(sender) => {
                if sender.ready().await.is_err() {
                    return Outcome::Failed;
                }
                let Some(request) = http_request(spec, key, false) else {
                    return Outcome::Failed;
                };
                match sender.send_request(request).await {
                    Ok(response) => http_outcome(response).await,
                    Err(_) => Outcome::Failed,
                }
            }
            Self::Http2(sender) => {
                if sender.ready().await.is_err() {
                    return Outcome::Failed;
                }
                let Some(request) = http_request(spec, key, true) else {
                    return Outcome::Failed;
                };
                match sender.send_request(request).await {
                    Ok(response) => http_outcome(response).await,
                    Err(_) => Outcome::Failed,
                }
            }
            Self::Grpc(sender) => {
                let mut metadata = HeaderMap::new();
                if let (Some(name), Some(key)) = (&spec.key_header, key)
                    && let Ok(value) = HeaderValue::from_str(key)
                {
                    metadata.insert(name.clone(), value);
                }
                let payload = vec![b'x'; spec.payload];
                match grpc::grpc_unary(sender, &spec.authority, &spec.path, &payload, &metadata)
                    .await
                {
                    Ok(reply) if reply.status == grpc::code::OK => Outcome::Ok {
                        endpoint: reply
                            .payload
                            .as_deref()
                            .and_then(endpoint_of)
                            .unwrap_or_else(|| "?".into()),
                    },
                    Ok(reply) if reply.status == grpc::code::RESOURCE_EXHAUSTED => {
                        Outcome::Limited { retry_after: true }
                    }
                    Ok(_) => Outcome::ErrorStatus,
                    Err(_) => Outcome::Failed,
                }
            }
            Self::Tcp { stream, endpoint } => {
                let payload = vec![b'x'; spec.payload.max(1)];
                if stream.get_mut().write_all(&payload).await.is_err() {
                    return Outcome::Failed;
                }
                let mut echoed = vec![0u8; payload.len()];
                match stream.read_exact(&mut echoed).await {
                    Ok(_) if echoed == payload => Outcome::Ok {
                        endpoint: endpoint.clone(),
                    },
                    _ => Outcome::Failed,
                }
            }
            Self::Udp(socket) => {
                let payload = vec![b'x'; spec.payload.max(1)];
                if socket.send(&payload).await.is_err() {
                    return Outcome::Failed;
                }
                let mut reply = vec![0u8; 65_536];
                match socket.recv(&mut reply).await {
                    Ok(n) => match raw::split_udp_reply(&reply[..n]) {
                        Some((pod, echoed)) if echoed == payload.as_slice() => Outcome::Ok {
                            endpoint: pod.to_string(),
                        },
                        _ => Outcome::Failed,
                    },
                    Err(_) => Outcome::Failed,
                }
            }
        }
    }
}

/// An HTTP/2 prior-knowledge (h2c) connection over `tcp`, driven by a task of its own.
async fn h2_handshake<B>(
    tcp: TcpStream,
) -> Result<hyper::client::conn::http2::SendRequest<B>, String>
where
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

fn http_request(
    spec: &CallSpec,
    key: Option<&str>,
    absolute: bool,
) -> Option<http::Request<Empty<Bytes>>> {
    // HTTP/2 carries the authority in the URI (`:authority`), HTTP/1.1 in `Host`.
    let uri = if absolute {
        format!("http://{}{}", spec.authority, spec.path)
    } else {
        spec.path.clone()
    };
    let mut builder = http::Request::get(uri);
    if !absolute {
        builder = builder.header(http::header::HOST, &spec.authority);
    }
    if let (Some(name), Some(key)) = (&spec.key_header, key) {
        builder = builder.header(name, key);
    }
    builder.body(Empty::new()).ok()
}

async fn http_outcome(response: http::Response<hyper::body::Incoming>) -> Outcome {
    let status = response.status();
    let retry_after = response.headers().contains_key(http::header::RETRY_AFTER);
    let Ok(body) = response.into_body().collect().await else {
        return Outcome::Failed;
    };
    match status.as_u16() {
        200..=299 => match endpoint_of(&body.to_bytes()) {
            Some(endpoint) => Outcome::Ok { endpoint },
            // Success from something that is not the echo app: not what was asked.
            None => Outcome::Failed,
        },
        429 => Outcome::Limited { retry_after },
        _ => Outcome::ErrorStatus,
    }
}

/// The pod named by an echo answer (HTTP body or gRPC message).
fn endpoint_of(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Answer>(body)
        .ok()
        .map(|answer| answer.identity.pod)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_answers_name_their_pod_and_nothing_else_does() {
        let answer = br#"{"pod":"p1","node":"n","site":"s","method":"GET","path":"/","host":"h"}"#;
        assert_eq!(endpoint_of(answer).as_deref(), Some("p1"));
        assert_eq!(endpoint_of(b"<html>proxy error</html>"), None);
        assert_eq!(endpoint_of(b""), None);
    }

    #[test]
    fn requests_carry_the_key_and_the_authority_where_each_version_wants_it() {
        let mut spec = CallSpec::new("echo.bench");
        spec.key_header = Some(HeaderName::from_static("x-user"));
        let h1 = http_request(&spec, Some("k7"), false).expect("request");
        assert_eq!(h1.uri(), "/");
        assert_eq!(h1.headers()["host"], "echo.bench");
        assert_eq!(h1.headers()["x-user"], "k7");
        let h2 = http_request(&spec, None, true).expect("request");
        assert_eq!(h2.uri(), "http://echo.bench/");
        assert!(!h2.headers().contains_key("x-user"));
    }
}
