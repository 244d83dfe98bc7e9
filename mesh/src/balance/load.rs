//! Per-endpoint load state: requests in flight, the peak-EWMA latency estimate, and
//! success/failure counts kept for outlier detection.
//!
//! One [`EndpointLoad`] lives as long as its endpoint stays in the candidate set (and as
//! long as any [`Pick`](super::Pick) of it is outstanding). Counters are atomics; the
//! latency estimate sits behind a std mutex held only for a few arithmetic operations,
//! never across an `.await`. Nothing here does I/O or reads the clock except through the
//! injected [`Clock`].

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::candidate::EndpointId;
use super::clock::Clock;

/// What is known about one endpoint's load and health, for admin output and (later)
/// outlier detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointStats {
    /// Picks of it not yet dropped.
    pub in_flight: u64,
    /// Its peak-EWMA latency estimate now (decayed since the last observation); `None`
    /// until a latency has been recorded.
    pub latency_estimate: Option<Duration>,
    /// Failures recorded since the last success.
    pub consecutive_failures: u32,
    /// Failures recorded in all.
    pub failures: u64,
    /// Successes recorded in all.
    pub successes: u64,
}

/// The peak-EWMA latency estimate of one endpoint.
#[derive(Debug, Clone, Copy)]
struct LatencyEstimate {
    /// The estimate in nanoseconds as of `at`; `None` until the first observation.
    nanos: Option<f64>,
    /// When `nanos` was last updated.
    at: Instant,
}

/// The shared, mutable state of one endpoint.
pub(crate) struct EndpointLoad {
    pub(crate) id: EndpointId,
    clock: Arc<dyn Clock>,
    in_flight: AtomicU64,
    latency: Mutex<LatencyEstimate>,
    consecutive_failures: AtomicU32,
    failures: AtomicU64,
    successes: AtomicU64,
}

impl fmt::Debug for EndpointLoad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointLoad")
            .field("id", &self.id)
            .field("in_flight", &self.in_flight())
            .field("consecutive_failures", &self.consecutive_failures())
            .finish_non_exhaustive()
    }
}

/// The weight an estimate keeps after `elapsed`, for an observation half-life of about
/// `decay` × ln 2: `exp(-elapsed / decay)`.
fn retained_weight(elapsed: Duration, decay: Duration) -> f64 {
    // A zero decay (refused by the policy validator) means "no memory", not NaN.
    let decay_nanos = (decay.as_nanos() as f64).max(1.0);
    (-(elapsed.as_nanos() as f64) / decay_nanos).exp()
}

impl EndpointLoad {
    pub(crate) fn new(id: EndpointId, clock: Arc<dyn Clock>) -> Self {
        let at = clock.now();
        Self {
            id,
            clock,
            in_flight: AtomicU64::new(0),
            latency: Mutex::new(LatencyEstimate { nanos: None, at }),
            consecutive_failures: AtomicU32::new(0),
            failures: AtomicU64::new(0),
            successes: AtomicU64::new(0),
        }
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts one more request in flight.
    pub(crate) fn acquire(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one more request in flight if that keeps the count at or below `bound`.
    pub(crate) fn try_acquire_within(&self, bound: u64) -> bool {
        self.in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
                (now < bound).then_some(now + 1)
            })
            .is_ok()
    }

