//! [`ServiceBalancer`]: the per-service-port state a pick reads and updates, and the pick
//! itself; [`Pick`]: the in-flight token a pick hands back.
//!
//! A pick runs two passes over the caller's candidates: the first counts healthy
//! endpoints per locality tier (and their in-flight requests), the second lets the
//! algorithm choose among the healthy members of the chosen tier. Nothing allocates on
//! that path; per-endpoint state is found by index through a table that is rebuilt only
//! when a cheap fingerprint of the candidate ids changes. No I/O, no runtime, no locks
//! held across `.await` (there is no `.await` here at all).

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use causeway_policies::plan::{
    self, Algorithm, LoadBalancer, Locality, LocalityTier, ServicePolicy,
};
use rand::RngExt;

use super::candidate::{CallerLocation, Candidate, EjectionDebug, EjectionView, EndpointId};
use super::clock::{Clock, SystemClock};
use super::hash::mix64;
use super::load::{EndpointLoad, EndpointStats};
use super::locality::{TierCensus, rank, tier_of, within};
use super::ring::HashRing;

/// What one pick needs to know beyond the candidates: where the caller is, the hash key
/// (for consistent hashing), the endpoints this call already tried, and who is ejected.
#[derive(Clone, Copy)]
pub struct PickContext<'a> {
    caller: CallerLocation<'a>,
    hash: Option<u64>,
    excluded: &'a [EndpointId],
    ejections: Option<&'a dyn EjectionView>,
}

impl fmt::Debug for PickContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PickContext")
            .field("caller", &self.caller)
            .field("hash", &self.hash)
            .field("excluded", &self.excluded)
            .field("ejections", &EjectionDebug(self.ejections))
            .finish()
    }
}

impl<'a> PickContext<'a> {
    /// A pick for a caller at `caller`, with no hash key, nothing excluded and nothing
    /// ejected.
    pub fn new(caller: CallerLocation<'a>) -> Self {
        Self {
            caller,
            hash: None,
            excluded: &[],
            ejections: None,
        }
    }

    /// The consistent-hash key: [`stable_hash`](super::stable_hash) of the header,
    /// cookie or query value, or [`hash_ip`](super::hash_ip) of the source address.
    /// Ignored by the other algorithms.
    pub fn with_hash(mut self, key: u64) -> Self {
        self.hash = Some(key);
        self
    }

    /// Endpoints this call already tried (and failed to connect to): they count as
    /// unhealthy and are not picked. The list is scanned per candidate, so it should be
    /// short (the tries of one call).
    pub fn excluding(mut self, excluded: &'a [EndpointId]) -> Self {
        self.excluded = excluded;
        self
    }

    /// Who is ejected by outlier detection: they count as unhealthy and are not picked.
    pub fn with_ejections(mut self, ejections: &'a dyn EjectionView) -> Self {
        self.ejections = Some(ejections);
        self
    }

    /// Ready, not excluded by this call, not ejected.
    fn is_healthy(&self, candidate: &Candidate) -> bool {
        candidate.ready
            && !self.excluded.contains(&candidate.id)
            && !self.ejections.is_some_and(|e| e.is_ejected(candidate.id))
    }
}

/// The algorithm with its parameters, as a pick uses them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Strategy {
    RoundRobin,
    Random,
    LeastRequest,
    PeakEwma,
    ConsistentHash { bounded_load: f64 },
}

/// Per-endpoint state for one candidate list, aligned with it by index.
#[derive(Debug)]
struct EndpointTable {
    /// [`fingerprint`] of the ids the table was built for.
    fingerprint: u64,
    /// One entry per candidate, in candidate order; a repeated id shares its entry.
    loads: Vec<Arc<EndpointLoad>>,
    /// The ring, built only for consistent hashing.
    ring: Option<HashRing>,
}

