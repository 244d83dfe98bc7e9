//! The destination side of per-request proxying: a peer's tunnel stream that carries
//! HTTP for one endpoint of this node (`Request::ProxyHttp`, checked by `Inbound`
//! before it gets here). Each request on it gets the destination side of the plan in
//! force at that moment — the QPS limit when it is enforced here, counting callers on
//! every node — and goes to the endpoint over this node's pool.
//!
//! The source mesh chose the endpoint and retries; this side neither chooses nor
//! retries. When it cannot reach the endpoint it says so in [`ERROR_HEADER`], so the
//! source can tell "the endpoint is down" (try another) from an application's 503.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;

use causeway_policies::plan::EnforcementPoint;
use causeway_tunnels::TunnelStream;

use super::body::{Held, Tracked};
use super::headers::{self, ForwardedHeader, SOURCE_HEADER};
use super::pool::{Body, CheckoutError, PoolKey, SendError, Wire};
use super::proxy::{HttpProxy, forward_upgrade, prepare};
use crate::policy_view::Policies;
use crate::ratelimit::Limiters;

/// Set by a destination mesh on an answer it made because the endpoint could not be
/// reached (`connect-failure`) or the request was over the limit (`rate-limited`).
pub const ERROR_HEADER: http::HeaderName = http::HeaderName::from_static("causeway-error");

/// The destination's header limits are this multiple of the client-facing ones: the
/// source adds headers (`x-forwarded-for`, `causeway-source`) to requests that were
/// within the limits when they arrived.
const HEADROOM: usize = 2;

/// What the destination side needs.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The proxy (its pool and dialler).
    pub proxy: Arc<HttpProxy>,
    /// The policies in force.
    pub policies: Arc<Policies>,
    /// QPS limiters, shared with the source side.
    pub limiters: Arc<Limiters>,
}

/// One endpoint's stream: the Service port it is for, by its parts.
#[derive(Debug, Clone)]
pub struct StreamTarget {
    /// `namespace/name:port`, canonical.
    pub label: String,
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The port.
    pub port: u16,
    /// The endpoint on this node.
    pub endpoint: SocketAddr,
    /// The peer node, for logs.
    pub peer: String,
}

impl Destination {
    /// Serves the HTTP on `stream` until the peer closes it.
    pub async fn serve(self, stream: TunnelStream, target: StreamTarget) {
        let target = Arc::new(target);
        let peer = target.peer.clone();
        let service = hyper::service::service_fn(move |request| {
            let destination = self.clone();
            let target = Arc::clone(&target);
            async move { Ok::<_, std::convert::Infallible>(destination.handle(&target, request).await) }
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .max_headers(HEADROOM * super::serve::MAX_HEADERS)
            .max_buf_size(HEADROOM * super::serve::MAX_HEADER_BYTES);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size((HEADROOM * super::serve::MAX_HEADER_BYTES) as u32)
            .adaptive_window(true);
        if let Err(error) = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .await
        {
            tracing::debug!(%peer, %error, "HTTP stream from a peer ended with an error");
        }
    }

    async fn handle(
        &self,
        target: &StreamTarget,
        mut request: Request<Incoming>,
    ) -> Response<Body> {
        let grpc = headers::is_grpc(request.headers());
        let client: Option<SocketAddr> = request
            .headers()
            .get(SOURCE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let plan = Arc::clone(self.policies.set().lookup(
            &target.namespace,
            &target.name,
            target.port,
        ));
        if let Some(limit) = &plan.rate_limit
            && limit.enforce_at == EnforcementPoint::Destination
        {
            let limiter = self.limiters.get(&target.label, limit);
            if let Err(limited) = limiter.admit(target.endpoint, client.map(|c| c.ip())).await {
                self.proxy
                    .outbound()
                    .metrics()
                    .error(&target.label, "rate_limited");
                let mut response = headers::answer(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!(
                        "{} is over its rate limit (enforced at the destination); retry in {} ms",
                        target.label,
                        limited.retry_after.as_millis().max(1)
                    ),
                    grpc,
                    Some(limited.retry_after),
                );
                response
                    .headers_mut()
                    .insert(ERROR_HEADER, HeaderValue::from_static("rate-limited"));
                return response;
            }
        }
        let upgrade = headers::is_upgrade(request.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        let wire = if parts.version == Version::HTTP_2 && !upgrade {
            Wire::Http2
        } else {
            Wire::Http1
        };
        let client_addr = client.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        if let Err(problem) = prepare(
            &mut parts,
            wire,
            upgrade,
            ForwardedHeader::None,
            client_addr,
        ) {
            return headers::answer(StatusCode::BAD_REQUEST, &problem, grpc, None);
        }
        let key = PoolKey {
            endpoint: target.endpoint,
            remote_node: None,
            service: target.label.clone(),
            wire,
        };
        let body = body.map_err(Into::into).boxed_unsync();
        let proxy = &self.proxy;
        if let Some(client_upgrade) = client_upgrade {
            return forward_upgrade(
                proxy.pool(),
                proxy.outbound(),
                &plan,
                &key,
                Request::from_parts(parts, body),
                client_upgrade,
                proxy.tasks(),
                None,
            )
            .await;
        }
        let lease = match proxy.pool().checkout(&key, proxy.outbound(), &plan).await {
            Ok(lease) => lease,
            Err(error) => {
                let shed = matches!(error, CheckoutError::Shed { .. });
                self.proxy
                    .outbound()
                    .metrics()
                    .error(&target.label, if shed { "shed" } else { "connect" });
                let mut response = headers::answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("{}: {error}", target.label),
                    grpc,
                    None,
                );
                let mark = if shed { "shed" } else { "connect-failure" };
                response
                    .headers_mut()
                    .insert(ERROR_HEADER, HeaderValue::from_static(mark));
                return response;
            }
        };
        match lease
            .send(
                Request::from_parts(parts, body),
                proxy.pool(),
                proxy.outbound(),
                &plan,
            )
            .await
        {
            Ok((mut response, release)) => {
                // Only meshes speak `causeway-*`: an application cannot make the source
                // mistake its answer for one of ours.
                headers::strip_mesh_headers(response.headers_mut());
                response.map(|b| {
                    Tracked::new(
                        b.map_err(Into::into).boxed_unsync(),
                        Held {
                            release,
                            pick: None,
                        },
                    )
                    .boxed_unsync()
                })
            }
            Err(error) => {
                self.proxy
                    .outbound()
                    .metrics()
                    .error(&target.label, "upstream");
                // Marked, so the source knows the endpoint broke (or, when nothing was
                // sent, could not be reached) rather than answered.
                let mark = if error.is_refused_stream() || matches!(error, SendError::NotSent(_)) {
                    "connect-failure"
                } else {
                    "reset"
                };
                let mut response = headers::answer(
                    StatusCode::BAD_GATEWAY,
                    &format!("{}: {error}", target.label),
                    grpc,
                    None,
                );
                response
                    .headers_mut()
                    .insert(ERROR_HEADER, HeaderValue::from_static(mark));
                response
            }
        }
    }
}
