//! A response body that knows when it has been read to its end: the HTTP/1.1
//! connection it came on goes back to the pool then, and the endpoint stops counting
//! the request as in flight. Dropped before its end, the connection is closed instead
//! (hyper cannot reuse a connection with half a response on it).
//!
//! It wraps bodies; it opens nothing.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::pool::{Body, BoxError, Release};
use crate::balance::Pick;

/// What is held until a response ends.
#[derive(Debug, Default)]
pub struct Held {
    /// The connection to hand back.
    pub release: Option<Release>,
    /// The endpoint's in-flight count (and latency record).
    pub pick: Option<Pick>,
}

/// A body with something to release at its end.
#[derive(Debug)]
pub struct Tracked {
    inner: Body,
    held: Option<Held>,
}

impl Tracked {
    /// Wraps `inner`; `held` is released when it ends.
    pub fn new(inner: Body, held: Held) -> Self {
        let mut tracked = Self {
            inner,
            held: Some(held),
        };
        if tracked.inner.is_end_stream() {
            tracked.finish();
        }
        tracked
    }

    fn finish(&mut self) {
        if let Some(held) = self.held.take()
            && let Some(release) = held.release
        {
            release.release();
        }
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.finish(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.finish(),
            // An error leaves the connection unusable: drop it with what it held.
            Poll::Ready(Some(Err(_))) => self.held = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn a_whole_body_passes_through_unchanged() {
        let inner: Body = Full::new(Bytes::from_static(b"hello"))
            .map_err(|never| match never {})
            .boxed_unsync();
        let body = Tracked::new(inner, Held::default());
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"hello");
    }
}
