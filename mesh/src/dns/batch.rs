//! Batched UDP receive and send for the DNS server (Linux): one `recvmmsg` takes up to
//! [`BATCH`] datagrams and one `sendmmsg` sends the answers to all of them, so the
//! system-call cost per query falls with the batch instead of being paid twice per query.
//!
//! This is the only module of the DNS server that makes raw system calls; it allows
//! `unsafe` for them alone, each block with the reason it is sound. It knows nothing of
//! DNS: datagrams and addresses in, datagrams and addresses out. Readiness stays tokio's
//! business — the server calls [`RecvBatch::recv`] and [`SendBatch::send`] inside
//! `UdpSocket::try_io`, so `WouldBlock` clears tokio's readiness as it should. A kernel
//! without the calls gives `ENOSYS` ([`unsupported`]), and the server goes back to plain
//! `recv_from`/`send_to`.
#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::ptr;

/// The most datagrams taken or sent by one call.
pub(crate) const BATCH: usize = 32;

/// One datagram of a [`RecvBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Datagram<'a> {
    /// Its bytes (cut to the slot when `truncated`).
    pub(crate) data: &'a [u8],
    /// Who sent it; `None` for an address family other than IPv4 and IPv6.
    pub(crate) src: Option<SocketAddr>,
    /// The datagram was longer than its slot and lost its tail (`MSG_TRUNC`).
    pub(crate) truncated: bool,
}

/// Buffers for up to [`BATCH`] datagrams, each with a slot of its own in one allocation.
pub(crate) struct RecvBatch {
    slot: usize,
    buffers: Vec<u8>,
    names: Vec<libc::sockaddr_storage>,
    name_lengths: Vec<libc::socklen_t>,
    lengths: Vec<usize>,
    truncated: Vec<bool>,
    count: usize,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("slot", &self.slot)
            .field("slots", &self.names.len())
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl RecvBatch {
    /// Room for `slots` datagrams (at most [`BATCH`], at least one) of up to `slot`
    /// bytes each. The buffer is zeroed lazily by the allocator, so slots that are
    /// never filled cost address space, not memory.
    pub(crate) fn new(slots: usize, slot: usize) -> Self {
        let slots = slots.clamp(1, BATCH);
        let slot = slot.max(1);
        Self {
            slot,
            buffers: vec![0u8; slots * slot],
            // SAFETY: `sockaddr_storage` is plain data (integers and byte arrays), for
            // which all zero bytes is a valid value (family AF_UNSPEC).
            names: vec![unsafe { std::mem::zeroed::<libc::sockaddr_storage>() }; slots],
            name_lengths: vec![0; slots],
            lengths: vec![0; slots],
            truncated: vec![false; slots],
            count: 0,
        }
    }

    /// Datagrams received by the last [`RecvBatch::recv`].
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The `index`th datagram of the last [`RecvBatch::recv`].
    pub(crate) fn get(&self, index: usize) -> Option<Datagram<'_>> {
        if index >= self.count {
            return None;
        }
        let start = index * self.slot;
        let length = self.lengths.get(index)?.min(&self.slot);
        Some(Datagram {
            data: self.buffers.get(start..start + length)?,
            src: from_raw(self.names.get(index)?, *self.name_lengths.get(index)?),
            truncated: *self.truncated.get(index)?,
        })
    }

