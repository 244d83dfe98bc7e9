//! The compiled plan: what the mesh consults for every request to a service port.
//!
//! A [`ServicePolicy`] is immutable and complete — every default filled in, names
//! normalised (header names lowercased), nothing optional that the mesh would have to
//! default again. It is separate from the YAML model ([`crate::spec`]) so the schema can
//! grow aliases, deprecations and Istio mappings without the hot path noticing. The mesh
//! holds plans in `Arc`s inside a [`crate::PolicySet`] and swaps the whole set on change.

use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::duration;

/// Default algorithm: least request with two random choices, robust to slow endpoints
/// and cheap (Istio's default too).
pub const DEFAULT_ALGORITHM: Algorithm = Algorithm::LeastRequest;
/// Default PeakEwma decay: how long a latency observation keeps its weight.
pub const DEFAULT_EWMA_DECAY: Duration = Duration::from_secs(10);
/// Default PeakEwma round-trip estimate for an endpoint with no observation yet.
pub const DEFAULT_EWMA_RTT: Duration = Duration::from_millis(30);
/// Default bounded-load factor: no endpoint takes more than 1.25× the mean load.
pub const DEFAULT_BOUNDED_LOAD: f64 = 1.25;
/// Default path of a generated hash cookie.
pub const DEFAULT_COOKIE_PATH: &str = "/";
/// Default locality preference.
pub const DEFAULT_LOCALITY_PREFER: LocalityTier = LocalityTier::Node;
/// Default: a locality tier with fewer healthy endpoints than this is skipped.
pub const DEFAULT_FAILOVER_MIN_ENDPOINTS: u32 = 1;
/// Default: a locality tier with fewer than this percent of its endpoints healthy is skipped.
pub const DEFAULT_FAILOVER_MIN_HEALTHY_PERCENT: u8 = 50;
/// Default wait of a queued request under `onLimit: Queue`.
pub const DEFAULT_MAX_QUEUE_WAIT: Duration = Duration::from_secs(1);
/// Default TCP connect timeout to an endpoint.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default idle timeout of a proxied connection.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Default retries after the first try.
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 2;
/// Default conditions that trigger a retry: failures where the request never reached the
/// application, and gRPC UNAVAILABLE.
pub const DEFAULT_RETRY_ON: &[RetryCondition] = &[
    RetryCondition::ConnectFailure,
    RetryCondition::RefusedStream,
    RetryCondition::Unavailable,
];
/// Default first backoff between tries.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(25);
/// Default longest backoff between tries.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_millis(250);
/// Default retry budget: retries may add at most this percent of the request rate…
pub const DEFAULT_BUDGET_PERCENT: f64 = 20.0;
/// …plus this many retries per second, so low-traffic services can still retry…
pub const DEFAULT_BUDGET_MIN_PER_SECOND: u32 = 10;
/// …measured over this window.
pub const DEFAULT_BUDGET_TTL: Duration = Duration::from_secs(10);
/// Default consecutive errors that eject an endpoint.
pub const DEFAULT_CONSECUTIVE_ERRORS: u32 = 5;
/// Default interval between ejection sweeps.
pub const DEFAULT_OUTLIER_INTERVAL: Duration = Duration::from_secs(10);
/// Default ejection time (multiplied by the times an endpoint has been ejected).
pub const DEFAULT_BASE_EJECTION_TIME: Duration = Duration::from_secs(30);
/// Default cap on the share of endpoints ejected at once.
pub const DEFAULT_MAX_EJECTION_PERCENT: u8 = 10;
/// Default cap on requests waiting for a connection before the mesh sheds with 503.
pub const DEFAULT_MAX_PENDING_REQUESTS: u32 = 1024;

/// The complete traffic policy of one service port.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePolicy {
    /// How an endpoint is chosen.
    pub load_balancer: LoadBalancer,
    /// Which endpoints are preferred by where they run.
    pub locality: Locality,
    /// The QPS limit, if any.
    pub rate_limit: Option<RateLimit>,
    /// Connect, request and idle timeouts.
    pub timeouts: Timeouts,
    /// When and how failed requests are tried again.
    pub retries: Retries,
    /// Ejection of failing endpoints, if enabled.
    pub outlier_detection: Option<OutlierDetection>,
    /// Limits on connections and queued requests per endpoint.
    pub connection_pool: ConnectionPool,
}

