//! The embedded DNS server over real UDP and TCP sockets on 127.0.0.1: cluster answers
//! from a store built from YAML, truncation, forwarding to an in-test fake upstream (also
//! on 127.0.0.1), its cache and timeouts, malformed messages, and store updates.
//!
//! No test sends anything anywhere but 127.0.0.1, and none depends on the machine's own
//! resolvers: every server is given its upstreams (or none) explicitly.
#![allow(clippy::unwrap_used)] // A test that unwraps fails where the assumption broke.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use causeway_api::KubeObject;
use causeway_api::manifest;
use causeway_edge_core::metamanager::MetaManager;
use causeway_mesh::dns::{DnsConfig, DnsServer};
use causeway_yaml::Source;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// Every test finishes within this, whatever happens.
const TEST_LIMIT: Duration = Duration::from_secs(60);
/// How long a client waits for one answer.
const ANSWER_WAIT: Duration = Duration::from_secs(3);
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn bounded<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("the test ran over its time limit");
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("causeway-dns-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn objects(text: &str) -> Vec<KubeObject> {
    let m = manifest::decode(&Source::new("t.yaml", text));
    assert!(m.diagnostics.is_empty(), "{:?}", m.diagnostics);
    m.objects.into_iter().map(|(o, _)| o).collect()
}

const WEB: &str = "\
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
";

/// The cluster: `web` (dual-stack, named ports) and `db`, headless, with 100 ready
/// endpoints 10.1.0.1–100 and three not ready, 10.1.1.1–3.
fn fixture() -> String {
    let mut text = String::from(WEB);
    text.push_str(
        "---
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
    for i in 1..=100 {
        text.push_str(&format!("- addresses: [10.1.0.{i}]\n"));
    }
    for i in 1..=3 {
        text.push_str(&format!(
            "- addresses: [10.1.1.{i}]\n  conditions: {{ready: false}}\n"
        ));
    }
    text
}

async fn store(name: &str) -> (MetaManager, PathBuf) {
    let dir = temp_dir(name);
    let store = MetaManager::open(&dir.join("node.db")).unwrap();
    store
        .replace_source("manifests:test", objects(&fixture()))
        .await
        .unwrap();
    (store, dir)
}

/// Listens on 127.0.0.1, port picked, UDP and TCP on the same port.
fn config(upstreams: Vec<SocketAddr>) -> DnsConfig {
    let any = SocketAddr::new(LOCALHOST, 0);
    DnsConfig {
        udp: vec![any],
        tcp: vec![any],
        resolv_conf: None,
        ..DnsConfig::with_upstreams(upstreams)
    }
}

// --- The client side: queries built with hickory-proto over plain tokio sockets. ---

fn query_bytes(name: &str, qtype: RecordType, edns: Option<u16>) -> (u16, Vec<u8>) {
    let id: u16 = rand::random();
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(payload) = edns {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        message.set_edns(e);
    }
    (id, message.to_vec().unwrap())
}

/// Sends `bytes` over UDP; the answer's bytes, or `None` when none comes in `wait`.
async fn udp_raw(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    socket.send_to(bytes, server).await.unwrap();
    let mut buffer = vec![0u8; 65_535];
    match tokio::time::timeout(wait, socket.recv_from(&mut buffer)).await {
        Ok(Ok((n, from))) => {
            assert_eq!(from, server);
            Some(buffer[..n].to_vec())
        }
        Ok(Err(e)) => panic!("UDP receive failed: {e}"),
        Err(_) => None,
    }
}

async fn udp_edns(server: SocketAddr, name: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let (id, bytes) = query_bytes(name, qtype, edns);
    let answer = udp_raw(server, &bytes, ANSWER_WAIT)
        .await
        .unwrap_or_else(|| panic!("no UDP answer for {name} {qtype}"));
    assert!(answer.len() <= usize::from(edns.unwrap_or(512).max(512)));
    let message = Message::from_vec(&answer).unwrap();
    assert_eq!(message.metadata.id, id);
    assert_eq!(message.metadata.message_type, MessageType::Response);
    message
}

async fn udp(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    udp_edns(server, name, qtype, None).await
}

async fn tcp_send(stream: &mut TcpStream, bytes: &[u8]) {
    let mut framed = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.unwrap();
}

async fn tcp_receive(stream: &mut TcpStream) -> Vec<u8> {
    tokio::time::timeout(ANSWER_WAIT, async {
        let mut length = [0u8; 2];
        stream.read_exact(&mut length).await.unwrap();
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(length))];
        stream.read_exact(&mut answer).await.unwrap();
        answer
    })
    .await
    .expect("no TCP answer in time")
}

