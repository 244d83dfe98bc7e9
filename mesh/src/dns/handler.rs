//! One DNS message in, at most one DNS message out: decoding, the choice between the
//! cluster zone and the upstreams, response codes, EDNS and truncation.
//!
//! Knows nothing of sockets (the server feeds it bytes) and never writes to the store:
//! it reads the current snapshot once per question.

use std::net::SocketAddr;
use std::time::Duration;

use causeway_edge_core::metamanager::MetaManager;
use hickory_proto::op::{Edns, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use hickory_server::zone_handler::{MessageRequest, MessageResponseBuilder};
use tokio::sync::Semaphore;

use super::cluster::{ClusterZone, Lookup};
use super::forward::{Forwarded, Forwarder};
use super::stats::{Counters, DnsStats, bump};
use super::{DnsConfig, DnsError};

/// The largest UDP answer sent, whatever a client's EDNS offers, and the payload size
/// the server advertises in its own EDNS.
pub const UDP_PAYLOAD_LIMIT: u16 = 4096;
/// The longest upstream timeout accepted.
const MAX_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(300);

/// How a message reached the server; it decides the size limit of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A datagram: answers are cut to 512 bytes or the client's EDNS size, with TC set.
    Udp,
    /// A stream: answers up to 64 KiB.
    Tcp,
}

/// Answers DNS messages: cluster names from the node's snapshot, the rest through the
/// upstreams.
#[derive(Debug)]
pub struct DnsHandler {
    zone: ClusterZone,
    forwarder: Forwarder,
    store: MetaManager,
    counters: Counters,
}

/// The sections of one answer.
struct Sections<'r> {
    answers: &'r [Record],
    authorities: &'r [Record],
    additionals: &'r [Record],
}

const EMPTY: Sections<'static> = Sections {
    answers: &[],
    authorities: &[],
    additionals: &[],
};

impl DnsHandler {
    /// A handler for `config`, forwarding to exactly `config.upstreams` (it reads no
    /// resolv.conf; [`super::DnsServer::start`] does).
    pub fn new(config: &DnsConfig, store: MetaManager) -> Result<Self, DnsError> {
        let zone =
            ClusterZone::new(&config.cluster_domain, config.cluster_ttl).map_err(|reason| {
                DnsError::ClusterDomain {
                    domain: config.cluster_domain.clone(),
                    reason,
                }
            })?;
        if config.max_upstream_in_flight == 0
            || config.max_upstream_in_flight > Semaphore::MAX_PERMITS
        {
            return Err(DnsError::Config(format!(
                "max_upstream_in_flight must be between 1 and {}, not {}",
                Semaphore::MAX_PERMITS,
                config.max_upstream_in_flight
            )));
        }
        if config.upstream_timeout.is_zero() || config.upstream_timeout > MAX_UPSTREAM_TIMEOUT {
            return Err(DnsError::Config(format!(
                "upstream_timeout must be more than 0 and at most {MAX_UPSTREAM_TIMEOUT:?}, not {:?}",
                config.upstream_timeout
            )));
        }
        Ok(Self {
            zone,
            forwarder: Forwarder::new(
                config.upstreams.clone(),
                config.upstream_timeout,
                config.max_upstream_in_flight,
                config.cache_size,
            ),
            store,
            counters: Counters::default(),
        })
    }

    /// What has been answered so far.
    pub fn stats(&self) -> DnsStats {
        self.counters.snapshot()
    }

    /// The upstreams forwarded to, in the order they are tried.
    pub fn upstreams(&self) -> &[SocketAddr] {
        self.forwarder.upstreams()
    }

    /// Counts a message dropped before it reached [`DnsHandler::respond`].
    pub(crate) fn count_dropped(&self) {
        bump(&self.counters.queries);
        bump(&self.counters.dropped);
    }

