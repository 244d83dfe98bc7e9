//! Upstream HTTP connections, pooled per endpoint, for per-request proxying.
//!
//! An endpoint's pool holds idle HTTP/1.1 connections (one request at a time each, put
//! back when a response has been read to its end) or one shared HTTP/2 connection
//! (requests multiplexed on it, dialled once however many requests wait for it). A
//! connection is a TCP connection to an endpoint on this node, or a tunnel stream to the
//! endpoint's node, whose mesh serves HTTP on it (`Request::ProxyHttp`) — so requests to
//! other nodes reuse streams the way requests to local pods reuse connections.
//!
//! The plan's connection-pool limits apply here: `maxConnections` caps the requests in
//! flight to one endpoint (for HTTP/1.1 that is its connections; an HTTP/2 endpoint
//! multiplexes them on one), `maxPendingRequests` caps those waiting for one of them —
//! more are shed — and `maxRequestsPerConnection` retires a connection after that many
//! requests.
//!
//! It dials through `Outbound` (so the endpoint guard and the tunnel's view apply) and
//! never chooses endpoints.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use causeway_policies::ServicePolicy;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::outbound::{Outbound, Upstream};
use crate::tasks::NodeTasks;

/// Errors inside bodies the proxy carries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every request and response the proxy forwards.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// An idle HTTP/1.1 connection older than this is closed rather than reused: endpoints
/// and NATs drop quiet connections, and a request sent on one that just closed fails.
const IDLE_EXPIRY: Duration = Duration::from_secs(60);
/// Idle HTTP/1.1 connections kept per endpoint; more are closed when returned.
const MAX_IDLE_PER_ENDPOINT: usize = 256;
/// An endpoint's pool unused this long is forgotten by [`Pool::prune`].
const POOL_EXPIRY: Duration = Duration::from_secs(300);

/// The HTTP version spoken to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    /// HTTP/1.1, one request at a time per connection.
    Http1,
    /// HTTP/2 with prior knowledge (h2c), requests multiplexed.
    Http2,
}

/// Which pool a request draws from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// The endpoint.
    pub endpoint: SocketAddr,
    /// Its node, `None` for this node.
    pub remote_node: Option<String>,
    /// `namespace/name:port`: a stream to another node names the Service it is for.
    pub service: String,
    /// The HTTP version.
    pub wire: Wire,
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// Too many requests already wait for a connection to this endpoint.
    #[error(
        "{pending} requests already wait for a connection to {endpoint} (maxPendingRequests); shedding load"
    )]
    Shed {
        /// The endpoint.
        endpoint: SocketAddr,
        /// How many wait.
        pending: u32,
    },
    /// Connecting failed: nothing was sent, so another endpoint may be tried.
    #[error("{endpoint}: {reason}")]
    Connect {
        /// The endpoint.
        endpoint: SocketAddr,
        /// What failed.
        reason: String,
    },
}

/// An HTTP/1.1 connection: its sender, and the task that drives it (aborting it closes
/// the connection, whatever it was doing).
#[derive(Debug)]
struct Http1Conn {
    sender: http1::SendRequest<Body>,
    driver: Option<tokio::task::AbortHandle>,
    uses: u32,
}

impl Http1Conn {
    fn close(&self) {
        if let Some(driver) = &self.driver {
            driver.abort();
        }
    }
}

#[derive(Debug)]
struct Idle {
    conn: Http1Conn,
    since: Instant,
}

#[derive(Debug)]
struct Limit {
    max: u32,
    permits: Arc<Semaphore>,
}

#[derive(Debug)]
struct EndpointPool {
    key: PoolKey,
    idle: Mutex<Vec<Idle>>,
    shared: Mutex<Option<http2::SendRequest<Body>>>,
    /// Held by the one dialling the shared HTTP/2 connection; keeps when and why the
    /// last dial failed.
    dialling: tokio::sync::Mutex<Option<(Instant, String)>>,
    limit: Mutex<Option<Limit>>,
    waiting: AtomicU32,
    last_used: Mutex<Instant>,
}

