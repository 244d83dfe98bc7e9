//! Errors of the tunnel endpoint, with what to do about them.

use std::time::Duration;

use crate::header::{HeaderError, Status};
use crate::identity::NodeName;
use crate::tls::TlsError;

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// The UDP socket could not be bound.
    #[error(
        "cannot bind the tunnel endpoint on {addr}: {source} (is another node using this port?)"
    )]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The identity or TLS setup failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The endpoint could not be created.
    #[error("cannot start the QUIC endpoint: {0}")]
    Endpoint(std::io::Error),
}

/// Why a stream to a peer could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No link could be made: no address worked and no relay could carry it.
    #[error("node `{peer}` is unreachable: {reason}")]
    Unreachable {
        /// The peer.
        peer: NodeName,
        /// What each attempt said.
        reason: String,
    },
    /// The last dials failed and the next is not due yet.
    #[error("node `{peer}` is unreachable (next dial in {retry_in:?}): {reason}")]
    Backoff {
        /// The peer.
        peer: NodeName,
        /// When the next dial is allowed.
        retry_in: Duration,
        /// What the last attempt said.
        reason: String,
    },
    /// The peer answered with a status other than ok.
    #[error("node `{peer}` refused the {purpose} stream: {status}{}", if message.is_empty() { String::new() } else { format!(" ({message})") })]
    Refused {
        /// The peer.
        peer: NodeName,
        /// What the stream was for.
        purpose: &'static str,
        /// The status it sent.
        status: Status,
        /// Its explanation.
        message: String,
    },
    /// The link failed while the stream was being opened.
    #[error("the link to `{peer}` failed: {reason}")]
    LinkLost {
        /// The peer.
        peer: NodeName,
        /// What failed.
        reason: String,
    },
    /// The peer did not answer in time.
    #[error("node `{peer}` sent no reply within {timeout:?}")]
    Timeout {
        /// The peer.
        peer: NodeName,
        /// How long we waited.
        timeout: Duration,
    },
    /// The peer's reply did not decode.
    #[error("node `{peer}` sent a bad reply: {error}")]
    Protocol {
        /// The peer.
        peer: NodeName,
        /// What was wrong.
        error: HeaderError,
    },
    /// The request could not be encoded (a field too long).
    #[error("cannot send this request: {0}")]
    Request(HeaderError),
    /// A call made for a request of another kind (`accept_udp` on a TCP stream, say).
    #[error("the {purpose} stream from `{peer}` is not a {wanted} stream")]
    WrongRequest {
        /// The peer.
        peer: NodeName,
        /// What the stream is for.
        purpose: &'static str,
        /// What the call expected.
        wanted: &'static str,
    },
    /// The endpoint was closed.
    #[error("the tunnel endpoint is closed")]
    Closed,
}
