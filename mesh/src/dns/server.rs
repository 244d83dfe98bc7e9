//! The sockets: UDP and TCP listeners feeding the handler, with bounds on work in
//! flight, idle timeouts, and shutdown.
//!
//! Questions the handler can answer at once (cluster names, cached upstream answers)
//! are answered in the receive loop; only a question that waits on an upstream gets a
//! task of its own, within the bound on messages in flight, so it never holds up an
//! answer from the cluster, on UDP or on a pipelined TCP connection. On Linux the UDP
//! loop takes a batch of datagrams per system call and sends their answers with one
//! (`batch`); elsewhere, or on a kernel without those calls, one datagram per call.
//! This module moves bytes; what they mean is the handler's business.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::timeout;

use super::DnsError;
use super::handler::{DnsHandler, Immediate, Transport};

/// The receive buffer for one datagram (the largest a UDP packet can be).
const MAX_DATAGRAM: usize = 65_535;
/// Forwarded questions being answered at once, over all listeners; past this such UDP
/// datagrams and TCP messages are dropped (the client retries).
const MAX_IN_FLIGHT: usize = 4096;
/// TCP connections open at once; past this new ones are closed at once.
const MAX_TCP_CONNECTIONS: usize = 512;
/// Questions answered at once on one TCP connection.
const TCP_PIPELINE: usize = 32;
/// How long a TCP connection may sit idle (or take to send a message, or to take an
/// answer) before it is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// How long listeners wait for answers in progress when shutting down.
const DRAIN: Duration = Duration::from_secs(1);
/// Pause after a failed accept or receive, so a persistent error does not spin.
const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// Attempts at binding UDP and TCP on one free port.
const PAIR_ATTEMPTS: usize = 16;

/// Limits shared by every listener of one server.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    in_flight: Arc<Semaphore>,
    connections: Arc<Semaphore>,
}

impl Limits {
    pub(crate) fn new() -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            connections: Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS)),
        }
    }
}

pub(crate) async fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, DnsError> {
    UdpSocket::bind(addr)
        .await
        .map_err(|source| DnsError::Bind {
            transport: "UDP",
            addr,
            source,
        })
}

pub(crate) async fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, DnsError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| DnsError::Bind {
            transport: "TCP",
            addr,
            source,
        })
}

/// UDP and TCP on one port picked by the system (`addr` has port 0).
pub(crate) async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let mut last = None;
    for _ in 0..PAIR_ATTEMPTS {
        let udp = bind_udp(addr).await?;
        let port = udp
            .local_addr()
            .map_err(|source| DnsError::Bind {
                transport: "UDP",
                addr,
                source,
            })?
            .port();
        match bind_tcp(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or(DnsError::Config(format!(
        "no port free for both UDP and TCP on {addr}"
    ))))
}

/// Whether the stop signal has been given (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // `wait_for` returns at once when the value already holds, and errs when the
    // sender is gone: both mean stop.
    let _ = stop.wait_for(|s| *s).await;
}

async fn drain(tasks: &mut JoinSet<()>) {
    let _ = timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
}

pub(crate) async fn serve_udp(
    socket: UdpSocket,
    handler: Arc<DnsHandler>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let mut listener = UdpListener {
        local: socket.local_addr().ok(),
        socket: Arc::new(socket),
        handler,
        limits,
        tasks: JoinSet::new(),
    };
    #[cfg(target_os = "linux")]
    let plain = serve_udp_batched(&mut listener, &mut stop).await == Served::Unsupported;
    #[cfg(not(target_os = "linux"))]
    let plain = true;
    if plain {
        tracing::debug!(local = ?listener.local, "one datagram per system call");
        serve_udp_plain(&mut listener, &mut stop).await;
    }
    drain(&mut listener.tasks).await;
    tracing::debug!(local = ?listener.local, "DNS UDP listener stopped");
}

/// How the batched UDP loop ended.
#[cfg(target_os = "linux")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    /// Told to stop.
    Stopped,
    /// The system has no batched calls: use the plain loop.
    Unsupported,
}

/// One UDP socket's loop state: what answering a datagram needs.
struct UdpListener {
    local: Option<SocketAddr>,
    socket: Arc<UdpSocket>,
    handler: Arc<DnsHandler>,
    limits: Limits,
    /// Forwarded questions waiting on upstreams.
    tasks: JoinSet<()>,
}

