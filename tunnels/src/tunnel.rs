//! A node's tunnel endpoint: its links to peers, the streams and flows on them, and the
//! tasks that keep links alive, close idle ones, and reload certificates.
//!
//! Links are made on demand and reused: one dial per peer at a time (callers that arrive
//! meanwhile share its result), direct first, then through the relay with the lowest RTT.
//! A failed dial backs off exponentially with jitter; a lost link that was in use is
//! re-dialled on that schedule; a relayed peer is retried directly now and then. A link
//! unused for `link_idle` is closed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quinn::{RecvStream, SendStream, VarInt};
use tokio::sync::{mpsc, watch};

use crate::channel::PacketChannel;
use crate::config::{PeerDirectory, TunnelConfig};
use crate::datagram::{self, Channel};
use crate::error::{OpenError, TunnelError};
use crate::header::{ProxyTarget, Reply, Request, Status};
use crate::identity::{IdentityFiles, LoadedIdentity, NodeName, PeerIdentity};
use crate::link::{Link, LinkHealth, LinkPath};
use crate::metrics::{MetricsSnapshot, TunnelMetrics};
use crate::relay;
use crate::socket::{GuardedSocket, RelaySocket};
use crate::stream::{self, HeaderReadError, REFUSED_CODE, RawStream, StreamGuard, TunnelStream};
use crate::tls::{self, TlsError, TlsIdentity};
use crate::udp::UdpFlow;

/// Close code of a link closed because it was idle.
const IDLE_CODE: VarInt = VarInt::from_u32(1);
/// Close code of a link closed because the node shuts down.
const SHUTDOWN_CODE: VarInt = VarInt::from_u32(2);
/// Close code of a link refused after the handshake.
const REFUSED_LINK_CODE: VarInt = VarInt::from_u32(3);
/// What an acceptor sends on a unidirectional stream once it has verified the dialler.
///
/// In TLS 1.3 the dialler finishes its handshake before the acceptor has checked the
/// dialler's certificate, so a finished handshake does not mean the acceptor took the
/// link. The dialler waits for this before it counts the link as up; a refused dialler
/// sees the acceptor's TLS alert instead, as the reason.
const HELLO: [u8; 4] = *b"CW\x01\x00";

/// Where a node's identity comes from.
#[derive(Debug)]
pub enum IdentitySource {
    /// PEM files, reloaded when they change.
    Files(IdentityFiles),
    /// Material already in memory (tests, bootstrap).
    Loaded(LoadedIdentity),
}

/// A node's tunnel endpoint. Clones share it; it closes when the last clone is dropped
/// or [`Tunnel::close`] is called.
#[derive(Debug, Clone)]
pub struct Tunnel {
    inner: Arc<Inner>,
    _closer: Arc<Closer>,
}