impl EndpointTable {
    fn empty() -> Self {
        Self {
            fingerprint: fingerprint(&[]),
            loads: Vec::new(),
            ring: None,
        }
    }

    fn fits(&self, fingerprint: u64, len: usize, needs_ring: bool) -> bool {
        self.fingerprint == fingerprint
            && self.loads.len() == len
            && (self.ring.is_some() || !needs_ring)
    }
}

/// A cheap, order-sensitive digest of the candidate ids: one multiply-mix per id, no
/// allocation. Readiness and locality are not part of it; they are read per pick.
fn fingerprint(candidates: &[Candidate]) -> u64 {
    let mut digest = mix64(candidates.len() as u64);
    for candidate in candidates {
        let address = match candidate.id.ip() {
            IpAddr::V4(v4) => u64::from(v4.to_bits()),
            IpAddr::V6(v6) => {
                let bits = v6.to_bits();
                mix64((bits >> 64) as u64) ^ (bits as u64) ^ (1 << 63)
            }
        };
        let word = address.rotate_left(16) ^ u64::from(candidate.id.port());
        digest = mix64(digest.rotate_left(7) ^ word);
    }
    digest
}

/// The most in-flight requests an endpoint may have after taking one more, under
/// consistent hashing with bounded load: `ceil(factor × (in_flight + 1) / endpoints)`,
/// the mean load counting the new request, times the factor, rounded up. Factors below 1
/// (or NaN), which the policy validator refuses, are taken as 1.
fn load_bound(factor: f64, in_flight: u64, endpoints: usize) -> u64 {
    let factor = if factor >= 1.0 { factor } else { 1.0 };
    let mean = (in_flight as f64 + 1.0) / (endpoints.max(1) as f64);
    // `as` saturates: an infinite factor means no bound.
    ((factor * mean).ceil() as u64).max(1)
}

/// Chooses an endpoint for each new connection or request of one service port, and
/// tracks the load it sends each endpoint.
///
/// The proxy keeps one per service port (in a map it swaps with the plan) and calls
/// [`pick`](Self::pick) from any number of tasks at once. When the plan changes it
/// builds a new one, carrying load over with [`replan`](Self::replan).
pub struct ServiceBalancer {
    strategy: Strategy,
    locality: Locality,
    /// Peak-EWMA parameters; also used to keep latency estimates under the other
    /// algorithms (for [`endpoint_stats`](Self::endpoint_stats) and a later switch).
    decay: Duration,
    default_rtt: Duration,
    clock: Arc<dyn Clock>,
    table: ArcSwap<EndpointTable>,
    /// Serialises table rebuilds (never held across `.await`; there is none).
    rebuild: Mutex<()>,
    /// One round-robin position per locality tier.
    round_robin: [AtomicU64; 3],
}

impl fmt::Debug for ServiceBalancer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceBalancer")
            .field("strategy", &self.strategy)
            .field("locality", &self.locality)
            .field("decay", &self.decay)
            .field("default_rtt", &self.default_rtt)
            .field("endpoints", &self.table.load().loads.len())
            .finish_non_exhaustive()
    }
}

impl ServiceBalancer {
    /// A balancer for `load_balancer` and `locality`, on the system clock.
    pub fn new(load_balancer: &LoadBalancer, locality: &Locality) -> Self {
        Self::with_clock(load_balancer, locality, Arc::new(SystemClock))
    }

    /// A balancer for the load balancer and locality of a compiled policy.
    pub fn for_policy(policy: &ServicePolicy) -> Self {
        Self::new(&policy.load_balancer, &policy.locality)
    }

