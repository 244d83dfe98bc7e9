//! Links to peers: made on demand and shared, one dial per peer at a time whose outcome
//! every waiting caller shares; direct first, then through the relay with the lowest RTT;
//! failed dials back off; a lost link that was in use is redialled on that schedule; a
//! relayed peer is retried directly now and then; the node's link count is bounded; of
//! two direct links two nodes dialled at once, both keep the same one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quinn::VarInt;

use crate::config::TunnelConfig;
use crate::error::OpenError;
use crate::identity::NodeName;
use crate::incoming::{self, await_hello};
use crate::link::{Link, LinkPath};
use crate::metrics::TunnelMetrics;
use crate::relay;
use crate::tls;
use crate::tunnel::Inner;

/// Close code of a link refused after the handshake.
pub(crate) const REFUSED_LINK_CODE: VarInt = VarInt::from_u32(3);
/// After a link is lost, how long the peer counts as failing before a redial holds
/// the dial lock (which then keeps it so).
const LOSS_GRACE: Duration = Duration::from_millis(100);
/// Close code of the second of two links two nodes dialled at once.
const DUPLICATE_CODE: VarInt = VarInt::from_u32(4);

/// What the endpoint knows of whether a peer can be reached, for callers that choose
/// among peers (the mesh skips endpoints on a node that is failing until its retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    /// A link is up.
    Linked,
    /// No link and no failed dial: it has not been tried (or was let go).
    Unknown,
    /// The last link was lost (`failures` 0) or the last dials failed; the next dial may
    /// start in `retry_in` (zero: now), or is under way (`dialling`).
    Failing {
        /// Until the next dial may start.
        retry_in: Duration,
        /// Dials that failed in a row.
        failures: u32,
        /// Whether a dial is under way now.
        dialling: bool,
    },
}

/// Whether a dial counts as use of the peer: used peers get their lost links redialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// A caller wants the peer.
    Wanted,
    /// The endpoint's own business (a redial, a relay's onward leg): not use.
    Quiet,
}

#[derive(Debug, Default)]
struct DialState {
    failures: u32,
    next_attempt: Option<Instant>,
    last_error: String,
}

/// Everything known about one peer.
#[derive(Debug)]
pub(crate) struct PeerState {
    pub(crate) node: NodeName,
    links: Mutex<Vec<Link>>,
    dial: tokio::sync::Mutex<DialState>,
    /// Dials finished; a caller that waited through one shares its outcome.
    dials_done: AtomicU64,
    wanted_at: Mutex<Option<Instant>>,
    retrying_direct: AtomicBool,
    /// After a failed dial: when the next may start, and how many failed in a row.
    failing: Mutex<Option<(Instant, u32)>>,
}

impl PeerState {
    fn new(node: NodeName) -> Self {
        Self {
            node,
            links: Mutex::new(Vec::new()),
            dial: tokio::sync::Mutex::new(DialState::default()),
            dials_done: AtomicU64::new(0),
            wanted_at: Mutex::new(None),
            retrying_direct: AtomicBool::new(false),
            failing: Mutex::new(None),
        }
    }

    /// Whether the peer has a link up, is failing to be dialled, or neither.
    pub(crate) fn reachability(&self) -> Reachability {
        if self.best().is_some() {
            return Reachability::Linked;
        }
        match self.failing.lock().ok().and_then(|f| *f) {
            Some((retry_at, failures)) => Reachability::Failing {
                retry_in: retry_at.saturating_duration_since(Instant::now()),
                failures,
                dialling: self.dial.try_lock().is_err(),
            },
            None => Reachability::Unknown,
        }
    }

    fn set_failing(&self, failing: Option<(Instant, u32)>) {
        if let Ok(mut f) = self.failing.lock() {
            *f = failing;
        }
    }