    /// The answer to `packet`, received from `src` over `transport`; `None` when no
    /// answer can or should be sent (fewer than two bytes, or a response rather than a
    /// query). Never panics, whatever the bytes.
    pub async fn respond(
        &self,
        packet: &[u8],
        src: SocketAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        bump(&self.counters.queries);
        let (Some(&id_high), Some(&id_low)) = (packet.first(), packet.get(1)) else {
            bump(&self.counters.dropped);
            return None;
        };
        let flags = packet.get(2).copied().unwrap_or(0);
        if flags & 0x80 != 0 {
            // A response: answering it could start a loop between two servers.
            bump(&self.counters.dropped);
            return None;
        }
        let id = u16::from_be_bytes([id_high, id_low]);
        let protocol = match transport {
            Transport::Udp => Protocol::Udp,
            Transport::Tcp => Protocol::Tcp,
        };
        let request = match Request::from_bytes(packet.to_vec(), src, protocol) {
            Ok(request) => request,
            Err(error) => {
                tracing::debug!(%src, id, len = packet.len(), %error, "undecodable DNS message");
                bump(&self.counters.formerr);
                return Some(bare_header(id, flags, ResponseCode::FormErr));
            }
        };
        let message: &MessageRequest = &request;
        if message.metadata.op_code != OpCode::Query {
            bump(&self.counters.refused);
            return self.error(message, flags, ResponseCode::NotImp, transport);
        }
        if message.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return self.error(message, flags, ResponseCode::BADVERS, transport);
        }
        let [query] = message.queries.queries() else {
            tracing::debug!(%src, id, questions = message.queries.len(), "not one question");
            bump(&self.counters.formerr);
            return self.error(message, flags, ResponseCode::FormErr, transport);
        };
        let query = query.original();
        let snapshot = self.store.snapshot();
        let lookup = self.zone.lookup(&snapshot, query);
        drop(snapshot);
        let (code, answer, authority, additional) = match lookup {
            Lookup::NotOurs => return self.forward(message, flags, query, src, transport).await,
            Lookup::Refused => {
                bump(&self.counters.refused);
                return self.error(message, flags, ResponseCode::Refused, transport);
            }
            Lookup::Answer {
                answers,
                additionals,
            } => (ResponseCode::NoError, answers, Vec::new(), additionals),
            Lookup::NoData { soa } => {
                bump(&self.counters.cluster_nodata);
                (
                    ResponseCode::NoError,
                    Vec::new(),
                    soa.into_iter().collect(),
                    Vec::new(),
                )
            }
            Lookup::NxDomain { soa } => {
                bump(&self.counters.cluster_nxdomain);
                (ResponseCode::NXDomain, Vec::new(), vec![soa], Vec::new())
            }
        };
        bump(&self.counters.cluster);
        tracing::debug!(
            %src,
            id,
            name = %query.name(),
            qtype = %query.query_type(),
            rcode = %code,
            answers = answer.len(),
            "answered from the cluster"
        );
        let mut metadata = Metadata::response_from_request(&message.metadata);
        metadata.response_code = code;
        metadata.authoritative = true;
        metadata.recursion_available = true;
        let sections = Sections {
            answers: &answer,
            authorities: &authority,
            additionals: &additional,
        };
        self.encode(message, metadata, flags, &sections, transport)
    }

    async fn forward(
        &self,
        message: &MessageRequest,
        flags: u8,
        query: &Query,
        src: SocketAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let relayed = match self.forwarder.forward(query).await {
            Forwarded::Answer(answer) => {
                bump(&self.counters.forwarded);
                answer
            }
            Forwarded::Cached(answer) => {
                bump(&self.counters.cache_hits);
                answer
            }
            Forwarded::NoUpstreams => {
                bump(&self.counters.no_upstreams);
                return self.error(message, flags, ResponseCode::ServFail, transport);
            }
            Forwarded::Busy => {
                bump(&self.counters.upstream_busy);
                tracing::debug!(%src, name = %query.name(), "upstream queries at their limit");
                return self.error(message, flags, ResponseCode::ServFail, transport);
            }
            Forwarded::Failed(error) => {
                bump(&self.counters.upstream_failures);
                tracing::debug!(%src, name = %query.name(), %error, "forwarding failed");
                return self.error(message, flags, ResponseCode::ServFail, transport);
            }
        };
        let mut metadata = Metadata::response_from_request(&message.metadata);
        metadata.response_code = relayed.metadata.response_code;
        metadata.recursion_available = true;
        let sections = Sections {
            answers: &relayed.answers,
            authorities: &relayed.authorities,
            additionals: &relayed.additionals,
        };
        self.encode(message, metadata, flags, &sections, transport)
    }

    /// An answer with `code` and no records.
    fn error(
        &self,
        message: &MessageRequest,
        flags: u8,
        code: ResponseCode,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let mut metadata = Metadata::response_from_request(&message.metadata);
        metadata.response_code = code;
        metadata.recursion_available = true;
        self.encode(message, metadata, flags, &EMPTY, transport)
    }

    /// Encodes an answer within the transport's size limit. An answer that does not fit
    /// in a datagram goes out with TC set and no records, so the client asks again over
    /// TCP rather than use a part of it; over TCP (64 KiB) what fits goes out, with TC.
    fn encode(
        &self,
        message: &MessageRequest,
        metadata: Metadata,
        flags: u8,
        sections: &Sections<'_>,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let edns = message.edns.as_ref().map(|_| {
            let mut edns = Edns::new();
            edns.set_max_payload(UDP_PAYLOAD_LIMIT);
            edns
        });
        let limit = match transport {
            Transport::Udp => message.max_payload().min(UDP_PAYLOAD_LIMIT),
            Transport::Tcp => u16::MAX,
        };
        let code = metadata.response_code;
        match emit(message, edns.as_ref(), metadata, sections, limit) {
            Ok((bytes, false)) => return Some(bytes),
            Ok((bytes, true)) if transport == Transport::Tcp => {
                // Past 64 KiB even TCP cannot carry it: send what fits, marked.
                bump(&self.counters.truncated);
                return Some(bytes);
            }
            Ok((_, true)) => {
                bump(&self.counters.truncated);
                let mut metadata = metadata;
                metadata.truncation = true;
                if let Ok((bytes, _)) = emit(message, edns.as_ref(), metadata, &EMPTY, limit) {
                    return Some(bytes);
                }
            }
            Err(error) => {
                tracing::warn!(id = metadata.id, rcode = %code, %error, "an answer did not encode");
            }
        }
        Some(bare_header(metadata.id, flags, ResponseCode::ServFail))
    }
}

