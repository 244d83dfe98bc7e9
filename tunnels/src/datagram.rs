//! Packet framing for the two things that ride a link as packets: UDP flows and relay
//! sessions. A sans-IO codec, tested without sockets.
//!
//! Each flow or session has a control stream; its QUIC stream id is the channel id. A
//! packet travels either as a QUIC datagram
//!
//! ```text
//! datagram = channel:u8 (1 udp flow | 2 relay) id:varint payload
//! ```
//!
//! or, when it is larger than the path allows, framed on the control stream
//! (`len:u16 payload`), so it is delayed rather than dropped — and framed, unlike
//! EdgeMesh, which wrote datagrams into a byte stream with no boundaries. `varint` is
//! QUIC's variable-length integer (RFC 9000 §16).

/// The largest packet carried (the largest UDP payload).
pub const MAX_PACKET: usize = 65_535;

/// What a datagram belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A proxied UDP flow.
    UdpFlow,
    /// A relay session (the payload is an encrypted inner QUIC packet).
    Relay,
}

impl Channel {
    fn tag(self) -> u8 {
        match self {
            Channel::UdpFlow => 1,
            Channel::Relay => 2,
        }
    }
}

/// Why a datagram or frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// An empty datagram.
    #[error("empty datagram")]
    Empty,
    /// A tag that is neither a UDP flow nor a relay session.
    #[error("unknown datagram channel {0}")]
    UnknownChannel(u8),
    /// The channel id runs past the end.
    #[error("datagram ends inside its channel id")]
    Truncated,
    /// A packet over [`MAX_PACKET`].
    #[error("packet of {0} bytes is larger than {MAX_PACKET}")]
    TooLarge(usize),
    /// A channel id of 2^62 or more.
    #[error("channel id {0} does not fit a QUIC varint")]
    IdTooLarge(u64),
}

/// Bytes a datagram header takes for channel id `id`.
pub fn header_len(id: u64) -> usize {
    1 + varint_len(id)
}

/// Appends the datagram header for `channel` and `id`.
pub fn encode_header(channel: Channel, id: u64, out: &mut Vec<u8>) -> Result<(), PacketError> {
    out.push(channel.tag());
    put_varint(id, out)
}

/// Splits a datagram into its channel, id and payload.
pub fn decode(datagram: &[u8]) -> Result<(Channel, u64, &[u8]), PacketError> {
    let (&tag, rest) = datagram.split_first().ok_or(PacketError::Empty)?;
    let channel = match tag {
        1 => Channel::UdpFlow,
        2 => Channel::Relay,
        other => return Err(PacketError::UnknownChannel(other)),
    };
    let (id, used) = get_varint(rest).ok_or(PacketError::Truncated)?;
    Ok((channel, id, &rest[used..]))
}

/// Appends a stream frame holding `payload`.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) -> Result<(), PacketError> {
    let len = u16::try_from(payload.len()).map_err(|_| PacketError::TooLarge(payload.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Reads a stream frame from the front of `buf`: `None` until it is complete, then the
/// payload and the bytes it took.
pub fn decode_frame(buf: &[u8]) -> Option<(&[u8], usize)> {
    let len = usize::from(u16::from_be_bytes([*buf.first()?, *buf.get(1)?]));
    let payload = buf.get(2..2 + len)?;
    Some((payload, 2 + len))
}

fn varint_len(v: u64) -> usize {
    match v {
        0..=63 => 1,
        64..=16_383 => 2,
        16_384..=1_073_741_823 => 4,
        _ => 8,
    }
}

fn put_varint(v: u64, out: &mut Vec<u8>) -> Result<(), PacketError> {
    match varint_len(v) {
        1 => out.push(v as u8),
        2 => out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes()),
        4 => out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes()),
        _ if v < (1 << 62) => out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes()),
        _ => return Err(PacketError::IdTooLarge(v)),
    }
    Ok(())
}

fn get_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    let len = 1usize << (first >> 6);
    let bytes = buf.get(..len)?;
    let mut v = u64::from(first & 0x3f);
    for b in &bytes[1..] {
        v = (v << 8) | u64::from(*b);
    }
    Some((v, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varints_follow_rfc_9000() {
        // The examples of RFC 9000 §A.1.
        let cases: [(&[u8], u64); 4] = [
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
                151_288_809_941_952_652,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
        ];
        for (bytes, value) in cases {
            assert_eq!(get_varint(bytes), Some((value, bytes.len())));
            let mut out = Vec::new();
            put_varint(value, &mut out).unwrap();
            assert_eq!(out, bytes);
        }
        assert_eq!(
            put_varint(1 << 62, &mut Vec::new()),
            Err(PacketError::IdTooLarge(1 << 62))
        );
    }

    #[test]
    fn bad_datagrams_are_refused() {
        assert_eq!(decode(&[]), Err(PacketError::Empty));
        assert_eq!(decode(&[9, 0]), Err(PacketError::UnknownChannel(9)));
        assert_eq!(decode(&[1]), Err(PacketError::Truncated));
        assert_eq!(decode(&[1, 0x40]), Err(PacketError::Truncated));
        assert_eq!(decode(&[2, 5]), Ok((Channel::Relay, 5, &[][..])));
    }

    #[test]
    fn frames_wait_for_their_whole_payload() {
        let mut out = Vec::new();
        encode_frame(b"hello", &mut out).unwrap();
        for cut in 0..out.len() {
            assert_eq!(decode_frame(&out[..cut]), None);
        }
        assert_eq!(decode_frame(&out), Some((&b"hello"[..], 7)));
        assert_eq!(
            encode_frame(&vec![0; MAX_PACKET + 1], &mut Vec::new()),
            Err(PacketError::TooLarge(MAX_PACKET + 1))
        );
    }

    proptest! {
        #[test]
        fn datagrams_round_trip(id in 0u64..(1 << 62), payload in proptest::collection::vec(any::<u8>(), 0..64), relay in any::<bool>()) {
            let channel = if relay { Channel::Relay } else { Channel::UdpFlow };
            let mut out = Vec::new();
            encode_header(channel, id, &mut out).unwrap();
            prop_assert_eq!(out.len(), header_len(id));
            out.extend_from_slice(&payload);
            prop_assert_eq!(decode(&out), Ok((channel, id, &payload[..])));
        }

        #[test]
        fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = decode(&bytes);
            let _ = decode_frame(&bytes);
        }
    }
}