    /// Takes the datagrams waiting on `fd`, up to the batch's size, without blocking:
    /// `Ok(n)` with `n >= 1`, or `WouldBlock` when none waits. Earlier datagrams are
    /// forgotten.
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.count = 0;
        let slots = self.names.len();
        let mut iovecs = [libc::iovec {
            iov_base: ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        // SAFETY: `mmsghdr` is plain data (integers and raw pointers); all zero bytes
        // is a valid value (null pointers, zero lengths).
        let mut headers = [unsafe { std::mem::zeroed::<libc::mmsghdr>() }; BATCH];
        for (index, chunk) in self.buffers.chunks_exact_mut(self.slot).enumerate() {
            let (Some(iovec), Some(header), Some(name)) = (
                iovecs.get_mut(index),
                headers.get_mut(index),
                self.names.get_mut(index),
            ) else {
                break;
            };
            *iovec = libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: chunk.len(),
            };
            header.msg_hdr.msg_name = ptr::from_mut(name).cast();
            header.msg_hdr.msg_namelen = STORAGE_LEN;
            header.msg_hdr.msg_iov = ptr::from_mut(iovec);
            header.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `headers[..slots]` each point at one `iovec` of `iovecs`, which points
        // at its own `slot`-byte chunk of `self.buffers`, and at one `sockaddr_storage`
        // of `self.names` with `msg_namelen` its size. All of them live until the call
        // returns and nothing else touches them meanwhile (`&mut self`, locals). `slots`
        // is at most BATCH, the length of `headers`. A null timeout means none;
        // MSG_DONTWAIT keeps the call from blocking whatever the socket's mode.
        let received = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                slots as libc::c_uint,
                libc::MSG_DONTWAIT as _,
                ptr::null_mut(),
            )
        };
        let Ok(received) = usize::try_from(received) else {
            return Err(io::Error::last_os_error());
        };
        let received = received.min(slots);
        for (index, header) in headers.iter().enumerate().take(received) {
            self.lengths[index] = header.msg_len as usize;
            self.name_lengths[index] = header.msg_hdr.msg_namelen;
            self.truncated[index] = header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        self.count = received;
        Ok(received)
    }
}

/// One answer waiting in a [`SendBatch`]: `data[start..end]` to `dest`.
#[derive(Debug, Clone, Copy)]
struct Outgoing {
    start: usize,
    end: usize,
    dest: SocketAddr,
}

/// Datagrams to send, their bytes in one buffer. Fill it with [`SendBatch::buffer`] and
/// [`SendBatch::commit`], empty it with [`SendBatch::send`].
#[derive(Debug, Default)]
pub(crate) struct SendBatch {
    data: Vec<u8>,
    items: Vec<Outgoing>,
    /// The first item not yet sent (or skipped).
    next: usize,
}

impl SendBatch {
    /// The buffer to append one datagram's bytes to; [`SendBatch::commit`] makes what
    /// was appended since `start` (the length before) one datagram.
    pub(crate) fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    /// Makes the bytes appended since the buffer was `start` long a datagram to `dest`.
    /// Nothing appended, nothing sent.
    pub(crate) fn commit(&mut self, start: usize, dest: SocketAddr) {
        let end = self.data.len();
        if start < end {
            self.items.push(Outgoing { start, end, dest });
        }
    }

    /// Forgets bytes appended since the buffer was `start` long, left uncommitted.
    pub(crate) fn discard(&mut self, start: usize) {
        self.data
            .truncate(start.max(self.items.last().map_or(0, |i| i.end)));
    }

    /// Whether every datagram committed has been sent (or skipped).
    pub(crate) fn is_done(&self) -> bool {
        self.next >= self.items.len()
    }

    /// Datagrams committed and not yet sent.
    pub(crate) fn pending(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.items
            .get(self.next..)
            .unwrap_or_default()
            .iter()
            .filter_map(|item| Some((self.data.get(item.start..item.end)?, item.dest)))
    }

    /// Empties the batch for the next round.
    pub(crate) fn clear(&mut self) {
        self.data.clear();
        self.items.clear();
        self.next = 0;
    }

    /// Marks the next `count` datagrams sent.
    fn advance(&mut self, count: usize) {
        self.next = (self.next + count).min(self.items.len());
    }

