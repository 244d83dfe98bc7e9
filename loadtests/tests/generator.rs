//! The load generator against real echo apps on 127.0.0.1: every protocol's calls
//! reach and name their endpoint, the open loop makes exactly its schedule and times
//! calls from it (queueing behind a slow answer shows), the closed loop stops at its
//! budget, and failures are counted, not hidden.

use std::net::SocketAddr;
use std::time::Duration;

use causeway_loadtests::echo::{self, Behaviour, Identity, raw};
use causeway_loadtests::generator::{self, LoadSpec, Mode, Protocol};
use tokio::net::{TcpListener, UdpSocket};

fn identity(pod: &str) -> Identity {
    Identity {
        pod: pod.into(),
        node: "n".into(),
        site: "s".into(),
    }
}

fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn http_echo(pod: &str, behaviour: Behaviour) -> echo::EchoApp {
    echo::spawn_with(localhost(), identity(pod), behaviour)
        .await
        .expect("echo app")
}

#[tokio::test]
async fn every_protocol_reaches_and_names_its_endpoint() {
    let app = http_echo("web-0", Behaviour::default()).await;
    let tcp = TcpListener::bind(localhost()).await.expect("bind");
    let tcp_addr = tcp.local_addr().expect("addr");
    tokio::spawn(raw::serve_tcp_echo(
        tcp,
        identity("tcp-0"),
        Behaviour::default(),
    ));
    let udp = UdpSocket::bind(localhost()).await.expect("bind");
    let udp_addr = udp.local_addr().expect("addr");
    tokio::spawn(raw::serve_udp_echo(
        udp,
        identity("udp-0"),
        Behaviour::default(),
    ));

    for (protocol, addr, pod) in [
        (Protocol::Http1, app.addr(), "web-0"),
        (Protocol::Http2, app.addr(), "web-0"),
        (Protocol::Grpc, app.addr(), "web-0"),
        (Protocol::Tcp, tcp_addr, "tcp-0"),
        (Protocol::Udp, udp_addr, "udp-0"),
    ] {
        let mut spec = LoadSpec::closed(protocol, 4, Duration::from_millis(400));
        spec.connections = 2;
        spec.max_calls = 200;
        spec.call.authority = addr.to_string();
        if protocol == Protocol::Grpc {
            spec.call.path = "/causeway.echo.Echo/Call".into();
        }
        let run = generator::run(addr, &spec, protocol.name())
            .await
            .expect("run");
        assert!(run.ok > 0, "{protocol:?}: {run:?}");
        assert_eq!(run.errors(), 0, "{protocol:?}: {run:?}");
        assert!(
            run.offered <= 200,
            "{protocol:?}: the budget holds: {}",
            run.offered
        );
        assert_eq!(
            run.endpoints.keys().collect::<Vec<_>>(),
            vec![pod],
            "{protocol:?}"
        );
        assert_eq!(run.latency.count, run.ok, "{protocol:?}");
        assert_eq!(run.protocol, Some(protocol));
    }
}

#[tokio::test]
async fn the_open_loop_keeps_its_schedule_and_times_calls_from_it() {
    // One connection, 40 ms per answer, 50 calls/s: each call waits behind the one
    // before, so latency from the schedule grows past the service time; a generator
    // that timed from the send would see 40 ms throughout.
    let slow = http_echo(
        "slow-0",
        Behaviour {
            delay: Duration::from_millis(40),
            ..Behaviour::default()
        },
    )
    .await;
    let spec = LoadSpec::open(Protocol::Http1, 50.0, 1, Duration::from_secs(1));
    let run = generator::run(slow.addr(), &spec, "queued")
        .await
        .expect("run");
    assert_eq!(run.mode, "open");
    assert_eq!(run.offered, 50, "exactly rate × duration calls");
    assert_eq!(run.ok, 50, "{run:?}");
    // 25 answers/s of capacity against 50 offered: the last calls wait ~1 s.
    assert!(
        run.latency.max_us > 400_000.0,
        "queueing is visible: {:?}",
        run.latency
    );
    assert!(run.latency.p50_us > 40_000.0, "{:?}", run.latency);

    // The same rate over enough connections: no queueing, latency is the service time.
    let spec = LoadSpec::open(Protocol::Http1, 50.0, 8, Duration::from_secs(1));
    let run = generator::run(slow.addr(), &spec, "spread")
        .await
        .expect("run");
    assert_eq!(run.ok, 50);
    assert!(run.latency.max_us < 300_000.0, "{:?}", run.latency);
    let per_window: u64 = run.windows.iter().map(|w| w.offered).sum();
    assert_eq!(
        per_window, 50,
        "every call is in a window: {:?}",
        run.windows
    );
}

#[tokio::test]
async fn errors_limits_and_dead_targets_are_counted() {
    let flaky = http_echo(
        "flaky-0",
        Behaviour {
            error_rate: 1.0,
            ..Behaviour::default()
        },
    )
    .await;
    let mut spec = LoadSpec::closed(Protocol::Http1, 2, Duration::from_millis(300));
    spec.max_calls = 50;
    let run = generator::run(flaky.addr(), &spec, "flaky")
        .await
        .expect("run");
    assert_eq!(run.ok, 0);
    assert_eq!(run.error_status, run.offered, "{run:?}");
    assert!(run.offered > 0);

    // Nothing listens: every call fails, none hangs past its deadline.
    let dead = {
        let listener = std::net::TcpListener::bind(localhost()).expect("bind");
        listener.local_addr().expect("addr")
    };
    let mut spec = LoadSpec::open(Protocol::Http1, 100.0, 2, Duration::from_millis(500));
    spec.call.timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let run = generator::run(dead, &spec, "dead").await.expect("run");
    assert_eq!(run.ok, 0);
    assert_eq!(run.failed, 50, "{run:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn keys_are_sent_and_counted_per_endpoint() {
    let app = http_echo("keyed-0", Behaviour::default()).await;
    let mut spec = LoadSpec::closed(Protocol::Http1, 1, Duration::from_secs(2));
    spec.max_calls = 30;
    spec.keys = 3;
    spec.call.key_header = Some(http::HeaderName::from_static("x-user"));
    let run = generator::run(app.addr(), &spec, "keys")
        .await
        .expect("run");
    assert_eq!(run.ok, 30);
    assert_eq!(run.keys.len(), 3, "{:?}", run.keys);
    let per_key: Vec<u64> = run.keys.values().map(|per| per["keyed-0"]).collect();
    assert_eq!(per_key.iter().sum::<u64>(), 30, "{per_key:?}");
    assert!(per_key.iter().all(|&n| n > 0), "{per_key:?}");
    assert!(matches!(spec.mode, Mode::Closed { concurrency: 1 }));
}
