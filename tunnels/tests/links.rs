//! Direct links on loopback with real certificates: proxied TCP with half-close and
//! reset, header refusals, reconnects, limits and a stream storm.
#![allow(clippy::unwrap_used)] // A test that unwraps fails where the assumption broke.

mod support;

use std::time::Duration;

use causeway_tunnels::{LinkPath, OpenError, Reachability, Request, Status};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_direct_link_carries_a_proxied_connection_with_half_close() {
    init_logs();
    let cluster = Cluster::new();
    let (a, _a_in) = cluster.node("edge-a").await;
    let (b, b_in) = cluster.node("edge-b").await;
    serve(b_in);
    let shout = tcp_shout().await;

    // The client finishes its side; the server still answers, then finishes its side.
    let mut stream = a.open(&name("edge-b"), proxy(shout)).await.expect("open");
    stream.write_all(b"hello over quic").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer, b"HELLO OVER QUIC");

    let health = a.health(&name("edge-b"));
    assert_eq!(health.len(), 1);
    assert!(health[0].up);
    assert!(matches!(health[0].path, LinkPath::Direct { .. }));
    assert_eq!(a.reachability(&name("edge-b")), Reachability::Linked);
    assert!(health[0].rtt < Duration::from_secs(1));
    // The acceptor knows who dialled, by certificate.
    let back = b.health(&name("edge-a"));
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].peer, name("edge-a"));
}

#[tokio::test]
async fn links_are_shared_and_concurrent_callers_share_one_dial() {
    let cluster = Cluster::new();
    let (a, _a_in) = cluster.node("edge-a").await;
    let (_b, b_in) = cluster.node("edge-b").await;
    serve(b_in);
    let echo = tcp_echo().await;
    let peer = name("edge-b");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (a, peer) = (a.clone(), peer.clone());
        set.spawn(async move { echo_through(&a, &peer, echo, b"x").await });
    }
    while let Some(back) = set.join_next().await {
        assert_eq!(back.unwrap(), b"x");
    }
    assert_eq!(
        a.metrics().links_established,
        1,
        "one dial for twenty callers"
    );
}

#[tokio::test]
async fn resets_propagate_both_ways() {
    let cluster = Cluster::new();
    let (a, _a_in) = cluster.node("edge-a").await;
    let (_b, b_in) = cluster.node("edge-b").await;
    serve(b_in);

    // The endpoint resets its connection: the caller's read fails.
    let rst = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rst_addr = rst.local_addr().unwrap();
    tokio::spawn(async move {
        if let Ok((mut tcp, _)) = rst.accept().await {
            let mut first = [0u8; 2];
            let _ = tcp.read_exact(&mut first).await;
            tcp.set_zero_linger().unwrap();
            drop(tcp);
        }
    });
    let mut stream = a
        .open(&name("edge-b"), proxy(rst_addr))
        .await
        .expect("open");
    stream.write_all(b"hi").await.unwrap();
    let mut buf = [0u8; 16];
    let read = stream.read(&mut buf).await;
    assert!(
        read.is_err(),
        "a reset arrives as an error, not EOF: {read:?}"
    );

    // The caller resets its stream: the endpoint's connection is reset.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 16];
        let first = tcp.read(&mut buf).await.unwrap();
        let second = tcp.read(&mut buf).await;
        (first, second.map_err(|e| e.kind()))
    });
    let mut stream = a.open(&name("edge-b"), proxy(addr)).await.expect("open");
    stream.write_all(b"hi").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.reset();
    let (first, second) = server.await.unwrap();
    assert_eq!(first, 2);
    assert_eq!(second, Err(std::io::ErrorKind::ConnectionReset));
}

