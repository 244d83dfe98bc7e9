//! Link benchmark: a tunnel link against plain TCP between the same two endpoints on
//! loopback, in one run, so the machine's noise hits both alike.
//!
//! ```text
//! cargo bench -p causeway-tunnels --bench link            # full run (~1 min)
//! CAUSEWAY_BENCH_QUICK=1 cargo bench -p causeway-tunnels --bench link   # smoke run
//! ```
//!
//! - bulk throughput of one stream, and of 16 parallel streams, against one and 16 TCP
//!   connections;
//! - round trip of a 1 KiB echo on an established stream against an established TCP
//!   connection (p50, p99 over many round trips).
//!
//! Every loop is bounded by a byte or round-trip count; all traffic stays on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark that cannot set up has nothing to report.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use causeway_tunnels::{
    CertificateAuthority, IdentitySource, LoadedIdentity, NodeName, Request, StaticDirectory,
    Tunnel, TunnelConfig, Validity,
};
use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CHUNK: usize = 64 * 1024;

struct Plan {
    bulk_bytes: u64,
    runs: usize,
    echo_round_trips: usize,
}

fn plan() -> Plan {
    if std::env::var_os("CAUSEWAY_BENCH_QUICK").is_some() {
        Plan {
            bulk_bytes: 64 << 20,
            runs: 1,
            echo_round_trips: 2_000,
        }
    } else {
        Plan {
            bulk_bytes: 1 << 30,
            runs: 3,
            echo_round_trips: 20_000,
        }
    }
}

fn identity(ca: &CertificateAuthority, node: &str) -> LoadedIdentity {
    let creds = ca
        .issue(
            &NodeName::new(node).unwrap(),
            "bench",
            Validity::starting_now(Duration::from_secs(3600)),
        )
        .unwrap();
    LoadedIdentity::from_pem(
        (Path::new("ca.pem"), creds.ca_pem.as_bytes()),
        (Path::new("node.pem"), creds.cert_pem.as_bytes()),
        (Path::new("key.pem"), creds.key_pem.as_bytes()),
    )
    .unwrap()
}

/// Reads everything, then closes its side: the receiver of a bulk transfer.
async fn sink<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let mut buf = vec![0u8; CHUNK];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
    let _ = stream.shutdown().await;
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: S) {
    let (mut r, mut w) = tokio::io::split(stream);
    let _ = tokio::io::copy(&mut r, &mut w).await;
    let _ = w.shutdown().await;
}

/// Sends `bytes` and waits for the receiver to close: every byte delivered.
async fn push<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, bytes: u64) {
    let buf = vec![0xabu8; CHUNK];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        stream.write_all(&buf[..n]).await.unwrap();
        left -= n as u64;
    }
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
}

async fn ping_pong<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    round_trips: usize,
) -> Histogram<u64> {
    let mut histogram = Histogram::<u64>::new(3).unwrap();
    let out = vec![0x5au8; 1024];
    let mut back = vec![0u8; 1024];
    // Warm up.
    for _ in 0..100 {
        stream.write_all(&out).await.unwrap();
        stream.read_exact(&mut back).await.unwrap();
    }
    for _ in 0..round_trips {
        let start = Instant::now();
        stream.write_all(&out).await.unwrap();
        stream.read_exact(&mut back).await.unwrap();
        histogram.record(start.elapsed().as_nanos() as u64).unwrap();
    }
    histogram
}

