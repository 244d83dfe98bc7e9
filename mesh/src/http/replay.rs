//! Keeping a request body so a request can be tried again. A body that is small and
//! complete when the request arrives (none, or a `content-length` of at most
//! [`MAX_REPLAY`]) is read whole first. Any other body is forwarded as it arrives, with
//! no wait, and a copy of what passes is kept while it stays within [`MAX_REPLAY`]
//! ([`Capture`]). When a try fails, the next one sends the copy — and, if the failed
//! try stopped reading before the client's body ended (an endpoint that answered
//! without reading it), the rest of the client's body after it. A unary gRPC call
//! (one message, no `content-length`) is the case this is for. A body that passed the
//! limit goes once.
//!
//! It reads the client's body; it sends nothing.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::sync::Notify;

use super::pool::{Body, BoxError};

/// The largest request body kept so a request can be tried again.
pub const MAX_REPLAY: u64 = 64 * 1024;

/// How long a retry waits for the failed try to let go of the client's body.
pub const RELEASE_WAIT: Duration = Duration::from_millis(50);

/// The client's body as hyper hands it over (any body, for tests).
pub trait ClientBody:
    HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + std::fmt::Debug + 'static
{
}

impl<B> ClientBody for B where
    B: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + std::fmt::Debug + 'static
{
}

/// A request body, as the tries send it.
#[derive(Debug)]
pub enum Pending<B = Incoming> {
    /// Read whole: sent as often as needed.
    Whole(Bytes),
    /// Forwarded as it arrives, with a copy kept while it is small.
    Streaming {
        /// The body, until the first try takes it.
        body: Option<Body>,
        /// What went out so far, and the rest when a try let go of it.
        capture: Arc<Shared<B>>,
    },
}

/// The copy of a streamed body and what is left of it.
#[derive(Debug)]
pub struct Capture<B> {
    data: BytesMut,
    ended: bool,
    given_up: bool,
    rest: Option<B>,
    /// A try is reading the body now.
    taken: bool,
    /// A frame of the client's body was read (before it, giving up loses nothing).
    read_any: bool,
}

/// A [`Capture`], a signal when a try lets go of it, and which try may read it.
#[derive(Debug)]
pub struct Shared<B> {
    state: Mutex<Capture<B>>,
    released: Notify,
    /// Bumped when the request moves on to another try: an older try's body then
    /// fails, so its connection lets go of the client's body at once.
    generation: AtomicU64,
}

impl<B: ClientBody> Pending<B> {
    /// `body` as the tries will send it; `keep` says whether a copy could be of use.
    pub async fn new(body: B, keep: bool) -> Result<Self, BoxError> {
        if body.is_end_stream() {
            return Ok(Pending::Whole(Bytes::new()));
        }
        if keep
            && body
                .size_hint()
                .exact()
                .is_some_and(|len| len <= MAX_REPLAY)
        {
            let collected = body.collect().await.map_err(Into::into)?;
            return Ok(Pending::Whole(collected.to_bytes()));
        }
        let capture = Arc::new(Shared {
            state: Mutex::new(Capture {
                data: BytesMut::new(),
                ended: false,
                given_up: !keep,
                rest: None,
                taken: true,
                read_any: false,
            }),
            released: Notify::new(),
            generation: AtomicU64::new(0),
        });
        let body = Teed {
            prefix: None,
            inner: Some(body),
            capture: Arc::clone(&capture),
            generation: 0,
        }
        .boxed_unsync();
        Ok(Pending::Streaming {
            body: Some(body),
            capture,
        })
    }

