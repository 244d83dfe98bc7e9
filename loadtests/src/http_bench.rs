//! The per-request HTTP (L7) benchmark (`causeway bench http`): the mesh's HTTP proxying
//! measured in five scenarios, one after another in one run on this machine, each
//! against a baseline measured in the same run.
//!
//! 1. **HTTP/1.1 keep-alive, same node**: wrk against the echo app directly, HAProxy in
//!    `mode http` (`http-reuse always`) and a mesh node's per-Service listener for a
//!    Service port with `appProtocol: http`; rounds alternate targets, medians.
//! 2. **HTTP/2 (h2c)**: h2load against the echo directly and through the listener of a
//!    Service port with `appProtocol: kubernetes.io/h2c`. Skipped (and said so) when
//!    h2load is not installed.
//! 3. **Rate-limit accuracy**: an open-loop generator (constant rate, a few keep-alive
//!    HTTP/1.1 connections) against a Service with `rateLimit: {qps, enforceAt: Source}`;
//!    admitted requests per 1 s window and the 429s.
//! 4. **Slow endpoint**: four echo endpoints, one of them slow, behind a Service with
//!    `RoundRobin` and one with `PeakEwma`; a closed-loop generator's p50/p99 for each,
//!    and the share of answers that came from the slow endpoint.
//! 5. **Cross-node**: the same load through a second node (the Service's only endpoint
//!    runs on node B; the caller uses node A's listener, carried over the tunnel) against
//!    the same-node listener.
//!
//! A benchmark, not a test: nothing here judges the figures; the report states the goals.
//! Every process listens on 127.0.0.1; every load is bounded in time (wrk and h2load by
//! their duration and killed past it, the generators by their request count or duration
//! and a deadline).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::echo::Answer;
use crate::harness::{
    self, BenchError, ChildProcess, ScratchDir, find_tool, free_tcp_port, io_error, median_of,
    named_endpoint_slice_object, node_object, run_bounded, service_object, traffic_policy_object,
};
use crate::proxy_bench::{WrkRun, first_line, micros, wrk_measure};

const NODE_A: &str = "bench-a";
const NODE_B: &str = "bench-b";
const SITE: &str = "bench";
const NAMESPACE: &str = "bench";
const SERVICE_PORT: u16 = 80;
const ECHO_POD: &str = "bench-echo";
const REMOTE_POD: &str = "bench-echo-b";
const SLOW_PODS: usize = 4;
/// The slow one of the four.
const SLOW_POD: &str = "bench-slow-0";

/// How to run the benchmark.
#[derive(Debug, Clone)]
pub struct HttpBenchConfig {
    /// The `causeway` executable (for `app echo` and `node`).
    pub binary: PathBuf,
    /// Rounds of the alternating scenarios (1, 2 and 5).
    pub rounds: usize,
    /// One measurement in scenarios 1, 2 and 5 (whole seconds).
    pub duration: Duration,
    /// Connections of wrk and h2load (scenarios 1, 2, 4 and 5).
    pub connections: u32,
    /// Concurrent streams per h2load connection.
    pub h2_streams: u32,
    /// HAProxy's `nbthread`.
    pub haproxy_threads: u32,
    /// Worker threads of mesh node A (0: tokio's default, one per core).
    pub mesh_threads: usize,
    /// The limit of scenario 3 (requests/s).
    pub rate_limit_qps: u32,
    /// The generator's constant offered rate in scenario 3 (requests/s).
    pub offered_rate: u32,
    /// How long scenario 3 offers load.
    pub rate_duration: Duration,
    /// Keep-alive connections of the generator.
    pub rate_connections: usize,
    /// One measurement per algorithm in scenario 4 (whole seconds).
    pub slow_duration: Duration,
    /// The slow endpoint's delay.
    pub slow_delay: Duration,
    /// Where to keep the files (kept afterwards); default: a scratch directory.
    pub work_dir: Option<PathBuf>,
}

impl HttpBenchConfig {
    /// The full run: about two and a half minutes.
    pub fn full(binary: PathBuf) -> Self {
        Self {
            binary,
            rounds: 3,
            duration: Duration::from_secs(5),
            connections: 16,
            h2_streams: 10,
            haproxy_threads: 1,
            mesh_threads: 0,
            rate_limit_qps: 100,
            offered_rate: 500,
            rate_duration: Duration::from_secs(10),
            rate_connections: 4,
            slow_duration: Duration::from_secs(10),
            slow_delay: Duration::from_millis(50),
            work_dir: None,
        }
    }

    /// A smoke run (not a measurement): one round of 1 s, 2 s of rate and slow load.
    pub fn quick(binary: PathBuf) -> Self {
        Self {
            rounds: 1,
            duration: Duration::from_secs(1),
            rate_duration: Duration::from_secs(2),
            slow_duration: Duration::from_secs(2),
            ..Self::full(binary)
        }
    }

    fn check(&self) -> Result<(), BenchError> {
        let bad = |m: &str| Err(BenchError::Options(m.to_string()));
        if self.rounds == 0 || self.rounds > 20 {
            return bad("rounds must be 1 to 20");
        }
        for d in [self.duration, self.rate_duration, self.slow_duration] {
            if d.as_secs() == 0 || d > Duration::from_secs(60) {
                return bad("durations must be 1 to 60 whole seconds");
            }
        }
        if self.connections == 0 || self.connections > 1000 {
            return bad("connections must be 1 to 1000");
        }
        if self.h2_streams == 0 || self.h2_streams > 1000 {
            return bad("h2 streams must be 1 to 1000");
        }
        if self.haproxy_threads == 0 || self.haproxy_threads > 64 {
            return bad("HAProxy threads must be 1 to 64");
        }
        if self.mesh_threads > 64 {
            return bad("mesh threads must be 0 (default) to 64");
        }
        if self.rate_limit_qps == 0 || self.offered_rate == 0 || self.offered_rate > 20_000 {
            return bad("the limit must be positive and the offered rate 1 to 20000/s");
        }
        if self.rate_connections == 0 || self.rate_connections > 64 {
            return bad("the generator needs 1 to 64 connections");
        }
        if self.slow_delay > Duration::from_secs(2) {
            return bad("the slow endpoint's delay must be at most 2 s");
        }
        Ok(())
    }
}

/// Every wrk run of one target.
#[derive(Debug, Clone)]
pub struct WrkSeries {
    /// The target's name.
    pub target: String,
    /// The runs, in order.
    pub runs: Vec<WrkRun>,
}

impl WrkSeries {
    fn new(target: &str) -> Self {
        Self {
            target: target.to_string(),
            runs: Vec::new(),
        }
    }

    /// Median requests per second.
    pub fn rps(&self) -> f64 {
        median_of(&self.runs, |r| r.requests_per_sec)
    }

