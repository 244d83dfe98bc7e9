//! Causeway's own `TrafficPolicy` (`policy.causeway.dev/v1alpha1`): its schema and decoder.
//!
//! ```yaml
//! apiVersion: policy.causeway.dev/v1alpha1
//! kind: TrafficPolicy
//! metadata: {name: reviews, namespace: shop}
//! spec:
//!   targetRef: {kind: Service, name: reviews, port: 9080}
//!   loadBalancer: {algorithm: PeakEwma}
//!   rateLimit: {qps: 100, burst: 20}
//! ```
//!
//! The section decoders here are shared with the Istio mapping where the shapes agree.

use std::time::Duration;

use crate::decode::{Decoder, FieldRef, Object};
use crate::plan::{Algorithm, EnforcementPoint, LocalityTier, RateLimitScope, RetryCondition};
use crate::schema::{Field, ObjectSchema};
use crate::spec::{
    ConnectionPoolSpec, ConsistentHashSpec, HashKeySpec, LoadBalancerSpec, LocalitySpec,
    OnLimitAction, OutlierDetectionSpec, PeakEwmaSpec, RateLimitSpec, RetriesSpec, TimeoutsSpec,
    TrafficPolicySpec,
};
use crate::validate;

/// The `apiVersion` group of Causeway policies.
pub const GROUP: &str = "policy.causeway.dev";
/// The one version served.
pub const VERSION: &str = "v1alpha1";
/// The kind.
pub const KIND: &str = "TrafficPolicy";

/// The lowest rate a limit may set: one request per 1000 seconds.
pub const MIN_QPS: f64 = 0.001;

/// A positive duration, at least one nanosecond.
const POSITIVE: Duration = Duration::from_nanos(1);

/// `spec`.
pub static SPEC: ObjectSchema = ObjectSchema {
    name: "TrafficPolicySpec",
    fields: &[
        Field::object("targetRef", &TARGET_REF),
        Field::object("loadBalancer", &LOAD_BALANCER),
        Field::object("locality", &LOCALITY),
        Field::object("rateLimit", &RATE_LIMIT),
        Field::object("timeouts", &TIMEOUTS),
        Field::object("retries", &RETRIES),
        Field::object("outlierDetection", &OUTLIER_DETECTION),
        Field::object("connectionPool", &CONNECTION_POOL),
    ],
};

/// `spec.targetRef`.
pub static TARGET_REF: ObjectSchema = ObjectSchema {
    name: "TargetRef",
    fields: &[
        Field::value("group", "the core group, written \"\"").default("\"\""),
        Field::value("kind", "`Service`").default("Service"),
        Field::value("name", "a Service name (DNS-1035 label)"),
        Field::value("port", "a port number, 1 to 65535").default("every port"),
    ],
};

/// `spec.loadBalancer`.
pub static LOAD_BALANCER: ObjectSchema = ObjectSchema {
    name: "LoadBalancer",
    fields: &[
        Field::value(
            "algorithm",
            "one of RoundRobin, Random, LeastRequest, PeakEwma, ConsistentHash",
        )
        .default("LeastRequest"),
        Field::object("peakEwma", &PEAK_EWMA),
        Field::object("consistentHash", &CONSISTENT_HASH),
    ],
};

/// `spec.loadBalancer.peakEwma`.
pub static PEAK_EWMA: ObjectSchema = ObjectSchema {
    name: "PeakEwma",
    fields: &[
        Field::value("decay", "duration > 0").default("10s"),
        Field::value("defaultRtt", "duration > 0").default("30ms"),
    ],
};

/// `spec.loadBalancer.consistentHash`.
pub static CONSISTENT_HASH: ObjectSchema = ObjectSchema {
    name: "ConsistentHash",
    fields: &[
        Field::value("header", "an HTTP header name"),
        Field::object("cookie", &HASH_COOKIE),
        Field::value("sourceIP", "`true`"),
        Field::value("queryParameter", "a query parameter name"),
        Field::value("boundedLoad", "number >= 1.0").default("1.25"),
    ],
};

/// `spec.loadBalancer.consistentHash.cookie`.
pub static HASH_COOKIE: ObjectSchema = ObjectSchema {
    name: "HashCookie",
    fields: &[
        Field::value("name", "a cookie name"),
        Field::value("ttl", "duration >= 0").default("session cookie"),
        Field::value("path", "a path starting with /").default("/"),
    ],
};