impl Default for ServicePolicy {
    /// The policy of a service nobody wrote a policy for.
    fn default() -> Self {
        Self {
            load_balancer: LoadBalancer::LeastRequest,
            locality: Locality::default(),
            rate_limit: None,
            timeouts: Timeouts::default(),
            retries: Retries::default(),
            outlier_detection: None,
            connection_pool: ConnectionPool::default(),
        }
    }
}

/// The algorithms an operator can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Algorithm {
    /// Each endpoint in turn.
    RoundRobin,
    /// Uniformly at random.
    Random,
    /// The less loaded of two random endpoints (power of two choices).
    LeastRequest,
    /// The lowest peak-EWMA latency × load (latency aware).
    PeakEwma,
    /// A hash of a request attribute, so the same key reaches the same endpoint.
    ConsistentHash,
}

impl Algorithm {
    /// The names operators write.
    pub const NAMES: &[(&'static str, Algorithm)] = &[
        ("RoundRobin", Algorithm::RoundRobin),
        ("Random", Algorithm::Random),
        ("LeastRequest", Algorithm::LeastRequest),
        ("PeakEwma", Algorithm::PeakEwma),
        ("ConsistentHash", Algorithm::ConsistentHash),
    ];
}

/// How an endpoint is chosen, with the algorithm's parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "algorithm", rename_all_fields = "camelCase")]
pub enum LoadBalancer {
    /// Each endpoint in turn.
    RoundRobin,
    /// Uniformly at random.
    Random,
    /// Power of two choices on outstanding requests.
    LeastRequest,
    /// Peak-EWMA latency weighted by outstanding requests.
    PeakEwma {
        /// How long an observation keeps its weight.
        #[serde(serialize_with = "ser_duration")]
        decay: Duration,
        /// The estimate for an endpoint with no observation yet.
        #[serde(serialize_with = "ser_duration")]
        default_rtt: Duration,
    },
    /// Consistent hashing with bounded load.
    ConsistentHash {
        /// What is hashed.
        key: HashKey,
        /// No endpoint takes more than this multiple of the mean load (≥ 1).
        bounded_load: f64,
    },
}

impl LoadBalancer {
    /// The algorithm without its parameters.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            LoadBalancer::RoundRobin => Algorithm::RoundRobin,
            LoadBalancer::Random => Algorithm::Random,
            LoadBalancer::LeastRequest => Algorithm::LeastRequest,
            LoadBalancer::PeakEwma { .. } => Algorithm::PeakEwma,
            LoadBalancer::ConsistentHash { .. } => Algorithm::ConsistentHash,
        }
    }
}

/// The request attribute a consistent hash uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum HashKey {
    /// An HTTP header, by lowercase name.
    Header {
        /// The header name, lowercased.
        name: String,
    },
    /// An HTTP cookie.
    Cookie {
        /// The cookie name.
        name: String,
        /// Whether the mesh sets the cookie on a response to a request that had none.
        generate: bool,
        /// Max-Age of a generated cookie; `None` makes a session cookie.
        #[serde(serialize_with = "ser_opt_duration")]
        ttl: Option<Duration>,
        /// Path of a generated cookie.
        path: String,
    },
    /// The client's IP address (works for plain TCP too).
    SourceIp,
    /// A URL query parameter.
    QueryParameter {
        /// The parameter name.
        name: String,
    },
}

/// Where endpoints may be, from nearest to farthest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LocalityTier {
    /// On the caller's node.
    Node,
    /// On a node of the caller's site.
    Site,
    /// Anywhere.
    Any,
}

impl LocalityTier {
    /// The names operators write.
    pub const NAMES: &[(&'static str, LocalityTier)] = &[
        ("Node", LocalityTier::Node),
        ("Site", LocalityTier::Site),
        ("Any", LocalityTier::Any),
    ];
}

/// Locality preference with failover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Locality {
    /// The nearest tier to prefer; farther tiers are used on failover. `Any` disables
    /// locality.
    pub prefer: LocalityTier,
    /// A tier with fewer healthy endpoints than this is skipped.
    pub min_endpoints: u32,
    /// A tier with fewer than this percent of its endpoints healthy is skipped.
    pub min_healthy_percent: u8,
}