impl UdpListener {
    /// Answers the datagram `packet` from `src`: appends the answer to `out` and says
    /// true, or says false when there is nothing to send now — no answer at all, or a
    /// forwarded question, whose task sends its answer itself when the upstream replies.
    fn take(&mut self, packet: &[u8], src: SocketAddr, out: &mut Vec<u8>) -> bool {
        if src.port() == 0 {
            self.handler.count_dropped();
            return false;
        }
        match self.handler.answer_now(packet, src, Transport::Udp, out) {
            Immediate::Answered => true,
            Immediate::Silent => false,
            Immediate::Forward(pending) => {
                let Ok(permit) = Arc::clone(&self.limits.in_flight).try_acquire_owned() else {
                    self.handler.count_shed();
                    return false;
                };
                let handler = Arc::clone(&self.handler);
                let socket = Arc::clone(&self.socket);
                self.tasks.spawn(async move {
                    let _permit = permit;
                    if let Some(reply) = handler.finish(*pending).await
                        && let Err(error) = socket.send_to(&reply, src).await
                    {
                        tracing::debug!(%src, %error, "DNS UDP send failed");
                    }
                });
                false
            }
        }
    }

    /// Forgets the forwarding tasks that are done.
    fn reap(&mut self) {
        while self.tasks.try_join_next().is_some() {}
    }
}

/// Receives up to a batch of datagrams per system call, answers those it can at once,
/// and sends their answers with one system call.
#[cfg(target_os = "linux")]
async fn serve_udp_batched(listener: &mut UdpListener, stop: &mut watch::Receiver<bool>) -> Served {
    use std::os::fd::AsRawFd;

    use tokio::io::Interest;

    use super::batch::{self, BATCH, RecvBatch, SendBatch};

    let socket = Arc::clone(&listener.socket);
    let fd = socket.as_raw_fd();
    // 32 slots of 64 KiB: 2 MiB of address space, of which only the pages datagrams
    // reach are ever backed by memory.
    let mut received = RecvBatch::new(BATCH, MAX_DATAGRAM);
    let mut out = SendBatch::default();
    loop {
        let ready = tokio::select! {
            ready = socket.readable() => ready,
            () = stopped(stop) => return Served::Stopped,
        };
        if let Err(error) = ready {
            tracing::debug!(local = ?listener.local, %error, "DNS UDP socket failed");
            tokio::time::sleep(ERROR_PAUSE).await;
            continue;
        }
        let count = match socket.try_io(Interest::READABLE, || received.recv(fd)) {
            Ok(count) => count,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(error) if batch::unsupported(&error) => return Served::Unsupported,
            Err(error) => {
                tracing::debug!(local = ?listener.local, %error, "DNS UDP receive failed");
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        listener.reap();
        for index in 0..count {
            let Some(datagram) = received.get(index) else {
                continue;
            };
            // A datagram longer than its slot (65,535 bytes: more than a UDP payload can
            // be, so never in practice) or from an unknown family cannot be answered
            // rightly.
            let (Some(src), false) = (datagram.src, datagram.truncated) else {
                listener.handler.count_dropped();
                continue;
            };
            let start = out.buffer().len();
            if listener.take(datagram.data, src, out.buffer()) {
                out.commit(start, src);
            } else {
                out.discard(start);
            }
        }
        loop {
            match socket.try_io(Interest::WRITABLE, || out.send(fd)) {
                Ok(()) => break,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Err(error) = socket.writable().await {
                        tracing::debug!(local = ?listener.local, %error, "DNS UDP socket failed");
                        break;
                    }
                }
                Err(error) if batch::unsupported(&error) => {
                    for (bytes, dest) in out.pending() {
                        if let Err(error) = socket.send_to(bytes, dest).await {
                            tracing::debug!(%dest, %error, "DNS UDP send failed");
                        }
                    }
                    return Served::Unsupported;
                }
                Err(error) => {
                    // `send` skips what the system refuses; anything else is unexpected.
                    tracing::debug!(local = ?listener.local, %error, "DNS UDP send failed");
                    break;
                }
            }
        }
        out.clear();
    }
}

/// One datagram per system call: where the batched calls do not exist.
async fn serve_udp_plain(listener: &mut UdpListener, stop: &mut watch::Receiver<bool>) {
    let socket = Arc::clone(&listener.socket);
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    let mut out = Vec::new();
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut buffer) => received,
            () = stopped(stop) => break,
        };
        listener.reap();
        let (len, src) = match received {
            Ok(received) => received,
            Err(error) => {
                tracing::debug!(local = ?listener.local, %error, "DNS UDP receive failed");
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        let Some(packet) = buffer.get(..len) else {
            continue;
        };
        out.clear();
        if listener.take(packet, src, &mut out)
            && let Err(error) = socket.send_to(&out, src).await
        {
            tracing::debug!(%src, %error, "DNS UDP send failed");
        }
    }
}

