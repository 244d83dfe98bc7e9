//! Istio `DestinationRule` (`networking.istio.io` v1, v1beta1, v1alpha3), mapped onto the
//! same plan as a TrafficPolicy so an EdgeMesh or Istio user's YAML works unchanged.
//!
//! What maps: `trafficPolicy.loadBalancer` (simple and consistentHash),
//! `connectionPool` (limits, connect and idle timeouts), `outlierDetection`, and the same
//! three per port under `portLevelSettings`. Every other Istio field is accepted with a
//! warning that names it and says why it has no effect; a key Istio does not define either
//! is an error, as `kubectl apply` would make it.
//!
//! Port-level settings follow Istio: a section written for a port replaces that section of
//! the top level for the port; sections it does not write are inherited.

use std::time::Duration;

use crate::decode::{Decoder, FieldRef};
use crate::plan::Algorithm;
use crate::schema::{Field, ObjectSchema, Ty};
use crate::spec::{
    ConnectionPoolSpec, ConsistentHashSpec, LoadBalancerSpec, OutlierDetectionSpec, TimeoutsSpec,
    TrafficPolicySpec,
};
use crate::traffic_policy::{HashKeyNames, hash_key};
use crate::yaml::Span;

/// The API group.
pub const GROUP: &str = "networking.istio.io";
/// The versions read; all share one schema.
pub const VERSIONS: &[&str] = &["v1", "v1beta1", "v1alpha3"];
/// The kind.
pub const KIND: &str = "DestinationRule";

const POSITIVE: Duration = Duration::from_nanos(1);
const MTLS: &str = "Causeway carries every cross-node call over its own mutually authenticated QUIC tunnels; upstream TLS settings are not used";

/// `spec`.
pub static SPEC: ObjectSchema = ObjectSchema {
    name: "DestinationRuleSpec",
    fields: &[
        Field::value(
            "host",
            "a Service host: `name`, or `name.namespace.svc.<cluster domain>`",
        ),
        Field::object("trafficPolicy", &TRAFFIC_POLICY),
        Field::unsupported(
            "subsets",
            "Causeway does not route to subsets; policies apply to the whole Service",
        ),
        Field::unsupported(
            "exportTo",
            "every node that can reach a Service gets its policy",
        ),
        Field::unsupported(
            "workloadSelector",
            "policies apply to every caller of the Service",
        ),
    ],
};

/// `spec.trafficPolicy`.
pub static TRAFFIC_POLICY: ObjectSchema = ObjectSchema {
    name: "TrafficPolicy",
    fields: &[
        Field::object("loadBalancer", &LOAD_BALANCER),
        Field::object("connectionPool", &CONNECTION_POOL),
        Field::object("outlierDetection", &OUTLIER_DETECTION),
        Field::unsupported("tls", MTLS),
        Field::new("portLevelSettings", Ty::ObjectList(&PORT_SETTINGS)),
        Field::unsupported("tunnel", "Causeway tunnels between nodes itself"),
        Field::unsupported(
            "proxyProtocol",
            "Causeway does not send the PROXY protocol upstream",
        ),
        Field::unsupported(
            "retryBudget",
            "write `retries.budget` in a Causeway TrafficPolicy instead",
        ),
    ],
};

/// `spec.trafficPolicy.portLevelSettings[]`.
pub static PORT_SETTINGS: ObjectSchema = ObjectSchema {
    name: "PortTrafficPolicy",
    fields: &[
        Field::object("port", &PORT_SELECTOR),
        Field::object("loadBalancer", &LOAD_BALANCER),
        Field::object("connectionPool", &CONNECTION_POOL),
        Field::object("outlierDetection", &OUTLIER_DETECTION),
        Field::unsupported("tls", MTLS),
    ],
};

/// `port`.
pub static PORT_SELECTOR: ObjectSchema = ObjectSchema {
    name: "PortSelector",
    fields: &[Field::value("number", "a port number, 1 to 65535")],
};

