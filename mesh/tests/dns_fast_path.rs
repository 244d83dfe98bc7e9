//! The answer cache (the fast path) gives, byte for byte, what decoding, looking up and
//! encoding give (the slow path), and counts the same: for many variations of one
//! question — the name's case, EDNS or not and its payload size, the DO, RD and CD bits,
//! A, AAAA, SRV, PTR, SOA, ANY and unknown types, NXDOMAIN and NODATA, answers truncated
//! for UDP — over UDP and TCP.
//!
//! Two handlers share one store: `warm` has seen each question once before (with
//! another id), so it answers from its cache; `cold` sees each question for the first
//! time, so it takes the slow path. Nothing here touches the network: the handlers are
//! fed bytes directly and have no upstreams.
#![allow(clippy::unwrap_used)] // A test that unwraps fails where the assumption broke.

use std::net::SocketAddr;

use causeway_api::manifest;
use causeway_edge_core::metamanager::MetaManager;
use causeway_mesh::dns::{DnsConfig, DnsHandler, DnsStats, Transport};
use causeway_yaml::Source;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

/// `web` (dual-stack, named ports), `solo` (headless, one endpoint), `db` (headless,
/// 60 endpoints: its SRV answer does not fit in 512 bytes).
fn cluster() -> String {
    let mut text = String::from(
        "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, 'fd00::10']
  ipFamilies: [IPv4, IPv6]
  ipFamilyPolicy: RequireDualStack
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: solo, namespace: demo}
spec:
  clusterIP: None
  ports: [{name: pg, port: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: solo-a, namespace: demo, labels: {kubernetes.io/service-name: solo}}
addressType: IPv4
ports: [{name: pg, port: 5432}]
endpoints:
- addresses: [10.2.0.1]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: demo}
spec:
  clusterIP: None
  ports: [{name: pg, port: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-a, namespace: demo, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{name: pg, port: 15432}]
endpoints:
",
    );
    for i in 1..=60 {
        text.push_str(&format!("- addresses: [10.1.0.{i}]\n"));
    }
    text
}

const NAMES: &[&str] = &[
    "web.demo.svc.cluster.local.",
    "missing.demo.svc.cluster.local.",
    "demo.svc.cluster.local.",
    "nowhere.svc.cluster.local.",
    "svc.cluster.local.",
    "cluster.local.",
    "_http._tcp.web.demo.svc.cluster.local.",
    "_dns._udp.web.demo.svc.cluster.local.",
    "_tcp.web.demo.svc.cluster.local.",
    "_nope._tcp.web.demo.svc.cluster.local.",
    "solo.demo.svc.cluster.local.",
    "10-2-0-1.solo.demo.svc.cluster.local.",
    "_pg._tcp.db.demo.svc.cluster.local.",
    "10.0.96.10.in-addr.arpa.",
    "a.b.c.d.e.f.web.demo.svc.cluster.local.",
];

const TYPES: &[RecordType] = &[
    RecordType::A,
    RecordType::AAAA,
    RecordType::SRV,
    RecordType::PTR,
    RecordType::SOA,
    RecordType::ANY,
    RecordType::TXT,
    RecordType::Unknown(65280),
];

/// The name with the case of its letters flipped where `pattern`'s bits say.
fn recase(name: &str, pattern: u32) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if pattern >> (i % 32) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
struct Variation {
    pattern: u32,
    qtype: RecordType,
    /// EDNS payload size and DO bit; `None`: no EDNS.
    edns: Option<(u16, bool)>,
    rd: bool,
    cd: bool,
}

fn message(id: u16, name: &str, v: Variation) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = v.rd;
    message.metadata.checking_disabled = v.cd;
    let name = Name::from_ascii(recase(name, v.pattern)).unwrap();
    message.add_query(Query::query(name, v.qtype));
    if let Some((payload, dnssec_ok)) = v.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        edns.set_dnssec_ok(dnssec_ok);
        message.set_edns(edns);
    }
    message.to_vec().unwrap()
}

/// `after - before`, counter by counter (the cache counter left out).
fn delta(before: DnsStats, after: DnsStats) -> [u64; 13] {
    [
        after.queries - before.queries,
        after.cluster - before.cluster,
        after.cluster_nxdomain - before.cluster_nxdomain,
        after.cluster_nodata - before.cluster_nodata,
        after.forwarded - before.forwarded,
        after.cache_hits - before.cache_hits,
        after.upstream_failures - before.upstream_failures,
        after.upstream_busy - before.upstream_busy,
        after.no_upstreams - before.no_upstreams,
        after.formerr - before.formerr,
        after.refused - before.refused,
        after.truncated - before.truncated,
        after.dropped - before.dropped,
    ]
}

