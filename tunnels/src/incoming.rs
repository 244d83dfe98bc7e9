//! What peers send this node: incoming links (handshake, identity, confirmation), the
//! streams on them (header, dispatch to relay handling or to the application), and the
//! datagrams (routed to their flow or session).

use std::sync::Arc;

use quinn::{RecvStream, SendStream};
use tokio::sync::mpsc;

use crate::channel::PacketChannel;
use crate::datagram::{self, Channel};
use crate::error::OpenError;
use crate::header::{HeaderError, Reply, Request, Status};
use crate::identity::PeerIdentity;
use crate::link::{Link, LinkPath};
use crate::metrics::TunnelMetrics;
use crate::relay;
use crate::stream::{self, HeaderReadError, REFUSED_CODE, RawStream, StreamGuard, TunnelStream};
use crate::tunnel::Inner;
use crate::udp::UdpFlow;

/// What an acceptor sends on a unidirectional stream once it has verified the dialler.
///
/// In TLS 1.3 the dialler finishes its handshake before the acceptor has checked the
/// dialler's certificate, so a finished handshake does not mean the acceptor took the
/// link. The dialler waits for this before it counts the link as up; a refused dialler
/// sees the acceptor's TLS alert instead, as the reason.
pub(crate) const HELLO: [u8; 4] = *b"CW\x01\x00";

/// The requests peers send to this node that the application must answer. Ends (`None`)
/// when the endpoint closes.
#[derive(Debug)]
pub struct Incoming {
    pub(crate) rx: mpsc::Receiver<IncomingStream>,
}

impl Incoming {
    /// The next request; `None` once the endpoint closed.
    pub async fn accept(&mut self) -> Option<IncomingStream> {
        self.rx.recv().await
    }
}

/// A stream a peer opened, its header read, its reply not yet sent.
#[derive(Debug)]
pub struct IncomingStream {
    link: Link,
    request: Request,
    stream: RawStream,
    packet_queue: usize,
    metrics: Arc<TunnelMetrics>,
}

impl IncomingStream {
    /// Who opened it, as its certificate proved.
    pub fn peer(&self) -> &PeerIdentity {
        self.link.peer()
    }

    /// What it is for.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// How the link reaches the peer.
    pub fn path(&self) -> &LinkPath {
        self.link.path()
    }

    /// Replies ok; payload may flow.
    pub async fn accept(mut self) -> Result<TunnelStream, quinn::WriteError> {
        stream::write_reply(&mut self.stream.send, &Reply::status(Status::Ok)).await?;
        Ok(TunnelStream::new(self.stream))
    }

    /// Replies ok to a UDP flow request and starts the flow.
    pub async fn accept_udp(mut self) -> Result<UdpFlow, OpenError> {
        let peer = self.link.peer().node.clone();
        if !matches!(self.request, Request::UdpFlow(_)) {
            let purpose = self.request.purpose();
            self.refuse(Status::BadRequest, "not a UDP flow").await;
            return Err(OpenError::WrongRequest {
                peer,
                purpose,
                wanted: "udp-flow",
            });
        }
        stream::write_reply(&mut self.stream.send, &Reply::status(Status::Ok))
            .await
            .map_err(|e| OpenError::LinkLost {
                peer: peer.clone(),
                reason: e.to_string(),
            })?;
        let channel = PacketChannel::start(
            Channel::UdpFlow,
            self.stream,
            self.packet_queue,
            self.metrics,
        )
        .map_err(|e| OpenError::LinkLost {
            peer,
            reason: e.to_string(),
        })?;
        Ok(UdpFlow::new(channel))
    }

    /// Replies with `status` and ends the stream.
    pub async fn refuse(mut self, status: Status, message: &str) {
        refuse(
            &mut self.stream.send,
            &mut self.stream.recv,
            status,
            message,
        )
        .await;
    }
}

/// Replies with `status` and ends both directions of a stream.
pub(crate) async fn refuse(
    send: &mut SendStream,
    recv: &mut RecvStream,
    status: Status,
    message: &str,
) {
    let reply = Reply {
        status,
        message: message.to_string(),
    };
    let _ = stream::write_reply(send, &reply).await;
    let _ = send.finish();
    let _ = recv.stop(REFUSED_CODE);
}

