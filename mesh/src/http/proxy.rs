//! The source side of a request: a client's HTTP request to a Service port, carried to
//! an endpoint chosen for that request, under the port's plan.
//!
//! For each request: the consistent-hash key (a cookie set on the response when the plan
//! generates one), the source QPS limit once, then tries — an endpoint chosen among the
//! ready ones nearest first (leaving out those this request already failed on), the
//! destination limit when the endpoint is on this node, a pooled connection to it
//! (another node's endpoints through a tunnel stream whose mesh applies the destination
//! side), the request with the per-try timeout — until a response that is not retried,
//! the tries allowed, the retry budget or the request timeout run out. Every try's
//! outcome feeds the balancer's latency estimate and outlier ejection.
//!
//! A request body is sent again only when it was small and went out whole (see
//! [`super::replay`]); a larger or unfinished one goes once, so only failures before it
//! was sent (a failed connect) are retried for it.
//!
//! It reads the store and dials through `Outbound`; it never chooses an endpoint
//! `Outbound` did not offer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use causeway_policies::ServicePolicy;

use super::body::{Held, Tracked};
use super::headers::{self, ForwardedHeader, SOURCE_HEADER};
use super::pool::{Body, CheckoutError, Pool, PoolKey, SendError, Wire};
use super::protocol::PortProtocol;
use super::replay::Pending;
use super::retry::{self, RetryBudget, TryOutcome};
use crate::outbound::{ConnectError, Outbound, Route};
use crate::resolve::ServiceTarget;

/// The longest a request waits for a response head when no timeout bounds it.
pub const MAX_HEAD_WAIT: Duration = Duration::from_secs(3600);

/// The source side of per-request proxying, one per node.
#[derive(Debug)]
pub struct HttpProxy {
    outbound: Arc<Outbound>,
    pool: Pool,
    budgets: Mutex<HashMap<String, Arc<PortHttp>>>,
    forwarded: ForwardedHeader,
    tasks: crate::tasks::NodeTasks,
}

/// A Service port's retry budget, with the plan it was made for, and its counters.
#[derive(Debug)]
struct PortHttp {
    plan: Arc<ServicePolicy>,
    budget: RetryBudget,
    metrics: crate::metrics::HttpHandles,
}

/// How one try ended.
enum Tried {
    /// A response head.
    Response(Box<(Response<Incoming>, Held)>),
    /// No connection could be had (nothing was sent).
    ConnectFailed(String),
    /// Too many requests wait for this endpoint.
    Shed(String),
    /// The request may have been sent; no response came.
    Failed {
        reason: String,
        refused_stream: bool,
        sent: bool,
    },
    /// No response within the try's time.
    TimedOut(Duration),
    /// No connection within the try's time (nothing was sent).
    NoConnection(Duration),
}

impl HttpProxy {
    /// The proxy of a node.
    pub fn new(
        outbound: Arc<Outbound>,
        forwarded: ForwardedHeader,
        tasks: crate::tasks::NodeTasks,
    ) -> Self {
        Self {
            outbound,
            pool: Pool::new(tasks.clone()),
            budgets: Mutex::new(HashMap::new()),
            forwarded,
            tasks,
        }
    }

    /// The connector.
    pub fn outbound(&self) -> &Arc<Outbound> {
        &self.outbound
    }

    /// The upstream connections.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The node's tasks.
    pub fn tasks(&self) -> &crate::tasks::NodeTasks {
        &self.tasks
    }

    /// Forgets pooled connections and retry budgets nobody used lately.
    pub fn prune(&self, live: impl Fn(&str) -> bool) {
        self.pool.prune();
        if let Ok(mut budgets) = self.budgets.lock() {
            budgets.retain(|label, _| live(label));
        }
    }