/// `loadBalancer`.
pub static LOAD_BALANCER: ObjectSchema = ObjectSchema {
    name: "LoadBalancerSettings",
    fields: &[
        Field::value(
            "simple",
            "one of UNSPECIFIED, ROUND_ROBIN, LEAST_REQUEST, RANDOM, LEAST_CONN, PASSTHROUGH",
        )
        .default("LEAST_REQUEST"),
        Field::object("consistentHash", &CONSISTENT_HASH),
        Field::unsupported(
            "localityLbSetting",
            "write locality in a Causeway TrafficPolicy; Causeway prefers the same node, then the same site",
        ),
        Field::unsupported(
            "warmupDurationSecs",
            "endpoints take full load as soon as they are ready",
        ),
        Field::unsupported(
            "warmup",
            "endpoints take full load as soon as they are ready",
        ),
    ],
};

/// `loadBalancer.consistentHash`.
pub static CONSISTENT_HASH: ObjectSchema = ObjectSchema {
    name: "ConsistentHashLB",
    fields: &[
        Field::value("httpHeaderName", "an HTTP header name"),
        Field::object("httpCookie", &HTTP_COOKIE),
        Field::value("useSourceIp", "`true`"),
        Field::value("httpQueryParameterName", "a query parameter name"),
        Field::unsupported(
            "ringHash",
            "Causeway chooses its own hash table and bounds the load per endpoint at 1.25x the mean",
        ),
        Field::unsupported(
            "maglev",
            "Causeway chooses its own hash table and bounds the load per endpoint at 1.25x the mean",
        ),
        Field::unsupported(
            "minimumRingSize",
            "Causeway chooses its own hash table size",
        ),
    ],
};

/// `loadBalancer.consistentHash.httpCookie`.
pub static HTTP_COOKIE: ObjectSchema = ObjectSchema {
    name: "HTTPCookie",
    fields: &[
        Field::value("name", "a cookie name"),
        Field::value("path", "a path starting with /").default("/"),
        Field::value("ttl", "duration >= 0").default("session cookie"),
        Field::unsupported(
            "attributes",
            "generated cookies carry only Path and Max-Age",
        ),
    ],
};

/// `connectionPool`.
pub static CONNECTION_POOL: ObjectSchema = ObjectSchema {
    name: "ConnectionPoolSettings",
    fields: &[
        Field::object("tcp", &TCP_SETTINGS),
        Field::object("http", &HTTP_SETTINGS),
    ],
};

/// `connectionPool.tcp`.
pub static TCP_SETTINGS: ObjectSchema = ObjectSchema {
    name: "TCPSettings",
    fields: &[
        Field::value("maxConnections", "integer >= 0 (0 means unlimited)").default("unlimited"),
        Field::value("connectTimeout", "duration > 0").default("5s"),
        Field::value("idleTimeout", "duration >= 0 (0s: never)").default("1h"),
        Field::unsupported(
            "tcpKeepalive",
            "Causeway's tunnels keep links alive themselves",
        ),
        Field::unsupported(
            "maxConnectionDuration",
            "connections live until idle or closed",
        ),
    ],
};

/// `connectionPool.http`.
pub static HTTP_SETTINGS: ObjectSchema = ObjectSchema {
    name: "HTTPSettings",
    fields: &[
        Field::value(
            "http1MaxPendingRequests",
            "integer >= 0 (0 means the default)",
        )
        .default("1024"),
        Field::value(
            "maxRequestsPerConnection",
            "integer >= 0 (0 means unlimited)",
        )
        .default("unlimited"),
        Field::value("idleTimeout", "duration >= 0 (0s: never)").default("1h"),
        Field::unsupported(
            "http2MaxRequests",
            "limit concurrency with maxConnections and http1MaxPendingRequests",
        ),
        Field::unsupported(
            "maxRetries",
            "write retries in a Causeway TrafficPolicy; retries are bounded by a retry budget",
        ),
        Field::unsupported(
            "h2UpgradePolicy",
            "the protocol to an endpoint follows its port's appProtocol or name",
        ),
        Field::unsupported(
            "useClientProtocol",
            "the protocol to an endpoint follows its port's appProtocol or name",
        ),
        Field::unsupported(
            "maxConcurrentStreams",
            "Causeway sets HTTP/2 stream limits itself",
        ),
    ],
};

