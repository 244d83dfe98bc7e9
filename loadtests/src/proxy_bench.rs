//! The same-node proxy benchmark (`causeway bench proxy`): HTTP/1.1 keep-alive
//! request/response through a mesh node's per-Service listener, against the same load
//! sent straight to the echo app and through HAProxy in TCP mode doing the same job.
//!
//! One run starts, as child processes killed when the run ends: the echo app
//! (`causeway app echo`), HAProxy (`mode tcp`, one frontend, one server: the echo, with
//! `nbthread` as configured), and one `causeway node` per configured worker-thread count,
//! each with a per-Service listener for a Service whose only endpoint is the echo on the
//! same node (dialled directly). Every target is checked to answer `GET /` with the
//! echo's JSON before anything is measured. Then wrk drives the same load against every
//! target, alternating targets (in a rotated order) over several rounds, so slow drifts
//! of a shared machine hit them all alike; the report gives per-target medians and the
//! ratios against HAProxy and against the direct connection.
//!
//! A benchmark, not a test: nothing here judges the ratios. All traffic is on loopback;
//! every wrk run is bounded by its duration (and killed past it).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::echo::Answer;
use crate::harness::{
    self, BenchError, ChildProcess, ScratchDir, endpoint_slice_object, find_tool, free_tcp_port,
    io_error, median_of, node_object, render_documents, run_bounded, tcp_service_object,
};

/// The echo pod's name: a target that answers with it reached the benchmark's echo.
pub const ECHO_POD: &str = "bench-echo";
const NODE: &str = "bench-node";
const SITE: &str = "bench";
const NAMESPACE: &str = "bench";
const SERVICE: &str = "echo";
const SERVICE_PORT: u16 = 80;

/// How to run the benchmark.
#[derive(Debug, Clone)]
pub struct ProxyBenchConfig {
    /// The `causeway` executable (for `app echo` and `node`).
    pub binary: PathBuf,
    /// Rounds; each round measures every target once per connection count.
    pub rounds: usize,
    /// Length of one measurement (whole seconds; wrk's resolution).
    pub duration: Duration,
    /// An unrecorded run per target before the rounds (zero: none).
    pub warmup: Duration,
    /// wrk connection counts to measure, each a series of its own.
    pub connections: Vec<u32>,
    /// wrk threads.
    pub wrk_threads: u32,
    /// HAProxy's `nbthread`.
    pub haproxy_threads: u32,
    /// One mesh node per entry, with that many tokio worker threads (0: tokio's default,
    /// one per core).
    pub mesh_threads: Vec<usize>,
    /// Where to keep the files (kept afterwards); default: a scratch directory removed
    /// at the end.
    pub work_dir: Option<PathBuf>,
}

impl ProxyBenchConfig {
    /// The full run: 3 rounds of 10 s per target and connection count (16 and 64), a 2 s
    /// warm-up, HAProxy with one thread, mesh nodes with one worker thread and with the
    /// default.
    pub fn full(binary: PathBuf) -> Self {
        Self {
            binary,
            rounds: 3,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            connections: vec![16, 64],
            wrk_threads: 1,
            haproxy_threads: 1,
            mesh_threads: vec![1, 0],
            work_dir: None,
        }
    }

    /// A smoke run: one round of 2 s at 16 connections, no warm-up.
    pub fn quick(binary: PathBuf) -> Self {
        Self {
            rounds: 1,
            duration: Duration::from_secs(2),
            warmup: Duration::ZERO,
            connections: vec![16],
            ..Self::full(binary)
        }
    }

    fn check(&self) -> Result<(), BenchError> {
        let bad = |m: &str| Err(BenchError::Options(m.to_string()));
        if self.rounds == 0 {
            return bad("rounds must be at least 1");
        }
        if self.duration.as_secs() == 0 || self.duration > Duration::from_secs(600) {
            return bad("duration must be 1 to 600 whole seconds");
        }
        if self.warmup > Duration::from_secs(60) {
            return bad("warm-up must be at most 60 seconds");
        }
        if self.rounds > 20 {
            return bad("rounds must be at most 20");
        }
        if self.connections.is_empty() || self.connections.iter().any(|&c| c == 0 || c > 10_000) {
            return bad("connections must be 1 to 10000");
        }
        if self.wrk_threads == 0 || self.connections.iter().any(|&c| c < self.wrk_threads) {
            return bad("wrk needs at least one thread and one connection per thread");
        }
        if self.haproxy_threads == 0 || self.haproxy_threads > 64 {
            return bad("HAProxy threads must be 1 to 64");
        }
        if self.mesh_threads.is_empty() || self.mesh_threads.iter().any(|&t| t > 64) {
            return bad("mesh threads: at least one entry, each 0 (default) to 64");
        }
        Ok(())
    }
}

