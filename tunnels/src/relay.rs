//! Relays: a node that forwards sessions between two nodes that cannot reach each other,
//! without being able to read them.
//!
//! A dials relay R and asks, on a stream, for a session to B (`RelayConnect`); R offers it
//! to B on a stream of its link with B (`RelayAccept`, which B takes only from its own
//! relays); when B accepts, R answers A and then forwards packets between the two
//! streams' packet channels. A and B run a full end-to-end QUIC connection — mutually
//! authenticated, encrypted, and checked against the names R gave — whose packets are
//! the payload R forwards: R sees only ciphertext. The end-to-end endpoint sits on a
//! virtual socket (`socket::RelaySocket`) whose paths are these sessions.
//!
//! A relay only carries sessions to nodes it knows (it has a link to them, or its
//! directory has their address), waits a bounded time for the far side, and does not
//! count its onward dials as use of the target.

use std::sync::Arc;

use crate::channel::PacketChannel;
use crate::datagram::Channel;
use crate::error::OpenError;
use crate::header::{Reply, Request, Status};
use crate::identity::NodeName;
use crate::incoming::{await_hello, refuse};
use crate::link::{Link, LinkPath};
use crate::metrics::TunnelMetrics;
use crate::peers::Use;
use crate::stream::{self, RawStream};
use crate::tunnel::Inner;

/// Makes an end-to-end link to `peer` through `relay`.
pub(crate) async fn dial_via(
    inner: &Arc<Inner>,
    relay: &NodeName,
    peer: &NodeName,
) -> Result<Link, OpenError> {
    let request = Request::RelayConnect {
        target: peer.to_string(),
    };
    let stream = inner.open_raw(relay, &request, Use::Quiet).await?;
    let channel = PacketChannel::start(
        Channel::Relay,
        stream,
        inner.config.limits.packet_queue,
        Arc::clone(&inner.metrics),
    )
    .map_err(|e| OpenError::LinkLost {
        peer: relay.clone(),
        reason: e.to_string(),
    })?;
    let path = inner
        .relay_socket
        .add_path(relay.clone(), peer.clone(), channel);
    let result = end_to_end(inner, relay, peer, path).await;
    if result.is_err() {
        inner.relay_socket.remove_path(path);
    }
    result
}

async fn end_to_end(
    inner: &Arc<Inner>,
    relay: &NodeName,
    peer: &NodeName,
    path: std::net::SocketAddr,
) -> Result<Link, OpenError> {
    let lost = |reason: String| OpenError::LinkLost {
        peer: peer.clone(),
        reason,
    };
    let connecting = inner
        .relay_endpoint()
        .connect(path, peer.as_str())
        .map_err(|e| lost(e.to_string()))?;
    let handshake = async {
        let connection = connecting.await.map_err(|e| e.to_string())?;
        await_hello(&connection).await?;
        Ok::<_, String>(connection)
    };
    let connection = tokio::time::timeout(inner.config.timeouts.connect, handshake)
        .await
        .map_err(|_| {
            lost(format!(
                "no end-to-end handshake within {:?}",
                inner.config.timeouts.connect
            ))
        })?
        .map_err(lost)?;
    inner
        .admit(
            connection,
            LinkPath::Relayed {
                relay: relay.clone(),
            },
            Some(peer),
            true,
        )
        .map_err(lost)
}

fn refused(inner: &Inner, from: &NodeName, target: &str, why: &str) {
    TunnelMetrics::inc(&inner.metrics.relay_refusals);
    if let Some(held) = inner.logs.relay.pass() {
        tracing::warn!(%from, %target, why, held, "refused to relay a session");
    }
}