/// `spec.locality`.
pub static LOCALITY: ObjectSchema = ObjectSchema {
    name: "Locality",
    fields: &[
        Field::value("prefer", "one of Node, Site, Any").default("Node"),
        Field::object("failover", &FAILOVER),
    ],
};

/// `spec.locality.failover`.
pub static FAILOVER: ObjectSchema = ObjectSchema {
    name: "Failover",
    fields: &[
        Field::value("minEndpoints", "integer >= 1").default("1"),
        Field::value("minHealthyPercent", "integer, 0 to 100").default("50"),
    ],
};

/// `spec.rateLimit`.
pub static RATE_LIMIT: ObjectSchema = ObjectSchema {
    name: "RateLimit",
    fields: &[
        Field::value("qps", "number, 0.001 to 1e9"),
        Field::value("burst", "integer >= 1").default("max(1, ceil(qps))"),
        Field::value("scope", "one of Service, Endpoint, Client").default("Service"),
        Field::value("enforceAt", "one of Destination, Source").default("Destination"),
        Field::value("onLimit", "one of Reject, Queue").default("Reject"),
        Field::value("maxQueueWait", "duration > 0").default("1s"),
    ],
};

/// `spec.timeouts`.
pub static TIMEOUTS: ObjectSchema = ObjectSchema {
    name: "Timeouts",
    fields: &[
        Field::value("connect", "duration > 0").default("5s"),
        Field::value("request", "duration > 0").default("none"),
        Field::value("idle", "duration >= 0 (0s: never)").default("1h"),
    ],
};

/// `spec.retries`.
pub static RETRIES: ObjectSchema = ObjectSchema {
    name: "Retries",
    fields: &[
        Field::value("attempts", "integer, 0 to 10").default("2"),
        Field::value("retryOn", "list of retry conditions and HTTP status codes")
            .default("[connect-failure, refused-stream, unavailable]"),
        Field::value("perTryTimeout", "duration > 0").default("none"),
        Field::object("backoff", &BACKOFF),
        Field::object("budget", &RETRY_BUDGET),
        Field::value("nonIdempotent", "boolean").default("false"),
    ],
};

/// `spec.retries.backoff`.
pub static BACKOFF: ObjectSchema = ObjectSchema {
    name: "Backoff",
    fields: &[
        Field::value("baseInterval", "duration > 0").default("25ms"),
        Field::value("maxInterval", "duration >= baseInterval").default("250ms"),
    ],
};

/// `spec.retries.budget`.
pub static RETRY_BUDGET: ObjectSchema = ObjectSchema {
    name: "RetryBudget",
    fields: &[
        Field::value("percent", "number, 0 to 100").default("20"),
        Field::value("minRetriesPerSecond", "integer >= 0").default("10"),
        Field::value("ttl", "duration, 1s to 60s").default("10s"),
    ],
};

/// `spec.outlierDetection`.
pub static OUTLIER_DETECTION: ObjectSchema = ObjectSchema {
    name: "OutlierDetection",
    fields: &[
        Field::value("consecutiveErrors", "integer >= 1").default("5"),
        Field::value("interval", "duration > 0").default("10s"),
        Field::value("baseEjectionTime", "duration > 0").default("30s"),
        Field::value("maxEjectionPercent", "integer, 0 to 100").default("10"),
    ],
};

/// `spec.connectionPool`.
pub static CONNECTION_POOL: ObjectSchema = ObjectSchema {
    name: "ConnectionPool",
    fields: &[
        Field::value("maxConnections", "integer >= 1").default("unlimited"),
        Field::value("maxPendingRequests", "integer >= 1").default("1024"),
        Field::value("maxRequestsPerConnection", "integer >= 1").default("unlimited"),
    ],
};

/// The target of a TrafficPolicy: a Service, optionally one of its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRefSpec {
    /// The Service's name, in the policy's namespace.
    pub name: String,
    /// The port, or every port.
    pub port: Option<u16>,
}