impl EndpointPool {
    fn new(key: PoolKey) -> Self {
        Self {
            key,
            idle: Mutex::new(Vec::new()),
            shared: Mutex::new(None),
            dialling: tokio::sync::Mutex::new(None),
            limit: Mutex::new(None),
            waiting: AtomicU32::new(0),
            last_used: Mutex::new(Instant::now()),
        }
    }

    /// The semaphore of `max_connections`, made anew when the plan's value changed.
    fn permits(&self, max: Option<u32>) -> Option<Arc<Semaphore>> {
        let max = max?;
        let Ok(mut limit) = self.limit.lock() else {
            return None;
        };
        match &*limit {
            Some(current) if current.max == max => Some(Arc::clone(&current.permits)),
            _ => {
                let permits = Arc::new(Semaphore::new(max as usize));
                *limit = Some(Limit {
                    max,
                    permits: Arc::clone(&permits),
                });
                Some(permits)
            }
        }
    }

    /// The most recently returned idle connection that is ready for a request. One
    /// still busy (its request body still uploading after an early response) stays in
    /// the list for later; closed and expired ones are dropped. Never waits.
    fn take_idle(&self) -> Option<Idle> {
        let mut idle = self.idle.lock().ok()?;
        let now = Instant::now();
        idle.retain(|c| !c.conn.sender.is_closed() && now.duration_since(c.since) < IDLE_EXPIRY);
        let ready = idle.iter().rposition(|c| c.conn.sender.is_ready())?;
        Some(idle.swap_remove(ready))
    }

    /// Drops idle connections that expired or closed.
    fn sweep(&self, now: Instant) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain(|c| {
                !c.conn.sender.is_closed() && now.duration_since(c.since) < IDLE_EXPIRY
            });
        }
    }

    fn put_idle(&self, conn: Http1Conn) {
        if conn.sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE_PER_ENDPOINT
        {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    fn touch(&self) {
        if let Ok(mut last) = self.last_used.lock() {
            *last = Instant::now();
        }
    }

    fn expired(&self, now: Instant) -> bool {
        let quiet = self
            .last_used
            .lock()
            .map(|last| now.duration_since(*last) > POOL_EXPIRY)
            .unwrap_or(true);
        quiet && self.waiting.load(Ordering::Relaxed) == 0
    }
}

/// One request counted as waiting for a connection until dropped.
struct Waiting<'a> {
    counter: &'a AtomicU32,
    count: u32,
}

impl<'a> Waiting<'a> {
    fn enter(counter: &'a AtomicU32) -> Self {
        let count = counter.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        Self { counter, count }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connections of one node's per-request proxy.
#[derive(Debug)]
pub struct Pool {
    endpoints: Mutex<HashMap<PoolKey, Arc<EndpointPool>>>,
    tasks: NodeTasks,
}

#[derive(Debug)]
enum Sender {
    Http1 { conn: Http1Conn, reused: bool },
    Http2(http2::SendRequest<Body>),
}

/// A connection lent to one request; see [`Lease::send`].
#[derive(Debug)]
pub struct Lease {
    sender: Sender,
    pool: Arc<EndpointPool>,
    max_requests: Option<u32>,
    _permit: Option<OwnedSemaphorePermit>,
}

/// Hands an HTTP/1.1 connection back when its response has been read to the end (see
/// [`Release::release`]); dropped unreleased, the connection is closed (its driver
/// aborted, so an upload still going on stops too).
#[derive(Debug)]
pub struct Release {
    returned: Option<Http1Conn>,
    pool: Arc<EndpointPool>,
    tasks: NodeTasks,
    permit: Option<OwnedSemaphorePermit>,
}

/// How long a connection whose response ended may take to finish sending its request
/// (an endpoint that answered before reading the whole body) before it is closed.
const FINISH_UPLOAD: Duration = Duration::from_secs(1);

impl Release {
    /// The response was read whole: the connection serves the next request once it is
    /// ready — at once, or when its request body is sent, within a second; it
    /// stays counted against `maxConnections` until then.
    pub fn release(mut self) {
        let Some(mut conn) = self.returned.take() else {
            return;
        };
        if conn.sender.is_ready() {
            self.pool.put_idle(conn);
            return;
        }
        let pool = Arc::clone(&self.pool);
        let permit = self.permit.take();
        self.tasks.spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(FINISH_UPLOAD, conn.sender.ready()).await {
                Ok(Ok(())) => pool.put_idle(conn),
                _ => conn.close(),
            }
        });
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if let Some(conn) = self.returned.take() {
            conn.close();
        }
    }
}