    /// Sends what is pending on `fd` with `sendmmsg`, [`BATCH`] at a time, until all is
    /// sent: `Ok(())`; or the socket cannot take more now: `WouldBlock`, with what was
    /// sent remembered; or the call does not exist: [`unsupported`]. A datagram the
    /// system refuses (an address it cannot reach, say) is logged and skipped, as a
    /// failed `send_to` would be.
    pub(crate) fn send(&mut self, fd: RawFd) -> io::Result<()> {
        self.send_using(|headers| {
            // SAFETY: `headers` come from `send_using`, each pointing at one live `iovec`
            // over bytes of `self.data` and one live, initialised `sockaddr_storage`
            // with `msg_namelen` its valid length; the kernel only reads them.
            // MSG_DONTWAIT keeps the call from blocking whatever the socket's mode.
            let sent = unsafe {
                libc::sendmmsg(
                    fd,
                    headers.as_mut_ptr(),
                    headers.len() as libc::c_uint,
                    libc::MSG_DONTWAIT as _,
                )
            };
            usize::try_from(sent).map_err(|_| io::Error::last_os_error())
        })
    }

    /// [`SendBatch::send`] with the system call given: `call` gets the headers of up to
    /// [`BATCH`] pending datagrams and says how many of the first it sent, or fails for
    /// the first. (Tests give it partial sends, `EAGAIN` and refusals.)
    fn send_using(
        &mut self,
        mut call: impl FnMut(&mut [libc::mmsghdr]) -> io::Result<usize>,
    ) -> io::Result<()> {
        while !self.is_done() {
            let pending = self.items.get(self.next..).unwrap_or_default();
            let count = pending.len().min(BATCH);
            // SAFETY: plain data; all zero bytes is a valid value.
            let mut names = [unsafe { std::mem::zeroed::<libc::sockaddr_storage>() }; BATCH];
            let mut iovecs = [libc::iovec {
                iov_base: ptr::null_mut(),
                iov_len: 0,
            }; BATCH];
            // SAFETY: plain data; all zero bytes is a valid value.
            let mut headers = [unsafe { std::mem::zeroed::<libc::mmsghdr>() }; BATCH];
            for (index, item) in pending.iter().take(count).enumerate() {
                let (Some(name), Some(iovec), Some(header), Some(bytes)) = (
                    names.get_mut(index),
                    iovecs.get_mut(index),
                    headers.get_mut(index),
                    self.data.get(item.start..item.end),
                ) else {
                    break;
                };
                let name_length = to_raw(item.dest, name);
                *iovec = libc::iovec {
                    // The kernel only reads from it (`sendmmsg`).
                    iov_base: bytes.as_ptr().cast_mut().cast(),
                    iov_len: bytes.len(),
                };
                header.msg_hdr.msg_name = ptr::from_mut(name).cast();
                header.msg_hdr.msg_namelen = name_length;
                header.msg_hdr.msg_iov = ptr::from_mut(iovec);
                header.msg_hdr.msg_iovlen = 1;
            }
            let Some(headers) = headers.get_mut(..count) else {
                return Ok(());
            };
            match call(headers) {
                Ok(0) => {
                    // Nothing sent and no error: do not spin on it.
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(sent) => self.advance(sent.min(count)),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Err(error),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if unsupported(&error) => return Err(error),
                Err(error) => {
                    if let Some(item) = self.items.get(self.next) {
                        tracing::debug!(dest = %item.dest, %error, "DNS UDP send failed");
                    }
                    self.advance(1);
                }
            }
        }
        Ok(())
    }
}

/// Whether `error` says the batch calls do not exist here (`ENOSYS`).
pub(crate) fn unsupported(error: &io::Error) -> bool {
    error.raw_os_error() == Some(libc::ENOSYS)
}

const STORAGE_LEN: libc::socklen_t = size_of::<libc::sockaddr_storage>() as libc::socklen_t;

/// The address in `storage` (`length` bytes of it valid), when IPv4 or IPv6.
fn from_raw(storage: &libc::sockaddr_storage, length: libc::socklen_t) -> Option<SocketAddr> {
    let length = length as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if length >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: `sockaddr_storage` is as large and as aligned as every socket
            // address type, and the family says the kernel wrote a `sockaddr_in`
            // (of `length` bytes, checked); it is plain data.
            let raw = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(raw.sin_addr.s_addr)),
                u16::from_be(raw.sin_port),
            )))
        }
        libc::AF_INET6 if length >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for a `sockaddr_in6`.
            let raw = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(raw.sin6_addr.s6_addr),
                u16::from_be(raw.sin6_port),
                raw.sin6_flowinfo,
                raw.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Writes `addr` into `storage` as the kernel reads it; its length.
