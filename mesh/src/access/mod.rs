//! Access without root: listeners on loopback that take a client's connection and carry
//! it to a Service through the same resolver, balancer, policies and tunnels the
//! transparent path uses — an HTTP proxy ([`http`]), SOCKS5 ([`socks`]) and
//! per-Service listeners.
//!
//! They reach Services of the mesh only: a name or address that is not one is refused,
//! never dialled.

pub mod http;
pub mod socks;

use std::net::SocketAddr;
use std::sync::Arc;

use causeway_edge_core::metamanager::MetaManager;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::http::prefixed::Prefixed;
use crate::http::protocol::{self, PortProtocol, Sniffed};
use crate::http::proxy::HttpProxy;
use crate::inbound::REFUSED_LABEL;
use crate::metrics::MeshMetrics;
use crate::outbound::{ConnectError, Connection, Outbound};
use crate::resolve::{NameRules, ServiceTarget, Unresolved};

/// What the access listeners share.
#[derive(Debug)]
pub struct Access {
    /// How names resolve.
    pub rules: NameRules,
    /// The node store.
    pub store: MetaManager,
    /// The connector.
    pub outbound: Arc<Outbound>,
    /// Counters.
    pub metrics: Arc<MeshMetrics>,
    /// Bytes copied at a time.
    pub buffer: usize,
    /// The node's tasks: every connection runs as one of them.
    pub tasks: crate::tasks::NodeTasks,
    /// Per-request proxying for HTTP ports.
    pub http: Arc<HttpProxy>,
}

impl Access {
    /// The Service port `host:port` names.
    pub fn resolve(&self, host: &str, port: u16) -> Result<ServiceTarget, ConnectError> {
        let snapshot = self.store.snapshot();
        self.rules
            .resolve(&snapshot, host, port)
            .map_err(|unresolved| {
                // Counted under one label: a client must not be able to mint metric series
                // by asking for names.
                self.metrics.error(REFUSED_LABEL, "not_a_service");
                match unresolved {
                    Unresolved::NotAService => ConnectError::NotAService {
                        host: format!("{host}:{port}"),
                    },
                    Unresolved::NoSuchPort { service, ports } => ConnectError::NoSuchPort {
                        service,
                        port,
                        ports,
                    },
                }
            })
    }

    /// Resolves `host:port` to a Service port and connects to one of its endpoints.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        client: SocketAddr,
    ) -> Result<Connection, ConnectError> {
        let target = self.resolve(host, port)?;
        self.outbound.connect(&target, Some(client), None).await
    }
}

/// Carries every connection to `listener` to the Service port `service` names.
pub async fn serve_service(
    listener: TcpListener,
    access: Arc<Access>,
    service: crate::node::ServiceListener,
) {
    let host = format!(
        "{}.{}.svc.{}",
        service.name, service.namespace, access.rules.cluster_domain
    );
    loop {
        let (tcp, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                accept_failed(&error).await;
                continue;
            }
        };
        let task_access = Arc::clone(&access);
        let host = host.clone();
        access.tasks.spawn(async move {
            let access = task_access;
            let _ = tcp.set_nodelay(true);
            let protocol = match access.resolve(&host, service.port) {
                Ok(target) => protocol_of(&target),
                Err(_) => PortProtocol::Tcp,
            };
            if protocol != PortProtocol::Tcp {
                serve_client(
                    Arc::clone(&access),
                    tcp,
                    host,
                    service.port,
                    client,
                    protocol,
                )
                .await;
                return;
            }
            match access.connect(&host, service.port, client).await {
                Ok(connection) => carry(tcp, connection, &access).await,
                Err(error) => {
                    tracing::debug!(%client, %error, "refused a connection to a service listener");
                    // Closing with zero linger resets the client at once, as a refused
                    // connection to the Service would.
                    let _ = tcp.set_zero_linger();
                }
            }
        });
    }
}

/// How the Service port `target` is proxied: per request for HTTP, as bytes for TCP,
/// or decided by the connection's first bytes.
pub fn protocol_of(target: &ServiceTarget) -> PortProtocol {
    protocol::classify(
        target.port.app_protocol.as_deref(),
        target.port.name.as_deref(),
    )
}

