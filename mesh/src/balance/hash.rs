//! Stable hashing for consistent-hash keys and ring points.
//!
//! [`stable_hash`] is XXH64 with seed 0, written out here so that its output is fixed by a
//! public specification rather than by a crate version or the standard library's
//! unspecified `DefaultHasher`/`RandomState`. Every process on every node, whatever it
//! was built with, maps the same cookie, header or address to the same `u64`, so callers
//! on different nodes send the same key to the same endpoint. (Envoy hashes its
//! consistent-hash keys with XXH64 too.) It is not a keyed hash: a client that chooses its
//! own keys can aim them at one endpoint whatever the hash; bounded load is what limits
//! that.
//!
//! Pure functions over bytes: no I/O, no state, no allocation.

use std::net::IpAddr;

const PRIME_1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const PRIME_3: u64 = 0x1656_67B1_9E37_79F9;
const PRIME_4: u64 = 0x85EB_CA77_C2B2_AE63;
const PRIME_5: u64 = 0x27D4_EB2F_1656_67C5;

/// Hashes `bytes` to a `u64` that is the same in every process, on every run and every
/// platform: XXH64 with seed 0 (the reference `xxhsum -H64` output).
///
/// This is the hash a caller applies to a header, cookie or query value before handing
/// the result to [`PickContext::with_hash`](super::PickContext::with_hash).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    xxh64(bytes, 0)
}

/// Hashes an IP address for `HashKey::SourceIp`: the octets of its canonical form, so an
/// IPv4 client seen as `::ffff:a.b.c.d` hashes like `a.b.c.d`.
pub fn hash_ip(ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => stable_hash(&v4.octets()),
        IpAddr::V6(v6) => stable_hash(&v6.octets()),
    }
}

/// A bijective finaliser (MurmurHash3's `fmix64`): spreads any `u64`, even a small
/// counter or a raw address, over the whole range. Used on keys before they are placed on
/// the ring, and to fold endpoint ids into a fingerprint.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    x ^= x >> 33;
    x
}

fn round(acc: u64, lane: u64) -> u64 {
    acc.wrapping_add(lane.wrapping_mul(PRIME_2))
        .rotate_left(31)
        .wrapping_mul(PRIME_1)
}

fn merge_round(acc: u64, lane_acc: u64) -> u64 {
    (acc ^ round(0, lane_acc))
        .wrapping_mul(PRIME_1)
        .wrapping_add(PRIME_4)
}

fn read_u64(chunk: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&chunk[..8]);
    u64::from_le_bytes(word)
}

fn read_u32(chunk: &[u8]) -> u64 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&chunk[..4]);
    u64::from(u32::from_le_bytes(word))
}

/// XXH64 (<https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md>).
fn xxh64(input: &[u8], seed: u64) -> u64 {
    let mut rest = input;
    let mut hash = if input.len() >= 32 {
        let mut lanes = [
            seed.wrapping_add(PRIME_1).wrapping_add(PRIME_2),
            seed.wrapping_add(PRIME_2),
            seed,
            seed.wrapping_sub(PRIME_1),
        ];
        let mut stripes = input.chunks_exact(32);
        for stripe in &mut stripes {
            for (lane, word) in lanes.iter_mut().zip(stripe.chunks_exact(8)) {
                *lane = round(*lane, read_u64(word));
            }
        }
        rest = stripes.remainder();
        let [v1, v2, v3, v4] = lanes;
        let mut acc = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
        for lane in lanes {
            acc = merge_round(acc, lane);
        }
        acc
    } else {
        seed.wrapping_add(PRIME_5)
    };
    hash = hash.wrapping_add(input.len() as u64);

    let mut words = rest.chunks_exact(8);
    for word in &mut words {
        hash ^= round(0, read_u64(word));
        hash = hash
            .rotate_left(27)
            .wrapping_mul(PRIME_1)
            .wrapping_add(PRIME_4);
    }
    let mut rest = words.remainder();
    if rest.len() >= 4 {
        hash ^= read_u32(rest).wrapping_mul(PRIME_1);
        hash = hash
            .rotate_left(23)
            .wrapping_mul(PRIME_2)
            .wrapping_add(PRIME_3);
        rest = &rest[4..];
    }
    for &byte in rest {
        hash ^= u64::from(byte).wrapping_mul(PRIME_5);
        hash = hash.rotate_left(11).wrapping_mul(PRIME_1);
    }

    hash ^= hash >> 33;
    hash = hash.wrapping_mul(PRIME_2);
    hash ^= hash >> 29;
    hash = hash.wrapping_mul(PRIME_3);
    hash ^= hash >> 32;
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference outputs of `xxhsum -H64`, covering each branch: empty, tail bytes, a
    /// 4-byte word, 8-byte words, and the 32-byte stripe loop with and without a tail.
    #[test]
    fn matches_the_reference_xxh64() {
        let vectors: &[(&[u8], u64)] = &[
            (b"", 0xEF46_DB37_51D8_E999),
            (b"a", 0xD24E_C4F1_A98C_6E5B),
            (b"abc", 0x44BC_2CF5_AD77_0999),
            (b"ABC", 0xE66A_E735_4FCF_EE98),
            (b"xxhash", 0x32DD_3895_2C4B_C720),
            (b"abcdefghijkl", 0x4B09_B7D3_A233_D4B3),
            (b"abcdefghijklmnop", 0x71CE_8137_CA2D_D53D),
            (b"abcdefghijklmnopqrstuvwx", 0x0BEC_95E3_4669_983B),
            (b"abcdefghijklmnopqrstuvwxyz12345", 0x4676_0590_1B01_D6F6),
            (b"abcdefghijklmnopqrstuvwxyz123456", 0x0022_EE3B_5A18_531B),
            (b"abcdefghijklmnopqrstuvwxyz1234567", 0x23BB_D16D_2935_3C5F),
        ];
        for (input, expected) in vectors {
            assert_eq!(
                stable_hash(input),
                *expected,
                "xxh64({:?})",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn seeded_reference_outputs() {
        assert_eq!(xxh64(b"", 668_718_853), 0x04E8_3058_2A31_A119);
        assert_eq!(xxh64(b"a", 191_961_062), 0x6E05_BA28_87C9_7977);
        assert_eq!(
            xxh64(b"abcdefghijklmnopqrstuvwxyz12345", 877_380_273),
            0x37B5_62EC_5715_E132
        );
    }

    #[test]
    fn mapped_ipv4_hashes_like_ipv4() {
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(hash_ip(v4), hash_ip(mapped));
        assert_ne!(hash_ip(v4), hash_ip("10.1.2.4".parse().unwrap()));
    }

    #[test]
    fn mix_spreads_small_inputs() {
        // Consecutive inputs land far apart: the top bits differ for most neighbours.
        let differing = (0u64..1000)
            .filter(|&i| (mix64(i) >> 60) != (mix64(i + 1) >> 60))
            .count();
        assert!(differing > 850, "{differing}");
    }
}
