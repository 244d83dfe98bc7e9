//! Small clients the tour, tests and benchmarks use to call a cluster the way a user
//! would: HTTP through a node's proxy (absolute-URI requests), plain HTTP GET, and DNS
//! questions over UDP or TCP. Every call has a deadline.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::echo::Answer;

/// Why a call failed, in words for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CallError(pub String);

fn fail(what: impl std::fmt::Display) -> CallError {
    CallError(what.to_string())
}

/// A response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

/// GETs `url` (`http://host[:port]/path`) through the HTTP proxy at `proxy`.
pub async fn get_via_proxy(
    proxy: SocketAddr,
    url: &str,
    deadline: Duration,
) -> Result<Response, CallError> {
    tokio::time::timeout(deadline, get_via_proxy_inner(proxy, url))
        .await
        .map_err(|_| fail(format!("no answer within {deadline:?}")))?
}

async fn get_via_proxy_inner(proxy: SocketAddr, url: &str) -> Result<Response, CallError> {
    let uri: http::Uri = url.parse().map_err(|e| fail(format!("{url}: {e}")))?;
    let host = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .ok_or_else(|| fail(format!("{url}: no host")))?;
    let tcp = TcpStream::connect(proxy)
        .await
        .map_err(|e| fail(format!("cannot reach the proxy at {proxy}: {e}")))?;
    let request = http::Request::get(uri)
        .header(http::header::HOST, host)
        .body(Empty::<Bytes>::new())
        .map_err(fail)?;
    send(tcp, request).await
}

/// GETs `path` from the HTTP server at `addr`.
pub async fn get(addr: SocketAddr, path: &str, deadline: Duration) -> Result<Response, CallError> {
    let call = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| fail(format!("cannot reach {addr}: {e}")))?;
        let request = http::Request::get(path)
            .header(http::header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())
            .map_err(fail)?;
        send(tcp, request).await
    };
    tokio::time::timeout(deadline, call)
        .await
        .map_err(|_| fail(format!("no answer from {addr} within {deadline:?}")))?
}

async fn send(tcp: TcpStream, request: http::Request<Empty<Bytes>>) -> Result<Response, CallError> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(fail)?;
    let driver = tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(fail)?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(fail)?
        .to_bytes();
    driver.abort();
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Calls an echo app through a proxy and reads who answered.
pub async fn ask_echo(
    proxy: SocketAddr,
    url: &str,
    deadline: Duration,
) -> Result<Answer, CallError> {
    let response = get_via_proxy(proxy, url, deadline).await?;
    if response.status != 200 {
        return Err(fail(format!(
            "HTTP {}: {}",
            response.status,
            response.body.trim()
        )));
    }
    serde_json::from_str(&response.body).map_err(|e| {
        fail(format!(
            "not an echo answer ({e}): {}",
            response.body.trim()
        ))
    })
}

/// Asks `server` one question over UDP (or TCP) and returns the answer.
pub async fn dns_query(
    server: SocketAddr,
    name: &str,
    record_type: RecordType,
    tcp: bool,
    deadline: Duration,
) -> Result<Message, CallError> {
    let name = Name::from_ascii(name).map_err(|e| fail(format!("{name}: {e}")))?;
    let mut message = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name, record_type));
    let bytes = message.to_vec().map_err(fail)?;
    let ask = async {
        let reply = if tcp {
            let mut stream = TcpStream::connect(server).await.map_err(fail)?;
            let len = u16::try_from(bytes.len()).map_err(fail)?;
            stream.write_all(&len.to_be_bytes()).await.map_err(fail)?;
            stream.write_all(&bytes).await.map_err(fail)?;
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).await.map_err(fail)?;
            let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut reply).await.map_err(fail)?;
            reply
        } else {
            let socket = UdpSocket::bind((server.ip(), 0)).await.map_err(fail)?;
            socket.send_to(&bytes, server).await.map_err(fail)?;
            let mut reply = vec![0u8; 4096];
            let (n, _) = socket.recv_from(&mut reply).await.map_err(fail)?;
            reply.truncate(n);
            reply
        };
        Message::from_vec(&reply).map_err(fail)
    };
    tokio::time::timeout(deadline, ask)
        .await
        .map_err(|_| fail(format!("no DNS answer from {server} within {deadline:?}")))?
}
