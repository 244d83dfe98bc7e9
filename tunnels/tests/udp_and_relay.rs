//! UDP flows over datagrams (and over the stream when a datagram is too large), and
//! links through relays between nodes that cannot dial each other.
#![allow(clippy::unwrap_used)] // A test that unwraps fails where the assumption broke.

mod support;

use std::time::Duration;

use causeway_tunnels::{LinkPath, RelayPeer, TunnelConfig};
use support::*;

#[tokio::test]
async fn udp_echo_through_datagrams_and_an_oversized_one() {
    init_logs();
    let cluster = Cluster::new();
    let (a, _a_in) = cluster.node("edge-a").await;
    let (b, b_in) = cluster.node("edge-b").await;
    serve(b_in);
    let echo = udp_echo().await;
    let mut flow = a
        .open_udp(&name("edge-b"), target(echo))
        .await
        .expect("flow");
    let max = flow.max_datagram_payload().expect("datagrams enabled");
    assert!(max >= 1000, "max datagram payload {max}");

    for i in 0..10u8 {
        flow.send(&[i; 100]).expect("send");
        let back = tokio::time::timeout(Duration::from_secs(2), flow.recv())
            .await
            .expect("echo in time")
            .expect("flow open");
        assert_eq!(&back[..], &[i; 100][..]);
    }
    // Larger than any datagram on the path: it travels framed on the flow's stream,
    // both ways, instead of being dropped.
    let big: Vec<u8> = (0..60_000u32).map(|i| i as u8).collect();
    flow.send(&big).expect("send big");
    let back = tokio::time::timeout(Duration::from_secs(2), flow.recv())
        .await
        .expect("echo in time")
        .expect("open");
    assert_eq!(&back[..], &big[..]);
    assert!(a.metrics().datagrams_sent >= 10);
    assert_eq!(a.metrics().datagrams_over_stream, 1);
    assert_eq!(b.metrics().datagrams_over_stream, 1);
    // Larger than any UDP payload: refused at once.
    assert!(flow.send(&vec![0u8; 70_000]).is_err());

    // Dropping the flow ends it on the other side too.
    drop(flow);
    eventually(Duration::from_secs(3), "both sides close the flow", || {
        a.metrics().streams_open() == 0 && b.metrics().streams_open() == 0
    })
    .await;
}

/// A relay in the cloud, and two edge nodes that can only reach the relay: their
/// directory entries point at sockets that swallow packets, as a NAT would.
async fn relayed_cluster(
    relays: &[&str],
) -> (
    Cluster,
    Vec<causeway_tunnels::Tunnel>,
    causeway_tunnels::Tunnel,
    causeway_tunnels::Tunnel,
    std::net::UdpSocket,
) {
    let cluster = Cluster::new();
    let mut relay_tunnels = Vec::new();
    let mut relay_peers = Vec::new();
    for relay in relays {
        let mut config = config();
        config.serve_as_relay = true;
        let (tunnel, relay_in) = cluster.node_with(relay, config).await;
        serve(relay_in);
        relay_peers.push(RelayPeer {
            node: name(relay),
            addresses: vec![tunnel.local_addr()],
        });
        relay_tunnels.push(tunnel);
    }
    let edge = |relays: Vec<RelayPeer>| -> TunnelConfig {
        let mut config = config();
        config.relays = relays;
        config.timeouts.connect = Duration::from_millis(700);
        config
    };
    let (a, _a_in) = cluster.node_with("edge-a", edge(relay_peers.clone())).await;
    let (b, b_in) = cluster.node_with("edge-b", edge(relay_peers)).await;
    serve(b_in);
    let black_hole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    cluster
        .directory
        .set(&name("edge-a"), vec![black_hole.local_addr().unwrap()]);
    cluster
        .directory
        .set(&name("edge-b"), vec![black_hole.local_addr().unwrap()]);
    // Both edges keep links to their relays.
    for relay in relays {
        eventually(Duration::from_secs(3), "edges link to the relays", || {
            a.health(&name(relay)).iter().any(|h| h.up)
                && b.health(&name(relay)).iter().any(|h| h.up)
        })
        .await;
    }
    (cluster, relay_tunnels, a, b, black_hole)
}

