//! The node's metrics in Prometheus text: connections, bytes and errors per Service and
//! endpoint node, plus the tunnel's and DNS's own counters read at scrape time.
//!
//! Labels come from the mesh's own names (canonical Service port labels, node names,
//! fixed reasons), never from what a client or peer sent, so series stay bounded.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ConnectionLabels {
    /// `namespace/name:port`.
    pub service: String,
    /// The node of the endpoint (`local` for this node).
    pub endpoint_node: String,
}

/// Labels of a failure.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `namespace/name:port`.
    pub service: String,
    /// What failed: `no_ready_endpoints`, `connect`, `rate_limited`, `not_a_service`,
    /// `not_an_endpoint` (a peer's request refused), `idle_timeout`, `ejected`, `shed`
    /// (pending queue full), `request_timeout`, `upstream` (a try failed after connecting).
    pub reason: String,
}

/// Labels of bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ByteLabels {
    /// `namespace/name:port`.
    pub service: String,
    /// `sent` (client to endpoint) or `received`.
    pub direction: String,
}

/// Labels of an HTTP request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// `namespace/name:port`.
    pub service: String,
    /// `2xx`, `3xx`, `4xx`, `5xx` (answers the mesh made itself included), or `1xx`.
    pub class: String,
}

/// Labels of the request latency histogram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ServiceLabel {
    /// `namespace/name:port`.
    pub service: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s in powers of two: the range a mesh at the edge sees.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0005, 2.0, 16,
    ))
}

/// The histogram family type (a plain `fn` constructor keeps it `Default`-free).
pub type LatencyFamily = Family<ServiceLabel, Histogram, fn() -> Histogram>;

/// One Service port's request counters (see [`MeshMetrics::http_handles`]).
#[derive(Debug, Clone)]
pub struct HttpHandles {
    classes: [Counter; 5],
    latency: Histogram,
}

impl HttpHandles {
    /// Counts an answered request and its latency to the response head.
    pub fn request(&self, status: u16, latency: std::time::Duration) {
        let class = usize::from((status / 100).clamp(1, 5) - 1);
        self.classes[class].inc();
        self.latency.observe(latency.as_secs_f64());
    }
}

/// Counters the proxy updates.
#[derive(Debug)]
pub struct MeshMetrics {
    /// Connections carried to an endpoint.
    pub connections: Family<ConnectionLabels, Counter>,
    /// Connections open now.
    pub active: Family<ConnectionLabels, Gauge>,
    /// Failures, by reason.
    pub errors: Family<ErrorLabels, Counter>,
    /// Bytes carried.
    pub bytes: Family<ByteLabels, Counter>,
    /// Connections accepted from other nodes (destination side).
    pub inbound: Family<ConnectionLabels, Counter>,
    /// HTTP requests answered, by status class (source side).
    pub requests: Family<RequestLabels, Counter>,
    /// Time to the response head, in seconds, tries included (source side).
    pub latency: LatencyFamily,
    /// Tries after the first.
    pub retries: Family<ServiceLabel, Counter>,
}

impl Default for MeshMetrics {
    fn default() -> Self {
        Self {
            connections: Family::default(),
            active: Family::default(),
            errors: Family::default(),
            bytes: Family::default(),
            inbound: Family::default(),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            retries: Family::default(),
        }
    }
}

impl MeshMetrics {
    /// Counts a failure.
    pub fn error(&self, service: &str, reason: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                service: service.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts an answered HTTP request and its latency to the response head.
    pub fn request(&self, service: &str, status: u16, latency: std::time::Duration) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .get_or_create(&RequestLabels {
                service: service.to_string(),
                class: class.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&ServiceLabel {
                service: service.to_string(),
            })
            .observe(latency.as_secs_f64());
    }

    /// The counters of one Service port's requests, looked up once and kept by the
    /// proxy, so a request updates them without building labels.
    pub fn http_handles(&self, service: &str) -> HttpHandles {
        let class = |class: &str| {
            self.requests
                .get_or_create(&RequestLabels {
                    service: service.to_string(),
                    class: class.to_string(),
                })
                .clone()
        };
        HttpHandles {
            classes: [
                class("1xx"),
                class("2xx"),
                class("3xx"),
                class("4xx"),
                class("5xx"),
            ],
            latency: self
                .latency
                .get_or_create(&ServiceLabel {
                    service: service.to_string(),
                })
                .clone(),
        }
    }

    /// Counts a retry.
    pub fn retry(&self, service: &str) {
        self.retries
            .get_or_create(&ServiceLabel {
                service: service.to_string(),
            })
            .inc();
    }

    /// Counts bytes carried.
    pub fn bytes(&self, service: &str, sent: u64, received: u64) {
        for (direction, n) in [("sent", sent), ("received", received)] {
            self.bytes
                .get_or_create(&ByteLabels {
                    service: service.to_string(),
                    direction: direction.to_string(),
                })
                .inc_by(n);
        }
    }
}

/// A set of counters read at scrape time from elsewhere (the tunnel, the DNS server).
pub type Reading = Vec<(&'static str, &'static str, u64)>;

/// A collector that reads counters through a closure at every scrape.
pub struct ReadAtScrape {
    prefix: &'static str,
    read: Box<dyn Fn() -> Reading + Send + Sync>,
}

impl std::fmt::Debug for ReadAtScrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAtScrape")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl ReadAtScrape {
    /// Counters named `<prefix>_<name>` read by `read`.
    pub fn new(prefix: &'static str, read: impl Fn() -> Reading + Send + Sync + 'static) -> Self {
        Self {
            prefix,
            read: Box::new(read),
        }
    }
}