#[derive(Debug)]
struct Closer(Arc<Inner>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// The requests peers send to this node that the application must answer.
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::Receiver<IncomingStream>,
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
    inner: Arc<Inner>,
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
            self.refuse(Status::BadRequest, "not a UDP flow").await;
            return Err(OpenError::LinkLost {
                peer,
                reason: "accept_udp called on a stream that is not a UDP flow".into(),
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
            self.inner.config.limits.packet_queue,
            Arc::clone(&self.inner.metrics),
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

/// Dial bookkeeping of one peer.
#[derive(Debug, Default)]
struct DialState {
    failures: u32,
    next_attempt: Option<Instant>,
    last_error: String,
}

/// Everything known about one peer.
#[derive(Debug)]
pub(crate) struct PeerState {
    node: NodeName,
    links: Mutex<Vec<Link>>,
    dial: tokio::sync::Mutex<DialState>,
    wanted_at: Mutex<Option<Instant>>,
}

impl PeerState {
    fn new(node: NodeName) -> Self {
        Self {
            node,
            links: Mutex::new(Vec::new()),
            dial: tokio::sync::Mutex::new(DialState::default()),
            wanted_at: Mutex::new(None),
        }
    }

    /// The link to use: up, direct before relayed, then the lowest RTT.
    fn best(&self) -> Option<Link> {
        let links = self.links.lock().ok()?;
        links
            .iter()
            .filter(|l| l.is_up())
            .min_by_key(|l| {
                let relayed = matches!(l.path(), LinkPath::Relayed { .. });
                (relayed, l.connection().rtt())
            })
            .cloned()
    }

    fn has_direct(&self) -> bool {
        self.links.lock().is_ok_and(|links| {
            links
                .iter()
                .any(|l| l.is_up() && matches!(l.path(), LinkPath::Direct { .. }))
        })
    }

    fn want(&self) {
        if let Ok(mut at) = self.wanted_at.lock() {
            *at = Some(Instant::now());
        }
    }

    fn wanted_within(&self, window: Duration) -> bool {
        self.wanted_at
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| at.elapsed() < window)
    }

    fn links(&self) -> Vec<Link> {
        self.links.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// The shared state of an endpoint.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) node: NodeName,
    pub(crate) config: TunnelConfig,
    pub(crate) metrics: Arc<TunnelMetrics>,
    tls: TlsIdentity,
    endpoint: quinn::Endpoint,
    relay_endpoint: quinn::Endpoint,
    pub(crate) relay_socket: Arc<RelaySocket>,
    directory: Arc<dyn PeerDirectory>,
    peers: Mutex<HashMap<NodeName, Arc<PeerState>>>,
    incoming_tx: mpsc::Sender<IncomingStream>,
    shutdown_tx: watch::Sender<bool>,
}

impl Tunnel {
    /// Binds the endpoint and starts its tasks. Requests peers send arrive on the
    /// returned [`Incoming`].
    pub async fn bind(
        config: TunnelConfig,
        identity: IdentitySource,
        directory: Arc<dyn PeerDirectory>,
    ) -> Result<(Tunnel, Incoming), TunnelError> {
        let metrics = Arc::new(TunnelMetrics::default());
        let tls = match identity {
            IdentitySource::Files(files) => TlsIdentity::load(&files, Arc::clone(&metrics))?,
            IdentitySource::Loaded(loaded) => {
                TlsIdentity::from_loaded(loaded, Arc::clone(&metrics))?
            }
        };
        let node = tls.identity().node;
        let runtime = quinn::default_runtime()
            .ok_or_else(|| TunnelError::Endpoint(std::io::Error::other("no tokio runtime")))?;

        let outer_transport = Arc::new(transport(&config, false));
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(tls.quic_server_config()?));
        server.transport_config(Arc::clone(&outer_transport));
        let mut client = quinn::ClientConfig::new(Arc::new(tls.quic_client_config()?));
        client.transport_config(outer_transport);

        let udp = std::net::UdpSocket::bind(config.listen).map_err(|source| TunnelError::Bind {
            addr: config.listen,
            source,
        })?;
        let socket = runtime
            .wrap_udp_socket(udp)
            .map_err(TunnelError::Endpoint)?;
        let guarded = Arc::new(GuardedSocket::new(socket, Arc::clone(&metrics)));
        // Our packets keep QUIC's fixed bit set (no greasing, RFC 9287), so a packet
        // without it is known garbage.
        let mut endpoint_config = quinn::EndpointConfig::default();
        endpoint_config.grease_quic_bit(false);
        let mut endpoint = quinn::Endpoint::new_with_abstract_socket(
            endpoint_config,
            Some(server),
            guarded,
            Arc::clone(&runtime),
        )
        .map_err(TunnelError::Endpoint)?;
        endpoint.set_default_client_config(client);

        let inner_transport = Arc::new(transport(&config, true));
        let mut relay_server =
            quinn::ServerConfig::with_crypto(Arc::new(tls.quic_server_config()?));
        relay_server.transport_config(Arc::clone(&inner_transport));
        let mut relay_client = quinn::ClientConfig::new(Arc::new(tls.quic_client_config()?));
        relay_client.transport_config(inner_transport);
        let (closed_paths_tx, closed_paths_rx) = mpsc::unbounded_channel();
        let relay_socket = Arc::new(RelaySocket::new(
            config.limits.packet_queue * 4,
            closed_paths_tx,
        ));
        let mut relay_endpoint = quinn::Endpoint::new_with_abstract_socket(
            quinn::EndpointConfig::default(),
            Some(relay_server),
            Arc::clone(&relay_socket) as Arc<dyn quinn::AsyncUdpSocket>,
            runtime,
        )
        .map_err(TunnelError::Endpoint)?;
        relay_endpoint.set_default_client_config(relay_client);

        let (incoming_tx, incoming_rx) = mpsc::channel(config.limits.incoming_queue.max(1));
        let (shutdown_tx, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            node,
            config,
            metrics,
            tls,
            endpoint,
            relay_endpoint,
            relay_socket,
            directory,
            peers: Mutex::new(HashMap::new()),
            incoming_tx,
            shutdown_tx,
        });
        tokio::spawn(accept_loop(Arc::clone(&inner), false));
        tokio::spawn(accept_loop(Arc::clone(&inner), true));
        tokio::spawn(sweep_loop(Arc::clone(&inner)));
        tokio::spawn(closed_paths_loop(Arc::clone(&inner), closed_paths_rx));
        if let Some(interval) = inner.config.reload_interval {
            tokio::spawn(reload_loop(Arc::clone(&inner), interval));
        }
        for relay in inner.config.relays.clone() {
            if relay.node != inner.node {
                tokio::spawn(keep_relay(Arc::clone(&inner), relay.node));
            }
        }
        tracing::info!(node = %inner.node, listen = %inner.local_addr(), relays = inner.config.relays.len(), serve_as_relay = inner.config.serve_as_relay, "tunnel endpoint up");
        let closer = Arc::new(Closer(Arc::clone(&inner)));
        Ok((
            Tunnel {
                inner,
                _closer: closer,
            },
            Incoming { rx: incoming_rx },
        ))
    }

    /// This node's name.
    pub fn node(&self) -> &NodeName {
        &self.inner.node
    }

    /// The UDP address the endpoint listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    /// The counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    /// The link to `peer`, made if there is none.
    pub async fn link(&self, peer: &NodeName) -> Result<Link, OpenError> {
        self.inner.connect(peer).await
    }

    /// Opens a stream to `peer` for `request` and waits for its reply.
    pub async fn open(&self, peer: &NodeName, request: Request) -> Result<TunnelStream, OpenError> {
        Ok(TunnelStream::new(
            self.inner.open_raw(peer, &request).await?,
        ))
    }

    /// Opens a UDP flow to `target` on `peer`.
    pub async fn open_udp(
        &self,
        peer: &NodeName,
        target: ProxyTarget,
    ) -> Result<UdpFlow, OpenError> {
        let request = Request::UdpFlow(target);
        let stream = self.inner.open_raw(peer, &request).await?;
        let channel = PacketChannel::start(
            Channel::UdpFlow,
            stream,
            self.inner.config.limits.packet_queue,
            Arc::clone(&self.inner.metrics),
        )
        .map_err(|e| OpenError::LinkLost {
            peer: peer.clone(),
            reason: e.to_string(),
        })?;
        Ok(UdpFlow::new(channel))
    }

    /// The health of every link to `peer`.
    pub fn health(&self, peer: &NodeName) -> Vec<LinkHealth> {
        self.inner
            .peer_if_known(peer)
            .map(|p| p.links().iter().map(Link::health).collect())
            .unwrap_or_default()
    }

    /// The health of every link.
    pub fn links(&self) -> Vec<LinkHealth> {
        self.inner
            .all_peers()
            .iter()
            .flat_map(|p| p.links())
            .map(|l| l.health())
            .collect()
    }

    /// Reads the identity files again; links stay up.
    pub fn reload_identity(&self) -> Result<(), TlsError> {
        self.inner.tls.reload()
    }

    /// Closes every link and stops the endpoint.
    pub async fn close(&self) {
        self.inner.shutdown();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.inner.endpoint.wait_idle()).await;
    }
}