    /// What the proxy keeps per Service port: its retry budget (made anew when the
    /// plan's budget changes) and its metric handles.
    fn port(&self, route: &Route) -> Arc<PortHttp> {
        let make = || {
            Arc::new(PortHttp {
                plan: Arc::clone(&route.plan),
                budget: RetryBudget::new(&route.plan.retries.budget),
                metrics: self.outbound.metrics().http_handles(&route.label),
            })
        };
        let Ok(mut ports) = self.budgets.lock() else {
            return make();
        };
        if let Some(port) = ports.get(route.label.as_str())
            && (Arc::ptr_eq(&port.plan, &route.plan)
                || port.plan.retries.budget == route.plan.retries.budget)
        {
            return Arc::clone(port);
        }
        let port = make();
        ports.insert(route.label.clone(), Arc::clone(&port));
        port
    }

    /// Carries `request` from `client` to an endpoint of `target`, whose port speaks
    /// `protocol`, and returns the response (the mesh's own answer when it could not).
    pub async fn proxy(
        &self,
        target: &ServiceTarget,
        client: SocketAddr,
        protocol: PortProtocol,
        mut request: Request<Incoming>,
    ) -> Response<Body> {
        let started = Instant::now();
        let grpc = headers::is_grpc(request.headers());
        let upgrade = headers::is_upgrade(request.headers());
        let label = target.label();
        let route = match self.outbound.route(target) {
            Ok(route) => route,
            Err(error) => return self.refused(&label, &error, grpc, started, &request),
        };
        let plan = Arc::clone(&route.plan);
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        let (hash, set_cookie) = super::hash::hash_key(&plan, &parts);
        let wire = match protocol {
            _ if upgrade => Wire::Http1,
            PortProtocol::H2c | PortProtocol::Grpc => Wire::Http2,
            PortProtocol::Http1 => Wire::Http1,
            PortProtocol::Tcp | PortProtocol::Detect if parts.version == Version::HTTP_2 => {
                Wire::Http2
            }
            PortProtocol::Tcp | PortProtocol::Detect => Wire::Http1,
        };
        if let Err(problem) = prepare(&mut parts, wire, upgrade, self.forwarded, client) {
            let method = parts.method.clone();
            let path = parts.uri.path().to_string();
            let response = headers::answer(StatusCode::BAD_REQUEST, &problem, grpc, None);
            return self.finish(&route.label, None, response, started, &method, &path);
        }
        let method = parts.method.clone();
        let parts_path = parts.uri.path().to_string();
        if let Some(client_upgrade) = client_upgrade {
            let response = self
                .upgrade(&route, client, hash, parts, body, client_upgrade)
                .await;
            let path = parts_path.clone();
            return self.finish(&route.label, None, response, started, &method, &path);
        }
        let keep = may_replay(&plan, &method, grpc);
        let deadline = plan.timeouts.request.unwrap_or(Duration::from_secs(30));
        let mut body = match tokio::time::timeout(deadline, Pending::new(body, keep)).await {
            Ok(Ok(pending)) => pending,
            Ok(Err(error)) => {
                let response = headers::answer(
                    StatusCode::BAD_REQUEST,
                    &format!("{}: reading the request body: {error}", route.label),
                    grpc,
                    None,
                );
                return self.finish(&route.label, None, response, started, &method, &parts_path);
            }
            Err(_) => {
                let response = headers::answer(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!(
                        "{}: the request body did not arrive within {deadline:?}",
                        route.label
                    ),
                    grpc,
                    None,
                );
                return self.finish(&route.label, None, response, started, &method, &parts_path);
            }
        };
        let port = self.port(&route);
        port.budget.deposit(Instant::now());
        let deadline = plan.timeouts.request.map(|t| started + t);
        let mut excluded: Vec<SocketAddr> = Vec::new();
        let mut tries: u32 = 0;
        let mut last: Option<Response<Body>> = None;
        loop {
            let chosen = match self.outbound.choose(&route, Some(client), hash, &excluded) {
                Some(chosen) => Some(chosen),
                // Every endpoint failed this request once: try them again.
                None if !excluded.is_empty() => {
                    excluded.clear();
                    self.outbound.choose(&route, Some(client), hash, &excluded)
                }
                None => None,
            };
            let Some(mut chosen) = chosen else {
                break;
            };
            if let Err(error) = self
                .outbound
                .admit(&route, &chosen, Some(client), tries == 0)
                .await
            {
                last = Some(connect_error_answer(&error, grpc));
                break;
            }
            let now = Instant::now();
            let remaining = deadline.map(|d| d.saturating_duration_since(now));
            if remaining.is_some_and(|r| r.is_zero()) {
                break;
            }
            // With neither a request nor a per-try timeout, the idle timeout still bounds
            // the wait for a response head: an endpoint that accepts and never answers
            // cannot hold a request for ever.
            let try_time = match (plan.retries.per_try_timeout, remaining) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => plan.timeouts.idle.unwrap_or(MAX_HEAD_WAIT),
            };
            let key = PoolKey {
                endpoint: chosen.endpoint,
                remote_node: chosen.remote_node.clone(),
                service: route.label.clone(),
                wire,
            };
            // The head is kept for another try only when one can happen.
            let last_try = tries >= plan.retries.attempts;
            let mut request_parts = if last_try {
                std::mem::replace(&mut parts, Request::new(()).into_parts().0)
            } else {
                clone_parts(&parts)
            };
            if chosen.remote_node.is_some() {
                source_header(&mut request_parts, client);
            }
            let tried = self
                .try_once(&key, &plan, request_parts, &mut body, try_time)
                .await;
            let elapsed = now.elapsed();
            let (outcome, response) = match tried {
                Tried::Response(tried) => {
                    let (mut response, mut held) = *tried;
                    let status = response.status().as_u16();
                    // A destination mesh says when its answer is its own: the endpoint
                    // could not be reached, or its queue was full, or the try broke there.
                    // Only a mesh can say so — a local application's header means nothing.
                    let marked = response
                        .headers_mut()
                        .remove(super::destination::ERROR_HEADER)
                        .filter(|_| chosen.remote_node.is_some());
                    headers::strip_mesh_headers(response.headers_mut());
                    headers::strip_hop_by_hop(response.headers_mut(), false);
                    let outcome = match marked.as_ref().map(|v| v.as_bytes()) {
                        Some(b"connect-failure") => TryOutcome::ConnectFailure,
                        Some(b"reset") => TryOutcome::Reset,
                        Some(b"shed") => {
                            self.outbound.metrics().error(&route.label, "shed");
                            // Read to its end, the stream goes back to the pool.
                            let held = std::mem::take(&mut held);
                            last = Some(response.map(|b| {
                                Tracked::new(b.map_err(Into::into).boxed_unsync(), held)
                                    .boxed_unsync()
                            }));
                            break;
                        }
                        _ => TryOutcome::Response {
                            status,
                            grpc_status: retry::grpc_status(response.headers()),
                        },
                    };
                    let failed = retry::is_failure(&outcome);
                    if failed {
                        chosen.pick.record_failure();
                    } else {
                        chosen.pick.record_success(elapsed);
                    }
                    self.outbound
                        .record_outcome(&route, chosen.endpoint, failed);
                    held.pick = Some(chosen.pick);
                    let response = response.map(|b| {
                        Tracked::new(b.map_err(Into::into).boxed_unsync(), held).boxed_unsync()
                    });
                    (outcome, response)
                }
                Tried::Shed(message) => {
                    self.outbound.metrics().error(&route.label, "shed");
                    last = Some(headers::answer(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &format!("{}: {message}", route.label),
                        grpc,
                        None,
                    ));
                    break;
                }
                Tried::ConnectFailed(reason) => {
                    chosen.pick.record_failure();
                    self.outbound.record_outcome(&route, chosen.endpoint, true);
                    self.outbound.metrics().error(&route.label, "connect");
                    tracing::debug!(service = %route.label, endpoint = %chosen.endpoint, %reason, "connect failed");
                    (
                        TryOutcome::ConnectFailure,
                        headers::answer(
                            StatusCode::SERVICE_UNAVAILABLE,
                            &format!("{}: no endpoint could be reached ({reason})", route.label),
                            grpc,
                            None,
                        ),
                    )
                }
                Tried::Failed {
                    reason,
                    refused_stream,
                    sent,
                } => {
                    chosen.pick.record_failure();
                    self.outbound.record_outcome(&route, chosen.endpoint, true);
                    self.outbound.metrics().error(&route.label, "upstream");
                    tracing::debug!(service = %route.label, endpoint = %chosen.endpoint, %reason, "the try failed");
                    let outcome = if refused_stream || !sent {
                        TryOutcome::RefusedStream
                    } else {
                        TryOutcome::Reset
                    };
                    (
                        outcome,
                        headers::answer(
                            StatusCode::BAD_GATEWAY,
                            &format!("{}: {reason}", route.label),
                            grpc,
                            None,
                        ),
                    )
                }
                Tried::NoConnection(after) => {
                    // Queued here or dialling: not the endpoint's fault, and the body was
                    // not sent, so another endpoint may be tried.
                    self.outbound.metrics().error(&route.label, "connect");
                    (
                        TryOutcome::ConnectFailure,
                        headers::answer(
                            StatusCode::SERVICE_UNAVAILABLE,
                            &format!(
                                "{}: no connection to {} within {after:?}",
                                route.label, chosen.endpoint
                            ),
                            grpc,
                            None,
                        ),
                    )
                }
                Tried::TimedOut(after) => {
                    chosen.pick.record_failure();
                    self.outbound.record_outcome(&route, chosen.endpoint, true);
                    self.outbound
                        .metrics()
                        .error(&route.label, "request_timeout");
                    (
                        TryOutcome::TimedOut,
                        headers::answer(
                            StatusCode::GATEWAY_TIMEOUT,
                            &format!("{}: no response within {after:?}", route.label),
                            grpc,
                            None,
                        ),
                    )
                }
            };
            // Cheapest first: the wait for the body and the budget only when a retry is
            // otherwise due.
            let due = tries < plan.retries.attempts
                && retry::retryable(&plan.retries, &method, grpc, &outcome)
                && deadline.is_none_or(|d| Instant::now() < d);
            let again = if due && port.budget.withdraw(Instant::now()) {
                // The failed try lets go of the client's body (if it still reads it),
                // so the next can resume it; its answer is kept in case it cannot.
                let resend = body.resend();
                body.abandon_try();
                if resend.ready().await {
                    drop(response);
                    true
                } else {
                    last = Some(response);
                    false
                }
            } else {
                last = Some(response);
                false
            };
            if !again {
                break;
            }
            tries += 1;
            self.outbound.metrics().retry(&route.label);
            excluded.push(chosen.endpoint);
            let wait = retry::backoff(&plan.retries.backoff, tries - 1, rand::random::<f64>());
            let wait = match deadline {
                Some(d) => wait.min(d.saturating_duration_since(Instant::now())),
                None => wait,
            };
            tokio::time::sleep(wait).await;
        }
        let mut response = last.unwrap_or_else(|| match deadline {
            Some(d) if Instant::now() >= d => {
                self.outbound
                    .metrics()
                    .error(&route.label, "request_timeout");
                headers::answer(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!(
                        "{}: no response within the request timeout {:?}",
                        route.label,
                        plan.timeouts.request.unwrap_or_default()
                    ),
                    grpc,
                    None,
                )
            }
            _ => headers::answer(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("{}: no endpoint left to try", route.label),
                grpc,
                None,
            ),
        });
        if let Some(cookie) = set_cookie {
            response
                .headers_mut()
                .append(http::header::SET_COOKIE, cookie);
        }
        self.finish(
            &route.label,
            Some(&port.metrics),
            response,
            started,
            &method,
            &parts_path,
        )
    }

    /// One try on one endpoint: a pooled connection, then the request.
    async fn try_once(
        &self,
        key: &PoolKey,
        plan: &ServicePolicy,
        parts: http::request::Parts,
        body: &mut Pending,
        try_time: Duration,
    ) -> Tried {
        let connected = std::sync::atomic::AtomicBool::new(false);
        let attempt = async {
            let lease = match self.pool.checkout(key, &self.outbound, plan).await {
                Ok(lease) => {
                    connected.store(true, std::sync::atomic::Ordering::Relaxed);
                    lease
                }
                Err(CheckoutError::Shed { .. }) => {
                    return Tried::Shed(
                        CheckoutError::Shed {
                            endpoint: key.endpoint,
                            pending: plan.connection_pool.max_pending_requests,
                        }
                        .to_string(),
                    );
                }
                Err(error @ CheckoutError::Connect { .. }) => {
                    return Tried::ConnectFailed(error.to_string());
                }
            };
            let Some(body) = body.take() else {
                return Tried::Failed {
                    reason: "the request body was already sent".into(),
                    refused_stream: false,
                    sent: true,
                };
            };
            match lease
                .send(
                    Request::from_parts(parts, body),
                    &self.pool,
                    &self.outbound,
                    plan,
                )
                .await
            {
                Ok((response, release)) => Tried::Response(Box::new((
                    response,
                    Held {
                        release,
                        pick: None,
                    },
                ))),
                Err(error) => Tried::Failed {
                    refused_stream: error.is_refused_stream(),
                    sent: !matches!(error, SendError::NotSent(_)),
                    reason: error.to_string(),
                },
            }
        };
        match tokio::time::timeout(try_time, attempt).await {
            Ok(tried) => tried,
            // Still waiting for a connection: this node's queue or a dial, not the
            // endpoint's answer.
            Err(_) if !connected.load(std::sync::atomic::Ordering::Relaxed) => {
                Tried::NoConnection(try_time)
            }
            Err(_) => Tried::TimedOut(try_time),
        }
    }

    /// A request that leaves HTTP (WebSocket…): one endpoint, a connection of its own,
    /// and after `101 Switching Protocols` the bytes copied both ways.
    async fn upgrade(
        &self,
        route: &Route,
        client: SocketAddr,
        hash: Option<u64>,
        parts: http::request::Parts,
        body: Incoming,
        client_upgrade: hyper::upgrade::OnUpgrade,
    ) -> Response<Body> {
        let Some(chosen) = self.outbound.choose(route, Some(client), hash, &[]) else {
            return headers::answer(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("{}: no endpoint left to try", route.label),
                false,
                None,
            );
        };
        if let Err(error) = self
            .outbound
            .admit(route, &chosen, Some(client), true)
            .await
        {
            return connect_error_answer(&error, false);
        }
        let key = PoolKey {
            endpoint: chosen.endpoint,
            remote_node: chosen.remote_node.clone(),
            service: route.label.clone(),
            wire: Wire::Http1,
        };
        let mut parts = parts;
        if chosen.remote_node.is_some() {
            source_header(&mut parts, client);
        }
        forward_upgrade(
            &self.pool,
            &self.outbound,
            &route.plan,
            &key,
            Request::from_parts(parts, body.map_err(Into::into).boxed_unsync()),
            client_upgrade,
            &self.tasks,
            Some(chosen.pick),
        )
        .await
    }

    fn refused(
        &self,
        label: &str,
        error: &ConnectError,
        grpc: bool,
        started: Instant,
        request: &Request<Incoming>,
    ) -> Response<Body> {
        let response = connect_error_answer(error, grpc);
        self.finish(
            label,
            None,
            response,
            started,
            request.method(),
            request.uri().path(),
        )
    }

    /// Counts the answer and writes the access log line.
    fn finish(
        &self,
        label: &str,
        handles: Option<&crate::metrics::HttpHandles>,
        response: Response<Body>,
        started: Instant,
        method: &http::Method,
        path: &str,
    ) -> Response<Body> {
        let elapsed = started.elapsed();
        // A gRPC error answered in the head (the mesh's own answers, and trailers-only
        // replies) rides on HTTP 200: count it by what it means.
        let grpc_status = retry::grpc_status(response.headers());
        let class_status = match grpc_status {
            None | Some(0) => response.status().as_u16(),
            Some(8) => 429,
            Some(4) => 504,
            Some(3 | 5 | 6 | 7 | 9 | 11 | 12 | 16) => 400,
            Some(_) => 503,
        };
        match handles {
            Some(handles) => handles.request(class_status, elapsed),
            None => self
                .outbound
                .metrics()
                .request(label, class_status, elapsed),
        }
        tracing::info!(
            target: "access",
            service = %label,
            %method,
            path,
            status = response.status().as_u16(),
            grpc_status = response.headers().get("grpc-status").and_then(|v| v.to_str().ok()),
            duration_us = elapsed.as_micros() as u64,
        );
        response
    }
}

