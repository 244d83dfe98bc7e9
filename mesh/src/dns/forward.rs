//! Forwarding of names outside the cluster to the upstream resolvers, with a cache, a
//! timeout per upstream and a bound on queries in flight.
//!
//! A small forwarder over hickory-proto messages: UDP first, TCP when the upstream
//! truncates. It relays what the upstream said (answers, NXDOMAIN, SOA) and caches it
//! for its TTL. It never answers cluster names and never touches the store.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};

/// Longest any upstream answer is kept, whatever its TTL.
const MAX_CACHE_TTL: u32 = 3600;
/// The UDP payload the forwarder tells upstreams it accepts.
const UPSTREAM_PAYLOAD: u16 = 1232;
/// The receive buffer for upstream datagrams; a longer one is cut and so rejected.
const UPSTREAM_BUFFER: usize = 4096;
/// Datagrams that are not the awaited answer (stale, spoofed) a query reads past before
/// it gives up on that upstream.
const MAX_STRAY_DATAGRAMS: usize = 16;

/// Why an upstream exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// No answer in time.
    #[error("no answer from {upstream} within {timeout:?}")]
    Timeout {
        upstream: SocketAddr,
        timeout: Duration,
    },
    /// A socket error.
    #[error("{upstream}: {source}")]
    Io {
        upstream: SocketAddr,
        source: std::io::Error,
    },
    /// An answer that does not decode, or does not match the question.
    #[error("{upstream}: bad answer: {reason}")]
    BadAnswer {
        upstream: SocketAddr,
        reason: String,
    },
    /// The upstream answered SERVFAIL, REFUSED or the like.
    #[error("{upstream} answered {code}")]
    Failed {
        upstream: SocketAddr,
        code: ResponseCode,
    },
}

/// What forwarding one question gave.
#[derive(Debug)]
pub(crate) enum Forwarded {
    /// An upstream's answer, fresh.
    Answer(Message),
    /// An upstream's answer from the cache, TTLs aged.
    Cached(Message),
    /// No upstream is configured.
    NoUpstreams,
    /// Too many upstream queries in flight.
    Busy,
    /// Every upstream failed; the last failure.
    Failed(UpstreamError),
}

type CacheKey = (LowerName, RecordType, DNSClass);

#[derive(Debug)]
struct CacheEntry {
    message: Message,
    stored: Instant,
    expires: Instant,
}

/// Upstream answers by question, bounded in size.
#[derive(Debug)]
struct Cache {
    capacity: usize,
    entries: HashMap<CacheKey, CacheEntry>,
}

impl Cache {
    fn get(&mut self, key: &CacheKey, now: Instant) -> Option<Message> {
        let entry = self.entries.get(key)?;
        if entry.expires <= now {
            self.entries.remove(key);
            return None;
        }
        let age = u32::try_from(now.duration_since(entry.stored).as_secs()).unwrap_or(u32::MAX);
        let mut message = entry.message.clone();
        for record in message
            .answers
            .iter_mut()
            .chain(message.authorities.iter_mut())
            .chain(message.additionals.iter_mut())
        {
            record.ttl = record.ttl.saturating_sub(age);
        }
        Some(message)
    }

    fn put(&mut self, key: CacheKey, message: Message, ttl: u32, now: Instant) {
        if self.capacity == 0 || ttl == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, e| e.expires > now);
            if self.entries.len() >= self.capacity {
                // Full of live answers: drop the one closest to expiring.
                let soonest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(k, _)| k.clone());
                if let Some(soonest) = soonest {
                    self.entries.remove(&soonest);
                }
            }
        }
        self.entries.insert(
            key,
            CacheEntry {
                message,
                stored: now,
                expires: now + Duration::from_secs(u64::from(ttl)),
            },
        );
    }
}

/// How long an upstream answer may be cached: the smallest TTL of its records, or for a
/// negative answer the SOA's (RFC 2308); `0` when it must not be.
fn cache_ttl(message: &Message) -> u32 {
    match message.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => {}
        _ => return 0,
    }
    if message.metadata.truncation {
        return 0;
    }
    let ttl = if message.answers.is_empty() {
        message
            .authorities
            .iter()
            .filter_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })
            .min()
    } else {
        message
            .answers
            .iter()
            .chain(message.authorities.iter())
            .map(|r| r.ttl)
            .min()
    };
    ttl.unwrap_or(0).min(MAX_CACHE_TTL)
}