    /// Median p50, microseconds.
    pub fn p50_us(&self) -> f64 {
        median_of(&self.runs, |r| r.p50_us)
    }

    /// Median p99, microseconds.
    pub fn p99_us(&self) -> f64 {
        median_of(&self.runs, |r| r.p99_us)
    }
}

/// One h2load run, as its summary reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct H2Run {
    /// Requests per second.
    pub requests_per_sec: f64,
    /// Requests done.
    pub done: u64,
    /// Requests that succeeded.
    pub succeeded: u64,
    /// Failed + errored + timed out.
    pub failed: u64,
    /// 2xx answers.
    pub status_2xx: u64,
    /// Mean time for a request, microseconds.
    pub mean_us: f64,
    /// Longest time for a request, microseconds.
    pub max_us: f64,
}

/// Every h2load run of one target.
#[derive(Debug, Clone)]
pub struct H2Series {
    /// The target's name.
    pub target: String,
    /// The runs, in order.
    pub runs: Vec<H2Run>,
}

impl H2Series {
    /// Median requests per second.
    pub fn rps(&self) -> f64 {
        median_of(&self.runs, |r| r.requests_per_sec)
    }

    /// Median of the mean request times, microseconds.
    pub fn mean_us(&self) -> f64 {
        median_of(&self.runs, |r| r.mean_us)
    }
}

/// Scenario 2: measured, or why not.
#[derive(Debug, Clone)]
pub enum H2Outcome {
    /// h2load's version and the series (direct, mesh).
    Measured {
        /// `h2load --version`.
        version: String,
        /// Direct, then through the mesh.
        series: Vec<H2Series>,
    },
    /// Not run; the reason.
    Skipped(String),
}

/// What the open-loop generator saw in scenario 3.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateRun {
    /// Requests scheduled (offered rate × duration).
    pub offered: u64,
    /// 200 answers per 1 s window (by scheduled send time).
    pub admitted_per_window: Vec<u64>,
    /// 429 answers.
    pub limited: u64,
    /// 429 answers without `Retry-After`.
    pub limited_without_retry_after: u64,
    /// Other statuses.
    pub other_status: u64,
    /// Requests that got no answer (connection errors, timeouts).
    pub errors: u64,
    /// The latest a request left after its scheduled time, microseconds.
    pub max_lateness_us: f64,
}

impl RateRun {
    /// All 200 answers.
    pub fn admitted(&self) -> u64 {
        self.admitted_per_window.iter().sum()
    }

    /// Admitted per second over the whole run (the first window includes the burst).
    pub fn mean_per_sec(&self) -> f64 {
        if self.admitted_per_window.is_empty() {
            return 0.0;
        }
        self.admitted() as f64 / self.admitted_per_window.len() as f64
    }

    /// The windows after the first (the steady state: the bucket's burst is spent).
    fn steady(&self) -> &[u64] {
        self.admitted_per_window.get(1..).unwrap_or_default()
    }

    /// Mean admitted per second over the windows after the first.
    pub fn steady_mean(&self) -> f64 {
        let steady = self.steady();
        if steady.is_empty() {
            return 0.0;
        }
        steady.iter().sum::<u64>() as f64 / steady.len() as f64
    }

    /// Fewest and most admitted in one window after the first.
    pub fn steady_min_max(&self) -> (u64, u64) {
        let steady = self.steady();
        (
            steady.iter().copied().min().unwrap_or(0),
            steady.iter().copied().max().unwrap_or(0),
        )
    }
}

/// What the closed-loop generator saw in scenario 4.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClosedRun {
    /// The Service's balancing algorithm.
    pub algorithm: String,
    /// How long it ran.
    pub elapsed: Duration,
    /// Latencies of the 200 answers, microseconds, sorted.
    pub latencies_us: Vec<f64>,
    /// 200 answers from the slow endpoint.
    pub slow_answers: u64,
    /// Answers that were not 200, or not the echo's JSON.
    pub wrong: u64,
    /// Requests that got no answer.
    pub errors: u64,
}