/// QUIC transport settings from the limits; `inner` for end-to-end connections through
/// relays, whose packets must fit inside the relay's datagrams.
fn transport(config: &TunnelConfig, inner: bool) -> quinn::TransportConfig {
    let limits = &config.limits;
    let timeouts = &config.timeouts;
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(VarInt::from_u32(limits.max_streams_per_link))
        .max_concurrent_uni_streams(VarInt::from_u32(1))
        .stream_receive_window(VarInt::from_u32(limits.stream_window))
        .receive_window(VarInt::from_u32(limits.link_window))
        .send_window(u64::from(limits.link_window))
        .datagram_receive_buffer_size(Some(limits.datagram_buffer))
        .datagram_send_buffer_size(limits.datagram_buffer)
        .keep_alive_interval(Some(timeouts.keep_alive))
        .max_idle_timeout(quinn::IdleTimeout::try_from(timeouts.link_dead).ok());
    if inner {
        t.initial_mtu(1200).mtu_discovery_config(None);
    }
    t
}

impl Inner {
    pub(crate) fn relay_endpoint(&self) -> &quinn::Endpoint {
        &self.relay_endpoint
    }

    fn local_addr(&self) -> SocketAddr {
        self.endpoint.local_addr().unwrap_or(self.config.listen)
    }

