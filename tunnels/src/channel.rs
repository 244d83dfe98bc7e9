//! A packet channel: the two-way packet pipe of a UDP flow or a relay session over a
//! link. Packets go as QUIC datagrams when they fit the path and framed on the channel's
//! control stream when they do not; both arrive on one queue. Every queue is bounded: a
//! packet that finds its queue full is dropped and counted, as a router would.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use quinn::{RecvStream, SendDatagramError, SendStream, VarInt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::datagram::{self, Channel, MAX_PACKET};
use crate::link::Link;
use crate::metrics::TunnelMetrics;
use crate::stream::{RawStream, StreamGuard};

/// Why a packet was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketDrop {
    /// The packet is larger than any UDP payload.
    #[error("packet of {0} bytes is larger than {MAX_PACKET}")]
    TooLarge(usize),
    /// The queue of packets waiting for the stream is full.
    #[error("queue full")]
    QueueFull,
    /// The channel or its link is closed.
    #[error("channel closed")]
    Closed,
    /// A channel with this id already exists on the link.
    #[error("channel {0} already exists on this link")]
    IdTaken(u64),
}

/// Sends packets on one channel; clones share it.
#[derive(Debug, Clone)]
pub(crate) struct PacketSender {
    link: Link,
    header: Arc<[u8]>,
    framed: mpsc::Sender<(Bytes, OwnedSemaphorePermit)>,
    /// Bytes that may wait for the stream at once.
    framed_budget: Arc<Semaphore>,
    metrics: Arc<TunnelMetrics>,
}

/// Bytes of oversized packets that may wait for a channel's stream at once; more are
/// dropped, as a router drops what does not fit its buffer.
const FRAMED_BUDGET: u32 = 1024 * 1024;

impl PacketSender {
    /// Sends one packet now: as a datagram if it fits, else queued for the stream.
    pub(crate) fn send(&self, payload: &[u8]) -> Result<(), PacketDrop> {
        if payload.len() > MAX_PACKET {
            TunnelMetrics::inc(&self.metrics.datagrams_dropped);
            return Err(PacketDrop::TooLarge(payload.len()));
        }
        let size = self.header.len() + payload.len();
        let connection = &self.link.0.connection;
        if connection
            .max_datagram_size()
            .is_some_and(|max| size <= max)
        {
            let mut datagram = BytesMut::with_capacity(size);
            datagram.extend_from_slice(&self.header);
            datagram.extend_from_slice(payload);
            match connection.send_datagram(datagram.freeze()) {
                Ok(()) => {
                    TunnelMetrics::inc(&self.metrics.datagrams_sent);
                    return Ok(());
                }
                // The path shrank between the check and the send: use the stream.
                Err(SendDatagramError::TooLarge) => {}
                Err(_) => return Err(PacketDrop::Closed),
            }
        }
        let Ok(permit) =
            Arc::clone(&self.framed_budget).try_acquire_many_owned(payload.len() as u32)
        else {
            TunnelMetrics::inc(&self.metrics.datagrams_dropped);
            return Err(PacketDrop::QueueFull);
        };
        match self
            .framed
            .try_send((Bytes::copy_from_slice(payload), permit))
        {
            Ok(()) => {
                TunnelMetrics::inc(&self.metrics.datagrams_over_stream);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                TunnelMetrics::inc(&self.metrics.datagrams_dropped);
                Err(PacketDrop::QueueFull)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(PacketDrop::Closed),
        }
    }

    /// The largest packet that currently fits one datagram.
    pub(crate) fn max_datagram_payload(&self) -> Option<usize> {
        self.link
            .0
            .connection
            .max_datagram_size()
            .map(|max| max.saturating_sub(self.header.len()))
    }
}

/// Both directions of a channel. Dropping it finishes the control stream, which ends
/// the channel on the other side too.
#[derive(Debug)]
pub(crate) struct PacketChannel {
    sender: PacketSender,
    incoming: mpsc::Receiver<Bytes>,
    registration: Registration,
}

#[derive(Debug)]
struct Registration {
    link: Link,
    channel: Channel,
    id: u64,
    _guard: StreamGuard,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.link.unregister_channel(self.channel, self.id);
    }
}

impl PacketChannel {
    /// Starts a channel on a control stream whose header exchange is done.
    pub(crate) fn start(
        channel: Channel,
        stream: RawStream,
        queue: usize,
        metrics: Arc<TunnelMetrics>,
    ) -> Result<Self, PacketDrop> {
        let RawStream {
            send,
            recv,
            pending,
            guard,
        } = stream;
        let link = guard.link().clone();
        let id: u64 = send.id().into();
        let mut header = Vec::with_capacity(9);
        datagram::encode_header(channel, id, &mut header).map_err(|_| PacketDrop::Closed)?;
        let (incoming_tx, incoming) = mpsc::channel(queue.max(1));
        if !link.register_channel(channel, id, incoming_tx.clone()) {
            return Err(PacketDrop::IdTaken(id));
        }
        let (framed, framed_rx) = mpsc::channel(queue.max(1));
        tokio::spawn(write_frames(send, framed_rx));
        tokio::spawn(read_frames(
            recv,
            pending,
            incoming_tx,
            link.clone(),
            channel,
            id,
        ));
        Ok(Self {
            sender: PacketSender {
                link: link.clone(),
                header: header.into(),
                framed,
                framed_budget: Arc::new(Semaphore::new(FRAMED_BUDGET as usize)),
                metrics,
            },
            incoming,
            registration: Registration {
                link,
                channel,
                id,
                _guard: guard,
            },
        })
    }

    /// The sending side, to hand to whoever produces packets.
    pub(crate) fn sender(&self) -> &PacketSender {
        &self.sender
    }

    /// The next packet from the other side; `None` once the channel ended.
    pub(crate) async fn recv(&mut self) -> Option<Bytes> {
        self.incoming.recv().await
    }

    /// The link the channel rides.
    pub(crate) fn link(&self) -> &Link {
        &self.registration.link
    }
}

async fn write_frames(
    mut send: SendStream,
    mut framed: mpsc::Receiver<(Bytes, OwnedSemaphorePermit)>,
) {
    let mut frame = Vec::with_capacity(2 + MAX_PACKET);
    // The permit is held until the frame is written, so the budget counts what waits.
    while let Some((payload, _permit)) = framed.recv().await {
        frame.clear();
        if datagram::encode_frame(&payload, &mut frame).is_err() {
            continue;
        }
        if send.write_all(&frame).await.is_err() {
            return;
        }
    }
    let _ = send.finish();
}

async fn read_frames(
    mut recv: RecvStream,
    pending: Bytes,
    incoming: mpsc::Sender<Bytes>,
    link: Link,
    channel: Channel,
    id: u64,
) {
    let mut buf = BytesMut::from(&pending[..]);
    let mut chunk = vec![0u8; 16 * 1024];
    'read: loop {
        while let Some((payload, used)) = datagram::decode_frame(&buf) {
            let payload = Bytes::copy_from_slice(payload);
            let _ = buf.split_to(used);
            // Waiting here is stream flow control: the sender's frames back up.
            if incoming.send(payload).await.is_err() {
                break 'read;
            }
        }
        tokio::select! {
            read = recv.read(&mut chunk) => match read {
                Ok(Some(n)) => buf.extend_from_slice(&chunk[..n]),
                _ => break,
            },
            // Everyone reading this channel is gone.
            () = incoming.closed() => {
                let _ = recv.stop(VarInt::from_u32(0));
                break;
            }
        }
    }
    link.unregister_channel(channel, id);
}