/// As a relay: carries a session from the link's peer to `target`.
pub(crate) async fn serve_connect(
    inner: &Arc<Inner>,
    from: Link,
    mut stream: RawStream,
    target: &str,
) {
    let source = from.peer().node.clone();
    let (send, recv) = (&mut stream.send, &mut stream.recv);
    if !inner.config.serve_as_relay {
        refused(inner, &source, target, "not a relay");
        refuse(send, recv, Status::Refused, "this node is not a relay").await;
        return;
    }
    let Ok(target) = NodeName::new(target) else {
        refused(inner, &source, target, "not a node name");
        refuse(
            send,
            recv,
            Status::BadRequest,
            "the relay target is not a node name",
        )
        .await;
        return;
    };
    if target == source || target == inner.node {
        refused(inner, &source, target.as_str(), "needs two other nodes");
        refuse(
            send,
            recv,
            Status::BadRequest,
            "a relay session needs two other nodes",
        )
        .await;
        return;
    }
    let linked = inner
        .peer_if_known(&target)
        .is_some_and(|p| p.best().is_some());
    if !linked && inner.addresses(&target).is_empty() {
        refused(inner, &source, target.as_str(), "unknown target");
        refuse(
            send,
            recv,
            Status::Unreachable,
            &format!("relay {} does not know node {target}", inner.node),
        )
        .await;
        return;
    }
    let offer = Request::RelayAccept {
        source: source.to_string(),
    };
    let deadline = inner.config.timeouts.connect + inner.config.timeouts.header;
    let onward =
        match tokio::time::timeout(deadline, inner.open_raw(&target, &offer, Use::Quiet)).await {
            Ok(Ok(opened)) => opened,
            Ok(Err(error)) => {
                let status = match &error {
                    OpenError::Refused { status, .. } => *status,
                    _ => Status::Unreachable,
                };
                refused(
                    inner,
                    &source,
                    target.as_str(),
                    "the target did not take the session",
                );
                refuse(
                    send,
                    recv,
                    status,
                    &format!("relay {}: {error}", inner.node),
                )
                .await;
                return;
            }
            Err(_) => {
                refused(
                    inner,
                    &source,
                    target.as_str(),
                    "the target did not answer in time",
                );
                refuse(
                    send,
                    recv,
                    Status::Unreachable,
                    &format!(
                        "relay {}: node {target} did not answer within {deadline:?}",
                        inner.node
                    ),
                )
                .await;
                return;
            }
        };
    if let Err(error) = stream::write_reply(send, &Reply::status(Status::Ok)).await {
        tracing::debug!(from = %source, to = %target, %error, "the requester went away before the session started");
        return;
    }
    let queue = inner.config.limits.packet_queue;
    let side_a = PacketChannel::start(Channel::Relay, stream, queue, Arc::clone(&inner.metrics));
    let side_b = PacketChannel::start(Channel::Relay, onward, queue, Arc::clone(&inner.metrics));
    let (Ok(mut side_a), Ok(mut side_b)) = (side_a, side_b) else {
        tracing::warn!(from = %source, to = %target, "could not start a relay session's channels");
        return;
    };
    TunnelMetrics::inc(&inner.metrics.relay_sessions);
    tracing::info!(from = %source, to = %target, "relaying a session");
    loop {
        let (packet, onward) = tokio::select! {
            packet = side_a.recv() => (packet, side_b.sender()),
            packet = side_b.recv() => (packet, side_a.sender()),
        };
        let Some(packet) = packet else {
            break;
        };
        if onward.send(&packet).is_ok() {
            TunnelMetrics::inc(&inner.metrics.relay_packets);
        }
    }
    tracing::info!(from = %source, to = %target, "relay session ended");
}

/// As a relayed node: takes a session a relay offers, as a path of the end-to-end
/// endpoint. Only this node's own relays may offer sessions, and the end-to-end
/// handshake must then prove the node the relay named.
pub(crate) async fn accept_session(
    inner: &Arc<Inner>,
    relay: Link,
    mut stream: RawStream,
    source: &str,
) {
    let relay_node = relay.peer().node.clone();
    if !inner.is_relay(&relay_node) {
        refused(
            inner,
            &relay_node,
            source,
            "offered by a node that is not one of this node's relays",
        );
        refuse(
            &mut stream.send,
            &mut stream.recv,
            Status::Refused,
            "not one of this node's relays",
        )
        .await;
        return;
    }
    let Ok(source) = NodeName::new(source) else {
        refused(
            inner,
            &relay_node,
            source,
            "the offered source is not a node name",
        );
        refuse(
            &mut stream.send,
            &mut stream.recv,
            Status::BadRequest,
            "the session's source is not a node name",
        )
        .await;
        return;
    };
    if let Err(error) = stream::write_reply(&mut stream.send, &Reply::status(Status::Ok)).await {
        tracing::debug!(relay = %relay_node, %source, %error, "the relay went away before the session started");
        return;
    }
    match PacketChannel::start(
        Channel::Relay,
        stream,
        inner.config.limits.packet_queue,
        Arc::clone(&inner.metrics),
    ) {
        Ok(channel) => {
            tracing::debug!(relay = %relay_node, %source, "accepted a relay session");
            inner.relay_socket.add_path(relay_node, source, channel);
        }
        Err(error) => {
            tracing::warn!(relay = %relay_node, %source, %error, "could not start a relay session's channel")
        }
    }
}
