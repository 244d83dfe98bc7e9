//! The sample app of the quick start, the tests and the benchmarks: an HTTP server that
//! answers every request with who answered it — pod, node, site — and what it was asked,
//! as one line of JSON. HTTP/1.1 and HTTP/2 (h2c) on one port.
//!
//! It can also misbehave on purpose and speak more than plain HTTP, for the mesh's L7
//! proxy tests and benchmarks:
//!
//! - [`Behaviour`], for the whole app (`causeway app echo --delay 50ms --delay-jitter 10ms
//!   --error-rate 0.1 --fail-after 1000`): a delay before every answer, a random share of
//!   503s, and 503 for every request after the first N.
//! - Paths: `/status/NNN` answers with status NNN (200–599, else 400); `/delay/MS` waits
//!   MS milliseconds first (at most [`MAX_DELAY`]); `/bytes/N` streams N bytes in 64 KiB
//!   chunks made as they are sent (at most [`MAX_BYTES`], else 400); `POST /count` reads
//!   the request body as it streams and answers how many bytes it had ([`CountAnswer`]).
//!   Any other path gets the plain [`Answer`].
//! - Headers on any request: `x-echo-status: NNN` and `x-echo-delay-ms: MS`, the same as
//!   the paths, for one request (the header wins over a `/status/` path).
//! - gRPC unary ([`grpc`]): a POST with `content-type: application/grpc…` is answered as a
//!   gRPC server would, the answer line as the one response message;
//!   `x-echo-grpc-status: N` makes it fail with status N.
//! - WebSocket ([`websocket`]): an HTTP/1.1 upgrade, then every frame echoed back.
//! - Raw TCP and UDP echo ([`raw`]), on listeners of their own beside the HTTP one
//!   (`causeway app echo --tcp-echo ADDR --udp-echo ADDR`), for the mesh's L4 paths: TCP
//!   greets with `causeway-echo pod=… node=… site=…` and a newline, then sends back every
//!   byte; UDP answers each datagram with the pod, a newline and the payload. The same
//!   behaviour applies — a delay per chunk or datagram, `fail_after` connections closed
//!   at once or datagrams unanswered, `error_rate` datagrams dropped (not TCP).
//!
//! The order for each request: it is counted ([`EchoApp::requests`]); the delays
//! (behaviour, jitter, `/delay/`, `x-echo-delay-ms`) are added up and waited; then an
//! injected fault (`fail_after`, then `error_rate`) answers 503 with header
//! `x-echo-fault: fail-after` or `error-rate`, whatever the request was — gRPC and
//! WebSocket included, the way a broken endpoint would; otherwise the request gets its
//! answer. An `x-echo-status` on a gRPC call or a WebSocket upgrade answers the plain JSON
//! line with that status instead (a non-gRPC, non-WebSocket upstream); on `/count` and
//! `/bytes/` it only changes the status of their usual answer. A malformed directive
//! (bad status, delay or size) answers 400 with the reason in header `x-echo-error`.

pub mod grpc;
pub mod raw;
pub mod websocket;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use grpc::{GrpcClientError, GrpcReply, grpc_unary};
pub use raw::{parse_greeting, serve_tcp_echo, serve_udp_echo, split_udp_reply};
pub use websocket::{WebSocketError, websocket_echo, websocket_echo_once};

/// The longest delay one request can ask for (`/delay/MS`, `x-echo-delay-ms`); longer
/// asks are cut to it.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// The largest `/bytes/N`: 16 GiB. More answers 400.
pub const MAX_BYTES: u64 = 16 << 30;
/// The size of the chunks `/bytes/N` and [`ByteBody`] send.
pub const CHUNK: usize = 64 * 1024;

/// Header naming an injected fault on a 503 (`fail-after` or `error-rate`).
pub const FAULT_HEADER: &str = "x-echo-fault";
/// Header carrying the reason of a 400 for a malformed directive.
pub const ERROR_HEADER: &str = "x-echo-error";
/// Request header overriding the status.
pub const STATUS_HEADER: &str = "x-echo-status";
/// Request header adding a delay, in milliseconds.
pub const DELAY_HEADER: &str = "x-echo-delay-ms";

