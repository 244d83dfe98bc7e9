//! Where the outcome of every call lands: an HdrHistogram of latencies, counts by
//! outcome, answers per endpoint and per hash key, and the same per time window. One
//! recorder per connection task (no locks on the hot path), merged at the end.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::clients::Outcome;
use super::{Latency, RunResult, Window};

/// The largest latency recorded: 60 s (calls have deadlines well under it).
const MAX_LATENCY_US: u64 = 60_000_000;

/// The outcomes of a set of calls.
#[derive(Debug, Clone)]
pub struct Recorder {
    window: Duration,
    histogram: Histogram<u64>,
    windows: Vec<Window>,
    result: RunResult,
}

impl Recorder {
    /// An empty recorder with windows of `window` (at least 1 ms).
    pub fn new(window: Duration) -> Self {
        // Constant bounds (1 µs..60 s, 3 significant digits) that hdrhistogram accepts.
        #[allow(clippy::expect_used)]
        let histogram = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .expect("constant histogram bounds are valid");
        Self {
            window: window.max(Duration::from_millis(1)),
            histogram,
            windows: Vec::new(),
            result: RunResult::default(),
        }
    }

    fn window_at(&mut self, offset: Duration) -> &mut Window {
        let index = usize::try_from(offset.as_nanos() / self.window.as_nanos().max(1))
            .unwrap_or(usize::MAX)
            .min(100_000);
        while self.windows.len() <= index {
            let start_s = self.window.as_secs_f64() * self.windows.len() as f64;
            self.windows.push(Window {
                start_s,
                ..Window::default()
            });
        }
        &mut self.windows[index]
    }

    /// Records a call that started at `offset` from the start of the run (open loop: its
    /// scheduled time), took `latency`, and came to `outcome`; `key` is its hash key.
    pub fn record(
        &mut self,
        offset: Duration,
        latency: Duration,
        outcome: &Outcome,
        key: Option<&str>,
    ) {
        self.result.offered += 1;
        let window = self.window_at(offset);
        window.offered += 1;
        match outcome {
            Outcome::Ok { endpoint } => {
                increment(&mut window.endpoints, endpoint);
                window.ok += 1;
                self.result.ok += 1;
                increment(&mut self.result.endpoints, endpoint);
                if let Some(key) = key {
                    match self.result.keys.get_mut(key) {
                        Some(per_endpoint) => increment(per_endpoint, endpoint),
                        None => {
                            let mut per_endpoint = BTreeMap::new();
                            per_endpoint.insert(endpoint.clone(), 1);
                            self.result.keys.insert(key.to_string(), per_endpoint);
                        }
                    }
                }
                let us = u64::try_from(latency.as_micros())
                    .unwrap_or(MAX_LATENCY_US)
                    .clamp(1, MAX_LATENCY_US);
                let _ = self.histogram.record(us);
            }
            Outcome::Limited { retry_after } => {
                window.limited += 1;
                self.result.limited += 1;
                if !retry_after {
                    self.result.limited_without_retry_after += 1;
                }
            }
            Outcome::ErrorStatus => {
                window.errors += 1;
                self.result.error_status += 1;
            }
            Outcome::Failed => {
                window.errors += 1;
                self.result.failed += 1;
            }
        }
    }

    /// Adds another recorder's calls to this one's.
    pub fn merge(&mut self, other: Recorder) {
        let _ = self.histogram.add(&other.histogram);
        let r = &mut self.result;
        let o = other.result;
        r.offered += o.offered;
        r.ok += o.ok;
        r.limited += o.limited;
        r.limited_without_retry_after += o.limited_without_retry_after;
        r.error_status += o.error_status;
        r.failed += o.failed;
        for (endpoint, n) in o.endpoints {
            *r.endpoints.entry(endpoint).or_default() += n;
        }
        for (key, per_endpoint) in o.keys {
            let mine = r.keys.entry(key).or_default();
            for (endpoint, n) in per_endpoint {
                *mine.entry(endpoint).or_default() += n;
            }
        }
        // Both recorders of a run have the same window length: windows merge by index.
        let window = self.window;
        for (i, w) in other.windows.into_iter().enumerate() {
            let offset = window * u32::try_from(i).unwrap_or(u32::MAX);
            let mine = self.window_at(offset);
            mine.offered += w.offered;
            mine.ok += w.ok;
            mine.limited += w.limited;
            mine.errors += w.errors;
            for (endpoint, n) in w.endpoints {
                *mine.endpoints.entry(endpoint).or_default() += n;
            }
        }
    }

