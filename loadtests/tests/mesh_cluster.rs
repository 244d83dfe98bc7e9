//! Three full nodes on loopback with real certificates, real QUIC tunnels, real SQLite
//! stores and real sockets: cross-node calls, locality preference, failover when a node
//! dies, a node restarted without its source serving from its store, destination QPS,
//! refusals that come at once, a bad manifest that changes nothing, and SOCKS5.
#![allow(clippy::unwrap_used)] // A test that unwraps fails where the assumption broke.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use causeway_loadtests::client;
use causeway_loadtests::cluster::LoopbackCluster;
use causeway_loadtests::topology::Topology;
use causeway_yaml::Source;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CALL: Duration = Duration::from_secs(5);

/// Sites s1 = {n1, n2} and s2 = {n3}.
/// - `near` runs everywhere, no policy: the default prefers the caller's node.
/// - `site` runs on n2 and n3 and prefers the caller's site.
/// - `far` runs on n3 only.
/// - `limited` runs on n3, at most 2 new connections then 1 per 10 s, at the destination.
/// - `empty` has no endpoints.
/// - `sticky` and `cookie` run on n1 and n2, hashed on a header and on a cookie.
const TOPOLOGY: &str = r#"
apiVersion: causeway.dev/v1alpha1
kind: Topology
spec:
  basePort: 0
  sites:
  - {name: s1, nodes: [n1, n2]}
  - {name: s2, relay: true, nodes: [n3]}
  apps:
  - {name: near, namespace: t, port: 80, nodes: [n1, n2, n3]}
  - {name: site, namespace: t, port: 80, nodes: [n2, n3]}
  - {name: far, namespace: t, port: 8000, nodes: [n3]}
  - {name: limited, namespace: t, port: 80, nodes: [n3]}
  - {name: empty, namespace: t, port: 80, nodes: []}
  - {name: sticky, namespace: t, port: 80, nodes: [n1, n2]}
  - {name: cookie, namespace: t, port: 80, nodes: [n1, n2]}
  policies:
  - apiVersion: policy.causeway.dev/v1alpha1
    kind: TrafficPolicy
    metadata: {name: sticky, namespace: t}
    spec:
      targetRef: {name: sticky}
      loadBalancer: {algorithm: ConsistentHash, consistentHash: {header: x-user}}
      locality: {prefer: Any}
  - apiVersion: policy.causeway.dev/v1alpha1
    kind: TrafficPolicy
    metadata: {name: cookie, namespace: t}
    spec:
      targetRef: {name: cookie}
      loadBalancer: {algorithm: ConsistentHash, consistentHash: {cookie: {name: session, ttl: 1h}}}
      locality: {prefer: Any}
  - apiVersion: policy.causeway.dev/v1alpha1
    kind: TrafficPolicy
    metadata: {name: site, namespace: t}
    spec:
      targetRef: {name: site}
      locality: {prefer: Site}
  - apiVersion: policy.causeway.dev/v1alpha1
    kind: TrafficPolicy
    metadata: {name: limited, namespace: t}
    spec:
      targetRef: {name: limited}
      rateLimit: {qps: 0.1, burst: 2, enforceAt: Destination}
"#;

fn state_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "causeway-mesh-cluster-{test}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn cluster(test: &str) -> LoopbackCluster {
    let topology = Topology::parse(&Source::new("test-topology", TOPOLOGY)).unwrap();
    LoopbackCluster::start(topology, &state_dir(test))
        .await
        .expect("the cluster starts")
}

/// Stops every node and removes the cluster's files.
async fn finish(cluster: LoopbackCluster) {
    let root = cluster.root().to_path_buf();
    cluster.shutdown().await;
    let _ = std::fs::remove_dir_all(root);
}

fn proxy(cluster: &LoopbackCluster, node: &str) -> SocketAddr {
    cluster.node(node).unwrap().http_proxy()
}