fn to_raw(addr: SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(v4) => {
            let raw = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `sockaddr_storage` is as large and as aligned as a `sockaddr_in`;
            // writing plain data through the exclusive reference's pointer.
            unsafe {
                ptr::from_mut(storage)
                    .cast::<libc::sockaddr_in>()
                    .write(raw)
            };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(v6) => {
            let raw = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: as above, for a `sockaddr_in6`.
            unsafe {
                ptr::from_mut(storage)
                    .cast::<libc::sockaddr_in6>()
                    .write(raw)
            };
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // A test that unwraps fails where the assumption broke.

    use super::*;
    use proptest::prelude::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    fn bound(addr: &str) -> Option<UdpSocket> {
        let socket = UdpSocket::bind(addr).ok()?;
        socket.set_nonblocking(true).unwrap();
        Some(socket)
    }

    /// Receives until `want` datagrams came or a second passed; loopback delivery is
    /// synchronous, so this rarely loops.
    fn recv_all(
        batch: &mut RecvBatch,
        socket: &UdpSocket,
        want: usize,
    ) -> Vec<(Vec<u8>, SocketAddr, bool)> {
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(1);
        while out.len() < want && Instant::now() < deadline {
            match batch.recv(socket.as_raw_fd()) {
                Ok(n) => {
                    assert!((1..=BATCH).contains(&n));
                    for i in 0..n {
                        let d = batch.get(i).unwrap();
                        out.push((d.data.to_vec(), d.src.unwrap(), d.truncated));
                    }
                    assert!(batch.get(n).is_none());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("{e}"),
            }
        }
        out
    }

    #[test]
    fn a_batch_takes_at_most_its_size_then_would_block() {
        let server = bound("127.0.0.1:0").unwrap();
        let client = bound("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        for i in 0..40u8 {
            client.send_to(&[i; 3], to).unwrap();
        }
        let mut batch = RecvBatch::new(BATCH, 512);
        assert_eq!(batch.recv(server.as_raw_fd()).unwrap(), BATCH);
        assert_eq!(batch.len(), BATCH);
        let first = batch.get(0).unwrap();
        assert_eq!(first.data, &[0, 0, 0]);
        assert_eq!(first.src, Some(client.local_addr().unwrap()));
        assert!(!first.truncated);
        assert_eq!(batch.recv(server.as_raw_fd()).unwrap(), 8);
        assert_eq!(batch.get(7).unwrap().data, &[39, 39, 39]);
        let error = batch.recv(server.as_raw_fd()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(batch.len(), 0);
        assert!(batch.get(0).is_none());
    }

    #[test]
    fn a_datagram_longer_than_its_slot_is_marked_truncated() {
        let server = bound("127.0.0.1:0").unwrap();
        let client = bound("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        client.send_to(&[7; 100], to).unwrap();
        client.send_to(&[8; 16], to).unwrap();
        client.send_to(&[], to).unwrap();
        let mut batch = RecvBatch::new(4, 16);
        let got = recv_all(&mut batch, &server, 3);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0, vec![7; 16]);
        assert!(got[0].2, "cut to its slot, and said so");
        assert_eq!(got[1].0, vec![8; 16]);
        assert!(!got[1].2, "exactly a slot is whole");
        assert!(got[2].0.is_empty());
        assert!(!got[2].2);
    }

    #[test]
    fn a_dual_stack_socket_takes_and_answers_both_families() {
        // Not every machine has IPv6 loopback; without it there is nothing to test.
        let Some(server) = bound("[::]:0") else {
            return;
        };
        let Some(v6) = bound("[::1]:0") else {
            return;
        };
        let port = server.local_addr().unwrap().port();
        let v4 = bound("127.0.0.1:0").unwrap();
        // A v6-only socket on this system would refuse the v4 datagram: skip then.
        if v4.send_to(b"four", (Ipv4Addr::LOCALHOST, port)).is_err() {
            return;
        }
        v6.send_to(b"six", (Ipv6Addr::LOCALHOST, port)).unwrap();
        let mut batch = RecvBatch::new(BATCH, 512);
        let mut got = recv_all(&mut batch, &server, 2);
        if got.len() < 2 {
            return; // IPV6_V6ONLY set system-wide: the v4 datagram never arrives.
        }
        got.sort();
        let mapped = v4.local_addr().unwrap();
        let SocketAddr::V6(from_v4) = got[0].1 else {
            panic!("a v6 socket reports v6 addresses: {:?}", got[0].1);
        };
        assert_eq!(from_v4.ip().to_ipv4_mapped(), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(from_v4.port(), mapped.port());
        assert_eq!(got[1].1, v6.local_addr().unwrap());

        let mut out = SendBatch::default();
        for (data, src, _) in &got {
            let start = out.buffer().len();
            out.buffer().extend_from_slice(b"re:");
            out.buffer().extend_from_slice(data);
            out.commit(start, *src);
        }
        out.send(server.as_raw_fd()).unwrap();
        assert!(out.is_done());
        let mut buffer = [0u8; 64];
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut answered = Vec::new();
        while answered.len() < 2 && Instant::now() < deadline {
            for socket in [&v4, &v6] {
                if let Ok((n, from)) = socket.recv_from(&mut buffer) {
                    assert_eq!(from.port(), port);
                    answered.push(buffer[..n].to_vec());
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        answered.sort();
        assert_eq!(answered, vec![b"re:four".to_vec(), b"re:six".to_vec()]);
    }

    #[test]
    fn a_refused_datagram_is_skipped_and_the_rest_still_go() {
        let server = bound("127.0.0.1:0").unwrap();
        let client = bound("127.0.0.1:0").unwrap();
        let good = client.local_addr().unwrap();
        // Port 0 cannot be sent to: the kernel refuses that one datagram (EINVAL).
        let bad: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut out = SendBatch::default();
        for (i, dest) in [good, bad, good, bad, bad, good].into_iter().enumerate() {
            let start = out.buffer().len();
            out.buffer().push(u8::try_from(i).unwrap());
            out.commit(start, dest);
        }
        out.send(server.as_raw_fd()).unwrap();
        assert!(out.is_done());
        let mut batch = RecvBatch::new(BATCH, 64);
        let got: Vec<u8> = recv_all(&mut batch, &client, 3)
            .into_iter()
            .map(|(d, _, _)| d[0])
            .collect();
        assert_eq!(got, vec![0, 2, 5]);
    }

    #[test]
    fn nothing_committed_sends_nothing() {
        let mut out = SendBatch::default();
        let start = out.buffer().len();
        out.commit(start, "127.0.0.1:1".parse().unwrap());
        assert!(out.is_done());
        out.buffer().extend_from_slice(b"half an answer");
        out.discard(start);
        assert!(out.buffer().is_empty());
        let mut calls = 0;
        out.send_using(|_| {
            calls += 1;
            Ok(0)
        })
        .unwrap();
        assert_eq!(calls, 0);
    }

    #[test]
    fn addresses_survive_the_round_trip_through_the_kernel_form() {
        for text in [
            "127.0.0.1:53",
            "10.1.2.3:65535",
            "[::1]:5353",
            "[::ffff:127.0.0.1]:1",
            "[fe80::1%7]:53",
        ] {
            let addr: SocketAddr = text.parse().unwrap();
            // SAFETY: plain data; all zero bytes is a valid value.
            let mut storage = unsafe { std::mem::zeroed::<libc::sockaddr_storage>() };
            let length = to_raw(addr, &mut storage);
            assert_eq!(from_raw(&storage, length), Some(addr), "{text}");
            assert_eq!(from_raw(&storage, length - 1), None, "{text}: short");
        }
        // SAFETY: plain data; all zero bytes is a valid value.
        let unspecified = unsafe { std::mem::zeroed::<libc::sockaddr_storage>() };
        assert_eq!(from_raw(&unspecified, STORAGE_LEN), None);
    }

    /// What a fake `sendmmsg` does on one call.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// Sends this many of the first (capped at what was offered).
        Send(usize),
        /// EAGAIN.
        Full,
        /// Refuses the first datagram.
        Refuse,
        /// EINTR.
        Interrupted,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (1usize..40).prop_map(Step::Send),
            1 => Just(Step::Full),
            1 => Just(Step::Refuse),
            1 => Just(Step::Interrupted),
        ]
    }

    /// The datagram index (its port less 1000) and bytes a header offers.
    fn read_header(header: &libc::mmsghdr) -> (usize, &[u8]) {
        // SAFETY: `send_using` made the header point at a live `sockaddr_storage` and a
        // live `iovec` over bytes of the batch, which outlive the call.
        let (name, iovec) = unsafe {
            (
                &*header.msg_hdr.msg_name.cast::<libc::sockaddr_storage>(),
                &*header.msg_hdr.msg_iov,
            )
        };
        let dest = from_raw(name, header.msg_hdr.msg_namelen).unwrap();
        // SAFETY: as above: the iovec spans bytes of the batch's buffer.
        let bytes =
            unsafe { std::slice::from_raw_parts(iovec.iov_base.cast::<u8>(), iovec.iov_len) };
        (usize::from(dest.port() - 1000), bytes)
    }

    proptest! {
        /// However the kernel splits, refuses or stalls a batch, every datagram is
        /// offered in order, each is either sent once or skipped once (when refused), and
        /// each header carries exactly its bytes and its address.
        #[test]
        fn every_datagram_is_sent_once_in_order_whatever_the_kernel_does(
            lengths in proptest::collection::vec(1usize..40, 0..100),
            steps in proptest::collection::vec(step(), 1..60),
        ) {
            let mut out = SendBatch::default();
            for (i, length) in lengths.iter().enumerate() {
                let start = out.buffer().len();
                out.buffer().extend(std::iter::repeat_n(i as u8, *length));
                let port = u16::try_from(1000 + i).unwrap();
                out.commit(start, SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
            }
            let mut delivered: Vec<usize> = Vec::new();
            let mut skipped: Vec<usize> = Vec::new();
            let mut problems: Vec<String> = Vec::new();
            let mut steps = steps.into_iter().chain(std::iter::repeat(Step::Send(BATCH)));
            let mut rounds = 0;
            while !out.is_done() {
                rounds += 1;
                prop_assert!(rounds < 10_000, "no progress");
                let _ = out.send_using(|headers| {
                    if headers.is_empty() || headers.len() > BATCH {
                        problems.push(format!("{} headers offered", headers.len()));
                    }
                    let mut offered = Vec::new();
                    for header in headers.iter() {
                        let (index, bytes) = read_header(header);
                        if bytes.len() != lengths[index] || bytes.iter().any(|b| *b != index as u8) {
                            problems.push(format!("datagram {index} carries {bytes:?}"));
                        }
                        offered.push(index);
                    }
                    match steps.next().unwrap() {
                        Step::Send(n) => {
                            let n = n.min(headers.len());
                            delivered.extend(&offered[..n]);
                            Ok(n)
                        }
                        Step::Full => Err(io::ErrorKind::WouldBlock.into()),
                        Step::Refuse => {
                            skipped.push(offered[0]);
                            Err(io::Error::from_raw_os_error(libc::EINVAL))
                        }
                        Step::Interrupted => Err(io::Error::from_raw_os_error(libc::EINTR)),
                    }
                });
            }
            prop_assert!(problems.is_empty(), "{:?}", problems);
            let mut all: Vec<usize> = delivered.iter().chain(&skipped).copied().collect();
            all.sort_unstable();
            prop_assert_eq!(all, (0..lengths.len()).collect::<Vec<_>>());
            prop_assert!(delivered.windows(2).all(|w| w[0] < w[1]), "in order");
            prop_assert_eq!(out.pending().count(), 0);
        }
    }
}
