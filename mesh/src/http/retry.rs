//! Retries of HTTP and gRPC requests: whether a failed try is tried again, how long to
//! wait before it, and the budget that keeps retries from multiplying the load on a
//! service that is already failing.
//!
//! The rules follow Envoy's `retry_on` semantics (see [`retryable`]); the budget follows
//! Linkerd's (a share of recent requests plus a floor per second). Everything here is
//! pure or in-memory: it sends nothing, reads no clock (callers pass `now` and the
//! jitter) and may not touch sockets, the store or metrics.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use ::http::{HeaderMap, Method};
use causeway_policies::plan::{self, Backoff, Retries, RetryCondition};

/// gRPC status codes (the `grpc-status` trailer) that retry conditions name.
mod grpc_code {
    pub const CANCELLED: u32 = 1;
    pub const DEADLINE_EXCEEDED: u32 = 4;
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    pub const INTERNAL: u32 = 13;
    pub const UNAVAILABLE: u32 = 14;
}

/// What one try of a request ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryOutcome {
    /// The endpoint could not be connected to; the request never left the mesh.
    ConnectFailure,
    /// The endpoint refused the HTTP/2 stream (`REFUSED_STREAM`, or above a GOAWAY's
    /// last stream id): it did not process the request.
    RefusedStream,
    /// The connection or stream was reset before a response began.
    Reset,
    /// The per-try timeout passed before a response began.
    TimedOut,
    /// A response began.
    Response {
        /// Its HTTP status.
        status: u16,
        /// The `grpc-status` of a trailers-only response, if it had one.
        grpc_status: Option<u32>,
    },
}

/// The `grpc-status` in `headers` (a trailers-only response's headers, or trailers), if
/// it is there and a number.
pub fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether `outcome` counts against the endpoint in outlier detection.
///
/// A try fails when no response began (connect failure, refused stream, reset, per-try
/// timeout) or the response is a 5xx. gRPC status codes are deliberately not counted:
/// most (NOT_FOUND, INVALID_ARGUMENT, even INTERNAL from a handler) are the
/// application's answer to one request, not a sign that the endpoint is unhealthy, and
/// an endpoint that is unhealthy usually also fails at the HTTP level.
pub fn is_failure(outcome: &TryOutcome) -> bool {
    match outcome {
        TryOutcome::ConnectFailure
        | TryOutcome::RefusedStream
        | TryOutcome::Reset
        | TryOutcome::TimedOut => true,
        TryOutcome::Response { status, .. } => *status >= 500,
    }
}

/// Whether `method` is idempotent (RFC 9110 §9.2.2): GET, HEAD, OPTIONS, TRACE, PUT and
/// DELETE. POST, PATCH, CONNECT and extension methods are not.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Whether a request with `method` whose try ended with `outcome` is tried again under
/// `plan` (attempts left and the budget are the caller's to check).
///
/// Never when `plan.attempts` is 0. A non-idempotent request is retried only when
/// `plan.non_idempotent` allows it, except after a connect failure or a refused stream:
/// then the request never reached the application, so trying again is always safe.
/// Otherwise the try is retried when one of `plan.retry_on` matches, as in Envoy:
///
/// - `connect-failure`, `refused-stream`: that outcome;
/// - `reset`: a reset, or a per-try timeout (no response at all, as Envoy's `reset`);
/// - `5xx`: a status ≥ 500, or no response at all (connect failure, refused stream,
///   reset, per-try timeout);
/// - `gateway-error`: 502, 503, 504, or no response at all (the mesh itself answers
///   those with 503, or 504 for a timeout);
/// - a status code: that status; `504` also matches a per-try timeout;
/// - gRPC conditions: a response whose `grpc-status` is that code.
///
/// A gRPC call (`grpc` true; every call is a POST) is retried under the listed
/// conditions whatever its method, as gRPC's own retry policy does: listing
/// `unavailable` for a gRPC service says its calls may be tried again.
pub fn retryable(plan: &Retries, method: &Method, grpc: bool, outcome: &TryOutcome) -> bool {
    if plan.attempts == 0 {
        return false;
    }
    let never_reached_app = matches!(
        outcome,
        TryOutcome::ConnectFailure | TryOutcome::RefusedStream
    );
    if !never_reached_app && !grpc && !plan.non_idempotent && !is_idempotent(method) {
        return false;
    }
    plan.retry_on.iter().any(|c| matches(*c, outcome))
}