    /// A balancer whose latency estimates read `clock` (tests and simulations).
    pub fn with_clock(
        load_balancer: &LoadBalancer,
        locality: &Locality,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let (strategy, decay, default_rtt) = match *load_balancer {
            LoadBalancer::RoundRobin => (Strategy::RoundRobin, None, None),
            LoadBalancer::Random => (Strategy::Random, None, None),
            LoadBalancer::LeastRequest => (Strategy::LeastRequest, None, None),
            LoadBalancer::PeakEwma { decay, default_rtt } => {
                (Strategy::PeakEwma, Some(decay), Some(default_rtt))
            }
            LoadBalancer::ConsistentHash { bounded_load, .. } => {
                (Strategy::ConsistentHash { bounded_load }, None, None)
            }
        };
        // Start each round-robin position at random, so that proxies which start
        // together do not all send their first request to the same endpoint.
        let mut rng = rand::rng();
        Self {
            strategy,
            locality: locality.clone(),
            decay: decay.unwrap_or(plan::DEFAULT_EWMA_DECAY),
            default_rtt: default_rtt.unwrap_or(plan::DEFAULT_EWMA_RTT),
            clock,
            table: ArcSwap::from_pointee(EndpointTable::empty()),
            rebuild: Mutex::new(()),
            round_robin: [
                AtomicU64::new(rng.random()),
                AtomicU64::new(rng.random()),
                AtomicU64::new(rng.random()),
            ],
        }
    }

    /// A balancer for a new plan that keeps this one's per-endpoint state (requests in
    /// flight, latency estimates, failure counts) and clock, so a plan change does not
    /// forget the load already sent.
    pub fn replan(&self, load_balancer: &LoadBalancer, locality: &Locality) -> Self {
        let next = Self::with_clock(load_balancer, locality, self.clock.clone());
        let current = self.table.load();
        next.table.store(Arc::new(EndpointTable {
            fingerprint: current.fingerprint,
            loads: current.loads.clone(),
            // Rebuilt on the first pick if the new plan hashes.
            ring: None,
        }));
        next
    }

    /// The algorithm this balancer runs.
    pub fn algorithm(&self) -> Algorithm {
        match self.strategy {
            Strategy::RoundRobin => Algorithm::RoundRobin,
            Strategy::Random => Algorithm::Random,
            Strategy::LeastRequest => Algorithm::LeastRequest,
            Strategy::PeakEwma => Algorithm::PeakEwma,
            Strategy::ConsistentHash { .. } => Algorithm::ConsistentHash,
        }
    }

    /// The locality this balancer applies.
    pub fn locality(&self) -> &Locality {
        &self.locality
    }

    /// What is known about endpoint `id`, if it is in the current candidate set.
    /// Linear in the number of endpoints: for admin output, not the hot path.
    pub fn endpoint_stats(&self, id: EndpointId) -> Option<EndpointStats> {
        let table = self.table.load();
        table
            .loads
            .iter()
            .find(|load| load.id == id)
            .map(|load| load.stats(self.decay))
    }