    /// The body for the next try: the client's body the first time; then the copy,
    /// followed by the rest of the client's body if a try let go of it early.
    pub fn take(&mut self) -> Option<Body> {
        let bytes = match self {
            Pending::Whole(bytes) => bytes.clone(),
            Pending::Streaming { body, capture } => {
                if let Some(body) = body.take() {
                    return Some(body);
                }
                let mut state = capture.state.lock().ok()?;
                if state.ended && !state.given_up {
                    // All of it went out and was copied: the copy will do, whoever still
                    // holds the client's (finished) body.
                    Bytes::copy_from_slice(&state.data)
                } else if state.taken || (state.given_up && state.read_any) {
                    return None;
                } else {
                    let rest = state.rest.take()?;
                    state.taken = true;
                    let prefix = Bytes::copy_from_slice(&state.data);
                    return Some(
                        Teed {
                            prefix: Some(prefix),
                            inner: Some(rest),
                            capture: Arc::clone(capture),
                            generation: capture.generation.load(Ordering::Acquire),
                        }
                        .boxed_unsync(),
                    );
                }
            }
        };
        Some(
            Full::new(bytes)
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
    }

    /// The request moves on to another try: the try before lets go of the client's
    /// body (its reads fail from now on, which closes its connection or resets its
    /// stream), so the next can resume it.
    pub fn abandon_try(&self) {
        // A body no try took yet belongs to the next try as it is.
        if let Pending::Streaming {
            body: None,
            capture,
        } = self
        {
            capture.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Whether another try can send the body again (see [`Resend::ready`]).
    pub fn resend(&self) -> Resend<B> {
        match self {
            Pending::Whole(_) => Resend(None),
            // No try took it yet (a failed connect sends nothing).
            Pending::Streaming { body: Some(_), .. } => Resend(None),
            Pending::Streaming { capture, .. } => Resend(Some(Arc::clone(capture))),
        }
    }
}

/// The answer of [`Pending::resend`].
#[derive(Debug)]
pub struct Resend<B>(Option<Arc<Shared<B>>>);

impl<B> Resend<B> {
    /// Yes for a whole body or one no try took; for a streamed one, when its copy is
    /// complete or can be resumed — waiting up to [`RELEASE_WAIT`] for the failed try
    /// to let go of it.
    pub async fn ready(self) -> bool {
        let Some(capture) = self.0 else {
            return true;
        };
        let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
        loop {
            let released = capture.released.notified();
            {
                let Ok(state) = capture.state.lock() else {
                    return false;
                };
                if state.ended && !state.given_up {
                    return true;
                }
                if state.given_up && state.read_any {
                    return false;
                }
                if !state.taken && state.rest.is_some() {
                    return true;
                }
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return false;
            }
        }
    }
}

/// A body that keeps a copy of what passes while it is small, and hands the client's
/// body back when dropped before its end.
#[derive(Debug)]
struct Teed<B> {
    /// Bytes already copied, sent first (a resumed body).
    prefix: Option<Bytes>,
    inner: Option<B>,
    capture: Arc<Shared<B>>,
    /// The try this body belongs to (see [`Shared::generation`]).
    generation: u64,
}

impl<B: ClientBody> HttpBody for Teed<B> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.capture.generation.load(Ordering::Acquire) != self.generation {
            return Poll::Ready(Some(Err("the request moved on to another try".into())));
        }
        if let Some(prefix) = self.prefix.take()
            && !prefix.is_empty()
        {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(&mut *inner).poll_frame(cx);
        let ended = inner.is_end_stream();
        if let Ok(mut capture) = self.capture.state.lock() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    capture.read_any = true;
                    if !capture.given_up {
                        match frame.data_ref() {
                            Some(data)
                                if (capture.data.len() + data.len()) as u64 <= MAX_REPLAY =>
                            {
                                capture.data.extend_from_slice(data);
                            }
                            // Too large, or trailers (which a copy cannot carry).
                            _ => {
                                capture.given_up = true;
                                capture.data = BytesMut::new();
                            }
                        }
                    }
                    capture.ended |= ended;
                }
                Poll::Ready(None) => capture.ended = true,
                Poll::Ready(Some(Err(_))) => capture.given_up = true,
                Poll::Pending => {}
            }
        }
        polled.map(|frame| frame.map(|f| f.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.as_ref().is_none_or(Bytes::is_empty)
            && self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let prefix = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let mut hint = SizeHint::new();
        match &self.inner {
            Some(inner) => {
                let rest = inner.size_hint();
                hint.set_lower(rest.lower().saturating_add(prefix));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(prefix));
                }
            }
            None => hint.set_exact(prefix),
        }
        hint
    }
}