fn matches(condition: RetryCondition, outcome: &TryOutcome) -> bool {
    use RetryCondition as C;
    use TryOutcome as O;
    let no_response = matches!(
        outcome,
        O::ConnectFailure | O::RefusedStream | O::Reset | O::TimedOut
    );
    let (status, grpc) = match outcome {
        O::Response {
            status,
            grpc_status,
        } => (Some(*status), *grpc_status),
        _ => (None, None),
    };
    match condition {
        C::ConnectFailure => *outcome == O::ConnectFailure,
        C::RefusedStream => *outcome == O::RefusedStream,
        C::Reset => matches!(outcome, O::Reset | O::TimedOut),
        C::Http5xx => no_response || status.is_some_and(|s| s >= 500),
        C::GatewayError => no_response || matches!(status, Some(502..=504)),
        C::Status(code) => status == Some(code) || (code == 504 && *outcome == O::TimedOut),
        C::Cancelled => grpc == Some(grpc_code::CANCELLED),
        C::DeadlineExceeded => grpc == Some(grpc_code::DEADLINE_EXCEEDED),
        C::ResourceExhausted => grpc == Some(grpc_code::RESOURCE_EXHAUSTED),
        C::Internal => grpc == Some(grpc_code::INTERNAL),
        C::Unavailable => grpc == Some(grpc_code::UNAVAILABLE),
    }
}

/// The wait before retry number `retry` (0 for the first retry): full-jitter exponential
/// backoff, `min(base · 2^retry, max) · jitter`.
///
/// `jitter` is a uniform random number in `[0, 1)` the caller draws, so tests are
/// deterministic; values outside `[0, 1]` (and NaN) are clamped. Large `retry` numbers
/// saturate at `max_interval`; the result is never above it.
pub fn backoff(plan: &Backoff, retry: u32, jitter: f64) -> Duration {
    let max = plan.max_interval;
    let ceiling = 1u32
        .checked_shl(retry)
        .and_then(|factor| plan.base_interval.checked_mul(factor))
        .map_or(max, |d| d.min(max));
    let jitter = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(0.0, 1.0)
    };
    Duration::try_from_secs_f64(ceiling.as_secs_f64() * jitter).map_or(ceiling, |d| d.min(ceiling))
}

/// Buckets in the budget's window.
const BUCKETS: usize = 10;

/// A retry budget for one Service port: retries in the last `ttl` may not exceed
/// `min_retries_per_second · ttl + percent% · requests in the last ttl`.
///
/// The window is a ring of ten buckets of `ttl / 10`, so memory is constant and the
/// window covers between nine and ten tenths of `ttl`. Time is passed in: the first call
/// sets the origin, and a `now` earlier than one already seen counts as that one.
/// Thread-safe: one short lock per call.
#[derive(Debug)]
pub struct RetryBudget {
    percent: f64,
    min_retries: f64,
    bucket: Duration,
    state: Mutex<BudgetState>,
}

#[derive(Debug, Default)]
struct BudgetState {
    origin: Option<Instant>,
    latest: u64,
    buckets: [Bucket; BUCKETS],
}

#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    /// Which bucket since the origin this slot holds.
    index: u64,
    requests: u64,
    retries: u64,
}