impl ClosedRun {
    /// 200 answers per second.
    pub fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.latencies_us.len() as f64 / secs
        } else {
            0.0
        }
    }

    /// The `q`-quantile (0 to 1) of the latencies, microseconds (nearest rank).
    pub fn quantile_us(&self, q: f64) -> f64 {
        let n = self.latencies_us.len();
        if n == 0 {
            return f64::NAN;
        }
        let rank = (q * n as f64).ceil() as usize;
        self.latencies_us[rank.clamp(1, n) - 1]
    }

    /// The share of answers that came from the slow endpoint.
    pub fn slow_share(&self) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.slow_answers as f64 / self.latencies_us.len() as f64
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct HttpReport {
    /// Scenario 1: direct, HAProxy, mesh.
    pub keepalive: Vec<WrkSeries>,
    /// Scenario 1: CPU time per request of HAProxy and of the mesh node, in µs, one
    /// value per round (user + system, all threads, from /proc).
    pub cpu_per_request_us: [Vec<f64>; 2],
    /// Scenario 2.
    pub h2: H2Outcome,
    /// Scenario 3.
    pub rate: RateRun,
    /// Scenario 4: RoundRobin, PeakEwma.
    pub slow: Vec<ClosedRun>,
    /// Scenario 5: same node, cross-node.
    pub cross: Vec<WrkSeries>,
    /// Every target checked before it was measured.
    pub verified: Vec<String>,
    /// `haproxy -v`'s first line.
    pub haproxy_version: String,
    /// `wrk -v`'s first line.
    pub wrk_version: String,
    /// The configuration, for the record.
    pub config: HttpBenchConfig,
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

impl HttpReport {
    /// Scenario 1's ratios: mesh/HAProxy and HAProxy/direct requests per second.
    pub fn keepalive_ratios(&self) -> (f64, f64) {
        let rps = |i: usize| self.keepalive.get(i).map_or(0.0, WrkSeries::rps);
        (rps(2) / rps(1), rps(1) / rps(0))
    }

    /// Scenario 4's ratio: RoundRobin p99 / PeakEwma p99.
    pub fn slow_ratio(&self) -> f64 {
        let p99 = |i: usize| self.slow.get(i).map_or(0.0, |r| r.quantile_us(0.99));
        p99(0) / p99(1)
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let c = &self.config;
        let mut out = String::new();
        let wrk_table = |out: &mut String, series: &[WrkSeries], base: usize, base_name: &str| {
            let _ = writeln!(
                out,
                "| target | req/s (median) | p50 | p99 | req/s ÷ {base_name} | p99 ÷ {base_name}'s |"
            );
            let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: |");
            let (base_rps, base_p99) = series
                .get(base)
                .map_or((0.0, 0.0), |s| (s.rps(), s.p99_us()));
            for s in series {
                let _ = writeln!(
                    out,
                    "| {} | {:.0} | {} | {} | {} | {} |",
                    s.target,
                    s.rps(),
                    micros(s.p50_us()),
                    micros(s.p99_us()),
                    ratio(s.rps(), base_rps),
                    ratio(s.p99_us(), base_p99),
                );
            }
        };

        let _ = writeln!(
            out,
            "### 1. HTTP/1.1 keep-alive, same node (wrk -t1 -c{} --latency, {} round(s) of {} s, targets alternating)\n",
            c.connections,
            c.rounds,
            c.duration.as_secs()
        );
        wrk_table(&mut out, &self.keepalive, 1, "HAProxy");
        let (mesh_haproxy, haproxy_direct) = self.keepalive_ratios();
        let _ = writeln!(
            out,
            "\nmesh ÷ HAProxy req/s: **{mesh_haproxy:.2}**; HAProxy ÷ direct req/s: **{haproxy_direct:.2}**\n"
        );
        if !self.cpu_per_request_us[0].is_empty() && !self.cpu_per_request_us[1].is_empty() {
            let haproxy = harness::median(&self.cpu_per_request_us[0]);
            let mesh = harness::median(&self.cpu_per_request_us[1]);
            let _ = writeln!(
                out,
                "CPU per request (user + system, all threads, median of rounds): HAProxy {haproxy:.1} µs, mesh {mesh:.1} µs (**{:.2}×**)\n",
                mesh / haproxy
            );
        }

        let _ = writeln!(
            out,
            "### 2. HTTP/2 (h2c), same node (h2load -t1 -c{} -m{}, {} round(s) of {} s)\n",
            c.connections,
            c.h2_streams,
            c.rounds,
            c.duration.as_secs()
        );
        match &self.h2 {
            H2Outcome::Measured { version, series } => {
                let _ = writeln!(
                    out,
                    "| target | req/s (median) | mean request time | req/s ÷ direct |"
                );
                let _ = writeln!(out, "| --- | ---: | ---: | ---: |");
                let base = series.first().map_or(0.0, H2Series::rps);
                for s in series {
                    let _ = writeln!(
                        out,
                        "| {} | {:.0} | {} | {} |",
                        s.target,
                        s.rps(),
                        micros(s.mean_us()),
                        ratio(s.rps(), base),
                    );
                }
                let _ = writeln!(out, "\n{version}\n");
            }
            H2Outcome::Skipped(reason) => {
                let _ = writeln!(out, "SKIPPED: {reason}\n");
            }
        }

        let r = &self.rate;
        let (min, max) = r.steady_min_max();
        let goal = f64::from(c.rate_limit_qps);
        let tolerance = goal * 0.05;
        let met = (r.steady_mean() - goal).abs() <= tolerance
            && (min as f64) >= goal - tolerance
            && (max as f64) <= goal + tolerance;
        let _ = writeln!(
            out,
            "### 3. Rate limit (rateLimit qps {}, enforceAt Source): open loop, {}/s for {} s over {} keep-alive connections\n",
            c.rate_limit_qps,
            c.offered_rate,
            c.rate_duration.as_secs(),
            c.rate_connections
        );
        let _ = writeln!(
            out,
            "| offered | admitted (200) | admitted/s, whole run | admitted/s after the 1st s (mean) | min / max per 1 s window after the 1st | 429 | 429 without Retry-After | other status | no answer |"
        );
        let _ = writeln!(
            out,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {:.1} | {} / {} | {} | {} | {} | {} |",
            r.offered,
            r.admitted(),
            r.mean_per_sec(),
            r.steady_mean(),
            min,
            max,
            r.limited,
            r.limited_without_retry_after,
            r.other_status,
            r.errors
        );
        let _ = writeln!(
            out,
            "\nper window: {:?}; latest send {} behind schedule\ngoal {goal:.0} ± {tolerance:.0} admitted/s after the first second (every window): {}\n",
            r.admitted_per_window,
            micros(r.max_lateness_us),
            verdict(met)
        );

        let _ = writeln!(
            out,
            "### 4. Slow endpoint: 4 endpoints, one with --delay {} ms (closed loop, {} keep-alive connections, {} s each)\n",
            c.slow_delay.as_millis(),
            c.connections,
            c.slow_duration.as_secs()
        );
        let _ = writeln!(
            out,
            "| algorithm | req/s | p50 | p90 | p99 | max | answers from the slow endpoint | not 200 / no answer |"
        );
        let _ = writeln!(
            out,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for r in &self.slow {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} | {} | {} | {} ({:.2} %) | {} / {} |",
                r.algorithm,
                r.rps(),
                micros(r.quantile_us(0.5)),
                micros(r.quantile_us(0.9)),
                micros(r.quantile_us(0.99)),
                micros(r.quantile_us(1.0)),
                r.slow_answers,
                r.slow_share() * 100.0,
                r.wrong,
                r.errors
            );
        }
        let slow_ratio = self.slow_ratio();
        let _ = writeln!(
            out,
            "\nRoundRobin p99 ÷ PeakEwma p99: **{slow_ratio:.2}** (goal ≥ 3: {})\n",
            verdict(slow_ratio >= 3.0)
        );

        let _ = writeln!(
            out,
            "### 5. Cross-node vs same-node HTTP/1.1 through node A's listener (wrk -t1 -c{} --latency, {} round(s) of {} s, alternating)\n",
            c.connections,
            c.rounds,
            c.duration.as_secs()
        );
        wrk_table(&mut out, &self.cross, 0, "same node");
        out
    }

    /// Every run, for the record.
    pub fn runs_text(&self) -> String {
        let mut out = String::new();
        for s in self.keepalive.iter().chain(&self.cross) {
            for (i, run) in s.runs.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{:<32} run {} {:>9.0} req/s  p50 {:>9}  p99 {:>9}  socket errors {}",
                    s.target,
                    i + 1,
                    run.requests_per_sec,
                    micros(run.p50_us),
                    micros(run.p99_us),
                    run.socket_errors
                );
            }
        }
        if let H2Outcome::Measured { series, .. } = &self.h2 {
            for s in series {
                for (i, run) in s.runs.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "{:<32} run {} {:>9.0} req/s  mean {:>9}  max {:>9}  failed {}",
                        s.target,
                        i + 1,
                        run.requests_per_sec,
                        micros(run.mean_us),
                        micros(run.max_us),
                        run.failed
                    );
                }
            }
        }
        out
    }
}

