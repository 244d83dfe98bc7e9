//! SOCKS5 (RFC 1928) for clients that cannot be captured: `curl --socks5-hostname` and
//! friends. No authentication, CONNECT only; the host name is resolved by the mesh
//! ("remote DNS"), so `echo.demo` works without the cluster DNS.
//!
//! The parsing is pure (`parse_greeting`, `parse_request`) and fuzzed; `serve` drives it
//! on a socket.
//!
//! The parser touches no socket.

use std::net::{Ipv4Addr, Ipv6Addr};

/// What the client asked to reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// An IP address.
    Ip(std::net::IpAddr),
    /// A host name.
    Name(String),
}

/// A CONNECT request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Where.
    pub address: Address,
    /// Which port.
    pub port: u16,
}

/// Why a SOCKS message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SocksError {
    /// Not SOCKS version 5.
    #[error("not SOCKS5 (version byte {0})")]
    Version(u8),
    /// The client offers no method we accept (we take "no authentication").
    #[error("the client offers no acceptable authentication method")]
    NoAcceptableMethod,
    /// A command other than CONNECT.
    #[error("SOCKS command {0} is not supported; only CONNECT")]
    Command(u8),
    /// An address type other than IPv4, domain or IPv6.
    #[error("unknown SOCKS address type {0}")]
    AddressType(u8),
    /// A domain name that is not UTF-8 or is empty.
    #[error("bad domain name in the SOCKS request")]
    BadName,
}

/// SOCKS reply codes (RFC 1928 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Succeeded.
    Succeeded = 0,
    /// General failure.
    GeneralFailure = 1,
    /// Connection not allowed by ruleset (not a mesh Service).
    NotAllowed = 2,
    /// Host unreachable (no ready endpoint).
    HostUnreachable = 4,
    /// Connection refused.
    ConnectionRefused = 5,
    /// Command not supported.
    CommandNotSupported = 7,
    /// Address type not supported.
    AddressTypeNotSupported = 8,
}

/// The greeting's answer: the method chosen, or 0xFF for none.
pub fn parse_greeting(buf: &[u8]) -> Result<Option<(u8, usize)>, SocksError> {
    let Some(&version) = buf.first() else {
        return Ok(None);
    };
    if version != 5 {
        return Err(SocksError::Version(version));
    }
    let Some(&count) = buf.get(1) else {
        return Ok(None);
    };
    let Some(methods) = buf.get(2..2 + usize::from(count)) else {
        return Ok(None);
    };
    if methods.contains(&0) {
        Ok(Some((0, 2 + usize::from(count))))
    } else {
        Err(SocksError::NoAcceptableMethod)
    }
}

/// Parses a request from the front of `buf`: `Ok(None)` until it is complete.
pub fn parse_request(buf: &[u8]) -> Result<Option<(ConnectRequest, usize)>, SocksError> {
    if buf.len() < 4 {
        if let Some(&v) = buf.first()
            && v != 5
        {
            return Err(SocksError::Version(v));
        }
        return Ok(None);
    }
    if buf[0] != 5 {
        return Err(SocksError::Version(buf[0]));
    }
    if buf[1] != 1 {
        return Err(SocksError::Command(buf[1]));
    }
    let (address, rest) = match buf[3] {
        1 => {
            let Some(b) = buf.get(4..8) else {
                return Ok(None);
            };
            (Address::Ip(Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()), 8)
        }
        3 => {
            let Some(&len) = buf.get(4) else {
                return Ok(None);
            };
            let Some(name) = buf.get(5..5 + usize::from(len)) else {
                return Ok(None);
            };
            let name = std::str::from_utf8(name).map_err(|_| SocksError::BadName)?;
            if name.is_empty() {
                return Err(SocksError::BadName);
            }
            (Address::Name(name.to_string()), 5 + usize::from(len))
        }
        4 => {
            let Some(b) = buf.get(4..20) else {
                return Ok(None);
            };
            let mut octets = [0u8; 16];
            octets.copy_from_slice(b);
            (Address::Ip(Ipv6Addr::from(octets).into()), 20)
        }
        other => return Err(SocksError::AddressType(other)),
    };
    let Some(port) = buf.get(rest..rest + 2) else {
        return Ok(None);
    };
    Ok(Some((
        ConnectRequest {
            address,
            port: u16::from_be_bytes([port[0], port[1]]),
        },
        rest + 2,
    )))
}

/// The reply bytes for `code` (bound address reported as 0.0.0.0:0).
pub fn reply(code: Reply) -> [u8; 10] {
    [5, code as u8, 0, 1, 0, 0, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn greetings_and_requests() {
        assert_eq!(parse_greeting(&[5, 2, 2, 0]), Ok(Some((0, 4))));
        assert_eq!(
            parse_greeting(&[5, 1, 2]),
            Err(SocksError::NoAcceptableMethod)
        );
        assert_eq!(parse_greeting(&[4, 1]), Err(SocksError::Version(4)));
        assert_eq!(parse_greeting(&[5, 3, 0]), Ok(None));
        let mut name = vec![5, 1, 0, 3, 9];
        name.extend_from_slice(b"echo.demo");
        name.extend_from_slice(&80u16.to_be_bytes());
        assert_eq!(
            parse_request(&name),
            Ok(Some((
                ConnectRequest {
                    address: Address::Name("echo.demo".into()),
                    port: 80
                },
                name.len()
            )))
        );
        for cut in 0..name.len() {
            assert_eq!(parse_request(&name[..cut]), Ok(None));
        }
        assert_eq!(
            parse_request(&[5, 1, 0, 1, 10, 96, 0, 10, 0, 80]),
            Ok(Some((
                ConnectRequest {
                    address: Address::Ip("10.96.0.10".parse().unwrap()),
                    port: 80
                },
                10
            )))
        );
        assert_eq!(parse_request(&[5, 2, 0, 1]), Err(SocksError::Command(2)));
        assert_eq!(
            parse_request(&[5, 1, 0, 9]),
            Err(SocksError::AddressType(9))
        );
        assert_eq!(
            parse_request(&[5, 1, 0, 3, 0, 0, 80]),
            Err(SocksError::BadName)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(Some((_, used))) = parse_request(&bytes) {
                prop_assert!(used <= bytes.len());
            }
            if let Ok(Some((_, used))) = parse_greeting(&bytes) {
                prop_assert!(used <= bytes.len());
            }
        }
    }
}
