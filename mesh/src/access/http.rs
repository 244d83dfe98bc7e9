//! An HTTP proxy for clients that cannot be captured: `curl -x http://127.0.0.1:15080
//! http://echo.demo/`. `CONNECT host:port` tunnels a connection; an absolute-URI request
//! (`GET http://echo.demo/path`) is sent to an endpoint chosen for that request, so
//! balancing is per request. Only Services of the mesh are reachable through it.
//!
//! It parses HTTP and hands connections to `Outbound`; it never dials on its own.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use causeway_policies::ServicePolicy;
use causeway_policies::plan::{HashKey, LoadBalancer};

use super::Access;
use crate::balance::stable_hash;
use crate::outbound::ConnectError;

type Body = BoxBody<Bytes, hyper::Error>;

fn text(status: StatusCode, message: String) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(message + "\n"))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}

fn failure(error: &ConnectError) -> Response<Body> {
    let status = match error {
        ConnectError::NotAService { .. } | ConnectError::NoSuchPort { .. } => StatusCode::NOT_FOUND,
        ConnectError::NoReadyEndpoints { .. } => StatusCode::SERVICE_UNAVAILABLE,
        ConnectError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        ConnectError::AllFailed { .. } => StatusCode::BAD_GATEWAY,
    };
    let mut response = text(status, error.to_string());
    if let ConnectError::RateLimited { retry_after_ms, .. } = error {
        // Whole seconds, rounded up: Retry-After has no finer unit.
        let seconds = retry_after_ms.div_ceil(1000).max(1);
        if let Ok(value) = http::HeaderValue::from_str(&seconds.to_string()) {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, value);
        }
    }
    response
}

/// Headers that belong to one hop, removed before a request goes on (RFC 9110 §7.6.1),
/// with those the request's own `Connection` header names.
fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    let named: Vec<http::HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| http::HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

/// The consistent-hash key of a request, when the plan hashes on one of its
/// attributes; and the cookie to set when the plan generates one and the request had
/// none.
fn hash_key(
    plan: &ServicePolicy,
    parts: &http::request::Parts,
) -> (Option<u64>, Option<http::HeaderValue>) {
    let LoadBalancer::ConsistentHash { key, .. } = &plan.load_balancer else {
        return (None, None);
    };
    match key {
        HashKey::Header { name } => (
            parts
                .headers
                .get(name.as_str())
                .map(|v| stable_hash(v.as_bytes())),
            None,
        ),
        HashKey::QueryParameter { name } => {
            let value = parts.uri.query().and_then(|query| {
                query.split('&').find_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (k == name).then_some(v)
                })
            });
            (value.map(|v| stable_hash(v.as_bytes())), None)
        }
        HashKey::Cookie {
            name,
            generate,
            ttl,
            path,
        } => {
            let found = parts
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .find_map(|c| {
                    let (k, v) = c.trim().split_once('=')?;
                    (k == name).then(|| v.to_string())
                });
            match found {
                Some(value) => (Some(stable_hash(value.as_bytes())), None),
                None if *generate => {
                    let value = format!("{:016x}", rand::random::<u64>());
                    let mut cookie = format!("{name}={value}; Path={path}; HttpOnly");
                    if let Some(ttl) = ttl {
                        cookie.push_str(&format!("; Max-Age={}", ttl.as_secs()));
                    }
                    (
                        Some(stable_hash(value.as_bytes())),
                        http::HeaderValue::from_str(&cookie).ok(),
                    )
                }
                None => (None, None),
            }
        }
        HashKey::SourceIp => (None, None),
    }
}

/// Serves the HTTP proxy on `listener` until it fails.
pub async fn serve(listener: TcpListener, access: Arc<Access>) {
    loop {
        let (tcp, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                super::accept_failed(&error).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let task_access = Arc::clone(&access);
        access.tasks.spawn(async move {
            let access = task_access;
            let service = hyper::service::service_fn(move |request| {
                let access = Arc::clone(&access);
                async move { Ok::<_, hyper::Error>(handle(access, client, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            if let Err(error) = connection.await {
                tracing::debug!(%client, %error, "proxy connection ended with an error");
            }
        });
    }
}

async fn handle(
    access: Arc<Access>,
    client: SocketAddr,
    request: Request<Incoming>,
) -> Response<Body> {
    if request.method() == Method::CONNECT {
        return connect(access, client, request).await;
    }
    let uri = request.uri().clone();
    let (Some(host), Some("http")) = (uri.host(), uri.scheme_str()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "this is the Causeway HTTP proxy: send absolute URIs (http://service.namespace/...) or CONNECT".into(),
        );
    };
    let port = uri.port_u16().unwrap_or(80);
    let target = match access.resolve(host, port) {
        Ok(target) => target,
        Err(error) => return failure(&error),
    };
    let plan = access.outbound.plan(&target);
    let (mut parts, body) = request.into_parts();
    let (hash, set_cookie) = hash_key(&plan, &parts);
    let connection = match access.outbound.connect(&target, Some(client), hash).await {
        Ok(connection) => connection,
        Err(error) => return failure(&error),
    };
    let service = connection.label.clone();
    // The whole exchange up to the response head: the plan's request timeout, else its
    // idle timeout, so an endpoint that accepts and never answers cannot hold anything
    // for ever.
    let deadline = connection
        .request_timeout
        .or(connection.idle)
        .unwrap_or(std::time::Duration::from_secs(3600));
    let guard = connection.guard;
    strip_hop_by_hop(&mut parts.headers);
    parts.uri = uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse::<Uri>()
        .unwrap_or_else(|_| Uri::from_static("/"));
    // RFC 9112 §3.2.2: a proxy replaces Host with the target URI's authority.
    if let Some(authority) = uri.authority()
        && let Ok(value) = http::HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(http::header::HOST, value);
    }
    let exchange = async {
        let (mut sender, driver) =
            hyper::client::conn::http1::handshake(TokioIo::new(connection.upstream)).await?;
        access.tasks.spawn(async move {
            let _ = driver.await;
            drop(guard);
        });
        sender.send_request(Request::from_parts(parts, body)).await
    };
    match tokio::time::timeout(deadline, exchange).await {
        Ok(Ok(response)) => {
            let mut response = response.map(|b| b.boxed());
            if let Some(cookie) = set_cookie {
                response
                    .headers_mut()
                    .append(http::header::SET_COOKIE, cookie);
            }
            response
        }
        Ok(Err(error)) => text(StatusCode::BAD_GATEWAY, format!("{service}: {error}")),
        Err(_) => text(
            StatusCode::GATEWAY_TIMEOUT,
            format!("{service}: no response within {deadline:?}"),
        ),
    }
}

async fn connect(
    access: Arc<Access>,
    client: SocketAddr,
    request: Request<Incoming>,
) -> Response<Body> {
    let Some(authority) = request.uri().authority().cloned() else {
        return text(StatusCode::BAD_REQUEST, "CONNECT needs host:port".into());
    };
    let port = authority.port_u16().unwrap_or(443);
    let connection = match access.connect(authority.host(), port, client).await {
        Ok(connection) => connection,
        Err(error) => return failure(&error),
    };
    let tasks = access.tasks.clone();
    tasks.spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => super::carry(TokioIo::new(upgraded), connection, &access).await,
            Err(error) => tracing::debug!(%client, %error, "CONNECT upgrade failed"),
        }
    });
    Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed(),
    )
}
