//! From what operators wrote to what the mesh enforces: defaults filled, names normalised.
//!
//! Compilation cannot fail: every check that needs a source position happened while
//! decoding, so a [`TrafficPolicySpec`] that exists is valid.

use crate::plan::{
    self, Algorithm, Backoff, ConnectionPool, HashKey, LoadBalancer, Locality, OnLimit,
    OutlierDetection, RateLimit, Retries, RetryBudget, ServicePolicy, Timeouts,
};
use crate::spec::{
    ConnectionPoolSpec, HashKeySpec, LoadBalancerSpec, LocalitySpec, OnLimitAction,
    OutlierDetectionSpec, RateLimitSpec, RetriesSpec, TimeoutsSpec, TrafficPolicySpec,
};

/// The complete plan for a spec.
pub fn compile(spec: &TrafficPolicySpec) -> ServicePolicy {
    ServicePolicy {
        load_balancer: spec
            .load_balancer
            .as_ref()
            .map_or(LoadBalancer::LeastRequest, load_balancer),
        locality: spec
            .locality
            .as_ref()
            .map_or_else(Locality::default, locality),
        rate_limit: spec.rate_limit.as_ref().map(rate_limit),
        timeouts: spec
            .timeouts
            .as_ref()
            .map_or_else(Timeouts::default, timeouts),
        retries: spec.retries.as_ref().map_or_else(Retries::default, retries),
        outlier_detection: spec.outlier_detection.as_ref().map(outlier_detection),
        connection_pool: spec
            .connection_pool
            .as_ref()
            .map_or_else(ConnectionPool::default, connection_pool),
    }
}

/// The algorithm a load balancer section selects: the one named, else the one whose
/// parameters are written, else the default.
pub fn effective_algorithm(spec: &LoadBalancerSpec) -> Algorithm {
    spec.algorithm.unwrap_or(if spec.consistent_hash.is_some() {
        Algorithm::ConsistentHash
    } else if spec.peak_ewma.is_some() {
        Algorithm::PeakEwma
    } else {
        plan::DEFAULT_ALGORITHM
    })
}

fn load_balancer(spec: &LoadBalancerSpec) -> LoadBalancer {
    match effective_algorithm(spec) {
        Algorithm::RoundRobin => LoadBalancer::RoundRobin,
        Algorithm::Random => LoadBalancer::Random,
        Algorithm::LeastRequest => LoadBalancer::LeastRequest,
        Algorithm::PeakEwma => {
            let ewma = spec.peak_ewma.clone().unwrap_or_default();
            LoadBalancer::PeakEwma {
                decay: ewma.decay.unwrap_or(plan::DEFAULT_EWMA_DECAY),
                default_rtt: ewma.default_rtt.unwrap_or(plan::DEFAULT_EWMA_RTT),
            }
        }
        Algorithm::ConsistentHash => match &spec.consistent_hash {
            Some(hash) => LoadBalancer::ConsistentHash {
                key: hash_key(&hash.key),
                bounded_load: hash.bounded_load.unwrap_or(plan::DEFAULT_BOUNDED_LOAD),
            },
            // Decoding refuses ConsistentHash without a key; the source IP is the one key
            // every protocol has, should a caller build such a spec by hand.
            None => LoadBalancer::ConsistentHash {
                key: HashKey::SourceIp,
                bounded_load: plan::DEFAULT_BOUNDED_LOAD,
            },
        },
    }
}

fn hash_key(spec: &HashKeySpec) -> HashKey {
    match spec {
        HashKeySpec::Header(name) => HashKey::Header {
            name: name.to_ascii_lowercase(),
        },
        HashKeySpec::Cookie {
            name,
            ttl,
            path,
            generate,
        } => HashKey::Cookie {
            name: name.clone(),
            generate: *generate,
            ttl: ttl.filter(|t| !t.is_zero()),
            path: path
                .clone()
                .unwrap_or_else(|| plan::DEFAULT_COOKIE_PATH.to_string()),
        },
        HashKeySpec::SourceIp => HashKey::SourceIp,
        HashKeySpec::QueryParameter(name) => HashKey::QueryParameter { name: name.clone() },
    }
}