/// `outlierDetection`.
pub static OUTLIER_DETECTION: ObjectSchema = ObjectSchema {
    name: "OutlierDetection",
    fields: &[
        Field::value(
            "consecutive5xxErrors",
            "integer >= 0 (0 turns ejection off)",
        )
        .default("5"),
        Field::value("consecutiveErrors", "integer >= 0 (0 turns ejection off)")
            .deprecated("consecutive5xxErrors"),
        Field::value("interval", "duration > 0").default("10s"),
        Field::value("baseEjectionTime", "duration > 0").default("30s"),
        Field::value("maxEjectionPercent", "integer, 0 to 100").default("10"),
        Field::unsupported(
            "consecutiveGatewayErrors",
            "consecutive5xxErrors counts 502, 503 and 504 too",
        ),
        Field::unsupported(
            "consecutiveLocalOriginFailures",
            "connect failures count towards consecutive5xxErrors",
        ),
        Field::unsupported(
            "splitExternalLocalOriginErrors",
            "connect failures count towards consecutive5xxErrors",
        ),
        Field::unsupported(
            "minHealthPercent",
            "maxEjectionPercent bounds how many endpoints are ejected",
        ),
    ],
};

/// The sections of one traffic policy level that a DestinationRule can set.
#[derive(Debug, Clone, Default)]
struct Sections {
    load_balancer: Option<LoadBalancerSpec>,
    connection_pool: Option<(ConnectionPoolSpec, TimeoutsSpec)>,
    outlier_detection: Option<OutlierDetectionSpec>,
    /// Whether any of the three was written (an outlier detection turned off counts).
    written: bool,
}

impl Sections {
    fn into_spec(self) -> TrafficPolicySpec {
        let (connection_pool, timeouts) = match self.connection_pool {
            Some((pool, timeouts)) => (Some(pool), Some(timeouts)),
            None => (None, None),
        };
        TrafficPolicySpec {
            load_balancer: self.load_balancer,
            connection_pool,
            timeouts,
            outlier_detection: self.outlier_detection,
            ..TrafficPolicySpec::default()
        }
    }
}

/// One policy a DestinationRule attaches.
#[derive(Debug, Clone)]
pub struct RuleAttachment {
    /// The port, or `None` for every port without a setting of its own.
    pub port: Option<u16>,
    /// The policy.
    pub spec: TrafficPolicySpec,
    /// Where it is written.
    pub span: Span,
    /// The field path of that place.
    pub path: String,
}

/// A decoded DestinationRule: its host as written, and the policies it attaches.
#[derive(Debug, Clone)]
pub struct DestinationRuleSpec {
    /// `spec.host` as written.
    pub host: String,
    /// Where `host` is written.
    pub host_span: Span,
    /// The rule's top level (when it sets anything Causeway maps) and each port setting.
    pub attachments: Vec<RuleAttachment>,
}

/// Decodes `spec`.
///
/// As in Istio, a port-level setting replaces the rule's top level for its port whole:
/// what it does not write takes the defaults, not the top level's values. A rule that
/// writes nothing Causeway maps (only `subsets`, say, or only `tls`) attaches nothing, so
/// it never stands in the way of a TrafficPolicy for the same Service.
pub fn decode_spec(d: &mut Decoder, field: &FieldRef<'_>) -> Option<DestinationRuleSpec> {
    let spec = d.object(field, &SPEC)?;
    let host = d.require(&spec, "host").and_then(|f| {
        let host = d.string(&f)?;
        if host.is_empty() {
            d.error(&f, "host is empty").expected = Some(f.expected.into());
            return None;
        }
        Some((host.to_string(), f.span()))
    });
    let mut attachments = Vec::new();
    if let Some(tp) = spec.get("trafficPolicy") {
        let policy = d.object(&tp, &TRAFFIC_POLICY)?;
        let top = sections(d, &policy);
        let top_written = top.written;
        if top_written {
            attachments.push(RuleAttachment {
                port: None,
                spec: top.into_spec(),
                span: tp.span(),
                path: tp.path.as_str().to_string(),
            });
        }
        if let Some(list) = policy.get("portLevelSettings") {
            for item in d.items(&list, "a port-level traffic policy")? {
                let Some(port_policy) = d.object(&item, &PORT_SETTINGS) else {
                    continue;
                };
                let port = d.require(&port_policy, "port").and_then(|f| {
                    let selector = d.object(&f, &PORT_SELECTOR)?;
                    let number = d.require(&selector, "number")?;
                    d.u32(&number, 1, 65535).and_then(|p| u16::try_from(p).ok())
                });
                let own = sections(d, &port_policy);
                // A port setting that maps to nothing still takes its port away from the
                // top level (to the defaults), unless the top level maps nothing either.
                if let Some(port) = port
                    && (own.written || top_written)
                {
                    attachments.push(RuleAttachment {
                        port: Some(port),
                        spec: own.into_spec(),
                        span: item.span(),
                        path: item.path.as_str().to_string(),
                    });
                }
            }
        }
    }
    let (host, host_span) = host?;
    Some(DestinationRuleSpec {
        host,
        host_span,
        attachments,
    })
}

