//! `causeway node`: one mesh node, and `causeway certs`: the identities nodes need.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use causeway_mesh::dns::{DnsConfig, SYSTEM_RESOLV_CONF};
use causeway_mesh::node::{MeshNode, NodeConfig, ServiceListener};
use causeway_tunnels::{
    CertificateAuthority, IdentityFiles, IdentitySource, NodeName, RelayPeer, Validity,
};

/// A listen address, or `off`.
#[derive(Debug, Clone, Copy)]
pub struct Listen(Option<SocketAddr>);

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "off" {
            return Ok(Self(None));
        }
        text.parse()
            .map(|a| Self(Some(a)))
            .map_err(|e| format!("`{text}`: expected address:port or `off` ({e})"))
    }
}

/// A relay: `name=address:port`.
#[derive(Debug, Clone)]
pub struct Relay(RelayPeer);

impl std::str::FromStr for Relay {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (name, addr) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}`: expected node-name=address:port"))?;
        let node = NodeName::new(name).map_err(|e| format!("`{name}`: {e}"))?;
        let addr = addr
            .parse()
            .map_err(|e| format!("`{addr}`: not an address:port ({e})"))?;
        Ok(Self(RelayPeer {
            node,
            addresses: vec![addr],
        }))
    }
}

/// Arguments of `causeway node`.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// The node's name; its certificate must name it.
    #[arg(long)]
    name: String,
    /// The node's site.
    #[arg(long)]
    site: Option<String>,
    /// Where the node keeps its store (node.db).
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,
    /// The node's identity: ca.pem, node.pem, node-key.pem (see `causeway certs`).
    #[arg(long, value_name = "DIR")]
    identity_dir: PathBuf,
    /// A directory of Kubernetes YAML to load and watch (Services, EndpointSlices,
    /// Endpoints, Pods, Nodes, policies). Without it the node serves from its store.
    #[arg(long, value_name = "DIR")]
    manifests: Option<PathBuf>,
    /// The tunnel endpoint (UDP).
    #[arg(long, default_value = "0.0.0.0:7443")]
    tunnel_listen: SocketAddr,
    /// A relay this node may use, `name=address:port` (repeatable).
    #[arg(long = "relay", value_name = "NAME=ADDR")]
    relays: Vec<Relay>,
    /// Forward sessions between other nodes (a cloud node with a public address).
    #[arg(long)]
    serve_as_relay: bool,
    /// The HTTP proxy (CONNECT and absolute URIs), or `off`.
    #[arg(long, default_value = "127.0.0.1:15080")]
    http_proxy: Listen,
    /// SOCKS5, or `off`.
    #[arg(long, default_value = "127.0.0.1:15081")]
    socks: Listen,
    /// The admin endpoint (/ready, /metrics, /config_dump), or `off`.
    #[arg(long, default_value = "127.0.0.1:15090")]
    admin: Listen,
    /// The DNS server (UDP and TCP on one port), or `off`.
    #[arg(long, default_value = "off")]
    dns: Listen,
    /// Upstream resolvers for names outside the cluster (repeatable); default: those of
    /// /etc/resolv.conf.
    #[arg(long = "dns-upstream", value_name = "ADDR")]
    dns_upstreams: Vec<SocketAddr>,
    /// A per-Service listener, `namespace/name:port=address:port` (repeatable).
    #[arg(long = "service", value_name = "SVC=ADDR")]
    services: Vec<ServiceListener>,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Seconds between checks of the manifests directory.
    #[arg(long, default_value_t = 2)]
    manifests_interval: u64,
    /// Let the HTTP proxy, SOCKS5, per-Service listeners, DNS and admin listen beyond
    /// loopback. They authenticate nobody: whoever reaches them reaches every Service.
    #[arg(long)]
    allow_remote_clients: bool,
    /// Dial endpoints on loopback addresses (pods that run on this node's loopback, as in
    /// tests and benchmarks). Off, an EndpointSlice cannot aim the mesh at the node's own
    /// loopback services.
    #[arg(long)]
    allow_loopback_endpoints: bool,
    /// The header that tells HTTP applications who called them:
    /// `x-forwarded-for`, `forwarded` (RFC 7239) or `none`.
    #[arg(long, value_name = "HEADER", default_value = "x-forwarded-for")]
    forwarded_header: causeway_mesh::http::headers::ForwardedHeader,
    /// Log one structured line per HTTP request (tracing target `access`).
    #[arg(long)]
    pub access_log: bool,
    /// Async worker threads; default: one per core.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
}

/// Runs a node until Ctrl-C or SIGTERM.
pub fn node(args: &NodeArgs) -> anyhow::Result<ExitCode> {
    let mut config = NodeConfig::new(
        &args.name,
        args.state_dir.clone(),
        IdentitySource::Files(IdentityFiles::in_dir(&args.identity_dir)),
        args.tunnel_listen,
    );
    config.site = args.site.clone();
    config.manifests = args.manifests.clone();
    config.manifests_interval = Duration::from_secs(args.manifests_interval.max(1));
    config.tunnel.relays = args.relays.iter().map(|r| r.0.clone()).collect();
    config.tunnel.serve_as_relay = args.serve_as_relay;
    config.http_proxy = args.http_proxy.0;
    config.socks = args.socks.0;
    config.admin = args.admin.0;
    config.service_listeners = args.services.clone();
    config.rules.cluster_domain = args.cluster_domain.clone();
    config.allow_remote_clients = args.allow_remote_clients;
    config.allow_loopback_endpoints = args.allow_loopback_endpoints;
    config.forwarded = args.forwarded_header;
    if let Some(dns) = args.dns.0 {
        config.dns = Some(DnsConfig {
            udp: vec![dns],
            tcp: vec![dns],
            cluster_domain: args.cluster_domain.clone(),
            upstreams: args.dns_upstreams.clone(),
            resolv_conf: args
                .dns_upstreams
                .is_empty()
                .then(|| PathBuf::from(SYSTEM_RESOLV_CONF)),
            ..DnsConfig::default()
        });
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.worker_threads {
        runtime.worker_threads(usize::from(threads));
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let node = MeshNode::start(config)
            .await
            .with_context(|| format!("node {} failed to start", args.name))?;
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("cannot listen for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("cannot wait for Ctrl-C")?,
            _ = terminate.recv() => {}
        }
        node.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// `causeway certs …`.
#[derive(Debug, clap::Subcommand)]
pub enum CertsCommand {
    /// Make a node CA: ca.pem and ca-key.pem in DIR (keep the key off the nodes).
    Ca {
        /// Where to write.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Issue a node's identity from the CA: ca.pem, node.pem and node-key.pem in OUT.
    Node {
        /// The CA's directory (ca.pem, ca-key.pem).
        #[arg(long, value_name = "DIR")]
        ca_dir: PathBuf,
        /// The node's name.
        #[arg(long)]
        name: String,
        /// The node's site.
        #[arg(long)]
        site: String,
        /// Days of validity.
        #[arg(long, default_value_t = 365)]
        days: u64,
        /// Where to write.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// Runs a `certs` command.
pub fn certs(command: &CertsCommand) -> anyhow::Result<ExitCode> {
    match command {
        CertsCommand::Ca { dir } => {
            let ca_key = dir.join("ca-key.pem");
            if ca_key.exists() {
                bail!(
                    "{} exists; refusing to replace a CA (remove it first if you mean to)",
                    ca_key.display()
                );
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let ca = CertificateAuthority::generate()?;
            write_private(&ca_key, &ca.key_pem())?;
            std::fs::write(dir.join("ca.pem"), ca.cert_pem())
                .with_context(|| format!("cannot write {}", dir.join("ca.pem").display()))?;
            super::write_stdout(&format!("wrote {}/ca.pem and ca-key.pem\n", dir.display()))?;
        }
        CertsCommand::Node {
            ca_dir,
            name,
            site,
            days,
            out,
        } => {
            let read = |file: &str| {
                let path = ca_dir.join(file);
                std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))
            };
            let ca = CertificateAuthority::from_pem(&read("ca.pem")?, &read("ca-key.pem")?)?;
            let node = NodeName::new(name)?;
            let credentials = ca.issue(
                &node,
                site,
                Validity::starting_now(Duration::from_secs(days.saturating_mul(24 * 3600))),
            )?;
            std::fs::create_dir_all(out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            credentials.write(&IdentityFiles::in_dir(out))?;
            super::write_stdout(&format!(
                "wrote {}/ca.pem, node.pem and node-key.pem for node {name} (site {site})\n",
                out.display()
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