/// A Service of the run: name, appProtocol, port name, endpoints as (address, node).
type ServiceSpec<'a> = (&'a str, &'a str, &'a str, Vec<(SocketAddr, &'a str)>);

/// A listener to measure and what must answer behind it.
struct Endpoint {
    name: String,
    addr: SocketAddr,
    /// The pod whose answer proves the path (a prefix: one of several).
    pod_prefix: String,
}

/// Starts `causeway app echo` on a free port.
fn start_echo(
    binary: &Path,
    pod: &str,
    node: &str,
    extra: &[String],
) -> Result<(ChildProcess, SocketAddr), BenchError> {
    let addr = free_tcp_port()?;
    let mut command = Command::new(binary);
    command.args(["app", "echo", "--listen", &addr.to_string()]);
    command.args(["--pod", pod, "--node", node, "--site", SITE]);
    command.args(extra);
    command.env("RUST_LOG", "warn");
    let mut child = ChildProcess::spawn(&format!("echo app {pod}"), command, None)?;
    harness::wait_for_http(&mut child, addr, "/", Duration::from_secs(20))?;
    Ok((child, addr))
}

fn check_answer(target: &str, body: &str, pod_prefix: &str) -> Result<(), BenchError> {
    let wrong = |detail: String| BenchError::WrongAnswer {
        target: target.to_string(),
        detail,
    };
    let answer: Answer = serde_json::from_str(body.trim())
        .map_err(|e| wrong(format!("not the echo's JSON ({e}): {body}")))?;
    if !answer.identity.pod.starts_with(pod_prefix) || answer.method != "GET" {
        return Err(wrong(format!("expected pod {pod_prefix}… and GET: {body}")));
    }
    Ok(())
}

/// HAProxy in HTTP mode: one frontend on `listen`, one server (the echo), keep-alive on
/// both sides and idle server connections shared between clients.
fn haproxy_http_cfg(threads: u32, listen: SocketAddr, echo: SocketAddr) -> String {
    format!(
        "# Written by `causeway bench http`: HAProxy doing what the mesh does, in HTTP mode.
global
    nbthread {threads}
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s

frontend bench
    bind {listen}
    default_backend echo

backend echo
    server echo {echo}
"
    )
}

/// Runs the benchmark. `progress` is told what happens, a line at a time.
pub fn run(
    config: &HttpBenchConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<HttpReport, BenchError> {
    config.check()?;
    let wrk = find_tool("wrk", "wrk")?;
    let haproxy = find_tool("haproxy", "haproxy")?;
    let h2load = find_tool("h2load", "nghttp2-client");
    let haproxy_version = first_line(&haproxy, "-v")?;
    let wrk_version = first_line(&wrk, "-v")?;
    let scratch = ScratchDir::new("bench-http", config.work_dir.as_deref())?;
    let dir = scratch.path();
    progress(&format!("files in {}", dir.display()));

    // The echo apps: the main one on node A, one on node B, four for scenario 4.
    let binary = &config.binary;
    let mut processes: Vec<ChildProcess> = Vec::new();
    let (echo, echo_addr) = start_echo(binary, ECHO_POD, NODE_A, &[])?;
    processes.push(echo);
    let (remote, remote_addr) = start_echo(binary, REMOTE_POD, NODE_B, &[])?;
    processes.push(remote);
    let mut slow_addrs = Vec::new();
    for i in 0..SLOW_PODS {
        let extra = if i == 0 {
            vec![
                "--delay".to_string(),
                format!("{}ms", config.slow_delay.as_millis()),
            ]
        } else {
            Vec::new()
        };
        let pod = if i == 0 {
            SLOW_POD.to_string()
        } else {
            format!("bench-slow-{i}")
        };
        let (child, addr) = start_echo(binary, &pod, NODE_A, &extra)?;
        processes.push(child);
        slow_addrs.push(addr);
    }

    // HAProxy.
    let haproxy_addr = free_tcp_port()?;
    let haproxy_config = dir.join("haproxy.cfg");
    std::fs::write(
        &haproxy_config,
        haproxy_http_cfg(config.haproxy_threads, haproxy_addr, echo_addr),
    )
    .map_err(io_error(format!(
        "cannot write {}",
        haproxy_config.display()
    )))?;
    let mut haproxy_command = Command::new(&haproxy);
    haproxy_command.arg("-db").arg("-f").arg(&haproxy_config);
    processes.push(ChildProcess::spawn("HAProxy", haproxy_command, None)?);
    let haproxy_pid = processes.last().map(ChildProcess::pid);

    // The manifests both nodes load.
    let identities = dir.join("identity");
    harness::write_identities(&identities, &[NODE_A, NODE_B], SITE)?;
    let tunnel_a = harness::free_udp_and_tcp_port()?;
    let tunnel_b = harness::free_udp_and_tcp_port()?;
    let local = |addr: SocketAddr, node: &str| vec![(addr.ip().to_string(), node.to_string())];
    let mut objects = vec![
        node_object(NODE_A, SITE, tunnel_a),
        node_object(NODE_B, SITE, tunnel_b),
    ];
    // (service, appProtocol, port name, endpoints as (addr, node)).
    let services: Vec<ServiceSpec<'_>> = vec![
        ("echo-http", "http", "http", vec![(echo_addr, NODE_A)]),
        (
            "echo-h2c",
            "kubernetes.io/h2c",
            "http2",
            vec![(echo_addr, NODE_A)],
        ),
        ("echo-limited", "http", "http", vec![(echo_addr, NODE_A)]),
        (
            "slow-rr",
            "http",
            "http",
            slow_addrs.iter().map(|&a| (a, NODE_A)).collect(),
        ),
        (
            "slow-ewma",
            "http",
            "http",
            slow_addrs.iter().map(|&a| (a, NODE_A)).collect(),
        ),
        ("echo-remote", "http", "http", vec![(remote_addr, NODE_B)]),
        (
            "echo-remote-per-request",
            "http",
            "http",
            vec![(remote_addr, NODE_B)],
        ),
    ];
    for (i, (name, app_protocol, port_name, endpoints)) in services.iter().enumerate() {
        let octet = u8::try_from(10 + i).unwrap_or(250);
        let first_port = endpoints.first().map_or(0, |(a, _)| a.port());
        objects.push(service_object(
            NAMESPACE,
            name,
            Ipv4Addr::new(10, 96, 0, octet),
            SERVICE_PORT,
            first_port,
            port_name,
            Some(app_protocol),
        ));
        // One slice per endpoint: they listen on different ports of 127.0.0.1.
        for (j, (addr, node)) in endpoints.iter().enumerate() {
            objects.push(named_endpoint_slice_object(
                NAMESPACE,
                name,
                &format!("{name}-{j}"),
                &local(*addr, node),
                addr.port(),
                port_name,
            ));
        }
    }
    objects.push(traffic_policy_object(
        NAMESPACE,
        "echo-limited",
        "echo-limited",
        json!({"rateLimit": {"qps": config.rate_limit_qps, "enforceAt": "Source"}}),
    ));
    objects.push(traffic_policy_object(
        NAMESPACE,
        "slow-rr",
        "slow-rr",
        json!({"loadBalancer": {"algorithm": "RoundRobin"}}),
    ));
    objects.push(traffic_policy_object(
        NAMESPACE,
        "slow-ewma",
        "slow-ewma",
        json!({"loadBalancer": {"algorithm": "PeakEwma"}}),
    ));
    // The same remote endpoint with one tunnel stream per request instead of pooled
    // streams: the alternative design, measured against the chosen one.
    objects.push(traffic_policy_object(
        NAMESPACE,
        "echo-remote-per-request",
        "echo-remote-per-request",
        json!({"connectionPool": {"maxRequestsPerConnection": 1}}),
    ));
    let manifests = harness::write_manifests(dir, "bench.yaml", &objects)?;

    // Node A serves a listener per Service; node B only runs the remote endpoint.
    let mut listeners: Vec<(&str, SocketAddr)> = Vec::new();
    for (name, ..) in &services {
        listeners.push((name, free_tcp_port()?));
    }
    let node_command = |name: &str, tunnel: SocketAddr| {
        harness::node_command(binary, name, SITE, dir, &identities, &manifests, tunnel)
    };
    let mut command_a = node_command(NODE_A, tunnel_a);
    for (name, addr) in &listeners {
        command_a
            .arg("--service")
            .arg(format!("{NAMESPACE}/{name}:{SERVICE_PORT}={addr}"));
    }
    if config.mesh_threads > 0 {
        command_a.args(["--worker-threads", &config.mesh_threads.to_string()]);
    }
    let mut node_a = ChildProcess::spawn("mesh node A", command_a, None)?;
    let mut node_b = ChildProcess::spawn("mesh node B", node_command(NODE_B, tunnel_b), None)?;
    let listener = |service: &str| {
        listeners
            .iter()
            .find(|(name, _)| *name == service)
            .map(|(_, addr)| *addr)
            .ok_or_else(|| BenchError::Options(format!("no listener for {service}")))
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mesh_name = if config.mesh_threads == 0 {
        format!("mesh ({cores} workers, default)")
    } else {
        format!("mesh ({} workers)", config.mesh_threads)
    };

    let targets = [
        Endpoint {
            name: "direct".into(),
            addr: echo_addr,
            pod_prefix: ECHO_POD.into(),
        },
        Endpoint {
            name: format!("HAProxy http (nbthread {})", config.haproxy_threads),
            addr: haproxy_addr,
            pod_prefix: ECHO_POD.into(),
        },
        Endpoint {
            name: format!("{mesh_name}, appProtocol http"),
            addr: listener("echo-http")?,
            pod_prefix: ECHO_POD.into(),
        },
    ];
    let h2c = Endpoint {
        name: "mesh, appProtocol kubernetes.io/h2c".into(),
        addr: listener("echo-h2c")?,
        pod_prefix: ECHO_POD.into(),
    };
    let limited = Endpoint {
        name: "mesh, rateLimit".into(),
        addr: listener("echo-limited")?,
        pod_prefix: ECHO_POD.into(),
    };
    let slow = [
        Endpoint {
            name: "RoundRobin".into(),
            addr: listener("slow-rr")?,
            pod_prefix: "bench-slow-".into(),
        },
        Endpoint {
            name: "PeakEwma".into(),
            addr: listener("slow-ewma")?,
            pod_prefix: "bench-slow-".into(),
        },
    ];
    let cross = [
        Endpoint {
            name: "same node (A → echo on A)".into(),
            addr: listener("echo-http")?,
            pod_prefix: ECHO_POD.into(),
        },
        Endpoint {
            name: "cross-node (A → tunnel → B)".into(),
            addr: listener("echo-remote")?,
            pod_prefix: REMOTE_POD.into(),
        },
        Endpoint {
            name: "cross-node, a tunnel stream per request".into(),
            addr: listener("echo-remote-per-request")?,
            pod_prefix: REMOTE_POD.into(),
        },
    ];

    // Every listener answers as its echo does before anything is measured (the
    // rate-limited one spends one token here).
    let mut verified = Vec::new();
    for target in targets
        .iter()
        .chain([&h2c, &limited])
        .chain(&slow)
        .chain(&cross)
    {
        node_b.check_running()?;
        let body = harness::wait_for_http(&mut node_a, target.addr, "/", Duration::from_secs(30))?;
        check_answer(&target.name, &body, &target.pod_prefix)?;
        progress(&format!("verified: {} at {}", target.name, target.addr));
        verified.push(target.name.clone());
    }
    let mut check_all = |node_a: &mut ChildProcess, node_b: &mut ChildProcess| {
        node_a.check_running()?;
        node_b.check_running()?;
        for p in processes.iter_mut() {
            p.check_running()?;
        }
        Ok::<(), BenchError>(())
    };
    let wrk_once = |target: &Endpoint, duration: Duration| {
        wrk_measure(
            &wrk,
            1,
            config.connections,
            duration,
            target.addr,
            &target.name,
        )
    };

    // 1. HTTP/1.1 keep-alive, same node.
    for target in &targets {
        progress(&format!("warm-up: {} for 1 s", target.name));
        wrk_once(target, Duration::from_secs(1))?;
    }
    let mut keepalive: Vec<WrkSeries> = targets.iter().map(|t| WrkSeries::new(&t.name)).collect();
    let mut cpu: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let node_a_pid = node_a.pid();
    for round in 0..config.rounds {
        for k in 0..targets.len() {
            let t = (k + round) % targets.len();
            check_all(&mut node_a, &mut node_b)?;
            // The proxy's own CPU: HAProxy's process for target 1, node A's for 2.
            let pid = match t {
                1 => haproxy_pid,
                2 => Some(node_a_pid),
                _ => None,
            };
            let before = pid.and_then(process_cpu_seconds);
            let run = wrk_once(&targets[t], config.duration)?;
            if let (Some(pid), Some(before)) = (pid, before)
                && let Some(after) = process_cpu_seconds(pid)
                && run.requests > 0
            {
                cpu[t - 1].push((after - before) * 1e6 / run.requests as f64);
            }
            progress(&format!(
                "1. round {}/{}: {:<40} {:>9.0} req/s  p99 {}",
                round + 1,
                config.rounds,
                targets[t].name,
                run.requests_per_sec,
                micros(run.p99_us)
            ));
            keepalive[t].runs.push(run);
        }
    }

    // 2. HTTP/2.
    let h2 = match h2load {
        Err(missing) => {
            progress(&format!("2. skipped: {missing}"));
            H2Outcome::Skipped(missing.to_string())
        }
        Ok(h2load) => {
            let version = first_line(&h2load, "--version")?;
            let h2_targets = [
                Endpoint {
                    name: "direct (echo h2c)".into(),
                    addr: echo_addr,
                    pod_prefix: ECHO_POD.into(),
                },
                h2c,
            ];
            let mut series: Vec<H2Series> = h2_targets
                .iter()
                .map(|t| H2Series {
                    target: t.name.clone(),
                    runs: Vec::new(),
                })
                .collect();
            for target in &h2_targets {
                h2load_run(&h2load, config, target, Duration::from_secs(1))?;
            }
            for round in 0..config.rounds {
                for k in 0..h2_targets.len() {
                    let t = (k + round) % h2_targets.len();
                    check_all(&mut node_a, &mut node_b)?;
                    let run = h2load_run(&h2load, config, &h2_targets[t], config.duration)?;
                    progress(&format!(
                        "2. round {}/{}: {:<40} {:>9.0} req/s  mean {}",
                        round + 1,
                        config.rounds,
                        h2_targets[t].name,
                        run.requests_per_sec,
                        micros(run.mean_us)
                    ));
                    series[t].runs.push(run);
                }
            }
            H2Outcome::Measured { version, series }
        }
    };

    // 3. Rate limit. The bucket is full after the idle scenarios before.
    check_all(&mut node_a, &mut node_b)?;
    progress(&format!(
        "3. open loop: {}/s for {} s against {}",
        config.offered_rate,
        config.rate_duration.as_secs(),
        limited.name
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_error("cannot start the generator's runtime"))?;
    let rate = runtime.block_on(open_loop(
        limited.addr,
        config.offered_rate,
        config.rate_duration,
        config.rate_connections,
    ))?;
    drop(runtime);
    progress(&format!(
        "3. admitted {} of {} ({:.1}/s after the first second), {} × 429, {} other, {} errors",
        rate.admitted(),
        rate.offered,
        rate.steady_mean(),
        rate.limited,
        rate.other_status,
        rate.errors
    ));

    // 4. Slow endpoint.
    let mut slow_series: Vec<ClosedRun> = Vec::new();
    for target in &slow {
        check_all(&mut node_a, &mut node_b)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io_error("cannot start the generator's runtime"))?;
        let mut run = runtime.block_on(closed_loop(
            target.addr,
            usize::try_from(config.connections).unwrap_or(16),
            config.slow_duration,
            SLOW_POD,
        ))?;
        run.algorithm = target.name.clone();
        progress(&format!(
            "4. {:<12} {:>7.0} req/s  p50 {}  p99 {}  {:.2} % from the slow endpoint",
            target.name,
            run.rps(),
            micros(run.quantile_us(0.5)),
            micros(run.quantile_us(0.99)),
            run.slow_share() * 100.0
        ));
        slow_series.push(run);
    }

    // 5. Cross-node.
    for target in &cross {
        wrk_once(target, Duration::from_secs(1))?;
    }
    let mut cross_series: Vec<WrkSeries> = cross.iter().map(|t| WrkSeries::new(&t.name)).collect();
    for round in 0..config.rounds {
        for k in 0..cross.len() {
            let t = (k + round) % cross.len();
            check_all(&mut node_a, &mut node_b)?;
            let run = wrk_once(&cross[t], config.duration)?;
            progress(&format!(
                "5. round {}/{}: {:<40} {:>9.0} req/s  p99 {}",
                round + 1,
                config.rounds,
                cross[t].name,
                run.requests_per_sec,
                micros(run.p99_us)
            ));
            cross_series[t].runs.push(run);
        }
    }

    drop(node_a);
    drop(node_b);
    drop(processes);
    Ok(HttpReport {
        keepalive,
        cpu_per_request_us: cpu,
        h2,
        rate,
        slow: slow_series,
        cross: cross_series,
        verified,
        haproxy_version,
        wrk_version,
        config: config.clone(),
    })
}

fn h2load_run(
    h2load: &Path,
    config: &HttpBenchConfig,
    target: &Endpoint,
    duration: Duration,
) -> Result<H2Run, BenchError> {
    let mut command = Command::new(h2load);
    command
        .args(["-t", "1"])
        .args(["-c", &config.connections.to_string()])
        .args(["-m", &config.h2_streams.to_string()])
        .args(["-D", &duration.as_secs().to_string()])
        .arg(format!("http://{}/", target.addr));
    let what = format!("h2load against {}", target.name);
    let (status, out) = run_bounded(&what, command, duration + Duration::from_secs(30))?;
    if !status.success() {
        return Err(BenchError::Parse {
            what,
            detail: format!("exit {status}:\n{out}"),
        });
    }
    let run = parse_h2load(&out).map_err(|detail| BenchError::Parse {
        what: what.clone(),
        detail: format!("{detail}:\n{out}"),
    })?;
    if run.done == 0 || run.failed > 0 || run.status_2xx < run.done {
        return Err(BenchError::WrongAnswer {
            target: target.name.clone(),
            detail: format!(
                "{} done, {} failed, {} 2xx during the load:\n{out}",
                run.done, run.failed, run.status_2xx
            ),
        });
    }
    Ok(run)
}

/// Reads h2load's summary.
pub fn parse_h2load(out: &str) -> Result<H2Run, String> {
    let mut run = H2Run {
        requests_per_sec: f64::NAN,
        done: 0,
        succeeded: 0,
        failed: 0,
        status_2xx: 0,
        mean_us: f64::NAN,
        max_us: f64::NAN,
    };
    // `N word` pairs of a comma-separated list: `117 total, 117 started, 0 failed`.
    let counts = |rest: &str| -> Vec<(String, u64)> {
        rest.split(',')
            .filter_map(|part| {
                let mut words = part.split_whitespace();
                let n = words.next()?.parse().ok()?;
                Some((words.next()?.to_string(), n))
            })
            .collect()
    };
    let mut saw_requests = false;
    for line in out.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("finished in") {
            // finished in 5.00s, 23456.20 req/s, 1.23MB/s
            let rps = rest
                .split(',')
                .find_map(|part| part.trim().strip_suffix(" req/s"))
                .ok_or_else(|| format!("no req/s in `{line}`"))?;
            run.requests_per_sec = rps
                .trim()
                .parse()
                .map_err(|e| format!("bad req/s `{rps}`: {e}"))?;
        } else if let Some(rest) = line.strip_prefix("requests:") {
            saw_requests = true;
            for (word, n) in counts(rest) {
                match word.as_str() {
                    "done" => run.done = n,
                    "succeeded" => run.succeeded = n,
                    "failed" | "errored" | "timeout" => run.failed += n,
                    _ => {}
                }
            }
        } else if let Some(rest) = line.strip_prefix("status codes:") {
            run.status_2xx = counts(rest)
                .into_iter()
                .find(|(word, _)| word == "2xx")
                .map_or(0, |(_, n)| n);
        } else if let Some(rest) = line.strip_prefix("time for request:") {
            // min max mean sd +/-sd
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let field = |i: usize| {
                fields
                    .get(i)
                    .and_then(|v| parse_h2_duration_us(v))
                    .ok_or_else(|| format!("bad `{line}`"))
            };
            run.max_us = field(1)?;
            run.mean_us = field(2)?;
        }
    }
    if run.requests_per_sec.is_nan() {
        return Err("no `finished in` line".into());
    }
    if !saw_requests {
        return Err("no `requests:` line".into());
    }
    if run.mean_us.is_nan() {
        return Err("no `time for request:` line".into());
    }
    Ok(run)
}

/// `102us`, `10.02ms`, `1.5s` → microseconds.
fn parse_h2_duration_us(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1_000.0,
        "s" => 1_000_000.0,
        _ => return None,
    };
    Some(number * scale)
}