    fn closing(&self) -> bool {
        *self.shutdown_tx.borrow()
    }

    fn shutdown(&self) {
        if self.shutdown_tx.send_replace(true) {
            return;
        }
        self.endpoint.close(SHUTDOWN_CODE, b"node shutting down");
        self.relay_endpoint
            .close(SHUTDOWN_CODE, b"node shutting down");
        tracing::info!(node = %self.node, "tunnel endpoint closed");
    }

    fn peer_state(&self, node: &NodeName) -> Arc<PeerState> {
        match self.peers.lock() {
            Ok(mut peers) => Arc::clone(
                peers
                    .entry(node.clone())
                    .or_insert_with(|| Arc::new(PeerState::new(node.clone()))),
            ),
            Err(_) => Arc::new(PeerState::new(node.clone())),
        }
    }

    fn peer_if_known(&self, node: &NodeName) -> Option<Arc<PeerState>> {
        self.peers.lock().ok()?.get(node).cloned()
    }

    fn all_peers(&self) -> Vec<Arc<PeerState>> {
        self.peers
            .lock()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }

    fn link_count(&self) -> usize {
        self.all_peers().iter().map(|p| p.links().len()).sum()
    }

    pub(crate) fn is_relay(&self, node: &NodeName) -> bool {
        self.config.relays.iter().any(|r| &r.node == node)
    }

    fn addresses(&self, node: &NodeName) -> Vec<SocketAddr> {
        let mut addresses = self.directory.addresses(node);
        for relay in &self.config.relays {
            if &relay.node == node {
                addresses.extend(relay.addresses.iter().copied());
            }
        }
        addresses
    }

    /// The link to `peer`: an existing one, or one dial shared by every caller.
    pub(crate) async fn connect(self: &Arc<Self>, peer: &NodeName) -> Result<Link, OpenError> {
        if self.closing() {
            return Err(OpenError::Closed);
        }
        let state = self.peer_state(peer);
        state.want();
        if let Some(link) = state.best() {
            link.touch();
            return Ok(link);
        }
        let mut dial = state.dial.lock().await;
        if let Some(link) = state.best() {
            link.touch();
            return Ok(link);
        }
        if let Some(at) = dial.next_attempt {
            let wait = at.saturating_duration_since(Instant::now());
            if wait > self.config.timeouts.connect {
                return Err(OpenError::Backoff {
                    peer: peer.clone(),
                    retry_in: wait,
                    reason: dial.last_error.clone(),
                });
            }
            tokio::time::sleep(wait).await;
        }
        match self.dial(peer).await {
            Ok(link) => {
                *dial = DialState::default();
                Ok(link)
            }
            Err(error) => {
                dial.failures = dial.failures.saturating_add(1);
                let delay = backoff(&self.config, dial.failures);
                dial.next_attempt = Some(Instant::now() + delay);
                dial.last_error = error.to_string();
                tracing::warn!(peer = %peer, failures = dial.failures, retry_in = ?delay, error = %error, "dial failed");
                Err(error)
            }
        }
    }

