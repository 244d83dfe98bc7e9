//! The DNS benchmark: how many queries per second `dnsperf` gets answered by the mesh's
//! embedded DNS server, against dnsmasq answering the same names with the same
//! addresses, in one run on one machine.
//!
//! The mesh side is the real server ([`causeway_mesh::dns::DnsServer`]) over a real node
//! store ([`MetaManager`] on SQLite in a temporary directory) filled with N ClusterIP
//! Services in the namespace `bench`; it runs in-process on a runtime of its own, so its
//! thread count does not depend on the caller's. The baseline is dnsmasq, started as a
//! child process with a hosts file of the same names and addresses. Before anything is
//! measured, both servers are asked a few names and must give exactly the expected A
//! record. Then `dnsperf` runs with the identical command line (but the port) against
//! each, alternating mesh, dnsmasq, mesh, dnsmasq… so drift on a shared machine falls on
//! both; the report gives medians and their ratio. A last, rate-limited pass per server
//! (the same offered load for both, below either's capacity) gives latency percentiles
//! from dnsperf's per-query output, which costs dnsperf too much CPU to use while
//! measuring throughput. Each run also counts the CPU time the server used (from
//! `/proc`), so the report can give CPU per query: on a small machine where dnsperf
//! needs a core of its own, that says more than queries/s alone.
//!
//! Pieces: `servers` (the two servers and their CPU time), `check` (the answers before
//! measuring), `dnsperf` (the load and what it prints); this file holds the options,
//! the scenario and the report.
//!
//! Network safety: both servers listen on 127.0.0.1 only, dnsperf and the checks send
//! only there, and the mesh server has no upstreams (nothing it is asked is forwarded).
//! Every dnsperf run is bounded in time (`-l`) and in count (`-n`), and is killed if it
//! outlives its bound; dnsmasq is killed when the benchmark ends, however it ends.

mod check;
mod dnsperf;
mod servers;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use causeway_api::manifest;
use causeway_edge_core::metamanager::{MetaManager, StoreError, Update};
use causeway_mesh::dns::{DnsError, DnsStats};
use causeway_yaml::{Severity, Source};
use tokio::process::Command;

use check::verify;
use dnsperf::Load;
use servers::{Cpu, Dnsmasq, MeshServer};

/// What to install when a tool is missing (`dnsmasq-base` is dnsmasq without the system
/// service that the `dnsmasq` package starts on port 53).
pub const INSTALL_HINT: &str = "apt-get install dnsperf dnsmasq-base (or run scripts/install-deps.sh; the full `dnsmasq` package works too)";

/// The namespace the benchmark's Services live in.
pub const NAMESPACE: &str = "bench";

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// The first cluster IP handed out; Service i gets this plus i.
const FIRST_CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
/// The TTL both servers give (the mesh's default cluster TTL).
const TTL: u32 = 5;
/// The most Services: they must fit in 10.96.0.0/12 and in memory without thought.
const MAX_SERVICES: usize = 100_000;
/// The longest measured run.
const MAX_DURATION: Duration = Duration::from_secs(600);
/// The most runs per server.
const MAX_RUNS: usize = 50;
/// dnsperf's own per-query timeout, in seconds (`-t`); queries unanswered after it are lost.
const DNSPERF_TIMEOUT_SECS: u64 = 2;
/// The count bound of a dnsperf run: no more queries than this many per second of its
/// time limit (far above what either server does on a small machine).
const MAX_QPS_BOUND: u64 = 2_000_000;
/// Slack past a dnsperf run's time limit (and its timeout) before it is killed.
const RUN_SLACK: Duration = Duration::from_secs(10);
/// How long a server gets to answer the first check (dnsmasq may still be starting).
const READY_WAIT: Duration = Duration::from_secs(5);
/// How long one check query waits for its answer.
const ANSWER_WAIT: Duration = Duration::from_millis(500);
/// The unmeasured run before the measured ones, per server.
const WARM_UP: Duration = Duration::from_secs(1);
/// The rate-limited pass that measures latency, per server.
const LATENCY_PASS: Duration = Duration::from_secs(3);
/// Per-query lines kept from a latency pass; more is not needed for a p99.
const MAX_LATENCY_SAMPLES: usize = 1_000_000;
/// The name of the mesh server's worker threads, by which their CPU time is found
/// (at most 15 bytes: Linux cuts thread names there).
const MESH_THREAD_NAME: &str = "cw-bench-dns";
/// Clock ticks per second of `/proc/*/stat` times: USER_HZ, 100 on every Linux ABI.
const USER_HZ: u64 = 100;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsBenchOptions {
    /// Services in the store and names in dnsmasq's hosts file; dnsperf asks for each in
    /// turn (A for `svc-<i>.bench.svc.cluster.local`).
    pub services: usize,
    /// The length of one measured dnsperf run.
    pub duration: Duration,
    /// Measured runs per server, alternating mesh and dnsmasq.
    pub runs: usize,
    /// dnsperf `-c`: clients, each with its own socket (source port).
    pub clients: usize,
    /// dnsperf `-T`: dnsperf's threads.
    pub threads: usize,
    /// dnsperf `-q`: queries outstanding at once, over all clients.
    pub outstanding: usize,
    /// Worker threads of the runtime that serves the mesh's DNS.
    pub mesh_threads: usize,
    /// The offered load (queries per second, dnsperf `-Q`) of the latency pass; the same
    /// for both servers, and meant to be below either's capacity.
    pub latency_rate: u32,
    /// A smoke run, not a measurement: runs of at most 1 s, one per server, no warm-up,
    /// a short latency pass.
    pub quick: bool,
}

