//! A small cluster of tunnel endpoints on loopback, with real certificates, for tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use causeway_tunnels::{
    CertificateAuthority, IdentitySource, Incoming, IncomingStream, LoadedIdentity, NodeName,
    Request, StaticDirectory, Timeouts, Tunnel, TunnelConfig, Validity,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub fn name(s: &str) -> NodeName {
    NodeName::new(s).expect("a valid node name")
}

/// Timeouts short enough for tests.
pub fn fast_timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        keep_alive: Duration::from_millis(200),
        link_dead: Duration::from_secs(2),
        link_idle: Duration::from_secs(30),
        header: Duration::from_secs(2),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        direct_retry: Duration::from_millis(300),
    }
}

pub fn config() -> TunnelConfig {
    let mut config = TunnelConfig::new("127.0.0.1:0".parse().expect("address"));
    config.timeouts = fast_timeouts();
    config.reload_interval = None;
    config
}

/// Identity material of a node issued by `ca`.
pub fn identity(ca: &CertificateAuthority, node: &str, site: &str) -> LoadedIdentity {
    identity_with(
        ca,
        node,
        site,
        Validity::starting_now(Duration::from_secs(3600)),
    )
}

pub fn identity_with(
    ca: &CertificateAuthority,
    node: &str,
    site: &str,
    validity: Validity,
) -> LoadedIdentity {
    let creds = ca.issue(&name(node), site, validity).expect("issue");
    LoadedIdentity::from_pem(
        (Path::new("ca.pem"), creds.ca_pem.as_bytes()),
        (Path::new("node.pem"), creds.cert_pem.as_bytes()),
        (Path::new("node-key.pem"), creds.key_pem.as_bytes()),
    )
    .expect("load")
}

pub struct Cluster {
    pub ca: CertificateAuthority,
    pub directory: Arc<StaticDirectory>,
}

impl Cluster {
    pub fn new() -> Self {
        Self {
            ca: CertificateAuthority::generate().expect("CA"),
            directory: Arc::new(StaticDirectory::new()),
        }
    }

    /// Binds a node with `config`, publishes its address, returns it with its incoming.
    pub async fn node_with(&self, node: &str, config: TunnelConfig) -> (Tunnel, Incoming) {
        let (tunnel, incoming) = Tunnel::bind(
            config,
            IdentitySource::Loaded(identity(&self.ca, node, "site-a")),
            self.directory.clone(),
        )
        .await
        .expect("bind");
        self.directory.set(&name(node), vec![tunnel.local_addr()]);
        (tunnel, incoming)
    }

    pub async fn node(&self, node: &str) -> (Tunnel, Incoming) {
        self.node_with(node, config()).await
    }
}

/// Serves every incoming stream: proxy requests are bridged to their endpoint over TCP,
/// UDP flows to their endpoint over UDP, other requests echoed.
pub fn serve(mut incoming: Incoming) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(stream) = incoming.accept().await {
            tokio::spawn(handle(stream));
        }
    })
}

async fn handle(stream: IncomingStream) {
    match stream.request().clone() {
        Request::ProxyTcp(target) => match TcpStream::connect(target.endpoint).await {
            Ok(tcp) => {
                if let Ok(stream) = stream.accept().await {
                    let _ = stream.bridge_tcp(tcp, 64 * 1024).await;
                }
            }
            Err(error) => {
                stream
                    .refuse(causeway_tunnels::Status::NoEndpoint, &error.to_string())
                    .await
            }
        },
        Request::UdpFlow(target) => {
            if let Ok(flow) = stream.accept_udp().await {
                let _ =
                    causeway_tunnels::serve_udp_flow(flow, target.endpoint, Duration::from_secs(5))
                        .await;
            }
        }
        _ => {
            if let Ok(stream) = stream.accept().await {
                let (mut read, mut write) = tokio::io::split(stream);
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.shutdown().await;
            }
        }
    }
}

/// A TCP server on loopback that echoes every connection.
pub async fn tcp_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A TCP server that reads to EOF, then answers with what it read, uppercased, and closes.
pub async fn tcp_shout() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut all = Vec::new();
                if tcp.read_to_end(&mut all).await.is_ok() {
                    let _ = tcp.write_all(&all.to_ascii_uppercase()).await;
                    let _ = tcp.shutdown().await;
                }
            });
        }
    });
    addr
}

/// A UDP server on loopback that echoes every datagram.
pub async fn udp_echo() -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    addr
}

pub fn proxy(endpoint: SocketAddr) -> Request {
    Request::ProxyTcp(target(endpoint))
}

pub fn target(endpoint: SocketAddr) -> causeway_tunnels::ProxyTarget {
    causeway_tunnels::ProxyTarget {
        endpoint,
        service: "test/echo:7".into(),
        source: None,
        source_workload: String::new(),
    }
}

/// Waits until `condition` holds, or fails after `limit`.
pub async fn eventually(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Echoes `payload` through a proxied connection to `echo` on `peer`.
pub async fn echo_through(
    tunnel: &Tunnel,
    peer: &NodeName,
    echo: SocketAddr,
    payload: &[u8],
) -> Vec<u8> {
    let mut stream = tunnel.open(peer, proxy(echo)).await.expect("open");
    stream.write_all(payload).await.expect("write");
    stream.shutdown().await.expect("finish");
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.expect("read");
    back
}

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}