/// What became of one request of the open loop.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Admitted,
    Limited { retry_after: bool },
    Other,
    Failed,
}

/// The open-loop generator: `rate` requests per second for `duration`, each scheduled
/// at its fixed time and handed round-robin to one of `connections` keep-alive HTTP/1.1
/// connections (queued there if the connection is still busy, so a slow answer never
/// slows the schedule). Bounded: exactly `rate × duration` requests, each with a 5 s
/// deadline, and the whole run with a deadline of `duration` + 15 s.
pub async fn open_loop(
    addr: SocketAddr,
    rate: u32,
    duration: Duration,
    connections: usize,
) -> Result<RateRun, BenchError> {
    let total = u64::from(rate) * duration.as_secs();
    let period = Duration::from_secs(1) / rate;
    let mut queues = Vec::new();
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (tx, rx) = mpsc::unbounded_channel::<(Duration, Instant)>();
        queues.push(tx);
        workers.push(tokio::spawn(connection_worker(addr, rx)));
    }
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut max_lateness = Duration::ZERO;
    for i in 0..total {
        let offset = period * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(start + offset).await;
        let now = tokio::time::Instant::now();
        max_lateness = max_lateness.max(now.saturating_duration_since(start + offset));
        let queue = &queues[usize::try_from(i).unwrap_or(0) % connections];
        // A worker that gave up (its connection could not be made) drops its queue.
        let _ = queue.send((offset, now.into_std()));
    }
    drop(queues);
    let deadline = Duration::from_secs(15);
    let mut run = RateRun {
        offered: total,
        admitted_per_window: vec![0; usize::try_from(duration.as_secs()).unwrap_or(0)],
        max_lateness_us: max_lateness.as_secs_f64() * 1e6,
        ..RateRun::default()
    };
    let mut answered = 0u64;
    for worker in workers {
        let outcomes = tokio::time::timeout(deadline, worker)
            .await
            .map_err(|_| BenchError::NotReady {
                what: "the rate generator's connections to finish".into(),
                waited: deadline,
                last: "still sending".into(),
            })?
            .map_err(|e| BenchError::Parse {
                what: "the rate generator".into(),
                detail: e.to_string(),
            })?;
        for (offset, outcome) in outcomes {
            answered += 1;
            match outcome {
                Outcome::Admitted => {
                    let window = usize::try_from(offset.as_secs()).unwrap_or(usize::MAX);
                    if let Some(slot) = run.admitted_per_window.get_mut(window) {
                        *slot += 1;
                    }
                }
                Outcome::Limited { retry_after } => {
                    run.limited += 1;
                    if !retry_after {
                        run.limited_without_retry_after += 1;
                    }
                }
                Outcome::Other => run.other_status += 1,
                Outcome::Failed => run.errors += 1,
            }
        }
    }
    // Requests a dead worker never took count as failed.
    run.errors += total.saturating_sub(answered);
    Ok(run)
}