/// Waits for the acceptor's [`HELLO`].
pub(crate) async fn await_hello(connection: &quinn::Connection) -> Result<(), String> {
    let mut stream = connection.accept_uni().await.map_err(|e| match e {
        quinn::ConnectionError::TransportError(error) => {
            format!("the peer refused the link: {error}")
        }
        quinn::ConnectionError::ConnectionClosed(close) => {
            format!("the peer refused the link: {close}")
        }
        other => other.to_string(),
    })?;
    let mut hello = [0u8; 4];
    stream
        .read_exact(&mut hello)
        .await
        .map_err(|e| format!("no link confirmation: {e}"))?;
    if hello == HELLO {
        Ok(())
    } else {
        Err("the peer sent a bad link confirmation".into())
    }
}

async fn send_hello(link: &Link) {
    let sent = async {
        let mut stream = link
            .connection()
            .open_uni()
            .await
            .map_err(|e| e.to_string())?;
        stream.write_all(&HELLO).await.map_err(|e| e.to_string())?;
        stream.finish().map_err(|e| e.to_string())
    };
    if let Err(error) = sent.await {
        tracing::debug!(peer = %link.peer().node, %error, "could not confirm a link; the dialler will time out");
    }
}

/// Accepts links on the outer endpoint, or on the end-to-end endpoint behind relays.
pub(crate) async fn accept_loop(inner: Arc<Inner>, relayed: bool) {
    let endpoint = if relayed {
        inner.relay_endpoint().clone()
    } else {
        inner.endpoint().clone()
    };
    let mut shutdown = inner.shutdown_signal();
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            _ = shutdown.changed() => None,
        };
        let Some(incoming) = incoming else {
            return;
        };
        // A cheap early refusal; the slot is reserved for real when the link is admitted.
        if inner.links_full() {
            TunnelMetrics::inc(&inner.metrics.rejected_link_limit);
            if let Some(held) = inner.logs.refused_link.pass() {
                tracing::warn!(from = %incoming.remote_address(), limit = inner.config.limits.max_links, held, "refused a link: at the link limit");
            }
            incoming.refuse();
            continue;
        }
        tokio::spawn(handshake(Arc::clone(&inner), incoming, relayed));
    }
}

async fn handshake(inner: Arc<Inner>, incoming: quinn::Incoming, relayed: bool) {
    let remote = incoming.remote_address();
    let failed = |inner: &Inner, error: String| {
        TunnelMetrics::inc(&inner.metrics.rejected_handshakes);
        if let Some(held) = inner.logs.handshake.pass() {
            tracing::warn!(%remote, %error, held, "an incoming handshake failed");
        }
    };
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(error) => return failed(&inner, error.to_string()),
    };
    let connection = match tokio::time::timeout(inner.config.timeouts.connect, connecting).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => return failed(&inner, error.to_string()),
        Err(_) => {
            return failed(
                &inner,
                format!("no handshake within {:?}", inner.config.timeouts.connect),
            );
        }
    };
    let (path, expected) = if relayed {
        match inner.relay_socket.session_of(remote) {
            Some((relay, source)) => (LinkPath::Relayed { relay }, Some(source)),
            None => {
                connection.close(crate::peers::REFUSED_LINK_CODE, b"relay session gone");
                return;
            }
        }
    } else {
        (LinkPath::Direct { remote }, None)
    };
    match inner.admit(connection, path, expected.as_ref(), false) {
        Ok(link) => send_hello(&link).await,
        Err(error) => {
            if let Some(held) = inner.logs.refused_link.pass() {
                tracing::warn!(%remote, %error, held, "refused an incoming link");
            }
        }
    }
}

/// Serves the streams a link's peer opens.
pub(crate) async fn serve_streams(inner: Arc<Inner>, link: Link) {
    loop {
        match link.connection().accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(handle_stream(Arc::clone(&inner), link.clone(), send, recv));
            }
            Err(_) => return,
        }
    }
}