#[tokio::test]
async fn refusals_carry_their_status() {
    let cluster = Cluster::new();
    let (a, _a_in) = cluster.node("edge-a").await;
    let (_b, b_in) = cluster.node("edge-b").await;
    serve(b_in);
    // Nothing listens on port 1.
    let error = a
        .open(&name("edge-b"), proxy("127.0.0.1:1".parse().unwrap()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            OpenError::Refused {
                status: Status::NoEndpoint,
                ..
            }
        ),
        "{error}"
    );
    // A node that is not a relay refuses relay sessions.
    let error = a
        .open(
            &name("edge-b"),
            Request::RelayConnect {
                target: "edge-c".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            OpenError::Refused {
                status: Status::Refused,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("not a relay"), "{error}");
}

#[tokio::test]
async fn bad_headers_are_refused_and_counted() {
    let cluster = Cluster::new();
    let (a, _a_in) = cluster.node("edge-a").await;
    let (b, b_in) = cluster.node("edge-b").await;
    serve(b_in);
    let link = a.link(&name("edge-b")).await.expect("link");
    let cases: [(&[u8], Status); 3] = [
        (b"CW\x07\x01\x00\x00", Status::UnsupportedVersion),
        (b"GET / HTTP/1.1\r\n", Status::BadRequest),
        (b"CW\x01\x03\x00\x10short", Status::BadRequest),
    ];
    for (bytes, expected) in cases {
        let (mut send, mut recv) = link.connection().open_bi().await.unwrap();
        send.write_all(bytes).await.unwrap();
        send.finish().unwrap();
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            AsyncReadExt::read_to_end(&mut recv, &mut reply),
        )
        .await;
        let (reply, _) = causeway_tunnels::Reply::decode(&reply).unwrap().unwrap();
        assert_eq!(reply.status, expected, "{}", reply.message);
    }
    assert_eq!(b.metrics().rejected_headers, 3);
    // The link is still good.
    let echo = tcp_echo().await;
    assert_eq!(echo_through(&a, &name("edge-b"), echo, b"ok").await, b"ok");
}

#[tokio::test]
async fn a_peer_that_restarts_is_dialled_again() {
    let cluster = Cluster::new();
    let (a, _a_in) = cluster.node("edge-a").await;
    let (b, b_in) = cluster.node("edge-b").await;
    serve(b_in);
    let echo = tcp_echo().await;
    let peer = name("edge-b");
    assert_eq!(echo_through(&a, &peer, echo, b"one").await, b"one");
    let port = b.local_addr();
    b.close().await;
    drop(b);
    eventually(Duration::from_secs(3), "a notices the link is gone", || {
        a.health(&peer).iter().all(|h| !h.up)
    })
    .await;
    assert!(
        matches!(a.reachability(&peer), Reachability::Failing { .. }),
        "a lost link is reported, not forgotten"
    );

    // The old endpoint lets go of its port once its tasks have wound down.
    let mut config = config();
    config.listen = port;
    let start = std::time::Instant::now();
    while std::net::UdpSocket::bind(port).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the closed endpoint still holds {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (b2, b2_in) = cluster.node_with("edge-b", config).await;
    serve(b2_in);
    // The link was in use, so a re-dials on its own, with backoff.
    eventually(Duration::from_secs(5), "a re-establishes the link", || {
        a.health(&peer).iter().any(|h| h.up)
    })
    .await;
    assert_eq!(echo_through(&a, &peer, echo, b"two").await, b"two");
    assert!(a.metrics().links_established >= 2);
    drop(b2);
}

#[tokio::test]
async fn failed_dials_back_off() {
    let cluster = Cluster::new();
    let (a, _a_in) = cluster.node("edge-a").await;
    // A UDP socket that never answers: dials time out.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut config = config();
    config.timeouts.connect = Duration::from_millis(300);
    cluster
        .directory
        .set(&name("ghost"), vec![silent.local_addr().unwrap()]);
    let (a2, _) = cluster.node_with("edge-c", config).await;
    let first = a2.link(&name("ghost")).await.unwrap_err();
    assert!(matches!(first, OpenError::Unreachable { .. }), "{first}");
    let second = a2.link(&name("ghost")).await;
    // Within the backoff window the second call waits for the next attempt (shorter
    // than the connect timeout here) and fails again rather than hammering.
    assert!(second.is_err());
    assert_eq!(a2.metrics().dial_failures, 2);
    // Callers choosing among peers can see it is failing, and when to try again.
    match a2.reachability(&name("ghost")) {
        Reachability::Failing {
            retry_in, failures, ..
        } => {
            assert_eq!(failures, 2);
            assert!(retry_in <= Duration::from_millis(500), "{retry_in:?}");
        }
        other => panic!("expected Failing, got {other:?}"),
    }
    assert_eq!(a2.reachability(&name("somebody")), Reachability::Unknown);
    // A name nobody knows fails at once with a reason.
    let unknown = a.link(&name("nobody")).await.unwrap_err();
    assert!(
        unknown.to_string().contains("no address is known"),
        "{unknown}"
    );
}

#[tokio::test]
async fn a_storm_of_a_thousand_streams_leaves_nothing_open() {
    let cluster = Cluster::new();
    let (a, _a_in) = cluster.node("edge-a").await;
    let (b, b_in) = cluster.node("edge-b").await;
    serve(b_in);
    let echo = tcp_echo().await;
    let peer = name("edge-b");
    let payload = vec![7u8; 1024];
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let a = a.clone();
        let peer = peer.clone();
        let payload = payload.clone();
        set.spawn(async move { echo_through(&a, &peer, echo, &payload).await == payload });
    }
    let mut ok = 0;
    while let Some(done) = set.join_next().await {
        if done.unwrap() {
            ok += 1;
        }
    }
    assert_eq!(ok, 1000);
    eventually(
        Duration::from_secs(5),
        "every stream closed on both sides",
        || a.metrics().streams_open() == 0 && b.metrics().streams_open() == 0,
    )
    .await;
    assert_eq!(a.metrics().streams_opened, 1000);
    assert_eq!(b.metrics().streams_accepted, 1000);
    assert!(a.health(&peer).iter().all(|h| h.open_streams == 0));
    assert_eq!(a.metrics().links_established, 1);
}

#[tokio::test]
async fn idle_links_close() {
    let cluster = Cluster::new();
    let mut config = config();
    config.timeouts.link_idle = Duration::from_millis(300);
    let (a, _a_in) = cluster.node_with("edge-a", config).await;
    let (_b, b_in) = cluster.node("edge-b").await;
    serve(b_in);
    let echo = tcp_echo().await;
    let peer = name("edge-b");
    assert_eq!(echo_through(&a, &peer, echo, b"x").await, b"x");
    eventually(Duration::from_secs(3), "the idle link closes", || {
        a.health(&peer).is_empty()
    })
    .await;
    assert_eq!(a.metrics().links_closed, 1);
}

#[tokio::test]
async fn the_link_limit_refuses_more_links() {
    let cluster = Cluster::new();
    let mut config = config();
    config.limits.max_links = 1;
    let (b, b_in) = cluster.node_with("edge-b", config).await;
    serve(b_in);
    let (a, _a_in) = cluster.node("edge-a").await;
    let (c, _c_in) = cluster.node("edge-c").await;
    let echo = tcp_echo().await;
    assert_eq!(echo_through(&a, &name("edge-b"), echo, b"x").await, b"x");
    assert!(c.link(&name("edge-b")).await.is_err());
    assert!(b.metrics().rejected_link_limit >= 1);
}

#[tokio::test]
async fn garbage_on_the_port_is_counted_and_harmless() {
    let cluster = Cluster::new();
    let (a, _a_in) = cluster.node("edge-a").await;
    let (b, b_in) = cluster.node("edge-b").await;
    serve(b_in);
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..50u8 {
        junk.send_to(&[i; 30][..usize::from(i % 30) + 1], b.local_addr())
            .unwrap();
    }
    junk.send_to(b"GET / HTTP/1.1\r\n\r\n", b.local_addr())
        .unwrap();
    eventually(Duration::from_secs(2), "garbage counted", || {
        b.metrics().rejected_garbage >= 40
    })
    .await;
    let echo = tcp_echo().await;
    assert_eq!(
        echo_through(&a, &name("edge-b"), echo, b"still fine").await,
        b"still fine"
    );
}

#[tokio::test]
async fn a_slow_reader_stalls_the_writer_within_one_window() {
    let cluster = Cluster::new();
    let mut config = config();
    config.limits.stream_window = 256 * 1024;
    let (a, _a_in) = cluster.node_with("edge-a", config.clone()).await;
    let (_b, mut b_in) = cluster.node_with("edge-b", config).await;
    // edge-b accepts the stream and never reads it.
    let held = tokio::spawn(async move {
        let stream = b_in.accept().await.expect("a stream");
        let stream = stream.accept().await.expect("accept");
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(stream);
    });
    let mut stream = a
        .open(
            &name("edge-b"),
            Request::ServiceBus {
                path: "slow".into(),
            },
        )
        .await
        .expect("open");
    let chunk = vec![1u8; 16 * 1024];
    let mut written = 0usize;
    while let Ok(Ok(())) =
        tokio::time::timeout(Duration::from_millis(300), stream.write_all(&chunk)).await
    {
        written += chunk.len();
        assert!(written < 8 * 1024 * 1024, "the writer was never held back");
    }
    assert!(written >= 128 * 1024, "only {written} bytes went out");
    assert!(
        written <= 2 * 256 * 1024,
        "{written} bytes buffered for a 256 KiB window"
    );
    held.abort();
}

#[tokio::test]
async fn streams_per_link_are_bounded_and_openers_wait_for_credit() {
    let cluster = Cluster::new();
    let mut config = config();
    config.limits.max_streams_per_link = 4;
    let (a, _a_in) = cluster.node_with("edge-a", config.clone()).await;
    let (_b, b_in) = cluster.node_with("edge-b", config).await;
    serve(b_in);
    let echo = tcp_echo().await;
    let peer = name("edge-b");
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(a.open(&peer, proxy(echo)).await.expect("open"));
    }
    // A fifth waits for a slot rather than failing or exceeding the limit.
    let fifth = tokio::time::timeout(Duration::from_millis(300), a.open(&peer, proxy(echo))).await;
    assert!(fifth.is_err(), "a fifth stream opened past the limit");
    let mut first = open.remove(0);
    first.shutdown().await.unwrap();
    let mut rest = Vec::new();
    first.read_to_end(&mut rest).await.unwrap();
    drop(first);
    let fifth = tokio::time::timeout(Duration::from_secs(2), a.open(&peer, proxy(echo))).await;
    assert!(
        matches!(fifth, Ok(Ok(_))),
        "the fifth stream got the freed slot"
    );
}

