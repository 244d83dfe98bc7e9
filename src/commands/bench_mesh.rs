//! `causeway bench proxy`, `causeway bench memory` and `causeway bench http`: the glue of
//! the mesh node's process-level benchmarks (`loadtests/src/proxy_bench.rs`,
//! `memory_bench.rs`, `http_bench.rs`). Options
//! in, a Markdown report out; progress goes to standard error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use causeway_loadtests::harness::{load_average, machine_summary};
use causeway_loadtests::http_bench::{self, HttpBenchConfig};
use causeway_loadtests::memory_bench::{self, MemoryBenchConfig};
use causeway_loadtests::proxy_bench::{self, ProxyBenchConfig};

/// Arguments of `causeway bench proxy`.
#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// A smoke run: 1 round of 2 s at 16 connections, no warm-up (options below still
    /// override).
    #[arg(long)]
    quick: bool,
    /// Rounds; each measures every target once per connection count [default: 3].
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds per measurement [default: 10].
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
    /// Seconds of unrecorded load per target first [default: 2].
    #[arg(long, value_name = "SECS")]
    warmup: Option<u64>,
    /// wrk connection counts, comma-separated [default: 16,64].
    #[arg(long, value_delimiter = ',', value_name = "N,…")]
    connections: Vec<u32>,
    /// wrk threads [default: 1].
    #[arg(long, value_name = "N")]
    wrk_threads: Option<u32>,
    /// HAProxy's nbthread [default: 1].
    #[arg(long, value_name = "N")]
    haproxy_threads: Option<u32>,
    /// One mesh node per entry with that many worker threads, 0 for the default (one per
    /// core) [default: 1,0].
    #[arg(long, value_delimiter = ',', value_name = "N,…")]
    mesh_threads: Vec<usize>,
    /// Keep the run's files (configs, manifests, stores) here.
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Also print every run, not only the medians.
    #[arg(long)]
    runs: bool,
}

/// Arguments of `causeway bench memory`.
#[derive(Debug, clap::Args)]
pub struct MemoryArgs {
    /// A smoke run: 100 Services over 10 Nodes, 1 s idle (options below still override).
    #[arg(long)]
    quick: bool,
    /// Services [default: 1000].
    #[arg(long)]
    services: Option<usize>,
    /// Endpoints per Service [default: 10].
    #[arg(long)]
    endpoints: Option<usize>,
    /// Node objects the endpoints are spread over [default: 50].
    #[arg(long)]
    nodes: Option<usize>,
    /// Manifest files the Services are spread over [default: 10].
    #[arg(long)]
    files: Option<usize>,
    /// Seconds the node idles before it is measured [default: 5].
    #[arg(long, value_name = "SECS")]
    idle: Option<u64>,
    /// Skip the run with the DNS server on.
    #[arg(long)]
    no_dns: bool,
    /// Skip the run restarted from the store without the manifests source.
    #[arg(long)]
    no_from_store: bool,
    /// Keep the run's files (manifests, stores) here.
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
}

/// Arguments of `causeway bench http`.
#[derive(Debug, clap::Args)]
pub struct HttpArgs {
    /// A smoke run: 1 round of 1 s, 2 s of rate-limit and slow-endpoint load (options
    /// below still override).
    #[arg(long)]
    quick: bool,
    /// Rounds of the alternating scenarios (1, 2, 5) [default: 3].
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds per measurement in scenarios 1, 2 and 5 [default: 5].
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
    /// wrk and h2load connections [default: 16].
    #[arg(long, value_name = "N")]
    connections: Option<u32>,
    /// Worker threads of the calling mesh node, 0 for the default (one per core)
    /// [default: 0].
    #[arg(long, value_name = "N")]
    mesh_threads: Option<usize>,
    /// Keep the run's files (configs, manifests, stores) here.
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Also print every run, not only the medians.
    #[arg(long)]
    runs: bool,
}

fn progress(line: &str) {
    eprintln!("bench: {line}");
}

fn binary() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot find the causeway executable to start nodes from")
}