impl RetryBudget {
    /// A budget under `plan`. A zero `ttl` (which policy validation rejects) is taken as
    /// one second; a negative or NaN percent as zero.
    pub fn new(plan: &plan::RetryBudget) -> Self {
        let ttl = if plan.ttl.is_zero() {
            Duration::from_secs(1)
        } else {
            plan.ttl
        };
        let percent = if plan.percent.is_nan() {
            0.0
        } else {
            plan.percent.max(0.0)
        };
        Self {
            percent,
            min_retries: f64::from(plan.min_retries_per_second) * ttl.as_secs_f64(),
            bucket: (ttl / BUCKETS as u32).max(Duration::from_nanos(1)),
            state: Mutex::new(BudgetState::default()),
        }
    }

    /// Counts an original request (not a retry) at `now`.
    pub fn deposit(&self, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = state.advance(now, self.bucket);
        slot.requests = slot.requests.saturating_add(1);
    }

    /// Asks for one retry at `now`: true, and counted, while the budget has room.
    pub fn withdraw(&self, now: Instant) -> bool {
        // The counters stay consistent whatever panicked while holding the lock.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.advance(now, self.bucket);
        let (requests, retries) = state.totals();
        let allowed = self.min_retries + self.percent * requests as f64 / 100.0;
        if (retries as f64) < allowed {
            let slot = state.current();
            slot.retries = slot.retries.saturating_add(1);
            true
        } else {
            tracing::trace!(requests, retries, allowed, "retry budget exhausted");
            false
        }
    }
}

impl BudgetState {
    /// Moves the window to `now` and returns the current bucket, emptied if it held an
    /// older one.
    fn advance(&mut self, now: Instant, width: Duration) -> &mut Bucket {
        let origin = *self.origin.get_or_insert(now);
        let elapsed = now.saturating_duration_since(origin).as_nanos() / width.as_nanos();
        let index = u64::try_from(elapsed).unwrap_or(u64::MAX);
        self.latest = self.latest.max(index);
        self.current()
    }

    fn current(&mut self) -> &mut Bucket {
        let index = self.latest;
        let slot = &mut self.buckets[(index % BUCKETS as u64) as usize];
        if slot.index != index {
            *slot = Bucket {
                index,
                ..Bucket::default()
            };
        }
        slot
    }

