//! An HTTP proxy for clients that cannot be captured: `curl -x http://127.0.0.1:15080
//! http://echo.demo/`. `CONNECT host:port` tunnels a connection; an absolute-URI request
//! (`GET http://echo.demo/path`) is sent to an endpoint chosen for that request, so
//! balancing is per request. Only Services of the mesh are reachable through it.
//!
//! It parses HTTP and hands connections to `Outbound`; it never dials on its own.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::Access;
use crate::outbound::ConnectError;

type Body = crate::http::pool::Body;

fn text(status: StatusCode, message: String) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(message + "\n"))
            .map_err(|never| match never {})
            .boxed_unsync(),
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
    let protocol = super::protocol_of(&target);
    access.http.proxy(&target, client, protocol, request).await
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
    let host = authority.host().to_string();
    let target = match access.resolve(&host, port) {
        Ok(target) => target,
        Err(error) => return failure(&error),
    };
    let protocol = super::protocol_of(&target);
    // An opaque TCP port is connected before the client hears yes, so a refusal is
    // still a proper answer; HTTP is proxied per request once the tunnel is up.
    let connection = if protocol == crate::http::protocol::PortProtocol::Tcp {
        match access.outbound.connect(&target, Some(client), None).await {
            Ok(connection) => Some(connection),
            Err(error) => return failure(&error),
        }
    } else {
        None
    };
    let tasks = access.tasks.clone();
    tasks.spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => {
                let io = TokioIo::new(upgraded);
                match connection {
                    Some(connection) => super::carry(io, connection, &access).await,
                    None => super::serve_client(access, io, host, port, client, protocol).await,
                }
            }
            Err(error) => tracing::debug!(%client, %error, "CONNECT upgrade failed"),
        }
    });
    Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed_unsync(),
    )
}