/// Serves a client's connection to the Service port `host:port` by its protocol: HTTP
/// per request, or — for a port that does not say — HTTP when the first bytes are an
/// HTTP/1 request line or the HTTP/2 preface, else bytes. Waits at most
/// [`protocol::SNIFF_TIMEOUT`] for the first bytes: protocols where the server speaks
/// first (SMTP, MySQL) send none, and are carried as bytes.
pub(crate) async fn serve_client<C>(
    access: Arc<Access>,
    mut io: C,
    host: String,
    port: u16,
    client: SocketAddr,
    protocol: PortProtocol,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut first = Vec::new();
    let http = match protocol {
        PortProtocol::Http1 | PortProtocol::H2c | PortProtocol::Grpc => true,
        PortProtocol::Tcp => false,
        PortProtocol::Detect => {
            let deadline = tokio::time::Instant::now() + protocol::SNIFF_TIMEOUT;
            let mut chunk = [0u8; 1024];
            loop {
                match protocol::sniff(&first) {
                    Sniffed::Http1 | Sniffed::H2 => break true,
                    Sniffed::Other => break false,
                    Sniffed::NeedMore => {}
                }
                match tokio::time::timeout_at(deadline, io.read(&mut chunk)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return,
                    Ok(Ok(n)) => first.extend_from_slice(&chunk[..n]),
                    Err(_) => break false,
                }
            }
        }
    };
    let io = Prefixed::new(bytes::Bytes::from(first.clone()), io);
    if http {
        // Resolved once per snapshot, not per request: a keep-alive connection follows
        // the Service as the store changes, and pays for the lookup only then.
        let resolver_access = Arc::clone(&access);
        let cached: std::sync::Mutex<Option<(u64, Arc<ServiceTarget>)>> =
            std::sync::Mutex::new(None);
        let resolve: crate::http::serve::Resolver = Arc::new(move || {
            let version = resolver_access.store.snapshot().version;
            if let Ok(cached) = cached.lock()
                && let Some((seen, target)) = cached.as_ref()
                && *seen == version
            {
                return Ok(Arc::clone(target));
            }
            let target = Arc::new(resolver_access.resolve(&host, port)?);
            if let Ok(mut cached) = cached.lock() {
                *cached = Some((version, Arc::clone(&target)));
            }
            Ok(target)
        });
        crate::http::serve::serve_connection(
            Arc::clone(&access.http),
            io,
            client,
            protocol,
            resolve,
        )
        .await;
        return;
    }
    match access.connect(&host, port, client).await {
        Ok(connection) => carry(io, connection, &access).await,
        Err(error) => tracing::debug!(%client, %error, "refused a connection to a service"),
    }
}

/// Copies both ways between the client and the endpoint until both are done, then
/// counts the bytes.
pub(crate) async fn carry<C>(mut client: C, connection: Connection, access: &Access)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut upstream = connection.upstream;
    match crate::splice::carry(&mut client, &mut upstream, access.buffer, connection.idle).await {
        Ok(crate::splice::Ended::Done { sent, received }) => {
            access.metrics.bytes(&connection.label, sent, received);
        }
        Ok(crate::splice::Ended::Idle) => {
            tracing::debug!(service = %connection.label, idle = ?connection.idle, "closed an idle connection");
            access.metrics.error(&connection.label, "idle_timeout");
        }
        Err(error) => {
            tracing::debug!(service = %connection.label, %error, "connection ended with an error")
        }
    }
    drop(connection.guard);
}

/// After a failed accept (out of file descriptors, most likely): log it and pause, so
/// the loop does not spin while the condition lasts.
pub(crate) async fn accept_failed(error: &std::io::Error) {
    tracing::warn!(%error, "accept failed; pausing the listener for 100 ms");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}

/// Serves SOCKS5 on `listener`.
pub async fn serve_socks(listener: TcpListener, access: Arc<Access>) {
    loop {
        let (tcp, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                accept_failed(&error).await;
                continue;
            }
        };
        let task_access = Arc::clone(&access);
        access.tasks.spawn(async move {
            let access = task_access;
            if let Err(error) = socks_session(tcp, client, &access).await {
                tracing::debug!(%client, %error, "SOCKS session ended");
            }
        });
    }
}