/// What kind of target a series measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// Straight to the echo app.
    Direct,
    /// Through HAProxy.
    Haproxy,
    /// Through a mesh node's per-Service listener.
    Mesh,
}

/// One wrk run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WrkRun {
    /// Requests per second.
    pub requests_per_sec: f64,
    /// Requests completed.
    pub requests: u64,
    /// Latency percentiles, microseconds.
    pub p50_us: f64,
    /// 75th.
    pub p75_us: f64,
    /// 90th.
    pub p90_us: f64,
    /// 99th.
    pub p99_us: f64,
    /// connect + read + write + timeout errors.
    pub socket_errors: u64,
    /// Responses that were not 2xx or 3xx.
    pub non_2xx: u64,
}

/// Every run of one target at one connection count.
#[derive(Debug, Clone)]
pub struct Series {
    /// The target's name.
    pub target: String,
    /// Its kind.
    pub kind: TargetKind,
    /// wrk connections.
    pub connections: u32,
    /// The runs, in order.
    pub runs: Vec<WrkRun>,
}

impl Series {
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

    /// Socket errors over all runs.
    pub fn socket_errors(&self) -> u64 {
        self.runs.iter().map(|r| r.socket_errors).sum()
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct ProxyReport {
    /// Every series, grouped by connection count, targets in start order.
    pub series: Vec<Series>,
    /// Targets whose `GET /` answered with the echo's JSON before measuring.
    pub verified: Vec<String>,
    /// `haproxy -v`'s first line.
    pub haproxy_version: String,
    /// `wrk -v`'s first line.
    pub wrk_version: String,
    /// The configuration, for the record.
    pub config: ProxyBenchConfig,
}

impl ProxyReport {
    /// The series of `kind` at `connections` (the first, for mesh).
    pub fn find(&self, kind: TargetKind, connections: u32) -> Option<&Series> {
        self.series
            .iter()
            .find(|s| s.kind == kind && s.connections == connections)
    }

    /// The report as Markdown: one table row per target and connection count.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| conns | target | req/s (median) | p50 | p99 | req/s ÷ HAProxy | req/s ÷ direct | p99 ÷ HAProxy's |"
        );
        let _ = writeln!(
            out,
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for series in &self.series {
            let haproxy = self.find(TargetKind::Haproxy, series.connections);
            let direct = self.find(TargetKind::Direct, series.connections);
            let ratio = |base: Option<&Series>, f: fn(&Series) -> f64| {
                base.map(f)
                    .filter(|b| *b > 0.0)
                    .map_or("-".to_string(), |b| format!("{:.2}", f(series) / b))
            };
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {} | {} | {} | {} | {} |",
                series.connections,
                series.target,
                series.rps(),
                micros(series.p50_us()),
                micros(series.p99_us()),
                ratio(haproxy, Series::rps),
                ratio(direct, Series::rps),
                ratio(haproxy, Series::p99_us),
            );
        }
        out
    }

    /// Every run, for the record: target, connections, round, rps, p50/p90/p99, errors.
    pub fn runs_text(&self) -> String {
        let mut out = String::new();
        for series in &self.series {
            for (round, run) in series.runs.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{:<28} c={:<4} round {} {:>10.0} req/s  p50 {:>9}  p90 {:>9}  p99 {:>9}  socket errors {}",
                    series.target,
                    series.connections,
                    round + 1,
                    run.requests_per_sec,
                    micros(run.p50_us),
                    micros(run.p90_us),
                    micros(run.p99_us),
                    run.socket_errors,
                );
            }
        }
        out
    }
}

