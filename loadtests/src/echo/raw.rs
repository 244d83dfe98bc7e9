//! Raw L4 echo, for measuring the mesh's TCP and UDP paths without HTTP on top: a TCP
//! listener ([`serve_tcp_echo`]) and a UDP socket ([`serve_udp_echo`]) that say who
//! answered and send back what they got, and the two parsers a client needs to read
//! that ([`parse_greeting`], [`split_udp_reply`]).
//!
//! TCP: every accepted connection is served in its own task. The app first writes one
//! greeting line ([`greeting`]), `causeway-echo pod=<pod> node=<node> site=<site>\n`, then
//! writes back every byte it reads, chunk by chunk as the reads return them, until the
//! client's EOF; then it shuts its own write half down. [`Behaviour::delay`] plus a draw
//! of [`Behaviour::delay_jitter`] is waited once per chunk read, before the chunk is
//! echoed. After [`Behaviour::fail_after`] connections, every new connection is
//! accepted and closed at once, with no greeting. [`Behaviour::error_rate`] does not
//! apply to TCP.
//!
//! UDP: every datagram is answered to its sender with the pod's name, a newline and the
//! datagram's payload ([`udp_reply`]), the payload cut so that the reply fits
//! [`MAX_UDP_REPLY`] bytes. With no delay the answer is sent at once; with one, each
//! datagram waits in its own task, so a slow answer holds up no other, and at most
//! [`MAX_UDP_IN_FLIGHT`] wait at a time — more are dropped, as a full socket buffer
//! would. [`Behaviour::error_rate`] drops that share of datagrams at random, unanswered;
//! after [`Behaviour::fail_after`] datagrams no more are answered (every datagram
//! counts, the dropped ones too).
//!
//! Identities are written as they are, except that a carriage return or newline in a
//! name becomes a space, so the greeting stays one line and the pod cannot end early.
//! Dropping the task that serves ends it, and the TCP connections it serves with it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{Behaviour, CHUNK, Identity, jitter};

/// The word every TCP greeting starts with.
pub const GREETING_PREFIX: &str = "causeway-echo";
/// The largest UDP answer: the largest UDP payload IPv4 can carry.
pub const MAX_UDP_REPLY: usize = 65_507;
/// The most delayed UDP answers waiting at once; datagrams beyond it are dropped.
pub const MAX_UDP_IN_FLIGHT: usize = 1024;

/// A name as the raw echo writes it: carriage returns and newlines become spaces.
fn one_line(name: &str) -> String {
    name.replace(['\r', '\n'], " ")
}

/// The greeting line a TCP echo connection starts with, newline included.
pub fn greeting(identity: &Identity) -> String {
    format!(
        "{GREETING_PREFIX} pod={} node={} site={}\n",
        one_line(&identity.pod),
        one_line(&identity.node),
        one_line(&identity.site),
    )
}

/// Reads a greeting line ([`greeting`]), with or without its line ending: who
/// answered, or `None` when the line is not a greeting. The pod may hold spaces; the
/// node is read up to the last ` site=`, so a node or site holding ` site=` is misread.
pub fn parse_greeting(line: &str) -> Option<Identity> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let rest = line.strip_prefix(GREETING_PREFIX)?.strip_prefix(" pod=")?;
    let (rest, site) = rest.rsplit_once(" site=")?;
    let (pod, node) = rest.rsplit_once(" node=")?;
    Some(Identity {
        pod: pod.to_string(),
        node: node.to_string(),
        site: site.to_string(),
    })
}

/// What a UDP echo answers the pod's name and newline with: the pod as written, cut at
/// a character boundary so that at least the newline fits [`MAX_UDP_REPLY`].
fn udp_header(pod: &str) -> Vec<u8> {
    let pod = one_line(pod);
    let mut end = pod.len().min(MAX_UDP_REPLY - 1);
    while !pod.is_char_boundary(end) {
        end -= 1;
    }
    let mut header = Vec::with_capacity(end + 1);
    header.extend_from_slice(&pod.as_bytes()[..end]);
    header.push(b'\n');
    header
}

/// The answer a UDP echo of pod `pod` sends for a datagram carrying `payload`: the pod,
/// a newline, and as much of the payload as fits [`MAX_UDP_REPLY`] bytes.
pub fn udp_reply(pod: &str, payload: &[u8]) -> Vec<u8> {
    let mut reply = udp_header(pod);
    let room = MAX_UDP_REPLY - reply.len();
    reply.extend_from_slice(&payload[..payload.len().min(room)]);
    reply
}