#[tokio::test]
async fn a_caller_that_gives_up_before_the_relay_does_not_cancel_the_dial() {
    init_logs();
    // The direct attempt to the black hole takes the whole connect timeout (700 ms);
    // a caller that waits less gives up before any relay is tried. The dial must go
    // on without it, so the next caller finds the relayed link (the mesh's connect
    // timeout equals the tunnel's by default: without this, a NATed peer is never
    // reached).
    let (_cluster, _relays, a, _b, _hole) = relayed_cluster(&["cloud-relay"]).await;
    let echo = tcp_echo().await;
    let impatient = tokio::time::timeout(
        Duration::from_millis(300),
        a.open(&name("edge-b"), proxy(echo)),
    )
    .await;
    assert!(impatient.is_err(), "the first caller gave up");
    eventually(
        Duration::from_secs(5),
        "the abandoned dial links through the relay",
        || {
            a.health(&name("edge-b"))
                .iter()
                .any(|h| h.up && matches!(h.path, LinkPath::Relayed { .. }))
        },
    )
    .await;
    let payload = vec![7u8; 10_000];
    assert_eq!(
        echo_through(&a, &name("edge-b"), echo, &payload).await,
        payload
    );
}

#[tokio::test]
async fn nodes_that_cannot_dial_each_other_talk_through_a_relay() {
    init_logs();
    let (_cluster, relays, a, b, _hole) = relayed_cluster(&["cloud-relay"]).await;
    let echo = tcp_echo().await;
    let payload = vec![42u8; 200_000];
    assert_eq!(
        echo_through(&a, &name("edge-b"), echo, &payload).await,
        payload
    );

    let health = a.health(&name("edge-b"));
    let relayed: Vec<_> = health.iter().filter(|h| h.up).collect();
    assert_eq!(relayed.len(), 1, "{health:?}");
    assert_eq!(
        relayed[0].path,
        LinkPath::Relayed {
            relay: name("cloud-relay")
        }
    );
    // End to end: b authenticated a itself, through the relay.
    assert!(
        b.health(&name("edge-a"))
            .iter()
            .any(|h| h.up && matches!(h.path, LinkPath::Relayed { .. }))
    );
    let relay = relays[0].metrics();
    assert_eq!(relay.relay_sessions, 1);
    assert!(relay.relay_packets > 100);
    // The relay carried packets, never streams of its own to the application.
    assert_eq!(relay.streams_accepted, 1);
    // Nothing legitimate looks like garbage to the port guard.
    for node in [relay, a.metrics(), b.metrics()] {
        assert_eq!(node.rejected_garbage, 0);
    }

    // UDP rides the end-to-end link too.
    let udp = udp_echo().await;
    let mut flow = a
        .open_udp(&name("edge-b"), target(udp))
        .await
        .expect("flow");
    flow.send(b"ping").unwrap();
    let back = tokio::time::timeout(Duration::from_secs(2), flow.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back[..], b"ping");
}

#[tokio::test]
async fn a_dead_relay_is_replaced_by_another() {
    let (_cluster, mut relays, a, _b, _hole) = relayed_cluster(&["relay-1", "relay-2"]).await;
    let echo = tcp_echo().await;
    let peer = name("edge-b");
    assert_eq!(echo_through(&a, &peer, echo, b"first").await, b"first");
    let LinkPath::Relayed { relay: used } =
        a.health(&peer).into_iter().find(|h| h.up).unwrap().path
    else {
        panic!("expected a relayed link");
    };
    let index = relays.iter().position(|r| r.node() == &used).unwrap();
    let dead = relays.remove(index);
    dead.close().await;
    drop(dead);
    eventually(
        Duration::from_secs(4),
        "the relayed link goes down with its relay",
        || {
            !a.health(&peer).iter().any(|h| {
                h.up && h.path
                    == LinkPath::Relayed {
                        relay: used.clone(),
                    }
            })
        },
    )
    .await;
    // The next call goes through the surviving relay.
    assert_eq!(echo_through(&a, &peer, echo, b"second").await, b"second");
    let now = a.health(&peer).into_iter().find(|h| h.up).unwrap();
    assert_eq!(
        now.path,
        LinkPath::Relayed {
            relay: relays[0].node().clone()
        }
    );
}