impl<B> Drop for Teed<B> {
    fn drop(&mut self) {
        if let Ok(mut capture) = self.capture.state.lock() {
            capture.taken = false;
            // Handed back when a later try can use it: the copy is whole so far, or
            // nothing was read yet.
            if !capture.ended && (!capture.given_up || !capture.read_any) {
                capture.rest = self.inner.take();
            }
        }
        self.capture.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::channel::Channel;

    async fn read_all(body: Body) -> Vec<u8> {
        body.collect().await.unwrap().to_bytes().to_vec()
    }

    fn data(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    #[tokio::test]
    async fn a_small_body_with_a_length_is_read_whole_and_sent_every_time() {
        let mut pending = Pending::new(Full::new(data("hello")), true).await.unwrap();
        assert!(matches!(pending, Pending::Whole(_)));
        assert_eq!(read_all(pending.take().unwrap()).await, b"hello");
        assert!(pending.resend().ready().await);
        assert_eq!(read_all(pending.take().unwrap()).await, b"hello");
    }

    #[tokio::test]
    async fn a_streamed_body_that_went_out_whole_is_sent_again_from_its_copy() {
        let (mut tx, rx) = Channel::<Bytes>::new(4);
        let mut pending = Pending::new(rx, true).await.unwrap();
        let first = pending.take().unwrap();
        tx.send_data(data("hello ")).await.unwrap();
        tx.send_data(data("world")).await.unwrap();
        drop(tx);
        assert_eq!(read_all(first).await, b"hello world");
        assert!(pending.resend().ready().await);
        assert_eq!(read_all(pending.take().unwrap()).await, b"hello world");
    }

    #[tokio::test]
    async fn a_try_that_let_go_early_is_resumed_by_the_next_without_a_byte_lost() {
        let (mut tx, rx) = Channel::<Bytes>::new(4);
        let mut pending = Pending::new(rx, true).await.unwrap();
        let mut first = pending.take().unwrap();
        tx.send_data(data("abc")).await.unwrap();
        let frame = first.frame().await.unwrap().unwrap();
        assert_eq!(frame.data_ref().unwrap(), &data("abc"));
        drop(first);
        assert!(pending.resend().ready().await);
        let second = pending.take().unwrap();
        assert!(
            pending.take().is_none(),
            "one try at a time reads the client's body"
        );
        tx.send_data(data("def")).await.unwrap();
        drop(tx);
        assert_eq!(read_all(second).await, b"abcdef");
    }

    #[tokio::test]
    async fn an_abandoned_try_fails_its_reads_and_hands_the_body_over() {
        let (mut tx, rx) = Channel::<Bytes>::new(4);
        let mut pending = Pending::new(rx, true).await.unwrap();
        let mut first = pending.take().unwrap();
        tx.send_data(data("abc")).await.unwrap();
        assert!(first.frame().await.unwrap().is_ok());
        pending.abandon_try();
        assert!(
            first.frame().await.unwrap().is_err(),
            "the old try's reads fail"
        );
        drop(first);
        assert!(pending.resend().ready().await);
        let second = pending.take().unwrap();
        tx.send_data(data("def")).await.unwrap();
        drop(tx);
        assert_eq!(read_all(second).await, b"abcdef");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_goes_once() {
        let (mut tx, rx) = Channel::<Bytes>::new(4);
        let mut pending = Pending::new(rx, true).await.unwrap();
        let first = pending.take().unwrap();
        let chunk = Bytes::from(vec![7u8; 16 * 1024]);
        let sender = tokio::spawn(async move {
            for _ in 0..5 {
                tx.send_data(chunk.clone()).await.unwrap();
            }
        });
        assert_eq!(read_all(first).await.len(), 80 * 1024);
        sender.await.unwrap();
        assert!(!pending.resend().ready().await);
        assert!(pending.take().is_none());
    }

    #[tokio::test]
    async fn without_a_copy_only_a_body_nobody_read_is_handed_back() {
        let (mut tx, rx) = Channel::<Bytes>::new(4);
        let mut pending = Pending::new(rx, false).await.unwrap();
        // Taken and dropped unread (a request never sent): the next try gets it all.
        drop(pending.take().unwrap());
        assert!(pending.resend().ready().await);
        let mut second = pending.take().unwrap();
        tx.send_data(data("abc")).await.unwrap();
        assert!(second.frame().await.unwrap().is_ok());
        // Read from and dropped: without a copy, it cannot be sent again.
        drop(second);
        assert!(!pending.resend().ready().await);
        assert!(pending.take().is_none());
    }

    #[tokio::test]
    async fn a_body_no_try_took_needs_no_wait() {
        let (_tx, rx) = Channel::<Bytes>::new(1);
        let pending = Pending::new(rx, true).await.unwrap();
        pending.abandon_try();
        assert!(pending.resend().ready().await);
    }

    proptest::proptest! {
        /// However the client's body is chunked and wherever the first try lets go of
        /// it (dropped, or abandoned), the next try sends exactly the client's bytes.
        #[test]
        fn a_resumed_body_is_the_clients_body(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 1..2048), 1..24),
            read_first in 0usize..24,
            abandon in proptest::prelude::any::<bool>(),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let expected: Vec<u8> = chunks.concat();
                let (mut tx, rx) = Channel::<Bytes>::new(chunks.len() + 1);
                for chunk in &chunks {
                    tx.send_data(Bytes::from(chunk.clone())).await.unwrap();
                }
                drop(tx);
                let mut pending = Pending::new(rx, true).await.unwrap();
                let mut first = pending.take().unwrap();
                for _ in 0..read_first.min(chunks.len()) {
                    first.frame().await.unwrap().unwrap();
                }
                if abandon {
                    pending.abandon_try();
                }
                drop(first);
                assert!(pending.resend().ready().await);
                let second = pending.take().unwrap();
                assert_eq!(read_all(second).await, expected);
                // And once more, from the copy or the resumed body.
                assert!(pending.resend().ready().await);
                assert_eq!(read_all(pending.take().unwrap()).await, expected);
            });
        }
    }
}
