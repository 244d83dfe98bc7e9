//! An HTTP proxy for clients that cannot be captured: `curl -x http://127.0.0.1:15080
//! http://echo.demo/`. `CONNECT host:port` tunnels a connection; an absolute-URI request
//! (`GET http://echo.demo/path`) is sent to an endpoint chosen for that request, so
//! balancing is per request. Only Services of the mesh are reachable through it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::Access;
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
        ConnectError::NotAService { .. } => StatusCode::NOT_FOUND,
        ConnectError::NoReadyEndpoints { .. } => StatusCode::SERVICE_UNAVAILABLE,
        ConnectError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        ConnectError::AllFailed { .. } => StatusCode::BAD_GATEWAY,
    };
    text(status, error.to_string())
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
    let connection = match access.connect(host, port, client).await {
        Ok(connection) => connection,
        Err(error) => return failure(&error),
    };
    let service = connection.label.clone();
    let (mut sender, driver) =
        match hyper::client::conn::http1::handshake(TokioIo::new(connection.upstream)).await {
            Ok(pair) => pair,
            Err(error) => return text(StatusCode::BAD_GATEWAY, format!("{service}: {error}")),
        };
    let guard = connection.guard;
    access.tasks.spawn(async move {
        let _ = driver.await;
        drop(guard);
    });
    let (mut parts, body) = request.into_parts();
    let origin = uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse::<Uri>()
        .unwrap_or_else(|_| Uri::from_static("/"));
    parts.uri = origin;
    parts.headers.remove("proxy-connection");
    parts.headers.remove(http::header::PROXY_AUTHORIZATION);
    if !parts.headers.contains_key(http::header::HOST)
        && let Ok(value) = http::HeaderValue::from_str(host)
    {
        parts.headers.insert(http::header::HOST, value);
    }
    match sender.send_request(Request::from_parts(parts, body)).await {
        Ok(response) => response.map(|b| b.boxed()),
        Err(error) => text(StatusCode::BAD_GATEWAY, format!("{service}: {error}")),
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