/// The body of every echo answer.
pub type EchoBody = BoxBody<Bytes, Infallible>;

/// Who an echo app is.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// The pod's name.
    pub pod: String,
    /// The node it runs on.
    pub node: String,
    /// The node's site.
    pub site: String,
}

/// What an echo app answers.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Answer {
    /// Who answered.
    #[serde(flatten)]
    pub identity: Identity,
    /// The request's method.
    pub method: String,
    /// The request's path and query.
    pub path: String,
    /// The request's Host header.
    pub host: String,
    /// Every request header, lowercase name to value — only on `GET /headers`, so a
    /// test can see what the mesh sent on (and what it kept to itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<std::collections::BTreeMap<String, String>>,
}

/// What `POST /count` answers: the usual answer and how many body bytes arrived.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct CountAnswer {
    /// Who answered and what was asked.
    #[serde(flatten)]
    pub answer: Answer,
    /// The request body's length, counted as it streamed in.
    pub bytes: u64,
}

impl Answer {
    fn of(identity: &Identity, parts: &http::request::Parts) -> Self {
        Self {
            identity: identity.clone(),
            method: parts.method.to_string(),
            path: parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string(),
            host: parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| parts.uri.authority().map(|a| a.as_str()))
                .unwrap_or_default()
                .to_string(),
            headers: (parts.uri.path() == "/headers").then(|| {
                parts
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        (
                            name.as_str().to_string(),
                            String::from_utf8_lossy(value.as_bytes()).into_owned(),
                        )
                    })
                    .collect()
            }),
        }
    }

    /// The answer as one line of JSON, newline included.
    pub fn line(&self) -> String {
        json_line(self)
    }
}

fn json_line(value: &impl Serialize) -> String {
    let mut line = serde_json::to_string(value).unwrap_or_default();
    line.push('\n');
    line
}

/// How an echo app misbehaves on purpose. The default behaves. The raw TCP and UDP
/// echoes read it per chunk, connection or datagram instead of per request ([`raw`]).
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Waited before every answer.
    pub delay: Duration,
    /// A uniformly random extra delay in `0..=delay_jitter`, drawn per request.
    pub delay_jitter: Duration,
    /// The share of requests answered 503 at random, in `[0, 1]`.
    pub error_rate: f64,
    /// After this many requests, every request is answered 503: the app keeps accepting
    /// connections and reading requests (a broken app behind a live port, which is what
    /// outlier detection has to catch), it never recovers. `Some(0)` fails from the start.
    pub fail_after: Option<u64>,
}

impl Behaviour {
    /// Checks the values a person could get wrong: `error_rate` in `[0, 1]`.
    pub fn validate(&self) -> Result<(), BehaviourError> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(BehaviourError::ErrorRate(self.error_rate.to_string()));
        }
        Ok(())
    }
}

/// A behaviour or one of its flags that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BehaviourError {
    /// A duration that does not parse.
    #[error("`{text}` is not a duration: {reason} (write e.g. 50ms, 2s, 1.5s, 0)")]
    Duration {
        /// What was given.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An error rate outside `[0, 1]`.
    #[error("`{0}` is not an error rate: give a share between 0 and 1, e.g. 0.1")]
    ErrorRate(String),
}

/// Parses a duration the way the flags take it: a number and a unit — `ns`, `us` (or
/// `µs`), `ms`, `s`, `m`, `h` — such as `50ms`, `2s` or `1.5s`; `0` alone is zero.
pub fn parse_duration(text: &str) -> Result<Duration, BehaviourError> {
    let fail = |reason| BehaviourError::Duration {
        text: text.to_string(),
        reason,
    };
    let trimmed = text.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| fail("it has no unit"))?;
    let (number, unit) = trimmed.split_at(split);
    if number.is_empty() {
        return Err(fail("it does not start with a number"));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| fail("the number is malformed"))?;
    let seconds_per_unit = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(fail("the unit is not one of ns, us, ms, s, m, h")),
    };
    Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| fail("it is out of range"))
}

