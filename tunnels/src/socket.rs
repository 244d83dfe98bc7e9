//! The sockets under the QUIC endpoints.
//!
//! - [`GuardedSocket`] wraps the node's real UDP socket and counts packets that cannot be
//!   QUIC at all (garbage, port scans), logging at most one line per interval; quinn then
//!   drops them.
//! - [`RelaySocket`] is a virtual socket for the endpoint that runs end-to-end QUIC
//!   through relays: each relay session is a path with a virtual address; what quinn
//!   sends to that address leaves on the session's packet channel, and what arrives on
//!   the channel is delivered as if from that address.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::channel::{PacketChannel, PacketSender};
use crate::identity::NodeName;
use crate::metrics::TunnelMetrics;

/// How often a garbage packet is logged at most.
const GARBAGE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The node's UDP socket, counting what cannot be QUIC.
pub(crate) struct GuardedSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    metrics: Arc<TunnelMetrics>,
    last_log: Mutex<Option<Instant>>,
}

impl fmt::Debug for GuardedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedSocket").finish_non_exhaustive()
    }
}

impl GuardedSocket {
    pub(crate) fn new(inner: Arc<dyn AsyncUdpSocket>, metrics: Arc<TunnelMetrics>) -> Self {
        Self {
            inner,
            metrics,
            last_log: Mutex::new(None),
        }
    }

    fn garbage(&self, from: SocketAddr, len: usize) {
        TunnelMetrics::inc(&self.metrics.rejected_garbage);
        let Ok(mut last) = self.last_log.lock() else {
            return;
        };
        if last.is_none_or(|t| t.elapsed() >= GARBAGE_LOG_INTERVAL) {
            *last = Some(Instant::now());
            tracing::warn!(%from, len, "dropped a packet on the tunnel port that is not QUIC (more are counted in rejected_garbage)");
        }
    }
}

/// Whether a UDP payload can be a QUIC v1 packet for this endpoint (RFC 9000 §17):
/// the fixed bit set, a long header of version 1 (or version negotiation), or a short
/// header long enough for our 8-byte connection ids and an AEAD tag.
pub(crate) fn plausible_quic(packet: &[u8]) -> bool {
    let Some(&first) = packet.first() else {
        return false;
    };
    if first & 0x80 != 0 {
        let version = packet
            .get(1..5)
            .map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
        match version {
            Some(0) => true,
            Some(1) => first & 0x40 != 0 && packet.len() >= 21,
            _ => false,
        }
    } else {
        first & 0x40 != 0 && packet.len() >= 1 + 8 + 16
    }
}

impl AsyncUdpSocket for GuardedSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Arc::clone(&self.inner).create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let polled = self.inner.poll_recv(cx, bufs, meta);
        if let Poll::Ready(Ok(n)) = &polled {
            for (buf, meta) in bufs.iter().zip(meta.iter()).take(*n) {
                let stride = meta.stride.max(1);
                let data = &buf[..meta.len.min(buf.len())];
                for packet in data.chunks(stride) {
                    if !plausible_quic(packet) {
                        self.garbage(meta.addr, packet.len());
                    }
                }
            }
        }
        polled
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

/// One relay session seen as a path of the virtual socket.
#[derive(Debug)]
struct RelayPath {
    relay: NodeName,
    /// The node at the other end, as the relay named it; the end-to-end handshake must
    /// prove it.
    source: NodeName,
    sender: PacketSender,
    pump: JoinHandle<()>,
    /// The end-to-end connection on this path, once there is one.
    connection: Option<quinn::Connection>,
}

/// Close code of an end-to-end connection whose relay session ended.
const SESSION_ENDED: quinn::VarInt = quinn::VarInt::from_u32(5);

/// The virtual socket of the end-to-end endpoint.
pub(crate) struct RelaySocket {
    local: SocketAddr,
    paths: Mutex<HashMap<SocketAddr, RelayPath>>,
    delivered_tx: mpsc::Sender<(SocketAddr, Bytes)>,
    delivered_rx: Mutex<mpsc::Receiver<(SocketAddr, Bytes)>>,
    next: AtomicU64,
}

impl fmt::Debug for RelaySocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelaySocket")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// The prefix of virtual addresses: a unique-local /64 that never leaves the process.
const VIRTUAL_PREFIX: [u16; 4] = [0xfd63, 0x6175, 0x7365, 0x7761];

fn virtual_addr(n: u64) -> SocketAddr {
    let [a, b, c, d] = VIRTUAL_PREFIX;
    let ip = Ipv6Addr::new(
        a,
        b,
        c,
        d,
        (n >> 48) as u16,
        (n >> 32) as u16,
        (n >> 16) as u16,
        n as u16,
    );
    SocketAddr::new(IpAddr::V6(ip), 1)
}

impl RelaySocket {
    /// A socket with no paths, queueing at most `queue` packets for the endpoint.
    pub(crate) fn new(queue: usize) -> Self {
        let (delivered_tx, delivered_rx) = mpsc::channel(queue.max(1));
        Self {
            local: virtual_addr(0),
            paths: Mutex::new(HashMap::new()),
            delivered_tx,
            delivered_rx: Mutex::new(delivered_rx),
            next: AtomicU64::new(1),
        }
    }