/// Sends questions to the upstreams.
#[derive(Debug)]
pub(crate) struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
    permits: Arc<Semaphore>,
    cache: Mutex<Cache>,
}

impl Forwarder {
    pub(crate) fn new(
        upstreams: Vec<SocketAddr>,
        timeout: Duration,
        max_in_flight: usize,
        cache_size: usize,
    ) -> Self {
        Self {
            upstreams,
            timeout,
            permits: Arc::new(Semaphore::new(max_in_flight)),
            cache: Mutex::new(Cache {
                capacity: cache_size,
                entries: HashMap::new(),
            }),
        }
    }

    /// The upstreams, in the order they are tried.
    pub(crate) fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    fn cached(&self, key: &CacheKey) -> Option<Message> {
        // A poisoned lock only means another query panicked mid-insert; the map is
        // still a valid map.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(key, Instant::now())
    }

    fn store(&self, key: CacheKey, message: &Message) {
        let ttl = cache_ttl(message);
        if ttl == 0 {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.put(key, message.clone(), ttl, Instant::now());
    }

    /// The cached upstream answer to `query`, TTLs aged; `None` when none is cached.
    /// Never waits, so the server can answer cache hits without spawning a task.
    pub(crate) fn cached_answer(&self, query: &Query) -> Option<Message> {
        self.cached(&cache_key(query))
    }

    /// Answers `query` from the cache or the upstreams.
    pub(crate) async fn forward(&self, query: &Query) -> Forwarded {
        let key = cache_key(query);
        if let Some(message) = self.cached(&key) {
            return Forwarded::Cached(message);
        }
        if self.upstreams.is_empty() {
            return Forwarded::NoUpstreams;
        }
        let Ok(_permit) = self.permits.try_acquire() else {
            return Forwarded::Busy;
        };
        let mut last = None;
        for upstream in &self.upstreams {
            match self.exchange(*upstream, query).await {
                Ok(message) => {
                    self.store(key, &message);
                    return Forwarded::Answer(message);
                }
                Err(error) => {
                    tracing::debug!(
                        upstream = %upstream,
                        name = %query.name(),
                        qtype = %query.query_type(),
                        %error,
                        "upstream query failed"
                    );
                    last = Some(error);
                }
            }
        }
        match last {
            Some(error) => Forwarded::Failed(error),
            None => Forwarded::NoUpstreams,
        }
    }

    /// One question to one upstream: UDP, then TCP if the answer was truncated.
    async fn exchange(
        &self,
        upstream: SocketAddr,
        query: &Query,
    ) -> Result<Message, UpstreamError> {
        let deadline = Instant::now() + self.timeout;
        let id: u16 = rand::random();
        let mut request = Message::new(id, MessageType::Query, OpCode::Query);
        request.metadata.recursion_desired = true;
        request.add_query(query.clone());
        let mut edns = Edns::new();
        edns.set_max_payload(UPSTREAM_PAYLOAD);
        request.set_edns(edns);
        let bytes = request.to_vec().map_err(|e| UpstreamError::BadAnswer {
            upstream,
            reason: format!("the question does not encode: {e}"),
        })?;
        let timeout = self.timeout;
        let answer = timeout_at(deadline, udp_exchange(upstream, &bytes, id, query))
            .await
            .map_err(|_| UpstreamError::Timeout { upstream, timeout })??;
        let answer = if answer.metadata.truncation {
            timeout_at(deadline, tcp_exchange(upstream, &bytes, id, query))
                .await
                .map_err(|_| UpstreamError::Timeout { upstream, timeout })??
        } else {
            answer
        };
        match answer.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => Ok(answer),
            code => Err(UpstreamError::Failed { upstream, code }),
        }
    }
}

fn cache_key(query: &Query) -> CacheKey {
    (
        LowerName::new(query.name()),
        query.query_type(),
        query.query_class(),
    )
}

/// Checks that `message` answers question `query` sent with `id`.
fn matches(message: &Message, id: u16, query: &Query) -> bool {
    message.metadata.id == id
        && message.metadata.message_type == MessageType::Response
        && message.queries.len() == 1
        && message.queries.first().is_some_and(|q| {
            q.query_type() == query.query_type()
                && q.query_class() == query.query_class()
                && LowerName::new(q.name()) == LowerName::new(query.name())
        })
}