fn sections(d: &mut Decoder, policy: &crate::decode::Object<'_>) -> Sections {
    let written = ["loadBalancer", "connectionPool", "outlierDetection"]
        .iter()
        .any(|s| policy.has(s));
    Sections {
        load_balancer: policy
            .get("loadBalancer")
            .and_then(|f| load_balancer(d, &f)),
        connection_pool: policy
            .get("connectionPool")
            .and_then(|f| connection_pool(d, &f)),
        outlier_detection: policy
            .get("outlierDetection")
            .and_then(|f| outlier_detection(d, &f)),
        written,
    }
}

#[derive(Debug, Clone, Copy)]
enum Simple {
    Unspecified,
    RoundRobin,
    LeastRequest,
    Random,
    LeastConn,
    Passthrough,
}

const SIMPLE_NAMES: &[(&str, Simple)] = &[
    ("UNSPECIFIED", Simple::Unspecified),
    ("ROUND_ROBIN", Simple::RoundRobin),
    ("LEAST_REQUEST", Simple::LeastRequest),
    ("RANDOM", Simple::Random),
    ("LEAST_CONN", Simple::LeastConn),
    ("PASSTHROUGH", Simple::Passthrough),
];

fn load_balancer(d: &mut Decoder, field: &FieldRef<'_>) -> Option<LoadBalancerSpec> {
    let o = d.object(field, &LOAD_BALANCER)?;
    if o.has("simple") && o.has("consistentHash") {
        let f = o.get("consistentHash")?;
        d.error(
            &f,
            "loadBalancer takes either `simple` or `consistentHash`, not both",
        )
        .help = Some("keep one of them".into());
        return None;
    }
    if let Some(f) = o.get("simple") {
        let algorithm = match d.enumeration(&f, SIMPLE_NAMES)? {
            Simple::Unspecified => None,
            Simple::RoundRobin => Some(Algorithm::RoundRobin),
            Simple::LeastRequest => Some(Algorithm::LeastRequest),
            Simple::Random => Some(Algorithm::Random),
            Simple::LeastConn => {
                d.warning(&f, "LEAST_CONN is deprecated in Istio").help =
                    Some("it means LEAST_REQUEST; write that instead".into());
                Some(Algorithm::LeastRequest)
            }
            Simple::Passthrough => {
                d.warning(
                    &f,
                    "PASSTHROUGH is not supported by Causeway; the default LEAST_REQUEST is used",
                )
                .help = Some("Causeway always balances over the Service's endpoints".into());
                None
            }
        };
        return Some(LoadBalancerSpec {
            algorithm,
            ..LoadBalancerSpec::default()
        });
    }
    if let Some(f) = o.get("consistentHash") {
        let hash = consistent_hash(d, &f)?;
        return Some(LoadBalancerSpec {
            algorithm: Some(Algorithm::ConsistentHash),
            consistent_hash: Some(hash),
            ..LoadBalancerSpec::default()
        });
    }
    Some(LoadBalancerSpec::default())
}