impl Default for DnsBenchOptions {
    /// 1000 Services, three runs of 10 s per server. dnsperf: one thread, four clients,
    /// 100 queries outstanding; the mesh: one worker thread. On the 2-core machines this
    /// project runs on, dnsperf keeps about one core busy to load either server, which
    /// leaves one core for the server under test — the same for dnsmasq, which is
    /// single-threaded. The mesh serves its one UDP socket from one task, so a second
    /// worker adds nothing there: measured, 4.1–4.4 µs of server CPU per query with one
    /// worker or two (`docs/benchmarks.md`). `mesh_threads` changes it for bigger
    /// machines.
    fn default() -> Self {
        Self {
            services: 1000,
            duration: Duration::from_secs(10),
            runs: 3,
            clients: 4,
            threads: 1,
            outstanding: 100,
            mesh_threads: 1,
            latency_rate: 10_000,
            quick: false,
        }
    }
}

impl DnsBenchOptions {
    /// The options with `quick` applied: what actually runs.
    pub fn effective(&self) -> Self {
        let mut out = self.clone();
        if out.quick {
            out.duration = out.duration.min(Duration::from_secs(1));
            out.runs = 1;
        }
        out
    }

    fn validate(&self) -> Result<(), DnsBenchError> {
        let bad = |what: String| Err(DnsBenchError::Options(what));
        if !(1..=MAX_SERVICES).contains(&self.services) {
            return bad(format!(
                "services must be between 1 and {MAX_SERVICES}, not {}",
                self.services
            ));
        }
        if self.duration < Duration::from_millis(100) || self.duration > MAX_DURATION {
            return bad(format!(
                "duration must be between 0.1 s and {} s, not {:?}",
                MAX_DURATION.as_secs(),
                self.duration
            ));
        }
        if !(1..=MAX_RUNS).contains(&self.runs) {
            return bad(format!(
                "runs must be between 1 and {MAX_RUNS}, not {}",
                self.runs
            ));
        }
        if !(1..=256).contains(&self.clients) {
            return bad(format!(
                "clients must be between 1 and 256, not {}",
                self.clients
            ));
        }
        if self.threads == 0 || self.threads > self.clients {
            return bad(format!(
                "threads must be between 1 and clients ({}), not {}",
                self.clients, self.threads
            ));
        }
        if !(1..=65_535).contains(&self.outstanding) {
            return bad(format!(
                "outstanding must be between 1 and 65535, not {}",
                self.outstanding
            ));
        }
        if !(1..=64).contains(&self.mesh_threads) {
            return bad(format!(
                "mesh threads must be between 1 and 64, not {}",
                self.mesh_threads
            ));
        }
        if !(1..=1_000_000).contains(&self.latency_rate) {
            return bad(format!(
                "latency rate must be between 1 and 1000000 queries/s, not {}",
                self.latency_rate
            ));
        }
        Ok(())
    }