async fn udp_exchange(
    upstream: SocketAddr,
    bytes: &[u8],
    id: u16,
    query: &Query,
) -> Result<Message, UpstreamError> {
    let io = |source| UpstreamError::Io { upstream, source };
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(upstream).await.map_err(io)?;
    socket.send(bytes).await.map_err(io)?;
    let mut buffer = vec![0u8; UPSTREAM_BUFFER];
    for _ in 0..MAX_STRAY_DATAGRAMS {
        let n = socket.recv(&mut buffer).await.map_err(io)?;
        let Some(datagram) = buffer.get(..n) else {
            continue;
        };
        match Message::from_vec(datagram) {
            Ok(message) if matches(&message, id, query) => return Ok(message),
            Ok(_) | Err(_) => continue,
        }
    }
    Err(UpstreamError::BadAnswer {
        upstream,
        reason: "no matching answer among the datagrams received".to_string(),
    })
}

async fn tcp_exchange(
    upstream: SocketAddr,
    bytes: &[u8],
    id: u16,
    query: &Query,
) -> Result<Message, UpstreamError> {
    let io = |source| UpstreamError::Io { upstream, source };
    let length = u16::try_from(bytes.len()).map_err(|_| UpstreamError::BadAnswer {
        upstream,
        reason: "question too long for TCP".to_string(),
    })?;
    let mut stream = TcpStream::connect(upstream).await.map_err(io)?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.map_err(io)?;
    let mut length = [0u8; 2];
    stream.read_exact(&mut length).await.map_err(io)?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut answer).await.map_err(io)?;
    let message = Message::from_vec(&answer).map_err(|e| UpstreamError::BadAnswer {
        upstream,
        reason: e.to_string(),
    })?;
    if matches(&message, id, query) {
        Ok(message)
    } else {
        Err(UpstreamError::BadAnswer {
            upstream,
            reason: "the TCP answer does not match the question".to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{Name, Record};

    fn record(ttl: u32, data: RData) -> Record {
        Record::from_rdata(Name::from_ascii("example.test.").unwrap(), ttl, data)
    }

    fn soa(ttl: u32, minimum: u32) -> Record {
        let name = Name::from_ascii("test.").unwrap();
        record(
            ttl,
            RData::SOA(SOA::new(name.clone(), name, 1, 1, 1, 1, minimum)),
        )
    }

    #[test]
    fn cache_ttls_follow_the_records() {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_answer(record(300, RData::A(A::new(192, 0, 2, 1))));
        m.add_answer(record(60, RData::A(A::new(192, 0, 2, 2))));
        assert_eq!(cache_ttl(&m), 60);
        let mut negative = Message::new(1, MessageType::Response, OpCode::Query);
        negative.metadata.response_code = ResponseCode::NXDomain;
        negative.add_authority(soa(900, 30));
        assert_eq!(cache_ttl(&negative), 30);
        let mut no_soa = Message::new(1, MessageType::Response, OpCode::Query);
        no_soa.metadata.response_code = ResponseCode::NXDomain;
        assert_eq!(cache_ttl(&no_soa), 0);
        let mut failed = m.clone();
        failed.metadata.response_code = ResponseCode::ServFail;
        assert_eq!(cache_ttl(&failed), 0);
        let mut long = Message::new(1, MessageType::Response, OpCode::Query);
        long.add_answer(record(86400, RData::A(A::new(192, 0, 2, 1))));
        assert_eq!(cache_ttl(&long), MAX_CACHE_TTL);
    }

    #[test]
    fn the_cache_is_bounded_and_ages_ttls() {
        let mut cache = Cache {
            capacity: 2,
            entries: HashMap::new(),
        };
        let now = Instant::now();
        let key = |n: &str| {
            (
                LowerName::new(&Name::from_ascii(n).unwrap()),
                RecordType::A,
                DNSClass::IN,
            )
        };
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_answer(record(100, RData::A(A::new(192, 0, 2, 1))));
        cache.put(key("a."), m.clone(), 100, now);
        cache.put(key("b."), m.clone(), 10, now);
        cache.put(key("c."), m.clone(), 50, now);
        assert_eq!(cache.entries.len(), 2);
        assert!(cache.get(&key("b."), now).is_none(), "soonest evicted");
        let later = now + Duration::from_secs(40);
        let aged = cache.get(&key("a."), later).unwrap();
        assert_eq!(aged.answers[0].ttl, 60);
        assert!(
            cache
                .get(&key("c."), now + Duration::from_secs(51))
                .is_none()
        );
    }
}