async fn tcp(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let (id, bytes) = query_bytes(name, qtype, None);
    let mut stream = TcpStream::connect(server).await.unwrap();
    tcp_send(&mut stream, &bytes).await;
    let message = Message::from_vec(&tcp_receive(&mut stream).await).unwrap();
    assert_eq!(message.metadata.id, id);
    message
}

fn ips(message: &Message) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Checks a negative answer from the cluster zone: `code`, no answers, the zone's SOA.
fn assert_negative(message: &Message, code: ResponseCode, what: &str) {
    assert_eq!(message.metadata.response_code, code, "{what}");
    assert!(message.answers.is_empty(), "{what}: {:?}", message.answers);
    assert!(message.metadata.authoritative, "{what}");
    let soa = message
        .authorities
        .iter()
        .find(|r| r.record_type() == RecordType::SOA)
        .unwrap_or_else(|| panic!("{what}: no SOA in {:?}", message.authorities));
    assert_eq!(soa.name.to_ascii(), "cluster.local.", "{what}");
    let RData::SOA(data) = &soa.data else {
        unreachable!()
    };
    assert_eq!(data.minimum, 5, "{what}");
}

// --- The fake upstream: a tiny resolver on 127.0.0.1 that counts what it is asked. ---

#[derive(Clone, Copy, PartialEq)]
enum Upstream {
    /// Answers `www.example.test` A, `big.example.test` A (60 records: truncated over
    /// UDP, whole over TCP) and NXDOMAIN with an SOA for anything else.
    Answers,
    /// Never answers.
    Silent,
}

struct FakeUpstream {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Datagrams or connections the fake serves before it stops by itself.
const FAKE_LIMIT: usize = 1000;

fn fake_answer(request: &Message, over_udp: bool) -> Message {
    let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    let Some(query) = request.queries.first() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response;
    };
    response.add_query(query.clone());
    let name = query.name().to_lowercase().to_ascii();
    match (name.as_str(), query.query_type()) {
        ("www.example.test.", RecordType::A) => {
            response.add_answer(Record::from_rdata(
                query.name().clone(),
                300,
                RData::A(A::new(192, 0, 2, 1)),
            ));
        }
        ("big.example.test.", RecordType::A) => {
            if over_udp {
                response.metadata.truncation = true;
            } else {
                for i in 1..=60 {
                    response.add_answer(Record::from_rdata(
                        query.name().clone(),
                        300,
                        RData::A(A::new(192, 0, 2, i)),
                    ));
                }
            }
        }
        _ => {
            response.metadata.response_code = ResponseCode::NXDomain;
            let zone = Name::from_ascii("example.test.").unwrap();
            response.add_authority(Record::from_rdata(
                zone.clone(),
                60,
                RData::SOA(SOA::new(zone.clone(), zone, 1, 60, 60, 60, 30)),
            ));
        }
    }
    response
}

async fn fake_upstream(mode: Upstream) -> FakeUpstream {
    // UDP and TCP on one port, as a resolver listens; a port free for UDP may be taken
    // for TCP, so try a few.
    let mut pair = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
            pair = Some((udp, tcp));
            break;
        }
    }
    let (udp, tcp) = pair.expect("no port free for both UDP and TCP");
    let addr = udp.local_addr().unwrap();
    let queries = Arc::new(AtomicUsize::new(0));
    let udp_count = Arc::clone(&queries);
    let udp_task = tokio::spawn(async move {
        let mut buffer = vec![0u8; 4096];
        for _ in 0..FAKE_LIMIT {
            let Ok((n, from)) = udp.recv_from(&mut buffer).await else {
                return;
            };
            udp_count.fetch_add(1, Ordering::SeqCst);
            if mode == Upstream::Silent {
                continue;
            }
            if let Ok(request) = Message::from_vec(&buffer[..n]) {
                let answer = fake_answer(&request, true).to_vec().unwrap();
                let _ = udp.send_to(&answer, from).await;
            }
        }
    });
    let tcp_count = Arc::clone(&queries);
    let tcp_task = tokio::spawn(async move {
        for _ in 0..FAKE_LIMIT {
            let Ok((mut stream, _)) = tcp.accept().await else {
                return;
            };
            tcp_count.fetch_add(1, Ordering::SeqCst);
            if mode == Upstream::Silent {
                continue;
            }
            let mut length = [0u8; 2];
            if stream.read_exact(&mut length).await.is_err() {
                continue;
            }
            let mut request = vec![0u8; usize::from(u16::from_be_bytes(length))];
            if stream.read_exact(&mut request).await.is_err() {
                continue;
            }
            if let Ok(request) = Message::from_vec(&request) {
                let answer = fake_answer(&request, false).to_vec().unwrap();
                tcp_send(&mut stream, &answer).await;
            }
        }
    });
    FakeUpstream {
        addr,
        queries,
        tasks: vec![udp_task, tcp_task],
    }
}