    /// The `causeway` command line that runs these options.
    pub fn command_line(&self) -> String {
        let defaults = Self::default();
        let mut out = format!(
            "cargo run --release -- bench dns --services {} --duration {} --runs {}",
            self.services,
            seconds(self.duration),
            self.runs
        );
        let mut flag = |name: &str, value: String, default: String| {
            if value != default {
                out.push_str(&format!(" --{name} {value}"));
            }
        };
        flag(
            "clients",
            self.clients.to_string(),
            defaults.clients.to_string(),
        );
        flag(
            "threads",
            self.threads.to_string(),
            defaults.threads.to_string(),
        );
        flag(
            "outstanding",
            self.outstanding.to_string(),
            defaults.outstanding.to_string(),
        );
        flag(
            "mesh-threads",
            self.mesh_threads.to_string(),
            defaults.mesh_threads.to_string(),
        );
        flag(
            "latency-rate",
            self.latency_rate.to_string(),
            defaults.latency_rate.to_string(),
        );
        if self.quick {
            out.push_str(" --quick");
        }
        out
    }
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum DnsBenchError {
    /// A tool the benchmark drives is not installed.
    #[error(
        "{tool} is not installed (looked in PATH, /usr/sbin and /sbin); install it with: {INSTALL_HINT}"
    )]
    MissingTool {
        /// `dnsperf` or `dnsmasq`.
        tool: &'static str,
    },
    /// The options are out of range.
    #[error("invalid DNS benchmark options: {0}")]
    Options(String),
    /// A file or directory of the run could not be written, or a process not started.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The generated Services did not decode (a bug in this module).
    #[error("the generated Services do not decode: {0}")]
    Manifest(String),
    /// The node store refused the Services.
    #[error("cannot fill the node store: {0}")]
    Store(#[from] StoreError),
    /// The mesh DNS server did not start.
    #[error("the mesh DNS server did not start: {0}")]
    Dns(#[from] DnsError),
    /// dnsmasq exited while it should be serving.
    #[error("dnsmasq exited ({status}); its output:\n{output}")]
    DnsmasqExited {
        /// How it exited.
        status: String,
        /// What it wrote.
        output: String,
    },
    /// A server answered a check wrongly, or not at all.
    #[error("{server} answered {name} wrongly: {problem}")]
    WrongAnswer {
        /// `mesh` or `dnsmasq`.
        server: &'static str,
        /// The name asked.
        name: String,
        /// What was wrong.
        problem: String,
    },
    /// dnsperf failed or printed what this module cannot read.
    #[error("dnsperf against {server} failed: {problem}")]
    Dnsperf {
        /// `mesh` or `dnsmasq`.
        server: &'static str,
        /// What went wrong, with dnsperf's output.
        problem: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DnsBenchError {
    let what = what.into();
    move |source| DnsBenchError::Io { what, source }
}

/// Latency percentiles of one latency pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// The queries whose latency was read.
    pub samples: usize,
    /// The median.
    pub p50: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The slowest.
    pub max: Duration,
}

/// What dnsperf reported for one run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DnsperfRun {
    /// Queries sent.
    pub sent: u64,
    /// Queries answered.
    pub completed: u64,
    /// Queries not answered within dnsperf's timeout.
    pub lost: u64,
    /// Answers with NOERROR.
    pub noerror: u64,
    /// Queries answered per second.
    pub qps: f64,
    /// The mean latency.
    pub average_latency: Duration,
    /// The latencies' standard deviation.
    pub latency_stddev: Duration,
    /// CPU time the server used during the run (from `/proc`; for the mesh, its
    /// runtime's worker threads only), when it could be read.
    pub server_cpu: Option<CpuTime>,
    /// How long the run took, as seen from here (dnsperf's start to its exit).
    pub wall: Duration,
}

/// CPU time, split as the kernel accounts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTime {
    /// In user space.
    pub user: Duration,
    /// In the kernel (system calls, and the loopback network path they run).
    pub system: Duration,
}

impl CpuTime {
    /// User and system together.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// The time from `earlier` to `self`; `None` if a counter went back.
    pub fn since(&self, earlier: &CpuTime) -> Option<CpuTime> {
        Some(CpuTime {
            user: self.user.checked_sub(earlier.user)?,
            system: self.system.checked_sub(earlier.system)?,
        })
    }
}