    /// Counts one request fewer in flight (never below zero).
    pub(crate) fn release(&self) {
        // Fails only at zero, which a matched acquire/release never reaches.
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
                now.checked_sub(1)
            });
    }

    fn estimate(&self) -> LatencyEstimate {
        *self.latency.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The latency estimate in nanoseconds at `now`: the last estimate decayed towards
    /// zero by the time since it was updated (so an endpoint avoided for a long time is
    /// tried again), or `default_rtt` if nothing was ever observed.
    pub(crate) fn latency_nanos(
        &self,
        now: Instant,
        decay: Duration,
        default_rtt: Duration,
    ) -> f64 {
        let estimate = self.estimate();
        match estimate.nanos {
            None => default_rtt.as_nanos() as f64,
            Some(nanos) => {
                nanos * retained_weight(now.saturating_duration_since(estimate.at), decay)
            }
        }
    }

    /// Feeds one observed latency into the peak-EWMA estimate: a latency above the
    /// estimate replaces it at once (the "peak"); one below pulls it down with the
    /// weight of the time since the last update, `1 - exp(-elapsed / decay)`.
    pub(crate) fn observe_latency(&self, latency: Duration, decay: Duration) {
        let now = self.clock.now();
        let observed = latency.as_nanos() as f64;
        let mut estimate = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        let next = match estimate.nanos {
            Some(current) if observed <= current => {
                let kept = retained_weight(now.saturating_duration_since(estimate.at), decay);
                current * kept + observed * (1.0 - kept)
            }
            _ => observed,
        };
        estimate.nanos = Some(next);
        estimate.at = now;
    }

    pub(crate) fn record_success(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.successes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_failure(&self) {
        // Saturates instead of wrapping; the closure always returns Some.
        let _ = self
            .consecutive_failures
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(1))
            });
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    pub(crate) fn stats(&self, decay: Duration) -> EndpointStats {
        let estimate = self.estimate();
        let now = self.clock.now();
        let latency_estimate = estimate.nanos.map(|nanos| {
            let decayed =
                nanos * retained_weight(now.saturating_duration_since(estimate.at), decay);
            Duration::from_nanos(decayed as u64)
        });
        EndpointStats {
            in_flight: self.in_flight(),
            latency_estimate,
            consecutive_failures: self.consecutive_failures(),
            failures: self.failures.load(Ordering::Relaxed),
            successes: self.successes.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::clock::ManualClock;

    fn endpoint(clock: &Arc<ManualClock>) -> EndpointLoad {
        let clock: Arc<dyn Clock> = clock.clone();
        EndpointLoad::new("10.0.0.1:80".parse().unwrap(), clock)
    }

    const DECAY: Duration = Duration::from_secs(10);
    const DEFAULT_RTT: Duration = Duration::from_millis(30);

    #[test]
    fn unmeasured_endpoints_use_the_default_rtt() {
        let clock = Arc::new(ManualClock::new());
        let load = endpoint(&clock);
        clock.advance(Duration::from_secs(60));
        let nanos = load.latency_nanos(clock.now(), DECAY, DEFAULT_RTT);
        assert_eq!(nanos, 30e6);
    }

    #[test]
    fn a_peak_replaces_the_estimate_and_decays_with_time() {
        let clock = Arc::new(ManualClock::new());
        let load = endpoint(&clock);
        load.observe_latency(Duration::from_millis(10), DECAY);
        load.observe_latency(Duration::from_millis(100), DECAY);
        assert_eq!(load.latency_nanos(clock.now(), DECAY, DEFAULT_RTT), 100e6);
        // One decay time later the estimate keeps 1/e of its weight.
        clock.advance(DECAY);
        let decayed = load.latency_nanos(clock.now(), DECAY, DEFAULT_RTT);
        assert!(
            (decayed - 100e6 / std::f64::consts::E).abs() < 1.0,
            "{decayed}"
        );
    }

    #[test]
    fn lower_latencies_pull_the_estimate_down_by_elapsed_time() {
        let clock = Arc::new(ManualClock::new());
        let load = endpoint(&clock);
        load.observe_latency(Duration::from_millis(100), DECAY);
        // An observation right after the peak barely moves it…
        load.observe_latency(Duration::from_millis(10), DECAY);
        let at_once = load.latency_nanos(clock.now(), DECAY, DEFAULT_RTT);
        assert!(at_once > 99e6, "{at_once}");
        // …one a whole decay time later moves it most of the way.
        clock.advance(DECAY);
        load.observe_latency(Duration::from_millis(10), DECAY);
        let later = load.latency_nanos(clock.now(), DECAY, DEFAULT_RTT);
        let expected = 100e6 / std::f64::consts::E + 10e6 * (1.0 - 1.0 / std::f64::consts::E);
        assert!((later - expected).abs() < 1e3, "{later} vs {expected}");
    }

    #[test]
    fn bounded_acquire_stops_at_the_bound_and_release_never_underflows() {
        let clock = Arc::new(ManualClock::new());
        let load = endpoint(&clock);
        assert!(load.try_acquire_within(2));
        assert!(load.try_acquire_within(2));
        assert!(!load.try_acquire_within(2));
        assert_eq!(load.in_flight(), 2);
        load.release();
        load.release();
        load.release();
        assert_eq!(load.in_flight(), 0);
    }

    #[test]
    fn failures_count_until_a_success() {
        let clock = Arc::new(ManualClock::new());
        let load = endpoint(&clock);
        load.record_failure();
        load.record_failure();
        assert_eq!(load.stats(DECAY).consecutive_failures, 2);
        load.record_success();
        let stats = load.stats(DECAY);
        assert_eq!(
            (stats.consecutive_failures, stats.failures, stats.successes),
            (0, 2, 1)
        );
    }
}
