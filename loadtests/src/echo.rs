//! The sample app of the quick start, the tests and the benchmarks: an HTTP server that
//! answers every request with who answered it — pod, node, site — and what it was asked,
//! as one line of JSON. HTTP/1.1 and HTTP/2 (h2c) on one port.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use tokio::net::TcpListener;

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
}

fn answer(identity: &Identity, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let body = Answer {
        identity: identity.clone(),
        method: request.method().to_string(),
        path: request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string(),
        host: request
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_string(),
    };
    let mut line = serde_json::to_string(&body).unwrap_or_default();
    line.push('\n');
    let mut response = Response::new(Full::new(Bytes::from(line)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Ok(pod) = http::HeaderValue::from_str(&identity.pod) {
        response.headers_mut().insert("x-causeway-pod", pod);
    }
    response
}

/// Serves the echo app on `listener` until the task is dropped; dropping it also ends
/// every connection it serves (a pod that stops takes its connections with it).
pub async fn serve(listener: TcpListener, identity: Identity) {
    let identity = Arc::new(identity);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "echo: accept failed; pausing 100 ms");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let _ = tcp.set_nodelay(true);
        let identity = Arc::clone(&identity);
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let identity = Arc::clone(&identity);
                async move { Ok::<_, std::convert::Infallible>(answer(&identity, &request)) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), service)
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
