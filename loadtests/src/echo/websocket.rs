//! WebSocket (RFC 6455) without a WebSocket library, both ends: the echo app's upgrade
//! and frame echo, and [`websocket_echo`] / [`websocket_echo_once`], a client for tests.
//!
//! The app upgrades an HTTP/1.1 `GET` with `Upgrade: websocket`, `Connection: Upgrade`,
//! `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key` (16 bytes, base64): `101
//! Switching Protocols` with `Sec-WebSocket-Accept` = base64(SHA-1(key + GUID)). A bad
//! key answers 400, another version 426 with `Sec-WebSocket-Version: 13`. Then every
//! client frame (which must be masked) comes back unmasked with the same FIN bit, opcode
//! and payload — text, binary and continuation frames alike, payloads as they are, with
//! no UTF-8 check; a ping is answered with a pong, a pong is dropped, a close is answered
//! with a close carrying the same payload and ends the connection. A protocol error (an
//! unmasked frame, reserved bits, an unknown opcode, a long control frame) is answered
//! with close 1002, a frame over [`MAX_PAYLOAD`] with close 1009. WebSocket over HTTP/2
//! (RFC 8441 extended CONNECT) is not supported.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use super::{ERROR_HEADER, EchoBody, Identity, stamp};

/// The GUID RFC 6455 appends to the key before hashing.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The largest frame payload either end accepts: 16 MiB.
pub const MAX_PAYLOAD: u64 = 16 << 20;
/// The most a handshake response's head may take.
const MAX_HEAD: usize = 16 * 1024;

/// Frame opcodes.
pub mod opcode {
    /// A continuation of a fragmented message.
    pub const CONTINUATION: u8 = 0x0;
    /// A text frame.
    pub const TEXT: u8 = 0x1;
    /// A binary frame.
    pub const BINARY: u8 = 0x2;
    /// Close.
    pub const CLOSE: u8 = 0x8;
    /// Ping.
    pub const PING: u8 = 0x9;
    /// Pong.
    pub const PONG: u8 = 0xA;
}

/// Why a WebSocket exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum WebSocketError {
    /// The connection failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The upgrade did not happen as RFC 6455 says.
    #[error("handshake: {0}")]
    Handshake(String),
    /// The peer broke the framing rules; `code` is the close code that says so.
    #[error("protocol error ({code}): {reason}")]
    Protocol {
        /// The close code: 1002 protocol error, 1009 too big.
        code: u16,
        /// What was wrong.
        reason: String,
    },
    /// The peer closed before answering.
    #[error("the peer closed the connection")]
    Closed,
}

fn protocol(code: u16, reason: impl Into<String>) -> WebSocketError {
    WebSocketError::Protocol {
        code,
        reason: reason.into(),
    }
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)).
pub fn accept_key(key: &str) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(key.as_bytes());
    context.update(GUID.as_bytes());
    BASE64.encode(context.finish())
}

/// One frame, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsFrame {
    /// The final fragment of its message.
    pub fin: bool,
    /// The opcode (see [`opcode`]).
    pub opcode: u8,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Reads one frame; `masked` says whether the sender must mask (a client) or must not (a
/// server). A clean end of stream before the frame starts is [`WebSocketError::Closed`].
pub async fn read_frame<R: AsyncRead + Unpin>(
    io: &mut R,
    masked: bool,
) -> Result<WsFrame, WebSocketError> {
    let mut head = [0u8; 2];
    if let Err(error) = io.read_exact(&mut head).await {
        return Err(match error.kind() {
            std::io::ErrorKind::UnexpectedEof => WebSocketError::Closed,
            _ => error.into(),
        });
    }
    let fin = head[0] & 0x80 != 0;
    if head[0] & 0x70 != 0 {
        return Err(protocol(1002, "reserved bits set"));
    }
    let opcode = head[0] & 0x0F;
    if !matches!(
        opcode,
        opcode::CONTINUATION
            | opcode::TEXT
            | opcode::BINARY
            | opcode::CLOSE
            | opcode::PING
            | opcode::PONG
    ) {
        return Err(protocol(1002, format!("unknown opcode {opcode:#x}")));
    }
    if (head[1] & 0x80 != 0) != masked {
        return Err(protocol(
            1002,
            if masked {
                "a client frame is not masked"
            } else {
                "a server frame is masked"
            },
        ));
    }
    let len = match head[1] & 0x7F {
        126 => u64::from(io.read_u16().await?),
        127 => io.read_u64().await?,
        short => u64::from(short),
    };
    if opcode >= opcode::CLOSE && (len > 125 || !fin) {
        return Err(protocol(1002, "a control frame is fragmented or too long"));
    }
    if len > MAX_PAYLOAD {
        return Err(protocol(
            1009,
            format!("a {len}-byte frame is over {MAX_PAYLOAD}"),
        ));
    }
    let mut mask = [0u8; 4];
    if masked {
        io.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; usize::try_from(len).unwrap_or(0)];
    io.read_exact(&mut payload).await?;
    if masked {
        apply_mask(&mut payload, mask);
    }
    Ok(WsFrame {
        fin,
        opcode,
        payload,
    })
}

fn apply_mask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

/// Writes one frame and flushes; masked with `mask` when given (a client must mask).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    io: &mut W,
    fin: bool,
    opcode: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(if fin { 0x80 } else { 0 } | (opcode & 0x0F));
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => frame.push(mask_bit | len as u8),
        len @ 126..=0xFFFF => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            frame.extend_from_slice(&mask);
            let start = frame.len();
            frame.extend_from_slice(payload);
            apply_mask(&mut frame[start..], mask);
        }
        None => frame.extend_from_slice(payload),
    }
    io.write_all(&frame).await?;
    io.flush().await
}

