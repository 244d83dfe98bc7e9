//! Encoded cluster answers, kept by the exact bytes of the message that asked, for one
//! snapshot version: the DNS server's fast path.
//!
//! A cluster answer is a function of the question message and the snapshot alone (the
//! handler never caches the one answer that is not — a headless Service's shuffled
//! addresses). So the key is the whole message but its id (flags, EDNS and all, the name
//! in the case it was sent, so the echoed question is right), plus the transport, whose
//! size limit shapes the answer; the value is the slow path's bytes. A hit copies them and
//! writes the asker's id in: byte for byte what decoding, looking up and encoding would
//! give, without any of it. A new snapshot version empties the cache (the SOA serial and
//! the records may change); forwarded answers never enter it (their TTLs decay, which the
//! forwarder's own cache handles).
//!
//! Bounded in entries and bytes: when full it is emptied and fills again with what is
//! asked, so names nobody asks twice (a scan of random names) cannot pin it.

use std::collections::HashMap;
use std::sync::Mutex;

use super::handler::Transport;

/// Answers kept at most, over both transports.
const MAX_ENTRIES: usize = 8192;
/// Bytes (keys and answers) kept at most.
const MAX_BYTES: usize = 4 << 20;
/// Messages longer than this are neither looked up nor kept (real questions are far
/// shorter; the bound keeps keys small).
const MAX_QUESTION: usize = 512;
/// Answers longer than this are not kept.
const MAX_ANSWER: usize = 4096;
/// A DNS header.
const HEADER: usize = 12;

/// What an answer was, for the counters a hit must bump as the slow path did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// NOERROR with records.
    Answer,
    /// NOERROR without records of the type asked.
    NoData,
    /// NXDOMAIN.
    NxDomain,
}

/// How a kept answer was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) kind: Kind,
    /// Sent with TC set (too large for the transport).
    pub(crate) truncated: bool,
}

#[derive(Debug)]
struct Entry {
    answer: Box<[u8]>,
    outcome: Outcome,
}

#[derive(Debug, Default)]
struct Table {
    version: u64,
    bytes: usize,
    udp: HashMap<Box<[u8]>, Entry>,
    tcp: HashMap<Box<[u8]>, Entry>,
}

impl Table {
    fn clear(&mut self) {
        self.udp.clear();
        self.tcp.clear();
        self.bytes = 0;
    }

    fn map(&mut self, transport: Transport) -> &mut HashMap<Box<[u8]>, Entry> {
        match transport {
            Transport::Udp => &mut self.udp,
            Transport::Tcp => &mut self.tcp,
        }
    }
}

/// The cache; shared by every listener of one handler.
#[derive(Debug, Default)]
pub(crate) struct AnswerCache {
    table: Mutex<Table>,
}

/// The key of `packet`: all of it but the id; `None` when it is not to be cached.
fn key(packet: &[u8]) -> Option<&[u8]> {
    if !(HEADER..=MAX_QUESTION).contains(&packet.len()) {
        return None;
    }
    packet.get(2..)
}