/// One keep-alive connection of the open loop: sends what its queue holds, in order;
/// reconnects (a bounded number of times) when the connection fails.
async fn connection_worker(
    addr: SocketAddr,
    mut queue: mpsc::UnboundedReceiver<(Duration, Instant)>,
) -> Vec<(Duration, Outcome)> {
    const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
    let mut outcomes = Vec::new();
    let mut sender: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> = None;
    let mut reconnects = 0u32;
    while let Some((offset, _queued)) = queue.recv().await {
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            sender = None;
            if reconnects < 50 {
                reconnects += 1;
                if let Ok(Ok(tcp)) =
                    tokio::time::timeout(REQUEST_DEADLINE, TcpStream::connect(addr)).await
                {
                    let _ = tcp.set_nodelay(true);
                    if let Ok((s, connection)) =
                        hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await
                    {
                        tokio::spawn(connection);
                        sender = Some(s);
                    }
                }
            }
        }
        let Some(s) = sender.as_mut() else {
            outcomes.push((offset, Outcome::Failed));
            continue;
        };
        let outcome = tokio::time::timeout(REQUEST_DEADLINE, async {
            s.ready().await.map_err(|_| ())?;
            let request = http::Request::get("/")
                .header(http::header::HOST, addr.to_string())
                .body(Empty::<Bytes>::new())
                .map_err(|_| ())?;
            let response = s.send_request(request).await.map_err(|_| ())?;
            let status = response.status();
            let retry_after = response.headers().contains_key(http::header::RETRY_AFTER);
            response.into_body().collect().await.map_err(|_| ())?;
            Ok::<_, ()>(match status.as_u16() {
                200 => Outcome::Admitted,
                429 => Outcome::Limited { retry_after },
                _ => Outcome::Other,
            })
        })
        .await;
        match outcome {
            Ok(Ok(outcome)) => outcomes.push((offset, outcome)),
            _ => {
                outcomes.push((offset, Outcome::Failed));
                sender = None;
            }
        }
    }
    outcomes
}