fn has_token(headers: &http::HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Whether a request asks for a WebSocket upgrade: a GET with `Upgrade: websocket`.
pub(super) fn is_upgrade(parts: &http::request::Parts) -> bool {
    parts.method == http::Method::GET
        && has_token(&parts.headers, http::header::UPGRADE, "websocket")
}

fn refuse(identity: &Identity, status: StatusCode, reason: &'static str) -> Response<EchoBody> {
    let mut response = Response::new(Empty::new().boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(ERROR_HEADER, HeaderValue::from_static(reason));
    stamp(identity, &mut response);
    response
}

/// Answers an upgrade request, and echoes frames on the upgraded connection in a new
/// task until the peer closes or `stopped` does.
pub(super) fn accept(
    identity: &Identity,
    mut request: Request<Incoming>,
    mut stopped: watch::Receiver<()>,
) -> Response<EchoBody> {
    let headers = request.headers();
    if !has_token(headers, http::header::CONNECTION, "upgrade") {
        return refuse(
            identity,
            StatusCode::BAD_REQUEST,
            "Connection: Upgrade is missing",
        );
    }
    if headers
        .get(http::header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        let mut response = refuse(
            identity,
            StatusCode::UPGRADE_REQUIRED,
            "only Sec-WebSocket-Version 13",
        );
        response.headers_mut().insert(
            http::header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return response;
    }
    let Some(key) = headers
        .get(http::header::SEC_WEBSOCKET_KEY)
        .and_then(|k| k.to_str().ok())
        .filter(|k| BASE64.decode(k.trim()).is_ok_and(|raw| raw.len() == 16))
        .map(|k| k.trim().to_string())
    else {
        return refuse(
            identity,
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Key is not 16 bytes in base64",
        );
    };
    let Ok(accept) = HeaderValue::from_str(&accept_key(&key)) else {
        return refuse(identity, StatusCode::BAD_REQUEST, "bad Sec-WebSocket-Key");
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let echo = async {
            match on_upgrade.await {
                Ok(upgraded) => echo_frames(TokioIo::new(upgraded)).await,
                Err(error) => Err(WebSocketError::Handshake(error.to_string())),
            }
        };
        tokio::select! {
            result = echo => {
                if let Err(error) = result {
                    tracing::debug!(%error, "echo: WebSocket connection ended");
                }
            }
            _ = stopped.changed() => {}
        }
    });
    let mut response = Response::new(Empty::new().boxed());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    headers.insert(http::header::SEC_WEBSOCKET_ACCEPT, accept);
    stamp(identity, &mut response);
    response
}

/// The app's side of an upgraded connection: every frame back, unmasked.
async fn echo_frames<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) -> Result<(), WebSocketError> {
    loop {
        let frame = match read_frame(&mut io, true).await {
            Ok(frame) => frame,
            Err(WebSocketError::Protocol { code, reason }) => {
                let mut payload = code.to_be_bytes().to_vec();
                payload.extend_from_slice(reason.as_bytes());
                payload.truncate(125);
                write_frame(&mut io, true, opcode::CLOSE, &payload, None).await?;
                return Err(WebSocketError::Protocol { code, reason });
            }
            Err(WebSocketError::Closed) => return Ok(()),
            Err(error) => return Err(error),
        };
        match frame.opcode {
            opcode::CLOSE => {
                write_frame(&mut io, true, opcode::CLOSE, &frame.payload, None).await?;
                return Ok(());
            }
            opcode::PING => {
                write_frame(&mut io, true, opcode::PONG, &frame.payload, None).await?;
            }
            opcode::PONG => {}
            other => write_frame(&mut io, frame.fin, other, &frame.payload, None).await?,
        }
    }
}

/// Reads a handshake response's head, up to and including the empty line.
async fn read_head<S: AsyncRead + Unpin>(io: &mut BufReader<S>) -> Result<String, WebSocketError> {
    let mut head = Vec::new();
    loop {
        let room = (MAX_HEAD - head.len()) as u64;
        let mut line = Vec::new();
        let read = (&mut *io).take(room).read_until(b'\n', &mut line).await?;
        if read == 0 {
            return Err(WebSocketError::Handshake(
                "the connection closed during the handshake".into(),
            ));
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if head.len() >= MAX_HEAD {
            return Err(WebSocketError::Handshake(format!(
                "the response head is over {MAX_HEAD} bytes"
            )));
        }
    }
    String::from_utf8(head)
        .map_err(|_| WebSocketError::Handshake("the response head is not UTF-8".into()))
}

/// Upgrades `io` to a WebSocket: `GET {target}` with `Host: {host}`, then checks for 101,
/// `Upgrade: websocket` and the right `Sec-WebSocket-Accept`.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    host: &str,
    target: &str,
) -> Result<(), WebSocketError> {
    let key = BASE64.encode(rand::random::<[u8; 16]>());
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    io.write_all(request.as_bytes()).await?;
    io.flush().await?;
    let head = read_head(io).await?;
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) != Some("101") {
        return Err(WebSocketError::Handshake(format!(
            "expected 101 Switching Protocols, got `{status_line}`"
        )));
    }
    let header = |name: &str| {
        head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    };
    if !header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Err(WebSocketError::Handshake(
            "the 101 has no `Upgrade: websocket`".into(),
        ));
    }
    let expected = accept_key(&key);
    match header("sec-websocket-accept") {
        Some(accept) if accept == expected => Ok(()),
        other => Err(WebSocketError::Handshake(format!(
            "Sec-WebSocket-Accept is {other:?}, expected {expected}"
        ))),
    }
}