#[tokio::test]
async fn cached_answers_are_byte_for_byte_the_slow_paths() {
    let dir = std::env::temp_dir().join(format!("causeway-dns-fast-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = MetaManager::open(&dir.join("node.db")).unwrap();
    let decoded = manifest::decode(&Source::new("cluster.yaml", cluster()));
    assert!(decoded.diagnostics.is_empty(), "{:?}", decoded.diagnostics);
    let objects = decoded.objects.into_iter().map(|(o, _)| o).collect();
    store.replace_source("test", objects).await.unwrap();
    let config = DnsConfig {
        resolv_conf: None,
        ..DnsConfig::with_upstreams(Vec::new())
    };
    let warm = DnsHandler::new(&config, store.clone()).unwrap();
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();

    let mut checked = 0u32;
    let mut cached = 0u32;
    let mut truncated = 0u32;
    let edns_choices = [
        None,
        Some((512, false)),
        Some((1232, true)),
        Some((4096, false)),
    ];
    for (n, name) in NAMES.iter().enumerate() {
        for (t, qtype) in TYPES.iter().enumerate() {
            for (e, edns) in edns_choices.iter().enumerate() {
                for flags in 0..4u32 {
                    for transport in [Transport::Udp, Transport::Tcp] {
                        let v = Variation {
                            pattern: (n as u32 * 7919 + t as u32 * 104_729 + e as u32 * 31 + flags)
                                .wrapping_mul(2_654_435_761),
                            qtype: *qtype,
                            edns: *edns,
                            rd: flags & 1 == 1,
                            cd: flags & 2 == 2,
                        };
                        // Warm the cache with another id.
                        let first = message(0x0101, name, v);
                        warm.respond(&first, src, transport).await.unwrap();

                        let asked = message(0xbeef, name, v);
                        let cold = DnsHandler::new(&config, store.clone()).unwrap();
                        let before = (warm.stats(), cold.stats());
                        let fast = warm.respond(&asked, src, transport).await.unwrap();
                        let slow = cold.respond(&asked, src, transport).await.unwrap();
                        let after = (warm.stats(), cold.stats());
                        let what = format!("{name} {v:?} {transport:?}");
                        assert_eq!(&fast[..2], &[0xbe, 0xef], "{what}");
                        assert_eq!(
                            delta(before.0, after.0),
                            delta(before.1, after.1),
                            "{what}: counted alike"
                        );
                        let hit = after.0.cluster_cached - before.0.cluster_cached;
                        assert_eq!(after.1.cluster_cached, 0, "{what}: cold means cold");
                        assert_eq!(fast, slow, "{what}: byte for byte");
                        // Every answer here is deterministic (the one headless Service
                        // with several addresses is asked only for SRV), so each is
                        // cached, but those too long to keep (past 4 KiB, over TCP).
                        if hit == 1 {
                            cached += 1;
                        } else {
                            assert!(slow.len() > 4096, "{what}: missed the cache");
                            assert_eq!(transport, Transport::Tcp, "{what}");
                        }
                        truncated += u32::try_from(delta(before.1, after.1)[11]).unwrap();
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(cached + 100 > checked, "{cached} of {checked} cached");
    assert!(truncated > 0, "some answers were truncated for UDP");
    assert!(checked > 1000, "{checked}");
}

#[tokio::test]
async fn shuffled_headless_answers_and_a_new_snapshot_are_never_served_stale() {
    let dir = std::env::temp_dir().join(format!("causeway-dns-fast2-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = MetaManager::open(&dir.join("node.db")).unwrap();
    let objects = |text: &str| -> Vec<_> {
        let decoded = manifest::decode(&Source::new("cluster.yaml", text));
        assert!(decoded.diagnostics.is_empty(), "{:?}", decoded.diagnostics);
        decoded.objects.into_iter().map(|(o, _)| o).collect()
    };
    store
        .replace_source("test", objects(&cluster()))
        .await
        .unwrap();
    let config = DnsConfig {
        resolv_conf: None,
        ..DnsConfig::with_upstreams(Vec::new())
    };
    let handler = DnsHandler::new(&config, store.clone()).unwrap();
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let v = Variation {
        pattern: 0,
        qtype: RecordType::A,
        edns: Some((4096, false)),
        rd: true,
        cd: false,
    };

    // db's 60 addresses come in a new order each time: never from the cache.
    let db = message(7, "db.demo.svc.cluster.local.", v);
    let mut orders = std::collections::HashSet::new();
    for _ in 0..5 {
        orders.insert(handler.respond(&db, src, Transport::Udp).await.unwrap());
    }
    assert!(orders.len() > 1, "shuffled");
    assert_eq!(handler.stats().cluster_cached, 0);

    // A cached answer, then the Service changes: the next answer is the new one.
    let web = message(8, "web.demo.svc.cluster.local.", v);
    let before = handler.respond(&web, src, Transport::Udp).await.unwrap();
    assert_eq!(
        handler.respond(&web, src, Transport::Udp).await.unwrap(),
        before
    );
    assert_eq!(handler.stats().cluster_cached, 1);
    let changed = cluster().replace("10.96.0.10, 'fd00::10'", "10.96.0.11, 'fd00::10'");
    let changed = changed.replace("clusterIP: 10.96.0.10", "clusterIP: 10.96.0.11");
    store
        .replace_source("test", objects(&changed))
        .await
        .unwrap();
    let after = handler.respond(&web, src, Transport::Udp).await.unwrap();
    assert_ne!(after, before);
    let answer = Message::from_vec(&after).unwrap();
    assert_eq!(
        answer.answers[0].data.to_string(),
        "10.96.0.11",
        "{answer:?}"
    );
    let cold = DnsHandler::new(&config, store.clone()).unwrap();
    assert_eq!(
        cold.respond(&web, src, Transport::Udp).await.unwrap(),
        after
    );
    assert_eq!(handler.stats().cluster_cached, 1);
}
