//! The check before measuring: a server must answer the benchmark's names with exactly
//! the addresses expected, or the benchmark stops with what was wrong.
//!
//! Queries go over UDP to the server's 127.0.0.1 address only.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

use super::servers::Dnsmasq;
use super::{ANSWER_WAIT, DnsBenchError, LOCALHOST, READY_WAIT};

/// Asks `server` for each of `checks` (waiting for the first while it starts) and
/// requires exactly the expected A record; the names checked.
pub(super) async fn verify(
    server: &'static str,
    addr: SocketAddr,
    checks: &[(String, Ipv4Addr)],
    mut dnsmasq: Option<&mut Dnsmasq>,
) -> Result<Vec<String>, DnsBenchError> {
    let wrong = |name: &str, problem: String| DnsBenchError::WrongAnswer {
        server,
        name: name.to_string(),
        problem,
    };
    let deadline = Instant::now() + READY_WAIT;
    let mut verified = Vec::new();
    for (index, (name, expected)) in checks.iter().enumerate() {
        let answer = loop {
            if let Some(dnsmasq) = dnsmasq.as_deref_mut() {
                dnsmasq.check_alive()?;
            }
            match ask(addr, name).await {
                Ok(Some(answer)) => break answer,
                Ok(None) if index == 0 && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(None) => {
                    return Err(wrong(name, format!("no answer from {addr}")));
                }
                Err(problem) => return Err(wrong(name, problem)),
            }
        };
        if answer.metadata.response_code != ResponseCode::NoError {
            return Err(wrong(
                name,
                format!("response code {}", answer.metadata.response_code),
            ));
        }
        let addresses: Vec<Ipv4Addr> = answer
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect();
        if addresses != [*expected] {
            return Err(wrong(
                name,
                format!("A records {addresses:?}, expected [{expected}]"),
            ));
        }
        verified.push(name.clone());
    }
    Ok(verified)
}

/// One A query over UDP; `None` when no answer comes in time.
async fn ask(addr: SocketAddr, name: &str) -> Result<Option<Message>, String> {
    static NEXT_ID: AtomicU16 = AtomicU16::new(0x5eed);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    let qname = Name::from_ascii(name).map_err(|e| format!("not a name: {e}"))?;
    message.add_query(Query::query(qname, RecordType::A));
    let bytes = message
        .to_vec()
        .map_err(|e| format!("cannot encode the query: {e}"))?;
    let socket = UdpSocket::bind((LOCALHOST, 0))
        .await
        .map_err(|e| format!("cannot bind a UDP socket: {e}"))?;
    socket
        .send_to(&bytes, addr)
        .await
        .map_err(|e| format!("cannot send to {addr}: {e}"))?;
    let mut buffer = vec![0u8; 65_535];
    let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
    loop {
        let received = match tokio::time::timeout_at(deadline, socket.recv_from(&mut buffer)).await
        {
            Err(_) => return Ok(None),
            // ICMP port unreachable (not listening yet) shows up as an error.
            Ok(Err(_)) => return Ok(None),
            Ok(Ok(received)) => received,
        };
        let (len, from) = received;
        if from != addr {
            continue;
        }
        let Some(packet) = buffer.get(..len) else {
            continue;
        };
        let answer = Message::from_vec(packet).map_err(|e| format!("undecodable answer: {e}"))?;
        if answer.metadata.id == id && answer.metadata.message_type == MessageType::Response {
            return Ok(Some(answer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::servers::MeshServer;
    use super::super::{TempDir, check_names, cluster_ip, fill_store, service_name};
    use super::*;
    use causeway_edge_core::metamanager::MetaManager;

    /// The answer check against the real mesh server: right answers pass, a wrong
    /// address and an unknown name are refused with what was wrong.
    #[tokio::test]
    async fn the_answer_check_catches_wrong_answers() {
        let dir = TempDir::create().unwrap();
        let store = MetaManager::open(&dir.path().join("node.db")).unwrap();
        fill_store(&store, 3).await.unwrap();
        let mesh = MeshServer::start(1, store).await.unwrap();
        let names: Vec<_> = (0..3).map(|i| (service_name(i), cluster_ip(i))).collect();
        let checks = check_names(&names);
        assert_eq!(checks.len(), 3);
        let verified = verify("mesh", mesh.addr, &checks, None).await.unwrap();
        assert_eq!(verified.len(), 3);

        let wrong_ip = [(service_name(1), cluster_ip(2))];
        let error = verify("mesh", mesh.addr, &wrong_ip, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("A records [10.96.0.2], expected [10.96.0.3]"),
            "{error}"
        );
        let unknown = [(service_name(7), cluster_ip(7))];
        let error = verify("mesh", mesh.addr, &unknown, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("NXDOMAIN") || error.contains("Non-Existent"),
            "{error}"
        );
        mesh.stop().await;
    }
}