    /// Makes a relay session with `source` through `relay` a path; returns its virtual
    /// address.
    pub(crate) fn add_path(
        self: &Arc<Self>,
        relay: NodeName,
        source: NodeName,
        mut channel: PacketChannel,
    ) -> SocketAddr {
        let addr = virtual_addr(self.next.fetch_add(1, Ordering::Relaxed));
        let sender = channel.sender().clone();
        let delivered = self.delivered_tx.clone();
        let socket = Arc::downgrade(self);
        // Spawned under the lock, so a session that ends at once still finds its entry.
        if let Ok(mut paths) = self.paths.lock() {
            let pump = tokio::spawn(async move {
                while let Some(packet) = channel.recv().await {
                    if delivered.send((addr, packet)).await.is_err() {
                        break;
                    }
                }
                drop(channel);
                if let Some(socket) = socket.upgrade() {
                    socket.session_ended(addr);
                }
            });
            paths.insert(
                addr,
                RelayPath {
                    relay,
                    source,
                    sender,
                    pump,
                    connection: None,
                },
            );
        }
        addr
    }

    /// The relay and the far node behind a virtual address.
    pub(crate) fn session_of(&self, addr: SocketAddr) -> Option<(NodeName, NodeName)> {
        let paths = self.paths.lock().ok()?;
        let path = paths.get(&addr)?;
        Some((path.relay.clone(), path.source.clone()))
    }

    /// Ties the end-to-end connection made on a path to it, so that the end of the
    /// session closes the connection at once.
    pub(crate) fn attach(&self, addr: SocketAddr, connection: quinn::Connection) {
        if let Ok(mut paths) = self.paths.lock()
            && let Some(path) = paths.get_mut(&addr)
        {
            path.connection = Some(connection);
        }
    }

    /// Ends a path (its end-to-end link closed, or its handshake failed): stops the
    /// pump, which ends the session at the relay.
    pub(crate) fn remove_path(&self, addr: SocketAddr) {
        let path = self
            .paths
            .lock()
            .ok()
            .and_then(|mut paths| paths.remove(&addr));
        if let Some(path) = path {
            path.pump.abort();
        }
    }

    /// The relay ended the session: the end-to-end connection on it is gone too.
    fn session_ended(&self, addr: SocketAddr) {
        let removed = self
            .paths
            .lock()
            .ok()
            .and_then(|mut paths| paths.remove(&addr));
        if let Some(connection) = removed.and_then(|p| p.connection) {
            connection.close(SESSION_ENDED, b"relay session ended");
        }
    }
}

#[derive(Debug)]
struct AlwaysWritable;

impl UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncUdpSocket for RelaySocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        let sender = self
            .paths
            .lock()
            .ok()
            .and_then(|paths| paths.get(&transmit.destination).map(|p| p.sender.clone()));
        // A packet for a path that is gone, or that finds a full queue, is lost like any
        // UDP packet (and counted by the sender); QUIC recovers or gives up.
        match sender {
            Some(sender) => {
                let _ = sender.send(transmit.contents);
            }
            None => {
                tracing::trace!(to = %transmit.destination, "dropped a packet for a relay session that is gone")
            }
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let Ok(mut rx) = self.delivered_rx.lock() else {
            return Poll::Ready(Err(io::Error::other("relay socket poisoned")));
        };
        let mut count = 0;
        while count < bufs.len().min(meta.len()) {
            match rx.poll_recv(cx) {
                Poll::Ready(Some((from, packet))) => {
                    let len = packet.len().min(bufs[count].len());
                    bufs[count][..len].copy_from_slice(&packet[..len]);
                    meta[count] = RecvMeta {
                        addr: from,
                        len,
                        stride: len,
                        ecn: None,
                        dst_ip: None,
                    };
                    count += 1;
                }
                Poll::Ready(None) => {
                    if count == 0 {
                        return Poll::Ready(Err(io::Error::other("relay socket closed")));
                    }
                    break;
                }
                Poll::Pending => break,
            }
        }
        if count == 0 {
            Poll::Pending
        } else {
            Poll::Ready(Ok(count))
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn may_fragment(&self) -> bool {
        // Inner QUIC keeps its packets at the 1200-byte minimum; no path MTU discovery.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quic_looking_packets_pass_and_garbage_does_not() {
        // A QUIC v1 Initial: long header, fixed bit, version 1.
        let mut initial = vec![0xc0, 0, 0, 0, 1];
        initial.resize(1200, 0);
        assert!(plausible_quic(&initial));
        // Version negotiation.
        assert!(plausible_quic(&[0x80, 0, 0, 0, 0, 0]));
        // A short header with room for a connection id and a tag.
        assert!(plausible_quic(&[0x40; 40]));
        assert!(!plausible_quic(b""));
        assert!(!plausible_quic(b"hello"));
        assert!(!plausible_quic(&[0x00; 40]), "fixed bit clear");
        assert!(
            !plausible_quic(&[0xc0, 0, 0, 0, 7, 0, 0]),
            "unknown version"
        );
        assert!(!plausible_quic(&[0x41, 1, 2]), "too short");
    }

    #[test]
    fn virtual_addresses_are_distinct_and_local() {
        let a = virtual_addr(1);
        let b = virtual_addr(2);
        assert_ne!(a, b);
        match a.ip() {
            IpAddr::V6(ip) => assert_eq!(ip.segments()[0], 0xfd63),
            IpAddr::V4(_) => panic!("virtual addresses are IPv6"),
        }
    }
}
