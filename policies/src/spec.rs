//! The policy model as operators write it: every field optional, nothing defaulted.
//!
//! Both a Causeway `TrafficPolicy` and an Istio `DestinationRule` decode into these types
//! (the Istio fields map onto the same sections), and [`crate::compile`] turns a
//! [`TrafficPolicySpec`] into the complete [`crate::plan::ServicePolicy`]. `None` means
//! "not written here", which is what lets an Istio port-level setting inherit a section
//! from the rule's top level.

use std::time::Duration;

use crate::plan::{Algorithm, EnforcementPoint, LocalityTier, RateLimitScope, RetryCondition};

/// The `spec` of a TrafficPolicy, without its target.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrafficPolicySpec {
    /// `loadBalancer`.
    pub load_balancer: Option<LoadBalancerSpec>,
    /// `locality`.
    pub locality: Option<LocalitySpec>,
    /// `rateLimit`.
    pub rate_limit: Option<RateLimitSpec>,
    /// `timeouts`.
    pub timeouts: Option<TimeoutsSpec>,
    /// `retries`.
    pub retries: Option<RetriesSpec>,
    /// `outlierDetection`.
    pub outlier_detection: Option<OutlierDetectionSpec>,
    /// `connectionPool`.
    pub connection_pool: Option<ConnectionPoolSpec>,
}

/// `loadBalancer`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadBalancerSpec {
    /// `algorithm`; implied by `peakEwma` or `consistentHash` when those are written.
    pub algorithm: Option<Algorithm>,
    /// `peakEwma`.
    pub peak_ewma: Option<PeakEwmaSpec>,
    /// `consistentHash`.
    pub consistent_hash: Option<ConsistentHashSpec>,
}

/// `loadBalancer.peakEwma`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeakEwmaSpec {
    /// `decay`.
    pub decay: Option<Duration>,
    /// `defaultRtt`.
    pub default_rtt: Option<Duration>,
}

/// `loadBalancer.consistentHash`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsistentHashSpec {
    /// The one hash key written (`header`, `cookie`, `sourceIP` or `queryParameter`).
    pub key: HashKeySpec,
    /// `boundedLoad`.
    pub bounded_load: Option<f64>,
}

/// The hash key of a consistent hash.
#[derive(Debug, Clone, PartialEq)]
pub enum HashKeySpec {
    /// `header: NAME`.
    Header(String),
    /// `cookie: {name, ttl, path}`.
    Cookie {
        /// `name`.
        name: String,
        /// `ttl`.
        ttl: Option<Duration>,
        /// `path`.
        path: Option<String>,
        /// Whether the mesh sets the cookie when a request has none (always for a
        /// TrafficPolicy; for Istio only when `ttl` is written, as in Envoy).
        generate: bool,
    },
    /// `sourceIP: true`.
    SourceIp,
    /// `queryParameter: NAME`.
    QueryParameter(String),
}

/// `locality`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalitySpec {
    /// `prefer`.
    pub prefer: Option<LocalityTier>,
    /// `failover.minEndpoints`.
    pub min_endpoints: Option<u32>,
    /// `failover.minHealthyPercent`.
    pub min_healthy_percent: Option<u8>,
}

/// `rateLimit.onLimit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLimitAction {
    /// Refuse at once.
    Reject,
    /// Wait up to `maxQueueWait`.
    Queue,
}

impl OnLimitAction {
    /// The names operators write.
    pub const NAMES: &[(&'static str, OnLimitAction)] = &[
        ("Reject", OnLimitAction::Reject),
        ("Queue", OnLimitAction::Queue),
    ];
}

/// `rateLimit`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitSpec {
    /// `qps` (required).
    pub qps: f64,
    /// `burst`.
    pub burst: Option<u32>,
    /// `scope`.
    pub scope: Option<RateLimitScope>,
    /// `enforceAt`.
    pub enforce_at: Option<EnforcementPoint>,
    /// `onLimit`.
    pub on_limit: Option<OnLimitAction>,
    /// `maxQueueWait`.
    pub max_queue_wait: Option<Duration>,
}

/// `timeouts`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimeoutsSpec {
    /// `connect`.
    pub connect: Option<Duration>,
    /// `request`.
    pub request: Option<Duration>,
    /// `idle`; `0s` turns the idle timeout off.
    pub idle: Option<Duration>,
}

/// `retries`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetriesSpec {
    /// `attempts`.
    pub attempts: Option<u32>,
    /// `retryOn`.
    pub retry_on: Option<Vec<RetryCondition>>,
    /// `perTryTimeout`.
    pub per_try_timeout: Option<Duration>,
    /// `backoff.baseInterval`.
    pub backoff_base: Option<Duration>,
    /// `backoff.maxInterval`.
    pub backoff_max: Option<Duration>,
    /// `budget.percent`.
    pub budget_percent: Option<f64>,
    /// `budget.minRetriesPerSecond`.
    pub budget_min_per_second: Option<u32>,
    /// `budget.ttl`.
    pub budget_ttl: Option<Duration>,
    /// `nonIdempotent`.
    pub non_idempotent: Option<bool>,
}

/// `outlierDetection`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutlierDetectionSpec {
    /// `consecutiveErrors`.
    pub consecutive_errors: Option<u32>,
    /// `interval`.
    pub interval: Option<Duration>,
    /// `baseEjectionTime`.
    pub base_ejection_time: Option<Duration>,
    /// `maxEjectionPercent`.
    pub max_ejection_percent: Option<u8>,
}

/// `connectionPool`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectionPoolSpec {
    /// `maxConnections`.
    pub max_connections: Option<u32>,
    /// `maxPendingRequests`.
    pub max_pending_requests: Option<u32>,
    /// `maxRequestsPerConnection`.
    pub max_requests_per_connection: Option<u32>,
}