/// Upgrades `io` (a TCP stream to the app, to a proxy's per-service listener, or to an
/// HTTP proxy with `target` in absolute form, `http://host/path`), sends each message as
/// one masked frame — text when it is UTF-8, binary otherwise — and reads its echo, then
/// closes (1000) and waits for the close in return. Returns the echoed payloads in order.
/// Callers put a deadline around it.
pub async fn websocket_echo<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    host: &str,
    target: &str,
    messages: &[&[u8]],
) -> Result<Vec<Vec<u8>>, WebSocketError> {
    let mut io = BufReader::new(io);
    handshake(&mut io, host, target).await?;
    let mut echoed = Vec::with_capacity(messages.len());
    for message in messages {
        let kind = if std::str::from_utf8(message).is_ok() {
            opcode::TEXT
        } else {
            opcode::BINARY
        };
        write_frame(&mut io, true, kind, message, Some(rand::random())).await?;
        loop {
            let frame = read_frame(&mut io, false).await?;
            match frame.opcode {
                opcode::PING => {
                    write_frame(
                        &mut io,
                        true,
                        opcode::PONG,
                        &frame.payload,
                        Some(rand::random()),
                    )
                    .await?;
                }
                opcode::PONG => {}
                opcode::CLOSE => return Err(WebSocketError::Closed),
                got if got == kind && frame.fin => {
                    echoed.push(frame.payload);
                    break;
                }
                got => {
                    return Err(protocol(
                        1002,
                        format!("expected opcode {kind:#x} back, got {got:#x}"),
                    ));
                }
            }
        }
    }
    write_frame(
        &mut io,
        true,
        opcode::CLOSE,
        &1000u16.to_be_bytes(),
        Some(rand::random()),
    )
    .await?;
    // The close in return; a peer may still send a few frames before it.
    for _ in 0..16 {
        match read_frame(&mut io, false).await {
            Ok(frame) if frame.opcode == opcode::CLOSE => break,
            Ok(_) => {}
            Err(WebSocketError::Closed) => break,
            Err(error) => return Err(error),
        }
    }
    Ok(echoed)
}

/// [`websocket_echo`] with one message: upgrades `io`, sends `message` as one masked
/// frame, and returns the echoed payload.
pub async fn websocket_echo_once<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    host: &str,
    target: &str,
    message: &[u8],
) -> Result<Vec<u8>, WebSocketError> {
    let mut echoed = websocket_echo(io, host, target, &[message]).await?;
    echoed
        .pop()
        .ok_or_else(|| WebSocketError::Handshake("no echo".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_is_the_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[tokio::test]
    async fn frames_round_trip_masked_and_not() {
        for len in [0usize, 5, 125, 126, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut wire = Vec::new();
            write_frame(
                &mut wire,
                true,
                opcode::BINARY,
                &payload,
                Some([1, 2, 3, 4]),
            )
            .await
            .unwrap();
            let frame = read_frame(&mut wire.as_slice(), true).await.unwrap();
            assert_eq!(frame.payload, payload);
            assert!(frame.fin);
            let mut wire = Vec::new();
            write_frame(&mut wire, false, opcode::TEXT, &payload, None)
                .await
                .unwrap();
            let frame = read_frame(&mut wire.as_slice(), false).await.unwrap();
            assert_eq!((frame.fin, frame.opcode), (false, opcode::TEXT));
            assert_eq!(frame.payload, payload);
        }
    }

    #[tokio::test]
    async fn an_unmasked_client_frame_is_a_protocol_error() {
        let mut wire = Vec::new();
        write_frame(&mut wire, true, opcode::TEXT, b"hi", None)
            .await
            .unwrap();
        let error = read_frame(&mut wire.as_slice(), true).await.unwrap_err();
        assert!(
            matches!(error, WebSocketError::Protocol { code: 1002, .. }),
            "{error}"
        );
    }
}