/// Parses an error rate: a number in `[0, 1]`.
pub fn parse_error_rate(text: &str) -> Result<f64, BehaviourError> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| BehaviourError::ErrorRate(text.to_string()))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(BehaviourError::ErrorRate(text.to_string()))
    }
}

/// How many requests an echo app has received; clones share the count.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<AtomicU64>);

impl RequestCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests received so far: every HTTP request and gRPC call, and each WebSocket
    /// upgrade once (not its frames), whatever it was answered.
    pub fn requests(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn record(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A running echo app from [`spawn_with`]. It serves until this handle is dropped or
/// [`stop`](Self::stop)ped, and its connections end with it.
#[derive(Debug)]
pub struct EchoApp {
    addr: SocketAddr,
    counter: RequestCounter,
    task: tokio::task::JoinHandle<()>,
}

impl EchoApp {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received so far (see [`RequestCounter::requests`]).
    pub fn requests(&self) -> u64 {
        self.counter.requests()
    }

    /// A counter that keeps reading this app's count.
    pub fn counter(&self) -> RequestCounter {
        self.counter.clone()
    }

    /// Stops serving and ends every connection.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for EchoApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The state every connection of one app shares.
struct App {
    identity: Identity,
    behaviour: Behaviour,
    counter: RequestCounter,
    /// Requests seen, for `fail_after` (the counter may be shared with other apps).
    seen: AtomicU64,
    /// Closed when the app stops: upgraded WebSocket connections end with it.
    stopped: watch::Receiver<()>,
}

/// Serves the echo app on `listener` until the task is dropped; dropping it also ends
/// every connection it serves (a pod that stops takes its connections with it).
pub async fn serve(listener: TcpListener, identity: Identity) {
    serve_with(
        listener,
        identity,
        Behaviour::default(),
        RequestCounter::new(),
    )
    .await;
}

/// [`serve`] with a behaviour, counting requests in `counter`. An `error_rate` outside
/// `[0, 1]` acts as 0 (NaN or below) or 1 (above); [`spawn_with`] refuses it instead.
pub async fn serve_with(
    listener: TcpListener,
    identity: Identity,
    behaviour: Behaviour,
    counter: RequestCounter,
) {
    let (_stop, stopped) = watch::channel(());
    let app = Arc::new(App {
        identity,
        behaviour,
        counter,
        seen: AtomicU64::new(0),
        stopped,
    });
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "echo: accept failed; pausing 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let _ = tcp.set_nodelay(true);
        let app = Arc::clone(&app);
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let app = Arc::clone(&app);
                async move { Ok::<_, Infallible>(handle(&app, request).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// Binds `listen` and serves on it in a new task; returns the bound address.
pub async fn spawn(
    listen: SocketAddr,
    identity: Identity,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    Ok((addr, tokio::spawn(serve(listener, identity))))
}

/// Why [`spawn_with`] could not start an app.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The behaviour is invalid.
    #[error(transparent)]
    Behaviour(#[from] BehaviourError),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Binds `listen` and serves with `behaviour` in a new task; the handle tells the bound
/// address and the request count, and stops the app when dropped.
pub async fn spawn_with(
    listen: SocketAddr,
    identity: Identity,
    behaviour: Behaviour,
) -> Result<EchoApp, SpawnError> {
    behaviour.validate()?;
    let bind = |source| SpawnError::Bind {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
    let counter = RequestCounter::new();
    let task = tokio::spawn(serve_with(listener, identity, behaviour, counter.clone()));
    Ok(EchoApp {
        addr,
        counter,
        task,
    })
}

/// What a request asks for, by its path, method and headers.
enum Route {
    Echo,
    Bytes(u64),
    Count,
    Grpc,
    WebSocket,
}

/// Everything a request asks of the app, read before answering.
struct Directives {
    route: Route,
    status: Option<StatusCode>,
    delay: Duration,
}

fn parse_status(text: &str) -> Result<StatusCode, String> {
    text.trim()
        .parse::<u16>()
        .ok()
        .filter(|code| (200..=599).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| format!("status `{text}` is not a number in 200..=599"))
}

fn parse_delay_ms(text: &str) -> Result<Duration, String> {
    let ms: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("delay `{text}` is not a whole number of milliseconds"))?;
    Ok(Duration::from_millis(ms).min(MAX_DELAY))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    headers
        .get(name)
        .map(|v| v.to_str().map_err(|_| format!("{name} is not text")))
        .transpose()
}

fn directives(parts: &http::request::Parts) -> Result<Directives, String> {
    let mut status = None;
    let mut delay = Duration::ZERO;
    let path = parts.uri.path();
    let route = if websocket::is_upgrade(parts) {
        Route::WebSocket
    } else if grpc::is_grpc(parts) {
        Route::Grpc
    } else if let Some(code) = path.strip_prefix("/status/") {
        status = Some(parse_status(code)?);
        Route::Echo
    } else if let Some(ms) = path.strip_prefix("/delay/") {
        delay = parse_delay_ms(ms)?;
        Route::Echo
    } else if let Some(n) = path.strip_prefix("/bytes/") {
        let n: u64 = n
            .parse()
            .map_err(|_| format!("size `{n}` is not a whole number of bytes"))?;
        if n > MAX_BYTES {
            return Err(format!("size {n} is over the limit of {MAX_BYTES} bytes"));
        }
        Route::Bytes(n)
    } else if path == "/count" && parts.method == Method::POST {
        Route::Count
    } else {
        Route::Echo
    };
    if let Some(code) = header_text(&parts.headers, STATUS_HEADER)? {
        status = Some(parse_status(code)?);
    }
    if let Some(ms) = header_text(&parts.headers, DELAY_HEADER)? {
        delay += parse_delay_ms(ms)?;
    }
    Ok(Directives {
        route,
        status,
        delay,
    })
}

fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let max = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::random_range(0..=max))
}

/// A response carrying `body` as JSON, with the app's pod in `x-causeway-pod`.
fn json_response(identity: &Identity, status: StatusCode, body: String) -> Response<EchoBody> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    stamp(identity, &mut response);
    response
}

/// Adds `x-causeway-pod` to a response.
fn stamp<B>(identity: &Identity, response: &mut Response<B>) {
    if let Ok(pod) = HeaderValue::from_str(&identity.pod) {
        response.headers_mut().insert("x-causeway-pod", pod);
    }
}

async fn handle(app: &App, request: Request<Incoming>) -> Response<EchoBody> {
    app.counter.record();
    let nth = app.seen.fetch_add(1, Ordering::Relaxed) + 1;
    let (parts, body) = request.into_parts();
    let answer = Answer::of(&app.identity, &parts);
    let directives = match directives(&parts) {
        Ok(directives) => directives,
        Err(reason) => {
            let mut response = json_response(&app.identity, StatusCode::BAD_REQUEST, answer.line());
            if let Ok(reason) = HeaderValue::from_str(&reason) {
                response.headers_mut().insert(ERROR_HEADER, reason);
            }
            return response;
        }
    };
    let behaviour = &app.behaviour;
    let delay = behaviour.delay + jitter(behaviour.delay_jitter) + directives.delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let fault = if behaviour.fail_after.is_some_and(|n| nth > n) {
        Some("fail-after")
    } else if behaviour.error_rate > 0.0 && rand::random::<f64>() < behaviour.error_rate {
        Some("error-rate")
    } else {
        None
    };
    if let Some(fault) = fault {
        let mut response = json_response(
            &app.identity,
            StatusCode::SERVICE_UNAVAILABLE,
            answer.line(),
        );
        response
            .headers_mut()
            .insert(FAULT_HEADER, HeaderValue::from_static(fault));
        return response;
    }
    let status = directives.status;
    match directives.route {
        Route::WebSocket | Route::Grpc if status.is_some() => {
            json_response(&app.identity, status.unwrap_or_default(), answer.line())
        }
        Route::WebSocket => {
            let request = Request::from_parts(parts, body);
            websocket::accept(&app.identity, request, app.stopped.clone())
        }
        Route::Grpc => grpc::answer(&app.identity, &answer, &parts.headers, body).await,
        Route::Count => {
            let status = status.unwrap_or(StatusCode::OK);
            match count_body(body).await {
                Ok(bytes) => json_response(
                    &app.identity,
                    status,
                    json_line(&CountAnswer { answer, bytes }),
                ),
                Err(error) => {
                    tracing::debug!(%error, "echo: the upload to /count broke off");
                    json_response(&app.identity, StatusCode::BAD_REQUEST, answer.line())
                }
            }
        }
        Route::Bytes(n) => {
            let mut response = Response::new(ByteBody::new(n).boxed());
            *response.status_mut() = status.unwrap_or(StatusCode::OK);
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            stamp(&app.identity, &mut response);
            response
        }
        Route::Echo => json_response(
            &app.identity,
            status.unwrap_or(StatusCode::OK),
            answer.line(),
        ),
    }
}

/// Counts a body's bytes frame by frame as they arrive, keeping none of them.
async fn count_body(mut body: Incoming) -> Result<u64, hyper::Error> {
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            bytes += data.len() as u64;
        }
    }
    Ok(bytes)
}

/// The bytes every chunk of a [`ByteBody`] is cut from.
static CHUNK_BYTES: [u8; CHUNK] = [b'.'; CHUNK];

/// A body of N bytes (all `.`) sent as 64 KiB chunks, each made only when the
/// connection asks for it: a large body never sits in memory. `/bytes/N` answers with
/// one; tests and benchmarks can upload one.
#[derive(Debug, Clone)]
pub struct ByteBody {
    remaining: u64,
}

impl ByteBody {
    /// A body of `len` bytes.
    pub fn new(len: u64) -> Self {
        Self { remaining: len }
    }
}

impl Body for ByteBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let len = usize::try_from(self.remaining).map_or(CHUNK, |r| r.min(CHUNK));
        self.remaining -= len as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
            &CHUNK_BYTES[..len],
        )))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_bad_ones_say_why() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "50", "ms", "5x", "-5ms", "1..2s", "1e3ms"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
        let error = parse_duration("50").unwrap_err().to_string();
        assert!(error.contains("no unit"), "{error}");
    }

    #[test]
    fn error_rates_are_shares() {
        assert_eq!(parse_error_rate("0.1"), Ok(0.1));
        assert_eq!(parse_error_rate("1"), Ok(1.0));
        assert_eq!(parse_error_rate("0"), Ok(0.0));
        for bad in ["1.5", "-0.1", "NaN", "half", "inf"] {
            assert!(parse_error_rate(bad).is_err(), "{bad:?} parsed");
        }
        let behaviour = Behaviour {
            error_rate: 2.0,
            ..Behaviour::default()
        };
        assert!(behaviour.validate().is_err());
        assert!(Behaviour::default().validate().is_ok());
    }

    #[test]
    fn statuses_are_200_to_599() {
        assert_eq!(parse_status("503"), Ok(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(parse_status("200"), Ok(StatusCode::OK));
        for bad in ["101", "199", "600", "abc", ""] {
            assert!(parse_status(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn a_byte_body_is_exact_and_chunked() {
        let body = ByteBody::new(CHUNK as u64 * 2 + 7);
        assert_eq!(body.size_hint().exact(), Some(CHUNK as u64 * 2 + 7));
        let frames = futures_lite_collect(body);
        assert_eq!(frames, vec![CHUNK, CHUNK, 7]);
    }

    fn futures_lite_collect(mut body: ByteBody) -> Vec<usize> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut sizes = Vec::new();
        for _ in 0..10 {
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => sizes.push(frame.into_data().unwrap().len()),
                _ => break,
            }
        }
        sizes
    }
}