/// Splits a UDP echo answer ([`udp_reply`]) into the pod that answered and the payload
/// it echoed; `None` when there is no newline or the pod is not UTF-8.
pub fn split_udp_reply(datagram: &[u8]) -> Option<(&str, &[u8])> {
    let newline = datagram.iter().position(|&b| b == b'\n')?;
    let pod = std::str::from_utf8(&datagram[..newline]).ok()?;
    Some((pod, &datagram[newline + 1..]))
}

/// The delay one chunk or datagram waits: the behaviour's delay and a jitter draw.
fn delay_of(behaviour: &Behaviour) -> Duration {
    behaviour.delay + jitter(behaviour.delay_jitter)
}

/// Serves the TCP echo on `listener` until the task is dropped, which also ends every
/// connection it serves. `error_rate` does not apply; see the [module docs](self).
pub async fn serve_tcp_echo(listener: TcpListener, identity: Identity, behaviour: Behaviour) {
    let greeting: Arc<[u8]> = Arc::from(greeting(&identity).into_bytes());
    let behaviour = Arc::new(behaviour);
    let mut accepted = 0u64;
    let mut connections = JoinSet::new();
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "tcp echo: accept failed; pausing 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        accepted += 1;
        if behaviour.fail_after.is_some_and(|n| accepted > n) {
            tracing::debug!(%peer, "tcp echo: past fail_after, closing the connection");
            drop(tcp);
            continue;
        }
        let _ = tcp.set_nodelay(true);
        let greeting = Arc::clone(&greeting);
        let behaviour = Arc::clone(&behaviour);
        connections.spawn(async move {
            if let Err(error) = echo_connection(tcp, &greeting, &behaviour).await {
                tracing::debug!(%peer, %error, "tcp echo: connection ended with an error");
            }
        });
    }
}

/// One TCP echo connection: the greeting, then every chunk back, then the write half
/// shut down after the client's EOF.
async fn echo_connection(
    mut tcp: TcpStream,
    greeting: &[u8],
    behaviour: &Behaviour,
) -> io::Result<()> {
    tcp.write_all(greeting).await?;
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let read = tcp.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        let delay = delay_of(behaviour);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        tcp.write_all(&buffer[..read]).await?;
    }
    tcp.shutdown().await
}

/// Serves the UDP echo on `socket` until the task is dropped. Only the pod of
/// `identity` is sent; see the [module docs](self) for the rest.
///
/// Datagrams are read straight behind the pod's name in one buffer of
/// [`MAX_UDP_REPLY`] bytes, so a payload too long for the answer is cut by the read
/// itself (as Unix does; Windows refuses such a read instead, and the datagram is lost).
pub async fn serve_udp_echo(socket: UdpSocket, identity: Identity, behaviour: Behaviour) {
    let socket = Arc::new(socket);
    let header = udp_header(&identity.pod);
    let mut buffer = vec![0u8; MAX_UDP_REPLY];
    buffer[..header.len()].copy_from_slice(&header);
    let permits = Arc::new(Semaphore::new(MAX_UDP_IN_FLIGHT));
    let mut delayed = JoinSet::new();
    let mut seen = 0u64;
    loop {
        let (read, peer) = match socket.recv_from(&mut buffer[header.len()..]).await {
            Ok(received) => received,
            // An ICMP error from an earlier answer's peer: nothing to do with this one.
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
                ) =>
            {
                tracing::debug!(%error, "udp echo: receive failed");
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "udp echo: receive failed; pausing 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while delayed.try_join_next().is_some() {}
        seen += 1;
        if behaviour.fail_after.is_some_and(|n| seen > n) {
            continue;
        }
        if behaviour.error_rate > 0.0 && rand::random::<f64>() < behaviour.error_rate {
            continue;
        }
        let reply = &buffer[..header.len() + read];
        let delay = delay_of(&behaviour);
        if delay.is_zero() {
            send(&socket, reply, peer).await;
            continue;
        }
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::debug!(%peer, "udp echo: too many delayed answers waiting, dropped one");
            continue;
        };
        let reply = reply.to_vec();
        let socket = Arc::clone(&socket);
        delayed.spawn(async move {
            tokio::time::sleep(delay).await;
            send(&socket, &reply, peer).await;
            drop(permit);
        });
    }
}