    /// Requests and retries in the window ending at the latest bucket.
    fn totals(&self) -> (u64, u64) {
        self.buckets
            .iter()
            .filter(|b| self.latest.saturating_sub(b.index) < BUCKETS as u64)
            .fold((0, 0), |(req, ret), b| {
                (
                    req.saturating_add(b.requests),
                    ret.saturating_add(b.retries),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plan(retry_on: &[RetryCondition]) -> Retries {
        Retries {
            attempts: 2,
            retry_on: retry_on.to_vec(),
            ..Retries::default()
        }
    }

    fn response(status: u16) -> TryOutcome {
        TryOutcome::Response {
            status,
            grpc_status: None,
        }
    }

    fn grpc(code: u32) -> TryOutcome {
        TryOutcome::Response {
            status: 200,
            grpc_status: Some(code),
        }
    }

    const NO_RESPONSE: [TryOutcome; 4] = [
        TryOutcome::ConnectFailure,
        TryOutcome::RefusedStream,
        TryOutcome::Reset,
        TryOutcome::TimedOut,
    ];

    #[test]
    fn grpc_status_reads_the_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(grpc_status(&headers), None);
        headers.insert("grpc-status", "14".parse().unwrap());
        assert_eq!(grpc_status(&headers), Some(14));
        headers.insert("grpc-status", " 0 ".parse().unwrap());
        assert_eq!(grpc_status(&headers), Some(0));
        headers.insert("grpc-status", "unavailable".parse().unwrap());
        assert_eq!(grpc_status(&headers), None);
        headers.insert("grpc-status", "-1".parse().unwrap());
        assert_eq!(grpc_status(&headers), None);
    }

    #[test]
    fn failures_for_outlier_detection() {
        for outcome in NO_RESPONSE {
            assert!(is_failure(&outcome), "{outcome:?}");
        }
        assert!(is_failure(&response(500)));
        assert!(is_failure(&response(503)));
        assert!(!is_failure(&response(200)));
        assert!(!is_failure(&response(404)));
        assert!(!is_failure(&response(429)));
        assert!(!is_failure(&grpc(14)), "gRPC codes are not counted");
    }

    #[test]
    fn idempotent_methods_follow_rfc_9110() {
        for m in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::TRACE,
            Method::PUT,
            Method::DELETE,
        ] {
            assert!(is_idempotent(&m), "{m}");
        }
        for m in [Method::POST, Method::PATCH, Method::CONNECT] {
            assert!(!is_idempotent(&m), "{m}");
        }
        assert!(!is_idempotent(&Method::from_bytes(b"PURGE").unwrap()));
    }

    #[test]
    fn zero_attempts_never_retries() {
        let mut p = plan(&[RetryCondition::ConnectFailure, RetryCondition::Http5xx]);
        p.attempts = 0;
        p.non_idempotent = true;
        assert!(!retryable(
            &p,
            &Method::GET,
            false,
            &TryOutcome::ConnectFailure
        ));
        assert!(!retryable(&p, &Method::GET, false, &response(503)));
    }

    #[test]
    fn non_idempotent_requests_retry_only_when_allowed_or_never_sent() {
        let mut p = plan(&[RetryCondition::Http5xx]);
        assert!(!retryable(&p, &Method::POST, false, &response(503)));
        assert!(!retryable(&p, &Method::PATCH, false, &TryOutcome::Reset));
        assert!(!retryable(&p, &Method::POST, false, &TryOutcome::TimedOut));
        // The request never reached the application: safe whatever the method.
        assert!(retryable(
            &p,
            &Method::POST,
            false,
            &TryOutcome::ConnectFailure
        ));
        assert!(retryable(
            &p,
            &Method::POST,
            false,
            &TryOutcome::RefusedStream
        ));
        assert!(retryable(&p, &Method::GET, false, &response(503)));
        // A gRPC call is a POST, retried under the listed conditions all the same.
        assert!(retryable(&p, &Method::POST, true, &response(503)));
        assert!(!retryable(&p, &Method::POST, true, &response(404)));
        p.non_idempotent = true;
        assert!(retryable(&p, &Method::POST, false, &response(503)));
        assert!(retryable(&p, &Method::PATCH, false, &TryOutcome::Reset));
    }

    #[test]
    fn never_sent_still_needs_a_matching_condition() {
        let p = plan(&[RetryCondition::Status(503)]);
        assert!(!retryable(
            &p,
            &Method::POST,
            false,
            &TryOutcome::ConnectFailure
        ));
        assert!(!retryable(
            &p,
            &Method::GET,
            false,
            &TryOutcome::RefusedStream
        ));
    }

    #[test]
    fn connect_failure_refused_stream_and_reset_match_themselves() {
        let p = plan(&[RetryCondition::ConnectFailure]);
        assert!(retryable(
            &p,
            &Method::GET,
            false,
            &TryOutcome::ConnectFailure
        ));
        assert!(!retryable(
            &p,
            &Method::GET,
            false,
            &TryOutcome::RefusedStream
        ));
        assert!(!retryable(&p, &Method::GET, false, &TryOutcome::Reset));
        assert!(!retryable(&p, &Method::GET, false, &response(503)));

        let p = plan(&[RetryCondition::RefusedStream]);
        assert!(retryable(
            &p,
            &Method::GET,
            false,
            &TryOutcome::RefusedStream
        ));
        assert!(!retryable(
            &p,
            &Method::GET,
            false,
            &TryOutcome::ConnectFailure
        ));
        assert!(!retryable(&p, &Method::GET, false, &TryOutcome::Reset));

        let p = plan(&[RetryCondition::Reset]);
        assert!(retryable(&p, &Method::GET, false, &TryOutcome::Reset));
        assert!(retryable(&p, &Method::GET, false, &TryOutcome::TimedOut));
        assert!(!retryable(
            &p,
            &Method::GET,
            false,
            &TryOutcome::ConnectFailure
        ));
        assert!(!retryable(&p, &Method::GET, false, &response(502)));
    }

    #[test]
    fn http_5xx_matches_every_5xx_and_no_response() {
        let p = plan(&[RetryCondition::Http5xx]);
        for status in [500, 501, 502, 503, 504, 599] {
            assert!(
                retryable(&p, &Method::GET, false, &response(status)),
                "{status}"
            );
        }
        for status in [200, 204, 404, 429, 499] {
            assert!(
                !retryable(&p, &Method::GET, false, &response(status)),
                "{status}"
            );
        }
        for outcome in NO_RESPONSE {
            assert!(retryable(&p, &Method::GET, false, &outcome), "{outcome:?}");
        }
        assert!(!retryable(&p, &Method::GET, false, &grpc(14)));
    }

    #[test]
    fn gateway_error_matches_502_to_504_and_no_response() {
        let p = plan(&[RetryCondition::GatewayError]);
        for status in [502, 503, 504] {
            assert!(
                retryable(&p, &Method::GET, false, &response(status)),
                "{status}"
            );
        }
        for status in [200, 500, 501, 505] {
            assert!(
                !retryable(&p, &Method::GET, false, &response(status)),
                "{status}"
            );
        }
        for outcome in NO_RESPONSE {
            assert!(retryable(&p, &Method::GET, false, &outcome), "{outcome:?}");
        }
    }

    #[test]
    fn a_status_condition_matches_that_status() {
        let p = plan(&[RetryCondition::Status(409), RetryCondition::Status(503)]);
        assert!(retryable(&p, &Method::GET, false, &response(409)));
        assert!(retryable(&p, &Method::GET, false, &response(503)));
        assert!(!retryable(&p, &Method::GET, false, &response(500)));
        assert!(!retryable(&p, &Method::GET, false, &TryOutcome::TimedOut));
        assert!(!retryable(&p, &Method::GET, false, &TryOutcome::Reset));
        let p = plan(&[RetryCondition::Status(504)]);
        assert!(retryable(&p, &Method::GET, false, &TryOutcome::TimedOut));
        assert!(retryable(&p, &Method::GET, false, &response(504)));
    }

    #[test]
    fn grpc_conditions_match_their_codes() {
        let cases = [
            (RetryCondition::Cancelled, 1),
            (RetryCondition::DeadlineExceeded, 4),
            (RetryCondition::ResourceExhausted, 8),
            (RetryCondition::Internal, 13),
            (RetryCondition::Unavailable, 14),
        ];
        for (condition, code) in cases {
            let p = plan(&[condition]);
            assert!(
                !retryable(&p, &Method::POST, false, &grpc(code)),
                "POST needs opt-in"
            );
            let mut p = p;
            p.non_idempotent = true;
            assert!(
                retryable(&p, &Method::POST, false, &grpc(code)),
                "{condition:?}"
            );
            for other in [0, 2, 3, 5, 12, 15] {
                assert!(
                    !retryable(&p, &Method::POST, false, &grpc(other)),
                    "{condition:?}"
                );
            }
            assert!(!retryable(&p, &Method::POST, false, &response(503)));
            assert!(!retryable(&p, &Method::POST, false, &TryOutcome::Reset));
        }
    }

    #[test]
    fn the_default_plan_retries_only_what_never_reached_the_app_and_unavailable() {
        let p = Retries::default();
        assert!(retryable(
            &p,
            &Method::GET,
            false,
            &TryOutcome::ConnectFailure
        ));
        assert!(retryable(
            &p,
            &Method::POST,
            false,
            &TryOutcome::RefusedStream
        ));
        assert!(retryable(&p, &Method::GET, false, &grpc(14)));
        assert!(!retryable(&p, &Method::GET, false, &response(503)));
        assert!(!retryable(&p, &Method::GET, false, &TryOutcome::Reset));
        assert!(!retryable(&p, &Method::GET, false, &TryOutcome::TimedOut));
    }

    fn backoff_plan(base_ms: u64, max_ms: u64) -> Backoff {
        Backoff {
            base_interval: Duration::from_millis(base_ms),
            max_interval: Duration::from_millis(max_ms),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_scales_by_jitter() {
        let p = backoff_plan(25, 250);
        let almost_one = 1.0 - f64::EPSILON;
        let ceilings: Vec<Duration> = (0..6).map(|r| backoff(&p, r, 1.0)).collect();
        assert_eq!(
            ceilings,
            [25, 50, 100, 200, 250, 250].map(Duration::from_millis)
        );
        assert!(backoff(&p, 2, almost_one) <= Duration::from_millis(100));
        assert!(backoff(&p, 2, almost_one) > Duration::from_millis(99));
        assert_eq!(backoff(&p, 2, 0.5), Duration::from_millis(50));
        assert_eq!(backoff(&p, 3, 0.0), Duration::ZERO);
    }

    #[test]
    fn backoff_saturates_and_clamps() {
        let p = backoff_plan(25, 250);
        assert_eq!(backoff(&p, 31, 1.0), Duration::from_millis(250));
        assert_eq!(backoff(&p, 32, 1.0), Duration::from_millis(250));
        assert_eq!(backoff(&p, u32::MAX, 1.0), Duration::from_millis(250));
        assert_eq!(backoff(&p, 0, 7.0), Duration::from_millis(25));
        assert_eq!(backoff(&p, 0, -1.0), Duration::ZERO);
        assert_eq!(backoff(&p, 0, f64::NAN), Duration::ZERO);
        let huge = Backoff {
            base_interval: Duration::MAX,
            max_interval: Duration::MAX,
        };
        assert!(backoff(&huge, 5, 1.0) <= Duration::MAX);
        // A base above the cap is capped.
        assert_eq!(
            backoff(&backoff_plan(500, 100), 0, 1.0),
            Duration::from_millis(100)
        );
    }

    fn budget(percent: f64, min_per_second: u32, ttl_secs: u64) -> RetryBudget {
        RetryBudget::new(&plan::RetryBudget {
            percent,
            min_retries_per_second: min_per_second,
            ttl: Duration::from_secs(ttl_secs),
        })
    }

    #[test]
    fn the_budget_allows_a_share_of_requests() {
        let b = budget(20.0, 0, 10);
        let now = Instant::now();
        assert!(!b.withdraw(now), "no requests, no floor: no retries");
        for _ in 0..1000 {
            b.deposit(now);
        }
        for i in 0..200 {
            assert!(b.withdraw(now), "retry {i}");
        }
        assert!(!b.withdraw(now), "the 201st is refused");
        b.deposit(now);
        b.deposit(now);
        b.deposit(now);
        b.deposit(now);
        b.deposit(now);
        assert!(b.withdraw(now), "five more requests buy one more retry");
        assert!(!b.withdraw(now));
    }

    #[test]
    fn the_budget_forgets_after_ttl() {
        let b = budget(20.0, 0, 10);
        let t0 = Instant::now();
        for _ in 0..100 {
            b.deposit(t0);
        }
        for _ in 0..20 {
            assert!(b.withdraw(t0));
        }
        assert!(
            !b.withdraw(t0 + Duration::from_secs(5)),
            "still in the window"
        );
        // The requests and retries of t0 have left the window: nothing to share.
        assert!(!b.withdraw(t0 + Duration::from_secs(11)));
        for _ in 0..10 {
            b.deposit(t0 + Duration::from_secs(11));
        }
        assert!(b.withdraw(t0 + Duration::from_secs(11)));
        assert!(b.withdraw(t0 + Duration::from_secs(11)));
        assert!(!b.withdraw(t0 + Duration::from_secs(11)));
    }

    #[test]
    fn old_retries_expire_and_free_the_budget() {
        let b = budget(50.0, 0, 10);
        let t0 = Instant::now();
        for s in 0..20u64 {
            let now = t0 + Duration::from_secs(s);
            b.deposit(now);
            b.deposit(now);
        }
        // 20 requests in the window (seconds 10..=19, one bucket per second): 10 retries.
        let now = t0 + Duration::from_secs(19);
        for i in 0..10 {
            assert!(b.withdraw(now), "retry {i}");
        }
        assert!(!b.withdraw(now));
    }

    #[test]
    fn the_floor_lets_a_quiet_service_retry() {
        let b = budget(20.0, 1, 10);
        let now = Instant::now();
        // Five requests: 20% of them is one retry; the floor adds 1/s over 10 s.
        for _ in 0..5 {
            b.deposit(now);
        }
        for i in 0..11 {
            assert!(b.withdraw(now), "retry {i}");
        }
        assert!(!b.withdraw(now));
        assert!(b.withdraw(now + Duration::from_secs(10)), "a new window");
    }

    #[test]
    fn a_clock_going_back_counts_as_the_latest_time() {
        let b = budget(100.0, 0, 10);
        let t0 = Instant::now();
        b.deposit(t0 + Duration::from_secs(3));
        assert!(b.withdraw(t0));
        assert!(!b.withdraw(t0 + Duration::from_secs(3)));
    }

    #[test]
    fn the_budget_is_shared_between_threads() {
        let b = std::sync::Arc::new(budget(10.0, 0, 10));
        let now = Instant::now();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for _ in 0..250 {
                        b.deposit(now);
                    }
                    (0..100).filter(|_| b.withdraw(now)).count()
                })
            })
            .collect();
        let granted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        // Withdrawals may run before all deposits, but never beyond 10% of what was
        // deposited; with all 1000 in, exactly 100 retries in total are granted.
        assert!(granted <= 100, "{granted}");
        let rest = (0..200).filter(|_| b.withdraw(now)).count();
        assert_eq!(granted + rest, 100);
    }