impl DnsperfRun {
    /// The server's CPU time per answered query.
    pub fn cpu_per_query(&self) -> Option<Duration> {
        let cpu = self.server_cpu?.total();
        let completed = u32::try_from(self.completed).ok().filter(|c| *c > 0)?;
        Some(cpu / completed)
    }

    /// The share of the server's CPU time spent in the kernel.
    pub fn kernel_share(&self) -> Option<f64> {
        let cpu = self.server_cpu?;
        let total = cpu.total().as_secs_f64();
        (total > 0.0).then_some(cpu.system.as_secs_f64() / total)
    }

    /// The server's CPU use in cores (1.0: one core busy the whole run).
    pub fn cores(&self) -> Option<f64> {
        let wall = self.wall.as_secs_f64();
        (wall > 0.0).then_some(self.server_cpu?.total().as_secs_f64() / wall)
    }
}

/// Everything measured of one server.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerResult {
    /// The measured runs, in order.
    pub runs: Vec<DnsperfRun>,
    /// The latency pass at the same offered load for both servers.
    pub latency: Option<Percentiles>,
    /// Names whose answers were checked before measuring.
    pub verified: Vec<String>,
}

impl ServerResult {
    /// The median of the runs' queries per second.
    pub fn median_qps(&self) -> f64 {
        median(self.runs.iter().map(|r| r.qps).collect())
    }

    /// The median of the runs' mean latencies.
    pub fn median_average_latency(&self) -> Duration {
        Duration::from_secs_f64(median(
            self.runs
                .iter()
                .map(|r| r.average_latency.as_secs_f64())
                .collect(),
        ))
    }

    /// The median of the runs' server CPU time per answered query.
    pub fn median_cpu_per_query(&self) -> Option<Duration> {
        let values: Option<Vec<f64>> = self
            .runs
            .iter()
            .map(|r| r.cpu_per_query().map(|d| d.as_secs_f64()))
            .collect();
        values
            .filter(|v| !v.is_empty())
            .map(|v| Duration::from_secs_f64(median(v)))
    }

    /// The median of the runs' kernel share of server CPU time.
    pub fn median_kernel_share(&self) -> Option<f64> {
        let values: Option<Vec<f64>> = self.runs.iter().map(DnsperfRun::kernel_share).collect();
        values.filter(|v| !v.is_empty()).map(median)
    }

    /// The median of the runs' server CPU use, in cores.
    pub fn median_cores(&self) -> Option<f64> {
        let values: Option<Vec<f64>> = self.runs.iter().map(DnsperfRun::cores).collect();
        values.filter(|v| !v.is_empty()).map(median)
    }

    /// Queries lost over all runs.
    pub fn lost(&self) -> u64 {
        self.runs.iter().map(|r| r.lost).sum()
    }

    /// Queries sent over all runs.
    pub fn sent(&self) -> u64 {
        self.runs.iter().map(|r| r.sent).sum()
    }

    /// Answers other than NOERROR over all runs.
    pub fn not_noerror(&self) -> u64 {
        self.runs
            .iter()
            .map(|r| r.completed.saturating_sub(r.noerror))
            .sum()
    }
}

/// The outcome: both servers' results and how they were obtained.
#[derive(Debug, Clone)]
pub struct DnsBenchReport {
    /// The options that ran (with `quick` applied).
    pub options: DnsBenchOptions,
    /// The mesh's DNS server.
    pub mesh: ServerResult,
    /// dnsmasq.
    pub dnsmasq: ServerResult,
    /// The mesh server's own counters at the end (received, answered, dropped).
    pub mesh_stats: DnsStats,
    /// `dnsmasq <version>`.
    pub dnsmasq_version: String,
    /// `dnsperf <version>`.
    pub dnsperf_version: String,
    /// The dnsperf arguments of a measured run, `<port>` for the port.
    pub dnsperf_command: String,
    /// Whether this code was built with optimizations (a debug build measures nothing).
    pub optimized: bool,
}

impl DnsBenchReport {
    /// The mesh's median queries per second over dnsmasq's.
    pub fn ratio(&self) -> f64 {
        let base = self.dnsmasq.median_qps();
        if base > 0.0 {
            self.mesh.median_qps() / base
        } else {
            0.0
        }
    }
}