// --- The tests. ---

#[tokio::test]
async fn the_server_reports_its_addresses_and_pairs_udp_with_tcp() {
    bounded(async {
        let (store, dir) = store("addresses").await;
        let server = DnsServer::start(config(Vec::new()), store).await.unwrap();
        let status = server.status();
        assert_eq!(status.udp.len(), 1);
        assert_eq!(status.udp, status.tcp, "port 0 pairs share one port");
        assert_ne!(status.udp[0].port(), 0);
        assert!(status.upstreams.is_empty());
        let udp = status.udp[0];
        server.shutdown().await;
        // The socket is closed: the port can be bound again.
        UdpSocket::bind(udp).await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    })
    .await;
}

#[tokio::test]
async fn cluster_names_are_answered_from_the_snapshot_and_never_forwarded() {
    bounded(async {
        let (store, dir) = store("cluster").await;
        let upstream = fake_upstream(Upstream::Answers).await;
        let server = DnsServer::start(config(vec![upstream.addr]), store)
            .await
            .unwrap();
        let udp_addr = server.udp_addrs()[0];
        let tcp_addr = server.tcp_addrs()[0];
        let web = "web.demo.svc.cluster.local.";

        // A and AAAA by family, authoritative, with the configured TTL.
        for answer in [
            udp(udp_addr, web, RecordType::A).await,
            tcp(tcp_addr, web, RecordType::A).await,
        ] {
            assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
            assert!(answer.metadata.authoritative);
            assert_eq!(ips(&answer), vec![ip("10.96.0.10")]);
            assert_eq!(answer.answers[0].ttl, 5);
        }
        let aaaa = udp(udp_addr, web, RecordType::AAAA).await;
        assert_eq!(ips(&aaaa), vec![ip("fd00::10")]);

        // Names are case-insensitive; the question comes back as it was asked.
        let mixed = "WeB.DeMo.SvC.Cluster.LOCAL.";
        let answer = udp(udp_addr, mixed, RecordType::A).await;
        assert_eq!(ips(&answer), vec![ip("10.96.0.10")]);
        assert_eq!(answer.queries[0].name().to_ascii(), mixed);

        // SRV for named ports, with the target's addresses alongside.
        let srv = udp(
            udp_addr,
            "_http._tcp.web.demo.svc.cluster.local.",
            RecordType::SRV,
        )
        .await;
        assert_eq!(srv.metadata.response_code, ResponseCode::NoError);
        assert_eq!(srv.answers.len(), 1);
        let RData::SRV(data) = &srv.answers[0].data else {
            panic!("{:?}", srv.answers)
        };
        assert_eq!(data.port, 80);
        assert_eq!(data.target.to_ascii(), web);
        let mut extra: Vec<IpAddr> = srv
            .additionals
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect();
        extra.sort();
        assert_eq!(extra, vec![ip("10.96.0.10"), ip("fd00::10")]);
        let dns = udp(
            udp_addr,
            "_dns._udp.web.demo.svc.cluster.local.",
            RecordType::SRV,
        )
        .await;
        let RData::SRV(data) = &dns.answers[0].data else {
            panic!("{:?}", dns.answers)
        };
        assert_eq!(data.port, 53);
        let wrong_protocol = udp(
            udp_addr,
            "_http._udp.web.demo.svc.cluster.local.",
            RecordType::SRV,
        )
        .await;
        assert_negative(&wrong_protocol, ResponseCode::NXDomain, "_http._udp");

        // PTR for the cluster IPs, both families.
        for reverse in [
            "10.0.96.10.in-addr.arpa.",
            "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
        ] {
            let ptr = udp(udp_addr, reverse, RecordType::PTR).await;
            assert_eq!(
                ptr.metadata.response_code,
                ResponseCode::NoError,
                "{reverse}"
            );
            let RData::PTR(target) = &ptr.answers[0].data else {
                panic!("{:?}", ptr.answers)
            };
            assert_eq!(target.0.to_ascii(), web);
        }

        // NODATA: the name exists, the type does not.
        for (name, qtype) in [
            (web, RecordType::MX),
            (web, RecordType::TXT),
            ("_http._tcp.web.demo.svc.cluster.local.", RecordType::A),
            ("demo.svc.cluster.local.", RecordType::A),
            ("svc.cluster.local.", RecordType::A),
        ] {
            let answer = udp(udp_addr, name, qtype).await;
            assert_negative(&answer, ResponseCode::NoError, name);
        }

        // NXDOMAIN, with the SOA for negative caching, including the names clients make
        // by appending their search path to a name that was already complete.
        for name in [
            "nope.demo.svc.cluster.local.",
            "web.other.svc.cluster.local.",
            "web.demo.demo.svc.cluster.local.",
            "web.demo.svc.demo.svc.cluster.local.",
            "web.demo.svc.cluster.local.demo.svc.cluster.local.",
            "web.demo.svc.cluster.local.svc.cluster.local.",
            "pod.cluster.local.",
            "10-96-0-10.web.demo.svc.cluster.local.",
        ] {
            let answer = udp(udp_addr, name, RecordType::A).await;
            assert_negative(&answer, ResponseCode::NXDomain, name);
            let answer = tcp(tcp_addr, name, RecordType::AAAA).await;
            assert_negative(&answer, ResponseCode::NXDomain, name);
        }

        // Nothing of that went to the upstream.
        assert_eq!(upstream.queries.load(Ordering::SeqCst), 0);
        let stats = server.stats();
        assert_eq!(stats.forwarded + stats.cache_hits, 0);
        assert!(stats.cluster_nxdomain >= 16, "{stats:?}");
        assert!(stats.cluster_nodata >= 5, "{stats:?}");
        server.shutdown().await;
        std::fs::remove_dir_all(&dir).unwrap();
    })
    .await;
}