    /// Chooses an endpoint among `candidates` for one connection or request, or `None`
    /// if no candidate is healthy (ready, not excluded, not ejected) — the caller then
    /// reports "no ready endpoints" at once.
    ///
    /// The locality tier comes first (see the module documentation), then the
    /// algorithm chooses among the healthy members of that tier. The returned [`Pick`]
    /// counts as a request in flight to the endpoint until it is dropped.
    pub fn pick(&self, candidates: &[Candidate], context: &PickContext<'_>) -> Option<Pick> {
        if candidates.is_empty() {
            return None;
        }
        let needs_ring = matches!(self.strategy, Strategy::ConsistentHash { .. });
        let print = fingerprint(candidates);
        let current = self.table.load();
        let rebuilt;
        let table: &EndpointTable = if current.fits(print, candidates.len(), needs_ring) {
            &current
        } else {
            rebuilt = self.rebuild_table(candidates, print, needs_ring);
            &rebuilt
        };

        // Pass one: the census, and from it the tier.
        let counts_load = needs_ring;
        let mut census = TierCensus::default();
        for (candidate, load) in candidates.iter().zip(&table.loads) {
            let healthy = context.is_healthy(candidate);
            let in_flight = if healthy && counts_load {
                load.in_flight()
            } else {
                0
            };
            census.add(tier_of(candidate, &context.caller), healthy, in_flight);
        }
        let tier = census.choose(&self.locality)?;
        let totals = census.totals(tier);
        if totals.healthy == 0 {
            // `choose` never picks an empty tier; this keeps the arithmetic below safe.
            return None;
        }
        let eligible = Eligible {
            candidates,
            context,
            tier,
        };

        // Pass two: the algorithm.
        let (index, acquired) = match self.strategy {
            Strategy::RoundRobin => {
                let turn = self
                    .round_robin
                    .get(rank(tier))
                    .map_or(0, |counter| counter.fetch_add(1, Ordering::Relaxed));
                let nth = turn % (totals.healthy as u64);
                (eligible.nth(usize::try_from(nth).unwrap_or(0))?, false)
            }
            Strategy::Random => {
                let nth = rand::rng().random_range(0..totals.healthy);
                (eligible.nth(nth)?, false)
            }
            Strategy::LeastRequest => (
                self.two_choices(&eligible, totals.healthy, table, |load| {
                    load.in_flight() as f64
                })?,
                false,
            ),
            Strategy::PeakEwma => {
                let now = self.clock.now();
                let cost = |load: &EndpointLoad| self.peak_ewma_cost(load, now);
                (
                    self.two_choices(&eligible, totals.healthy, table, cost)?,
                    false,
                )
            }
            Strategy::ConsistentHash { bounded_load } => match context.hash {
                Some(key) => self.hashed(
                    &eligible,
                    table,
                    key,
                    bounded_load,
                    totals.healthy,
                    totals.healthy_in_flight,
                )?,
                // No key (header absent, cookie not yet set): no affinity to keep, so
                // the least loaded of two.
                None => (
                    self.two_choices(&eligible, totals.healthy, table, |load| {
                        load.in_flight() as f64
                    })?,
                    false,
                ),
            },
        };

        let load = table.loads.get(index)?;
        let candidate = candidates.get(index)?;
        if !acquired {
            load.acquire();
        }
        Some(Pick {
            id: candidate.id,
            index,
            tier,
            load: load.clone(),
            decay: self.decay,
            outcome: None,
        })
    }

    /// Peak-EWMA cost: the latency estimate times the requests in flight plus this one.
    fn peak_ewma_cost(&self, load: &EndpointLoad, now: Instant) -> f64 {
        // A floor of one nanosecond keeps in-flight counts meaningful when estimates
        // have decayed to (nearly) zero.
        let latency = load
            .latency_nanos(now, self.decay, self.default_rtt)
            .max(1.0);
        latency * (load.in_flight() as f64 + 1.0)
    }

    /// Power of two choices: two distinct random eligible candidates, the one of lower
    /// `cost` wins, a tie is a coin toss. With one eligible candidate, that one.
    fn two_choices(
        &self,
        eligible: &Eligible<'_, '_>,
        healthy: usize,
        table: &EndpointTable,
        cost: impl Fn(&EndpointLoad) -> f64,
    ) -> Option<usize> {
        if healthy <= 1 {
            return eligible.nth(0);
        }
        let mut rng = rand::rng();
        let first = rng.random_range(0..healthy);
        let mut second = rng.random_range(0..healthy - 1);
        if second >= first {
            second += 1;
        }
        let Some((a, b)) = eligible.nth_pair(first, second) else {
            // Fewer eligible than counted (an ejection view changed in between).
            return eligible.nth(0);
        };
        let cost_a = table.loads.get(a).map_or(f64::INFINITY, |l| cost(l));
        let cost_b = table.loads.get(b).map_or(f64::INFINITY, |l| cost(l));
        Some(if cost_a < cost_b {
            a
        } else if cost_b < cost_a {
            b
        } else if rng.random_bool(0.5) {
            a
        } else {
            b
        })
    }