fn locality(spec: &LocalitySpec) -> Locality {
    Locality {
        prefer: spec.prefer.unwrap_or(plan::DEFAULT_LOCALITY_PREFER),
        min_endpoints: spec
            .min_endpoints
            .unwrap_or(plan::DEFAULT_FAILOVER_MIN_ENDPOINTS),
        min_healthy_percent: spec
            .min_healthy_percent
            .unwrap_or(plan::DEFAULT_FAILOVER_MIN_HEALTHY_PERCENT),
    }
}

fn rate_limit(spec: &RateLimitSpec) -> RateLimit {
    RateLimit {
        qps: spec.qps,
        burst: spec.burst.unwrap_or_else(|| plan::default_burst(spec.qps)),
        scope: spec.scope.unwrap_or(plan::RateLimitScope::Service),
        enforce_at: spec
            .enforce_at
            .unwrap_or(plan::EnforcementPoint::Destination),
        on_limit: match spec.on_limit.unwrap_or(OnLimitAction::Reject) {
            OnLimitAction::Reject => OnLimit::Reject,
            OnLimitAction::Queue => OnLimit::Queue {
                max_wait: spec.max_queue_wait.unwrap_or(plan::DEFAULT_MAX_QUEUE_WAIT),
            },
        },
    }
}

fn timeouts(spec: &TimeoutsSpec) -> Timeouts {
    Timeouts {
        connect: spec.connect.unwrap_or(plan::DEFAULT_CONNECT_TIMEOUT),
        request: spec.request,
        idle: match spec.idle {
            Some(idle) if idle.is_zero() => None,
            Some(idle) => Some(idle),
            None => Some(plan::DEFAULT_IDLE_TIMEOUT),
        },
    }
}

fn retries(spec: &RetriesSpec) -> Retries {
    let mut retry_on = spec
        .retry_on
        .clone()
        .unwrap_or_else(|| plan::DEFAULT_RETRY_ON.to_vec());
    retry_on.sort_unstable();
    retry_on.dedup();
    Retries {
        attempts: spec.attempts.unwrap_or(plan::DEFAULT_RETRY_ATTEMPTS),
        retry_on,
        per_try_timeout: spec.per_try_timeout,
        backoff: Backoff {
            base_interval: spec.backoff_base.unwrap_or(plan::DEFAULT_BACKOFF_BASE),
            max_interval: spec
                .backoff_max
                .unwrap_or(plan::DEFAULT_BACKOFF_MAX)
                .max(spec.backoff_base.unwrap_or(plan::DEFAULT_BACKOFF_BASE)),
        },
        budget: RetryBudget {
            percent: spec.budget_percent.unwrap_or(plan::DEFAULT_BUDGET_PERCENT),
            min_retries_per_second: spec
                .budget_min_per_second
                .unwrap_or(plan::DEFAULT_BUDGET_MIN_PER_SECOND),
            ttl: spec.budget_ttl.unwrap_or(plan::DEFAULT_BUDGET_TTL),
        },
        non_idempotent: spec.non_idempotent.unwrap_or(false),
    }
}

fn outlier_detection(spec: &OutlierDetectionSpec) -> OutlierDetection {
    OutlierDetection {
        consecutive_errors: spec
            .consecutive_errors
            .unwrap_or(plan::DEFAULT_CONSECUTIVE_ERRORS),
        interval: spec.interval.unwrap_or(plan::DEFAULT_OUTLIER_INTERVAL),
        base_ejection_time: spec
            .base_ejection_time
            .unwrap_or(plan::DEFAULT_BASE_EJECTION_TIME),
        max_ejection_percent: spec
            .max_ejection_percent
            .unwrap_or(plan::DEFAULT_MAX_EJECTION_PERCENT),
    }
}

fn connection_pool(spec: &ConnectionPoolSpec) -> ConnectionPool {
    ConnectionPool {
        max_connections: spec.max_connections,
        max_pending_requests: spec
            .max_pending_requests
            .unwrap_or(plan::DEFAULT_MAX_PENDING_REQUESTS),
        max_requests_per_connection: spec.max_requests_per_connection,
    }
}