pub(crate) async fn serve_tcp(
    listener: TcpListener,
    handler: Arc<DnsHandler>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let local = listener.local_addr().ok();
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut stop) => break,
        };
        while connections.try_join_next().is_some() {}
        let (stream, src) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(local = ?local, %error, "DNS TCP accept failed");
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&limits.connections).try_acquire_owned() else {
            tracing::debug!(%src, "DNS TCP connection refused: too many open");
            handler.count_dropped();
            continue;
        };
        connections.spawn(serve_connection(
            stream,
            src,
            Arc::clone(&handler),
            limits.clone(),
            permit,
            stop.clone(),
        ));
    }
    drain(&mut connections).await;
    tracing::debug!(local = ?local, "DNS TCP listener stopped");
}

/// Reads length-prefixed messages, answers each in its own task, and writes the answers
/// back as they are ready (clients match them by id).
async fn serve_connection(
    stream: TcpStream,
    src: SocketAddr,
    handler: Arc<DnsHandler>,
    limits: Limits,
    _connection: OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let (replies, mut outgoing) = mpsc::channel::<Vec<u8>>(TCP_PIPELINE);
    let write = async move {
        while let Some(reply) = outgoing.recv().await {
            let Ok(length) = u16::try_from(reply.len()) else {
                continue;
            };
            let mut framed = Vec::with_capacity(reply.len() + 2);
            framed.extend_from_slice(&length.to_be_bytes());
            framed.extend_from_slice(&reply);
            match timeout(TCP_IDLE, writer.write_all(&framed)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::debug!(%src, %error, "DNS TCP write failed");
                    break;
                }
                Err(_) => {
                    tracing::debug!(%src, "DNS TCP client not reading; closing");
                    break;
                }
            }
        }
        let _ = writer.shutdown().await;
    };
    let read = async move {
        let pipeline = Arc::new(Semaphore::new(TCP_PIPELINE));
        let mut queries = JoinSet::new();
        let mut stopping = false;
        loop {
            if replies.is_closed() {
                break;
            }
            let mut length = [0u8; 2];
            let read = tokio::select! {
                read = timeout(TCP_IDLE, reader.read_exact(&mut length)) => read,
                () = stopped(&mut stop) => {
                    stopping = true;
                    break;
                }
            };
            if !matches!(read, Ok(Ok(_))) {
                break;
            }
            let length = usize::from(u16::from_be_bytes(length));
            let mut packet = vec![0u8; length];
            if !matches!(
                timeout(TCP_IDLE, reader.read_exact(&mut packet)).await,
                Ok(Ok(_))
            ) {
                break;
            }
            while queries.try_join_next().is_some() {}
            let mut answer = Vec::new();
            let pending = match handler.answer_now(&packet, src, Transport::Tcp, &mut answer) {
                Immediate::Answered => {
                    // Waits while the writer is behind: back-pressure on this client.
                    if replies.send(answer).await.is_err() {
                        break;
                    }
                    continue;
                }
                Immediate::Silent => continue,
                Immediate::Forward(pending) => pending,
            };
            // Wait for this connection's own pipeline (back-pressure on this client
            // alone), then for a place among all messages in flight.
            let Ok(own) = Arc::clone(&pipeline).acquire_owned().await else {
                break;
            };
            let Ok(global) = Arc::clone(&limits.in_flight).try_acquire_owned() else {
                handler.count_shed();
                continue;
            };
            let handler = Arc::clone(&handler);
            let replies = replies.clone();
            queries.spawn(async move {
                let _permits = (own, global);
                if let Some(reply) = handler.finish(*pending).await {
                    let _ = replies.send(reply).await;
                }
            });
        }
        if stopping {
            drain(&mut queries).await;
        } else {
            // The client is done sending (or went quiet): its questions still in flight
            // get their answers; each is bounded by the upstream timeouts.
            while queries.join_next().await.is_some() {}
        }
        // `replies` drops here; the writer ends once the answers queued are written.
    };
    tokio::join!(read, write);
}
