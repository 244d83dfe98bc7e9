//! Serving HTTP on a client's connection to one Service port: HTTP/1.1 and HTTP/2 on
//! the same socket (the preface decides), upgrades allowed, limits on header size and
//! count, every request resolved anew (a long-lived connection follows the Service's
//! endpoints as they change) and handed to [`HttpProxy::proxy`].
//!
//! It serves connections it is given; it accepts none and dials nothing itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};

use super::protocol::PortProtocol;
use super::proxy::{HttpProxy, connect_error_answer};
use crate::outbound::ConnectError;
use crate::resolve::ServiceTarget;

/// How long a client has to send a request's head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The most headers an HTTP/1.1 request may have.
pub const MAX_HEADERS: usize = 100;
/// The largest request head, in bytes (HTTP/1.1 buffer, HTTP/2 header list).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Resolves the Service port a connection is for, at each request.
pub type Resolver = Arc<dyn Fn() -> Result<Arc<ServiceTarget>, ConnectError> + Send + Sync>;

/// Serves `io` from `client` until either side closes it.
pub async fn serve_connection<I>(
    proxy: Arc<HttpProxy>,
    io: I,
    client: SocketAddr,
    protocol: PortProtocol,
    resolve: Resolver,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let proxy = Arc::clone(&proxy);
        let resolve = Arc::clone(&resolve);
        async move {
            let response = match resolve() {
                Ok(target) => proxy.proxy(&target, client, protocol, request).await,
                Err(error) => {
                    connect_error_answer(&error, super::headers::is_grpc(request.headers()))
                }
            };
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEADER_BYTES.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .adaptive_window(true)
        // A client that went away without closing is found and its streams freed.
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    if let Err(error) = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .await
    {
        tracing::debug!(%client, %error, "HTTP connection ended with an error");
    }
}