async fn send(socket: &UdpSocket, reply: &[u8], peer: SocketAddr) {
    if let Err(error) = socket.send_to(reply, peer).await {
        tracing::debug!(%peer, %error, "udp echo: answer not sent");
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn identity(pod: &str, node: &str, site: &str) -> Identity {
        Identity {
            pod: pod.to_string(),
            node: node.to_string(),
            site: site.to_string(),
        }
    }

    #[test]
    fn a_greeting_reads_back_as_who_wrote_it() {
        let who = identity("echo-edge-a1", "edge-a1", "factory-a");
        let line = greeting(&who);
        assert_eq!(
            line,
            "causeway-echo pod=echo-edge-a1 node=edge-a1 site=factory-a\n"
        );
        assert_eq!(parse_greeting(&line), Some(who.clone()));
        assert_eq!(parse_greeting(line.trim_end()), Some(who.clone()));
        assert_eq!(
            parse_greeting("causeway-echo pod=echo-edge-a1 node=edge-a1 site=factory-a\r\n"),
            Some(who)
        );
        // The app's defaults: empty node and site.
        let empty = identity("echo", "", "");
        assert_eq!(parse_greeting(&greeting(&empty)), Some(empty));
        // A pod with spaces, and a newline that would have split the line.
        let odd = identity("my pod", "n\n1", "s1");
        let line = greeting(&odd);
        assert_eq!(line.lines().count(), 1);
        assert_eq!(parse_greeting(&line), Some(identity("my pod", "n 1", "s1")));
    }

    #[test]
    fn other_lines_are_not_greetings() {
        for line in [
            "",
            "\n",
            "causeway-echo",
            "causeway-echo pod=a",
            "causeway-echo pod=a node=b",
            "causeway-echo node=b pod=a site=c",
            "hello pod=a node=b site=c",
            "causeway-echopod=a node=b site=c",
            "{\"pod\":\"a\"}",
        ] {
            assert_eq!(parse_greeting(line), None, "{line:?}");
        }
    }

    #[test]
    fn a_udp_reply_splits_into_pod_and_payload() {
        let reply = udp_reply("echo-0", b"ping\nwith newline");
        assert_eq!(reply, b"echo-0\nping\nwith newline");
        assert_eq!(
            split_udp_reply(&reply),
            Some(("echo-0", &b"ping\nwith newline"[..]))
        );
        assert_eq!(split_udp_reply(b"echo-0\n"), Some(("echo-0", &b""[..])));
        assert_eq!(split_udp_reply(b"\n"), Some(("", &b""[..])));
        assert_eq!(split_udp_reply(b"no newline"), None);
        assert_eq!(split_udp_reply(b""), None);
        assert_eq!(split_udp_reply(b"\xff\xfe\npayload"), None);
    }

    #[test]
    fn a_udp_reply_fits_the_largest_datagram() {
        let payload = vec![7u8; MAX_UDP_REPLY + 100];
        let reply = udp_reply("echo-0", &payload);
        assert_eq!(reply.len(), MAX_UDP_REPLY);
        let (pod, echoed) = split_udp_reply(&reply).unwrap();
        assert_eq!(pod, "echo-0");
        assert_eq!(echoed, &payload[..MAX_UDP_REPLY - "echo-0\n".len()]);
        // A pod name too long for any datagram is cut at a character boundary.
        let pod = "é".repeat(MAX_UDP_REPLY);
        let reply = udp_reply(&pod, b"payload");
        assert_eq!(reply.len(), MAX_UDP_REPLY);
        let (cut, echoed) = split_udp_reply(&reply).unwrap();
        assert!(pod.starts_with(cut) && cut.len() >= MAX_UDP_REPLY - 2);
        assert!(echoed.is_empty());
        // A newline in the pod would end it early.
        assert_eq!(
            split_udp_reply(&udp_reply("a\nb", b"x")),
            Some(("a b", &b"x"[..]))
        );
    }

    proptest! {
        #[test]
        fn splitting_never_panics(datagram in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Some((pod, payload)) = split_udp_reply(&datagram) {
                prop_assert!(!pod.contains('\n'));
                prop_assert_eq!(pod.len() + 1 + payload.len(), datagram.len());
            }
        }

        #[test]
        fn what_the_server_writes_splits_back(
            pod in "[^\r\n]{0,40}",
            payload in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            let reply = udp_reply(&pod, &payload);
            prop_assert_eq!(split_udp_reply(&reply), Some((pod.as_str(), payload.as_slice())));
        }

        #[test]
        fn greetings_read_back(
            pod in "[a-z0-9][a-z0-9. -]{0,30}",
            node in "[a-z0-9.-]{0,30}",
            site in "[a-z0-9. -]{0,30}",
        ) {
            let who = identity(&pod, &node, &site);
            prop_assert_eq!(parse_greeting(&greeting(&who)), Some(who));
        }
    }
}
