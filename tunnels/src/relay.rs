//! Relays: a node that forwards sessions between two nodes that cannot reach each other,
//! without being able to read them.
//!
//! A dials relay R and asks, on a stream, for a session to B (`RelayConnect`); R offers it
//! to B on a stream of its link with B (`RelayAccept`, which B takes only from its own
//! relays); when B accepts, R answers A and then forwards packets between the two
//! streams' packet channels. A and B run a full end-to-end QUIC connection — mutually
//! authenticated, encrypted — whose packets are the payload R forwards: R sees only
//! ciphertext. The end-to-end endpoint sits on a virtual socket (`socket::RelaySocket`)
//! whose paths are these sessions.

use std::sync::Arc;

use crate::channel::PacketChannel;
use crate::datagram::Channel;
use crate::error::OpenError;
use crate::header::{Reply, Request, Status};
use crate::identity::NodeName;
use crate::link::{Link, LinkPath};
use crate::metrics::TunnelMetrics;
use crate::stream::{self, RawStream};
use crate::tunnel::{Inner, refuse};

/// Makes an end-to-end link to `peer` through `relay`.
pub(crate) async fn dial_via(
    inner: &Arc<Inner>,
    relay: &NodeName,
    peer: &NodeName,
) -> Result<Link, OpenError> {
    let request = Request::RelayConnect {
        target: peer.to_string(),
    };
    let stream = inner.open_raw(relay, &request).await?;
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
    let path = inner.relay_socket.add_path(relay.clone(), channel);
    let lost = |reason: String| OpenError::LinkLost {
        peer: peer.clone(),
        reason,
    };
    let connecting = match inner.relay_endpoint().connect(path, peer.as_str()) {
        Ok(connecting) => connecting,
        Err(error) => {
            inner.relay_socket.remove_path(path);
            return Err(lost(error.to_string()));
        }
    };
    let handshake = async {
        let connection = connecting.await.map_err(|e| e.to_string())?;
        crate::tunnel::await_hello(&connection).await?;
        Ok::<_, String>(connection)
    };
    let connection = match tokio::time::timeout(inner.config.timeouts.connect, handshake).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            inner.relay_socket.remove_path(path);
            return Err(lost(error));
        }
        Err(_) => {
            inner.relay_socket.remove_path(path);
            return Err(lost(format!(
                "no end-to-end handshake within {:?}",
                inner.config.timeouts.connect
            )));
        }
    };
    inner
        .admit(
            connection,
            LinkPath::Relayed {
                relay: relay.clone(),
            },
            Some(peer),
        )
        .map_err(lost)
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
        refuse(send, recv, Status::Refused, "this node is not a relay").await;
        return;
    }
    let Ok(target) = NodeName::new(target) else {
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
        refuse(
            send,
            recv,
            Status::BadRequest,
            "a relay session needs two other nodes",
        )
        .await;
        return;
    }
    let offer = Request::RelayAccept {
        source: source.to_string(),
    };
    let onward = match inner.open_raw(&target, &offer).await {
        Ok(opened) => opened,
        Err(error) => {
            let status = match &error {
                OpenError::Refused { status, .. } => *status,
                _ => Status::Unreachable,
            };
            tracing::info!(from = %source, to = %target, %error, "cannot relay");
            refuse(
                send,
                recv,
                status,
                &format!("relay {}: {error}", inner.node),
            )
            .await;
            return;
        }
    };
    if stream::write_reply(send, &Reply::status(Status::Ok))
        .await
        .is_err()
    {
        return;
    }
    let queue = inner.config.limits.packet_queue;
    let side_a = PacketChannel::start(Channel::Relay, stream, queue, Arc::clone(&inner.metrics));
    let side_b = PacketChannel::start(Channel::Relay, onward, queue, Arc::clone(&inner.metrics));
    let (Ok(mut side_a), Ok(mut side_b)) = (side_a, side_b) else {
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
/// endpoint. Only this node's own relays may offer sessions.
pub(crate) async fn accept_session(
    inner: &Arc<Inner>,
    relay: Link,
    mut stream: RawStream,
    source: &str,
) {
    let relay_node = relay.peer().node.clone();
    if !inner.is_relay(&relay_node) {
        tracing::warn!(relay = %relay_node, %source, "refused a relay session from a node that is not one of this node's relays");
        refuse(
            &mut stream.send,
            &mut stream.recv,
            Status::Refused,
            "not one of this node's relays",
        )
        .await;
        return;
    }
    if stream::write_reply(&mut stream.send, &Reply::status(Status::Ok))
        .await
        .is_err()
    {
        return;
    }
    let Ok(channel) = PacketChannel::start(
        Channel::Relay,
        stream,
        inner.config.limits.packet_queue,
        Arc::clone(&inner.metrics),
    ) else {
        return;
    };
    tracing::debug!(relay = %relay_node, %source, "accepted a relay session");
    inner.relay_socket.add_path(relay_node, channel);
}