async fn handle_stream(inner: Arc<Inner>, link: Link, mut send: SendStream, mut recv: RecvStream) {
    TunnelMetrics::inc(&inner.metrics.streams_accepted);
    let guard = StreamGuard::new(link.clone(), Arc::clone(&inner.metrics));
    let peer = link.peer().node.clone();
    let timeout = inner.config.timeouts.header;
    let (request, pending) = match tokio::time::timeout(timeout, stream::read_request(&mut recv))
        .await
    {
        Ok(Ok(read)) => read,
        Ok(Err(HeaderReadError::Header(error))) => {
            TunnelMetrics::inc(&inner.metrics.rejected_headers);
            if let Some(held) = inner.logs.bad_header.pass() {
                tracing::warn!(peer = %peer, %error, held, "refused a stream with a bad header");
            }
            let status = match error {
                HeaderError::UnsupportedVersion(_) => Status::UnsupportedVersion,
                _ => Status::BadRequest,
            };
            refuse(&mut send, &mut recv, status, &error.to_string()).await;
            return;
        }
        Ok(Err(HeaderReadError::Stream(error))) => {
            TunnelMetrics::inc(&inner.metrics.streams_abandoned);
            tracing::debug!(peer = %peer, %error, "stream ended before its header");
            return;
        }
        Err(_) => {
            TunnelMetrics::inc(&inner.metrics.rejected_headers);
            if let Some(held) = inner.logs.bad_header.pass() {
                tracing::warn!(peer = %peer, ?timeout, held, "refused a stream that sent no header in time");
            }
            let _ = send.reset(REFUSED_CODE);
            let _ = recv.stop(REFUSED_CODE);
            return;
        }
    };
    tracing::debug!(peer = %peer, purpose = request.purpose(), "stream accepted");
    let stream = RawStream {
        send,
        recv,
        pending,
        guard,
    };
    match request {
        Request::RelayConnect { target } => {
            relay::serve_connect(&inner, link, stream, &target).await
        }
        Request::RelayAccept { source } => {
            relay::accept_session(&inner, link, stream, &source).await
        }
        request => {
            let incoming = IncomingStream {
                link,
                request,
                stream,
                packet_queue: inner.config.limits.packet_queue,
                metrics: Arc::clone(&inner.metrics),
            };
            let Some(sender) = inner.incoming_sender() else {
                incoming
                    .refuse(Status::Refused, "the node is shutting down")
                    .await;
                return;
            };
            match sender.try_send(incoming) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(incoming)) => {
                    TunnelMetrics::inc(&inner.metrics.rejected_stream_limit);
                    if let Some(held) = inner.logs.bad_header.pass() {
                        tracing::warn!(peer = %peer, held, "refused a stream: the application is not keeping up");
                    }
                    incoming
                        .refuse(Status::Overloaded, "the node has too many streams waiting")
                        .await;
                }
                Err(mpsc::error::TrySendError::Closed(incoming)) => {
                    incoming
                        .refuse(Status::Refused, "the node does not accept streams")
                        .await;
                }
            }
        }
    }
}

/// Routes a link's datagrams to their flow or relay session.
pub(crate) async fn serve_datagrams(inner: Arc<Inner>, link: Link) {
    while let Ok(datagram) = link.connection().read_datagram().await {
        match datagram::decode(&datagram) {
            Ok((channel, id, payload)) => {
                let offset = datagram.len() - payload.len();
                let delivered = link
                    .channel(channel, id)
                    .is_some_and(|tx| tx.try_send(datagram.slice(offset..)).is_ok());
                if delivered {
                    TunnelMetrics::inc(&inner.metrics.datagrams_received);
                } else {
                    TunnelMetrics::inc(&inner.metrics.datagrams_dropped);
                }
            }
            Err(error) => {
                TunnelMetrics::inc(&inner.metrics.datagrams_dropped);
                tracing::debug!(peer = %link.peer().node, %error, "dropped a malformed datagram");
            }
        }
    }
}
