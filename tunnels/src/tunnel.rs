//! A node's tunnel endpoint: the public handle, the shared state behind it, and the
//! housekeeping tasks (idle links, forgotten peers, certificate reloads).
//!
//! How links are made lives in `peers`; what peers send in `incoming`; relays in `relay`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::VarInt;
use tokio::sync::{mpsc, watch};

use crate::channel::PacketChannel;
use crate::config::{PeerDirectory, TunnelConfig};
use crate::datagram::Channel;
use crate::error::{OpenError, TunnelError};
use crate::header::{ProxyTarget, Request, Status};
use crate::identity::{IdentityFiles, LoadedIdentity, NodeName};
use crate::incoming::{self, Incoming, IncomingStream};
use crate::link::{Link, LinkHealth};
use crate::metrics::{LogGate, MetricsSnapshot, TunnelMetrics};
use crate::peers::{self, PeerState, Reachability, Use};
use crate::socket::{GuardedSocket, RelaySocket};
use crate::stream::{self, HeaderReadError, RawStream, StreamGuard, TunnelStream};
use crate::tls::{TlsError, TlsIdentity};
use crate::udp::UdpFlow;

/// Close code of a link closed because it was idle.
const IDLE_CODE: VarInt = VarInt::from_u32(1);
/// Close code of a link closed because the node shuts down.
const SHUTDOWN_CODE: VarInt = VarInt::from_u32(2);
/// How often a kind of warning may be logged.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

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

/// Warnings a peer could otherwise repeat without end.
#[derive(Debug)]
pub(crate) struct Logs {
    pub(crate) dial: LogGate,
    pub(crate) refused_link: LogGate,
    pub(crate) handshake: LogGate,
    pub(crate) bad_header: LogGate,
    pub(crate) relay: LogGate,
}

/// The shared state of an endpoint.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) node: NodeName,
    pub(crate) config: TunnelConfig,
    pub(crate) metrics: Arc<TunnelMetrics>,
    pub(crate) logs: Logs,
    tls: TlsIdentity,
    endpoint: quinn::Endpoint,
    relay_endpoint: quinn::Endpoint,
    pub(crate) relay_socket: Arc<RelaySocket>,
    pub(crate) directory: Arc<dyn PeerDirectory>,
    pub(crate) peers: Mutex<HashMap<NodeName, Arc<PeerState>>>,
    pub(crate) link_slots: AtomicUsize,
    incoming_tx: Mutex<Option<mpsc::Sender<IncomingStream>>>,
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
        // A relay must not be able to move one session's connection onto another path.
        relay_server.migration(false);
        let mut relay_client = quinn::ClientConfig::new(Arc::new(tls.quic_client_config()?));
        relay_client.transport_config(inner_transport);
        let relay_socket = Arc::new(RelaySocket::new(config.limits.packet_queue * 4));
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
            logs: Logs {
                dial: LogGate::new(LOG_INTERVAL),
                refused_link: LogGate::new(LOG_INTERVAL),
                handshake: LogGate::new(LOG_INTERVAL),
                bad_header: LogGate::new(LOG_INTERVAL),
                relay: LogGate::new(LOG_INTERVAL),
            },
            tls,
            endpoint,
            relay_endpoint,
            relay_socket,
            directory,
            peers: Mutex::new(HashMap::new()),
            link_slots: AtomicUsize::new(0),
            incoming_tx: Mutex::new(Some(incoming_tx)),
            shutdown_tx,
        });
        tokio::spawn(incoming::accept_loop(Arc::clone(&inner), false));
        tokio::spawn(incoming::accept_loop(Arc::clone(&inner), true));
        tokio::spawn(sweep_loop(Arc::clone(&inner)));
        if let Some(interval) = inner.config.reload_interval {
            tokio::spawn(reload_loop(Arc::clone(&inner), interval));
        }
        for relay in inner.config.relays.clone() {
            if relay.node != inner.node {
                tokio::spawn(peers::keep_relay(Arc::clone(&inner), relay.node));
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
        self.inner.connect(peer, Use::Wanted).await
    }

    /// Opens a stream to `peer` for `request` and waits for its reply.
    pub async fn open(&self, peer: &NodeName, request: Request) -> Result<TunnelStream, OpenError> {
        Ok(TunnelStream::new(
            self.inner.open_raw(peer, &request, Use::Wanted).await?,
        ))
    }

    /// Opens a UDP flow to `target` on `peer`.
    pub async fn open_udp(
        &self,
        peer: &NodeName,
        target: ProxyTarget,
    ) -> Result<UdpFlow, OpenError> {
        let request = Request::UdpFlow(target);
        let stream = self.inner.open_raw(peer, &request, Use::Wanted).await?;
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

    /// Whether `peer` has a link up, is failing to be dialled (and when it may be tried
    /// again), or has not been tried.
    pub fn reachability(&self, peer: &NodeName) -> Reachability {
        self.inner
            .peer_if_known(peer)
            .map_or(Reachability::Unknown, |p| p.reachability())
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

    /// Closes every link and stops the endpoint; [`Incoming::accept`] then returns
    /// `None`.
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
        // One unidirectional stream: the acceptor's link confirmation.
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
    pub(crate) fn endpoint(&self) -> &quinn::Endpoint {
        &self.endpoint
    }

    pub(crate) fn relay_endpoint(&self) -> &quinn::Endpoint {
        &self.relay_endpoint
    }

    fn local_addr(&self) -> SocketAddr {
        self.endpoint.local_addr().unwrap_or(self.config.listen)
    }

    pub(crate) fn closing(&self) -> bool {
        *self.shutdown_tx.borrow()
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown_tx.subscribe()
    }

    /// Where accepted requests go, until the endpoint closes.
    pub(crate) fn incoming_sender(&self) -> Option<mpsc::Sender<IncomingStream>> {
        self.incoming_tx.lock().ok()?.clone()
    }

    fn shutdown(&self) {
        if self.shutdown_tx.send_replace(true) {
            return;
        }
        // Dropping the sender ends the application's `Incoming` once it is drained.
        if let Ok(mut sender) = self.incoming_tx.lock() {
            sender.take();
        }
        self.endpoint.close(SHUTDOWN_CODE, b"node shutting down");
        self.relay_endpoint
            .close(SHUTDOWN_CODE, b"node shutting down");
        tracing::info!(node = %self.node, "tunnel endpoint closed");
    }

    /// Opens a stream, sends the header and waits for an ok reply.
    pub(crate) async fn open_raw(
        self: &Arc<Self>,
        peer: &NodeName,
        request: &Request,
        use_: Use,
    ) -> Result<RawStream, OpenError> {
        let mut header = Vec::new();
        request.encode(&mut header).map_err(OpenError::Request)?;
        let mut attempt = 0;
        let (link, mut send, mut recv) = loop {
            let link = self.connect(peer, use_).await?;
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

/// Closes idle links and duplicates, forgets peers nothing refers to, and refreshes what
/// health reports.
async fn sweep_loop(inner: Arc<Inner>) {
    let idle = inner.config.timeouts.link_idle;
    let period = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut shutdown = inner.shutdown_signal();
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
        for peer in inner.all_peers() {
            inner.close_duplicates(&peer);
            let relay = inner.is_relay(&peer.node);
            for link in peer.links() {
                let _ = link.health();
                if !relay && link.idle_for(idle) {
                    tracing::debug!(peer = %peer.node, path = %link.path(), "closing an idle link");
                    link.connection().close(IDLE_CODE, b"idle");
                }
            }
        }
        inner.forget_idle_peers();
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
    let mut shutdown = inner.shutdown_signal();
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