/// Decodes `spec`: the target and the policy sections. The sections mean something only
/// when the decoder recorded no error; the target is returned whenever it decoded.
pub fn decode_spec(
    d: &mut Decoder,
    field: &FieldRef<'_>,
) -> (Option<TargetRefSpec>, TrafficPolicySpec) {
    let Some(spec) = d.object(field, &SPEC) else {
        return (None, TrafficPolicySpec::default());
    };
    let target = d
        .require(&spec, "targetRef")
        .and_then(|f| target_ref(d, &f));
    let policy = TrafficPolicySpec {
        load_balancer: spec.get("loadBalancer").and_then(|f| load_balancer(d, &f)),
        locality: spec.get("locality").and_then(|f| locality(d, &f)),
        rate_limit: spec.get("rateLimit").and_then(|f| rate_limit(d, &f)),
        timeouts: spec.get("timeouts").and_then(|f| timeouts(d, &f)),
        retries: spec.get("retries").and_then(|f| retries(d, &f)),
        outlier_detection: spec
            .get("outlierDetection")
            .and_then(|f| outlier_detection(d, &f)),
        connection_pool: spec
            .get("connectionPool")
            .and_then(|f| connection_pool(d, &f)),
    };
    if let (Some(retries), Some(timeouts)) = (&policy.retries, &policy.timeouts)
        && let (Some(per_try), Some(request)) = (retries.per_try_timeout, timeouts.request)
        && per_try >= request
        && retries.attempts != Some(0)
    {
        let at = spec
            .get("retries")
            .and_then(|r| r.member("perTryTimeout", "duration > 0"));
        if let Some(at) = at {
            d.warning(&at, "perTryTimeout is not shorter than timeouts.request, so no retry can happen after a timed-out try")
                .help = Some("make perTryTimeout shorter than the request timeout".into());
        }
    }
    (target, policy)
}

fn target_ref(d: &mut Decoder, field: &FieldRef<'_>) -> Option<TargetRefSpec> {
    let o = d.object(field, &TARGET_REF)?;
    if let Some(f) = o.get("group")
        && let Some(group) = d.string(&f)
        && !group.is_empty()
        && group != "core"
    {
        d.error(
            &f,
            format!("policies attach to core Services, not to group `{group}`"),
        )
        .expected = Some("\"\" (the core group)".into());
    }
    if let Some(f) = o.get("kind")
        && let Some(kind) = d.string(&f)
        && kind != "Service"
    {
        let message = if kind.eq_ignore_ascii_case("service") {
            format!("unknown kind `{kind}`, did you mean `Service`?")
        } else {
            format!("policies attach to Services, not to `{kind}`")
        };
        d.error(&f, message).expected = Some("`Service`".into());
    }
    let name = d.require(&o, "name").and_then(|f| {
        let name = d.string(&f)?;
        validate::service_name(d, &f, name)
    });
    let port = match o.get("port") {
        Some(f) => Some(d.u32(&f, 1, 65535).and_then(|p| u16::try_from(p).ok())?),
        None => None,
    };
    Some(TargetRefSpec {
        name: name?.to_string(),
        port,
    })
}

/// Decodes `loadBalancer`.
pub fn load_balancer(d: &mut Decoder, field: &FieldRef<'_>) -> Option<LoadBalancerSpec> {
    let o = d.object(field, &LOAD_BALANCER)?;
    let algorithm = o
        .get("algorithm")
        .and_then(|f| d.enumeration(&f, Algorithm::NAMES));
    let peak_ewma = o.get("peakEwma").and_then(|f| {
        let e = d.object(&f, &PEAK_EWMA)?;
        Some(PeakEwmaSpec {
            decay: e.get("decay").and_then(|f| d.duration(&f, POSITIVE)),
            default_rtt: e.get("defaultRtt").and_then(|f| d.duration(&f, POSITIVE)),
        })
    });
    let consistent_hash = o.get("consistentHash").and_then(|f| consistent_hash(d, &f));
    let parameters_for = |name: &str, wanted: Algorithm, d: &mut Decoder| {
        if let (Some(algorithm), Some(f)) = (algorithm, o.get(name))
            && algorithm != wanted
        {
            d.error(
                &f,
                format!("`{name}` applies only to algorithm {wanted:?}, but the algorithm is {algorithm:?}"),
            )
            .help = Some(format!("remove `{name}`, or set `algorithm: {wanted:?}`"));
        }
    };
    parameters_for("peakEwma", Algorithm::PeakEwma, d);
    parameters_for("consistentHash", Algorithm::ConsistentHash, d);
    if algorithm == Some(Algorithm::ConsistentHash) && !o.has("consistentHash") {
        d.missing(&o, "consistentHash");
    }
    if algorithm.is_none()
        && o.has("peakEwma")
        && let Some(f) = o.get("consistentHash")
    {
        d.error(
            &f,
            "both peakEwma and consistentHash are set, so the algorithm is ambiguous",
        )
        .help = Some("set `algorithm`, and keep only the parameters of that algorithm".into());
    }
    Some(LoadBalancerSpec {
        algorithm,
        peak_ewma,
        consistent_hash,
    })
}