/// Forwards an upgrade request on a dedicated connection and, once the endpoint
/// switches protocols, copies bytes between the two upgraded connections.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn forward_upgrade(
    pool: &Pool,
    outbound: &Outbound,
    plan: &ServicePolicy,
    key: &PoolKey,
    request: Request<Body>,
    client_upgrade: hyper::upgrade::OnUpgrade,
    tasks: &crate::tasks::NodeTasks,
    pick: Option<crate::balance::Pick>,
) -> Response<Body> {
    let (mut sender, permit) = match pool.dedicated(key, outbound, plan).await {
        Ok(dedicated) => dedicated,
        Err(error) => {
            return headers::answer(
                StatusCode::SERVICE_UNAVAILABLE,
                &error.to_string(),
                false,
                None,
            );
        }
    };
    let head_wait = plan
        .timeouts
        .request
        .or(plan.timeouts.idle)
        .unwrap_or(MAX_HEAD_WAIT);
    let mut response = match tokio::time::timeout(head_wait, sender.send_request(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => {
            return headers::answer(
                StatusCode::BAD_GATEWAY,
                &format!("{}: {error}", key.service),
                false,
                None,
            );
        }
        Err(_) => {
            outbound.metrics().error(&key.service, "request_timeout");
            return headers::answer(
                StatusCode::GATEWAY_TIMEOUT,
                &format!(
                    "{}: no answer to the upgrade within {head_wait:?}",
                    key.service
                ),
                false,
                None,
            );
        }
    };
    headers::strip_mesh_headers(response.headers_mut());
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return response.map(|b| b.map_err(Into::into).boxed_unsync());
    }
    let upstream_upgrade = hyper::upgrade::on(&mut response);
    let service = key.service.clone();
    let idle = plan.timeouts.idle;
    let metrics = Arc::clone(outbound.metrics());
    tasks.spawn(async move {
        // In flight, and counted against maxConnections, until the bytes stop.
        let _pick = pick;
        let _permit = permit;
        match (client_upgrade.await, upstream_upgrade.await) {
            (Ok(client), Ok(upstream)) => {
                let mut client = hyper_util::rt::TokioIo::new(client);
                let mut upstream = hyper_util::rt::TokioIo::new(upstream);
                // Bytes from here on, with the plan's idle timeout, as any L4 connection.
                match crate::splice::carry(&mut client, &mut upstream, UPGRADED_BUFFER, idle).await
                {
                    Ok(crate::splice::Ended::Done { sent, received }) => {
                        metrics.bytes(&service, sent, received);
                    }
                    Ok(crate::splice::Ended::Idle) => metrics.error(&service, "idle_timeout"),
                    Err(error) => {
                        tracing::debug!(%service, %error, "upgraded connection ended with an error");
                    }
                }
            }
            (Err(error), _) | (_, Err(error)) => {
                tracing::debug!(%service, %error, "an upgrade did not complete");
            }
        }
    });
    response.map(|_| headers::empty())
}

