//! Counters of a node's tunnel endpoint: what happened on its links, streams and
//! datagrams, and every kind of input it refused. Plain atomics, read as a snapshot by
//! the admin endpoint and by tests; the mesh exports them to Prometheus.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! metrics {
    ($( $(#[$doc:meta])* $name:ident ),+ $(,)?) => {
        /// Live counters, shared by every task of one endpoint.
        #[derive(Debug, Default)]
        pub struct TunnelMetrics {
            $( $(#[$doc])* pub $name: AtomicU64, )+
        }

        /// The counters at one moment.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct MetricsSnapshot {
            $( $(#[$doc])* pub $name: u64, )+
        }

        impl TunnelMetrics {
            /// Reads every counter.
            pub fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot {
                    $( $name: self.$name.load(Ordering::Relaxed), )+
                }
            }
        }
    };
}

metrics! {
    /// Links that completed a handshake, either direction.
    links_established,
    /// Links that closed.
    links_closed,
    /// Dials that failed (unreachable, timed out, refused).
    dial_failures,
    /// UDP packets on the tunnel port that cannot be QUIC (garbage, scans).
    rejected_garbage,
    /// Incoming handshakes that failed: no certificate, wrong ALPN, timeout, refused.
    rejected_handshakes,
    /// Handshakes refused because the peer's certificate had expired or was not yet valid.
    rejected_expired,
    /// Handshakes refused because the peer's certificate is not from our CA.
    rejected_unknown_ca,
    /// Handshakes refused because the peer is not the node we dialled.
    rejected_wrong_node,
    /// Handshakes refused for another certificate problem.
    rejected_bad_certificate,
    /// Connections refused because the node has as many links as it may.
    rejected_link_limit,
    /// Streams opened by this node.
    streams_opened,
    /// Streams accepted from peers.
    streams_accepted,
    /// Streams that ended, either side.
    streams_closed,
    /// Streams refused: header malformed, oversized, truncated or of an unknown version.
    rejected_headers,
    /// Streams the peer reset or ended before sending a header.
    streams_abandoned,
    /// Streams refused because of a limit.
    rejected_stream_limit,
    /// Datagrams sent.
    datagrams_sent,
    /// Datagrams received and delivered.
    datagrams_received,
    /// Datagrams dropped: malformed, for an unknown flow, or with no room to queue.
    datagrams_dropped,
    /// Datagrams too large for the path, sent framed on their flow's stream instead.
    datagrams_over_stream,
    /// Relay sessions this node forwarded (as a relay).
    relay_sessions,
    /// Packets this node forwarded as a relay.
    relay_packets,
    /// Relay requests refused: this node is not a relay, an unknown target, a bad offer.
    relay_refusals,
}

impl TunnelMetrics {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl MetricsSnapshot {
    /// Streams open now (opened and accepted, less closed).
    pub fn streams_open(&self) -> u64 {
        (self.streams_opened + self.streams_accepted).saturating_sub(self.streams_closed)
    }
}

/// Lets a kind of warning through at most once per interval, and says how many were held
/// back meanwhile, so a peer cannot flood the log.
#[derive(Debug)]
pub struct LogGate {
    interval: std::time::Duration,
    last: std::sync::Mutex<Option<std::time::Instant>>,
    held: AtomicU64,
}

impl LogGate {
    /// A gate that opens once per `interval`.
    pub const fn new(interval: std::time::Duration) -> Self {
        Self {
            interval,
            last: std::sync::Mutex::new(None),
            held: AtomicU64::new(0),
        }
    }

    /// `Some(held back since the last one)` when this one may be logged.
    pub fn pass(&self) -> Option<u64> {
        let Ok(mut last) = self.last.lock() else {
            return None;
        };
        if last.is_some_and(|t| t.elapsed() < self.interval) {
            self.held.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(std::time::Instant::now());
        Some(self.held.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_holds_back_repeats_and_counts_them() {
        let gate = LogGate::new(std::time::Duration::from_secs(60));
        assert_eq!(gate.pass(), Some(0));
        assert_eq!(gate.pass(), None);
        assert_eq!(gate.pass(), None);
        let open = LogGate::new(std::time::Duration::ZERO);
        assert_eq!(open.pass(), Some(0));
        assert_eq!(open.pass(), Some(0));
    }
}