    /// Consistent hashing with bounded load: walk the ring from `key` to the first
    /// eligible endpoint that can take one more request within the bound. Returns the
    /// index and `true`: the in-flight count is already taken (atomically against the
    /// bound, so concurrent picks cannot overshoot it together).
    fn hashed(
        &self,
        eligible: &Eligible<'_, '_>,
        table: &EndpointTable,
        key: u64,
        bounded_load: f64,
        healthy: usize,
        healthy_in_flight: u64,
    ) -> Option<(usize, bool)> {
        let bound = load_bound(bounded_load, healthy_in_flight, healthy);
        if let Some(ring) = &table.ring {
            for index in ring.walk(key) {
                if !eligible.contains(index) {
                    continue;
                }
                if let Some(load) = table.loads.get(index)
                    && load.try_acquire_within(bound)
                {
                    return Some((index, true));
                }
            }
        }
        // Every eligible endpoint is at the bound (possible only while other picks
        // race this one): take the least loaded rather than fail.
        let least = eligible
            .indices()
            .filter_map(|i| table.loads.get(i).map(|l| (l.in_flight(), i)))
            .min()
            .map(|(_, i)| i)?;
        Some((least, false))
    }

    /// Builds the table for `candidates`, reusing the state of endpoints already known,
    /// and installs it. Concurrent rebuilds for the same set wait for the first.
    fn rebuild_table(
        &self,
        candidates: &[Candidate],
        print: u64,
        needs_ring: bool,
    ) -> Arc<EndpointTable> {
        let _building = self.rebuild.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.table.load_full();
        if current.fits(print, candidates.len(), needs_ring) {
            return current;
        }
        let mut known: std::collections::HashMap<EndpointId, Arc<EndpointLoad>> = current
            .loads
            .iter()
            .map(|load| (load.id, load.clone()))
            .collect();
        let loads = candidates
            .iter()
            .map(|candidate| {
                known
                    .entry(candidate.id)
                    .or_insert_with(|| {
                        Arc::new(EndpointLoad::new(candidate.id, self.clock.clone()))
                    })
                    .clone()
            })
            .collect();
        let table = Arc::new(EndpointTable {
            fingerprint: print,
            loads,
            ring: needs_ring.then(|| HashRing::build(candidates)),
        });
        self.table.store(table.clone());
        table
    }
}

/// The healthy members of the chosen tier, found by scanning the candidates.
struct Eligible<'c, 'x> {
    candidates: &'c [Candidate],
    context: &'c PickContext<'x>,
    tier: LocalityTier,
}

impl Eligible<'_, '_> {
    fn admits(&self, candidate: &Candidate) -> bool {
        within(tier_of(candidate, &self.context.caller), self.tier)
            && self.context.is_healthy(candidate)
    }

    fn contains(&self, index: usize) -> bool {
        self.candidates.get(index).is_some_and(|c| self.admits(c))
    }

    fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| self.admits(c))
            .map(|(i, _)| i)
    }

    /// The candidate index of the `nth` eligible candidate. If fewer are eligible than
    /// the census counted (an ejection view changed in between), the first one.
    fn nth(&self, nth: usize) -> Option<usize> {
        self.indices().nth(nth).or_else(|| self.indices().next())
    }

    /// The candidate indices of the `a`th and `b`th eligible candidates, in one scan.
    fn nth_pair(&self, a: usize, b: usize) -> Option<(usize, usize)> {
        let (mut found_a, mut found_b) = (None, None);
        for (position, index) in self.indices().enumerate() {
            if position == a {
                found_a = Some(index);
            }
            if position == b {
                found_b = Some(index);
            }
            if found_a.is_some() && found_b.is_some() {
                break;
            }
        }
        Some((found_a?, found_b?))
    }
}

/// How an attempt on a picked endpoint ended, as the caller recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success(Duration),
    Failure,
}