/// Runs `causeway bench proxy`.
pub fn proxy(args: &ProxyArgs) -> anyhow::Result<ExitCode> {
    let binary = binary()?;
    let mut config = if args.quick {
        ProxyBenchConfig::quick(binary)
    } else {
        ProxyBenchConfig::full(binary)
    };
    if let Some(rounds) = args.rounds {
        config.rounds = rounds;
    }
    if let Some(secs) = args.duration {
        config.duration = Duration::from_secs(secs);
    }
    if let Some(secs) = args.warmup {
        config.warmup = Duration::from_secs(secs);
    }
    if !args.connections.is_empty() {
        config.connections = args.connections.clone();
    }
    if let Some(threads) = args.wrk_threads {
        config.wrk_threads = threads;
    }
    if let Some(threads) = args.haproxy_threads {
        config.haproxy_threads = threads;
    }
    if !args.mesh_threads.is_empty() {
        config.mesh_threads = args.mesh_threads.clone();
    }
    config.work_dir = args.work_dir.clone();
    let load_before = load_average();
    let report = proxy_bench::run(&config, &mut |line: &str| progress(line))?;
    let text = format!(
        "Same-node TCP request/response: wrk -t{} --latency, HTTP/1.1 keep-alive GET / to the echo app;\n{} round(s) of {} s per target and connection count, targets alternating.\nmachine: {} (load average {} before, {} after)\nHAProxy: {}  wrk: {}\n\n{}",
        config.wrk_threads,
        config.rounds,
        config.duration.as_secs(),
        machine_summary(),
        load_before,
        load_average(),
        report.haproxy_version,
        report.wrk_version,
        report.markdown()
    );
    print_report(text, args.runs.then(|| report.runs_text()))
}

/// Prints a benchmark's report, with every run after it when asked for.
fn print_report(mut text: String, runs: Option<String>) -> anyhow::Result<ExitCode> {
    if let Some(runs) = runs {
        text.push_str("\nEvery run:\n");
        text.push_str(&runs);
    }
    super::write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `causeway bench http`.
pub fn http(args: &HttpArgs) -> anyhow::Result<ExitCode> {
    let binary = binary()?;
    let mut config = if args.quick {
        HttpBenchConfig::quick(binary)
    } else {
        HttpBenchConfig::full(binary)
    };
    if let Some(rounds) = args.rounds {
        config.rounds = rounds;
    }
    if let Some(secs) = args.duration {
        config.duration = Duration::from_secs(secs);
    }
    if let Some(connections) = args.connections {
        config.connections = connections;
    }
    if let Some(threads) = args.mesh_threads {
        config.mesh_threads = threads;
    }
    config.work_dir = args.work_dir.clone();
    let load_before = load_average();
    let report = http_bench::run(&config, &mut |line: &str| progress(line))?;
    let text = format!(
        "Per-request HTTP (L7) through the mesh; everything on 127.0.0.1.\nmachine: {} (load average {} before, {} after)\nHAProxy: {}  wrk: {}\n\n{}",
        machine_summary(),
        load_before,
        load_average(),
        report.haproxy_version,
        report.wrk_version,
        report.markdown()
    );
    print_report(text, args.runs.then(|| report.runs_text()))
}

/// Runs `causeway bench memory`.
pub fn memory(args: &MemoryArgs) -> anyhow::Result<ExitCode> {
    let binary = binary()?;
    let mut config = if args.quick {
        MemoryBenchConfig::quick(binary)
    } else {
        MemoryBenchConfig::full(binary)
    };
    if let Some(services) = args.services {
        config.services = services;
    }
    if let Some(endpoints) = args.endpoints {
        config.endpoints_per_service = endpoints;
    }
    if let Some(nodes) = args.nodes {
        config.nodes = nodes;
    }
    if let Some(files) = args.files {
        config.files = files;
    }
    if let Some(secs) = args.idle {
        config.idle = Duration::from_secs(secs);
    }
    config.with_dns = !args.no_dns;
    config.from_store = !args.no_from_store;
    config.work_dir = args.work_dir.clone();
    let report = memory_bench::run(&config, &mut |line: &str| progress(line))?;
    let text = format!(
        "Idle `causeway node` memory: {} Services × {} endpoints over {} Nodes; measured after {} s idle.\nmachine: {}\n\n{}",
        config.services,
        config.endpoints_per_service,
        config.nodes,
        config.idle.as_secs(),
        machine_summary(),
        report.markdown()
    );
    super::write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}
