//! UDP flows over a link: each flow is a control stream plus datagrams tagged with the
//! stream's id (see `datagram`). The opener sends [`crate::header::Request::UdpFlow`] and
//! waits for the reply before its first datagram, so the receiver always knows the flow.
//! A flow ends when either side drops it, and [`serve_udp_flow`] drops it after an idle
//! period.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;

use crate::channel::{PacketChannel, PacketDrop};
use crate::link::Link;

/// One UDP flow over a link.
#[derive(Debug)]
pub struct UdpFlow {
    channel: PacketChannel,
}

impl UdpFlow {
    pub(crate) fn new(channel: PacketChannel) -> Self {
        Self { channel }
    }

    /// Sends one datagram's payload: as a QUIC datagram when it fits the path, framed on
    /// the flow's stream when it does not. Never waits; a full queue drops the packet.
    pub fn send(&self, payload: &[u8]) -> Result<(), PacketDrop> {
        self.channel.sender().send(payload)
    }

    /// The next payload from the other side; `None` once the flow ended.
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.channel.recv().await
    }

    /// The largest payload that now fits one QUIC datagram.
    pub fn max_datagram_payload(&self) -> Option<usize> {
        self.channel.sender().max_datagram_payload()
    }

    /// The link the flow rides.
    pub fn link(&self) -> &Link {
        self.channel.link()
    }
}

/// Relays a flow to `destination` from a fresh local UDP socket until either side is
/// quiet for `idle` or the flow ends: the receiving end of a proxied UDP flow.
pub async fn serve_udp_flow(
    mut flow: UdpFlow,
    destination: SocketAddr,
    idle: Duration,
) -> io::Result<()> {
    let bind: SocketAddr = if destination.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(destination).await?;
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            packet = flow.recv() => match packet {
                Some(packet) => {
                    if let Err(error) = socket.send(&packet).await {
                        refused(destination, &error)?;
                    }
                }
                None => return Ok(()),
            },
            received = socket.recv(&mut buf) => match received {
                Ok(n) => {
                    let _ = flow.send(&buf[..n]);
                }
                Err(error) => refused(destination, &error)?,
            },
            () = tokio::time::sleep(idle) => return Ok(()),
        }
    }
}

/// A connected UDP socket reports the ICMP errors of earlier packets on later calls: a
/// port that was closed for a moment is no reason to end the flow. Other errors are.
fn refused(destination: SocketAddr, error: &io::Error) -> io::Result<()> {
    if error.kind() == io::ErrorKind::ConnectionRefused {
        tracing::debug!(%destination, "a UDP packet was refused by the destination");
        Ok(())
    } else {
        Err(io::Error::new(error.kind(), error.to_string()))
    }
}