fn consistent_hash(d: &mut Decoder, field: &FieldRef<'_>) -> Option<ConsistentHashSpec> {
    let o = d.object(field, &CONSISTENT_HASH)?;
    let bounded_load = o.get("boundedLoad").and_then(|f| {
        let v = d.number(&f)?;
        if v < 1.0 {
            d.error(
                &f,
                format!("boundedLoad must be at least 1.0, found {}", f.written()),
            )
            .help = Some(
                "1.25 lets an endpoint take 25% more than the mean before keys move on".into(),
            );
            return None;
        }
        Some(v)
    });
    let key = hash_key(d, &o, &HASH_KEY_NAMES, &HASH_COOKIE)?;
    Some(ConsistentHashSpec { key, bounded_load })
}

/// The keys that name a hash key, in the order header, cookie, source IP, query
/// parameter — Causeway's and Istio's spellings differ, the rules do not.
#[derive(Debug)]
pub(crate) struct HashKeyNames {
    pub header: &'static str,
    pub cookie: &'static str,
    pub source_ip: &'static str,
    pub query_parameter: &'static str,
    /// Whether a cookie without a `ttl` is still set by the mesh.
    pub generate_cookie_without_ttl: bool,
}

const HASH_KEY_NAMES: HashKeyNames = HashKeyNames {
    header: "header",
    cookie: "cookie",
    source_ip: "sourceIP",
    query_parameter: "queryParameter",
    generate_cookie_without_ttl: true,
};

/// The one hash key written in a consistent-hash mapping: exactly one of the four, each
/// validated. `cookie` is a mapping of `cookie_schema` with `name`, `ttl` and `path`.
pub(crate) fn hash_key(
    d: &mut Decoder,
    o: &Object<'_>,
    names: &HashKeyNames,
    cookie_schema: &'static ObjectSchema,
) -> Option<HashKeySpec> {
    let all = [
        names.header,
        names.cookie,
        names.source_ip,
        names.query_parameter,
    ];
    let written: Vec<&str> = all.iter().copied().filter(|k| o.has(k)).collect();
    let one = match written.as_slice() {
        [] => {
            let listed: Vec<String> = all.iter().map(|k| format!("`{k}`")).collect();
            d.report(
                crate::Severity::Error,
                o.span(),
                o.path(),
                "consistentHash needs a hash key",
            )
            .expected = Some(format!("one of {}", listed.join(", ")));
            return None;
        }
        [one] => *one,
        [first, second, ..] => {
            let f = o.get(second)?;
            d.error(
                &f,
                format!(
                    "consistentHash takes one hash key, but both `{first}` and `{second}` are set"
                ),
            )
            .help = Some("keep one of them".into());
            return None;
        }
    };
    let f = o.get(one)?;
    if one == names.header {
        let name = d.string(&f)?;
        Some(HashKeySpec::Header(
            validate::header_name(d, &f, name)?.to_string(),
        ))
    } else if one == names.cookie {
        hash_cookie(d, &f, cookie_schema, names.generate_cookie_without_ttl)
    } else if one == names.source_ip {
        if !d.boolean(&f)? {
            d.error(&f, format!("`{one}: false` selects no hash key"))
                .help = Some(format!("write `{one}: true`, or name another key"));
            return None;
        }
        Some(HashKeySpec::SourceIp)
    } else {
        let name = d.string(&f)?;
        Some(HashKeySpec::QueryParameter(
            validate::query_parameter(d, &f, name)?.to_string(),
        ))
    }
}