#[tokio::test]
async fn concurrent_callers_of_an_unreachable_peer_share_one_failed_dial() {
    let cluster = Cluster::new();
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    cluster
        .directory
        .set(&name("ghost"), vec![silent.local_addr().unwrap()]);
    let mut config = config();
    config.timeouts.connect = Duration::from_millis(300);
    let (a, _a_in) = cluster.node_with("edge-a", config).await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let a = a.clone();
        set.spawn(async move { a.link(&name("ghost")).await.map(|_| ()) });
    }
    while let Some(outcome) = set.join_next().await {
        let error = outcome.unwrap().unwrap_err();
        assert!(matches!(error, OpenError::Unreachable { .. }), "{error}");
    }
    assert_eq!(
        a.metrics().dial_failures,
        1,
        "ten callers waited on one dial instead of dialling ten times"
    );
}

#[tokio::test]
async fn concurrent_dials_never_exceed_the_link_limit() {
    let cluster = Cluster::new();
    let mut config = config();
    config.limits.max_links = 2;
    let (b, b_in) = cluster.node_with("edge-b", config).await;
    serve(b_in);
    let mut dialers = Vec::new();
    for i in 0..6 {
        dialers.push(cluster.node(&format!("edge-{i}")).await.0);
    }
    let mut set = tokio::task::JoinSet::new();
    for dialer in &dialers {
        let dialer = dialer.clone();
        set.spawn(async move { dialer.link(&name("edge-b")).await.is_ok() });
    }
    let mut linked = 0;
    while let Some(ok) = set.join_next().await {
        if ok.unwrap() {
            linked += 1;
        }
    }
    // A dialler may see its handshake finish a moment before the limit closes it, so
    // count what stays up at b.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let up = b.links().iter().filter(|h| h.up).count();
    assert!(up <= 2, "{up} links up at a limit of 2");
    assert!(linked >= 2, "only {linked} dialers got a link");
    assert!(b.metrics().rejected_link_limit >= 4);
}

