//! `causeway app echo`: the sample app, standing alone.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use causeway_loadtests::echo;

/// Arguments of `causeway app echo`.
#[derive(Debug, clap::Args)]
pub struct EchoArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The pod name it answers with.
    #[arg(long, env = "POD_NAME", default_value = "echo")]
    pod: String,
    /// The node name it answers with.
    #[arg(long, env = "NODE_NAME", default_value = "")]
    node: String,
    /// The site it answers with.
    #[arg(long, env = "SITE_NAME", default_value = "")]
    site: String,
}

/// Serves until Ctrl-C.
pub fn echo(args: &EchoArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let identity = echo::Identity {
            pod: args.pod.clone(),
            node: args.node.clone(),
            site: args.site.clone(),
        };
        let (addr, task) = echo::spawn(args.listen, identity)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        tracing::info!(%addr, pod = %args.pod, "echo app listening");
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")?;
        task.abort();
        Ok(ExitCode::SUCCESS)
    })
}