#[tokio::test]
async fn headless_services_answer_with_ready_endpoints_truncated_over_udp_whole_over_tcp() {
    bounded(async {
        let (store, dir) = store("headless").await;
        let server = DnsServer::start(config(Vec::new()), store).await.unwrap();
        let udp_addr = server.udp_addrs()[0];
        let tcp_addr = server.tcp_addrs()[0];
        let db = "db.demo.svc.cluster.local.";
        let ready: Vec<IpAddr> = {
            let mut v: Vec<IpAddr> = (1..=100).map(|i| ip(&format!("10.1.0.{i}"))).collect();
            v.sort();
            v
        };

        // Without EDNS a UDP answer is at most 512 bytes: 100 addresses do not fit.
        let cut = udp(udp_addr, db, RecordType::A).await;
        assert!(cut.metadata.truncation);
        assert!(cut.answers.is_empty());
        assert_eq!(cut.queries[0].name().to_ascii(), db);
        // Over TCP the whole answer: every ready endpoint, none of the others.
        let whole = tcp(tcp_addr, db, RecordType::A).await;
        assert!(!whole.metadata.truncation);
        assert_eq!(ips(&whole), ready);
        // A client offering 4096 bytes of EDNS gets it all over UDP.
        let large = udp_edns(udp_addr, db, RecordType::A, Some(4096)).await;
        assert!(!large.metadata.truncation);
        assert_eq!(ips(&large), ready);
        assert!(large.edns.is_some());
        // No AAAA: the name exists, so NODATA.
        let aaaa = udp(udp_addr, db, RecordType::AAAA).await;
        assert_negative(&aaaa, ResponseCode::NoError, "headless AAAA");

        // SRV: one per ready endpoint, its target the endpoint's own name, its port the
        // endpoint's.
        let srv_name = "_pg._tcp.db.demo.svc.cluster.local.";
        let cut = udp_edns(udp_addr, srv_name, RecordType::SRV, Some(1232)).await;
        assert!(cut.metadata.truncation);
        let srv = tcp(tcp_addr, srv_name, RecordType::SRV).await;
        assert_eq!(srv.answers.len(), 100);
        let mut targets = Vec::new();
        for record in &srv.answers {
            let RData::SRV(data) = &record.data else {
                panic!("{record:?}")
            };
            assert_eq!(data.port, 15432);
            targets.push(data.target.to_ascii());
        }
        assert!(targets.contains(&"10-1-0-7.db.demo.svc.cluster.local.".to_string()));
        assert!(!targets.iter().any(|t| t.starts_with("10-1-1-")));
        assert_eq!(srv.additionals.len(), 100);

        // Those names answer A; a not-ready endpoint's name does not exist.
        let one = udp(
            udp_addr,
            "10-1-0-7.db.demo.svc.cluster.local.",
            RecordType::A,
        )
        .await;
        assert_eq!(ips(&one), vec![ip("10.1.0.7")]);
        let not_ready = udp(
            udp_addr,
            "10-1-1-1.db.demo.svc.cluster.local.",
            RecordType::A,
        )
        .await;
        assert_negative(&not_ready, ResponseCode::NXDomain, "a not-ready endpoint");

        let stats = server.stats();
        assert_eq!(stats.truncated, 2, "{stats:?}");
        server.shutdown().await;
        std::fs::remove_dir_all(&dir).unwrap();
    })
    .await;
}

