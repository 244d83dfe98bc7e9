//! Streams on a link: the header exchange, the [`TunnelStream`] handed to callers, and the
//! bridge between a TCP connection and a stream that carries half-closes and resets across.
//!
//! Back-pressure is end to end: the bridge copies through one fixed buffer per direction
//! and waits on writes, so a slow reader stalls QUIC flow control, which stalls the
//! sender's TCP socket.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use quinn::{RecvStream, SendStream, VarInt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::header::{HeaderError, MAX_MESSAGE, MAX_REQUEST, Reply, Request};
use crate::link::Link;
use crate::metrics::TunnelMetrics;

/// Error code of a stream reset because the TCP side was reset.
pub const RESET_CODE: VarInt = VarInt::from_u32(1);
/// Error code of a stream refused after its header.
pub const REFUSED_CODE: VarInt = VarInt::from_u32(2);

/// Counts a stream open until dropped, on the link and in the metrics.
#[derive(Debug)]
pub(crate) struct StreamGuard {
    link: Link,
    metrics: Arc<TunnelMetrics>,
}

impl StreamGuard {
    pub(crate) fn new(link: Link, metrics: Arc<TunnelMetrics>) -> Self {
        link.stream_opened();
        Self { link, metrics }
    }

    pub(crate) fn link(&self) -> &Link {
        &self.link
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.link.stream_closed();
        TunnelMetrics::inc(&self.metrics.streams_closed);
    }
}

/// A stream whose header exchange is done: both halves, the bytes read past the header,
/// and its accounting.
#[derive(Debug)]
pub(crate) struct RawStream {
    pub(crate) send: SendStream,
    pub(crate) recv: RecvStream,
    pub(crate) pending: Bytes,
    pub(crate) guard: StreamGuard,
}

/// A stream on a link whose header was accepted: read and write it like a socket;
/// shutting down the write side sends FIN; dropping it resets nothing that finished.
#[derive(Debug)]
pub struct TunnelStream {
    send: SendStream,
    recv: RecvStream,
    pending: Bytes,
    guard: StreamGuard,
}

impl TunnelStream {
    pub(crate) fn new(raw: RawStream) -> Self {
        Self {
            send: raw.send,
            recv: raw.recv,
            pending: raw.pending,
            guard: raw.guard,
        }
    }

    /// The link this stream rides.
    pub fn link(&self) -> &Link {
        &self.guard.link
    }

    /// The QUIC stream id (the channel id of a UDP flow or relay session).
    pub fn id(&self) -> u64 {
        self.send.id().into()
    }

    pub(crate) fn into_parts(self) -> (SendStream, RecvStream, Bytes, StreamGuard) {
        (self.send, self.recv, self.pending, self.guard)
    }

    /// Aborts the stream both ways: the peer's reads and writes fail (a TCP peer behind it
    /// is reset).
    pub fn reset(mut self) {
        let _ = self.send.reset(RESET_CODE);
        let _ = self.recv.stop(RESET_CODE);
    }

    /// Copies between `tcp` and this stream until both directions end: a FIN either way is
    /// passed on as a FIN (half-close), a reset either way as a reset.
    pub async fn bridge_tcp(self, tcp: TcpStream, buffer: usize) -> io::Result<BridgeOutcome> {
        bridge(tcp, self, buffer).await
    }
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pending.is_empty() {
            let n = self.pending.len().min(buf.remaining());
            buf.put_slice(&self.pending[..n]);
            self.pending.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.recv).poll_read(cx, buf)
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.send)
            .poll_write(cx, buf)
            .map_err(io::Error::from)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.send).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.send).poll_shutdown(cx)
    }
}

/// Why reading a header failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeaderReadError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("stream failed: {0}")]
    Stream(#[from] quinn::ReadError),
}

/// Reads a request header; returns it with any bytes read past it.
pub(crate) async fn read_request(
    recv: &mut RecvStream,
) -> Result<(Request, Bytes), HeaderReadError> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some((request, used)) = Request::decode(&buf)? {
            return Ok((request, Bytes::copy_from_slice(&buf[used..])));
        }
        if buf.len() > MAX_REQUEST {
            return Err(HeaderError::TooLarge { len: buf.len() }.into());
        }
        match recv.read(&mut chunk).await? {
            Some(n) => buf.extend_from_slice(&chunk[..n]),
            None => return Err(HeaderError::Truncated.into()),
        }
    }
}