fn gbits(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e9
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn tunnel_pair() -> (Tunnel, NodeName) {
    let ca = CertificateAuthority::generate().unwrap();
    let directory = Arc::new(StaticDirectory::new());
    let config = || {
        let mut c = TunnelConfig::new("127.0.0.1:0".parse().unwrap());
        c.reload_interval = None;
        c
    };
    let (server, mut incoming) = Tunnel::bind(
        config(),
        IdentitySource::Loaded(identity(&ca, "bench-b")),
        directory.clone(),
    )
    .await
    .unwrap();
    let peer = NodeName::new("bench-b").unwrap();
    directory.set(&peer, vec![server.local_addr()]);
    tokio::spawn(async move {
        let _keep = server;
        while let Some(stream) = incoming.accept().await {
            let purpose = match stream.request() {
                Request::ServiceBus { path } => path.clone(),
                _ => String::new(),
            };
            let stream = stream.accept().await.unwrap();
            if purpose == "echo" {
                tokio::spawn(echo(stream));
            } else {
                tokio::spawn(sink(stream));
            }
        }
    });
    let (client, _) = Tunnel::bind(
        config(),
        IdentitySource::Loaded(identity(&ca, "bench-a")),
        directory,
    )
    .await
    .unwrap();
    client.link(&peer).await.unwrap();
    (client, peer)
}

async fn tcp_server(echoing: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tcp.set_nodelay(true).unwrap();
            if echoing {
                tokio::spawn(echo(tcp));
            } else {
                tokio::spawn(sink(tcp));
            }
        }
    });
    addr
}

async fn tcp_client(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp
}

fn request(path: &str) -> Request {
    Request::ServiceBus { path: path.into() }
}

async fn bulk_tunnel(client: &Tunnel, peer: &NodeName, streams: usize, bytes: u64) -> f64 {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..streams {
        let stream = client.open(peer, request("sink")).await.unwrap();
        set.spawn(push(stream, bytes / streams as u64));
    }
    while set.join_next().await.is_some() {}
    gbits(bytes, start.elapsed())
}

async fn bulk_tcp(addr: SocketAddr, streams: usize, bytes: u64) -> f64 {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..streams {
        let tcp = tcp_client(addr).await;
        set.spawn(push(tcp, bytes / streams as u64));
    }
    while set.join_next().await.is_some() {}
    gbits(bytes, start.elapsed())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let plan = plan();
        let (client, peer) = tunnel_pair().await;
        let sink_addr = tcp_server(false).await;
        let echo_addr = tcp_server(true).await;
        println!(
            "tunnel link vs plain TCP on loopback; {} MiB per bulk run, median of {} runs, {} echo round trips",
            plan.bulk_bytes >> 20,
            plan.runs,
            plan.echo_round_trips
        );
        println!("{:<26} {:>12} {:>12} {:>8}", "", "tunnel", "tcp", "ratio");
        for streams in [1usize, 16] {
            let mut tunnel = Vec::new();
            let mut tcp = Vec::new();
            for _ in 0..plan.runs {
                tcp.push(bulk_tcp(sink_addr, streams, plan.bulk_bytes).await);
                tunnel.push(bulk_tunnel(&client, &peer, streams, plan.bulk_bytes).await);
            }
            let (tunnel, tcp) = (median(tunnel), median(tcp));
            println!(
                "{:<26} {:>7.2} Gb/s {:>7.2} Gb/s {:>8.2}",
                format!("bulk, {streams} stream(s)"),
                tunnel,
                tcp,
                tunnel / tcp
            );
        }
        let tunnel_stream = client.open(&peer, request("echo")).await.unwrap();
        let tunnel_rtt = ping_pong(tunnel_stream, plan.echo_round_trips).await;
        let tcp_rtt = ping_pong(tcp_client(echo_addr).await, plan.echo_round_trips).await;
        for (label, q) in [("echo 1 KiB p50", 0.5), ("echo 1 KiB p99", 0.99)] {
            let t = tunnel_rtt.value_at_quantile(q) as f64 / 1000.0;
            let d = tcp_rtt.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "{:<26} {:>9.1} µs {:>9.1} µs {:>8.2}   (+{:.1} µs)",
                label,
                t,
                d,
                t / d,
                t - d
            );
        }
        let metrics = client.metrics();
        println!(
            "link: {} streams opened, {} open now, rtt {:?}",
            metrics.streams_opened,
            metrics.streams_open(),
            client.health(&peer).first().map(|h| h.rtt)
        );
    });
}