#[tokio::test]
async fn an_answer_past_64_kib_is_cut_with_tc_even_over_tcp() {
    bounded(async {
        let (store, dir) = store("huge").await;
        // 4200 ready endpoints: past what one TCP message holds (hickory compresses the
        // first 120 names of a message only, so most records carry their whole name).
        let mut text = String::from(
            "apiVersion: v1
kind: Service
metadata: {name: huge, namespace: demo}
spec: {clusterIP: None, ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: huge-a, namespace: demo, labels: {kubernetes.io/service-name: huge}}
addressType: IPv4
endpoints:
",
        );
        for i in 0..4200u32 {
            text.push_str(&format!(
                "- addresses: [10.2.{}.{}]\n",
                i / 250,
                i % 250 + 1
            ));
        }
        store.replace_source("huge", objects(&text)).await.unwrap();
        let server = DnsServer::start(config(Vec::new()), store).await.unwrap();
        let answer = tcp(
            server.tcp_addrs()[0],
            "huge.demo.svc.cluster.local.",
            RecordType::A,
        )
        .await;
        assert!(answer.metadata.truncation);
        assert!(
            answer.answers.len() > 1000 && answer.answers.len() < 4200,
            "{}",
            answer.answers.len()
        );
        server.shutdown().await;
        std::fs::remove_dir_all(&dir).unwrap();
    })
    .await;
}