/// How long a SOCKS client has to say what it wants.
const SOCKS_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest SOCKS message: a request with a 255-byte name.
const SOCKS_MAX_MESSAGE: usize = 300;

/// Reads until `parse` finds a whole message at the front of `buf`; returns it and
/// drops its bytes from `buf`. `Ok(None)` when the client left or sent too much.
async fn read_socks<T>(
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
    parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, socks::SocksError>,
) -> std::io::Result<Option<Result<T, socks::SocksError>>> {
    let mut chunk = [0u8; SOCKS_MAX_MESSAGE];
    loop {
        match parse(buf) {
            Ok(Some((message, used))) => {
                buf.drain(..used);
                return Ok(Some(Ok(message)));
            }
            Ok(None) => {}
            Err(error) => return Ok(Some(Err(error))),
        }
        let n = tcp.read(&mut chunk).await?;
        if n == 0 || buf.len() > SOCKS_MAX_MESSAGE {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The greeting and the request; `Ok(None)` when the client went away.
async fn socks_handshake(
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<socks::ConnectRequest>> {
    match read_socks(tcp, buf, socks::parse_greeting).await? {
        None => return Ok(None),
        Some(Err(error)) => {
            let _ = tcp.write_all(&[5, 0xff]).await;
            return Err(std::io::Error::other(error.to_string()));
        }
        Some(Ok(_)) => tcp.write_all(&[5, 0]).await?,
    }
    match read_socks(tcp, buf, socks::parse_request).await? {
        None => Ok(None),
        Some(Ok(request)) => Ok(Some(request)),
        Some(Err(error)) => {
            let code = match error {
                socks::SocksError::Command(_) => socks::Reply::CommandNotSupported,
                socks::SocksError::AddressType(_) => socks::Reply::AddressTypeNotSupported,
                _ => socks::Reply::GeneralFailure,
            };
            let _ = tcp.write_all(&socks::reply(code)).await;
            Err(std::io::Error::other(error.to_string()))
        }
    }
}

async fn socks_session(
    mut tcp: TcpStream,
    client: SocketAddr,
    access: &Arc<Access>,
) -> std::io::Result<()> {
    let _ = tcp.set_nodelay(true);
    let mut buf = Vec::with_capacity(SOCKS_MAX_MESSAGE);
    let request =
        match tokio::time::timeout(SOCKS_HANDSHAKE, socks_handshake(&mut tcp, &mut buf)).await {
            Ok(Ok(Some(request))) => request,
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(error)) => return Err(error),
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no SOCKS request within {SOCKS_HANDSHAKE:?}"),
                ));
            }
        };
    let host = match &request.address {
        socks::Address::Ip(ip) => ip.to_string(),
        socks::Address::Name(name) => name.clone(),
    };
    if let Ok(target) = access.resolve(&host, request.port) {
        let protocol = protocol_of(&target);
        if protocol != PortProtocol::Tcp {
            tcp.write_all(&socks::reply(socks::Reply::Succeeded))
                .await?;
            let io = Prefixed::new(bytes::Bytes::from(buf), tcp);
            serve_client(Arc::clone(access), io, host, request.port, client, protocol).await;
            return Ok(());
        }
    }
    let connection = match access.connect(&host, request.port, client).await {
        Ok(connection) => connection,
        Err(error) => {
            let code = match error {
                ConnectError::NotAService { .. } | ConnectError::NoSuchPort { .. } => {
                    socks::Reply::NotAllowed
                }
                ConnectError::NoReadyEndpoints { .. } => socks::Reply::HostUnreachable,
                ConnectError::RateLimited { .. } | ConnectError::AllFailed { .. } => {
                    socks::Reply::ConnectionRefused
                }
            };
            tcp.write_all(&socks::reply(code)).await?;
            return Err(std::io::Error::other(error.to_string()));
        }
    };
    tcp.write_all(&socks::reply(socks::Reply::Succeeded))
        .await?;
    let mut connection = connection;
    if !buf.is_empty() {
        connection.upstream.write_all(&buf).await?;
    }
    carry(tcp, connection, access).await;
    Ok(())
}