/// An endpoint chosen for one connection or request, and the token that counts it as
/// in flight: dropping the `Pick` ends the request as far as balancing is concerned.
///
/// Record how the attempt went before dropping it: [`record_success`] with the observed
/// latency (this feeds peak-EWMA), or [`record_failure`] (kept for outlier detection).
/// The first recorded outcome counts; later ones are ignored. A pick dropped with
/// nothing recorded (a cancelled request) changes only the in-flight count.
///
/// [`record_success`]: Self::record_success
/// [`record_failure`]: Self::record_failure
#[derive(Debug)]
pub struct Pick {
    id: EndpointId,
    index: usize,
    tier: LocalityTier,
    load: Arc<EndpointLoad>,
    decay: Duration,
    outcome: Option<Outcome>,
}

impl Pick {
    /// The chosen endpoint.
    pub fn id(&self) -> EndpointId {
        self.id
    }

    /// Its index in the candidate slice passed to [`ServiceBalancer::pick`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// The locality tier it was chosen from (the failover that happened, if any).
    pub fn tier(&self) -> LocalityTier {
        self.tier
    }

    /// Records a successful attempt that took `latency` (to the response, or to the
    /// connection for plain TCP).
    pub fn record_success(&mut self, latency: Duration) {
        if self.outcome.is_none() {
            self.outcome = Some(Outcome::Success(latency));
            self.load.observe_latency(latency, self.decay);
            self.load.record_success();
        }
    }

    /// Records a failed attempt (connect failure, reset, 5xx).
    pub fn record_failure(&mut self) {
        if self.outcome.is_none() {
            self.outcome = Some(Outcome::Failure);
            self.load.record_failure();
        }
    }

    /// Whether a failure was recorded.
    pub fn failed(&self) -> bool {
        self.outcome == Some(Outcome::Failure)
    }

    /// The latency recorded with a success, if one was.
    pub fn latency(&self) -> Option<Duration> {
        match self.outcome {
            Some(Outcome::Success(latency)) => Some(latency),
            _ => None,
        }
    }
}

impl Drop for Pick {
    fn drop(&mut self) {
        self.load.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_counts_the_new_request_and_rounds_up() {
        // 20 in flight over 10 endpoints, one more: mean 2.1, × 1.25 = 2.625 → 3.
        assert_eq!(load_bound(1.25, 20, 10), 3);
        // Idle: mean 0.1 → at least one each.
        assert_eq!(load_bound(1.25, 0, 10), 1);
        // Factor 1 is the plain ceiling of the mean.
        assert_eq!(load_bound(1.0, 9, 10), 1);
        assert_eq!(load_bound(1.0, 10, 10), 2);
        // Out-of-range factors are taken as 1; infinity means no bound.
        assert_eq!(load_bound(f64::NAN, 10, 10), 2);
        assert_eq!(load_bound(0.5, 10, 10), 2);
        assert_eq!(load_bound(f64::INFINITY, 10, 10), u64::MAX);
        assert_eq!(load_bound(2.0, 5, 0), 12);
    }

    #[test]
    fn the_fingerprint_sees_order_and_membership() {
        let a = Candidate::new("10.0.0.1:80".parse().unwrap(), true);
        let b = Candidate::new("10.0.0.2:80".parse().unwrap(), true);
        let b_other_port = Candidate::new("10.0.0.2:81".parse().unwrap(), true);
        let not_ready = Candidate::new("10.0.0.2:80".parse().unwrap(), false);
        let ab = fingerprint(&[a.clone(), b.clone()]);
        assert_ne!(ab, fingerprint(&[b.clone(), a.clone()]));
        assert_ne!(ab, fingerprint(std::slice::from_ref(&a)));
        assert_ne!(ab, fingerprint(&[a.clone(), b_other_port]));
        // Readiness is read per pick, not part of the set.
        assert_eq!(ab, fingerprint(&[a, not_ready]));
    }
}