/// Microseconds for people: `850 µs`, `1.20 ms`.
pub fn micros(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// A target and the process that serves it (the echo itself, for `direct`); killed when
/// dropped.
struct Target {
    name: String,
    kind: TargetKind,
    addr: SocketAddr,
    process: ChildProcess,
}

/// Runs the benchmark. `progress` is told what happens, a line at a time.
pub fn run(
    config: &ProxyBenchConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<ProxyReport, BenchError> {
    config.check()?;
    let wrk = find_tool("wrk", "wrk")?;
    let haproxy = find_tool("haproxy", "haproxy")?;
    let haproxy_version = first_line(&haproxy, "-v")?;
    let wrk_version = first_line(&wrk, "-v")?;
    let scratch = ScratchDir::new("bench-proxy", config.work_dir.as_deref())?;
    let dir = scratch.path();
    progress(&format!("files in {}", dir.display()));

    // The echo app.
    let echo_addr = free_tcp_port()?;
    let mut echo_command = Command::new(&config.binary);
    echo_command.args(["app", "echo", "--listen", &echo_addr.to_string()]);
    echo_command.args(["--pod", ECHO_POD, "--node", NODE, "--site", SITE]);
    echo_command.env("RUST_LOG", "warn");
    let mut echo = ChildProcess::spawn("the echo app", echo_command, None)?;
    harness::wait_for_http(&mut echo, echo_addr, "/", Duration::from_secs(20))?;
    let mut targets = vec![Target {
        name: "direct".into(),
        kind: TargetKind::Direct,
        addr: echo_addr,
        process: echo,
    }];

    // HAProxy.
    let haproxy_addr = free_tcp_port()?;
    let haproxy_config = dir.join("haproxy.cfg");
    std::fs::write(
        &haproxy_config,
        haproxy_cfg(config.haproxy_threads, haproxy_addr, echo_addr),
    )
    .map_err(io_error(format!(
        "cannot write {}",
        haproxy_config.display()
    )))?;
    let mut haproxy_command = Command::new(&haproxy);
    haproxy_command.arg("-db").arg("-f").arg(&haproxy_config);
    targets.push(Target {
        name: format!("HAProxy (nbthread {})", config.haproxy_threads),
        kind: TargetKind::Haproxy,
        addr: haproxy_addr,
        process: ChildProcess::spawn("HAProxy", haproxy_command, None)?,
    });

    // The mesh nodes: one Service whose one endpoint is the echo on this node.
    let identity = dir.join("identity");
    harness::write_identity(&identity, NODE, SITE)?;
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests)
        .map_err(io_error(format!("cannot create {}", manifests.display())))?;
    let tunnel_ports: Vec<SocketAddr> = config
        .mesh_threads
        .iter()
        .map(|_| harness::free_udp_and_tcp_port())
        .collect::<Result<_, _>>()?;
    let objects = [
        node_object(NODE, SITE, tunnel_ports[0]),
        tcp_service_object(
            NAMESPACE,
            SERVICE,
            Ipv4Addr::new(10, 96, 0, 10),
            SERVICE_PORT,
            echo_addr.port(),
        ),
        endpoint_slice_object(
            NAMESPACE,
            SERVICE,
            &[(echo_addr.ip().to_string(), NODE.to_string())],
            echo_addr.port(),
        ),
    ];
    let file = manifests.join("bench.yaml");
    std::fs::write(&file, render_documents(&objects))
        .map_err(io_error(format!("cannot write {}", file.display())))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (i, &threads) in config.mesh_threads.iter().enumerate() {
        let listen = free_tcp_port()?;
        let mut command = Command::new(&config.binary);
        command
            .args(["node", "--name", NODE, "--site", SITE])
            .arg("--state-dir")
            .arg(dir.join(format!("state-{i}")))
            .arg("--identity-dir")
            .arg(&identity)
            .arg("--manifests")
            .arg(&manifests)
            .args(["--tunnel-listen", &tunnel_ports[i].to_string()])
            .args(["--http-proxy", "off", "--socks", "off", "--admin", "off"])
            .args(["--dns", "off"])
            // The echo backend listens on loopback, as the benchmark's pod.
            .arg("--allow-loopback-endpoints")
            .arg("--service")
            .arg(format!("{NAMESPACE}/{SERVICE}:{SERVICE_PORT}={listen}"))
            .env("RUST_LOG", "info");
        if threads > 0 {
            command.args(["--worker-threads", &threads.to_string()]);
        }
        let name = if threads == 0 {
            format!("mesh ({cores} workers, default)")
        } else {
            format!(
                "mesh ({threads} worker{})",
                if threads == 1 { "" } else { "s" }
            )
        };
        targets.push(Target {
            process: ChildProcess::spawn(&name, command, None)?,
            name,
            kind: TargetKind::Mesh,
            addr: listen,
        });
    }

    // Every target answers as the echo does, or nothing is measured.
    let mut verified = Vec::new();
    for target in targets.iter_mut() {
        let body = harness::wait_for_http(
            &mut target.process,
            target.addr,
            "/",
            Duration::from_secs(30),
        )?;
        check_answer(&target.name, &body)?;
        progress(&format!(
            "verified: {} at {} answers as {ECHO_POD}",
            target.name, target.addr
        ));
        verified.push(target.name.clone());
    }

    let run_wrk = |target: &Target, connections: u32, duration: Duration| {
        wrk_run(&wrk, config.wrk_threads, connections, duration, target)
    };
    if !config.warmup.is_zero() {
        let warmup = Duration::from_secs(config.warmup.as_secs().max(1));
        for target in &targets {
            progress(&format!("warm-up: {} for {warmup:?}", target.name));
            let connections = config.connections.iter().copied().max().unwrap_or(16);
            run_wrk(target, connections, warmup)?;
        }
    }
    let mut series: Vec<Series> = Vec::new();
    for &connections in &config.connections {
        for target in &targets {
            series.push(Series {
                target: target.name.clone(),
                kind: target.kind,
                connections,
                runs: Vec::new(),
            });
        }
    }
    for round in 0..config.rounds {
        for (c, &connections) in config.connections.iter().enumerate() {
            // Rotate the order each round so no target always follows the same one.
            for k in 0..targets.len() {
                let t = (k + round) % targets.len();
                for target in targets.iter_mut() {
                    target.process.check_running()?;
                }
                let target = &targets[t];
                let measured = run_wrk(target, connections, config.duration)?;
                progress(&format!(
                    "round {}/{}: {:<28} c={connections:<4} {:>9.0} req/s  p99 {}",
                    round + 1,
                    config.rounds,
                    target.name,
                    measured.requests_per_sec,
                    micros(measured.p99_us)
                ));
                series[c * targets.len() + t].runs.push(measured);
            }
        }
    }
    drop(targets);
    Ok(ProxyReport {
        series,
        verified,
        haproxy_version,
        wrk_version,
        config: config.clone(),
    })
}

/// The first line `tool flag` prints (its version), within 10 s.
pub fn first_line(tool: &Path, flag: &str) -> Result<String, BenchError> {
    let mut command = Command::new(tool);
    command.arg(flag);
    let what = tool.display().to_string();
    let (_, out) = run_bounded(&what, command, Duration::from_secs(10))?;
    Ok(out.lines().next().unwrap_or_default().trim().to_string())
}

/// HAProxy in TCP mode: one frontend on `listen`, one server, the echo.
fn haproxy_cfg(threads: u32, listen: SocketAddr, echo: SocketAddr) -> String {
    format!(
        "# Written by `causeway bench proxy`: HAProxy doing what the mesh node does, in TCP mode.
global
    nbthread {threads}
    maxconn 4096

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend bench
    bind {listen}
    default_backend echo

backend echo
    server echo {echo}
"
    )
}

fn check_answer(target: &str, body: &str) -> Result<(), BenchError> {
    let wrong = |detail: String| BenchError::WrongAnswer {
        target: target.to_string(),
        detail,
    };
    let answer: Answer = serde_json::from_str(body.trim())
        .map_err(|e| wrong(format!("not the echo's JSON ({e}): {body}")))?;
    if answer.identity.pod != ECHO_POD || answer.path != "/" || answer.method != "GET" {
        return Err(wrong(format!("expected pod {ECHO_POD} and GET /: {body}")));
    }
    Ok(())
}

fn wrk_run(
    wrk: &Path,
    threads: u32,
    connections: u32,
    duration: Duration,
    target: &Target,
) -> Result<WrkRun, BenchError> {
    wrk_measure(
        wrk,
        threads,
        connections,
        duration,
        target.addr,
        &target.name,
    )
}

/// One wrk run (`-t threads -c connections -d duration --latency`) of `GET /` against
/// `addr` (called `name` in messages), killed past its duration plus 30 s. A run with
/// no request or with any answer that is not 2xx/3xx is refused.
pub fn wrk_measure(
    wrk: &Path,
    threads: u32,
    connections: u32,
    duration: Duration,
    addr: SocketAddr,
    name: &str,
) -> Result<WrkRun, BenchError> {
    let mut command = Command::new(wrk);
    command
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs()))
        .args(["--latency", "--timeout", "5s"])
        .arg(format!("http://{addr}/"));
    let what = format!("wrk against {name}");
    let (status, out) = run_bounded(&what, command, duration + Duration::from_secs(30))?;
    if !status.success() {
        return Err(BenchError::Parse {
            what,
            detail: format!("exit {status}:\n{out}"),
        });
    }
    let run = parse_wrk(&out).map_err(|detail| BenchError::Parse {
        what: what.clone(),
        detail: format!("{detail}:\n{out}"),
    })?;
    if run.requests == 0 || run.non_2xx > 0 {
        return Err(BenchError::WrongAnswer {
            target: name.to_string(),
            detail: format!(
                "{} requests, {} not 2xx/3xx, during the load:\n{out}",
                run.requests, run.non_2xx
            ),
        });
    }
    Ok(run)
}