    /// The link to use: up, direct before relayed, the agreed one of two direct links,
    /// then the lowest RTT.
    pub(crate) fn best(&self) -> Option<Link> {
        let links = self.links.lock().ok()?;
        links
            .iter()
            .filter(|l| l.is_up())
            .min_by_key(|l| {
                let relayed = matches!(l.path(), LinkPath::Relayed { .. });
                (relayed, !l.agreed(), l.connection().rtt())
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

    pub(crate) fn wanted_within(&self, window: Duration) -> bool {
        self.wanted_at
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| at.elapsed() < window)
    }

    pub(crate) fn links(&self) -> Vec<Link> {
        self.links.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Whether nothing refers to this peer any more: no link, no dial, no recent use.
    pub(crate) fn forgettable(&self, window: Duration) -> bool {
        self.links.lock().is_ok_and(|l| l.is_empty())
            && self.dial.try_lock().is_ok()
            && !self.wanted_within(window)
            && !self.retrying_direct.load(Ordering::Relaxed)
    }

    pub(crate) fn remove(&self, link: &Link) {
        if let Ok(mut links) = self.links.lock() {
            links.retain(|l| !l.same(link));
        }
    }
}

/// The wait before dial number `failures + 1`: doubling from the initial backoff up to
/// the maximum, with ±20% jitter so peers that failed together do not retry together.
pub(crate) fn backoff(config: &TunnelConfig, failures: u32) -> Duration {
    let base = config.timeouts.backoff_initial;
    let exponent = failures.saturating_sub(1).min(20);
    let delay = base
        .saturating_mul(1u32 << exponent)
        .min(config.timeouts.backoff_max)
        .min(Duration::from_secs(24 * 3600));
    let jitter = 0.8 + 0.4 * rand::random::<f64>();
    delay.mul_f64(jitter)
}

impl Inner {
    pub(crate) fn peer_state(&self, node: &NodeName) -> Arc<PeerState> {
        match self.peers.lock() {
            Ok(mut peers) => Arc::clone(
                peers
                    .entry(node.clone())
                    .or_insert_with(|| Arc::new(PeerState::new(node.clone()))),
            ),
            Err(_) => Arc::new(PeerState::new(node.clone())),
        }
    }

    pub(crate) fn peer_if_known(&self, node: &NodeName) -> Option<Arc<PeerState>> {
        self.peers.lock().ok()?.get(node).cloned()
    }

    pub(crate) fn all_peers(&self) -> Vec<Arc<PeerState>> {
        self.peers
            .lock()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets peers nothing refers to, so names seen once do not accumulate.
    pub(crate) fn forget_idle_peers(&self) {
        let window = self.config.timeouts.link_idle;
        if let Ok(mut peers) = self.peers.lock() {
            peers.retain(|node, state| self.is_relay(node) || !state.forgettable(window));
        }
    }

    pub(crate) fn is_relay(&self, node: &NodeName) -> bool {
        self.config.relays.iter().any(|r| &r.node == node)
    }

    pub(crate) fn addresses(&self, node: &NodeName) -> Vec<SocketAddr> {
        let mut addresses = self.directory.addresses(node);
        for relay in &self.config.relays {
            if &relay.node == node {
                addresses.extend(relay.addresses.iter().copied());
            }
        }
        addresses
    }

    /// Whether the node holds as many links as it may.
    pub(crate) fn links_full(&self) -> bool {
        self.link_slots.load(Ordering::Relaxed) >= self.config.limits.max_links
    }

    fn reserve_link(&self) -> bool {
        let max = self.config.limits.max_links;
        self.link_slots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    pub(crate) fn release_link(&self) {
        let _ = self
            .link_slots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// The link to `peer`: an existing one, or the outcome of one dial shared by every
    /// caller that waited for it.
    ///
    /// Boxed as `Send` by name: the dial may reach a relay through `connect` again, a
    /// recursion whose future the compiler cannot prove `Send` by inference.
    pub(crate) fn connect<'a>(
        self: &'a Arc<Self>,
        peer: &'a NodeName,
        use_: Use,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Link, OpenError>> + Send + 'a>> {
        Box::pin(self.connect_inner(peer, use_))
    }

    async fn connect_inner(
        self: &Arc<Self>,
        peer: &NodeName,
        use_: Use,
    ) -> Result<Link, OpenError> {
        if self.closing() {
            return Err(OpenError::Closed);
        }
        let state = self.peer_state(peer);
        if use_ == Use::Wanted {
            state.want();
        }
        if let Some(link) = state.best() {
            link.touch();
            return Ok(link);
        }
        let seen = state.dials_done.load(Ordering::Acquire);
        // The dial runs in a task of its own: a caller that gives up (a connect timeout
        // shorter than the direct attempts plus the relays) must not cancel it halfway,
        // or a peer reachable only through a relay is never reached. Its link is
        // adopted either way, for the next caller.
        let inner = Arc::clone(self);
        let peer = peer.clone();
        tokio::spawn(async move { inner.dial_shared(&state, &peer, seen).await })
            .await
            .unwrap_or(Err(OpenError::Closed))
    }

    /// [`Self::connect`]'s dial, under the peer's dial lock: one dial at a time, its
    /// outcome shared by every caller that waited for it.
    async fn dial_shared(
        self: &Arc<Self>,
        state: &Arc<PeerState>,
        peer: &NodeName,
        seen: u64,
    ) -> Result<Link, OpenError> {
        let mut dial = state.dial.lock().await;
        if let Some(link) = state.best() {
            link.touch();
            return Ok(link);
        }
        if state.dials_done.load(Ordering::Acquire) != seen {
            // A dial finished (and failed) while we waited for it: its outcome is ours.
            return Err(OpenError::Unreachable {
                peer: peer.clone(),
                reason: dial.last_error.clone(),
            });
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
            let mut shutdown = self.shutdown_signal();
            if self.closing() {
                return Err(OpenError::Closed);
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return Err(OpenError::Closed),
            }
        }
        let result = self.dial(peer).await;
        state.dials_done.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(link) => {
                *dial = DialState::default();
                state.set_failing(None);
                Ok(link)
            }
            Err(error) => {
                dial.failures = dial.failures.saturating_add(1);
                let delay = backoff(&self.config, dial.failures);
                dial.next_attempt = Some(Instant::now() + delay);
                dial.last_error = error.to_string();
                state.set_failing(Some((Instant::now() + delay, dial.failures)));
                if let Some(held) = self.logs.dial.pass() {
                    tracing::warn!(peer = %peer, failures = dial.failures, retry_in = ?delay, error = %error, held, "dial failed");
                }
                Err(error)
            }
        }
    }

    async fn dial(self: &Arc<Self>, peer: &NodeName) -> Result<Link, OpenError> {
        if self.links_full() {
            return Err(OpenError::Unreachable {
                peer: peer.clone(),
                reason: format!(
                    "this node is at its limit of {} links",
                    self.config.limits.max_links
                ),
            });
        }
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
                            self.start_direct_retries(peer);
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
            .endpoint()
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
        self.admit(
            connection,
            LinkPath::Direct { remote: address },
            Some(peer),
            true,
        )
        .map_err(lost)
    }

    /// Registers an established connection as a link, after checking who it is and
    /// taking a slot of the node's link limit. `expected` is the node it must be;
    /// `dialled` says whether this node dialled it.
    pub(crate) fn admit(
        self: &Arc<Self>,
        connection: quinn::Connection,
        path: LinkPath,
        expected: Option<&NodeName>,
        dialled: bool,
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
            tracing::warn!(expected = %expected, presented = %identity.node, "reached a node other than the one expected");
            connection.close(REFUSED_LINK_CODE, b"not the node expected");
            return Err(format!(
                "reached `{}` instead of `{expected}`",
                identity.node
            ));
        }
        if !self.reserve_link() {
            TunnelMetrics::inc(&self.metrics.rejected_link_limit);
            connection.close(REFUSED_LINK_CODE, b"link limit");
            return Err(format!(
                "at the limit of {} links",
                self.config.limits.max_links
            ));
        }
        // Of two direct links two nodes dialled at the same time, both keep the one the
        // node with the lower name dialled.
        let agreed = (self.node < identity.node) == dialled;
        let link = Link::new(connection, identity, path, agreed);
        TunnelMetrics::inc(&self.metrics.links_established);
        tracing::info!(peer = %link.peer().node, path = %link.path(), "link up");
        let state = self.peer_state(&link.peer().node);
        if let Ok(mut links) = state.links.lock() {
            links.push(link.clone());
        }
        tokio::spawn(incoming::serve_streams(Arc::clone(self), link.clone()));
        tokio::spawn(incoming::serve_datagrams(Arc::clone(self), link.clone()));
        tokio::spawn(watch_link(Arc::clone(self), state, link.clone()));
        if let LinkPath::Relayed { .. } = link.path() {
            self.relay_socket.attach(
                link.connection().remote_address(),
                link.connection().clone(),
            );
        }
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

    /// Starts (once per peer) the task that tries a relayed peer's direct addresses.
    fn start_direct_retries(self: &Arc<Self>, peer: &NodeName) {
        let state = self.peer_state(peer);
        if !state.retrying_direct.swap(true, Ordering::AcqRel) {
            tokio::spawn(retry_direct(Arc::clone(self), state));
        }
    }

    /// Closes the second of two direct links to a peer once nothing uses it.
    pub(crate) fn close_duplicates(&self, state: &PeerState) {
        let links = state.links();
        let agreed_up = links
            .iter()
            .any(|l| l.is_up() && l.agreed() && matches!(l.path(), LinkPath::Direct { .. }));
        if !agreed_up {
            return;
        }
        for link in links {
            if !link.agreed()
                && matches!(link.path(), LinkPath::Direct { .. })
                && link.idle_for(Duration::ZERO)
            {
                tracing::debug!(peer = %state.node, "closing the second of two direct links");
                link.connection().close(DUPLICATE_CODE, b"duplicate link");
            }
        }
    }
}

async fn watch_link(inner: Arc<Inner>, state: Arc<PeerState>, link: Link) {
    let reason = link.connection().closed().await;
    state.remove(&link);
    if state.best().is_none() && !matches!(reason, quinn::ConnectionError::LocallyClosed) {
        // Lost, not let go: callers choosing among peers should not count on it until
        // a dial succeeds. The moment of grace lets the redial take the dial lock first.
        state.set_failing(Some((Instant::now() + LOSS_GRACE, 0)));
    }
    inner.release_link();
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
        tokio::spawn(redial(inner, state));
    }
}

/// Redials a lost link while the peer was used within `link_idle` of the loss; the
/// redials themselves are not use, so a peer that is gone for good is let go.
///
/// Each round goes through `connect`, which waits out the backoff while holding the
/// peer's dial lock: callers that look at [`Reachability`] see the peer as failing and
/// dialled the whole time, so they send their connections elsewhere instead of waiting
/// on a dial to a node that may be down.
async fn redial(inner: Arc<Inner>, state: Arc<PeerState>) {
    while !inner.closing()
        && state.best().is_none()
        && state.wanted_within(inner.config.timeouts.link_idle)
    {
        match inner.connect(&state.node, Use::Quiet).await {
            Ok(_) | Err(OpenError::Closed) => return,
            Err(OpenError::Backoff { retry_in, .. }) => tokio::time::sleep(retry_in).await,
            Err(_) => {}
        }
    }
}

/// Keeps a link to a relay up for as long as the endpoint runs, so this node stays
/// reachable through it and its RTT is known.
pub(crate) async fn keep_relay(inner: Arc<Inner>, relay: NodeName) {
    let mut failures = 0;
    let mut shutdown = inner.shutdown_signal();
    while !inner.closing() {
        match inner.connect(&relay, Use::Quiet).await {
            Ok(link) => {
                failures = 0;
                tokio::select! {
                    _ = link.connection().closed() => {}
                    _ = shutdown.changed() => return,
                }
            }
            Err(_) => {
                failures += 1;
                tokio::select! {
                    () = tokio::time::sleep(backoff(&inner.config, failures)) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

/// While a peer is reached through a relay, tries its direct addresses now and then,
/// under the peer's dial lock so it never races another dial.
async fn retry_direct(inner: Arc<Inner>, state: Arc<PeerState>) {
    let mut failures = 0u32;
    loop {
        let wait = inner
            .config
            .timeouts
            .direct_retry
            .saturating_mul(1 << failures.min(4));
        let mut shutdown = inner.shutdown_signal();
        if inner.closing() {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
        if inner.closing()
            || state.has_direct()
            || !state.wanted_within(inner.config.timeouts.link_idle)
        {
            break;
        }
        let Ok(_dialling) = state.dial.try_lock() else {
            continue;
        };
        let mut reached = false;
        for address in inner.addresses(&state.node) {
            match inner.dial_direct(&state.node, address).await {
                Ok(_) => {
                    tracing::info!(peer = %state.node, %address, "reached a relayed peer directly");
                    reached = true;
                    break;
                }
                Err(error) => {
                    tracing::debug!(peer = %state.node, %address, %error, "direct retry failed")
                }
            }
        }
        if reached {
            break;
        }
        failures += 1;
    }
    state.retrying_direct.store(false, Ordering::Release);
}