/// The closed-loop generator: `connections` keep-alive HTTP/1.1 connections, each
/// sending `GET /` as soon as its previous answer is in, for `duration`; records each
/// 200's latency and whether `slow_pod` answered it. Bounded: each request has a 5 s
/// deadline and no request starts after `duration`.
pub async fn closed_loop(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    slow_pod: &str,
) -> Result<ClosedRun, BenchError> {
    let started = Instant::now();
    let end = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let slow_pod = slow_pod.to_string();
        tasks.push(tokio::spawn(async move {
            closed_loop_connection(addr, end, &slow_pod).await
        }));
    }
    let mut run = ClosedRun::default();
    let deadline = duration + Duration::from_secs(15);
    for task in tasks {
        let part = tokio::time::timeout(deadline, task)
            .await
            .map_err(|_| BenchError::NotReady {
                what: "the closed-loop generator's connections to finish".into(),
                waited: deadline,
                last: "still sending".into(),
            })?
            .map_err(|e| BenchError::Parse {
                what: "the closed-loop generator".into(),
                detail: e.to_string(),
            })??;
        run.latencies_us.extend(part.latencies_us);
        run.slow_answers += part.slow_answers;
        run.wrong += part.wrong;
        run.errors += part.errors;
    }
    run.elapsed = started.elapsed();
    run.latencies_us.sort_by(f64::total_cmp);
    Ok(run)
}