/// Reads wrk's `--latency` output.
pub fn parse_wrk(out: &str) -> Result<WrkRun, String> {
    let mut run = WrkRun {
        requests_per_sec: f64::NAN,
        requests: 0,
        p50_us: f64::NAN,
        p75_us: f64::NAN,
        p90_us: f64::NAN,
        p99_us: f64::NAN,
        socket_errors: 0,
        non_2xx: 0,
    };
    let mut in_distribution = false;
    for line in out.lines() {
        let line = line.trim();
        if line.starts_with("Latency Distribution") {
            in_distribution = true;
            continue;
        }
        if in_distribution {
            if let Some((pct, value)) = line.split_once(char::is_whitespace) {
                let value = value.trim();
                let slot = match pct {
                    "50%" => Some(&mut run.p50_us),
                    "75%" => Some(&mut run.p75_us),
                    "90%" => Some(&mut run.p90_us),
                    "99%" => Some(&mut run.p99_us),
                    _ => None,
                };
                if let Some(slot) = slot {
                    *slot =
                        parse_duration_us(value).ok_or_else(|| format!("bad latency `{value}`"))?;
                    continue;
                }
            }
            in_distribution = false;
        }
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            run.requests_per_sec = rest
                .trim()
                .parse()
                .map_err(|e| format!("bad Requests/sec `{rest}`: {e}"))?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // connect 0, read 0, write 0, timeout 0
            run.socket_errors = rest
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.non_2xx = rest
                .trim()
                .parse()
                .map_err(|e| format!("bad Non-2xx count `{rest}`: {e}"))?;
        } else if line.contains(" requests in ") {
            run.requests = line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("bad request count in `{line}`"))?;
        }
    }
    if run.requests_per_sec.is_nan() {
        return Err("no Requests/sec line".into());
    }
    if run.p50_us.is_nan() || run.p99_us.is_nan() {
        return Err("no latency distribution (was --latency given?)".into());
    }
    Ok(run)
}

