//! Counters of what the DNS server answered, and their snapshot for the admin endpoint.
//!
//! Relaxed atomics only: counting never waits and never orders anything else.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the DNS server has answered since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DnsStats {
    /// Messages received (UDP datagrams and TCP messages), well-formed or not.
    pub queries: u64,
    /// Questions answered from the node's snapshot (any response code).
    pub cluster: u64,
    /// Of those, NXDOMAIN.
    pub cluster_nxdomain: u64,
    /// Of those, NODATA (the name exists, the type does not).
    pub cluster_nodata: u64,
    /// Of the cluster answers, those copied from the answer cache (the same question
    /// answered before from the same snapshot) rather than looked up and encoded.
    pub cluster_cached: u64,
    /// Questions answered by an upstream.
    pub forwarded: u64,
    /// Questions answered from the upstream cache.
    pub cache_hits: u64,
    /// Forwarded questions that got SERVFAIL because every upstream failed or timed out.
    pub upstream_failures: u64,
    /// Forwarded questions that got SERVFAIL at once: too many upstream queries in flight.
    pub upstream_busy: u64,
    /// Forwarded questions that got SERVFAIL because no upstream is configured.
    pub no_upstreams: u64,
    /// FORMERR answers (messages that do not decode, or ask no or several questions).
    pub formerr: u64,
    /// REFUSED or NOTIMP answers (zone transfers, other opcodes, other classes).
    pub refused: u64,
    /// Answers too large for their transport, sent with TC: over UDP with no records so
    /// the client retries over TCP; over TCP (past 64 KiB) with what fits.
    pub truncated: u64,
    /// Messages dropped without an answer: too short to reply to, themselves responses,
    /// or past the server's in-flight limits.
    pub dropped: u64,
}

/// The live counters behind [`DnsStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) queries: AtomicU64,
    pub(crate) cluster: AtomicU64,
    pub(crate) cluster_nxdomain: AtomicU64,
    pub(crate) cluster_nodata: AtomicU64,
    pub(crate) cluster_cached: AtomicU64,
    pub(crate) forwarded: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) upstream_failures: AtomicU64,
    pub(crate) upstream_busy: AtomicU64,
    pub(crate) no_upstreams: AtomicU64,
    pub(crate) formerr: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) truncated: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> DnsStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DnsStats {
            queries: get(&self.queries),
            cluster: get(&self.cluster),
            cluster_nxdomain: get(&self.cluster_nxdomain),
            cluster_nodata: get(&self.cluster_nodata),
            cluster_cached: get(&self.cluster_cached),
            forwarded: get(&self.forwarded),
            cache_hits: get(&self.cache_hits),
            upstream_failures: get(&self.upstream_failures),
            upstream_busy: get(&self.upstream_busy),
            no_upstreams: get(&self.no_upstreams),
            formerr: get(&self.formerr),
            refused: get(&self.refused),
            truncated: get(&self.truncated),
            dropped: get(&self.dropped),
        }
    }
}