fn hash_cookie(
    d: &mut Decoder,
    field: &FieldRef<'_>,
    schema: &'static ObjectSchema,
    generate_without_ttl: bool,
) -> Option<HashKeySpec> {
    let o = d.object(field, schema)?;
    let name = d.require(&o, "name").and_then(|f| {
        let name = d.string(&f)?;
        validate::cookie_name(d, &f, name).map(str::to_string)
    });
    let ttl = o.get("ttl").and_then(|f| d.duration(&f, Duration::ZERO));
    let path = o.get("path").and_then(|f| {
        let path = d.string(&f)?;
        validate::cookie_path(d, &f, path).map(str::to_string)
    });
    Some(HashKeySpec::Cookie {
        name: name?,
        generate: generate_without_ttl || o.has("ttl"),
        ttl,
        path,
    })
}

fn locality(d: &mut Decoder, field: &FieldRef<'_>) -> Option<LocalitySpec> {
    let o = d.object(field, &LOCALITY)?;
    let prefer = o
        .get("prefer")
        .and_then(|f| d.enumeration(&f, LocalityTier::NAMES));
    let mut spec = LocalitySpec {
        prefer,
        ..LocalitySpec::default()
    };
    if let Some(f) = o.get("failover") {
        let failover = d.object(&f, &FAILOVER)?;
        spec.min_endpoints = failover
            .get("minEndpoints")
            .and_then(|f| d.u32(&f, 1, u32::MAX));
        spec.min_healthy_percent = failover
            .get("minHealthyPercent")
            .and_then(|f| percent(d, &f));
    }
    Some(spec)
}

fn percent(d: &mut Decoder, field: &FieldRef<'_>) -> Option<u8> {
    d.u32(field, 0, 100).and_then(|v| u8::try_from(v).ok())
}

fn rate_limit(d: &mut Decoder, field: &FieldRef<'_>) -> Option<RateLimitSpec> {
    let o = d.object(field, &RATE_LIMIT)?;
    let qps = d.require(&o, "qps").and_then(|f| {
        let qps = d.number(&f)?;
        if qps <= 0.0 {
            d.error(
                &f,
                format!("qps must be greater than 0, found {}", f.written()),
            )
            .help =
                Some("remove rateLimit to stop limiting; 0.5 admits one request every 2s".into());
            return None;
        }
        if qps > 1e9 {
            d.error(
                &f,
                format!("qps must be at most 1e9, found {}", f.written()),
            );
            return None;
        }
        if qps < MIN_QPS {
            d.error(
                &f,
                format!(
                    "qps must be at least {MIN_QPS} (one request per 1000s), found {}",
                    f.written()
                ),
            );
            return None;
        }
        Some(qps)
    });
    let burst = o.get("burst").and_then(|f| d.u32(&f, 1, u32::MAX));
    let scope = o
        .get("scope")
        .and_then(|f| d.enumeration(&f, RateLimitScope::NAMES));
    let enforce_at = o
        .get("enforceAt")
        .and_then(|f| d.enumeration(&f, EnforcementPoint::NAMES));
    let on_limit = o
        .get("onLimit")
        .and_then(|f| d.enumeration(&f, OnLimitAction::NAMES));
    let max_queue_wait = o.get("maxQueueWait").and_then(|f| {
        let wait = d.duration(&f, POSITIVE)?;
        if on_limit != Some(OnLimitAction::Queue) {
            d.warning(&f, "maxQueueWait has no effect unless onLimit is Queue")
                .help = Some("set `onLimit: Queue`, or remove maxQueueWait".into());
        }
        Some(wait)
    });
    Some(RateLimitSpec {
        qps: qps?,
        burst,
        scope,
        enforce_at,
        on_limit,
        max_queue_wait,
    })
}

/// Decodes `timeouts`.
fn timeouts(d: &mut Decoder, field: &FieldRef<'_>) -> Option<TimeoutsSpec> {
    let o = d.object(field, &TIMEOUTS)?;
    Some(TimeoutsSpec {
        connect: o.get("connect").and_then(|f| d.duration(&f, POSITIVE)),
        request: o.get("request").and_then(|f| d.duration(&f, POSITIVE)),
        idle: o.get("idle").and_then(|f| d.duration(&f, Duration::ZERO)),
    })
}