    async fn dial(self: &Arc<Self>, peer: &NodeName) -> Result<Link, OpenError> {
        let mut reasons = Vec::new();
        let addresses = self.addresses(peer);
        for address in &addresses {
            match self.dial_direct(peer, *address).await {
                Ok(link) => return Ok(link),
                Err(error) => reasons.push(format!("{address}: {error}")),
            }
        }
        if !self.is_relay(peer) && peer != &self.node {
            for relay in self.relays_by_rtt() {
                match Box::pin(relay::dial_via(self, &relay, peer)).await {
                    Ok(link) => {
                        if !addresses.is_empty() {
                            tokio::spawn(retry_direct(Arc::clone(self), peer.clone()));
                        }
                        return Ok(link);
                    }
                    Err(error) => reasons.push(format!("via relay {relay}: {error}")),
                }
            }
        }
        TunnelMetrics::inc(&self.metrics.dial_failures);
        if reasons.is_empty() {
            reasons.push("no address is known and no relay is configured".into());
        }
        Err(OpenError::Unreachable {
            peer: peer.clone(),
            reason: reasons.join("; "),
        })
    }

    async fn dial_direct(
        self: &Arc<Self>,
        peer: &NodeName,
        address: SocketAddr,
    ) -> Result<Link, OpenError> {
        let lost = |reason: String| OpenError::LinkLost {
            peer: peer.clone(),
            reason,
        };
        let connecting = self
            .endpoint
            .connect(address, peer.as_str())
            .map_err(|e| lost(e.to_string()))?;
        let connection = tokio::time::timeout(self.config.timeouts.connect, async {
            let connection = connecting.await.map_err(|e| e.to_string())?;
            await_hello(&connection).await?;
            Ok::<_, String>(connection)
        })
        .await
        .map_err(|_| {
            lost(format!(
                "no handshake within {:?}",
                self.config.timeouts.connect
            ))
        })?
        .map_err(lost)?;
        self.admit(connection, LinkPath::Direct { remote: address }, Some(peer))
            .map_err(lost)
    }

    /// Registers an established connection as a link, after checking who it is.
    pub(crate) fn admit(
        self: &Arc<Self>,
        connection: quinn::Connection,
        path: LinkPath,
        expected: Option<&NodeName>,
    ) -> Result<Link, String> {
        let identity = match tls::connection_peer(&connection) {
            Ok(identity) => identity,
            Err(error) => {
                TunnelMetrics::inc(&self.metrics.rejected_bad_certificate);
                connection.close(REFUSED_LINK_CODE, b"not a node certificate");
                return Err(error.to_string());
            }
        };
        if let Some(expected) = expected
            && &identity.node != expected
        {
            TunnelMetrics::inc(&self.metrics.rejected_wrong_node);
            tracing::warn!(expected = %expected, presented = %identity.node, "reached a node other than the one dialled");
            connection.close(REFUSED_LINK_CODE, b"not the node dialled");
            return Err(format!("reached `{}` instead", identity.node));
        }
        let link = Link::new(connection, identity, path);
        TunnelMetrics::inc(&self.metrics.links_established);
        tracing::info!(peer = %link.peer().node, path = %link.path(), "link up");
        let state = self.peer_state(&link.peer().node);
        if let Ok(mut links) = state.links.lock() {
            links.push(link.clone());
        }
        tokio::spawn(serve_streams(Arc::clone(self), link.clone()));
        tokio::spawn(serve_datagrams(Arc::clone(self), link.clone()));
        tokio::spawn(watch_link(Arc::clone(self), state, link.clone()));
        Ok(link)
    }

