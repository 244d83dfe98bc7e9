//! The two load shapes. **Open loop**: calls at a constant rate, each at its scheduled
//! time whatever the answers before it did, latency measured from that time — so a
//! slow answer shows as queueing and is never hidden by a generator that waits
//! (coordinated omission). **Closed loop**: a fixed number of callers, each making its
//! next call as soon as the last is answered — the most a target gives.
//!
//! Bounded: an open loop makes exactly `rate × duration` calls; a closed loop stops
//! at its duration or its call budget; every call has a deadline and the whole run a
//! deadline of its duration plus a grace period. Reconnects are bounded and paced.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use super::clients::{CallSpec, Connection, Outcome};
use super::progress::LoadProgress;
use super::recorder::Recorder;
use super::{Protocol, RunResult};

/// Connections a caller may reopen in one run before it gives up.
const MAX_RECONNECTS: u32 = 10_000;
/// The pause after a connection could not be made, so a dead target is not hammered.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);
/// Concurrent calls one multiplexed (HTTP/2, gRPC) connection carries in an open loop.
const MAX_IN_FLIGHT: usize = 1_000;
/// Calls in one open-loop run, at most.
pub const MAX_OPEN_CALLS: u64 = 5_000_000;
/// The lowest open-loop rate: one call every 100 s.
pub const MIN_RATE: f64 = 0.01;
/// Tokio's timer resolution: a sleep ends on the first tick at or after its deadline.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// How the load is shaped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// A constant rate, calls per second.
    Open {
        /// Calls per second.
        rate: f64,
    },
    /// A fixed number of callers, each waiting for its answer before the next call.
    Closed {
        /// Concurrent callers.
        concurrency: usize,
    },
}

/// One run of load against one target.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The protocol.
    pub protocol: Protocol,
    /// Open or closed loop.
    pub mode: Mode,
    /// Connections to open: in a closed loop over HTTP/1.1, TCP and UDP, one per
    /// caller whatever this says; over HTTP/2 and gRPC the callers share these.
    pub connections: usize,
    /// How long the load runs.
    pub duration: Duration,
    /// A closed loop's budget of calls (it stops at the first of this and `duration`).
    pub max_calls: u64,
    /// The report's window length.
    pub window: Duration,
    /// Hash keys to spread the calls over (`key-0` … `key-{n-1}`, in turn), when the
    /// call spec names a key header.
    pub keys: u32,
    /// What each call sends.
    pub call: CallSpec,
}

impl LoadSpec {
    /// A closed loop of `concurrency` HTTP/1.1 callers for `duration`.
    pub fn closed(protocol: Protocol, concurrency: usize, duration: Duration) -> Self {
        Self {
            protocol,
            mode: Mode::Closed { concurrency },
            connections: concurrency,
            duration,
            max_calls: 10_000_000,
            window: Duration::from_secs(1),
            keys: 0,
            call: CallSpec::new("localhost"),
        }
    }

    /// An open loop of `rate` calls per second over `connections` for `duration`.
    pub fn open(protocol: Protocol, rate: f64, connections: usize, duration: Duration) -> Self {
        Self {
            mode: Mode::Open { rate },
            connections,
            ..Self::closed(protocol, connections, duration)
        }
    }

    /// The hash key of call `i`: keys drawn in a fixed pseudo-random order, so that a
    /// key does not fall on the same turn of a round robin every time (which would
    /// look sticky without any hashing).
    fn key(&self, i: u64) -> Option<String> {
        (self.keys > 0 && self.call.key_header.is_some())
            .then(|| format!("key-{}", scramble(i) % u64::from(self.keys)))
    }
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The spec cannot be run.
    #[error("load spec: {0}")]
    Spec(String),
    /// The run did not finish within its deadline.
    #[error("the load did not finish within {0:?} (duration plus grace)")]
    Overran(Duration),
}