fn retries(d: &mut Decoder, field: &FieldRef<'_>) -> Option<RetriesSpec> {
    let o = d.object(field, &RETRIES)?;
    let mut spec = RetriesSpec {
        attempts: o.get("attempts").and_then(|f| d.u32(&f, 0, 10)),
        retry_on: o.get("retryOn").and_then(|f| retry_on(d, &f)),
        per_try_timeout: o
            .get("perTryTimeout")
            .and_then(|f| d.duration(&f, POSITIVE)),
        non_idempotent: o.get("nonIdempotent").and_then(|f| d.boolean(&f)),
        ..RetriesSpec::default()
    };
    if let Some(f) = o.get("backoff") {
        let b = d.object(&f, &BACKOFF)?;
        spec.backoff_base = b.get("baseInterval").and_then(|f| d.duration(&f, POSITIVE));
        spec.backoff_max = b.get("maxInterval").and_then(|f| d.duration(&f, POSITIVE));
        let base = spec
            .backoff_base
            .unwrap_or(crate::plan::DEFAULT_BACKOFF_BASE);
        if let (Some(max), Some(f)) = (spec.backoff_max, b.get("maxInterval"))
            && max < base
        {
            d.error(
                &f,
                format!(
                    "maxInterval is shorter than baseInterval ({})",
                    crate::duration::format(base)
                ),
            )
            .expected = Some("duration >= baseInterval".into());
        }
    }
    if let Some(f) = o.get("budget") {
        let b = d.object(&f, &RETRY_BUDGET)?;
        spec.budget_percent = b.get("percent").and_then(|f| {
            let v = d.number(&f)?;
            if !(0.0..=100.0).contains(&v) {
                d.error(
                    &f,
                    format!("percent must be between 0 and 100, found {}", f.written()),
                );
                return None;
            }
            Some(v)
        });
        spec.budget_min_per_second = b
            .get("minRetriesPerSecond")
            .and_then(|f| d.u32(&f, 0, u32::MAX));
        spec.budget_ttl = b.get("ttl").and_then(|f| {
            let ttl = d.duration(&f, Duration::from_secs(1))?;
            if ttl > Duration::from_secs(60) {
                d.error(&f, "ttl must be at most 60s").expected =
                    Some("duration, 1s to 60s".into());
                return None;
            }
            Some(ttl)
        });
    }
    Some(spec)
}

fn retry_on(d: &mut Decoder, field: &FieldRef<'_>) -> Option<Vec<RetryCondition>> {
    let items = d.items(
        field,
        "a retry condition or an HTTP status code from 400 to 599",
    )?;
    let errors_before = d.error_count();
    let mut conditions = Vec::with_capacity(items.len());
    for item in items {
        let condition = match item.node.resolve() {
            Some(crate::yaml::Resolved::Int(_)) => d
                .u32(&item, 400, 599)
                .and_then(|c| u16::try_from(c).ok())
                .map(RetryCondition::Status),
            _ => d.enumeration(&item, RetryCondition::NAMES),
        };
        conditions.extend(condition);
    }
    if conditions.is_empty() && d.error_count() == errors_before {
        d.error(field, "retryOn is empty, so nothing would be retried")
            .help = Some(
            "remove retryOn for the defaults, or set `attempts: 0` to turn retries off".into(),
        );
        return None;
    }
    Some(conditions)
}

fn outlier_detection(d: &mut Decoder, field: &FieldRef<'_>) -> Option<OutlierDetectionSpec> {
    let o = d.object(field, &OUTLIER_DETECTION)?;
    Some(OutlierDetectionSpec {
        consecutive_errors: o
            .get("consecutiveErrors")
            .and_then(|f| d.u32(&f, 1, u32::MAX)),
        interval: o.get("interval").and_then(|f| d.duration(&f, POSITIVE)),
        base_ejection_time: o
            .get("baseEjectionTime")
            .and_then(|f| d.duration(&f, POSITIVE)),
        max_ejection_percent: o.get("maxEjectionPercent").and_then(|f| percent(d, &f)),
    })
}

fn connection_pool(d: &mut Decoder, field: &FieldRef<'_>) -> Option<ConnectionPoolSpec> {
    let o = d.object(field, &CONNECTION_POOL)?;
    Some(ConnectionPoolSpec {
        max_connections: o.get("maxConnections").and_then(|f| d.u32(&f, 1, u32::MAX)),
        max_pending_requests: o
            .get("maxPendingRequests")
            .and_then(|f| d.u32(&f, 1, u32::MAX)),
        max_requests_per_connection: o
            .get("maxRequestsPerConnection")
            .and_then(|f| d.u32(&f, 1, u32::MAX)),
    })
}