async fn closed_loop_connection(
    addr: SocketAddr,
    end: Instant,
    slow_pod: &str,
) -> Result<ClosedRun, BenchError> {
    const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
    let mut run = ClosedRun::default();
    let connect = || async {
        let tcp = tokio::time::timeout(REQUEST_DEADLINE, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("no connection to {addr} within 5 s"))?
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP/1.1 handshake with {addr}: {e}"))?;
        tokio::spawn(connection);
        Ok::<_, String>(sender)
    };
    let mut sender = connect().await.map_err(|last| BenchError::NotReady {
        what: format!("a connection to {addr}"),
        waited: REQUEST_DEADLINE,
        last,
    })?;
    let mut reconnects = 0u32;
    while Instant::now() < end {
        let sent = Instant::now();
        let answer = tokio::time::timeout(REQUEST_DEADLINE, async {
            sender.ready().await.map_err(|_| ())?;
            let request = http::Request::get("/")
                .header(http::header::HOST, addr.to_string())
                .body(Empty::<Bytes>::new())
                .map_err(|_| ())?;
            let response = sender.send_request(request).await.map_err(|_| ())?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|_| ())?
                .to_bytes();
            Ok::<_, ()>((status, body))
        })
        .await;
        match answer {
            Ok(Ok((status, body))) => {
                let latency = sent.elapsed().as_secs_f64() * 1e6;
                match serde_json::from_slice::<Answer>(&body) {
                    Ok(answer) if status == http::StatusCode::OK => {
                        run.latencies_us.push(latency);
                        if answer.identity.pod == slow_pod {
                            run.slow_answers += 1;
                        }
                    }
                    _ => run.wrong += 1,
                }
            }
            _ => {
                run.errors += 1;
                if reconnects >= 50 {
                    break;
                }
                reconnects += 1;
                match connect().await {
                    Ok(s) => sender = s,
                    Err(_) => break,
                }
            }
        }
    }
    Ok(run)
}

/// CPU time a process has used so far (user + system, all its threads), from
/// `/proc/PID/stat` in clock ticks of 10 ms (Linux's USER_HZ).
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H2LOAD: &str = "starting benchmark...
spawning thread #0: 16 total client(s). Timing-based test with 0s of warm-up time and 5s of main duration for measurements.
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 5.00s, 23456.20 req/s, 2.50MB/s
requests: 117281 total, 117441 started, 117281 done, 117270 succeeded, 11 failed, 0 errored, 0 timeout
status codes: 117270 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 12.50MB (13107200) total, 1.00MB (1048576) headers (space savings 90.00%), 10.00MB (10485760) data
                     min         max         mean         sd        +/- sd
time for request:      102us     10.02ms      1.12ms       500us    80.00%
time for connect:      150us       1.20ms       600us       300us    60.00%
time to 1st byte:      2.00ms      3.00ms      2.50ms       300us    60.00%
req/s           :    1400.00     1500.00     1466.00       30.00    70.00%
";

    #[test]
    fn h2load_output_is_read() {
        let run = parse_h2load(H2LOAD).unwrap();
        assert!((run.requests_per_sec - 23456.20).abs() < 1e-6);
        assert_eq!(run.done, 117281);
        assert_eq!(run.succeeded, 117270);
        assert_eq!(run.failed, 11);
        assert_eq!(run.status_2xx, 117270);
        assert!((run.mean_us - 1120.0).abs() < 1e-6);
        assert!((run.max_us - 10020.0).abs() < 1e-6);
    }

    #[test]
    fn h2load_output_without_summary_is_refused() {
        assert!(parse_h2load("garbage").is_err());
        let no_times = H2LOAD.replace("time for request:", "time for nothing:");
        assert!(parse_h2load(&no_times).is_err());
        let no_requests = H2LOAD.replace("requests:", "asks:");
        assert!(parse_h2load(&no_requests).is_err());
    }

    #[test]
    fn h2_durations() {
        assert_eq!(parse_h2_duration_us("102us"), Some(102.0));
        assert_eq!(parse_h2_duration_us("1.5s"), Some(1_500_000.0));
        assert_eq!(parse_h2_duration_us("3m"), None);
        assert_eq!(parse_h2_duration_us("us"), None);
    }

    #[test]
    fn rate_windows() {
        let run = RateRun {
            offered: 2000,
            admitted_per_window: vec![200, 100, 98, 103],
            ..RateRun::default()
        };
        assert_eq!(run.admitted(), 501);
        assert!((run.mean_per_sec() - 125.25).abs() < 1e-9);
        assert!((run.steady_mean() - 301.0 / 3.0).abs() < 1e-9);
        assert_eq!(run.steady_min_max(), (98, 103));
        assert_eq!(RateRun::default().steady_mean(), 0.0);
    }

    #[test]
    fn closed_loop_quantiles() {
        let run = ClosedRun {
            elapsed: Duration::from_secs(2),
            latencies_us: (1..=100).map(f64::from).collect(),
            slow_answers: 5,
            ..ClosedRun::default()
        };
        assert_eq!(run.quantile_us(0.5), 50.0);
        assert_eq!(run.quantile_us(0.99), 99.0);
        assert_eq!(run.quantile_us(1.0), 100.0);
        assert_eq!(run.quantile_us(0.0), 1.0);
        assert!((run.rps() - 50.0).abs() < 1e-9);
        assert!((run.slow_share() - 0.05).abs() < 1e-9);
        assert!(ClosedRun::default().quantile_us(0.5).is_nan());
    }

    #[test]
    fn options_are_bounded() {
        let mut config = HttpBenchConfig::quick(PathBuf::from("causeway"));
        assert!(config.check().is_ok());
        config.connections = 0;
        assert!(config.check().is_err());
        config.connections = 16;
        config.rate_duration = Duration::from_secs(120);
        assert!(config.check().is_err());
    }

    #[test]
    fn haproxy_config_is_http_mode() {
        let cfg = haproxy_http_cfg(
            1,
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        assert!(cfg.contains("mode http"));
        assert!(cfg.contains("http-reuse always"));
        assert!(cfg.contains("server echo 127.0.0.1:2"));
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let pid = std::process::id();
        let before = super::process_cpu_seconds(pid).unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = super::process_cpu_seconds(pid).unwrap();
        assert!(after >= before, "{before} then {after}");
        assert!(super::process_cpu_seconds(u32::MAX).is_none());
    }
}
