//! The echo app misbehaving on purpose and speaking more protocols, each against a real
//! app on 127.0.0.1:0 over real sockets: status and delay overrides, injected 503s,
//! `fail_after`, a 50 MiB streamed download and upload, gRPC unary over h2c, and a
//! WebSocket echo. Every call has a deadline; every loop is bounded.
#![allow(clippy::unwrap_used)] // A test that unwraps fails where the assumption broke.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use causeway_loadtests::echo::{
    self, Answer, Behaviour, ByteBody, CountAnswer, EchoApp, Identity, grpc, grpc_unary,
    websocket_echo, websocket_echo_once,
};
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

const DEADLINE: Duration = Duration::from_secs(30);
const FIFTY_MIB: u64 = 50 << 20;

type Body = BoxBody<Bytes, Infallible>;

fn identity(pod: &str) -> Identity {
    Identity {
        pod: pod.to_string(),
        node: "n1".to_string(),
        site: "s1".to_string(),
    }
}

async fn app(behaviour: Behaviour) -> EchoApp {
    echo::spawn_with(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        identity("echo-0"),
        behaviour,
    )
    .await
    .unwrap()
}

async fn within<T>(call: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, call)
        .await
        .expect("no answer within the deadline")
}

async fn h1(addr: SocketAddr) -> http1::SendRequest<Body> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(connection);
    sender
}

async fn h2<B>(addr: SocketAddr) -> http2::SendRequest<B>
where
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

fn empty() -> Body {
    Empty::new().boxed()
}

/// GETs `path` with `headers` on an HTTP/1.1 connection: status, headers, whole body.
async fn get(
    sender: &mut http1::SendRequest<Body>,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Bytes) {
    let mut request = Request::get(path)
        .header(http::header::HOST, "echo.test")
        .body(empty())
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    within(async {
        sender.ready().await.unwrap();
        let response = sender.send_request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (parts.status, parts.headers, body)
    })
    .await
}

fn answer(body: &Bytes) -> Answer {
    serde_json::from_slice(body).unwrap()
}