impl Default for Locality {
    fn default() -> Self {
        Self {
            prefer: DEFAULT_LOCALITY_PREFER,
            min_endpoints: DEFAULT_FAILOVER_MIN_ENDPOINTS,
            min_healthy_percent: DEFAULT_FAILOVER_MIN_HEALTHY_PERCENT,
        }
    }
}

/// What one token bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RateLimitScope {
    /// All requests to the service share one limit.
    Service,
    /// Each endpoint has its own limit.
    Endpoint,
    /// Each client (source workload) has its own limit.
    Client,
}

impl RateLimitScope {
    /// The names operators write.
    pub const NAMES: &[(&'static str, RateLimitScope)] = &[
        ("Service", RateLimitScope::Service),
        ("Endpoint", RateLimitScope::Endpoint),
        ("Client", RateLimitScope::Client),
    ];
}

/// Which proxy enforces a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EnforcementPoint {
    /// The proxy in front of the endpoint, before the application (the seed design).
    Destination,
    /// The caller's proxy, before the request leaves its node.
    Source,
}

impl EnforcementPoint {
    /// The names operators write.
    pub const NAMES: &[(&'static str, EnforcementPoint)] = &[
        ("Destination", EnforcementPoint::Destination),
        ("Source", EnforcementPoint::Source),
    ];
}

/// What happens to a request over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all_fields = "camelCase")]
pub enum OnLimit {
    /// Refuse at once: HTTP 429 with Retry-After, gRPC RESOURCE_EXHAUSTED, or a refused
    /// connection for plain TCP.
    Reject,
    /// Wait for a token up to `max_wait`, then refuse.
    Queue {
        /// The longest a request waits.
        #[serde(serialize_with = "ser_duration")]
        max_wait: Duration,
    },
}

/// A QPS limit (GCRA: `qps` sustained, `burst` at once).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Sustained requests (or new connections, for TCP ports) per second.
    pub qps: f64,
    /// Requests admitted at once from a full bucket.
    pub burst: u32,
    /// What one bucket counts.
    pub scope: RateLimitScope,
    /// Which proxy enforces it.
    pub enforce_at: EnforcementPoint,
    /// What happens over the limit.
    pub on_limit: OnLimit,
}

/// The burst used when a policy names none: one second's worth, at least one.
pub fn default_burst(qps: f64) -> u32 {
    let burst = qps.ceil().max(1.0);
    if burst >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        burst as u32
    }
}

/// Timeouts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// Connecting to an endpoint (or opening a tunnel stream to its node).
    #[serde(serialize_with = "ser_duration")]
    pub connect: Duration,
    /// A whole request, retries included; `None` for no limit.
    #[serde(serialize_with = "ser_opt_duration")]
    pub request: Option<Duration>,
    /// A connection with no traffic either way is closed after this; `None` for never.
    #[serde(serialize_with = "ser_opt_duration")]
    pub idle: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: DEFAULT_CONNECT_TIMEOUT,
            request: None,
            idle: Some(DEFAULT_IDLE_TIMEOUT),
        }
    }
}

/// A condition under which a failed try is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryCondition {
    /// The endpoint could not be reached.
    ConnectFailure,
    /// The endpoint refused the HTTP/2 stream before processing it.
    RefusedStream,
    /// The connection was reset before a response began.
    Reset,
    /// Any 5xx response (and connect failures and resets).
    #[serde(rename = "5xx")]
    Http5xx,
    /// 502, 503 or 504.
    GatewayError,
    /// gRPC CANCELLED.
    Cancelled,
    /// gRPC DEADLINE_EXCEEDED.
    DeadlineExceeded,
    /// gRPC INTERNAL.
    Internal,
    /// gRPC RESOURCE_EXHAUSTED.
    ResourceExhausted,
    /// gRPC UNAVAILABLE.
    Unavailable,
    /// One HTTP status code.
    #[serde(untagged)]
    Status(u16),
}