impl AnswerCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A poisoned lock only means a panic mid-insert; the maps are still maps.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends the kept answer to `packet`, asked over `transport` of snapshot
    /// `version`, to `out`, with `packet`'s id; `None` (and `out` untouched) when none
    /// is kept.
    pub(crate) fn answer(
        &self,
        version: u64,
        transport: Transport,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<Outcome> {
        let key = key(packet)?;
        let id = packet.get(..2)?;
        let mut table = self.lock();
        if table.version != version {
            if version > table.version {
                table.clear();
                table.version = version;
            }
            return None;
        }
        let entry = table.map(transport).get(key)?;
        let start = out.len();
        out.extend_from_slice(&entry.answer);
        if let Some(answer_id) = out.get_mut(start..start + 2) {
            answer_id.copy_from_slice(id);
        }
        Some(entry.outcome)
    }

    /// Keeps `answer`, the slow path's answer to `packet` over `transport` from snapshot
    /// `version`.
    pub(crate) fn insert(
        &self,
        version: u64,
        transport: Transport,
        packet: &[u8],
        answer: &[u8],
        outcome: Outcome,
    ) {
        let Some(key) = key(packet) else {
            return;
        };
        if !(HEADER..=MAX_ANSWER).contains(&answer.len()) || answer.get(..2) != packet.get(..2) {
            return;
        }
        let size = key.len() + answer.len();
        let mut table = self.lock();
        if table.version != version {
            if version < table.version {
                // Looked up in a snapshot already replaced: not worth keeping.
                return;
            }
            table.clear();
            table.version = version;
        }
        if table.udp.len() + table.tcp.len() >= MAX_ENTRIES || table.bytes + size > MAX_BYTES {
            table.clear();
        }
        let entry = Entry {
            answer: answer.into(),
            outcome,
        };
        if let Some(old) = table.map(transport).insert(key.into(), entry) {
            table.bytes = table.bytes.saturating_sub(key.len() + old.answer.len());
        }
        table.bytes += size;
    }

    /// Answers kept now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let table = self.lock();
        table.udp.len() + table.tcp.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // A test that unwraps fails where the assumption broke.

    use super::*;

    const ANSWER: Outcome = Outcome {
        kind: Kind::Answer,
        truncated: false,
    };

    fn message(id: u16, rest: &[u8]) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(rest);
        m
    }

    #[test]
    fn a_hit_carries_the_askers_id_and_the_rest_as_kept() {
        let cache = AnswerCache::default();
        let question = message(0x1111, b"q");
        let answer = message(0x1111, b"answer");
        let mut out = vec![9];
        assert_eq!(cache.answer(3, Transport::Udp, &question, &mut out), None);
        assert_eq!(out, vec![9]);
        cache.insert(3, Transport::Udp, &question, &answer, ANSWER);
        let again = message(0xabcd, b"q");
        assert_eq!(
            cache.answer(3, Transport::Udp, &again, &mut out),
            Some(ANSWER)
        );
        assert_eq!(out[0], 9);
        assert_eq!(&out[1..], &message(0xabcd, b"answer")[..]);
        // Another transport, or one byte more, is another question.
        assert_eq!(cache.answer(3, Transport::Tcp, &again, &mut out), None);
        assert_eq!(
            cache.answer(3, Transport::Udp, &message(1, b"Q"), &mut out),
            None
        );
    }

    #[test]
    fn a_new_version_empties_it_and_old_lookups_are_not_kept() {
        let cache = AnswerCache::default();
        let q = message(1, b"q");
        cache.insert(5, Transport::Udp, &q, &message(1, b"a"), ANSWER);
        assert_eq!(cache.len(), 1);
        let mut out = Vec::new();
        assert_eq!(cache.answer(6, Transport::Udp, &q, &mut out), None);
        assert_eq!(cache.len(), 0);
        // An answer computed from version 5 arriving late is dropped.
        cache.insert(5, Transport::Udp, &q, &message(1, b"a"), ANSWER);
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.answer(5, Transport::Udp, &q, &mut out), None);
        assert!(out.is_empty());
    }

    #[test]
    fn odd_sizes_and_mismatched_ids_are_not_kept() {
        let cache = AnswerCache::default();
        let short = vec![0u8; 11];
        cache.insert(0, Transport::Udp, &short, &message(0, b""), ANSWER);
        let long = message(0, &[0; MAX_QUESTION]);
        cache.insert(0, Transport::Udp, &long, &message(0, b""), ANSWER);
        let q = message(7, b"q");
        cache.insert(0, Transport::Udp, &q, &message(8, b"a"), ANSWER);
        cache.insert(
            0,
            Transport::Udp,
            &q,
            &message(7, &[0; MAX_ANSWER])[..],
            ANSWER,
        );
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn it_is_bounded() {
        let cache = AnswerCache::default();
        for i in 0..(MAX_ENTRIES as u32 + 10) {
            let q = message(1, &i.to_be_bytes());
            cache.insert(0, Transport::Udp, &q, &message(1, b"a"), ANSWER);
            assert!(cache.len() <= MAX_ENTRIES);
        }
        assert!(cache.len() >= 10);
        let big = message(1, &[1; MAX_ANSWER - HEADER]);
        for i in 0..2000u32 {
            let q = message(1, &i.to_be_bytes());
            cache.insert(0, Transport::Tcp, &q, &big, ANSWER);
            assert!(cache.lock().bytes <= MAX_BYTES);
        }
    }
}
