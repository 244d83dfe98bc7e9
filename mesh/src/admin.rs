//! The node's admin endpoint, on loopback: `/ready`, `/metrics` (Prometheus text) and
//! `/config_dump` (what the node holds and enforces, as JSON).
//!
//! It reads through the `AdminView` trait and changes nothing.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What the admin endpoint reads.
pub trait AdminView: Send + Sync + 'static {
    /// Whether the node is serving.
    fn ready(&self) -> bool;
    /// Metrics in Prometheus text.
    fn metrics(&self) -> String;
    /// The configuration dump, as JSON text.
    fn config_dump(&self) -> String;
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

fn route(view: &dyn AdminView, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    match request.uri().path() {
        "/ready" if view.ready() => respond(StatusCode::OK, "text/plain", "ready\n".into()),
        "/ready" => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready\n".into(),
        ),
        "/metrics" => respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            view.metrics(),
        ),
        "/config_dump" => respond(
            StatusCode::OK,
            "application/json",
            view.config_dump() + "\n",
        ),
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "endpoints: /ready /metrics /config_dump\n".into(),
        ),
    }
}

/// Serves the admin endpoint on `listener`.
pub async fn serve(
    listener: TcpListener,
    view: Arc<dyn AdminView>,
    tasks: crate::tasks::NodeTasks,
) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(error) => {
                crate::access::accept_failed(&error).await;
                continue;
            }
        };
        let view = Arc::clone(&view);
        tasks.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let view = Arc::clone(&view);
                async move { Ok::<_, std::convert::Infallible>(route(view.as_ref(), &request)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}