#[tokio::test]
async fn incoming_ends_when_the_endpoint_closes() {
    let cluster = Cluster::new();
    let (b, mut b_in) = cluster.node("edge-b").await;
    let waiter = tokio::spawn(async move { b_in.accept().await.is_none() });
    tokio::time::sleep(Duration::from_millis(50)).await;
    b.close().await;
    let ended = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .expect("accept returned after close")
        .unwrap();
    assert!(ended, "accept yields None once the endpoint is closed");
}

#[tokio::test]
async fn simultaneous_dials_converge_on_one_link() {
    let cluster = Cluster::new();
    let (a, a_in) = cluster.node("edge-a").await;
    let (b, b_in) = cluster.node("edge-b").await;
    serve(a_in);
    serve(b_in);
    let (to_a, to_b) = (name("edge-a"), name("edge-b"));
    for _ in 0..5 {
        let (ab, ba) = tokio::join!(a.link(&to_b), b.link(&to_a));
        ab.expect("a links to b");
        ba.expect("b links to a");
    }
    eventually(Duration::from_secs(5), "one link each way remains", || {
        a.health(&name("edge-b")).iter().filter(|h| h.up).count() == 1
            && b.health(&name("edge-a")).iter().filter(|h| h.up).count() == 1
    })
    .await;
    let echo = tcp_echo().await;
    assert_eq!(echo_through(&a, &name("edge-b"), echo, b"ab").await, b"ab");
    assert_eq!(echo_through(&b, &name("edge-a"), echo, b"ba").await, b"ba");
    assert_eq!(
        a.health(&name("edge-b")).len(),
        1,
        "no new link was dialled"
    );
}

