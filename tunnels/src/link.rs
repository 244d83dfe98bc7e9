//! A link: one authenticated QUIC connection to a peer node, direct or through a relay,
//! with what the balancer reads about its health.
//!
//! A link also routes the datagrams it receives to the UDP flow or relay session they
//! belong to (its channel table), and counts its open streams so idle links can close.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::datagram::Channel;
use crate::identity::{NodeName, PeerIdentity};

/// How a link reaches its peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkPath {
    /// Straight to the peer's address.
    Direct {
        /// The peer's address.
        remote: SocketAddr,
    },
    /// Through a relay node, end-to-end encrypted.
    Relayed {
        /// The relay.
        relay: NodeName,
    },
}

impl fmt::Display for LinkPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkPath::Direct { remote } => write!(f, "direct to {remote}"),
            LinkPath::Relayed { relay } => write!(f, "relayed by {relay}"),
        }
    }
}

#[derive(Debug)]
struct Activity {
    last_active: Instant,
    last_seen: Instant,
    rx_datagrams: u64,
}

/// The shared state of one link.
#[derive(Debug)]
pub(crate) struct LinkInner {
    pub(crate) connection: quinn::Connection,
    pub(crate) peer: PeerIdentity,
    pub(crate) path: LinkPath,
    /// Of two direct links two nodes dialled at once, whether this is the one both keep.
    agreed: bool,
    established: Instant,
    open_streams: AtomicUsize,
    activity: Mutex<Activity>,
    channels: Mutex<HashMap<(Channel, u64), mpsc::Sender<Bytes>>>,
}

/// A handle to a link; clones share it.
#[derive(Debug, Clone)]
pub struct Link(pub(crate) Arc<LinkInner>);

/// What the balancer and the admin endpoint read about a link.
#[derive(Debug, Clone)]
pub struct LinkHealth {
    /// The peer node.
    pub peer: NodeName,
    /// Direct or relayed.
    pub path: LinkPath,
    /// Whether the link is still up.
    pub up: bool,
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Packets sent on the link.
    pub sent_packets: u64,
    /// Packets declared lost.
    pub lost_packets: u64,
    /// `lost / sent`, 0 when nothing was sent.
    pub loss: f64,
    /// Streams open now.
    pub open_streams: usize,
    /// When the peer was last heard from (any packet, keep-alives included).
    pub last_seen: Instant,
    /// When the link was made.
    pub established: Instant,
}

impl Link {
    pub(crate) fn new(
        connection: quinn::Connection,
        peer: PeerIdentity,
        path: LinkPath,
        agreed: bool,
    ) -> Self {
        let now = Instant::now();
        Self(Arc::new(LinkInner {
            connection,
            peer,
            path,
            agreed,
            established: now,
            open_streams: AtomicUsize::new(0),
            activity: Mutex::new(Activity {
                last_active: now,
                last_seen: now,
                rx_datagrams: 0,
            }),
            channels: Mutex::new(HashMap::new()),
        }))
    }

    /// The authenticated peer.
    pub fn peer(&self) -> &PeerIdentity {
        &self.0.peer
    }

    /// How the link reaches the peer.
    pub fn path(&self) -> &LinkPath {
        &self.0.path
    }

    /// The QUIC connection.
    pub fn connection(&self) -> &quinn::Connection {
        &self.0.connection
    }

    /// Whether, of two direct links to the same peer, this is the one both nodes keep.
    pub(crate) fn agreed(&self) -> bool {
        self.0.agreed
    }

    /// Whether the connection is still open.
    pub fn is_up(&self) -> bool {
        self.0.connection.close_reason().is_none()
    }

    /// Whether two handles are the same link.
    pub fn same(&self, other: &Link) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    pub(crate) fn stream_opened(&self) {
        self.0.open_streams.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    pub(crate) fn stream_closed(&self) {
        self.0.open_streams.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }

    /// Streams open on this link now.
    pub fn open_streams(&self) -> usize {
        self.0.open_streams.load(Ordering::Relaxed)
    }

    pub(crate) fn touch(&self) {
        if let Ok(mut activity) = self.0.activity.lock() {
            activity.last_active = Instant::now();
        }
    }

    /// Whether nothing has used the link for `idle`.
    pub(crate) fn idle_for(&self, idle: Duration) -> bool {
        self.open_streams() == 0
            && self.channel_count() == 0
            && self
                .0
                .activity
                .lock()
                .map(|a| a.last_active.elapsed() >= idle)
                .unwrap_or(false)
    }

    /// Health now; also notes whether the peer was heard from since the last look.
    pub fn health(&self) -> LinkHealth {
        let stats = self.0.connection.stats();
        let last_seen = match self.0.activity.lock() {
            Ok(mut activity) => {
                if stats.udp_rx.datagrams != activity.rx_datagrams {
                    activity.rx_datagrams = stats.udp_rx.datagrams;
                    activity.last_seen = Instant::now();
                }
                activity.last_seen
            }
            Err(_) => self.0.established,
        };
        let sent = stats.path.sent_packets;
        let lost = stats.path.lost_packets;
        LinkHealth {
            peer: self.0.peer.node.clone(),
            path: self.0.path.clone(),
            up: self.is_up(),
            rtt: self.0.connection.rtt(),
            sent_packets: sent,
            lost_packets: lost,
            loss: if sent == 0 {
                0.0
            } else {
                lost as f64 / sent as f64
            },
            open_streams: self.open_streams(),
            last_seen,
            established: self.0.established,
        }
    }

    /// Registers where datagrams of a channel go; `false` if the id is taken.
    pub(crate) fn register_channel(
        &self,
        channel: Channel,
        id: u64,
        tx: mpsc::Sender<Bytes>,
    ) -> bool {
        match self.0.channels.lock() {
            Ok(mut channels) => {
                if channels.contains_key(&(channel, id)) {
                    return false;
                }
                channels.insert((channel, id), tx);
                true
            }
            Err(_) => false,
        }
    }

    pub(crate) fn unregister_channel(&self, channel: Channel, id: u64) {
        if let Ok(mut channels) = self.0.channels.lock() {
            channels.remove(&(channel, id));
        }
        self.touch();
    }

    /// Where a datagram of this channel goes, if anywhere.
    pub(crate) fn channel(&self, channel: Channel, id: u64) -> Option<mpsc::Sender<Bytes>> {
        self.0
            .channels
            .lock()
            .ok()
            .and_then(|channels| channels.get(&(channel, id)).cloned())
    }

    fn channel_count(&self) -> usize {
        self.0.channels.lock().map(|c| c.len()).unwrap_or(0)
    }
}