/// What a send ended with.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The connection failed before the request was written: another endpoint may be
    /// tried, whatever the method.
    #[error("the connection closed before the request was sent: {0}")]
    NotSent(hyper::Error),
    /// The request was (maybe) written; its fate is unknown.
    #[error("{0}")]
    Failed(hyper::Error),
}

impl SendError {
    /// The HTTP/2 stream was refused by the endpoint before it processed the request.
    pub fn is_refused_stream(&self) -> bool {
        let error = match self {
            SendError::NotSent(e) | SendError::Failed(e) => e,
        };
        // Only REFUSED_STREAM says the endpoint processed nothing. After a GOAWAY every
        // stream fails alike, including those at or below its last stream id, which the
        // endpoint may have handled: those are not safe to send again.
        std::error::Error::source(error)
            .and_then(|s| s.downcast_ref::<h2::Error>())
            .and_then(h2::Error::reason)
            == Some(h2::Reason::REFUSED_STREAM)
    }
}

impl Lease {
    /// Sends `request` and waits for the response head. An HTTP/1.1 connection that was
    /// reused and turns out closed before the request went out is replaced by a new
    /// one once, transparently.
    pub async fn send(
        self,
        request: Request<Body>,
        pool: &Pool,
        outbound: &Outbound,
        plan: &ServicePolicy,
    ) -> Result<(Response<Incoming>, Option<Release>), SendError> {
        let Lease {
            sender,
            pool: endpoint_pool,
            max_requests,
            _permit: permit,
        } = self;
        match sender {
            Sender::Http2(mut sender) => match sender.try_send_request(request).await {
                // Nothing to hand back, but the request stays counted against
                // `maxConnections` until its response ends.
                Ok(response) => Ok((
                    response,
                    Some(Release {
                        returned: None,
                        pool: endpoint_pool,
                        tasks: pool.tasks.clone(),
                        permit,
                    }),
                )),
                Err(mut error) => {
                    if error.take_message().is_some() {
                        // Retired between checkout and send: the next checkout dials anew.
                        // Forgotten only if it is still the closed one, not a newer
                        // connection another request just made.
                        if let Ok(mut shared) = endpoint_pool.shared.lock()
                            && shared.as_ref().is_some_and(http2::SendRequest::is_closed)
                        {
                            *shared = None;
                        }
                        Err(SendError::NotSent(error.into_error()))
                    } else {
                        Err(SendError::Failed(error.into_error()))
                    }
                }
            },
            Sender::Http1 { mut conn, reused } => {
                let result = conn.sender.try_send_request(request).await;
                let (response, mut conn) = match result {
                    Ok(response) => (response, conn),
                    Err(mut error) => match error.take_message() {
                        Some(request) if reused => {
                            tracing::debug!(endpoint = %endpoint_pool.key.endpoint, "a pooled connection had closed; sending on a new one");
                            let mut fresh = pool
                                .dial_http1(&endpoint_pool, outbound, plan)
                                .await
                                .map_err(|_| SendError::NotSent(error.into_error()))?;
                            let response = fresh
                                .sender
                                .send_request(request)
                                .await
                                .map_err(SendError::Failed)?;
                            (response, fresh)
                        }
                        Some(_) => return Err(SendError::NotSent(error.into_error())),
                        None => return Err(SendError::Failed(error.into_error())),
                    },
                };
                conn.uses = conn.uses.saturating_add(1);
                let keep = max_requests.is_none_or(|max| conn.uses < max);
                let release = Release {
                    // Retired after its last request: hyper closes it once that ends.
                    returned: keep.then_some(conn),
                    pool: endpoint_pool,
                    tasks: pool.tasks.clone(),
                    permit,
                };
                Ok((response, Some(release)))
            }
        }
    }
}