    /// Relays with a link first, by RTT, then the others in configured order.
    fn relays_by_rtt(&self) -> Vec<NodeName> {
        let mut connected = Vec::new();
        let mut others = Vec::new();
        for relay in &self.config.relays {
            if relay.node == self.node {
                continue;
            }
            match self.peer_if_known(&relay.node).and_then(|p| p.best()) {
                Some(link) => connected.push((link.connection().rtt(), relay.node.clone())),
                None => others.push(relay.node.clone()),
            }
        }
        connected.sort_by_key(|(rtt, _)| *rtt);
        connected
            .into_iter()
            .map(|(_, n)| n)
            .chain(others)
            .collect()
    }

    /// Opens a stream, sends the header and waits for an ok reply.
    pub(crate) async fn open_raw(
        self: &Arc<Self>,
        peer: &NodeName,
        request: &Request,
    ) -> Result<RawStream, OpenError> {
        let mut header = Vec::new();
        request.encode(&mut header).map_err(OpenError::Request)?;
        let mut attempt = 0;
        let (link, mut send, mut recv) = loop {
            let link = self.connect(peer).await?;
            match link.connection().open_bi().await {
                Ok((send, recv)) => break (link, send, recv),
                // The link died between choosing it and using it: one fresh try.
                Err(error) if attempt == 0 => {
                    tracing::debug!(peer = %peer, error = %error, "link lost while opening a stream; redialling");
                    attempt += 1;
                }
                Err(error) => {
                    return Err(OpenError::LinkLost {
                        peer: peer.clone(),
                        reason: error.to_string(),
                    });
                }
            }
        };
        TunnelMetrics::inc(&self.metrics.streams_opened);
        let guard = StreamGuard::new(link, Arc::clone(&self.metrics));
        send.write_all(&header)
            .await
            .map_err(|e| OpenError::LinkLost {
                peer: peer.clone(),
                reason: e.to_string(),
            })?;
        // A relay answers only once it has reached the target, which may take a dial.
        let timeout = match request {
            Request::RelayConnect { .. } => {
                self.config.timeouts.header + self.config.timeouts.connect
            }
            _ => self.config.timeouts.header,
        };
        let (reply, pending) = tokio::time::timeout(timeout, stream::read_reply(&mut recv))
            .await
            .map_err(|_| OpenError::Timeout {
                peer: peer.clone(),
                timeout,
            })?
            .map_err(|e| match e {
                HeaderReadError::Header(error) => OpenError::Protocol {
                    peer: peer.clone(),
                    error,
                },
                HeaderReadError::Stream(e) => OpenError::LinkLost {
                    peer: peer.clone(),
                    reason: e.to_string(),
                },
            })?;
        if reply.status != Status::Ok {
            return Err(OpenError::Refused {
                peer: peer.clone(),
                purpose: request.purpose(),
                status: reply.status,
                message: reply.message,
            });
        }
        Ok(RawStream {
            send,
            recv,
            pending,
            guard,
        })
    }
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

async fn send_hello(connection: &quinn::Connection) {
    if let Ok(mut stream) = connection.open_uni().await
        && stream.write_all(&HELLO).await.is_ok()
    {
        let _ = stream.finish();
    }
}

/// The wait before dial number `failures + 1`: doubling from the initial backoff up to
/// the maximum, with ±20% jitter so peers that failed together do not retry together.
fn backoff(config: &TunnelConfig, failures: u32) -> Duration {
    let base = config.timeouts.backoff_initial;
    let exponent = failures.saturating_sub(1).min(20);
    let delay = base
        .saturating_mul(1u32 << exponent)
        .min(config.timeouts.backoff_max);
    let jitter = 0.8 + 0.4 * rand::random::<f64>();
    delay.mul_f64(jitter)
}

async fn accept_loop(inner: Arc<Inner>, relayed: bool) {
    let endpoint = if relayed {
        inner.relay_endpoint.clone()
    } else {
        inner.endpoint.clone()
    };
    let mut shutdown = inner.shutdown_tx.subscribe();
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            _ = shutdown.changed() => None,
        };
        let Some(incoming) = incoming else {
            return;
        };
        if inner.link_count() >= inner.config.limits.max_links {
            TunnelMetrics::inc(&inner.metrics.rejected_link_limit);
            tracing::warn!(from = %incoming.remote_address(), limit = inner.config.limits.max_links, "refused a link: at the link limit");
            incoming.refuse();
            continue;
        }
        let inner = Arc::clone(&inner);
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let Ok(connecting) = incoming.accept() else {
                return;
            };
            let connection =
                match tokio::time::timeout(inner.config.timeouts.connect, connecting).await {
                    Ok(Ok(connection)) => connection,
                    Ok(Err(error)) => {
                        tracing::debug!(%remote, %error, "incoming handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let path = if relayed {
                match inner.relay_socket.relay_of(remote) {
                    Some(relay) => LinkPath::Relayed { relay },
                    None => {
                        connection.close(REFUSED_LINK_CODE, b"relay session gone");
                        return;
                    }
                }
            } else {
                LinkPath::Direct { remote }
            };
            match inner.admit(connection, path, None) {
                Ok(link) => send_hello(link.connection()).await,
                Err(error) => tracing::warn!(%remote, %error, "refused an incoming link"),
            }
        });
    }
}