#[tokio::test]
async fn a_relayed_peer_is_reached_directly_once_it_can_be() {
    let (cluster, _relays, a, b, _hole) = relayed_cluster(&["cloud-relay"]).await;
    let echo = tcp_echo().await;
    let peer = name("edge-b");
    assert_eq!(echo_through(&a, &peer, echo, b"relayed").await, b"relayed");
    // The NAT opens: edge-b's real address becomes reachable.
    cluster.directory.set(&peer, vec![b.local_addr()]);
    eventually(Duration::from_secs(5), "a direct link appears", || {
        a.health(&peer)
            .iter()
            .any(|h| h.up && matches!(h.path, LinkPath::Direct { .. }))
    })
    .await;
    assert_eq!(echo_through(&a, &peer, echo, b"direct").await, b"direct");
}

#[tokio::test]
async fn only_a_nodes_own_relays_may_offer_it_sessions() {
    let cluster = Cluster::new();
    // A relay that edge-b did not choose.
    let mut config = config();
    config.serve_as_relay = true;
    let (rogue, rogue_in) = cluster.node_with("rogue-relay", config).await;
    serve(rogue_in);
    let (b, b_in) = cluster.node("edge-b").await;
    serve(b_in);
    let mut edge = support::config();
    edge.relays = vec![RelayPeer {
        node: name("rogue-relay"),
        addresses: vec![rogue.local_addr()],
    }];
    let (a, _a_in) = cluster.node_with("edge-a", edge).await;
    // edge-b has a link to the rogue (for its own reasons), so the rogue can reach it.
    b.link(&name("rogue-relay"))
        .await
        .expect("b links to the rogue");
    let hole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    cluster
        .directory
        .set(&name("edge-b"), vec![hole.local_addr().unwrap()]);
    let error = a.link(&name("edge-b")).await.unwrap_err();
    assert!(
        error.to_string().contains("not one of this node's relays"),
        "{error}"
    );
    assert_eq!(rogue.metrics().relay_sessions, 0);
}

#[tokio::test]
async fn a_udp_flow_survives_a_refused_packet() {
    let cluster = Cluster::new();
    let (a, _a_in) = cluster.node("edge-a").await;
    let (_b, b_in) = cluster.node("edge-b").await;
    serve(b_in);
    // A port with nobody on it yet: the first packets draw ICMP port-unreachable.
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let destination = port.local_addr().unwrap();
    drop(port);
    let mut flow = a
        .open_udp(&name("edge-b"), target(destination))
        .await
        .expect("flow");
    for _ in 0..3 {
        flow.send(b"anyone?").unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The service comes up on that port; the same flow now reaches it.
    let socket = tokio::net::UdpSocket::bind(destination).await.unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    flow.send(b"now").unwrap();
    let back = tokio::time::timeout(Duration::from_secs(2), flow.recv())
        .await
        .expect("an answer in time")
        .expect("the flow is still open");
    assert_eq!(&back[..], b"now");
}

#[tokio::test]
async fn a_relay_refuses_a_target_it_does_not_know() {
    let (_cluster, relays, a, _b, _hole) = relayed_cluster(&["cloud-relay"]).await;
    // Nobody has an address for edge-z, and the relay has no link to it.
    let error = a.link(&name("edge-z")).await.unwrap_err();
    assert!(
        error.to_string().contains("does not know node edge-z"),
        "{error}"
    );
    assert_eq!(relays[0].metrics().relay_refusals, 1);
    assert_eq!(relays[0].metrics().relay_sessions, 0);
}

#[tokio::test]
async fn a_peer_that_is_gone_is_let_go() {
    let cluster = Cluster::new();
    let mut config = config();
    config.timeouts.link_idle = Duration::from_millis(500);
    config.timeouts.backoff_max = Duration::from_millis(100);
    config.timeouts.connect = Duration::from_millis(300);
    let (a, _a_in) = cluster.node_with("edge-a", config).await;
    let (b, b_in) = cluster.node("edge-b").await;
    serve(b_in);
    let echo = tcp_echo().await;
    let peer = name("edge-b");
    assert_eq!(echo_through(&a, &peer, echo, b"once").await, b"once");
    b.close().await;
    drop(b);
    // a redials while the peer was recently used, then stops: its redials are not use.
    eventually(Duration::from_secs(3), "a tries to redial", || {
        a.metrics().dial_failures >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = a.metrics().dial_failures;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        a.metrics().dial_failures,
        settled,
        "a kept dialling a gone peer"
    );
    assert!(a.health(&peer).is_empty());
}