impl Pool {
    /// An empty pool whose connection drivers run as `tasks`.
    pub fn new(tasks: NodeTasks) -> Self {
        Self {
            endpoints: Mutex::new(HashMap::new()),
            tasks,
        }
    }

    fn endpoint(&self, key: &PoolKey) -> Arc<EndpointPool> {
        let Ok(mut endpoints) = self.endpoints.lock() else {
            return Arc::new(EndpointPool::new(key.clone()));
        };
        if let Some(pool) = endpoints.get(key) {
            return Arc::clone(pool);
        }
        let pool = Arc::new(EndpointPool::new(key.clone()));
        endpoints.insert(key.clone(), Arc::clone(&pool));
        pool
    }

    /// A connection to the endpoint of `key`, within the plan's pool limits: an idle
    /// one, the shared HTTP/2 one, or a new one dialled within the connect timeout.
    pub async fn checkout(
        &self,
        key: &PoolKey,
        outbound: &Outbound,
        plan: &ServicePolicy,
    ) -> Result<Lease, CheckoutError> {
        let pool = self.endpoint(key);
        pool.touch();
        let limits = &plan.connection_pool;
        let permit = Self::admit(&pool, key, plan).await?;
        let sender = match key.wire {
            Wire::Http2 => Sender::Http2(self.shared_http2(&pool, outbound, plan).await?),
            Wire::Http1 => match pool.take_idle() {
                Some(idle) => Sender::Http1 {
                    conn: idle.conn,
                    reused: true,
                },
                None => Sender::Http1 {
                    conn: self.dial_http1(&pool, outbound, plan).await?,
                    reused: false,
                },
            },
        };
        Ok(Lease {
            sender,
            pool,
            max_requests: limits.max_requests_per_connection,
            _permit: permit,
        })
    }

    /// A place among the requests in flight to the endpoint when the plan caps them
    /// (`maxConnections`), waiting as one of at most `maxPendingRequests`; `None` when
    /// there is no cap.
    async fn admit(
        pool: &EndpointPool,
        key: &PoolKey,
        plan: &ServicePolicy,
    ) -> Result<Option<OwnedSemaphorePermit>, CheckoutError> {
        let limits = &plan.connection_pool;
        let Some(permits) = pool.permits(limits.max_connections) else {
            return Ok(None);
        };
        if let Ok(permit) = Arc::clone(&permits).try_acquire_owned() {
            return Ok(Some(permit));
        }
        // Counted while waiting, and uncounted however the wait ends — a timeout or a
        // client that went away drops this future mid-wait.
        let waiting = Waiting::enter(&pool.waiting);
        let pending = waiting.count;
        let waited = if pending > limits.max_pending_requests {
            None
        } else {
            permits.acquire_owned().await.ok()
        };
        drop(waiting);
        waited.map(Some).ok_or(CheckoutError::Shed {
            endpoint: key.endpoint,
            pending: pending.saturating_sub(1),
        })
    }