    fn any_condition() -> impl Strategy<Value = RetryCondition> {
        prop_oneof![
            Just(RetryCondition::ConnectFailure),
            Just(RetryCondition::RefusedStream),
            Just(RetryCondition::Reset),
            Just(RetryCondition::Http5xx),
            Just(RetryCondition::GatewayError),
            Just(RetryCondition::Cancelled),
            Just(RetryCondition::DeadlineExceeded),
            Just(RetryCondition::Internal),
            Just(RetryCondition::ResourceExhausted),
            Just(RetryCondition::Unavailable),
            (100u16..600).prop_map(RetryCondition::Status),
        ]
    }

    fn any_outcome() -> impl Strategy<Value = TryOutcome> {
        prop_oneof![
            Just(TryOutcome::ConnectFailure),
            Just(TryOutcome::RefusedStream),
            Just(TryOutcome::Reset),
            Just(TryOutcome::TimedOut),
            (100u16..600, proptest::option::of(0u32..20)).prop_map(|(status, grpc_status)| {
                TryOutcome::Response {
                    status,
                    grpc_status,
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn backoff_never_exceeds_max(
            base in any::<u64>(),
            max in any::<u64>(),
            retry in any::<u32>(),
            jitter in proptest::num::f64::ANY,
        ) {
            let p = Backoff {
                base_interval: Duration::from_nanos(base),
                max_interval: Duration::from_nanos(max),
            };
            let wait = backoff(&p, retry, jitter);
            prop_assert!(wait <= p.max_interval);
        }

        #[test]
        fn zero_attempts_is_never_retryable(
            retry_on in proptest::collection::vec(any_condition(), 0..8),
            non_idempotent in any::<bool>(),
            outcome in any_outcome(),
            post in any::<bool>(),
        ) {
            let p = Retries { attempts: 0, retry_on, non_idempotent, ..Retries::default() };
            let method = if post { Method::POST } else { Method::GET };
            prop_assert!(!retryable(&p, &method, false, &outcome));
        }
    }
}
