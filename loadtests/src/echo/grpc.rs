//! gRPC unary calls without a gRPC library, both ends: the echo app's answer to a POST
//! with `content-type: application/grpc…`, and [`grpc_unary`], a client for tests.
//!
//! On the wire a message is 1 byte "compressed" flag, a 4-byte big-endian length, then
//! the payload. The app reads the one request message (at most [`MAX_MESSAGE`] bytes,
//! uncompressed), then answers `200`, `content-type: application/grpc`, one message
//! whose payload is the echo [`Answer`] line, and trailers `grpc-status: 0`. With the
//! request header `x-echo-grpc-status: N` (N in 1..=16) it answers trailers-only instead:
//! the response headers carry `grpc-status: N` and a `grpc-message`, and there is no body.
//! A malformed call gets trailers-only INTERNAL (13), UNIMPLEMENTED (12: compressed or
//! more than one message), RESOURCE_EXHAUSTED (8: too large) or INVALID_ARGUMENT (3: a
//! bad `x-echo-grpc-status`).

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;

use super::{Answer, EchoBody, Identity, stamp};

/// The largest request message the app reads, as gRPC's default limit: 4 MiB.
pub const MAX_MESSAGE: usize = 4 << 20;
/// The largest response body [`grpc_unary`] reads.
pub const MAX_REPLY: usize = 16 << 20;
/// Request header asking the app to fail the call with this gRPC status.
pub const STATUS_HEADER: &str = "x-echo-grpc-status";

/// gRPC status codes the app and the client use.
pub mod code {
    /// Success.
    pub const OK: u32 = 0;
    /// Unknown error.
    pub const UNKNOWN: u32 = 2;
    /// The client gave a bad argument.
    pub const INVALID_ARGUMENT: u32 = 3;
    /// The caller lacks permission.
    pub const PERMISSION_DENIED: u32 = 7;
    /// A limit was exceeded.
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    /// Not implemented.
    pub const UNIMPLEMENTED: u32 = 12;
    /// An internal error, such as a malformed message.
    pub const INTERNAL: u32 = 13;
    /// The service is unavailable.
    pub const UNAVAILABLE: u32 = 14;
    /// The caller is not authenticated.
    pub const UNAUTHENTICATED: u32 = 16;
}

/// Whether a request is a gRPC call: a POST whose content type starts with
/// `application/grpc`.
pub(super) fn is_grpc(parts: &http::request::Parts) -> bool {
    parts.method == http::Method::POST
        && parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"))
}

/// Frames one message: flag 0 (not compressed), big-endian length, payload.
pub fn frame_message(payload: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(5 + payload.len());
    framed.put_u8(0);
    framed.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    framed.put_slice(payload);
    framed.freeze()
}

/// Why a body is not exactly one message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unframe {
    Truncated,
    Compressed,
    MoreThanOne,
}

/// Reads the one message of a unary body; `None` when the body is empty.
fn single_message(body: &[u8]) -> Result<Option<Bytes>, Unframe> {
    if body.is_empty() {
        return Ok(None);
    }
    let Some((&flag, rest)) = body.split_first() else {
        return Ok(None);
    };
    let Some((len, rest)) = rest.split_first_chunk::<4>() else {
        return Err(Unframe::Truncated);
    };
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Err(Unframe::Truncated);
    }
    if flag != 0 {
        return Err(Unframe::Compressed);
    }
    if rest.len() > len {
        return Err(Unframe::MoreThanOne);
    }
    Ok(Some(Bytes::copy_from_slice(rest)))
}

fn trailers_only(identity: &Identity, status: u32, message: &str) -> Response<EchoBody> {
    let mut response = Response::new(Empty::new().boxed());
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(status));
    // grpc-message is percent-encoded on the wire; the app's messages are plain ASCII
    // without `%`, which encode to themselves.
    if let Ok(message) = HeaderValue::from_str(message) {
        headers.insert("grpc-message", message);
    }
    stamp(identity, &mut response);
    response
}

/// The app's answer to a gRPC call.
pub(super) async fn answer(
    identity: &Identity,
    answer: &Answer,
    headers: &HeaderMap,
    body: Incoming,
) -> Response<EchoBody> {
    let body = match Limited::new(body, MAX_MESSAGE + 5).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return if error.is::<http_body_util::LengthLimitError>() {
                trailers_only(
                    identity,
                    code::RESOURCE_EXHAUSTED,
                    "request message larger than 4 MiB",
                )
            } else {
                trailers_only(identity, code::INTERNAL, "request body broke off")
            };
        }
    };
    let requested = match headers.get(STATUS_HEADER).map(|v| {
        v.to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|n| *n <= 16)
    }) {
        None => None,
        Some(Some(status)) => Some(status),
        Some(None) => {
            return trailers_only(
                identity,
                code::INVALID_ARGUMENT,
                "x-echo-grpc-status must be a status code in 0..=16",
            );
        }
    };
    match single_message(&body) {
        Ok(Some(_)) => {}
        Ok(None) => return trailers_only(identity, code::INTERNAL, "no request message"),
        Err(Unframe::Truncated) => {
            return trailers_only(identity, code::INTERNAL, "truncated request message");
        }
        Err(Unframe::Compressed) => {
            return trailers_only(
                identity,
                code::UNIMPLEMENTED,
                "compressed messages are not supported",
            );
        }
        Err(Unframe::MoreThanOne) => {
            return trailers_only(
                identity,
                code::UNIMPLEMENTED,
                "unary calls only: more than one request message",
            );
        }
    }
    if let Some(status) = requested.filter(|s| *s != code::OK) {
        return trailers_only(
            identity,
            status,
            &format!("echo: status {status} requested"),
        );
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(code::OK));
    let body = Full::new(frame_message(answer.line().as_bytes()))
        .with_trailers(async move { Some(Ok(trailers)) })
        .boxed();
    let mut response = Response::new(body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    stamp(identity, &mut response);
    response
}