impl fmt::Display for DnsBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "DNS: mesh DNS vs {} — {} Services, {} run(s) of {} s per server, alternating",
            self.dnsmasq_version,
            o.services,
            o.runs,
            seconds(o.duration)
        )?;
        if o.quick {
            writeln!(f, "  (--quick: a smoke run, not a measurement)")?;
        }
        if !self.optimized {
            writeln!(f, "  (debug build: not a measurement; use --release)")?;
        }
        writeln!(
            f,
            "  load ({}): {}",
            self.dnsperf_version, self.dnsperf_command
        )?;
        writeln!(
            f,
            "  mesh server: {} worker thread(s), in-process; machine: {} CPU(s)",
            o.mesh_threads,
            std::thread::available_parallelism().map_or(0, usize::from)
        )?;
        writeln!(f)?;
        let row = |f: &mut fmt::Formatter<'_>, label: &str, mesh: String, dnsmasq: String| {
            writeln!(f, "  {label:<26} {mesh:>20} {dnsmasq:>20}")
        };
        row(f, "", "mesh".into(), "dnsmasq".into())?;
        row(
            f,
            "queries/s (median)",
            format!("{:.0}", self.mesh.median_qps()),
            format!("{:.0}", self.dnsmasq.median_qps()),
        )?;
        let runs = |r: &ServerResult| {
            r.runs
                .iter()
                .map(|r| format!("{:.0}k", r.qps / 1000.0))
                .collect::<Vec<_>>()
                .join(" ")
        };
        row(f, "  each run", runs(&self.mesh), runs(&self.dnsmasq))?;
        row(
            f,
            "mean latency (median)",
            millis(self.mesh.median_average_latency()),
            millis(self.dnsmasq.median_average_latency()),
        )?;
        let cpu = |r: &ServerResult| {
            r.median_cpu_per_query().map_or("-".to_string(), |d| {
                format!("{:.2} µs", d.as_secs_f64() * 1e6)
            })
        };
        row(
            f,
            "server CPU/query (median)",
            cpu(&self.mesh),
            cpu(&self.dnsmasq),
        )?;
        let kernel = |r: &ServerResult| {
            r.median_kernel_share()
                .map_or("-".to_string(), |k| format!("{:.0}%", k * 100.0))
        };
        row(
            f,
            "  of it in the kernel",
            kernel(&self.mesh),
            kernel(&self.dnsmasq),
        )?;
        let cores = |r: &ServerResult| {
            r.median_cores()
                .map_or("-".to_string(), |c| format!("{c:.2}"))
        };
        row(
            f,
            "server cores busy (median)",
            cores(&self.mesh),
            cores(&self.dnsmasq),
        )?;
        let label = format!("p50 / p99 at {} q/s", o.latency_rate);
        let pct = |r: &ServerResult| {
            r.latency.map_or("-".to_string(), |p| {
                format!("{} / {}", millis(p.p50), millis(p.p99))
            })
        };
        row(f, &label, pct(&self.mesh), pct(&self.dnsmasq))?;
        let lost = |r: &ServerResult| format!("{} of {}", r.lost(), r.sent());
        row(f, "lost queries", lost(&self.mesh), lost(&self.dnsmasq))?;
        row(
            f,
            "answers not NOERROR",
            self.mesh.not_noerror().to_string(),
            self.dnsmasq.not_noerror().to_string(),
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "  ratio mesh/dnsmasq (medians): {:.2}  (goal ≥ 1.5)",
            self.ratio()
        )?;
        writeln!(
            f,
            "  answers checked before measuring: {} name(s) on each server: {}",
            self.mesh.verified.len().min(self.dnsmasq.verified.len()),
            self.mesh.verified.join(", ")
        )?;
        let s = &self.mesh_stats;
        writeln!(
            f,
            "  mesh counters: {} received, {} answered from the cluster ({} from the answer cache), {} dropped",
            s.queries, s.cluster, s.cluster_cached, s.dropped
        )?;
        writeln!(f, "  reproduce: {}", o.command_line())
    }
}