#[tokio::test]
async fn status_paths_and_the_status_header_set_the_status() {
    let app = app(Behaviour::default()).await;
    let mut sender = h1(app.addr()).await;

    let (status, headers, body) = get(&mut sender, "/status/418", &[]).await;
    assert_eq!(status, StatusCode::IM_A_TEAPOT);
    assert_eq!(headers["x-causeway-pod"], "echo-0");
    let echoed = answer(&body);
    assert_eq!(echoed.path, "/status/418");
    assert_eq!(echoed.host, "echo.test");
    assert_eq!(echoed.identity, identity("echo-0"));

    let (status, _, body) = get(&mut sender, "/anything?x=1", &[("x-echo-status", "503")]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer(&body).path, "/anything?x=1");

    // The header wins over the path.
    let (status, _, _) = get(&mut sender, "/status/500", &[("x-echo-status", "202")]).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    for bad in ["/status/101", "/status/600", "/status/abc"] {
        let (status, headers, _) = get(&mut sender, bad, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(headers.contains_key(echo::ERROR_HEADER), "{bad}");
    }
    let (status, _, _) = get(&mut sender, "/", &[("x-echo-status", "99")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, _, body) = get(&mut sender, "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer(&body).path, "/");
    assert_eq!(app.requests(), 8);
}

#[tokio::test]
async fn delays_come_from_the_behaviour_the_path_and_the_header() {
    let app = app(Behaviour {
        delay: Duration::from_millis(100),
        delay_jitter: Duration::from_millis(20),
        ..Behaviour::default()
    })
    .await;
    let mut sender = h1(app.addr()).await;

    let start = Instant::now();
    let (status, _, _) = get(&mut sender, "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        start.elapsed() >= Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );

    let start = Instant::now();
    let (status, _, body) = get(&mut sender, "/delay/150", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer(&body).path, "/delay/150");
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );

    let start = Instant::now();
    let (status, _, _) = get(&mut sender, "/", &[("x-echo-delay-ms", "120")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        start.elapsed() >= Duration::from_millis(220),
        "{:?}",
        start.elapsed()
    );

    let (status, _, _) = get(&mut sender, "/delay/soon", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_error_rate_of_one_fails_every_request_and_zero_none() {
    let failing = app(Behaviour {
        error_rate: 1.0,
        ..Behaviour::default()
    })
    .await;
    let healthy = app(Behaviour::default()).await;
    let mut to_failing = h1(failing.addr()).await;
    let mut to_healthy = h1(healthy.addr()).await;
    for _ in 0..20 {
        let (status, headers, body) = get(&mut to_failing, "/", &[]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[echo::FAULT_HEADER], "error-rate");
        assert_eq!(answer(&body).identity.pod, "echo-0");
        let (status, _, _) = get(&mut to_healthy, "/", &[]).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(failing.requests(), 20);
    assert_eq!(healthy.requests(), 20);

    // A bad rate is refused up front.
    let refused = echo::spawn_with(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        identity("x"),
        Behaviour {
            error_rate: 1.5,
            ..Behaviour::default()
        },
    )
    .await;
    assert!(matches!(refused, Err(echo::SpawnError::Behaviour(_))));
}

#[tokio::test]
async fn after_fail_after_requests_every_answer_is_503() {
    let app = app(Behaviour {
        fail_after: Some(5),
        ..Behaviour::default()
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        // Over new connections too: the app still accepts them.
        let mut sender = h1(app.addr()).await;
        let (status, headers, _) = get(&mut sender, &format!("/{i}"), &[]).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(headers[echo::FAULT_HEADER], "fail-after");
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 503, 503, 503]);
    assert_eq!(app.requests(), 8);
}

/// Reads a response body frame by frame, counting bytes and keeping none.
async fn count_body(mut body: hyper::body::Incoming) -> u64 {
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.unwrap().data_ref() {
            total += data.len() as u64;
        }
    }
    total
}

#[tokio::test]
async fn bytes_streams_fifty_mib_over_http1_and_h2() {
    let app = app(Behaviour::default()).await;
    let path = format!("/bytes/{FIFTY_MIB}");

    let mut sender = h1(app.addr()).await;
    let request = Request::get(&path)
        .header(http::header::HOST, "echo.test")
        .body(empty())
        .unwrap();
    let response = within(sender.send_request(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[http::header::CONTENT_LENGTH],
        FIFTY_MIB.to_string().as_str()
    );
    assert_eq!(within(count_body(response.into_body())).await, FIFTY_MIB);

    let mut sender = h2::<Body>(app.addr()).await;
    let request = Request::get(format!("http://echo.test{path}"))
        .body(empty())
        .unwrap();
    let response = within(sender.send_request(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(within(count_body(response.into_body())).await, FIFTY_MIB);

    // Sizes: nothing, and one over the cap.
    let mut sender = h1(app.addr()).await;
    let (status, _, body) = get(&mut sender, "/bytes/0", &[]).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 0));
    let (status, _, body) = get(&mut sender, "/bytes/7", &[("x-echo-status", "206")]).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::PARTIAL_CONTENT, &b"......."[..])
    );
    let over = format!("/bytes/{}", echo::MAX_BYTES + 1);
    let (status, _, _) = get(&mut sender, &over, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(app.requests(), 5);
}

#[tokio::test]
async fn count_reads_a_fifty_mib_upload_as_it_streams() {
    let app = app(Behaviour::default()).await;

    let mut sender = h1(app.addr()).await;
    let request = Request::post("/count")
        .header(http::header::HOST, "echo.test")
        .body(ByteBody::new(FIFTY_MIB).boxed())
        .unwrap();
    let response = within(sender.send_request(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = within(response.into_body().collect()).await.unwrap();
    let counted: CountAnswer = serde_json::from_slice(&body.to_bytes()).unwrap();
    assert_eq!(counted.bytes, FIFTY_MIB);
    assert_eq!(counted.answer.method, "POST");
    assert_eq!(counted.answer.identity.pod, "echo-0");

    // Over h2, where HTTP/2 flow control paces the upload.
    let mut sender = h2::<ByteBody>(app.addr()).await;
    let request = Request::post("http://echo.test/count")
        .body(ByteBody::new(FIFTY_MIB + 3))
        .unwrap();
    let response = within(sender.send_request(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = within(response.into_body().collect()).await.unwrap();
    let counted: CountAnswer = serde_json::from_slice(&body.to_bytes()).unwrap();
    assert_eq!(counted.bytes, FIFTY_MIB + 3);
    assert_eq!(app.requests(), 2);
}

#[tokio::test]
async fn grpc_unary_calls_answer_ok_or_the_status_asked_for() {
    let app = app(Behaviour::default()).await;
    let mut sender = h2::<Full<Bytes>>(app.addr()).await;
    let authority = app.addr().to_string();

    let reply = within(grpc_unary(
        &mut sender,
        &authority,
        "/echo.Echo/Call",
        b"ping",
        &HeaderMap::new(),
    ))
    .await
    .unwrap();
    assert_eq!(reply.http_status, StatusCode::OK);
    assert_eq!(reply.status, grpc::code::OK);
    assert_eq!(reply.trailers["grpc-status"], "0");
    assert!(!reply.trailers.contains_key("grpc-message"));
    assert_eq!(
        reply.headers[http::header::CONTENT_TYPE],
        "application/grpc"
    );
    assert_eq!(reply.headers["x-causeway-pod"], "echo-0");
    let echoed: Answer = serde_json::from_slice(&reply.payload.unwrap()).unwrap();
    assert_eq!(echoed.path, "/echo.Echo/Call");
    assert_eq!(echoed.method, "POST");
    assert_eq!(echoed.host, authority);
    assert_eq!(echoed.identity, identity("echo-0"));

    let mut metadata = HeaderMap::new();
    metadata.insert(grpc::STATUS_HEADER, HeaderValue::from_static("14"));
    let reply = within(grpc_unary(
        &mut sender,
        &authority,
        "/echo.Echo/Call",
        b"ping",
        &metadata,
    ))
    .await
    .unwrap();
    assert_eq!(reply.http_status, StatusCode::OK);
    assert_eq!(reply.status, grpc::code::UNAVAILABLE);
    assert_eq!(reply.headers["grpc-status"], "14");
    assert_eq!(reply.message.as_deref(), Some("echo: status 14 requested"));
    assert!(reply.payload.is_none());
    assert!(reply.trailers.is_empty(), "trailers-only");
    assert_eq!(app.requests(), 2);

    // An injected fault is an HTTP 503, which a gRPC client reads as UNAVAILABLE.
    let failing = self::app(Behaviour {
        error_rate: 1.0,
        ..Behaviour::default()
    })
    .await;
    let mut sender = h2::<Full<Bytes>>(failing.addr()).await;
    let reply = within(grpc_unary(
        &mut sender,
        &failing.addr().to_string(),
        "/echo.Echo/Call",
        b"ping",
        &HeaderMap::new(),
    ))
    .await
    .unwrap();
    assert_eq!(reply.http_status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.status, grpc::code::UNAVAILABLE);
}

#[tokio::test]
async fn websocket_frames_come_back() {
    let app = app(Behaviour::default()).await;
    let host = app.addr().to_string();

    let tcp = TcpStream::connect(app.addr()).await.unwrap();
    let echoed = within(websocket_echo_once(tcp, &host, "/ws", b"hello, mesh"))
        .await
        .unwrap();
    assert_eq!(echoed, b"hello, mesh");

    // Several messages on one connection: short, 16-bit and 64-bit lengths, and binary.
    let long = "x".repeat(70_000);
    let binary: Vec<u8> = (0..=255u8).cycle().take(300).collect();
    let messages: [&[u8]; 4] = [b"one", &[b'y'; 200], long.as_bytes(), &binary];
    let tcp = TcpStream::connect(app.addr()).await.unwrap();
    let echoed = within(websocket_echo(tcp, &host, "/ws", &messages))
        .await
        .unwrap();
    assert_eq!(echoed.len(), 4);
    for (sent, got) in messages.iter().zip(&echoed) {
        assert_eq!(*sent, got.as_slice());
    }
    // Each upgrade is one request, whatever its frames.
    assert_eq!(app.requests(), 2);

    // An upgrade with the status header is refused with that status.
    let mut sender = h1(app.addr()).await;
    let (status, _, _) = get(
        &mut sender,
        "/ws",
        &[
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("x-echo-status", "503"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn the_plain_spawn_still_answers_the_plain_line() {
    let (addr, task) = echo::spawn(SocketAddr::from(([127, 0, 0, 1], 0)), identity("old"))
        .await
        .unwrap();
    let mut sender = h1(addr).await;
    let (status, headers, body) = get(&mut sender, "/x", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-causeway-pod"], "old");
    assert_eq!(answer(&body).path, "/x");
    task.abort();
}

/// Upgrades a raw TCP connection by hand and returns it past the 101's head.
async fn upgraded(addr: SocketAddr) -> TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: echo.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 4096, "no end of the head");
        head.push(within(tcp.read_u8()).await.unwrap());
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.to_ascii_lowercase().contains(&format!(
        "sec-websocket-accept: {}",
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_ascii_lowercase()
    )));
    tcp
}

#[tokio::test]
async fn websocket_pings_protocol_errors_and_a_stopped_app() {
    use echo::websocket::{opcode, read_frame, write_frame};
    let app = app(Behaviour::default()).await;

    let mut tcp = upgraded(app.addr()).await;
    write_frame(&mut tcp, true, opcode::PING, b"p", Some([9, 8, 7, 6]))
        .await
        .unwrap();
    let pong = within(read_frame(&mut tcp, false)).await.unwrap();
    assert_eq!((pong.opcode, &pong.payload[..]), (opcode::PONG, &b"p"[..]));
    // An unmasked client frame is closed with 1002.
    write_frame(&mut tcp, true, opcode::TEXT, b"bare", None)
        .await
        .unwrap();
    let close = within(read_frame(&mut tcp, false)).await.unwrap();
    assert_eq!(close.opcode, opcode::CLOSE);
    assert_eq!(close.payload[..2], 1002u16.to_be_bytes());

    // Stopping the app ends its upgraded connections too.
    let mut tcp = upgraded(app.addr()).await;
    app.stop();
    let ended = within(read_frame(&mut tcp, false)).await;
    assert!(ended.is_err(), "{ended:?}");
}

// Raw TCP and UDP echo (`echo::raw`), served in-process on 127.0.0.1:0.

const LOCALHOST: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);
/// How long a UDP test waits for an answer that must not come.
const SILENCE: Duration = Duration::from_millis(300);

async fn tcp_echo(behaviour: Behaviour) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(LOCALHOST).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(echo::serve_tcp_echo(listener, identity("tcp-0"), behaviour));
    (addr, task)
}

async fn udp_echo(behaviour: Behaviour) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let socket = tokio::net::UdpSocket::bind(LOCALHOST).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(echo::serve_udp_echo(socket, identity("udp-0"), behaviour));
    (addr, task)
}

/// Connects and reads the greeting line: who answered, and the rest of the stream.
async fn greeted(addr: SocketAddr) -> (Identity, tokio::io::BufReader<TcpStream>) {
    use tokio::io::AsyncBufReadExt;
    let tcp = within(TcpStream::connect(addr)).await.unwrap();
    let mut reader = tokio::io::BufReader::new(tcp);
    let mut line = String::new();
    within(reader.read_line(&mut line)).await.unwrap();
    assert!(line.ends_with('\n'), "{line:?}");
    let who = echo::parse_greeting(&line).unwrap_or_else(|| panic!("not a greeting: {line:?}"));
    (who, reader)
}

/// Sends `payload` and waits for one answer, or `None` after [`SILENCE`].
async fn udp_call(
    client: &tokio::net::UdpSocket,
    server: SocketAddr,
    payload: &[u8],
) -> Option<Vec<u8>> {
    client.send_to(payload, server).await.unwrap();
    let mut buffer = vec![0u8; 65_536];
    let (len, from) = tokio::time::timeout(SILENCE, client.recv_from(&mut buffer))
        .await
        .ok()?
        .unwrap();
    assert_eq!(from, server);
    buffer.truncate(len);
    Some(buffer)
}

async fn udp_client() -> tokio::net::UdpSocket {
    tokio::net::UdpSocket::bind(LOCALHOST).await.unwrap()
}

#[tokio::test]
async fn tcp_echo_greets_then_echoes_64_kib_back() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, task) = tcp_echo(Behaviour::default()).await;
    let (who, reader) = greeted(addr).await;
    assert_eq!(who, identity("tcp-0"));

    let sent: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
    let (mut read, mut write) = reader.into_inner().into_split();
    let to_send = sent.clone();
    let writer = tokio::spawn(async move {
        write.write_all(&to_send).await.unwrap();
        write.shutdown().await.unwrap();
    });
    // The server shuts its write half down after our EOF, so this ends.
    let mut echoed = Vec::new();
    within(read.read_to_end(&mut echoed)).await.unwrap();
    within(writer).await.unwrap();
    assert_eq!(echoed.len(), sent.len());
    assert!(echoed == sent, "the echo differs from what was sent");
    task.abort();
}

#[tokio::test]
async fn tcp_echo_waits_the_delay_before_each_chunk() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let delay = Duration::from_millis(100);
    let (addr, task) = tcp_echo(Behaviour {
        delay,
        ..Behaviour::default()
    })
    .await;
    let (_, mut reader) = greeted(addr).await;
    for round in 0..3 {
        let started = Instant::now();
        reader.get_mut().write_all(b"ping").await.unwrap();
        let mut back = [0u8; 4];
        within(reader.read_exact(&mut back)).await.unwrap();
        let took = started.elapsed();
        assert_eq!(&back, b"ping");
        assert!(
            took >= delay,
            "round {round}: echoed after {took:?}, before {delay:?}"
        );
    }
    task.abort();
}

#[tokio::test]
async fn tcp_echo_closes_connections_past_fail_after() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, task) = tcp_echo(Behaviour {
        fail_after: Some(2),
        ..Behaviour::default()
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let (who, mut reader) = greeted(addr).await;
        assert_eq!(who.pod, "tcp-0");
        reader.get_mut().write_all(b"still here").await.unwrap();
        let mut back = [0u8; 10];
        within(reader.read_exact(&mut back)).await.unwrap();
        assert_eq!(&back, b"still here");
        open.push(reader);
    }
    for nth in 3..=4 {
        let mut tcp = within(TcpStream::connect(addr)).await.unwrap();
        let mut buffer = [0u8; 64];
        // Closed at once, without a greeting: EOF (or a reset, which is as closed).
        match within(tcp.read(&mut buffer)).await {
            Ok(read) => assert_eq!(read, 0, "connection {nth} got {:?}", &buffer[..read]),
            Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset),
        }
    }
    // The connections made before the limit keep working.
    let reader = &mut open[0];
    reader.get_mut().write_all(b"x").await.unwrap();
    assert_eq!(within(reader.read_u8()).await.unwrap(), b'x');
    task.abort();
}

#[tokio::test]
async fn udp_echo_answers_with_the_pod_and_the_payload() {
    let (addr, task) = udp_echo(Behaviour::default()).await;
    let client = udp_client().await;
    for payload in [&b"hello"[..], b"", b"two\nlines", &[0xff, 0x00, b'\n']] {
        let reply = udp_call(&client, addr, payload).await.expect("an answer");
        let (pod, echoed) = echo::split_udp_reply(&reply).unwrap();
        assert_eq!((pod, echoed), ("udp-0", payload));
        assert_eq!(reply, echo::raw::udp_reply("udp-0", payload));
    }
    // The largest datagram comes back cut to fit one.
    let big = vec![b'z'; echo::raw::MAX_UDP_REPLY];
    let reply = udp_call(&client, addr, &big).await.expect("an answer");
    assert_eq!(reply.len(), echo::raw::MAX_UDP_REPLY);
    let (pod, echoed) = echo::split_udp_reply(&reply).unwrap();
    assert_eq!(pod, "udp-0");
    assert_eq!(echoed, &big[..echo::raw::MAX_UDP_REPLY - "udp-0\n".len()]);
    task.abort();
}

#[tokio::test]
async fn udp_echo_with_an_error_rate_of_one_answers_nothing() {
    let (addr, task) = udp_echo(Behaviour {
        error_rate: 1.0,
        ..Behaviour::default()
    })
    .await;
    let client = udp_client().await;
    for _ in 0..3 {
        assert_eq!(udp_call(&client, addr, b"anyone?").await, None);
    }
    task.abort();
}

#[tokio::test]
async fn udp_echo_stops_answering_after_fail_after() {
    let (addr, task) = udp_echo(Behaviour {
        fail_after: Some(3),
        ..Behaviour::default()
    })
    .await;
    let client = udp_client().await;
    for nth in 1..=3 {
        let reply = udp_call(&client, addr, b"n").await;
        assert!(reply.is_some(), "datagram {nth} was not answered");
    }
    for _ in 0..2 {
        assert_eq!(udp_call(&client, addr, b"n").await, None);
    }
    task.abort();
}

#[tokio::test]
async fn udp_echo_delays_each_datagram_without_holding_up_the_others() {
    let delay = Duration::from_millis(250);
    let (addr, task) = udp_echo(Behaviour {
        delay,
        ..Behaviour::default()
    })
    .await;
    let client = udp_client().await;
    let started = Instant::now();
    for i in 0..5u8 {
        client.send_to(&[i], addr).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut buffer = [0u8; 64];
    for _ in 0..5 {
        let (len, _) = within(client.recv_from(&mut buffer)).await.unwrap();
        let (pod, payload) = echo::split_udp_reply(&buffer[..len]).unwrap();
        assert_eq!(pod, "udp-0");
        seen.extend_from_slice(payload);
    }
    let took = started.elapsed();
    seen.sort_unstable();
    assert_eq!(seen, [0, 1, 2, 3, 4]);
    assert!(took >= delay, "answered after {took:?}, before {delay:?}");
    // One after the other would take 5 × 250 ms.
    assert!(took < delay * 4, "the delays added up: {took:?}");
    task.abort();
}
