//! One DNS message in, at most one DNS message out: decoding, the choice between the
//! cluster zone and the upstreams, response codes, EDNS and truncation.
//!
//! Knows nothing of sockets (the server feeds it bytes) and never writes to the store:
//! it reads the current snapshot once per question. Everything but forwarding is
//! synchronous (`DnsHandler::answer_now`), so the server answers cluster names in its
//! receive loop and spawns work only for questions that wait on an upstream; repeated
//! cluster questions are answered from `answers`, the cache of encoded answers.

use std::net::SocketAddr;
use std::time::Duration;

use causeway_edge_core::metamanager::MetaManager;
use hickory_proto::op::{Edns, Message, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use hickory_server::zone_handler::{MessageRequest, MessageResponseBuilder};
use tokio::sync::Semaphore;

use super::answers::{AnswerCache, Kind, Outcome};
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
    answers: AnswerCache,
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
            answers: AnswerCache::default(),
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

    /// Counts a message dropped before it reached [`DnsHandler::answer_now`].
    pub(crate) fn count_dropped(&self) {
        bump(&self.counters.queries);
        bump(&self.counters.dropped);
    }

    /// Counts a message [`DnsHandler::answer_now`] counted and handed back for
    /// forwarding, dropped because too many are in flight.
    pub(crate) fn count_shed(&self) {
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
        let mut out = Vec::new();
        match self.answer_now(packet, src, transport, &mut out) {
            Immediate::Answered => Some(out),
            Immediate::Silent => None,
            Immediate::Forward(pending) => self.finish(*pending).await,
        }
    }

    /// Answers `packet` at once when that needs no upstream, appending the answer to
    /// `out` ([`Immediate::Answered`]); otherwise hands back what [`DnsHandler::finish`]
    /// needs to forward it. Counts the message either way. `out` is only appended to.
    ///
    /// Cluster answers come from the answer cache when the same message (but its id)
    /// was answered before from the same snapshot version; otherwise the message is
    /// decoded, looked up and encoded, and the result kept for next time.
    pub(crate) fn answer_now(
        &self,
        packet: &[u8],
        src: SocketAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Immediate {
        bump(&self.counters.queries);
        let (Some(&id_high), Some(&id_low)) = (packet.first(), packet.get(1)) else {
            bump(&self.counters.dropped);
            return Immediate::Silent;
        };
        let flags = packet.get(2).copied().unwrap_or(0);
        if flags & 0x80 != 0 {
            // A response: answering it could start a loop between two servers.
            bump(&self.counters.dropped);
            return Immediate::Silent;
        }
        let id = u16::from_be_bytes([id_high, id_low]);
        let snapshot = self.store.snapshot();
        let version = snapshot.version;
        if let Some(outcome) = self.answers.answer(version, transport, packet, out) {
            self.count_cluster(outcome);
            bump(&self.counters.cluster_cached);
            tracing::trace!(%src, id, "answered from the answer cache");
            return Immediate::Answered;
        }
        let protocol = match transport {
            Transport::Udp => Protocol::Udp,
            Transport::Tcp => Protocol::Tcp,
        };
        let request = match Request::from_bytes(packet.to_vec(), src, protocol) {
            Ok(request) => request,
            Err(error) => {
                tracing::debug!(%src, id, len = packet.len(), %error, "undecodable DNS message");
                bump(&self.counters.formerr);
                out.extend_from_slice(&bare_header(id, flags, ResponseCode::FormErr));
                return Immediate::Answered;
            }
        };
        let message: &MessageRequest = &request;
        if message.metadata.op_code != OpCode::Query {
            bump(&self.counters.refused);
            return put(
                out,
                self.error(message, flags, ResponseCode::NotImp, transport),
            );
        }
        if message.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return put(
                out,
                self.error(message, flags, ResponseCode::BADVERS, transport),
            );
        }
        let [query] = message.queries.queries() else {
            tracing::debug!(%src, id, questions = message.queries.len(), "not one question");
            bump(&self.counters.formerr);
            return put(
                out,
                self.error(message, flags, ResponseCode::FormErr, transport),
            );
        };
        let query = query.original();
        let lookup = self.zone.lookup(&snapshot, query);
        drop(snapshot);
        let (code, kind, answer, authority, additional, shuffled) = match lookup {
            Lookup::NotOurs => {
                if let Some(cached) = self.forwarder.cached_answer(query) {
                    bump(&self.counters.cache_hits);
                    return put(out, self.relay(message, flags, &cached, transport));
                }
                let query = query.clone();
                return Immediate::Forward(Box::new(Pending {
                    request,
                    flags,
                    query,
                    src,
                    transport,
                }));
            }
            Lookup::Refused => {
                bump(&self.counters.refused);
                return put(
                    out,
                    self.error(message, flags, ResponseCode::Refused, transport),
                );
            }
            Lookup::Answer {
                answers,
                additionals,
                shuffled,
            } => (
                ResponseCode::NoError,
                Kind::Answer,
                answers,
                Vec::new(),
                additionals,
                shuffled,
            ),
            Lookup::NoData { soa } => (
                ResponseCode::NoError,
                Kind::NoData,
                Vec::new(),
                soa.into_iter().collect(),
                Vec::new(),
                false,
            ),
            Lookup::NxDomain { soa } => (
                ResponseCode::NXDomain,
                Kind::NxDomain,
                Vec::new(),
                vec![soa],
                Vec::new(),
                false,
            ),
        };
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
        let encoded = self.encode_counted(message, metadata, flags, &sections, transport);
        let outcome = Outcome {
            kind,
            truncated: encoded.truncated,
        };
        self.count_cluster(outcome);
        if encoded.whole_or_cut() && !shuffled {
            self.answers
                .insert(version, transport, packet, &encoded.bytes, outcome);
        }
        out.extend_from_slice(&encoded.bytes);
        Immediate::Answered
    }

    /// Answers a question [`DnsHandler::answer_now`] could not: through the upstreams.
    pub(crate) async fn finish(&self, pending: Pending) -> Option<Vec<u8>> {
        let Pending {
            request,
            flags,
            query,
            src,
            transport,
        } = pending;
        self.forward(&request, flags, &query, src, transport).await
    }

    /// Counts a cluster answer: `cluster`, its kind, and truncation.
    fn count_cluster(&self, outcome: Outcome) {
        bump(&self.counters.cluster);
        match outcome.kind {
            Kind::Answer => {}
            Kind::NoData => bump(&self.counters.cluster_nodata),
            Kind::NxDomain => bump(&self.counters.cluster_nxdomain),
        }
        if outcome.truncated {
            bump(&self.counters.truncated);
        }
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
        self.relay(message, flags, &relayed, transport)
    }

    /// An upstream's answer, relayed under the asker's header.
    fn relay(
        &self,
        message: &MessageRequest,
        flags: u8,
        relayed: &Message,
        transport: Transport,
    ) -> Option<Vec<u8>> {
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
    /// Counts truncation.
    fn encode(
        &self,
        message: &MessageRequest,
        metadata: Metadata,
        flags: u8,
        sections: &Sections<'_>,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let encoded = self.encode_counted(message, metadata, flags, sections, transport);
        if encoded.truncated {
            bump(&self.counters.truncated);
        }
        Some(encoded.bytes)
    }

    /// [`DnsHandler::encode`], leaving the truncation to the caller to count.
    fn encode_counted(
        &self,
        message: &MessageRequest,
        metadata: Metadata,
        flags: u8,
        sections: &Sections<'_>,
        transport: Transport,
    ) -> Encoded {
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
        let id = metadata.id;
        match emit(message, edns.as_ref(), metadata, sections, limit) {
            Ok((bytes, false)) => {
                return Encoded {
                    bytes,
                    truncated: false,
                    failed: false,
                };
            }
            Ok((bytes, true)) if transport == Transport::Tcp => {
                // Past 64 KiB even TCP cannot carry it: send what fits, marked.
                return Encoded {
                    bytes,
                    truncated: true,
                    failed: false,
                };
            }
            Ok((_, true)) => {
                let mut metadata = metadata;
                metadata.truncation = true;
                if let Ok((bytes, _)) = emit(message, edns.as_ref(), metadata, &EMPTY, limit) {
                    return Encoded {
                        bytes,
                        truncated: true,
                        failed: false,
                    };
                }
                // Counted as truncated, as it always was, even though what goes out
                // is the SERVFAIL below.
                return Encoded {
                    bytes: bare_header(id, flags, ResponseCode::ServFail),
                    truncated: true,
                    failed: true,
                };
            }
            Err(error) => {
                tracing::warn!(id, rcode = %code, %error, "an answer did not encode");
            }
        }
        Encoded {
            bytes: bare_header(id, flags, ResponseCode::ServFail),
            truncated: false,
            failed: true,
        }
    }
}

/// An encoded answer and how it went.
struct Encoded {
    bytes: Vec<u8>,
    /// Too large for the transport: sent with TC (counted as truncated).
    truncated: bool,
    /// The answer did not encode: `bytes` is a bare SERVFAIL instead.
    failed: bool,
}

impl Encoded {
    /// The answer is the one meant (whole, or cut with TC), not a SERVFAIL stand-in.
    fn whole_or_cut(&self) -> bool {
        !self.failed
    }
}

/// Appends `answer` (when there is one) to `out`.
fn put(out: &mut Vec<u8>, answer: Option<Vec<u8>>) -> Immediate {
    match answer {
        Some(bytes) => {
            out.extend_from_slice(&bytes);
            Immediate::Answered
        }
        None => Immediate::Silent,
    }
}

/// What [`DnsHandler::answer_now`] did with a message.
#[derive(Debug)]
pub(crate) enum Immediate {
    /// The answer was appended to the output.
    Answered,
    /// There is nothing to send.
    Silent,
    /// The question waits on an upstream: [`DnsHandler::finish`] answers it.
    Forward(Box<Pending>),
}

/// A question to forward, with what its answer needs.
#[derive(Debug)]
pub(crate) struct Pending {
    request: Request,
    flags: u8,
    query: Query,
    src: SocketAddr,
    transport: Transport,
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