fn check(spec: &LoadSpec) -> Result<(), LoadError> {
    if spec.connections == 0 {
        return Err(LoadError::Spec("connections must be at least 1".into()));
    }
    if spec.duration.is_zero() {
        return Err(LoadError::Spec("duration must be more than 0".into()));
    }
    match spec.mode {
        Mode::Open { rate } if !(rate.is_finite() && rate >= MIN_RATE) => Err(LoadError::Spec(
            format!("rate {rate} is not a number of calls per second of at least {MIN_RATE}"),
        )),
        Mode::Open { rate } if rate * spec.duration.as_secs_f64() < 1.0 => Err(LoadError::Spec(
            format!("{rate}/s for {:?} makes no call", spec.duration),
        )),
        Mode::Open { rate } if rate * spec.duration.as_secs_f64() > MAX_OPEN_CALLS as f64 => {
            Err(LoadError::Spec(format!(
                "{rate}/s for {:?} is more than {MAX_OPEN_CALLS} calls",
                spec.duration
            )))
        }
        Mode::Closed { concurrency: 0 } => {
            Err(LoadError::Spec("concurrency must be at least 1".into()))
        }
        _ => Ok(()),
    }
}

/// Runs `spec` against `target`; `label` names the run in the progress bar and the
/// result's `variant`.
pub async fn run(target: SocketAddr, spec: &LoadSpec, label: &str) -> Result<RunResult, LoadError> {
    check(spec)?;
    let progress = LoadProgress::start(label, spec.duration);
    let result = match spec.mode {
        Mode::Open { rate } => open_loop(target, spec, rate).await,
        Mode::Closed { concurrency } => closed_loop(target, spec, concurrency).await,
    };
    progress.finish();
    let mut result = result?;
    result.variant = label.to_string();
    result.protocol = Some(spec.protocol);
    result.connections = spec.connections;
    Ok(result)
}

fn grace(spec: &LoadSpec) -> Duration {
    spec.duration + spec.call.timeout + Duration::from_secs(10)
}

async fn open_loop(target: SocketAddr, spec: &LoadSpec, rate: f64) -> Result<RunResult, LoadError> {
    // Bounded by `check`: at most MAX_OPEN_CALLS.
    let total = (rate * spec.duration.as_secs_f64()).round() as u64;
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(50);
    let spec = Arc::new(spec.clone());
    let mut queues = Vec::new();
    // Dropping the set (an overrun) aborts every worker and the calls they started.
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..spec.connections {
        let (tx, rx) = mpsc::unbounded_channel::<Queued>();
        queues.push(tx);
        workers.spawn(open_worker(target, spec.clone(), start, rx));
    }
    let mut max_lateness = Duration::ZERO;
    for i in 0..total {
        let offset = period.mul_f64(i as f64);
        let due = start + offset;
        // The timer fires on the first tick at or after its deadline: wake up to a tick
        // early rather than up to a tick late (the call is then timed from its send).
        tokio::time::sleep_until(due.checked_sub(TIMER_TICK).unwrap_or(due)).await;
        let dispatched = Instant::now();
        max_lateness = max_lateness.max(dispatched.saturating_duration_since(due));
        let index = usize::try_from(i % spec.connections as u64).unwrap_or(0);
        // A worker that ended early dropped its queue; its calls count as unsent below.
        let _ = queues[index].send(Queued {
            offset,
            key: spec.key(i),
            dispatched,
        });
    }
    drop(queues);
    let mut recorder = Recorder::new(spec.window);
    let deadline = grace(&spec);
    let joined = tokio::time::timeout(deadline, async {
        while let Some(part) = workers.join_next().await {
            if let Ok(part) = part {
                recorder.merge(part);
            }
        }
        recorder
    })
    .await
    .map_err(|_| LoadError::Overran(deadline))?;
    let mut result = joined.finish(spec.duration);
    // Calls a worker never took (it panicked or its queue was dropped) failed.
    result.failed += total.saturating_sub(result.offered);
    result.offered = total;
    result.mode = "open".into();
    result.offered_rate = Some(rate);
    result.max_lateness_us = max_lateness.as_secs_f64() * 1e6;
    Ok(result)
}

/// A call of the open loop, handed to its connection.
#[derive(Debug)]
struct Queued {
    /// When it is due, from the start of the run.
    offset: Duration,
    /// Its hash key.
    key: Option<String>,
    /// When the schedule handed it over (up to a timer tick before it was due).
    dispatched: Instant,
}