/// Runs the benchmark: fills a store, starts both servers, checks their answers, runs
/// dnsperf against each in turn, and stops everything.
pub async fn run(options: DnsBenchOptions) -> Result<DnsBenchReport, DnsBenchError> {
    let options = options.effective();
    options.validate()?;
    let dnsperf = find_tool("dnsperf").ok_or(DnsBenchError::MissingTool { tool: "dnsperf" })?;
    let dnsmasq = find_tool("dnsmasq").ok_or(DnsBenchError::MissingTool { tool: "dnsmasq" })?;
    let dnsperf_version = version_line(&dnsperf, &["-h"], "Version ", "dnsperf").await;
    let dnsmasq_version =
        version_line(&dnsmasq, &["--version"], "Dnsmasq version ", "dnsmasq").await;

    let dir = TempDir::create()?;
    let names: Vec<(String, Ipv4Addr)> = (0..options.services)
        .map(|i| (service_name(i), cluster_ip(i)))
        .collect();
    let queries = dir.path().join("queries.txt");
    let mut text = String::new();
    for (name, _) in &names {
        text.push_str(&format!("{name} A\n"));
    }
    std::fs::write(&queries, text).map_err(io("cannot write dnsperf's query file"))?;

    // The mesh: a real store, a real server, on a runtime of its own.
    let store = MetaManager::open(&dir.path().join("node.db"))?;
    fill_store(&store, options.services).await?;
    let mesh = MeshServer::start(options.mesh_threads, store).await?;
    tracing::info!(addr = %mesh.addr, services = options.services, "mesh DNS ready");

    // The baseline.
    let mut dnsmasq = Dnsmasq::start(&dnsmasq, dir.path(), &names).await?;
    tracing::info!(addr = %dnsmasq.addr, "dnsmasq started");

    let checks = check_names(&names);
    let mut mesh_result = ServerResult {
        verified: verify("mesh", mesh.addr, &checks, None).await?,
        ..ServerResult::default()
    };
    let mut dnsmasq_result = ServerResult {
        verified: verify("dnsmasq", dnsmasq.addr, &checks, Some(&mut dnsmasq)).await?,
        ..ServerResult::default()
    };

    let mesh_cpu = Cpu::MeshThreads;
    let dnsmasq_cpu = dnsmasq.cpu();
    let load = Load {
        dnsperf: &dnsperf,
        queries: &queries,
        options: &options,
        services: options.services,
    };
    if !options.quick {
        for (server, addr, cpu) in [
            ("mesh", mesh.addr, mesh_cpu),
            ("dnsmasq", dnsmasq.addr, dnsmasq_cpu),
        ] {
            tracing::info!(server, "warm-up");
            load.throughput(server, addr, cpu, WARM_UP).await?;
        }
    }
    for run in 0..options.runs {
        for (server, addr, cpu, result) in [
            ("mesh", mesh.addr, mesh_cpu, &mut mesh_result),
            ("dnsmasq", dnsmasq.addr, dnsmasq_cpu, &mut dnsmasq_result),
        ] {
            dnsmasq.check_alive()?;
            let measured = load.throughput(server, addr, cpu, options.duration).await?;
            tracing::info!(
                server,
                run = run + 1,
                qps = measured.qps as u64,
                lost = measured.lost,
                "measured"
            );
            result.runs.push(measured);
        }
    }
    let pass = if options.quick {
        Duration::from_millis(500)
    } else {
        LATENCY_PASS
    };
    for (server, addr, result) in [
        ("mesh", mesh.addr, &mut mesh_result),
        ("dnsmasq", dnsmasq.addr, &mut dnsmasq_result),
    ] {
        result.latency = load.latency(server, addr, pass).await?;
    }
    dnsmasq.check_alive()?;
    let mesh_stats = mesh.handler.stats();
    mesh.stop().await;
    dnsmasq.stop().await;

    Ok(DnsBenchReport {
        dnsperf_command: format!(
            "dnsperf {}",
            load.arguments("<port>", "<queries>", options.duration, None)
                .join(" ")
        ),
        options,
        mesh: mesh_result,
        dnsmasq: dnsmasq_result,
        mesh_stats,
        dnsmasq_version,
        dnsperf_version,
        optimized: !cfg!(debug_assertions),
    })
}

/// `svc-<i>.bench.svc.cluster.local`.
fn service_name(i: usize) -> String {
    format!("svc-{i}.{NAMESPACE}.svc.cluster.local")
}

/// Service i's cluster IP: 10.96.0.1 + i, inside 10.96.0.0/12 for every allowed i.
fn cluster_ip(i: usize) -> Ipv4Addr {
    let offset = u32::try_from(i).unwrap_or(u32::MAX);
    Ipv4Addr::from(u32::from(FIRST_CLUSTER_IP).saturating_add(offset))
}