/// What a unary gRPC call came back with.
#[derive(Debug, Clone)]
pub struct GrpcReply {
    /// The HTTP status of the response.
    pub http_status: StatusCode,
    /// The gRPC status: `grpc-status` from the trailers, or from the headers of a
    /// trailers-only response. When the reply is not gRPC (another content type) or has
    /// no status, it is mapped from the HTTP status the way gRPC clients do (503 →
    /// UNAVAILABLE (14), 404 → UNIMPLEMENTED (12), …; a 200 without a status is INTERNAL
    /// (13), a 200 that is not gRPC UNKNOWN (2)).
    pub status: u32,
    /// `grpc-message`, if any (not percent-decoded).
    pub message: Option<String>,
    /// The response message's payload, if there was one.
    pub payload: Option<Bytes>,
    /// The response headers.
    pub headers: HeaderMap,
    /// The trailers (empty for a trailers-only response).
    pub trailers: HeaderMap,
}

/// Why [`grpc_unary`] got no reply.
#[derive(Debug, thiserror::Error)]
pub enum GrpcClientError {
    /// The request could not be built (a bad authority or path).
    #[error("cannot build the request: {0}")]
    Request(#[from] http::Error),
    /// The connection failed.
    #[error("the call failed: {0}")]
    Http(#[from] hyper::Error),
    /// The reply is not gRPC.
    #[error("the reply is malformed: {0}")]
    Malformed(String),
}

fn http_to_grpc(status: StatusCode) -> u32 {
    match status.as_u16() {
        200 => code::INTERNAL,
        400 => code::INTERNAL,
        401 => code::UNAUTHENTICATED,
        403 => code::PERMISSION_DENIED,
        404 => code::UNIMPLEMENTED,
        429 | 502..=504 => code::UNAVAILABLE,
        _ => code::UNKNOWN,
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn grpc_message(headers: &HeaderMap) -> Option<String> {
    headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Makes one unary gRPC call over an HTTP/2 connection (h2c or not, the sender decides):
/// POST `http://{authority}{path}` with `content-type: application/grpc`, `te: trailers`,
/// `metadata` as extra headers (e.g. `x-echo-grpc-status`), and `payload` as the one
/// message. Reads the reply to the end (at most [`MAX_REPLY`] bytes) and its trailers.
pub async fn grpc_unary(
    sender: &mut SendRequest<Full<Bytes>>,
    authority: &str,
    path: &str,
    payload: &[u8],
    metadata: &HeaderMap,
) -> Result<GrpcReply, GrpcClientError> {
    let mut request = Request::post(format!("http://{authority}{path}"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(Full::new(frame_message(payload)))?;
    for (name, value) in metadata {
        request.headers_mut().append(name, value.clone());
    }
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let (parts, mut body) = response.into_parts();
    let mut data = BytesMut::new();
    let mut trailers = HeaderMap::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Some(chunk) = frame.data_ref() {
            if data.len() + chunk.len() > MAX_REPLY {
                return Err(GrpcClientError::Malformed(format!(
                    "the reply is larger than {MAX_REPLY} bytes"
                )));
            }
            data.extend_from_slice(chunk);
        } else if let Ok(more) = frame.into_trailers() {
            trailers.extend(more);
        }
    }
    let is_grpc = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if !is_grpc {
        // Not a gRPC server that answered (a proxy's or a broken upstream's error page):
        // the status comes from the HTTP status alone.
        let status = match parts.status {
            StatusCode::OK => code::UNKNOWN,
            other => http_to_grpc(other),
        };
        return Ok(GrpcReply {
            http_status: parts.status,
            status,
            message: None,
            payload: None,
            headers: parts.headers,
            trailers,
        });
    }
    let payload = single_message(&data).map_err(|why| {
        GrpcClientError::Malformed(format!("the reply is not one gRPC message: {why:?}"))
    })?;
    let status = grpc_status(&trailers)
        .or_else(|| grpc_status(&parts.headers))
        .unwrap_or_else(|| http_to_grpc(parts.status));
    let message = grpc_message(&trailers).or_else(|| grpc_message(&parts.headers));
    Ok(GrpcReply {
        http_status: parts.status,
        status,
        message,
        payload,
        headers: parts.headers,
        trailers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_frame_and_unframe() {
        let framed = frame_message(b"hello");
        assert_eq!(&framed[..], b"\0\0\0\0\x05hello");
        assert_eq!(
            single_message(&framed),
            Ok(Some(Bytes::from_static(b"hello")))
        );
        assert_eq!(single_message(b""), Ok(None));
        assert_eq!(single_message(b"\0\0\0"), Err(Unframe::Truncated));
        assert_eq!(single_message(b"\0\0\0\0\x05hel"), Err(Unframe::Truncated));
        assert_eq!(single_message(b"\x01\0\0\0\x01h"), Err(Unframe::Compressed));
        assert_eq!(
            single_message(b"\0\0\0\0\x01h\0\0\0\0\0"),
            Err(Unframe::MoreThanOne)
        );
    }
}