impl RetryCondition {
    /// The names operators write (status codes are written as numbers).
    pub const NAMES: &[(&'static str, RetryCondition)] = &[
        ("connect-failure", RetryCondition::ConnectFailure),
        ("refused-stream", RetryCondition::RefusedStream),
        ("reset", RetryCondition::Reset),
        ("5xx", RetryCondition::Http5xx),
        ("gateway-error", RetryCondition::GatewayError),
        ("cancelled", RetryCondition::Cancelled),
        ("deadline-exceeded", RetryCondition::DeadlineExceeded),
        ("internal", RetryCondition::Internal),
        ("resource-exhausted", RetryCondition::ResourceExhausted),
        ("unavailable", RetryCondition::Unavailable),
    ];
}

/// Retries.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Retries {
    /// Tries after the first; 0 disables retries.
    pub attempts: u32,
    /// Conditions that allow a retry, sorted, without repeats.
    pub retry_on: Vec<RetryCondition>,
    /// Limit of each try; `None` leaves only the request timeout.
    #[serde(serialize_with = "ser_opt_duration")]
    pub per_try_timeout: Option<Duration>,
    /// Jittered exponential backoff between tries.
    pub backoff: Backoff,
    /// The share of extra load retries may add.
    pub budget: RetryBudget,
    /// Whether non-idempotent requests (POST, PATCH, …) are retried too.
    pub non_idempotent: bool,
}

impl Default for Retries {
    fn default() -> Self {
        Self {
            attempts: DEFAULT_RETRY_ATTEMPTS,
            retry_on: DEFAULT_RETRY_ON.to_vec(),
            per_try_timeout: None,
            backoff: Backoff::default(),
            budget: RetryBudget::default(),
            non_idempotent: false,
        }
    }
}

/// Backoff between tries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// The first wait; each later wait doubles, with jitter.
    #[serde(serialize_with = "ser_duration")]
    pub base_interval: Duration,
    /// The longest wait.
    #[serde(serialize_with = "ser_duration")]
    pub max_interval: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base_interval: DEFAULT_BACKOFF_BASE,
            max_interval: DEFAULT_BACKOFF_MAX,
        }
    }
}

/// A retry budget, so retries never multiply the load on an overloaded service.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryBudget {
    /// Retries may add at most this percent of the requests in the window.
    pub percent: f64,
    /// Retries always allowed per second, whatever the percent.
    pub min_retries_per_second: u32,
    /// The window over which requests are counted.
    #[serde(serialize_with = "ser_duration")]
    pub ttl: Duration,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            percent: DEFAULT_BUDGET_PERCENT,
            min_retries_per_second: DEFAULT_BUDGET_MIN_PER_SECOND,
            ttl: DEFAULT_BUDGET_TTL,
        }
    }
}

/// Ejection of endpoints that keep failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    /// 5xx responses or connect failures in a row that eject an endpoint; 0 turns this
    /// trigger off.
    pub consecutive_errors: u32,
    /// How often ejections are evaluated and lifted.
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    /// An ejected endpoint stays out this long times the number of its ejections.
    #[serde(serialize_with = "ser_duration")]
    pub base_ejection_time: Duration,
    /// Never more than this percent of a service's endpoints are ejected at once.
    pub max_ejection_percent: u8,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        Self {
            consecutive_errors: DEFAULT_CONSECUTIVE_ERRORS,
            interval: DEFAULT_OUTLIER_INTERVAL,
            base_ejection_time: DEFAULT_BASE_EJECTION_TIME,
            max_ejection_percent: DEFAULT_MAX_EJECTION_PERCENT,
        }
    }
}

/// Limits per endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionPool {
    /// Connections open to one endpoint; `None` for no limit.
    pub max_connections: Option<u32>,
    /// Requests waiting for a connection; more are shed with 503.
    pub max_pending_requests: u32,
    /// Requests over one upstream connection before it is closed; `None` for no limit.
    pub max_requests_per_connection: Option<u32>,
}

impl Default for ConnectionPool {
    fn default() -> Self {
        Self {
            max_connections: None,
            max_pending_requests: DEFAULT_MAX_PENDING_REQUESTS,
            max_requests_per_connection: None,
        }
    }
}

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&duration::Formatted(*d))
}

fn ser_opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.collect_str(&duration::Formatted(*d)),
        None => s.serialize_none(),
    }
}
