//! QPS limits from the policy plan, enforced with GCRA (`governor`): one shared keyed
//! limiter per Service port and plan, used by every connection, swapped when the plan
//! changes. For TCP ports a limit counts new connections.
//!
//! It counts and waits; it does not refuse connections itself (its callers do).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use causeway_policies::plan::{OnLimit, RateLimit, RateLimitScope};
use governor::{DefaultKeyedRateLimiter, Quota};

/// What one bucket counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum BucketKey {
    Service,
    Endpoint(SocketAddr),
    Client(IpAddr),
}

/// A limiter for one Service port under one plan.
#[derive(Debug)]
pub struct Limiter {
    plan: RateLimit,
    buckets: DefaultKeyedRateLimiter<BucketKey>,
}

/// Over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// When a token will be free.
    pub retry_after: Duration,
}

impl Limiter {
    /// A limiter for `plan`.
    pub fn new(plan: &RateLimit) -> Self {
        let period = Duration::from_secs_f64(1.0 / plan.qps.max(f64::MIN_POSITIVE));
        let burst = NonZeroU32::new(plan.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst);
        Self {
            plan: plan.clone(),
            buckets: DefaultKeyedRateLimiter::keyed(quota),
        }
    }

    fn key(&self, endpoint: SocketAddr, client: Option<IpAddr>) -> BucketKey {
        match self.plan.scope {
            RateLimitScope::Service => BucketKey::Service,
            RateLimitScope::Endpoint => BucketKey::Endpoint(endpoint),
            RateLimitScope::Client => client.map_or(BucketKey::Service, BucketKey::Client),
        }
    }

    /// Admits one request or connection, waiting up to the plan's queue time when it says
    /// to queue.
    pub async fn admit(&self, endpoint: SocketAddr, client: Option<IpAddr>) -> Result<(), Limited> {
        let key = self.key(endpoint, client);
        match self.buckets.check_key(&key) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                match self.plan.on_limit {
                    OnLimit::Reject => Err(Limited { retry_after }),
                    OnLimit::Queue { max_wait } => {
                        match tokio::time::timeout(max_wait, self.buckets.until_key_ready(&key))
                            .await
                        {
                            Ok(()) => Ok(()),
                            Err(_) => Err(Limited { retry_after }),
                        }
                    }
                }
            }
        }
    }
}

/// Limiters by Service port, rebuilt when a port's plan changes.
#[derive(Debug, Default)]
pub struct Limiters {
    by_port: Mutex<HashMap<String, Arc<Limiter>>>,
}

impl Limiters {
    /// Keeps the limiters of the Service ports `live` says still exist, and in each
    /// drops the buckets that are full again (nobody used them lately).
    pub fn prune(&self, live: impl Fn(&str) -> bool) {
        let Ok(mut map) = self.by_port.lock() else {
            return;
        };
        map.retain(|label, _| live(label));
        for limiter in map.values() {
            limiter.buckets.retain_recent();
            limiter.buckets.shrink_to_fit();
        }
    }

    /// How many Service ports have a limiter.
    pub fn len(&self) -> usize {
        self.by_port.lock().map_or(0, |m| m.len())
    }

    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The limiter for `target` (a `namespace/name:port` label) under `plan`.
    pub fn get(&self, target: &str, plan: &RateLimit) -> Arc<Limiter> {
        let Ok(mut map) = self.by_port.lock() else {
            return Arc::new(Limiter::new(plan));
        };
        if let Some(existing) = map.get(target)
            && existing.plan == *plan
        {
            return Arc::clone(existing);
        }
        let limiter = Arc::new(Limiter::new(plan));
        map.insert(target.to_string(), Arc::clone(&limiter));
        limiter
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_policies::plan::EnforcementPoint;

    fn plan(qps: f64, burst: u32, on_limit: OnLimit, scope: RateLimitScope) -> RateLimit {
        RateLimit {
            qps,
            burst,
            scope,
            enforce_at: EnforcementPoint::Destination,
            on_limit,
        }
    }

    #[tokio::test]
    async fn a_burst_then_rejections_with_a_retry_time() {
        let limiter = Limiter::new(&plan(1.0, 3, OnLimit::Reject, RateLimitScope::Service));
        let endpoint = "127.0.0.1:80".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.admit(endpoint, None).await.is_ok());
        }
        let denied = limiter.admit(endpoint, None).await.unwrap_err();
        assert!(denied.retry_after > Duration::from_millis(500));
        assert!(denied.retry_after <= Duration::from_secs(1));
    }

    #[tokio::test]
    async fn clients_get_their_own_buckets_and_queues_wait() {
        let limiter = Limiter::new(&plan(1.0, 1, OnLimit::Reject, RateLimitScope::Client));
        let endpoint = "127.0.0.1:80".parse().unwrap();
        let (a, b) = ("10.0.0.1".parse().ok(), "10.0.0.2".parse().ok());
        assert!(limiter.admit(endpoint, a).await.is_ok());
        assert!(limiter.admit(endpoint, a).await.is_err());
        assert!(limiter.admit(endpoint, b).await.is_ok());

        let queued = Limiter::new(&plan(
            20.0,
            1,
            OnLimit::Queue {
                max_wait: Duration::from_millis(500),
            },
            RateLimitScope::Service,
        ));
        assert!(queued.admit(endpoint, None).await.is_ok());
        let start = std::time::Instant::now();
        assert!(
            queued.admit(endpoint, None).await.is_ok(),
            "waited for the next token"
        );
        assert!(start.elapsed() >= Duration::from_millis(20));
    }
}
