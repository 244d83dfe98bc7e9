//! The consistent-hash ring: [`VIRTUAL_NODES`] points per endpoint on a 32-bit circle,
//! each placed by a stable hash of the endpoint's address and the point's number.
//!
//! A key goes to the first point at or after it, clockwise; a pick that cannot use that
//! point's endpoint (other tier, unhealthy, over its load bound) walks on to the next
//! point. Because points depend only on endpoint addresses, removing an endpoint moves
//! exactly the keys whose walk stopped at one of its points, and adding one moves only
//! keys to it. The ring is built when the candidate set changes and then only read.
//! No I/O, no locks; building allocates, lookups do not.

use std::fmt;
use std::net::IpAddr;

use super::candidate::{Candidate, EndpointId};
use super::hash::{mix64, stable_hash};

/// Points per endpoint. The share of keys an endpoint owns varies with a relative
/// standard deviation of about 1/√256 ≈ 6%; bounded load evens out what that leaves.
/// Memory: 8 bytes a point, 2 KiB per endpoint.
pub const VIRTUAL_NODES: u32 = 256;

#[derive(Debug, Clone, Copy)]
struct RingPoint {
    /// Position on the circle.
    hash: u32,
    /// Index of the endpoint in the candidate slice the ring was built from.
    index: u32,
}

/// A ring over one candidate list (all of it: readiness and tiers are checked per pick).
pub(crate) struct HashRing {
    points: Vec<RingPoint>,
}

impl fmt::Debug for HashRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashRing")
            .field("points", &self.points.len())
            .finish()
    }
}

/// The bytes that identify an endpoint on the ring: address octets, then the port
/// (big-endian), then the point's number (little-endian).
fn point_hash(id: EndpointId, point: u32) -> u32 {
    let mut bytes = [0u8; 22];
    let used = match id.ip() {
        IpAddr::V4(v4) => {
            bytes[..4].copy_from_slice(&v4.octets());
            4
        }
        IpAddr::V6(v6) => {
            bytes[..16].copy_from_slice(&v6.octets());
            16
        }
    };
    bytes[used..used + 2].copy_from_slice(&id.port().to_be_bytes());
    bytes[used + 2..used + 6].copy_from_slice(&point.to_le_bytes());
    (stable_hash(&bytes[..used + 6]) >> 32) as u32
}

/// Where a caller's key lands on the circle. Keys are mixed first, so any `u64`, even a
/// small number, spreads over the circle.
fn key_position(key: u64) -> u32 {
    (mix64(key) >> 32) as u32
}

impl HashRing {
    /// The ring of `candidates`, with each point naming its candidate's index. Points of
    /// equal hash are ordered by address, so the ring does not depend on candidate order.
    pub(crate) fn build(candidates: &[Candidate]) -> Self {
        let mut points =
            Vec::with_capacity(candidates.len().saturating_mul(VIRTUAL_NODES as usize));
        for (index, candidate) in candidates.iter().enumerate() {
            // More than 2^32 candidates cannot be indexed; they are left off the ring.
            let Ok(index) = u32::try_from(index) else {
                break;
            };
            for point in 0..VIRTUAL_NODES {
                points.push(RingPoint {
                    hash: point_hash(candidate.id, point),
                    index,
                });
            }
        }
        let id_of = |p: &RingPoint| candidates.get(p.index as usize).map(|c| c.id);
        points.sort_by(|a, b| a.hash.cmp(&b.hash).then_with(|| id_of(a).cmp(&id_of(b))));
        Self { points }
    }

    /// Candidate indices in ring order starting at `key`'s position, once round the
    /// circle. Each endpoint appears [`VIRTUAL_NODES`] times.
    pub(crate) fn walk(&self, key: u64) -> impl Iterator<Item = usize> + '_ {
        let position = key_position(key);
        let start = self.points.partition_point(|p| p.hash < position);
        let (before, after) = self.points.split_at(start.min(self.points.len()));
        after.iter().chain(before.iter()).map(|p| p.index as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(n: u8) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate::new(format!("10.0.0.{i}:8080").parse().unwrap(), true))
            .collect()
    }

    #[test]
    fn the_ring_does_not_depend_on_candidate_order() {
        let forward = candidates(8);
        let mut backward = forward.clone();
        backward.reverse();
        let a = HashRing::build(&forward);
        let b = HashRing::build(&backward);
        for key in 0..2000u64 {
            let first_a = a.walk(key).next().map(|i| forward[i].id);
            let first_b = b.walk(key).next().map(|i| backward[i].id);
            assert_eq!(first_a, first_b, "key {key}");
        }
    }

    #[test]
    fn a_walk_visits_every_point_once() {
        let set = candidates(5);
        let ring = HashRing::build(&set);
        let mut seen = [0u32; 5];
        for index in ring.walk(42) {
            seen[index] += 1;
        }
        assert_eq!(seen, [VIRTUAL_NODES; 5]);
    }

    #[test]
    fn an_empty_ring_walks_nowhere() {
        let ring = HashRing::build(&[]);
        assert_eq!(ring.walk(7).count(), 0);
    }

    #[test]
    fn keys_past_the_last_point_wrap_to_the_first() {
        let set = candidates(3);
        let ring = HashRing::build(&set);
        let last = ring.points.last().map(|p| p.hash).unwrap();
        // Find a key that lands after the last point, if the circle leaves room.
        if last < u32::MAX {
            let key = (0u64..).find(|&k| key_position(k) > last).unwrap();
            assert_eq!(
                ring.walk(key).next(),
                ring.points.first().map(|p| p.index as usize)
            );
        }
    }
}