async fn serve_streams(inner: Arc<Inner>, link: Link) {
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
            tracing::warn!(peer = %peer, %error, "refused a stream with a bad header");
            let status = match error {
                crate::header::HeaderError::UnsupportedVersion(_) => Status::UnsupportedVersion,
                _ => Status::BadRequest,
            };
            refuse(&mut send, &mut recv, status, &error.to_string()).await;
            return;
        }
        Ok(Err(HeaderReadError::Stream(error))) => {
            tracing::debug!(peer = %peer, %error, "stream ended before its header");
            return;
        }
        Err(_) => {
            TunnelMetrics::inc(&inner.metrics.rejected_headers);
            tracing::warn!(peer = %peer, ?timeout, "refused a stream that sent no header in time");
            let _ = send.reset(REFUSED_CODE);
            let _ = recv.stop(REFUSED_CODE);
            return;
        }
    };
    tracing::debug!(peer = %peer, purpose = request.purpose(), "stream accepted");
    match request {
        Request::RelayConnect { target } => {
            let stream = RawStream {
                send,
                recv,
                pending,
                guard,
            };
            relay::serve_connect(&inner, link, stream, &target).await;
        }
        Request::RelayAccept { source } => {
            let stream = RawStream {
                send,
                recv,
                pending,
                guard,
            };
            relay::accept_session(&inner, link, stream, &source).await;
        }
        request => {
            let incoming = IncomingStream {
                link,
                request,
                stream: RawStream {
                    send,
                    recv,
                    pending,
                    guard,
                },
                inner: Arc::clone(&inner),
            };
            match inner.incoming_tx.try_send(incoming) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(incoming)) => {
                    TunnelMetrics::inc(&inner.metrics.rejected_stream_limit);
                    tracing::warn!(peer = %peer, "refused a stream: the application is not keeping up");
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

async fn serve_datagrams(inner: Arc<Inner>, link: Link) {
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

async fn watch_link(inner: Arc<Inner>, state: Arc<PeerState>, link: Link) {
    let reason = link.connection().closed().await;
    if let Ok(mut links) = state.links.lock() {
        links.retain(|l| !l.same(&link));
    }
    TunnelMetrics::inc(&inner.metrics.links_closed);
    tracing::info!(peer = %state.node, path = %link.path(), %reason, "link down");
    if let LinkPath::Relayed { .. } = link.path() {
        inner
            .relay_socket
            .remove_path(link.connection().remote_address());
    }
    // A link that was in use comes back on its own, paced by the dial backoff.
    if !inner.closing()
        && !inner.is_relay(&state.node)
        && state.best().is_none()
        && state.wanted_within(inner.config.timeouts.link_idle)
    {
        tokio::spawn(redial(inner, state.node.clone()));
    }
}

async fn redial(inner: Arc<Inner>, peer: NodeName) {
    let state = inner.peer_state(&peer);
    let mut failures = 0;
    while !inner.closing()
        && state.best().is_none()
        && state.wanted_within(inner.config.timeouts.link_idle)
    {
        failures += 1;
        tokio::time::sleep(backoff(&inner.config, failures)).await;
        if inner.connect(&peer).await.is_ok() {
            return;
        }
    }
}

/// Keeps a link to a relay up for as long as the endpoint runs, so this node stays
/// reachable through it and its RTT is known.
async fn keep_relay(inner: Arc<Inner>, relay: NodeName) {
    let mut failures = 0;
    while !inner.closing() {
        match inner.connect(&relay).await {
            Ok(link) => {
                failures = 0;
                let mut shutdown = inner.shutdown_tx.subscribe();
                tokio::select! {
                    _ = link.connection().closed() => {}
                    _ = shutdown.changed() => return,
                }
            }
            Err(_) => {
                failures += 1;
                tokio::time::sleep(backoff(&inner.config, failures)).await;
            }
        }
    }
}

/// While `peer` is reached through a relay, tries its direct addresses now and then.
async fn retry_direct(inner: Arc<Inner>, peer: NodeName) {
    let state = inner.peer_state(&peer);
    let mut failures = 0u32;
    loop {
        let wait = inner
            .config
            .timeouts
            .direct_retry
            .saturating_mul(1 << failures.min(4));
        tokio::time::sleep(wait).await;
        if inner.closing()
            || state.has_direct()
            || !state.wanted_within(inner.config.timeouts.link_idle)
        {
            return;
        }
        for address in inner.addresses(&peer) {
            if inner.dial_direct(&peer, address).await.is_ok() {
                tracing::info!(peer = %peer, %address, "reached a relayed peer directly");
                return;
            }
        }
        failures += 1;
    }
}

/// Closes idle links and refreshes what health reports.
async fn sweep_loop(inner: Arc<Inner>) {
    let idle = inner.config.timeouts.link_idle;
    let period = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut shutdown = inner.shutdown_tx.subscribe();
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
        for peer in inner.all_peers() {
            let relay = inner.is_relay(&peer.node);
            for link in peer.links() {
                let _ = link.health();
                if !relay && link.idle_for(idle) {
                    tracing::debug!(peer = %peer.node, path = %link.path(), "closing an idle link");
                    link.connection().close(IDLE_CODE, b"idle");
                }
            }
        }
    }
}

async fn closed_paths_loop(inner: Arc<Inner>, mut closed: mpsc::UnboundedReceiver<SocketAddr>) {
    let mut shutdown = inner.shutdown_tx.subscribe();
    loop {
        let addr = tokio::select! {
            addr = closed.recv() => addr,
            _ = shutdown.changed() => None,
        };
        let Some(addr) = addr else {
            return;
        };
        for peer in inner.all_peers() {
            for link in peer.links() {
                if matches!(link.path(), LinkPath::Relayed { .. })
                    && link.connection().remote_address() == addr
                {
                    link.connection()
                        .close(SHUTDOWN_CODE, b"relay session ended");
                }
            }
        }
    }
}

/// Reloads the identity when its files change.
async fn reload_loop(inner: Arc<Inner>, interval: Duration) {
    let Some(files) = inner.tls.files().cloned() else {
        return;
    };
    let stamp = |files: &IdentityFiles| {
        [&files.ca, &files.cert, &files.key]
            .iter()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect::<Vec<_>>()
    };
    let mut last = stamp(&files);
    let mut shutdown = inner.shutdown_tx.subscribe();
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        let now = stamp(&files);
        if now == last {
            continue;
        }
        last = now;
        match inner.tls.reload() {
            Ok(()) => {
                tracing::info!(node = %inner.node, "reloaded the node certificate; links stay up")
            }
            Err(error) => {
                tracing::error!(node = %inner.node, %error, "could not reload the node certificate; keeping the current one")
            }
        }
    }
}