fn consistent_hash(d: &mut Decoder, field: &FieldRef<'_>) -> Option<ConsistentHashSpec> {
    const NAMES: HashKeyNames = HashKeyNames {
        header: "httpHeaderName",
        cookie: "httpCookie",
        source_ip: "useSourceIp",
        query_parameter: "httpQueryParameterName",
        generate_cookie_without_ttl: false,
    };
    let o = d.object(field, &CONSISTENT_HASH)?;
    let key = hash_key(d, &o, &NAMES, &HTTP_COOKIE)?;
    Some(ConsistentHashSpec {
        key,
        bounded_load: None,
    })
}

/// `0` means "Istio's default" for these limits, which is unlimited or our default.
fn zero_means_default(d: &mut Decoder, field: &FieldRef<'_>) -> Option<Option<u32>> {
    let v = d.u32(field, 0, u32::MAX)?;
    Some((v != 0).then_some(v))
}

fn connection_pool(
    d: &mut Decoder,
    field: &FieldRef<'_>,
) -> Option<(ConnectionPoolSpec, TimeoutsSpec)> {
    let o = d.object(field, &CONNECTION_POOL)?;
    let mut pool = ConnectionPoolSpec::default();
    let mut timeouts = TimeoutsSpec::default();
    if let Some(f) = o.get("tcp") {
        let tcp = d.object(&f, &TCP_SETTINGS)?;
        pool.max_connections = tcp
            .get("maxConnections")
            .and_then(|f| zero_means_default(d, &f))
            .flatten();
        timeouts.connect = tcp
            .get("connectTimeout")
            .and_then(|f| d.duration(&f, POSITIVE));
        timeouts.idle = tcp
            .get("idleTimeout")
            .and_then(|f| d.duration(&f, Duration::ZERO));
    }
    if let Some(f) = o.get("http") {
        let http = d.object(&f, &HTTP_SETTINGS)?;
        pool.max_pending_requests = http
            .get("http1MaxPendingRequests")
            .and_then(|f| zero_means_default(d, &f))
            .flatten();
        pool.max_requests_per_connection = http
            .get("maxRequestsPerConnection")
            .and_then(|f| zero_means_default(d, &f))
            .flatten();
        if let Some(idle) = http
            .get("idleTimeout")
            .and_then(|f| d.duration(&f, Duration::ZERO))
        {
            // Either Istio idle timeout closes an idle connection, so the shorter wins;
            // `0s` turns one off, leaving the other.
            timeouts.idle = Some(match timeouts.idle {
                Some(tcp) if tcp.is_zero() => idle,
                Some(tcp) if !idle.is_zero() => tcp.min(idle),
                Some(tcp) => tcp,
                None => idle,
            });
        }
    }
    Some((pool, timeouts))
}

fn outlier_detection(d: &mut Decoder, field: &FieldRef<'_>) -> Option<OutlierDetectionSpec> {
    let o = d.object(field, &OUTLIER_DETECTION)?;
    let five_xx = o
        .get("consecutive5xxErrors")
        .and_then(|f| d.u32(&f, 0, u32::MAX));
    // The deprecated field is a plain integer in Istio: 0 means unset, not off.
    let deprecated = o.get("consecutiveErrors").and_then(|f| {
        let n = d.u32(&f, 0, u32::MAX)?;
        if o.has("consecutive5xxErrors") {
            d.warning(
                &f,
                "consecutiveErrors is ignored because consecutive5xxErrors is set",
            )
            .help = Some("remove consecutiveErrors".into());
        }
        (n != 0).then_some(n)
    });
    if five_xx == Some(0) {
        // Ejection on errors turned off: nothing else here can eject.
        return None;
    }
    Some(OutlierDetectionSpec {
        consecutive_errors: five_xx.or(deprecated),
        interval: o.get("interval").and_then(|f| d.duration(&f, POSITIVE)),
        base_ejection_time: o
            .get("baseEjectionTime")
            .and_then(|f| d.duration(&f, POSITIVE)),
        // Istio sets the percent only when it is above 0; 0 leaves the default.
        max_ejection_percent: o
            .get("maxEjectionPercent")
            .and_then(|f| d.u32(&f, 0, 100))
            .and_then(|v| u8::try_from(v).ok())
            .filter(|v| *v != 0),
    })
}
