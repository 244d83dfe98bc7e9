//! What one run of the load generator measured, as the report and the gates read it and
//! as `results.json` stores it: counts by outcome, latency percentiles from an
//! HdrHistogram, the answers per endpoint, and the same per time window.
//!
//! Plain data: no I/O, no clocks.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The wire protocol a run speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 keep-alive connections, one request at a time on each.
    Http1,
    /// HTTP/2 over cleartext (h2c, prior knowledge), requests multiplexed.
    Http2,
    /// gRPC unary calls over h2c.
    Grpc,
    /// Raw TCP: a payload written and read back (the echo app's TCP echo).
    Tcp,
    /// UDP: a datagram sent and its echo awaited.
    Udp,
}

impl Protocol {
    /// The name used in scenario files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Http1 => "http1",
            Self::Http2 => "http2",
            Self::Grpc => "grpc",
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// Latency percentiles of a set of calls, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Calls measured.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// The slowest.
    pub max_us: f64,
}

impl Latency {
    /// The percentiles of a histogram of microseconds.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        // Values are microseconds; the histogram's precision (3 digits) is the bound.
        let at = |q: f64| histogram.value_at_quantile(q) as f64;
        Self {
            count: histogram.len(),
            mean_us: histogram.mean(),
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            p999_us: at(0.999),
            max_us: histogram.max() as f64,
        }
    }
}

/// The outcomes of the calls whose scheduled (open loop) or actual (closed loop) start
/// fell in one time window of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Seconds from the start of the run to the start of the window.
    pub start_s: f64,
    /// Calls started (open loop: scheduled) in the window.
    pub offered: u64,
    /// Calls answered with success.
    pub ok: u64,
    /// Calls refused by a rate limit (HTTP 429, gRPC RESOURCE_EXHAUSTED).
    pub limited: u64,
    /// Calls that failed: an error status, a reset, a timeout, no connection.
    pub errors: u64,
    /// Successful answers per endpoint (the echo app's pod name).
    pub endpoints: BTreeMap<String, u64>,
}

/// One run of the generator against one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The variant of the scenario (e.g. `mesh RoundRobin`, `direct`, `HAProxy`).
    pub variant: String,
    /// The protocol spoken.
    pub protocol: Option<Protocol>,
    /// `open` or `closed`.
    pub mode: String,
    /// Offered rate, calls per second (open loop only).
    pub offered_rate: Option<f64>,
    /// Connections (closed loop: concurrent callers).
    pub connections: usize,
    /// How long the load ran, seconds.
    pub duration_s: f64,
    /// Calls started (open loop: scheduled).
    pub offered: u64,
    /// Calls answered with success.
    pub ok: u64,
    /// Calls refused by a rate limit.
    pub limited: u64,
    /// Limited answers without a `Retry-After` header (HTTP only).
    pub limited_without_retry_after: u64,
    /// Answers with another error status (HTTP 5xx/4xx but 429, a gRPC error status).
    pub error_status: u64,
    /// Calls that got no answer: connection refused or reset, timeout.
    pub failed: u64,
    /// Latency of successful calls; open loop: from the scheduled start, so queueing
    /// behind a slow answer counts (no coordinated omission).
    pub latency: Latency,
    /// The open loop's worst lateness of a call's start behind its schedule, µs: large
    /// values mean the generator itself could not keep the rate.
    pub max_lateness_us: f64,
    /// Successful answers per endpoint.
    pub endpoints: BTreeMap<String, u64>,
    /// For runs that send a hash key: successful answers per key and endpoint.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, BTreeMap<String, u64>>,
    /// Window length, seconds.
    pub window_s: f64,
    /// The run, window by window.
    pub windows: Vec<Window>,
}

impl RunResult {
    /// Calls that were not answered with success or a rate limit.
    pub fn errors(&self) -> u64 {
        self.error_status + self.failed
    }

    /// Successful calls per second over the run.
    pub fn throughput(&self) -> f64 {
        if self.duration_s > 0.0 {
            self.ok as f64 / self.duration_s
        } else {
            0.0
        }
    }

    /// Each endpoint's share of the successful answers, in `[0, 1]`.
    pub fn shares(&self) -> BTreeMap<String, f64> {
        let total: u64 = self.endpoints.values().sum();
        self.endpoints
            .iter()
            .map(|(name, &n)| {
                let share = if total == 0 {
                    0.0
                } else {
                    n as f64 / total as f64
                };
                (name.clone(), share)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        for v in 1..=1000u64 {
            h.record(v).expect("in range");
        }
        let l = Latency::of(&h);
        assert_eq!(l.count, 1000);
        assert!((l.p50_us - 500.0).abs() <= 1.0, "{l:?}");
        assert!((l.p99_us - 990.0).abs() <= 1.0, "{l:?}");
        assert_eq!(l.max_us, 1000.0);
        assert_eq!(Latency::of(&Histogram::<u64>::new(3).expect("h")).count, 0);
    }

    #[test]
    fn shares_add_up_and_survive_an_empty_run() {
        let mut run = RunResult::default();
        assert!(run.shares().is_empty());
        run.endpoints.insert("a".into(), 3);
        run.endpoints.insert("b".into(), 1);
        let shares = run.shares();
        assert_eq!(shares["a"], 0.75);
        assert_eq!(shares["b"], 0.25);
    }
}