#[tokio::test]
async fn outside_names_are_forwarded_relayed_and_cached() {
    bounded(async {
        let (store, dir) = store("forward").await;
        let upstream = fake_upstream(Upstream::Answers).await;
        let server = DnsServer::start(config(vec![upstream.addr]), store)
            .await
            .unwrap();
        let udp_addr = server.udp_addrs()[0];
        let tcp_addr = server.tcp_addrs()[0];

        let first = udp(udp_addr, "www.example.test.", RecordType::A).await;
        assert_eq!(first.metadata.response_code, ResponseCode::NoError);
        assert!(first.metadata.recursion_available);
        assert!(!first.metadata.authoritative);
        assert_eq!(ips(&first), vec![ip("192.0.2.1")]);
        assert_eq!(upstream.queries.load(Ordering::SeqCst), 1);

        // Asked again, over UDP or TCP and in another case: the cache answers.
        let again = udp(udp_addr, "WWW.example.TEST.", RecordType::A).await;
        assert_eq!(ips(&again), vec![ip("192.0.2.1")]);
        assert!(again.answers[0].ttl <= 300);
        let over_tcp = tcp(tcp_addr, "www.example.test.", RecordType::A).await;
        assert_eq!(ips(&over_tcp), vec![ip("192.0.2.1")]);
        assert_eq!(upstream.queries.load(Ordering::SeqCst), 1);

        // NXDOMAIN is relayed with its SOA, and cached too.
        for _ in 0..2 {
            let missing = udp(udp_addr, "missing.example.test.", RecordType::A).await;
            assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
            assert_eq!(missing.authorities.len(), 1);
        }
        assert_eq!(upstream.queries.load(Ordering::SeqCst), 2);

        // An upstream answer truncated over UDP is fetched again over TCP; the client
        // gets TC over UDP and the whole of it over TCP.
        let big_udp = udp(udp_addr, "big.example.test.", RecordType::A).await;
        assert!(big_udp.metadata.truncation);
        let big = tcp(tcp_addr, "big.example.test.", RecordType::A).await;
        assert_eq!(big.answers.len(), 60);
        // UDP then TCP to the upstream, once: the second client query hit the cache.
        assert_eq!(upstream.queries.load(Ordering::SeqCst), 4);

        let stats = server.stats();
        assert_eq!(stats.forwarded, 3, "{stats:?}");
        assert_eq!(stats.cache_hits, 4, "{stats:?}");
        assert_eq!(stats.cluster, 0, "{stats:?}");
        server.shutdown().await;
        std::fs::remove_dir_all(&dir).unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_silent_upstream_gets_servfail_in_time_and_never_delays_cluster_answers() {
    bounded(async {
        let (store, dir) = store("silent").await;
        let upstream = fake_upstream(Upstream::Silent).await;
        let timeout = Duration::from_millis(800);
        let server = DnsServer::start(
            DnsConfig {
                upstream_timeout: timeout,
                max_upstream_in_flight: 4,
                ..config(vec![upstream.addr])
            },
            store,
        )
        .await
        .unwrap();
        let udp_addr = server.udp_addrs()[0];

        // Ten questions for outside names at once: four go upstream and wait, six find
        // the limit reached and get SERVFAIL at once.
        let started = Instant::now();
        let mut outside = tokio::task::JoinSet::new();
        for i in 0..10 {
            outside.spawn(async move {
                let name = format!("slow{i}.example.test.");
                let answer = udp(udp_addr, &name, RecordType::A).await;
                (answer.metadata.response_code, started.elapsed())
            });
        }
        // Meanwhile cluster names answer at once, again and again.
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _ in 0..20 {
            let asked = Instant::now();
            let answer = udp(udp_addr, "web.demo.svc.cluster.local.", RecordType::A).await;
            assert_eq!(ips(&answer), vec![ip("10.96.0.10")]);
            assert!(
                asked.elapsed() < Duration::from_millis(300),
                "a cluster answer took {:?}",
                asked.elapsed()
            );
        }
        let mut fast = 0;
        let mut timed_out = 0;
        while let Some(done) = outside.join_next().await {
            let (code, elapsed) = done.unwrap();
            assert_eq!(code, ResponseCode::ServFail);
            if elapsed < Duration::from_millis(500) {
                fast += 1;
            } else {
                assert!(
                    elapsed >= timeout - Duration::from_millis(50),
                    "{elapsed:?}"
                );
                assert!(elapsed < timeout * 3, "SERVFAIL came late: {elapsed:?}");
                timed_out += 1;
            }
        }
        assert_eq!((fast, timed_out), (6, 4));
        let stats = server.stats();
        assert_eq!(stats.upstream_busy, 6, "{stats:?}");
        assert_eq!(stats.upstream_failures, 4, "{stats:?}");
        assert!(upstream.queries.load(Ordering::SeqCst) <= 4);

        // On one TCP connection too, a question waiting on the upstream does not hold
        // up the cluster question sent after it.
        let mut stream = TcpStream::connect(server.tcp_addrs()[0]).await.unwrap();
        let (slow_id, slow) = query_bytes("slow-tcp.example.test.", RecordType::A, None);
        let (fast_id, fast) = query_bytes("web.demo.svc.cluster.local.", RecordType::A, None);
        let sent = Instant::now();
        tcp_send(&mut stream, &slow).await;
        tcp_send(&mut stream, &fast).await;
        let first = Message::from_vec(&tcp_receive(&mut stream).await).unwrap();
        assert_eq!(first.metadata.id, fast_id);
        assert!(
            sent.elapsed() < Duration::from_millis(300),
            "{:?}",
            sent.elapsed()
        );
        let second = Message::from_vec(&tcp_receive(&mut stream).await).unwrap();
        assert_eq!(second.metadata.id, slow_id);
        assert_eq!(second.metadata.response_code, ResponseCode::ServFail);
        assert!(sent.elapsed() >= timeout - Duration::from_millis(50));
        drop(stream);

        // Failures are not cached: once a place is free the upstream is asked again.
        let before = upstream.queries.load(Ordering::SeqCst);
        let again = udp(udp_addr, "slow0.example.test.", RecordType::A).await;
        assert_eq!(again.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(upstream.queries.load(Ordering::SeqCst), before + 1);
        server.shutdown().await;
        std::fs::remove_dir_all(&dir).unwrap();
    })
    .await;
}

#[tokio::test]
async fn without_upstreams_outside_names_get_servfail_and_resolv_conf_is_read() {
    bounded(async {
        let (store, dir) = store("no-upstreams").await;
        // A resolv.conf that names no nameserver.
        let resolv = dir.join("resolv.conf");
        std::fs::write(&resolv, "search demo.svc.cluster.local\noptions ndots:5\n").unwrap();
        let server = DnsServer::start(
            DnsConfig {
                resolv_conf: Some(resolv),
                ..config(Vec::new())
            },
            store,
        )
        .await
        .unwrap();
        assert!(server.upstreams().is_empty());
        let udp_addr = server.udp_addrs()[0];
        let asked = Instant::now();
        let answer = udp(udp_addr, "www.example.test.", RecordType::A).await;
        assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
        assert!(asked.elapsed() < Duration::from_secs(1));
        // The cluster still answers.
        let web = udp(udp_addr, "web.demo.svc.cluster.local.", RecordType::A).await;
        assert_eq!(ips(&web), vec![ip("10.96.0.10")]);
        assert_eq!(server.stats().no_upstreams, 1);
        server.shutdown().await;
        std::fs::remove_dir_all(&dir).unwrap();
    })
    .await;
}

#[tokio::test]
async fn ipv6_loopback_listeners_answer_too() {
    bounded(async {
        let (store, dir) = store("ipv6").await;
        let any = SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), 0);
        let started = DnsServer::start(
            DnsConfig {
                udp: vec![any],
                tcp: vec![any],
                ..config(Vec::new())
            },
            store,
        )
        .await;
        let server = match started {
            Ok(server) => server,
            Err(error) => {
                // A machine without IPv6 loopback: nothing to test here.
                eprintln!("skipped: {error}");
                std::fs::remove_dir_all(&dir).unwrap();
                return;
            }
        };
        let udp_addr = server.udp_addrs()[0];
        assert!(udp_addr.is_ipv6());
        let socket = UdpSocket::bind((std::net::Ipv6Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let (id, bytes) = query_bytes("web.demo.svc.cluster.local.", RecordType::AAAA, None);
        socket.send_to(&bytes, udp_addr).await.unwrap();
        let mut buffer = vec![0u8; 4096];
        let (n, _) = tokio::time::timeout(ANSWER_WAIT, socket.recv_from(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        let answer = Message::from_vec(&buffer[..n]).unwrap();
        assert_eq!(answer.metadata.id, id);
        assert_eq!(ips(&answer), vec![ip("fd00::10")]);
        let over_tcp = tcp(
            server.tcp_addrs()[0],
            "web.demo.svc.cluster.local.",
            RecordType::A,
        )
        .await;
        assert_eq!(ips(&over_tcp), vec![ip("10.96.0.10")]);
        server.shutdown().await;
        std::fs::remove_dir_all(&dir).unwrap();
    })
    .await;
}

#[tokio::test]
async fn malformed_messages_get_formerr_and_never_stall_the_server() {
    bounded(async {
        let (store, dir) = store("garbage").await;
        let server = DnsServer::start(config(Vec::new()), store).await.unwrap();
        let udp_addr = server.udp_addrs()[0];
        let tcp_addr = server.tcp_addrs()[0];
        let formerr = |bytes: &[u8], id: u16| {
            let message = Message::from_vec(bytes).unwrap();
            assert_eq!(message.metadata.id, id);
            assert_eq!(message.metadata.message_type, MessageType::Response);
            assert_eq!(message.metadata.response_code, ResponseCode::FormErr);
        };

        // A header that promises a question and stops.
        let header_only = [0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
        let answer = udp_raw(udp_addr, &header_only, ANSWER_WAIT).await.unwrap();
        formerr(&answer, 0x1234);
        // Bytes that are no DNS at all, but start with something to take as an id.
        let text = b"\x56\x78GET / HTTP/1.1\r\nHost: example\r\n\r\n";
        let answer = udp_raw(udp_addr, text, ANSWER_WAIT).await.unwrap();
        formerr(&answer, 0x5678);
        // Shorter than a header: the id is enough to answer.
        let answer = udp_raw(udp_addr, &[0xab, 0xcd, 0x01], ANSWER_WAIT)
            .await
            .unwrap();
        formerr(&answer, 0xabcd);
        assert_eq!(answer.len(), 12);
        // Two questions in one message.
        let mut two = Message::new(0x4242, MessageType::Query, OpCode::Query);
        two.add_query(Query::query(
            Name::from_ascii("web.demo.svc.cluster.local.").unwrap(),
            RecordType::A,
        ));
        two.add_query(Query::query(
            Name::from_ascii("db.demo.svc.cluster.local.").unwrap(),
            RecordType::A,
        ));
        let answer = udp_raw(udp_addr, &two.to_vec().unwrap(), ANSWER_WAIT)
            .await
            .unwrap();
        formerr(&answer, 0x4242);

        // No answer to what cannot be answered: one byte, or a response.
        let quiet = Duration::from_millis(300);
        assert!(udp_raw(udp_addr, &[0x01], quiet).await.is_none());
        assert!(udp_raw(udp_addr, &[], quiet).await.is_none());
        let response = Message::new(7, MessageType::Response, OpCode::Query)
            .to_vec()
            .unwrap();
        assert!(udp_raw(udp_addr, &response, quiet).await.is_none());

        // Over TCP: garbage gets FORMERR and the connection goes on serving.
        let mut stream = TcpStream::connect(tcp_addr).await.unwrap();
        tcp_send(&mut stream, b"\x99\x01\x00garbage garbage garbage").await;
        formerr(&tcp_receive(&mut stream).await, 0x9901);
        let (id, bytes) = query_bytes("web.demo.svc.cluster.local.", RecordType::A, None);
        tcp_send(&mut stream, &bytes).await;
        let answer = Message::from_vec(&tcp_receive(&mut stream).await).unwrap();
        assert_eq!(answer.metadata.id, id);
        assert_eq!(ips(&answer), vec![ip("10.96.0.10")]);
        drop(stream);

        // A burst of junk, then a real question: answered.
        let socket = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
        for i in 0..200u16 {
            let junk: Vec<u8> = (0..(i % 40) as u8)
                .map(|j| (i as u8).wrapping_mul(j))
                .collect();
            socket.send_to(&junk, udp_addr).await.unwrap();
        }
        let web = udp(udp_addr, "web.demo.svc.cluster.local.", RecordType::A).await;
        assert_eq!(ips(&web), vec![ip("10.96.0.10")]);

        let stats = server.stats();
        assert!(stats.formerr >= 5, "{stats:?}");
        assert!(stats.dropped >= 3, "{stats:?}");
        server.shutdown().await;
        std::fs::remove_dir_all(&dir).unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_store_update_shows_in_the_next_answer() {
    bounded(async {
        let (store, dir) = store("update").await;
        let server = DnsServer::start(config(Vec::new()), store.clone())
            .await
            .unwrap();
        let udp_addr = server.udp_addrs()[0];
        let web = "web.demo.svc.cluster.local.";
        assert_eq!(
            ips(&udp(udp_addr, web, RecordType::A).await),
            vec![ip("10.96.0.10")]
        );

        // web moves to new cluster IPs, db goes, api appears.
        let changed = WEB
            .replace("10.96.0.10", "10.96.0.99")
            .replace("fd00::10", "fd00::99")
            + "---\napiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: demo}\n\
               spec: {clusterIP: 10.96.0.20, ports: [{name: grpc, port: 9000}]}\n";
        store
            .replace_source("manifests:test", objects(&changed))
            .await
            .unwrap();

        assert_eq!(
            ips(&udp(udp_addr, web, RecordType::A).await),
            vec![ip("10.96.0.99")]
        );
        assert_eq!(
            ips(&udp(udp_addr, web, RecordType::AAAA).await),
            vec![ip("fd00::99")]
        );
        let gone = udp(udp_addr, "db.demo.svc.cluster.local.", RecordType::A).await;
        assert_negative(&gone, ResponseCode::NXDomain, "a deleted Service");
        let api = udp(udp_addr, "api.demo.svc.cluster.local.", RecordType::A).await;
        assert_eq!(ips(&api), vec![ip("10.96.0.20")]);
        let ptr = udp(udp_addr, "99.0.96.10.in-addr.arpa.", RecordType::PTR).await;
        let RData::PTR(target) = &ptr.answers[0].data else {
            panic!("{:?}", ptr.answers)
        };
        assert_eq!(target.0.to_ascii(), web);
        server.shutdown().await;
        std::fs::remove_dir_all(&dir).unwrap();
    })
    .await;
}