    /// The result so far, with the windows that end within `duration`.
    pub fn finish(mut self, duration: Duration) -> RunResult {
        self.result.latency = Latency::of(&self.histogram);
        self.result.window_s = self.window.as_secs_f64();
        self.result.duration_s = duration.as_secs_f64();
        // A call that finished past the end still counts; the windows past the end hold
        // only such stragglers' starts, which cannot be: keep those inside the run.
        let whole = usize::try_from(duration.as_nanos().div_ceil(self.window.as_nanos().max(1)))
            .unwrap_or(usize::MAX);
        self.windows.truncate(whole.max(1));
        self.result.windows = self.windows;
        self.result
    }
}

fn increment(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_string(), 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(endpoint: &str) -> Outcome {
        Outcome::Ok {
            endpoint: endpoint.into(),
        }
    }

    #[test]
    fn calls_land_in_their_window_and_their_endpoint() {
        let mut r = Recorder::new(Duration::from_secs(1));
        r.record(
            Duration::from_millis(100),
            Duration::from_micros(500),
            &ok("a"),
            None,
        );
        r.record(
            Duration::from_millis(1500),
            Duration::from_micros(900),
            &ok("b"),
            Some("k1"),
        );
        r.record(
            Duration::from_millis(1600),
            Duration::ZERO,
            &Outcome::Limited { retry_after: false },
            None,
        );
        r.record(
            Duration::from_millis(2100),
            Duration::ZERO,
            &Outcome::Failed,
            None,
        );
        let result = r.finish(Duration::from_secs(3));
        assert_eq!(result.offered, 4);
        assert_eq!(result.ok, 2);
        assert_eq!(result.limited, 1);
        assert_eq!(result.limited_without_retry_after, 1);
        assert_eq!(result.failed, 1);
        assert_eq!(result.windows.len(), 3);
        assert_eq!(result.windows[1].ok, 1);
        assert_eq!(result.windows[1].limited, 1);
        assert_eq!(result.windows[1].endpoints["b"], 1);
        assert_eq!(result.windows[2].errors, 1);
        assert_eq!(result.keys["k1"]["b"], 1);
        assert_eq!(result.latency.count, 2);
        assert!(result.latency.max_us >= 899.0);
    }

    #[test]
    fn merged_recorders_add_up() {
        let mut a = Recorder::new(Duration::from_millis(500));
        let mut b = Recorder::new(Duration::from_millis(500));
        a.record(
            Duration::from_millis(10),
            Duration::from_micros(10),
            &ok("x"),
            Some("k"),
        );
        b.record(
            Duration::from_millis(700),
            Duration::from_micros(20),
            &ok("x"),
            Some("k"),
        );
        b.record(
            Duration::from_millis(800),
            Duration::from_micros(20),
            &Outcome::ErrorStatus,
            None,
        );
        a.merge(b);
        let result = a.finish(Duration::from_secs(1));
        assert_eq!(result.offered, 3);
        assert_eq!(result.endpoints["x"], 2);
        assert_eq!(result.keys["k"]["x"], 2);
        assert_eq!(result.windows.len(), 2);
        assert_eq!(result.windows[1].offered, 2);
        assert_eq!(result.windows[1].errors, 1);
        assert_eq!(result.error_status, 1);
    }
}