impl Queued {
    /// Where its latency starts: its scheduled time, so queueing behind a slow answer
    /// counts — or its dispatch, when the timer handed it over early.
    fn timed_from(&self, start: Instant) -> Instant {
        (start + self.offset).min(self.dispatched)
    }
}

/// One connection of the open loop: serial protocols take their calls in order (a slow
/// answer delays the ones queued behind it, and that delay is measured); multiplexed
/// ones start each call at once, up to [`MAX_IN_FLIGHT`]. A call still queued a whole
/// call timeout after it was due is failed without being sent, so a stuck target
/// cannot make the run outlast its deadline.
async fn open_worker(
    target: SocketAddr,
    spec: Arc<LoadSpec>,
    start: Instant,
    mut queue: mpsc::UnboundedReceiver<Queued>,
) -> Recorder {
    let mut caller = Caller::new(target, spec.clone());
    let multiplexed = matches!(spec.protocol, Protocol::Http2 | Protocol::Grpc);
    let shared = Arc::new(Mutex::new(Recorder::new(spec.window)));
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(queued) = queue.recv().await {
        let offset = queued.offset;
        let scheduled = queued.timed_from(start);
        let key = queued.key;
        if Instant::now().saturating_duration_since(start + offset) > spec.call.timeout {
            lock(&shared).record(offset, spec.call.timeout, &Outcome::Failed, key.as_deref());
            continue;
        }
        if !multiplexed {
            let outcome = caller.call(key.as_deref()).await;
            let latency = Instant::now().saturating_duration_since(scheduled);
            lock(&shared).record(offset, latency, &outcome, key.as_deref());
            continue;
        }
        let Some(mut connection) = caller.handle().await else {
            lock(&shared).record(offset, Duration::ZERO, &Outcome::Failed, key.as_deref());
            continue;
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let spec = spec.clone();
        let shared = shared.clone();
        tasks.spawn(async move {
            let outcome = connection.call(&spec.call, key.as_deref()).await;
            let latency = Instant::now().saturating_duration_since(scheduled);
            lock(&shared).record(offset, latency, &outcome, key.as_deref());
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    // Edition 2024: the guard, a temporary of the tail expression, drops before `shared`.
    lock(&shared).clone()
}

fn lock(recorder: &Mutex<Recorder>) -> std::sync::MutexGuard<'_, Recorder> {
    // A task that panicked mid-record leaves counts that are still counts.
    recorder
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn closed_loop(
    target: SocketAddr,
    spec: &LoadSpec,
    concurrency: usize,
) -> Result<RunResult, LoadError> {
    let spec = Arc::new(spec.clone());
    let started = Instant::now();
    let end = started + spec.duration;
    let issued = Arc::new(AtomicU64::new(0));
    let multiplexed = matches!(spec.protocol, Protocol::Http2 | Protocol::Grpc);
    // Multiplexed callers share `connections` connections, opened once here.
    let mut shared = Vec::new();
    if multiplexed {
        for _ in 0..spec.connections {
            shared.push(
                Connection::open(spec.protocol, target, spec.call.timeout)
                    .await
                    .ok(),
            );
        }
    }
    // Dropping the set (an overrun) aborts every caller.
    let mut callers = tokio::task::JoinSet::new();
    for j in 0..concurrency {
        let mut caller = Caller::new(target, spec.clone());
        if let Some(Some(connection)) = shared.get(j % spec.connections.max(1)) {
            caller.connection = connection.multiplexed();
        }
        let spec = spec.clone();
        let issued = issued.clone();
        callers.spawn(async move {
            let mut recorder = Recorder::new(spec.window);
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let i = issued.fetch_add(1, Ordering::Relaxed);
                if i >= spec.max_calls {
                    break;
                }
                let key = spec.key(i);
                let outcome = caller.call(key.as_deref()).await;
                let latency = now.elapsed();
                recorder.record(now - started, latency, &outcome, key.as_deref());
            }
            recorder
        });
    }
    let mut recorder = Recorder::new(spec.window);
    let deadline = grace(&spec);
    tokio::time::timeout(deadline, async {
        while let Some(part) = callers.join_next().await {
            if let Ok(part) = part {
                recorder.merge(part);
            }
        }
    })
    .await
    .map_err(|_| LoadError::Overran(deadline))?;
    let elapsed = started.elapsed().max(spec.duration);
    let mut result = recorder.finish(spec.duration);
    result.duration_s = elapsed.as_secs_f64().min(spec.duration.as_secs_f64() + 1.0);
    result.mode = "closed".into();
    Ok(result)
}

/// A caller's connection, opened when first needed and again after a failure, a
/// bounded number of times.
struct Caller {
    target: SocketAddr,
    spec: Arc<LoadSpec>,
    connection: Option<Connection>,
    reconnects: u32,
}

impl Caller {
    fn new(target: SocketAddr, spec: Arc<LoadSpec>) -> Self {
        Self {
            target,
            spec,
            connection: None,
            reconnects: 0,
        }
    }

    /// The connection, (re)opened if needed; `None` when it cannot be had now.
    async fn connection(&mut self) -> Option<&mut Connection> {
        if self.connection.as_ref().is_some_and(Connection::is_closed) {
            self.connection = None;
        }
        if self.connection.is_none() {
            if self.reconnects >= MAX_RECONNECTS {
                // Out of reconnects: every call fails, paced so a caller never spins.
                tokio::time::sleep(RECONNECT_PAUSE).await;
                return None;
            }
            self.reconnects += 1;
            match Connection::open(self.spec.protocol, self.target, self.spec.call.timeout).await {
                Ok(connection) => self.connection = Some(connection),
                Err(error) => {
                    tracing::debug!(%error, "load generator connection");
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    return None;
                }
            }
        }
        self.connection.as_mut()
    }

    /// A handle on the (multiplexed) connection for a concurrent call.
    async fn handle(&mut self) -> Option<Connection> {
        self.connection().await.and_then(|c| c.multiplexed())
    }

    async fn call(&mut self, key: Option<&str>) -> Outcome {
        let spec = self.spec.clone();
        let Some(connection) = self.connection().await else {
            return Outcome::Failed;
        };
        let outcome = connection.call(&spec.call, key).await;
        // After a failure a serial connection may be mid-call: start afresh. A
        // multiplexed one is dropped only when it is closed (see `connection`).
        if outcome == Outcome::Failed && !matches!(spec.protocol, Protocol::Http2 | Protocol::Grpc)
        {
            self.connection = None;
        }
        outcome
    }
}

/// A fixed bijective scramble of call numbers (splitmix64's finalizer).
fn scramble(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_that_cannot_run_are_refused() {
        let d = Duration::from_secs(1);
        assert!(check(&LoadSpec::open(Protocol::Http1, 0.0, 1, d)).is_err());
        assert!(check(&LoadSpec::open(Protocol::Http1, f64::NAN, 1, d)).is_err());
        assert!(check(&LoadSpec::open(Protocol::Http1, 1e9, 1, d)).is_err());
        assert!(check(&LoadSpec::open(Protocol::Http1, 10.0, 0, d)).is_err());
        assert!(check(&LoadSpec::closed(Protocol::Tcp, 0, d)).is_err());
        assert!(check(&LoadSpec::closed(Protocol::Tcp, 1, Duration::ZERO)).is_err());
        assert!(check(&LoadSpec::closed(Protocol::Tcp, 4, d)).is_ok());
    }

    #[test]
    fn keys_cycle_only_when_a_header_carries_them() {
        let mut spec = LoadSpec::closed(Protocol::Http1, 1, Duration::from_secs(1));
        spec.keys = 3;
        assert_eq!(spec.key(4), None);
        spec.call.key_header = Some(http::HeaderName::from_static("x-user"));
        let keys: Vec<String> = (0..300).filter_map(|i| spec.key(i)).collect();
        assert_eq!(keys.len(), 300);
        for k in ["key-0", "key-1", "key-2"] {
            let n = keys.iter().filter(|x| *x == k).count();
            assert!((70..=130).contains(&n), "{k}: {n} of 300");
        }
        // Not in turn: a round robin over 3 endpoints would not keep a key on one.
        let in_turn = (0..300u64).all(|i| spec.key(i) == Some(format!("key-{}", i % 3)));
        assert!(!in_turn);
    }
}
