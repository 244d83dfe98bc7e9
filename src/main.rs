//! `causeway`: the one binary that runs every role of Causeway.
//!
//! This file parses arguments and dispatches; the work lives in the library crates, and
//! the thin glue per command in `commands/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod logging;

/// Causeway, an edge service mesh: Kubernetes services, carried out to edge sites behind
/// NAT and weak links.
#[derive(Debug, Parser)]
#[command(name = "causeway", version, propagate_version = true)]
struct Cli {
    /// Log format on standard error. The level comes from RUST_LOG (default `info`).
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text, env = "CAUSEWAY_LOG_FORMAT")]
    log_format: logging::LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The quick start: a cloud node and edge sites with sample apps, on this machine.
    Up(commands::up::UpArgs),
    /// Run one mesh node.
    Node(Box<commands::node::NodeArgs>),
    /// Make the node CA and node identities.
    Certs {
        #[command(subcommand)]
        command: commands::node::CertsCommand,
    },
    /// Sample apps.
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Work with operator traffic policy (TrafficPolicy and Istio DestinationRule YAML).
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Load tests and benchmarks, each against a baseline measured in the same run.
    ///
    /// `causeway bench --profile ci|full` runs the declared scenarios (load balancing,
    /// failover, rate limits, hashing, overhead) and writes a report with plots; the
    /// subcommands run the mesh's single benchmarks.
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        #[command(subcommand)]
        command: Option<BenchCommand>,
        #[command(flatten)]
        suite: commands::bench_suite::SuiteArgs,
    },
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// The sample app: HTTP (and h2c, gRPC, WebSocket) answering with its pod, node and
    /// site as JSON; optional raw TCP and UDP echo listeners; faults on purpose.
    Echo(commands::app::EchoArgs),
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate policy YAML: every error with file:line:column, field path and a fix.
    ///
    /// Exits 0 when there are no errors (warnings allowed), 1 when there are errors.
    Check(commands::policy::CheckArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// DNS queries/s: dnsperf against the mesh's DNS server and against dnsmasq answering
    /// the same names, alternating runs, medians and their ratio. Needs dnsperf and
    /// dnsmasq (`apt-get install dnsperf dnsmasq-base`); sends only to 127.0.0.1.
    Dns(commands::bench::DnsArgs),
    /// Same-node TCP request/response through the mesh, against direct and HAProxy (wrk).
    Proxy(commands::bench_mesh::ProxyArgs),
    /// Resident memory of an idle node with many Services and endpoints loaded.
    Memory(commands::bench_mesh::MemoryArgs),
    /// Per-request HTTP (L7): HTTP/1.1 against direct and HAProxy (wrk), h2c (h2load),
    /// rate-limit accuracy, a slow endpoint (RoundRobin vs PeakEwma), cross-node.
    Http(commands::bench_mesh::HttpArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Five nodes logging at `info` would bury the quick start's own report.
    // The access log (one line per HTTP request, target `access`) is off unless asked
    // for, with `--access-log` or in RUST_LOG.
    let default_level = match &cli.command {
        Command::Up(_) => "error",
        Command::Node(args) if args.access_log => "info",
        _ => "info,access=off",
    };
    logging::init(cli.log_format, default_level);
    let result = match cli.command {
        Command::Up(args) => commands::up::up(&args),
        Command::Node(args) => commands::node::node(&args),
        Command::Certs { command } => commands::node::certs(&command),
        Command::App {
            command: AppCommand::Echo(args),
        } => commands::app::echo(&args),
        Command::Policy {
            command: PolicyCommand::Check(args),
        } => commands::policy::check(&args),
        Command::Bench {
            command: Some(command),
            ..
        } => match command {
            BenchCommand::Dns(args) => commands::bench::dns(&args),
            BenchCommand::Proxy(args) => commands::bench_mesh::proxy(&args),
            BenchCommand::Memory(args) => commands::bench_mesh::memory(&args),
            BenchCommand::Http(args) => commands::bench_mesh::http(&args),
        },
        Command::Bench {
            command: None,
            suite,
        } if suite.given() => commands::bench_suite::run(&suite),
        Command::Bench { command: None, .. } => {
            use clap::CommandFactory as _;
            let mut cli = Cli::command();
            let help = cli
                .find_subcommand_mut("bench")
                .map(|bench| bench.render_help().to_string())
                .unwrap_or_default();
            eprintln!("{help}\nGive --profile ci|full, or a subcommand.");
            Ok(ExitCode::from(2))
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "causeway failed");
            ExitCode::from(2)
        }
    }
}