/// `12.34us`, `1.20ms`, `2.00s`, `1.00m` → microseconds.
fn parse_duration_us(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1_000.0,
        "s" => 1_000_000.0,
        "m" => 60_000_000.0,
        "h" => 3_600_000_000.0,
        _ => return None,
    };
    Some(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "Running 2s test @ http://127.0.0.1:40001/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   354.22us  120.01us   5.02ms   91.20%
    Req/Sec    45.12k     1.20k   47.00k    80.00%
  Latency Distribution
     50%  330.00us
     75%  380.00us
     90%  450.00us
     99%    1.02ms
  90012 requests in 2.00s, 20.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:  45003.51
Transfer/sec:     10.00MB
";

    #[test]
    fn wrk_output_is_read() {
        let run = parse_wrk(OUTPUT).unwrap();
        assert_eq!(run.requests, 90012);
        assert!((run.requests_per_sec - 45003.51).abs() < 1e-6);
        assert!((run.p50_us - 330.0).abs() < 1e-6);
        assert!((run.p90_us - 450.0).abs() < 1e-6);
        assert!((run.p99_us - 1020.0).abs() < 1e-6);
        assert_eq!(run.socket_errors, 3);
        assert_eq!(run.non_2xx, 0);
    }

    #[test]
    fn wrk_output_without_latency_is_refused() {
        let text = OUTPUT.replace("Latency Distribution", "Something else");
        assert!(parse_wrk(&text).is_err());
        assert!(parse_wrk("garbage").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_us("12.5us"), Some(12.5));
        assert_eq!(parse_duration_us("2.00s"), Some(2_000_000.0));
        assert_eq!(parse_duration_us("1.5m"), Some(90_000_000.0));
        assert_eq!(parse_duration_us("3x"), None);
        assert_eq!(parse_duration_us("ms"), None);
    }

    #[test]
    fn answers_are_checked() {
        let good = r#"{"pod":"bench-echo","node":"bench-node","site":"bench","method":"GET","path":"/","host":"x"}"#;
        assert!(check_answer("t", good).is_ok());
        assert!(check_answer("t", &good.replace("bench-echo", "other")).is_err());
        assert!(check_answer("t", "<html>").is_err());
    }

    #[test]
    fn options_are_bounded() {
        let mut config = ProxyBenchConfig::quick(PathBuf::from("causeway"));
        assert!(config.check().is_ok());
        config.connections = vec![0];
        assert!(config.check().is_err());
        config.connections = vec![16];
        config.duration = Duration::from_millis(500);
        assert!(config.check().is_err());
    }
}