/// The first, middle and last names.
fn check_names(names: &[(String, Ipv4Addr)]) -> Vec<(String, Ipv4Addr)> {
    let mut picks = vec![0, names.len() / 2, names.len().saturating_sub(1)];
    picks.dedup();
    picks
        .into_iter()
        .filter_map(|i| names.get(i).cloned())
        .collect()
}

/// Writes the Services into the store through its apply API, as a source would.
async fn fill_store(store: &MetaManager, services: usize) -> Result<(), DnsBenchError> {
    let mut yaml = String::new();
    for i in 0..services {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}, namespace: {NAMESPACE}}}\n\
             spec:\n  type: ClusterIP\n  clusterIP: {}\n  ports: [{{name: http, port: 80}}]\n",
            cluster_ip(i)
        ));
    }
    let decoded = manifest::decode(&Source::new("bench-services.yaml", yaml));
    if let Some(error) = decoded
        .diagnostics
        .iter()
        .find(|d| d.severity == Severity::Error)
    {
        return Err(DnsBenchError::Manifest(error.message.clone()));
    }
    if decoded.objects.len() != services {
        return Err(DnsBenchError::Manifest(format!(
            "{} objects decoded from {services} Services",
            decoded.objects.len()
        )));
    }
    let updates = decoded
        .objects
        .into_iter()
        .map(|(object, _)| Update::Put(object))
        .collect();
    let stats = store.apply("bench", updates).await?;
    let snapshot = store.snapshot();
    if stats.written != services || snapshot.services().count() != services {
        return Err(DnsBenchError::Manifest(format!(
            "{} of {services} Services stored",
            snapshot.services().count()
        )));
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// `10` for whole seconds, `0.5` otherwise.
fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        let text = format!("{:.3}", d.as_secs_f64());
        text.trim_end_matches('0').to_string()
    }
}

fn millis(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// `name` in PATH, or in the sbin directories a non-root PATH often lacks.
fn find_tool(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Whether both tools the benchmark drives are installed.
pub fn tools_installed() -> Result<(), DnsBenchError> {
    find_tool("dnsperf").ok_or(DnsBenchError::MissingTool { tool: "dnsperf" })?;
    find_tool("dnsmasq").ok_or(DnsBenchError::MissingTool { tool: "dnsmasq" })?;
    Ok(())
}

/// `<tool> <version>`, read from the first line of the tool's output that starts with
/// `prefix`; just the tool's name when there is none.
async fn version_line(program: &Path, args: &[&str], prefix: &str, tool: &str) -> String {
    let fallback = tool.to_string();
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let Ok(Ok(output)) = tokio::time::timeout(Duration::from_secs(5), output).await else {
        return fallback;
    };
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .map_or(fallback, |version| format!("{tool} {version}"))
}

/// A directory of the run's files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> Result<Self, DnsBenchError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("causeway-dnsbench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(io(format!("cannot create {}", path.display())))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_names_and_addresses() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(cluster_ip(0), Ipv4Addr::new(10, 96, 0, 1));
        assert_eq!(cluster_ip(300), Ipv4Addr::new(10, 96, 1, 45));
        assert_eq!(
            cluster_ip(MAX_SERVICES - 1),
            Ipv4Addr::new(10, 97, 134, 160)
        );
        assert_eq!(service_name(7), "svc-7.bench.svc.cluster.local");
        assert_eq!(seconds(Duration::from_secs(10)), "10");
        assert_eq!(seconds(Duration::from_millis(500)), "0.5");
    }

    #[test]
    fn quick_caps_the_runs_and_options_are_checked() {
        let quick = DnsBenchOptions {
            quick: true,
            ..DnsBenchOptions::default()
        }
        .effective();
        assert_eq!((quick.runs, quick.duration), (1, Duration::from_secs(1)));
        assert!(DnsBenchOptions::default().validate().is_ok());
        let bad = DnsBenchOptions {
            threads: 8,
            clients: 4,
            ..DnsBenchOptions::default()
        };
        assert!(bad.validate().is_err());
        assert_eq!(
            DnsBenchOptions::default().command_line(),
            "cargo run --release -- bench dns --services 1000 --duration 10 --runs 3"
        );
    }
}