    /// A connection of its own for a request that upgrades (WebSocket and the like):
    /// it leaves HTTP after the response, so it is never pooled. It counts against
    /// `maxConnections` for as long as the caller holds the permit returned with it.
    pub async fn dedicated(
        &self,
        key: &PoolKey,
        outbound: &Outbound,
        plan: &ServicePolicy,
    ) -> Result<(http1::SendRequest<Body>, Option<OwnedSemaphorePermit>), CheckoutError> {
        let pool = self.endpoint(key);
        pool.touch();
        let permit = Self::admit(&pool, key, plan).await?;
        let io = self.dial(key, outbound, plan).await?;
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|error| CheckoutError::Connect {
                endpoint: key.endpoint,
                reason: format!("HTTP/1.1 handshake: {error}"),
            })?;
        self.tasks.spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "upgraded upstream connection ended with an error");
            }
        });
        Ok((sender, permit))
    }

    async fn dial(
        &self,
        key: &PoolKey,
        outbound: &Outbound,
        plan: &ServicePolicy,
    ) -> Result<Upstream, CheckoutError> {
        let io = outbound
            .dial_http(key.endpoint, key.remote_node.as_deref(), &key.service, plan)
            .await
            .map_err(|reason| CheckoutError::Connect {
                endpoint: key.endpoint,
                reason,
            })?;
        let labels = crate::metrics::ConnectionLabels {
            service: key.service.clone(),
            endpoint_node: key.remote_node.clone().unwrap_or_else(|| "local".into()),
        };
        outbound.metrics().connections.get_or_create(&labels).inc();
        Ok(io)
    }

    async fn dial_http1(
        &self,
        pool: &EndpointPool,
        outbound: &Outbound,
        plan: &ServicePolicy,
    ) -> Result<Http1Conn, CheckoutError> {
        let io = self.dial(&pool.key, outbound, plan).await?;
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|error| CheckoutError::Connect {
                endpoint: pool.key.endpoint,
                reason: format!("HTTP/1.1 handshake: {error}"),
            })?;
        let driver = self.tasks.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "upstream HTTP/1.1 connection ended with an error");
            }
        });
        Ok(Http1Conn {
            sender,
            driver,
            uses: 0,
        })
    }

    /// The endpoint's HTTP/2 connection, dialled by the first request that needs it
    /// while the others wait for it.
    async fn shared_http2(
        &self,
        pool: &EndpointPool,
        outbound: &Outbound,
        plan: &ServicePolicy,
    ) -> Result<http2::SendRequest<Body>, CheckoutError> {
        let current = || {
            pool.shared
                .lock()
                .ok()
                .and_then(|shared| shared.as_ref().filter(|s| !s.is_closed()).cloned())
        };
        if let Some(sender) = current() {
            return Ok(sender);
        }
        let waited_since = Instant::now();
        let mut dialling = pool.dialling.lock().await;
        if let Some(sender) = current() {
            return Ok(sender);
        }
        // The dial this request waited for failed: share its failure rather than queue
        // one more connect timeout behind it.
        if let Some((at, reason)) = &*dialling
            && *at >= waited_since
        {
            return Err(CheckoutError::Connect {
                endpoint: pool.key.endpoint,
                reason: reason.clone(),
            });
        }
        let io = match self.dial(&pool.key, outbound, plan).await {
            Ok(io) => io,
            Err(error) => {
                *dialling = Some((Instant::now(), error.to_string()));
                return Err(error);
            }
        };
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .adaptive_window(true)
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .handshake(TokioIo::new(io))
            .await
            .map_err(|error| {
                let reason = format!("HTTP/2 handshake: {error}");
                *dialling = Some((Instant::now(), reason.clone()));
                CheckoutError::Connect {
                    endpoint: pool.key.endpoint,
                    reason,
                }
            })?;
        self.tasks.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "upstream HTTP/2 connection ended with an error");
            }
        });
        if let Ok(mut shared) = pool.shared.lock() {
            *shared = Some(sender.clone());
        }
        Ok(sender)
    }

    /// Forgets endpoints unused for a while, closing their idle connections.
    pub fn prune(&self) {
        let now = Instant::now();
        if let Ok(mut endpoints) = self.endpoints.lock() {
            // A pool someone still holds (a lease, a release, an upgraded connection with
            // its permit) stays, or its maxConnections count would start again at zero.
            endpoints.retain(|_, pool| Arc::strong_count(pool) > 1 || !pool.expired(now));
            for pool in endpoints.values() {
                pool.sweep(now);
            }
        }
    }

    /// Endpoints the pool knows.
    pub fn len(&self) -> usize {
        self.endpoints.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether the pool knows no endpoint.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