/// Reads a reply; returns it with any bytes read past it.
pub(crate) async fn read_reply(recv: &mut RecvStream) -> Result<(Reply, Bytes), HeaderReadError> {
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; 512];
    loop {
        if let Some((reply, used)) = Reply::decode(&buf)? {
            return Ok((reply, Bytes::copy_from_slice(&buf[used..])));
        }
        if buf.len() > MAX_MESSAGE + 4 {
            return Err(HeaderError::TooLarge { len: buf.len() }.into());
        }
        match recv.read(&mut chunk).await? {
            Some(n) => buf.extend_from_slice(&chunk[..n]),
            None => return Err(HeaderError::Truncated.into()),
        }
    }
}

/// Writes a reply.
pub(crate) async fn write_reply(
    send: &mut SendStream,
    reply: &Reply,
) -> Result<(), quinn::WriteError> {
    let mut bytes = Vec::with_capacity(4 + reply.message.len());
    reply.encode(&mut bytes);
    send.write_all(&bytes).await
}

/// How a bridged connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeOutcome {
    /// Both directions finished with FIN.
    Closed,
    /// The TCP side was reset; the stream was reset.
    TcpReset,
    /// The stream was reset by the peer; the TCP side was reset.
    StreamReset,
}

/// Completes when the socket reports an error (an RST arrived); never otherwise.
async fn tcp_error(tcp: &TcpStream) {
    loop {
        match tcp.ready(Interest::ERROR).await {
            Ok(ready) if ready.is_error() => return,
            Ok(_) => tokio::task::yield_now().await,
            Err(_) => return,
        }
    }
}

async fn bridge(tcp: TcpStream, stream: TunnelStream, buffer: usize) -> io::Result<BridgeOutcome> {
    let (mut send, mut recv, pending, guard) = stream.into_parts();
    let (mut tcp_read, mut tcp_write) = tcp.into_split();
    let outcome = {
        let upstream = async {
            // TCP → stream.
            let mut buf = vec![0u8; buffer];
            loop {
                // Watching `stopped` while idle notices a peer that reset after sending
                // its FIN, which no write of ours would otherwise reveal.
                let read = tokio::select! {
                    read = tcp_read.read(&mut buf) => read,
                    _ = send.stopped() => return Some(BridgeOutcome::StreamReset),
                };
                match read {
                    Ok(0) => {
                        let _ = send.finish();
                        return None;
                    }
                    Ok(n) => {
                        if send.write_all(&buf[..n]).await.is_err() {
                            // The peer stopped reading: its side was reset.
                            return Some(BridgeOutcome::StreamReset);
                        }
                    }
                    Err(_) => return Some(BridgeOutcome::TcpReset),
                }
            }
        };
        let downstream = async {
            // Stream → TCP.
            if !pending.is_empty() && tcp_write.write_all(&pending).await.is_err() {
                return Some(BridgeOutcome::TcpReset);
            }
            let mut buf = vec![0u8; buffer];
            loop {
                // An RST that follows the TCP side's FIN is only an error condition on the
                // socket: the read half is done, so watch for it here.
                let read = tokio::select! {
                    read = recv.read(&mut buf) => read,
                    _ = tcp_error(tcp_write.as_ref()) => return Some(BridgeOutcome::TcpReset),
                };
                match read {
                    Ok(Some(n)) => {
                        if tcp_write.write_all(&buf[..n]).await.is_err() {
                            return Some(BridgeOutcome::TcpReset);
                        }
                    }
                    Ok(None) => {
                        let _ = tcp_write.shutdown().await;
                        return None;
                    }
                    Err(_) => return Some(BridgeOutcome::StreamReset),
                }
            }
        };
        tokio::pin!(upstream, downstream);
        let mut up_done = false;
        let mut down_done = false;
        loop {
            tokio::select! {
                end = &mut upstream, if !up_done => match end {
                    None => up_done = true,
                    Some(reset) => break reset,
                },
                end = &mut downstream, if !down_done => match end {
                    None => down_done = true,
                    Some(reset) => break reset,
                },
            }
            if up_done && down_done {
                break BridgeOutcome::Closed;
            }
        }
    };
    match outcome {
        BridgeOutcome::TcpReset => {
            let _ = send.reset(RESET_CODE);
            let _ = recv.stop(RESET_CODE);
        }
        BridgeOutcome::StreamReset => {
            let _ = send.reset(RESET_CODE);
            let _ = recv.stop(RESET_CODE);
            // Closing with zero linger makes the kernel send RST instead of FIN.
            let tcp = tcp_read
                .reunite(tcp_write)
                .map_err(|e| io::Error::other(e.to_string()))?;
            tcp.set_zero_linger()?;
            drop(tcp);
        }
        BridgeOutcome::Closed => {}
    }
    drop(guard);
    Ok(outcome)
}
