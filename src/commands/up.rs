//! `causeway up [FILE] [--tour]`: the quick start — a whole cluster on loopback.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use causeway_loadtests::cluster::LoopbackCluster;
use causeway_loadtests::topology::Topology;
use causeway_loadtests::tour;

/// Arguments of `causeway up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// A topology file (`kind: Topology`); default: the built-in quick start
    /// (examples/quickstart.yaml).
    #[arg(value_name = "FILE")]
    topology: Option<PathBuf>,

    /// Run the scripted tour, print each step, and exit: 0 when everything behaved.
    #[arg(long)]
    tour: bool,

    /// Where the nodes keep their stores, identities and manifests; default: a new
    /// directory under the system's temporary directory.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Override the topology's basePort (0: free ports).
    #[arg(long, value_name = "PORT")]
    base_port: Option<u16>,
}

/// Starts the cluster; runs the tour or waits for Ctrl-C.
pub fn up(args: &UpArgs) -> anyhow::Result<ExitCode> {
    let mut topology = match &args.topology {
        Some(path) => Topology::load(path)?,
        None => Topology::quickstart()?,
    };
    if let Some(port) = args.base_port {
        topology.base_port = port;
    }
    let root = match &args.state_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("causeway-up-{}", std::process::id())),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let mut cluster = LoopbackCluster::start(topology, &root)
            .await
            .context("the quick-start cluster failed to start")?;
        super::write_stdout(&format!("Causeway is up.\n\n{}", cluster.summary()))?;
        // Whatever happens — the tour fails, errs, or Ctrl-C — the nodes are stopped
        // and the temporary state (node keys among it) is removed.
        let outcome: anyhow::Result<ExitCode> = if args.tour {
            let mut print = |line: &str| {
                let _ = super::write_stdout(&format!("{line}\n"));
            };
            tokio::select! {
                report = tour::run(&mut cluster, &mut print) => match report {
                    Ok(report) => {
                        let verdict = if report.ok() {
                            format!("\nTour passed: {} checks held.\n", report.passed)
                        } else {
                            format!(
                                "\nTour FAILED: {} of {} checks did not hold:\n  - {}\n",
                                report.failed.len(),
                                report.passed + report.failed.len(),
                                report.failed.join("\n  - ")
                            )
                        };
                        super::write_stdout(&verdict)
                            .map(|()| if report.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
                    }
                    Err(error) => Err(anyhow::Error::new(error).context("the tour could not go on")),
                },
                _ = tokio::signal::ctrl_c() => {
                    super::write_stdout("\nInterrupted.\n").map(|()| ExitCode::from(130))
                }
            }
        } else {
            super::write_stdout("\nRunning; Ctrl-C stops every node. Node logs: RUST_LOG=info causeway up\n")
                .and(
                    tokio::signal::ctrl_c()
                        .await
                        .context("cannot wait for Ctrl-C"),
                )
                .map(|()| ExitCode::SUCCESS)
        };
        cluster.shutdown().await;
        if args.state_dir.is_none() {
            let _ = std::fs::remove_dir_all(&root);
        }
        outcome
    })
}
