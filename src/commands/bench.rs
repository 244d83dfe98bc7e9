//! `causeway bench …`: parse the benchmark's arguments, run it from `causeway-loadtests`
//! on a runtime built here, print its report.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use causeway_loadtests::dns::{self, DnsBenchOptions};

/// Arguments of `causeway bench dns`.
#[derive(Debug, clap::Args)]
pub struct DnsArgs {
    /// Services in the mesh's store (and names in dnsmasq's hosts file).
    #[arg(long, default_value_t = DnsBenchOptions::default().services)]
    services: usize,

    /// Seconds per measured run (fractions allowed).
    #[arg(long, value_name = "SECS", default_value_t = DnsBenchOptions::default().duration.as_secs_f64())]
    duration: f64,

    /// Measured runs per server, alternating mesh and dnsmasq; the report gives medians.
    #[arg(long, default_value_t = DnsBenchOptions::default().runs)]
    runs: usize,

    /// A smoke run, not a measurement: one run of at most 1 s per server, no warm-up.
    #[arg(long)]
    quick: bool,

    /// dnsperf clients (-c).
    #[arg(long, default_value_t = DnsBenchOptions::default().clients)]
    clients: usize,

    /// dnsperf threads (-T).
    #[arg(long, default_value_t = DnsBenchOptions::default().threads)]
    threads: usize,

    /// dnsperf queries outstanding (-q).
    #[arg(long, default_value_t = DnsBenchOptions::default().outstanding)]
    outstanding: usize,

    /// Worker threads of the runtime serving the mesh's DNS.
    #[arg(long, default_value_t = DnsBenchOptions::default().mesh_threads)]
    mesh_threads: usize,

    /// Offered queries/s of the latency pass (the same for both servers).
    #[arg(long, default_value_t = DnsBenchOptions::default().latency_rate)]
    latency_rate: u32,
}

/// Runs the DNS benchmark and prints its report.
pub fn dns(args: &DnsArgs) -> anyhow::Result<ExitCode> {
    let duration = Duration::try_from_secs_f64(args.duration)
        .with_context(|| format!("--duration {} is not a number of seconds", args.duration))?;
    let options = DnsBenchOptions {
        services: args.services,
        duration,
        runs: args.runs,
        clients: args.clients,
        threads: args.threads,
        outstanding: args.outstanding,
        mesh_threads: args.mesh_threads,
        latency_rate: args.latency_rate,
        quick: args.quick,
    };
    // The orchestration (child processes, checks) needs little: one thread. The mesh's
    // server gets a runtime of its own inside the benchmark, sized by --mesh-threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime
        .block_on(dns::run(options))
        .context("the DNS benchmark failed")?;
    super::write_stdout(&report.to_string())?;
    Ok(ExitCode::SUCCESS)
}
