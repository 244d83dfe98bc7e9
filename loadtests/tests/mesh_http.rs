//! Per-request HTTP through real nodes on loopback (real certificates, QUIC tunnels,
//! SQLite stores), for HTTP/1.1, HTTP/2 (h2c) and gRPC each: requests spread per
//! request on one client connection, header and cookie stickiness that survives the
//! removal of another endpoint, 429 with Retry-After at the source and at the
//! destination, a 503 retried onto a healthy endpoint, a request timeout, an endpoint
//! ejected and re-admitted, a WebSocket echo through two nodes, bodies larger than any
//! buffer flowing with back-pressure, and a policy swapped under load with no failure.
//!
//! Endpoints are echo apps the tests start themselves on their own loopback addresses
//! (so a test can break, stop and restart one), placed on the cluster's nodes by the
//! EndpointSlices the tests write into the nodes' manifests directory.
#![allow(clippy::unwrap_used)] // A test that unwraps fails where the assumption broke.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use causeway_loadtests::cluster::LoopbackCluster;
use causeway_loadtests::echo::{self, Behaviour, EchoApp, Identity};
use causeway_loadtests::topology::Topology;
use causeway_yaml::Source;
use http::{HeaderMap, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CALL: Duration = Duration::from_secs(10);
const POD_PORT: u16 = 18080;

/// Sites s1 = {n1, n2} and s2 = {n3}; the one app only makes the topology complete.
const TOPOLOGY: &str = r#"
apiVersion: causeway.dev/v1alpha1
kind: Topology
spec:
  basePort: 0
  sites:
  - {name: s1, nodes: [n1, n2]}
  - {name: s2, relay: true, nodes: [n3]}
  apps:
  - {name: near, namespace: t, port: 80, nodes: [n1]}
"#;

/// The three ways a port can speak HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Http1,
    H2c,
    Grpc,
    /// A port that names no protocol: the mesh looks at the first bytes.
    Detect,
}

const PROTOS: [Proto; 3] = [Proto::Http1, Proto::H2c, Proto::Grpc];

impl Proto {
    fn app_protocol(self) -> &'static str {
        match self {
            Proto::Http1 => "http",
            Proto::H2c => "kubernetes.io/h2c",
            Proto::Grpc => "grpc",
            Proto::Detect => "",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Proto::Http1 => "h1",
            Proto::H2c => "h2",
            Proto::Grpc => "grpc",
            Proto::Detect => "detect",
        }
    }
}

struct Mesh {
    cluster: LoopbackCluster,
    test: u8,
}

async fn mesh(test: &str, number: u8) -> Mesh {
    let dir =
        std::env::temp_dir().join(format!("causeway-mesh-http-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let topology = Topology::parse(&Source::new("test-topology", TOPOLOGY)).unwrap();
    let cluster = LoopbackCluster::start(topology, &dir)
        .await
        .expect("the cluster starts");
    Mesh {
        cluster,
        test: number,
    }
}

impl Mesh {
    /// The loopback address of pod `index` of service number `service` of this test.
    fn pod_ip(&self, service: u8, index: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, 90 + self.test, service, index + 1)
    }

    async fn pod(&self, service: u8, index: u8, node: &str, behaviour: Behaviour) -> EchoApp {
        let addr = SocketAddr::from((self.pod_ip(service, index), POD_PORT));
        let identity = Identity {
            pod: format!("p{index}"),
            node: node.to_string(),
            site: String::new(),
        };
        // A restarted pod may find its port still in TIME_WAIT for a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match echo::spawn_with(addr, identity.clone(), behaviour.clone()).await {
                Ok(app) => return app,
                Err(error) if Instant::now() < deadline => {
                    tracing::debug!(%error, "retrying the pod's bind");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("pod {addr}: {error}"),
            }
        }
    }

    /// Writes Service `name` (number `service`, port 80 speaking `proto`) with
    /// endpoints `(pod index, node)` and the TrafficPolicy `spec` (YAML, indented by
    /// four), and waits until every node holds it.
    async fn apply(
        &self,
        service: u8,
        name: &str,
        proto: Proto,
        endpoints: &[(u8, &str)],
        spec: &str,
    ) {
        let mut endpoint_lines = String::new();
        for (index, node) in endpoints {
            endpoint_lines.push_str(&format!(
                "- addresses: [\"{}\"]\n  nodeName: {node}\n  conditions: {{ready: true}}\n",
                self.pod_ip(service, *index)
            ));
        }
        let policy = if spec.trim().is_empty() {
            String::new()
        } else {
            format!(
                "---\napiVersion: policy.causeway.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {{name: {name}, namespace: t}}\nspec:\n  targetRef: {{name: {name}}}\n{spec}\n"
            )
        };
        let app_protocol = match proto {
            Proto::Detect => String::new(),
            other => format!(", appProtocol: \"{}\"", other.app_protocol()),
        };
        let yaml = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: t}}\nspec:\n  clusterIP: 10.96.{}.{service}\n  ports:\n  - {{name: web, port: 80, targetPort: {POD_PORT}, protocol: TCP{app_protocol}}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-1\n  namespace: t\n  labels: {{kubernetes.io/service-name: {name}}}\naddressType: IPv4\nendpoints:\n{endpoint_lines}ports:\n- {{name: web, port: {POD_PORT}, protocol: TCP}}\n{policy}",
            self.test,
        );
        let file = self.cluster.manifests_dir().join(format!("{name}.yaml"));
        let temp = self.cluster.manifests_dir().join(format!(".{name}.tmp"));
        std::fs::write(&temp, &yaml).unwrap();
        std::fs::rename(&temp, &file).unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let everywhere = ["n1", "n2", "n3"].iter().all(|node| {
                let snapshot = self
                    .cluster
                    .node(node)
                    .unwrap()
                    .mesh()
                    .unwrap()
                    .store()
                    .snapshot();
                snapshot.service("t", name).is_some_and(|s| {
                    s.endpoints.len() == endpoints.len()
                        && s.ports.iter().any(|p| {
                            p.app_protocol.as_deref().unwrap_or("") == proto.app_protocol()
                        })
                })
            });
            if everywhere {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the nodes never saw {name}:\n{yaml}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Policies compile off the hot path, just after the store changes.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    fn proxy(&self, node: &str) -> SocketAddr {
        self.cluster.node(node).unwrap().http_proxy()
    }

    async fn finish(self) {
        let root = self.cluster.root().to_path_buf();
        self.cluster.shutdown().await;
        let _ = std::fs::remove_dir_all(root);
    }
}