/// Emits one response; the flag says whether it was truncated to fit `limit`.
fn emit(
    message: &MessageRequest,
    edns: Option<&Edns>,
    metadata: Metadata,
    sections: &Sections<'_>,
    limit: u16,
) -> Result<(Vec<u8>, bool), hickory_proto::ProtoError> {
    let mut bytes = Vec::with_capacity(512);
    let info = {
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(limit);
        MessageResponseBuilder::new(&message.queries, edns)
            .build(
                metadata,
                sections.answers.iter(),
                sections.authorities.iter(),
                std::iter::empty(),
                sections.additionals.iter(),
            )
            .destructive_emit(&mut encoder)?
    };
    Ok((bytes, info.truncation))
}

/// A twelve-byte answer with no sections: the id, the opcode and RD bit of the query
/// (`flags` is its third byte), QR set, and `code`.
fn bare_header(id: u16, flags: u8, code: ResponseCode) -> Vec<u8> {
    let [high, low] = id.to_be_bytes();
    let rcode = code.low() & 0x0f;
    vec![
        high,
        low,
        0x80 | (flags & 0x79),
        rcode,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_header_keeps_id_opcode_and_rd() {
        let bytes = bare_header(0xbeef, 0b0001_0001, ResponseCode::FormErr);
        assert_eq!(bytes.len(), 12);
        let message = hickory_proto::op::Message::from_vec(&bytes).unwrap();
        assert_eq!(message.metadata.id, 0xbeef);
        assert_eq!(message.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(message.metadata.op_code, OpCode::Status);
        assert!(message.metadata.recursion_desired);
        assert!(!message.metadata.truncation);
    }
}