/// Who answered each of `calls` calls from `node` to `url`.
async fn answers(
    cluster: &LoopbackCluster,
    node: &str,
    url: &str,
    calls: usize,
) -> BTreeMap<String, usize> {
    let mut by_node = BTreeMap::new();
    for _ in 0..calls {
        let answer = client::ask_echo(proxy(cluster, node), url, CALL)
            .await
            .unwrap_or_else(|e| panic!("{node} -> {url}: {e}"));
        *by_node.entry(answer.identity.node).or_insert(0) += 1;
    }
    by_node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_cross_nodes_and_prefer_the_nearest_endpoints() {
    let cluster = cluster("locality").await;
    // Only n3 runs `far`: n1's call crosses a tunnel, authenticated both ways.
    assert_eq!(
        answers(&cluster, "n1", "http://far.t:8000/", 3).await,
        BTreeMap::from([("n3".to_string(), 3)])
    );
    let links = cluster
        .node("n1")
        .unwrap()
        .mesh()
        .unwrap()
        .tunnel()
        .health(&causeway_tunnels::NodeName::new("n3").unwrap());
    assert!(links.iter().any(|l| l.up), "n1 has a link to n3: {links:?}");
    // The default prefers the caller's own node.
    for node in ["n1", "n2", "n3"] {
        assert_eq!(
            answers(&cluster, node, "http://near.t/", 5).await,
            BTreeMap::from([(node.to_string(), 5)]),
            "{node} calls its own pod"
        );
    }
    // `site` prefers the caller's site: n1 has no pod, n2 in its site has.
    assert_eq!(
        answers(&cluster, "n1", "http://site.t/", 6).await,
        BTreeMap::from([("n2".to_string(), 6)])
    );
    // Names resolve like a pod's: full name, namespace-qualified, and the ClusterIP.
    for url in [
        "http://far.t.svc.cluster.local:8000/",
        "http://far.t.svc:8000/",
        "http://10.96.0.12:8000/",
    ] {
        let answer = client::ask_echo(proxy(&cluster, "n1"), url, CALL).await;
        assert_eq!(answer.unwrap().identity.node, "n3", "{url}");
    }
    finish(cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_fails_over_when_a_node_dies_and_returns_when_it_is_back() {
    let mut cluster = cluster("failover").await;
    assert_eq!(
        answers(&cluster, "n1", "http://site.t/", 4).await,
        BTreeMap::from([("n2".to_string(), 4)])
    );
    cluster.stop_node("n2").await.unwrap();
    // n2 is gone without a word to the store (no control plane here): its endpoint is
    // still listed as ready. Every call must still be answered, from the other site.
    let started = Instant::now();
    assert_eq!(
        answers(&cluster, "n1", "http://site.t/", 10).await,
        BTreeMap::from([("n3".to_string(), 10)])
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "failover took {took:?}");

    cluster.start_node("n2", true).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let by_node = answers(&cluster, "n1", "http://site.t/", 2).await;
        if by_node.contains_key("n2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "n1 never went back to n2: {by_node:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    finish(cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_its_source_serves_from_its_store() {
    let mut cluster = cluster("offline").await;
    assert_eq!(
        answers(&cluster, "n1", "http://far.t:8000/", 1).await,
        BTreeMap::from([("n3".to_string(), 1)])
    );
    cluster.stop_node("n1").await.unwrap();
    // The manifests are gone for good; n1 comes back with no source at all.
    std::fs::remove_dir_all(cluster.manifests_dir()).unwrap();
    cluster.start_node("n1", false).await.unwrap();
    let store = cluster
        .node("n1")
        .unwrap()
        .mesh()
        .unwrap()
        .store()
        .snapshot();
    assert_eq!(store.services().count(), 7, "the store kept every Service");
    assert_eq!(
        answers(&cluster, "n1", "http://far.t:8000/", 2).await,
        BTreeMap::from([("n3".to_string(), 2)])
    );
    assert_eq!(
        answers(&cluster, "n1", "http://near.t/", 2).await,
        BTreeMap::from([("n1".to_string(), 2)])
    );
    finish(cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_come_at_once_with_a_reason() {
    let cluster = cluster("refusals").await;
    let n1 = proxy(&cluster, "n1");
    // No endpoints: 503 at once, not a hang.
    let started = Instant::now();
    let empty = client::get_via_proxy(n1, "http://empty.t/", CALL)
        .await
        .unwrap();
    assert_eq!(empty.status, 503, "{}", empty.body);
    assert!(
        empty.body.contains("t/empty:80 has no ready endpoints"),
        "{}",
        empty.body
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    // Not a Service of the mesh: the proxy reaches nothing else.
    let outside = client::get_via_proxy(n1, "http://example.com/", CALL)
        .await
        .unwrap();
    assert_eq!(outside.status, 404, "{}", outside.body);
    assert!(
        outside.body.contains("not a service of this mesh"),
        "{}",
        outside.body
    );
    // A port the Service does not have.
    let port = client::get_via_proxy(n1, "http://far.t:9999/", CALL)
        .await
        .unwrap();
    assert_eq!(port.status, 404, "{}", port.body);
    // The destination's QPS limit: a burst of 2 new connections, then 429 with a wait —
    // for callers on the endpoint's own node, and in the same bucket for the others.
    let n3 = proxy(&cluster, "n3");
    for i in 0..2 {
        let ok = client::get_via_proxy(n3, "http://limited.t/", CALL)
            .await
            .unwrap();
        assert_eq!(ok.status, 200, "call {i}: {}", ok.body);
    }
    let local = client::get_via_proxy(n3, "http://limited.t/", CALL)
        .await
        .unwrap();
    assert_eq!(
        local.status, 429,
        "same-node callers are limited: {}",
        local.body
    );
    let limited = client::get_via_proxy(n1, "http://limited.t/", CALL)
        .await
        .unwrap();
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(limited.body.contains("retry in"), "{}", limited.body);
    // Counted where it was enforced.
    let admin = cluster.node("n3").unwrap().addresses.admin.unwrap();
    let metrics = client::get(admin, "/metrics", CALL).await.unwrap().body;
    assert!(
        metrics
            .contains(r#"causeway_errors_total{service="t/limited:80",reason="rate_limited"} 2"#),
        "{metrics}"
    );
    finish(cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_manifest_changes_nothing_and_is_reported() {
    let cluster = cluster("bad-manifest").await;
    let broken = cluster.manifests_dir().join("broken.yaml");
    std::fs::write(
        &broken,
        "apiVersion: v1\nkind: Service\nmetadata: {name: far, namespace: t}\nspec:\n  ports: [{port: not-a-number}]\n",
    )
    .unwrap();
    let admin = cluster.node("n1").unwrap().addresses.admin.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let dump = loop {
        let dump: serde_json::Value =
            serde_json::from_str(&client::get(admin, "/config_dump", CALL).await.unwrap().body)
                .unwrap();
        if dump["manifests"]["problems"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
        {
            break dump;
        }
        assert!(
            Instant::now() < deadline,
            "the broken file was never reported: {dump}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let problems = dump["manifests"]["problems"].to_string();
    assert!(problems.contains("broken.yaml:5"), "{problems}");
    // Everything still works as before.
    assert_eq!(
        answers(&cluster, "n1", "http://far.t:8000/", 2).await,
        BTreeMap::from([("n3".to_string(), 2)])
    );
    finish(cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_reaches_services_by_name() {
    let cluster = cluster("socks").await;
    let socks = cluster.node("n1").unwrap().addresses.socks.unwrap();
    let mut tcp = tokio::net::TcpStream::connect(socks).await.unwrap();
    // Greeting: version 5, one method, no authentication.
    tcp.write_all(&[5, 1, 0]).await.unwrap();
    let mut choice = [0u8; 2];
    tcp.read_exact(&mut choice).await.unwrap();
    assert_eq!(choice, [5, 0]);
    // CONNECT far.t:8000 by name: the mesh resolves it.
    let host = b"far.t";
    let mut request = vec![5, 1, 0, 3, host.len() as u8];
    request.extend_from_slice(host);
    request.extend_from_slice(&8000u16.to_be_bytes());
    tcp.write_all(&request).await.unwrap();
    let mut reply = [0u8; 10];
    tcp.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply[1], 0, "SOCKS reply {reply:?}");
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: far.t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""node":"n3""#), "{response}");
    // A name outside the mesh is refused with "not allowed".
    let mut tcp = tokio::net::TcpStream::connect(socks).await.unwrap();
    tcp.write_all(&[5, 1, 0]).await.unwrap();
    tcp.read_exact(&mut choice).await.unwrap();
    let mut request = vec![5, 1, 0, 3, 11];
    request.extend_from_slice(b"example.com");
    request.extend_from_slice(&80u16.to_be_bytes());
    tcp.write_all(&request).await.unwrap();
    tcp.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply[1], 2, "SOCKS reply {reply:?}");
    finish(cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_hashed_on_a_header_or_a_cookie_stay_on_one_pod() {
    let cluster = cluster("hashing").await;
    let n3 = proxy(&cluster, "n3");
    async fn ask(proxy: SocketAddr, head: &str) -> String {
        let mut tcp = tokio::net::TcpStream::connect(proxy).await.unwrap();
        let request = format!("GET http://{head}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        tokio::time::timeout(CALL, tcp.read_to_string(&mut reply))
            .await
            .unwrap()
            .unwrap();
        reply
    }
    fn pod_of(reply: &str) -> String {
        reply
            .split("\"pod\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?")
            .to_string()
    }
    // The same header value, the same pod, every time.
    for user in ["alice", "bob", "carol"] {
        let head = format!("sticky.t/ HTTP/1.1\r\nHost: sticky.t\r\nx-user: {user}");
        let mut pods = std::collections::BTreeSet::new();
        for _ in 0..8 {
            pods.insert(pod_of(&ask(n3, &head).await));
        }
        assert_eq!(pods.len(), 1, "{user} reached {pods:?}");
        assert!(!pods.contains("?"), "{pods:?}");
    }
    // No cookie: the mesh sets one; sending it back keeps the pod.
    let first = ask(n3, "cookie.t/ HTTP/1.1\r\nHost: cookie.t").await;
    let cookie = first
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no Set-Cookie in {first}"));
    assert!(
        cookie.starts_with("session=") && cookie.contains("Max-Age=3600"),
        "{cookie}"
    );
    let value = cookie.split(';').next().unwrap();
    let head = format!("cookie.t/ HTTP/1.1\r\nHost: cookie.t\r\nCookie: {value}");
    let mut pods = std::collections::BTreeSet::new();
    for _ in 0..8 {
        let reply = ask(n3, &head).await;
        assert!(
            !reply.contains("set-cookie"),
            "a request with the cookie gets no new one"
        );
        pods.insert(pod_of(&reply));
    }
    assert_eq!(pods.len(), 1, "one session reached {pods:?}");
    assert!(
        pods.contains(&pod_of(&first)),
        "the first answer's pod keeps the session"
    );
    finish(cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_cannot_respell_a_service_port_and_clients_cannot_mint_metric_series() {
    use causeway_tunnels::{NodeName, ProxyTarget, Request};
    let cluster = cluster("respell").await;
    let pod = cluster.pods().iter().find(|p| p.app == "far").unwrap().addr;
    let n1 = cluster.node("n1").unwrap().mesh().unwrap().tunnel().clone();
    let n3 = NodeName::new("n3").unwrap();
    let mut admitted = Vec::new();
    for service in [
        "t/far:8000",
        "t/far:08000",
        "t/far:+8000",
        "t//far:8000",
        "t/far:8000 ",
    ] {
        let request = Request::ProxyTcp(ProxyTarget {
            endpoint: pod,
            service: service.to_string(),
            source: None,
            source_workload: String::new(),
        });
        if tokio::time::timeout(CALL, n1.open(&n3, request))
            .await
            .unwrap()
            .is_ok()
        {
            admitted.push(service);
        }
    }
    assert_eq!(
        admitted,
        ["t/far:8000"],
        "only the canonical spelling passes"
    );
    // Names a client makes up are counted under one label.
    let proxy = proxy(&cluster, "n1");
    for i in 0..20 {
        let _ = client::get_via_proxy(proxy, &format!("http://x{i}.example/"), CALL).await;
    }
    let admin = cluster.node("n1").unwrap().addresses.admin.unwrap();
    let metrics = client::get(admin, "/metrics", CALL).await.unwrap().body;
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.contains("not_a_service"))
        .collect();
    assert_eq!(series.len(), 1, "{series:?}");
    assert!(series[0].ends_with(" 20"), "{series:?}");
    finish(cluster).await;
}