/// Bytes copied at a time each way on an upgraded connection (WebSocket messages are
/// small; the mesh's L4 buffer is for bulk transfer).
const UPGRADED_BUFFER: usize = 16 * 1024;

/// Whether keeping the body for another try can be worth it: retries are on, and a
/// response could lead to one — an idempotent method, a gRPC call, or a plan that
/// retries the others too. (A failed connect needs no copy: nothing was sent.)
fn may_replay(plan: &ServicePolicy, method: &http::Method, grpc: bool) -> bool {
    plan.retries.attempts > 0
        && (grpc || plan.retries.non_idempotent || retry::is_idempotent(method))
}

/// Tells the destination mesh who the client is (a request to another node only: an
/// application never sees the mesh's own headers).
fn source_header(parts: &mut http::request::Parts, client: SocketAddr) {
    if let Ok(value) = HeaderValue::from_str(&client.to_string()) {
        parts.headers.insert(SOURCE_HEADER, value);
    }
}

/// The head of a request sent again (the body travels separately).
fn clone_parts(parts: &http::request::Parts) -> http::request::Parts {
    let mut request = Request::new(());
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request.into_parts().0
}

/// Turns a client's request head into the one sent upstream: hop-by-hop and mesh
/// headers out, the forwarded header in, the URI and version the wire needs (origin
/// form and `host` for HTTP/1.1; an absolute URI for HTTP/2). The authority (the URI's,
/// else `host`) must parse as one: it is never pasted into a URI as text.
pub(crate) fn prepare(
    parts: &mut http::request::Parts,
    wire: Wire,
    upgrade: bool,
    forwarded: ForwardedHeader,
    client: SocketAddr,
) -> Result<(), String> {
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    headers::strip_mesh_headers(&mut parts.headers);
    headers::add_forwarded(&mut parts.headers, forwarded, client.ip());
    let authority = match parts.uri.authority() {
        Some(authority) => Some(authority.clone()),
        None => match parts.headers.get(http::header::HOST) {
            Some(host) => Some(
                http::uri::Authority::try_from(host.as_bytes())
                    .map_err(|e| format!("the host header is not a host[:port]: {e}"))?,
            ),
            None => None,
        },
    };
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    let mut uri = http::uri::Parts::default();
    match wire {
        Wire::Http1 => {
            parts.version = Version::HTTP_11;
            if let Some(authority) = authority
                && let Ok(value) = HeaderValue::from_str(authority.as_str())
            {
                parts.headers.insert(http::header::HOST, value);
            }
        }
        Wire::Http2 => {
            parts.version = Version::HTTP_2;
            uri.scheme = Some(http::uri::Scheme::HTTP);
            uri.authority =
                Some(authority.unwrap_or_else(|| http::uri::Authority::from_static("localhost")));
            parts.headers.remove(http::header::HOST);
        }
    }
    uri.path_and_query = Some(path);
    parts.uri = Uri::from_parts(uri).map_err(|e| format!("the request target: {e}"))?;
    Ok(())
}

/// The mesh's answer when a request could not be carried.
pub(crate) fn connect_error_answer(error: &ConnectError, grpc: bool) -> Response<Body> {
    let (status, retry_after) = match error {
        ConnectError::NotAService { .. } | ConnectError::NoSuchPort { .. } => {
            (StatusCode::NOT_FOUND, None)
        }
        ConnectError::NoReadyEndpoints { .. } => (StatusCode::SERVICE_UNAVAILABLE, None),
        ConnectError::RateLimited { retry_after_ms, .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_millis(
                u64::try_from(*retry_after_ms).unwrap_or(u64::MAX),
            )),
        ),
        ConnectError::AllFailed { .. } => (StatusCode::BAD_GATEWAY, None),
    };
    headers::answer(status, &error.to_string(), grpc, retry_after)
}