#[tokio::test]
async fn a_reset_after_the_callers_fin_still_reaches_the_endpoint() {
    let cluster = Cluster::new();
    let (a, _a_in) = cluster.node("edge-a").await;
    let (_b, b_in) = cluster.node("edge-b").await;
    serve(b_in);
    // The endpoint reads to EOF, then waits to see how its connection ends.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut all = Vec::new();
        tcp.read_to_end(&mut all).await.unwrap();
        // Half-closed and silent: only the bridge watching for the stop can tell this
        // connection that the caller is gone. One write, well after the reset, shows it.
        tokio::time::sleep(Duration::from_millis(500)).await;
        tcp.write_all(b"late").await.err().map(|e| e.kind())
    });
    let mut stream = a.open(&name("edge-b"), proxy(addr)).await.expect("open");
    stream.write_all(b"done").await.unwrap();
    stream.shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.reset();
    let seen = server.await.unwrap();
    assert!(
        matches!(
            seen,
            Some(std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe)
        ),
        "the endpoint saw {seen:?}"
    );
}

#[tokio::test]
async fn a_tcp_reset_after_fin_resets_the_stream() {
    let cluster = Cluster::new();
    let (a, _a_in) = cluster.node("edge-a").await;
    let (b, b_in) = cluster.node("edge-b").await;
    serve(b_in);
    // The endpoint finishes its side at once, then resets while the caller still talks.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tcp = tcp.into_std().unwrap();
        tcp.shutdown(std::net::Shutdown::Write).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let tcp = tokio::net::TcpStream::from_std(tcp).unwrap();
        tcp.set_zero_linger().unwrap();
        drop(tcp);
    });
    let mut stream = a.open(&name("edge-b"), proxy(addr)).await.expect("open");
    let mut buf = [0u8; 16];
    assert_eq!(
        stream.read(&mut buf).await.unwrap(),
        0,
        "the endpoint's FIN"
    );
    // The caller writes nothing, so only the bridge watching the socket for an error
    // learns of the reset; it resets the stream and lets go of it.
    eventually(
        Duration::from_secs(3),
        "b's bridge ends on the reset",
        || b.metrics().streams_open() == 0,
    )
    .await;
    let write = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if let Err(error) = stream.write_all(b"x").await {
                return error;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the caller's next write fails");
    assert_eq!(write.kind(), std::io::ErrorKind::ConnectionReset, "{write}");
}