impl prometheus_client::collector::Collector for ReadAtScrape {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        for (name, help, value) in (self.read)() {
            let name = format!("{}_{name}", self.prefix);
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(&name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

/// DNS answers by kind, read from the DNS server's counters at every scrape, as one
/// family `causeway_dns_answers{answer=…}` plus the total of messages received.
pub struct DnsAnswers {
    read: Box<dyn Fn() -> crate::dns::DnsStats + Send + Sync>,
}

impl std::fmt::Debug for DnsAnswers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsAnswers").finish_non_exhaustive()
    }
}

impl DnsAnswers {
    /// Reads the counters through `read`.
    pub fn new(read: impl Fn() -> crate::dns::DnsStats + Send + Sync + 'static) -> Self {
        Self {
            read: Box::new(read),
        }
    }
}

impl prometheus_client::collector::Collector for DnsAnswers {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        let stats = (self.read)();
        let queries = ConstCounter::new(stats.queries);
        let metric = encoder.encode_descriptor(
            "dns_queries",
            "DNS messages received, well-formed or not",
            None,
            queries.metric_type(),
        )?;
        queries.encode(metric)?;
        let answers = [
            (
                "cluster",
                stats
                    .cluster
                    .saturating_sub(stats.cluster_nxdomain)
                    .saturating_sub(stats.cluster_nodata),
            ),
            ("cluster_nxdomain", stats.cluster_nxdomain),
            ("cluster_nodata", stats.cluster_nodata),
            ("forwarded", stats.forwarded),
            ("cache", stats.cache_hits),
            ("upstream_failure", stats.upstream_failures),
            ("upstream_busy", stats.upstream_busy),
            ("no_upstreams", stats.no_upstreams),
            ("formerr", stats.formerr),
            ("refused", stats.refused),
            ("truncated", stats.truncated),
            ("dropped", stats.dropped),
        ];
        let mut family = encoder.encode_descriptor(
            "dns_answers",
            "DNS questions by how they were answered",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (answer, value) in answers {
            let labels = [("answer", answer)];
            let metric = family.encode_family(&labels)?;
            ConstCounter::new(value).encode(metric)?;
        }
        Ok(())
    }
}

/// Registers the proxy's metrics; more collectors are added by the node.
pub fn registry(metrics: &Arc<MeshMetrics>) -> Registry {
    let mut registry = Registry::with_prefix("causeway");
    registry.register(
        "connections",
        "Connections carried to an endpoint, by service and endpoint node",
        metrics.connections.clone(),
    );
    registry.register(
        "active_connections",
        "Connections open now, by service and endpoint node",
        metrics.active.clone(),
    );
    registry.register(
        "errors",
        "Connections that could not be carried, by service and reason",
        metrics.errors.clone(),
    );
    registry.register(
        "bytes",
        "Bytes carried, by service and direction",
        metrics.bytes.clone(),
    );
    registry.register(
        "inbound_connections",
        "Connections accepted from other nodes for this node's endpoints",
        metrics.inbound.clone(),
    );
    registry.register(
        "http_requests",
        "HTTP requests answered, by service and status class (the mesh's own refusals included)",
        metrics.requests.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "Time from a request to its response head, retries included, by service",
        metrics.latency.clone(),
    );
    registry.register(
        "http_retries",
        "Tries after the first, by service",
        metrics.retries.clone(),
    );
    registry
}
