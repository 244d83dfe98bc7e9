//! Arbitrary bytes through the DNS handler's decoding and answering path never panic,
//! and whatever it answers is a DNS response carrying the asker's id.
//!
//! The handler has no upstreams here, so nothing leaves the process.
#![allow(clippy::unwrap_used)] // A test that unwraps fails where the assumption broke.

use std::net::SocketAddr;
use std::sync::OnceLock;

use causeway_api::manifest;
use causeway_edge_core::metamanager::MetaManager;
use causeway_mesh::dns::{DnsConfig, DnsHandler, Transport};
use causeway_yaml::Source;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use proptest::prelude::*;
use tokio::runtime::Runtime;

const CLUSTER: &str = "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80}]
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
ports: [{name: pg, port: 5432}]
endpoints:
- addresses: [10.1.0.1]
- addresses: [10.1.0.2]
";

struct Fixture {
    runtime: Runtime,
    handler: DnsHandler,
}

/// One handler for every case: a store with two Services, no upstreams.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("causeway-dns-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let handler = runtime.block_on(async {
            let store = MetaManager::open(&dir.join("node.db")).unwrap();
            let decoded = manifest::decode(&Source::new("cluster.yaml", CLUSTER));
            assert!(decoded.diagnostics.is_empty(), "{:?}", decoded.diagnostics);
            let objects = decoded.objects.into_iter().map(|(o, _)| o).collect();
            store.replace_source("fuzz", objects).await.unwrap();
            let config = DnsConfig {
                resolv_conf: None,
                ..DnsConfig::with_upstreams(Vec::new())
            };
            DnsHandler::new(&config, store).unwrap()
        });
        Fixture { runtime, handler }
    })
}

fn check(packet: &[u8], transport: Transport) {
    let fixture = fixture();
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let answer = fixture
        .runtime
        .block_on(fixture.handler.respond(packet, src, transport));
    let Some(answer) = answer else {
        return;
    };
    let message = Message::from_vec(&answer).unwrap();
    assert_eq!(message.metadata.message_type, MessageType::Response);
    assert_eq!(
        answer[..2],
        packet[..2],
        "the answer carries the asker's id"
    );
    if transport == Transport::Udp {
        assert!(answer.len() <= 4096);
    }
}

/// A well-formed question, for mutation.
fn question(name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
    let mut message = Message::new(0x2a2a, MessageType::Query, OpCode::Query);
    let name = Name::from_ascii(name).unwrap_or_else(|_| Name::root());
    message.add_query(Query::query(name, qtype));
    if edns {
        message.set_edns(Edns::new());
    }
    message.to_vec().unwrap()
}

fn record_type() -> impl Strategy<Value = RecordType> {
    prop_oneof![
        Just(RecordType::A),
        Just(RecordType::AAAA),
        Just(RecordType::SRV),
        Just(RecordType::PTR),
        Just(RecordType::ANY),
        Just(RecordType::AXFR),
        any::<u16>().prop_map(RecordType::from),
    ]
}

fn cluster_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("web.demo.svc.cluster.local.".to_string()),
        Just("_pg._tcp.db.demo.svc.cluster.local.".to_string()),
        Just("10-1-0-1.db.demo.svc.cluster.local.".to_string()),
        Just("10.0.96.10.in-addr.arpa.".to_string()),
        "[a-z0-9_-]{1,12}(\\.[a-z0-9_-]{1,12}){0,6}\\.svc\\.cluster\\.local\\.",
        "([0-9a-f]\\.){1,40}(in-addr|ip6)\\.arpa\\.",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(
        packet in proptest::collection::vec(any::<u8>(), 0..700),
        tcp in any::<bool>(),
    ) {
        check(&packet, if tcp { Transport::Tcp } else { Transport::Udp });
    }

    #[test]
    fn mutated_questions_never_panic(
        name in cluster_name(),
        qtype in record_type(),
        edns in any::<bool>(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<Option<usize>>(),
    ) {
        let mut packet = question(&name, qtype, edns);
        for (at, byte) in edits {
            let len = packet.len();
            packet[at % len] = byte;
        }
        if let Some(cut) = cut {
            packet.truncate(cut % (packet.len() + 1));
        }
        check(&packet, Transport::Udp);
        check(&packet, Transport::Tcp);
    }
}
