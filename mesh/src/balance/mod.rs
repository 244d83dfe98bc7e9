//! Load balancing: choosing an endpoint for each connection (L4) or request (L7) of a
//! service port, and tracking the load sent to each endpoint.
//!
//! # Use
//!
//! The proxy keeps one [`ServiceBalancer`] per service port, built from the port's
//! compiled plan ([`causeway_policies::plan::ServicePolicy`]: its `load_balancer` and
//! `locality`), and for every new connection or request calls
//! [`ServiceBalancer::pick`] with the port's [`Candidate`]s (built from the snapshot) and
//! a [`PickContext`] (where the caller is, the hash key, endpoints already tried by this
//! call, an [`EjectionView`]). It gets back a [`Pick`] — the endpoint, and a token that
//! counts one request in flight until dropped — or `None` when no endpoint is healthy.
//! The caller records the outcome on the pick ([`Pick::record_success`] with the latency,
//! or [`Pick::record_failure`]).
//!
//! # A pick
//!
//! 1. **Health.** A candidate is healthy if it is ready, not excluded by this call, and
//!    not ejected. Only healthy candidates are ever picked.
//! 2. **Locality.** Candidates fall into nested tiers — same node ⊂ same site ⊂ any.
//!    Starting at the plan's preferred tier, a tier is used if it has at least
//!    `min_endpoints` (and at least one) healthy endpoints and at least
//!    `min_healthy_percent` of its endpoints are healthy; otherwise the next wider tier
//!    is tried. "Any" is used whenever it has a healthy endpoint at all; with none, the
//!    pick returns `None`.
//! 3. **Algorithm**, among the healthy members of that tier:
//!    - `RoundRobin`: an atomic counter per tier, starting at a random position.
//!    - `Random`: uniform.
//!    - `LeastRequest`: power of two choices on requests in flight; ties at random.
//!    - `PeakEwma`: power of two choices on cost = latency estimate × (in flight + 1).
//!      The estimate jumps to any observed latency above it and otherwise moves towards
//!      observations with weight `1 - exp(-Δt / decay)`; between observations it decays
//!      towards zero by `exp(-Δt / decay)`, so an endpoint avoided for being slow is
//!      tried again after a while. Unmeasured endpoints cost `default_rtt`.
//!    - `ConsistentHash`: a hash ring with bounded load (below). Without a key (header
//!      absent, cookie not yet set) there is no affinity to keep, and it picks as
//!      `LeastRequest` does.
//!
//! # Consistent hashing: a ring, not Maglev
//!
//! The table is a ring of [`VIRTUAL_NODES`] (256) points per endpoint, placed by
//! [`stable_hash`] of the endpoint's address and point number. Maglev would give O(1)
//! lookups and a more even spread, but the ring fits this module better:
//!
//! - **One table serves every tier and health state.** A pick walks clockwise from the
//!   key and skips points whose endpoint is outside the tier, unhealthy, or over its
//!   load bound. On a ring, skipping an endpoint's points is exactly the ring of the
//!   remaining endpoints, so the locality tiers, exclusions, ejections and not-ready
//!   endpoints all keep minimal disruption without building a table per subset. A
//!   Maglev table filtered the same way is no longer a Maglev table of the subset.
//! - **Minimal disruption when the set changes.** Points depend only on addresses, so
//!   when one of N endpoints leaves, exactly the keys it owned move (≈ 1/N, its share
//!   of the circle), and a new endpoint takes keys only for itself. Maglev moves
//!   somewhat more than that on each change.
//! - **Bounded load is defined on a ring** (Mirrokni, Thorup and Zadimoghaddam,
//!   "Consistent Hashing with Bounded Loads"): the overflow of a full endpoint walks
//!   to the next point.
//!
//! The cost is an O(log(256·N)) binary search per pick, an uneven spread of keys with
//! a relative standard deviation of about 1/√256 ≈ 6% per endpoint (which bounded load
//! corrects under load), and 2 KiB of table per endpoint.
//!
//! **Bounded load.** With `L` requests in flight to the `n` healthy endpoints of the
//! tier, an endpoint may take the new request only if its in-flight count stays at or
//! below `ceil(bounded_load × (L + 1) / n)`; the count is taken with a compare-and-swap
//! against that bound, so concurrent picks cannot overshoot it together.
//!
//! **Keys.** The caller hashes the request attribute itself, with [`stable_hash`]
//! (XXH64, the same on every node and build) or [`hash_ip`], and passes the `u64` in
//! [`PickContext::with_hash`].
//!
//! # State
//!
//! A [`ServiceBalancer`] owns the round-robin counters and, per endpoint, the in-flight
//! count, latency estimate and failure counts, plus the ring. They live in a table
//! aligned with the candidate slice, rebuilt (reusing the state of endpoints that stay)
//! only when a fingerprint of the candidate ids changes; a pick checks the fingerprint,
//! so the caller never has to say the set changed. Endpoints may come and go between
//! picks; a [`Pick`] of an endpoint that left still releases its own count. A pick does
//! not allocate unless the set changed. Everything is `Send + Sync` and used through
//! `&self`: atomics for counters, a std mutex around each latency estimate and one
//! around rebuilds, none held beyond a few instructions. Alternating between two
//! different candidate lists for one balancer rebuilds the table each time: during a
//! snapshot change that is transient; callers should not do it on purpose.
//!
//! # What it may not touch
//!
//! Pure computation over what the caller passes in: no I/O, no sockets, no clocks but
//! the injected [`Clock`], no tokio runtime, no reading of the snapshot or the policy
//! set, no logging on the hot path. It does not eject endpoints (it records outcomes for
//! the outlier detector that will) and does not extract hash keys from requests.

mod balancer;
mod candidate;
mod clock;
mod hash;
mod load;
mod locality;
mod ring;

pub use balancer::{Pick, PickContext, ServiceBalancer};
pub use candidate::{CallerLocation, Candidate, EjectionView, EndpointId};
pub use clock::{Clock, ManualClock, SystemClock};
pub use hash::{hash_ip, stable_hash};
pub use load::EndpointStats;
pub use ring::VIRTUAL_NODES;