/// A TCP connection to `host:80` through the HTTP proxy of a node (CONNECT).
async fn tunnel(proxy: SocketAddr, host: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(proxy).await.unwrap();
    // As real clients do: without it, Nagle holds small frames (an HTTP/2 END_STREAM)
    // for the peer's delayed ACK.
    tcp.set_nodelay(true).unwrap();
    tcp.write_all(format!("CONNECT {host}:80 HTTP/1.1\r\nHost: {host}:80\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(tcp.read(&mut byte).await.unwrap(), 1, "the proxy closed");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200"), "CONNECT refused: {head}");
    tcp
}

enum Client {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One client connection to Service `name` through node `node`, speaking `proto`.
async fn client(mesh: &Mesh, node: &str, name: &str, proto: Proto) -> Client {
    let tcp = tunnel(mesh.proxy(node), &format!("{name}.t")).await;
    match proto {
        Proto::Http1 | Proto::Detect => {
            let (sender, connection) = http1::handshake(TokioIo::new(tcp)).await.unwrap();
            tokio::spawn(connection.with_upgrades());
            Client::H1(sender)
        }
        Proto::H2c | Proto::Grpc => {
            let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
            tokio::spawn(connection);
            Client::H2(sender)
        }
    }
}

/// What a call got back.
#[derive(Debug)]
struct Reply {
    /// The HTTP status.
    status: u16,
    /// The gRPC status, for gRPC calls.
    grpc: Option<u32>,
    /// The pod that answered, when one did.
    pod: Option<String>,
    headers: HeaderMap,
    body: String,
}

/// One call: GET `path` for HTTP, a unary call carrying `headers` as metadata for gRPC.
async fn call(
    client: &mut Client,
    proto: Proto,
    name: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let host = format!("{name}.t");
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let pod_of = |body: &str| {
        serde_json::from_str::<echo::Answer>(body.trim())
            .ok()
            .map(|a| a.identity.pod)
    };
    let exchange = async {
        match (proto, client) {
            (Proto::Grpc, Client::H2(sender)) => {
                let reply = echo::grpc_unary(sender, &host, "/causeway.Echo/Say", b"hi", &map)
                    .await
                    .unwrap();
                let body = reply
                    .payload
                    .as_ref()
                    .map(|p| String::from_utf8_lossy(p).to_string())
                    .unwrap_or_default();
                Reply {
                    status: reply.http_status.as_u16(),
                    grpc: Some(reply.status),
                    pod: pod_of(&body),
                    headers: reply.headers,
                    body,
                }
            }
            (_, client) => {
                let uri = match client {
                    Client::H1(_) => path.to_string(),
                    Client::H2(_) => format!("http://{host}{path}"),
                };
                let mut request = Request::get(uri).body(Full::new(Bytes::new())).unwrap();
                if let Client::H1(_) = client {
                    request
                        .headers_mut()
                        .insert(http::header::HOST, HeaderValue::from_str(&host).unwrap());
                }
                request.headers_mut().extend(map);
                let response = match client {
                    Client::H1(sender) => {
                        sender.ready().await.unwrap();
                        sender.send_request(request).await.unwrap()
                    }
                    Client::H2(sender) => {
                        sender.ready().await.unwrap();
                        sender.send_request(request).await.unwrap()
                    }
                };
                let (parts, body) = response.into_parts();
                let body =
                    String::from_utf8_lossy(&body.collect().await.unwrap().to_bytes()).to_string();
                Reply {
                    status: parts.status.as_u16(),
                    grpc: None,
                    pod: pod_of(&body),
                    headers: parts.headers,
                    body,
                }
            }
        }
    };
    tokio::time::timeout(CALL, exchange)
        .await
        .unwrap_or_else(|_| panic!("{proto:?} {name}{path}: no answer within {CALL:?}"))
}

/// A request body that does not say its length (so no `content-length` is sent), as
/// gRPC clients send theirs.
struct NoLength(Option<Bytes>);

impl hyper::body::Body for NoLength {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.take().map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

fn ok(reply: &Reply) -> bool {
    reply.status == 200 && reply.grpc.is_none_or(|g| g == 0)
}

async fn metric(mesh: &Mesh, node: &str, prefix: &str) -> f64 {
    let admin = mesh.cluster.node(node).unwrap().addresses.admin.unwrap();
    let text = causeway_loadtests::client::get(admin, "/metrics", CALL)
        .await
        .unwrap()
        .body;
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_on_one_connection_spread_over_endpoints_per_request() {
    let mesh = mesh("spread", 1).await;
    for (i, proto) in PROTOS.into_iter().enumerate() {
        let service = i as u8 + 1;
        let name = format!("spread-{}", proto.short());
        let pods = [
            mesh.pod(service, 0, "n1", Behaviour::default()).await,
            mesh.pod(service, 1, "n2", Behaviour::default()).await,
            mesh.pod(service, 2, "n3", Behaviour::default()).await,
        ];
        mesh.apply(
            service,
            &name,
            proto,
            &[(0, "n1"), (1, "n2"), (2, "n3")],
            "  loadBalancer: {algorithm: RoundRobin}\n  locality: {prefer: Any}",
        )
        .await;
        let mut client = client(&mesh, "n1", &name, proto).await;
        for _ in 0..30 {
            let reply = call(&mut client, proto, &name, "/", &[]).await;
            assert!(ok(&reply), "{proto:?}: {reply:?}");
        }
        let counts: Vec<u64> = pods.iter().map(EchoApp::requests).collect();
        // One client connection, thirty requests, each balanced on its own: round robin
        // over three endpoints (one of them across a tunnel) gives each ten.
        assert_eq!(counts, vec![10, 10, 10], "{proto:?}");
        // The client's HTTP version need not be the port's: an HTTP/1.1 client reaches an
        // h2c port, an HTTP/2 client an HTTP/1.1 one, across the tunnel too.
        let other = match proto {
            Proto::Http1 => Proto::H2c,
            Proto::H2c => Proto::Http1,
            Proto::Grpc | Proto::Detect => continue,
        };
        let mut client = self::client(&mesh, "n1", &name, other).await;
        for _ in 0..6 {
            let reply = call(&mut client, other, &name, "/", &[]).await;
            assert!(
                ok(&reply),
                "{other:?} client to a {proto:?} port: {reply:?}"
            );
        }
        let counts: Vec<u64> = pods.iter().map(EchoApp::requests).collect();
        assert_eq!(counts, vec![12, 12, 12], "{proto:?}");
    }
    mesh.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_cookie_stickiness_survive_the_removal_of_another_endpoint() {
    let mesh = mesh("sticky", 2).await;
    for (i, proto) in PROTOS.into_iter().enumerate() {
        let service = i as u8 + 1;
        let name = format!("sticky-{}", proto.short());
        let _pods = [
            mesh.pod(service, 0, "n1", Behaviour::default()).await,
            mesh.pod(service, 1, "n2", Behaviour::default()).await,
            mesh.pod(service, 2, "n3", Behaviour::default()).await,
            mesh.pod(service, 3, "n3", Behaviour::default()).await,
        ];
        let spec = "  loadBalancer: {algorithm: ConsistentHash, consistentHash: {header: x-user}}\n  locality: {prefer: Any}";
        let all = [(0, "n1"), (1, "n2"), (2, "n3"), (3, "n3")];
        mesh.apply(service, &name, proto, &all, spec).await;
        let mut client = client(&mesh, "n1", &name, proto).await;
        let mut before = BTreeMap::new();
        for user in 0..24 {
            let user = format!("user-{user}");
            let first = call(&mut client, proto, &name, "/", &[("x-user", &user)]).await;
            let again = call(&mut client, proto, &name, "/", &[("x-user", &user)]).await;
            assert!(ok(&first) && ok(&again), "{proto:?}: {first:?} {again:?}");
            assert_eq!(first.pod, again.pod, "{proto:?}: {user} moved");
            before.insert(user, first.pod.unwrap());
        }
        let used: std::collections::BTreeSet<&String> = before.values().collect();
        assert!(
            used.len() >= 2,
            "{proto:?}: every user on one pod: {before:?}"
        );
        // p1 leaves: only its users move.
        mesh.apply(
            service,
            &name,
            proto,
            &[(0, "n1"), (2, "n3"), (3, "n3")],
            spec,
        )
        .await;
        let mut client = self::client(&mesh, "n1", &name, proto).await;
        for (user, pod) in &before {
            let reply = call(&mut client, proto, &name, "/", &[("x-user", user)]).await;
            assert!(ok(&reply), "{proto:?}: {reply:?}");
            if pod != "p1" {
                assert_eq!(
                    reply.pod.as_ref(),
                    Some(pod),
                    "{proto:?}: {user} moved off {pod}"
                );
            } else {
                assert_ne!(reply.pod.as_deref(), Some("p1"));
            }
        }
        if proto == Proto::Grpc {
            continue;
        }
        // A cookie: set by the mesh on the first answer, then followed.
        let cookie_name = format!("cookie-{}", proto.short());
        mesh.apply(
            10 + service,
            &cookie_name,
            proto,
            &[(0, "n1"), (2, "n3"), (3, "n3")],
            "  loadBalancer: {algorithm: ConsistentHash, consistentHash: {cookie: {name: session, ttl: 1h}}}\n  locality: {prefer: Any}",
        )
        .await;
        let _cookie_pods = [
            mesh.pod(10 + service, 0, "n1", Behaviour::default()).await,
            mesh.pod(10 + service, 2, "n3", Behaviour::default()).await,
            mesh.pod(10 + service, 3, "n3", Behaviour::default()).await,
        ];
        let mut client = self::client(&mesh, "n1", &cookie_name, proto).await;
        let mut sessions = Vec::new();
        for _ in 0..8 {
            let first = call(&mut client, proto, &cookie_name, "/", &[]).await;
            assert!(ok(&first), "{proto:?}: {first:?}");
            let set = first.headers[http::header::SET_COOKIE]
                .to_str()
                .unwrap()
                .to_string();
            assert!(set.contains("Max-Age=3600"), "{set}");
            let cookie = set.split(';').next().unwrap().to_string();
            for _ in 0..3 {
                let again = call(
                    &mut client,
                    proto,
                    &cookie_name,
                    "/",
                    &[("cookie", &cookie)],
                )
                .await;
                assert_eq!(again.pod, first.pod, "{proto:?}: {cookie} moved");
                assert!(again.headers.get(http::header::SET_COOKIE).is_none());
            }
            sessions.push((cookie, first.pod.unwrap()));
        }
        // p2 leaves: the sessions on p0 and p3 stay where they are.
        mesh.apply(
            10 + service,
            &cookie_name,
            proto,
            &[(0, "n1"), (3, "n3")],
            "  loadBalancer: {algorithm: ConsistentHash, consistentHash: {cookie: {name: session, ttl: 1h}}}\n  locality: {prefer: Any}",
        )
        .await;
        let mut client = self::client(&mesh, "n1", &cookie_name, proto).await;
        for (cookie, pod) in &sessions {
            let reply = call(&mut client, proto, &cookie_name, "/", &[("cookie", cookie)]).await;
            assert!(ok(&reply), "{proto:?}: {reply:?}");
            if pod != "p2" {
                assert_eq!(
                    reply.pod.as_ref(),
                    Some(pod),
                    "{proto:?}: {cookie} moved off {pod}"
                );
            }
        }
    }
    mesh.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_answers_429_with_retry_after_at_the_source_and_the_destination() {
    let mesh = mesh("limits", 3).await;
    for (i, proto) in PROTOS.into_iter().enumerate() {
        for (j, at) in ["Source", "Destination"].into_iter().enumerate() {
            let service = (i * 2 + j) as u8 + 1;
            let name = format!("limit-{}-{}", proto.short(), at.to_lowercase());
            let _pod = mesh.pod(service, 0, "n3", Behaviour::default()).await;
            mesh.apply(
                service,
                &name,
                proto,
                &[(0, "n3")],
                &format!("  rateLimit: {{qps: 0.1, burst: 2, enforceAt: {at}}}"),
            )
            .await;
            let mut client = client(&mesh, "n1", &name, proto).await;
            for n in 0..2 {
                let reply = call(&mut client, proto, &name, "/", &[]).await;
                assert!(ok(&reply), "{proto:?} {at} call {n}: {reply:?}");
            }
            // The third request on the same connection: refused, with when to come back.
            let refused = call(&mut client, proto, &name, "/", &[]).await;
            match proto {
                Proto::Grpc => assert_eq!(refused.grpc, Some(8), "{at}: {refused:?}"),
                _ => assert_eq!(refused.status, 429, "{proto:?} {at}: {refused:?}"),
            }
            let wait: u64 = refused.headers[http::header::RETRY_AFTER]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                (1..=10).contains(&wait),
                "{proto:?} {at}: Retry-After {wait}"
            );
        }
    }
    mesh.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_retried_on_a_healthy_endpoint_and_a_slow_one_times_out() {
    let mesh = mesh("retry", 4).await;
    for (i, proto) in PROTOS.into_iter().enumerate() {
        let service = i as u8 + 1;
        let name = format!("retry-{}", proto.short());
        let broken = Behaviour {
            fail_after: Some(0),
            ..Behaviour::default()
        };
        let pods = [
            mesh.pod(service, 0, "n1", broken).await,
            mesh.pod(service, 1, "n3", Behaviour::default()).await,
        ];
        mesh.apply(
            service,
            &name,
            proto,
            &[(0, "n1"), (1, "n3")],
            "  loadBalancer: {algorithm: RoundRobin}\n  locality: {prefer: Any}\n  retries: {attempts: 2, retryOn: [5xx]}\n  timeouts: {request: 300ms}",
        )
        .await;
        let retries_before = metric(&mesh, "n1", "causeway_http_retries_total").await;
        let mut client = client(&mesh, "n1", &name, proto).await;
        for n in 0..10 {
            let reply = call(&mut client, proto, &name, "/", &[]).await;
            assert!(ok(&reply), "{proto:?} call {n}: {reply:?}");
            assert_eq!(reply.pod.as_deref(), Some("p1"), "{proto:?}");
        }
        assert!(
            pods[0].requests() >= 4,
            "{proto:?}: the broken pod was tried"
        );
        let retries = metric(&mesh, "n1", "causeway_http_retries_total").await - retries_before;
        assert!(retries >= 4.0, "{proto:?}: {retries} retries counted");
        if proto == Proto::Grpc {
            // A gRPC client that sends no content-length (grpc-go, tonic) is retried too:
            // its one message ends the stream at once, and the mesh keeps it.
            let tcp = tunnel(mesh.proxy("n1"), &format!("{name}.t")).await;
            let (mut sender, connection) =
                http2::handshake::<_, _, NoLength>(TokioExecutor::new(), TokioIo::new(tcp))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            for n in 0..6 {
                let request = Request::post(format!("http://{name}.t/causeway.Echo/Say"))
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(NoLength(Some(echo::grpc::frame_message(b"hi"))))
                    .unwrap();
                let response = sender.send_request(request).await.unwrap();
                let (parts, body) = response.into_parts();
                let collected = body.collect().await.unwrap();
                let status = parts
                    .headers
                    .get("grpc-status")
                    .or_else(|| collected.trailers().and_then(|t| t.get("grpc-status")))
                    .map(|v| v.to_str().unwrap().to_string());
                assert_eq!(
                    parts.status,
                    200,
                    "call {n}: {parts:?} {:?}",
                    collected.to_bytes()
                );
                assert_eq!(status.as_deref(), Some("0"), "call {n}: {parts:?}");
            }
        }
        // A request slower than the request timeout: 504 (DEADLINE_EXCEEDED) in time.
        let started = Instant::now();
        let slow = call(
            &mut client,
            proto,
            &name,
            "/delay/3000",
            &[("x-echo-delay-ms", "3000")],
        )
        .await;
        match proto {
            Proto::Grpc => assert_eq!(slow.grpc, Some(4), "{slow:?}"),
            _ => assert_eq!(slow.status, 504, "{proto:?}: {slow:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "{:?}",
            started.elapsed()
        );
    }
    mesh.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_ejected_then_readmitted() {
    let mesh = mesh("eject", 5).await;
    for (i, proto) in PROTOS.into_iter().enumerate() {
        let service = i as u8 + 1;
        let name = format!("eject-{}", proto.short());
        let broken = Behaviour {
            fail_after: Some(0),
            ..Behaviour::default()
        };
        let bad = mesh.pod(service, 0, "n1", broken).await;
        let _good = [
            mesh.pod(service, 1, "n1", Behaviour::default()).await,
            mesh.pod(service, 2, "n3", Behaviour::default()).await,
        ];
        mesh.apply(
            service,
            &name,
            proto,
            &[(0, "n1"), (1, "n1"), (2, "n3")],
            "  loadBalancer: {algorithm: RoundRobin}\n  locality: {prefer: Any}\n  retries: {attempts: 0}\n  outlierDetection: {consecutiveErrors: 2, baseEjectionTime: 3s, maxEjectionPercent: 50}",
        )
        .await;
        let mut client = client(&mesh, "n1", &name, proto).await;
        let mut failures = 0;
        for _ in 0..9 {
            if !ok(&call(&mut client, proto, &name, "/", &[]).await) {
                failures += 1;
            }
        }
        assert_eq!(failures, 2, "{proto:?}: two failures in a row eject p0");
        let seen = bad.requests();
        for n in 0..12 {
            let reply = call(&mut client, proto, &name, "/", &[]).await;
            assert!(
                ok(&reply),
                "{proto:?} call {n} after the ejection: {reply:?}"
            );
        }
        assert_eq!(
            bad.requests(),
            seen,
            "{proto:?}: the ejected pod got no request"
        );
        // The pod recovers; after its ejection time it is picked again.
        drop(bad);
        let healed = mesh.pod(service, 0, "n1", Behaviour::default()).await;
        tokio::time::sleep(Duration::from_millis(3300)).await;
        for n in 0..9 {
            let reply = call(&mut client, proto, &name, "/", &[]).await;
            assert!(
                ok(&reply),
                "{proto:?} call {n} after the readmission: {reply:?}"
            );
        }
        assert!(
            healed.requests() >= 2,
            "{proto:?}: readmitted p0 got {}",
            healed.requests()
        );
    }
    mesh.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_echoes_through_two_nodes() {
    let mesh = mesh("websocket", 6).await;
    let _pod = mesh.pod(1, 0, "n3", Behaviour::default()).await;
    mesh.apply(1, "ws", Proto::Http1, &[(0, "n3")], "").await;
    // Through n1's proxy as an absolute-URI request, and through CONNECT.
    let tcp = TcpStream::connect(mesh.proxy("n1")).await.unwrap();
    let echoed = echo::websocket_echo_once(tcp, "ws.t", "http://ws.t/chat", b"hello across sites")
        .await
        .unwrap();
    assert_eq!(echoed, b"hello across sites");
    let tcp = tunnel(mesh.proxy("n1"), "ws.t").await;
    let messages: Vec<&[u8]> = vec![b"one", b"two", &[7u8; 70_000]];
    let echoed = echo::websocket_echo(tcp, "ws.t", "/chat", &messages)
        .await
        .unwrap();
    assert_eq!(echoed.len(), 3);
    assert_eq!(echoed[2].len(), 70_000);
    mesh.finish().await;
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_through_two_nodes_with_back_pressure() {
    const SIZE: u64 = 256 * 1024 * 1024;
    let mesh = mesh("stream", 7).await;
    for (i, proto) in [Proto::Http1, Proto::H2c].into_iter().enumerate() {
        let service = i as u8 + 1;
        let name = format!("stream-{}", proto.short());
        let _pod = mesh.pod(service, 0, "n3", Behaviour::default()).await;
        mesh.apply(service, &name, proto, &[(0, "n3")], "").await;
        let host = format!("{name}.t");
        let rss_before = rss_bytes();
        // Download: counted as it arrives, never held.
        let tcp = tunnel(mesh.proxy("n1"), &host).await;
        let uri_path = format!("/bytes/{SIZE}");
        let response = match proto {
            Proto::Http1 => {
                let (mut sender, connection) =
                    http1::handshake::<_, http_body_util::Empty<Bytes>>(TokioIo::new(tcp))
                        .await
                        .unwrap();
                tokio::spawn(connection);
                let request = Request::get(&uri_path)
                    .header("host", &host)
                    .body(http_body_util::Empty::new())
                    .unwrap();
                sender.send_request(request).await.unwrap()
            }
            _ => {
                let (mut sender, connection) =
                    http2::handshake::<_, _, http_body_util::Empty<Bytes>>(
                        TokioExecutor::new(),
                        TokioIo::new(tcp),
                    )
                    .await
                    .unwrap();
                tokio::spawn(connection);
                let request = Request::get(format!("http://{host}{uri_path}"))
                    .body(http_body_util::Empty::new())
                    .unwrap();
                sender.send_request(request).await.unwrap()
            }
        };
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut received = 0u64;
        let mut peak = 0u64;
        let download = async {
            while let Some(frame) = body.frame().await {
                if let Some(data) = frame.unwrap().data_ref() {
                    received += data.len() as u64;
                    if received % (32 * 1024 * 1024) < data.len() as u64 {
                        peak = peak.max(rss_bytes());
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(120), download)
            .await
            .unwrap();
        assert_eq!(received, SIZE, "{proto:?}");
        // Upload: the endpoint counts what it was sent.
        let tcp = tunnel(mesh.proxy("n1"), &host).await;
        let upload = async {
            match proto {
                Proto::Http1 => {
                    let (mut sender, connection) =
                        http1::handshake::<_, echo::ByteBody>(TokioIo::new(tcp))
                            .await
                            .unwrap();
                    tokio::spawn(connection);
                    let request = Request::post("/count")
                        .header("host", &host)
                        .body(echo::ByteBody::new(SIZE))
                        .unwrap();
                    sender.send_request(request).await.unwrap()
                }
                _ => {
                    let (mut sender, connection) = http2::handshake::<_, _, echo::ByteBody>(
                        TokioExecutor::new(),
                        TokioIo::new(tcp),
                    )
                    .await
                    .unwrap();
                    tokio::spawn(connection);
                    let request = Request::post(format!("http://{host}/count"))
                        .body(echo::ByteBody::new(SIZE))
                        .unwrap();
                    sender.send_request(request).await.unwrap()
                }
            }
        };
        let response = tokio::time::timeout(Duration::from_secs(120), upload)
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let answer: serde_json::Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        assert_eq!(answer["bytes"].as_u64(), Some(SIZE), "{proto:?}: {answer}");
        peak = peak.max(rss_bytes());
        // Three nodes, the client and the pod share this process: had any of them held
        // the body, it would have grown by 256 MiB.
        let grown = peak.saturating_sub(rss_before);
        assert!(
            grown < 96 * 1024 * 1024,
            "{proto:?}: RSS grew by {} MiB",
            grown / (1024 * 1024)
        );
    }
    mesh.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_swapped_under_load_fails_no_request() {
    let mesh = mesh("swap", 8).await;
    for (i, proto) in PROTOS.into_iter().enumerate() {
        let service = i as u8 + 1;
        let name = format!("swap-{}", proto.short());
        let _pods = [
            mesh.pod(service, 0, "n1", Behaviour::default()).await,
            mesh.pod(service, 1, "n2", Behaviour::default()).await,
            mesh.pod(service, 2, "n3", Behaviour::default()).await,
        ];
        let endpoints = [(0, "n1"), (1, "n2"), (2, "n3")];
        let specs = [
            "  loadBalancer: {algorithm: RoundRobin}\n  locality: {prefer: Any}",
            "  loadBalancer: {algorithm: PeakEwma}\n  locality: {prefer: Site}\n  retries: {attempts: 1}",
            "  loadBalancer: {algorithm: ConsistentHash, consistentHash: {header: x-user}}\n  timeouts: {request: 5s}",
            "  loadBalancer: {algorithm: LeastRequest}\n  rateLimit: {qps: 100000}",
        ];
        mesh.apply(service, &name, proto, &endpoints, specs[0])
            .await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut load = tokio::task::JoinSet::new();
        for worker in 0..4 {
            let mut client = client(&mesh, "n1", &name, proto).await;
            let stop = std::sync::Arc::clone(&stop);
            let name = name.clone();
            load.spawn(async move {
                let mut done = 0u32;
                let mut failed = Vec::new();
                // Bounded: at most 5,000 requests per worker, and stopped by the test.
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && done < 5_000 {
                    let user = format!("u{worker}-{done}");
                    let reply = call(&mut client, proto, &name, "/", &[("x-user", &user)]).await;
                    if !ok(&reply) {
                        failed.push(format!("{reply:?}"));
                    }
                    done += 1;
                }
                (done, failed)
            });
        }
        for spec in specs.iter().cycle().skip(1).take(6) {
            mesh.apply(service, &name, proto, &endpoints, spec).await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut total = 0;
        while let Some(result) = load.join_next().await {
            let (done, failed) = result.unwrap();
            assert!(
                failed.is_empty(),
                "{proto:?}: {} failed: {:?}",
                failed.len(),
                &failed[..failed.len().min(3)]
            );
            total += done;
        }
        assert!(
            total >= 100,
            "{proto:?}: only {total} requests ran under the swaps"
        );
    }
    mesh.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_names_no_protocol_is_sniffed() {
    let mesh = mesh("sniff", 9).await;
    // HTTP on an unnamed port: recognised by its request line, balanced per request.
    let pods = [
        mesh.pod(1, 0, "n1", Behaviour::default()).await,
        mesh.pod(1, 1, "n3", Behaviour::default()).await,
    ];
    mesh.apply(
        1,
        "sniffed",
        Proto::Detect,
        &[(0, "n1"), (1, "n3")],
        "  loadBalancer: {algorithm: RoundRobin}\n  locality: {prefer: Any}",
    )
    .await;
    let mut client = client(&mesh, "n1", "sniffed", Proto::Detect).await;
    for _ in 0..10 {
        let reply = call(&mut client, Proto::Detect, "sniffed", "/", &[]).await;
        assert!(ok(&reply), "{reply:?}");
    }
    assert_eq!(
        pods.iter().map(EchoApp::requests).collect::<Vec<_>>(),
        vec![5, 5]
    );
    // HTTP/2 with prior knowledge on the same port: recognised by its preface.
    let mut client = self::client(&mesh, "n1", "sniffed", Proto::H2c).await;
    let reply = call(&mut client, Proto::H2c, "sniffed", "/", &[]).await;
    assert!(ok(&reply), "{reply:?}");
    // Anything else is carried as bytes: a raw TCP echo server behind the same kind
    // of port answers what it was sent.
    let addr = SocketAddr::from((mesh.pod_ip(2, 0), POD_PORT));
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let server = tokio::spawn(async move {
        // Bounded: serves the test's connections, each to its end.
        for _ in 0..4 {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut read, mut write) = tcp.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    mesh.apply(2, "raw", Proto::Detect, &[(0, "n3")], "").await;
    let mut tcp = tunnel(mesh.proxy("n1"), "raw.t").await;
    tcp.write_all(b"\x00\x01 not http at all\n").await.unwrap();
    let mut echoed = [0u8; 19];
    tokio::time::timeout(CALL, tcp.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"\x00\x01 not http at all\n");
    // A server-first protocol: the client says nothing, the mesh stops waiting and
    // carries the bytes.
    let mut quiet = tunnel(mesh.proxy("n1"), "raw.t").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    quiet.write_all(b"late").await.unwrap();
    let mut late = [0u8; 4];
    tokio::time::timeout(CALL, quiet.read_exact(&mut late))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&late, b"late");
    server.abort();
    mesh.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pending_queue_sheds_with_503_and_oversized_heads_are_refused() {
    let mesh = mesh("shed", 10).await;
    let slow = Behaviour {
        // Long enough that all four requests arrive while the first is in flight,
        // however slow the machine.
        delay: Duration::from_millis(1500),
        ..Behaviour::default()
    };
    let _pod = mesh.pod(1, 0, "n1", slow).await;
    mesh.apply(
        1,
        "shed",
        Proto::Http1,
        &[(0, "n1")],
        "  connectionPool: {maxConnections: 1, maxPendingRequests: 1}\n  retries: {attempts: 0}",
    )
    .await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let mut client = client(&mesh, "n1", "shed", Proto::Http1).await;
        calls.spawn(async move { call(&mut client, Proto::Http1, "shed", "/", &[]).await });
    }
    let mut statuses = Vec::new();
    while let Some(reply) = calls.join_next().await {
        let reply = reply.unwrap();
        if reply.status == 503 {
            assert!(reply.body.contains("maxPendingRequests"), "{reply:?}");
        }
        statuses.push(reply.status);
    }
    statuses.sort_unstable();
    // One in flight, one waiting, the other two shed at once.
    assert_eq!(statuses, vec![200, 200, 503, 503]);
    // A request head with more headers than the limit is refused before it goes on.
    let mut client = client(&mesh, "n1", "shed", Proto::Http1).await;
    let many: Vec<(String, String)> = (0..150).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    if let Client::H1(sender) = &mut client {
        let mut request = Request::get("/").header("host", "shed.t");
        for (k, v) in &many {
            request = request.header(*k, *v);
        }
        let sent = sender
            .send_request(request.body(Full::new(Bytes::new())).unwrap())
            .await;
        match sent {
            Ok(response) => assert_eq!(response.status(), 431),
            // hyper may close the connection instead of answering: refused either way.
            Err(error) => assert!(
                error.is_closed() || error.is_incomplete_message(),
                "{error}"
            ),
        }
    }
    mesh.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_policy_never_replaces_the_last_good_one() {
    let mesh = mesh("lastgood", 11).await;
    let _pod = mesh.pod(1, 0, "n1", Behaviour::default()).await;
    mesh.apply(
        1,
        "guarded",
        Proto::Http1,
        &[(0, "n1")],
        "  rateLimit: {qps: 0.1, burst: 1, enforceAt: Source}",
    )
    .await;
    let mut client = client(&mesh, "n1", "guarded", Proto::Http1).await;
    assert!(ok(
        &call(&mut client, Proto::Http1, "guarded", "/", &[]).await
    ));
    assert_eq!(
        call(&mut client, Proto::Http1, "guarded", "/", &[])
            .await
            .status,
        429
    );
    // A new version that does not validate: refused, reported, the limit stays.
    mesh.apply(
        1,
        "guarded",
        Proto::Http1,
        &[(0, "n1")],
        "  rateLimit: {qps: -5}\n  loadBalancer: {algorithm: Fastest}",
    )
    .await;
    let admin = mesh.cluster.node("n1").unwrap().addresses.admin.unwrap();
    let dump = causeway_loadtests::client::get(admin, "/config_dump", CALL)
        .await
        .unwrap()
        .body;
    assert!(
        dump.contains("Fastest"),
        "the refusal is on /config_dump: {dump}"
    );
    assert_eq!(
        call(&mut client, Proto::Http1, "guarded", "/", &[])
            .await
            .status,
        429,
        "the last good policy is still in force"
    );
    mesh.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_see_who_called_and_never_the_meshs_own_headers() {
    let mesh = mesh("headers", 12).await;
    let _pods = [
        mesh.pod(1, 0, "n1", Behaviour::default()).await,
        mesh.pod(1, 1, "n3", Behaviour::default()).await,
    ];
    mesh.apply(
        1,
        "hdr",
        Proto::Http1,
        &[(0, "n1"), (1, "n3")],
        "  loadBalancer: {algorithm: RoundRobin}\n  locality: {prefer: Any}",
    )
    .await;
    for proto in [Proto::Http1, Proto::H2c] {
        let mut client = client(&mesh, "n1", "hdr", proto).await;
        let mut pods = std::collections::BTreeSet::new();
        for _ in 0..2 {
            let mut sent = vec![
                ("x-forwarded-for", "192.0.2.7"),
                // A client pretending to be a mesh.
                ("causeway-source", "10.9.9.9:1"),
                ("causeway-error", "connect-failure"),
            ];
            if proto == Proto::Http1 {
                sent.extend([
                    ("connection", "keep-alive, x-hop"),
                    ("x-hop", "for the proxy only"),
                    ("keep-alive", "timeout=5"),
                ]);
            }
            let reply = call(&mut client, proto, "hdr", "/headers", &sent).await;
            assert!(ok(&reply), "{proto:?}: {reply:?}");
            let answer: echo::Answer = serde_json::from_str(reply.body.trim()).unwrap();
            let headers = answer.headers.unwrap();
            // The caller (this test, on loopback) appended to what the client said.
            assert_eq!(
                headers.get("x-forwarded-for").map(String::as_str),
                Some("192.0.2.7, 127.0.0.1"),
                "{proto:?} at {}: {headers:?}",
                answer.identity.pod
            );
            for private in ["causeway-source", "causeway-error", "x-hop", "keep-alive"] {
                assert!(
                    !headers.contains_key(private),
                    "{proto:?}: {private} reached {}: {headers:?}",
                    answer.identity.pod
                );
            }
            assert_eq!(answer.host, "hdr.t", "{proto:?}");
            pods.insert(answer.identity.pod);
        }
        // One answer from this node's pod, one from across the tunnel.
        assert_eq!(pods.len(), 2, "{proto:?}: {pods:?}");
    }
    mesh.finish().await;
}
