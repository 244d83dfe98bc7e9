//! Carrying bytes both ways between a client and its endpoint: half-closes passed on,
//! back-pressure kept (one reused buffer per direction, writes awaited), and the plan's
//! idle timeout enforced — a connection with no bytes either way for that long is
//! closed.
//!
//! Activity is seen on the client's side only: bytes read from it (client → endpoint)
//! and bytes written to it (endpoint → client) are all the bytes there are.
//!
//! It copies; it does not resolve, balance, or count anything but bytes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Milliseconds since `start` of the last byte, shared by the wrapper and the watchdog.
#[derive(Debug)]
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// A stream that notes when bytes pass.
struct Tracked<'a, S> {
    inner: &'a mut S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut *self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut *self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled
            && *n > 0
        {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

/// How a carried connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Both sides finished; bytes client → endpoint and endpoint → client.
    Done {
        /// Client to endpoint.
        sent: u64,
        /// Endpoint to client.
        received: u64,
    },
    /// Nothing passed either way for the idle timeout.
    Idle,
}

/// Copies both ways until both directions are done, or until nothing has passed for
/// `idle` (`None`: no limit). `buffer` bytes per direction, allocated once.
pub async fn carry<C, U>(
    client: &mut C,
    upstream: &mut U,
    buffer: usize,
    idle: Option<Duration>,
) -> io::Result<Ended>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let Some(idle) = idle else {
        let (sent, received) =
            tokio::io::copy_bidirectional_with_sizes(client, upstream, buffer, buffer).await?;
        return Ok(Ended::Done { sent, received });
    };
    let activity = Arc::new(Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    });
    let mut tracked = Tracked {
        inner: client,
        activity: Arc::clone(&activity),
    };
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut tracked, upstream, buffer, buffer);
    let watchdog = async {
        loop {
            let quiet = activity.idle_for();
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    };
    tokio::select! {
        copied = copy => {
            let (sent, received) = copied?;
            Ok(Ended::Done { sent, received })
        }
        () = watchdog => Ok(Ended::Idle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_quiet_connection_is_closed_and_a_busy_one_is_not() {
        let (mut client, mut client_far) = tokio::io::duplex(1024);
        let (mut upstream, mut upstream_far) = tokio::io::duplex(1024);
        let carrying = tokio::spawn(async move {
            carry(
                &mut client,
                &mut upstream,
                1024,
                Some(Duration::from_millis(150)),
            )
            .await
        });
        // Busy for longer than the idle timeout: bytes every 50 ms keep it open.
        for _ in 0..6 {
            client_far.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            upstream_far.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!carrying.is_finished(), "closed while busy");
        // Then quiet: closed within about the timeout.
        let ended = tokio::time::timeout(Duration::from_secs(2), carrying)
            .await
            .expect("closed when idle")
            .unwrap()
            .unwrap();
        assert_eq!(ended, Ended::Idle);
    }

    #[tokio::test]
    async fn without_a_limit_both_half_closes_pass() {
        let (mut client, mut client_far) = tokio::io::duplex(1024);
        let (mut upstream, mut upstream_far) = tokio::io::duplex(1024);
        let carrying =
            tokio::spawn(async move { carry(&mut client, &mut upstream, 1024, None).await });
        client_far.write_all(b"abc").await.unwrap();
        client_far.shutdown().await.unwrap();
        let mut got = Vec::new();
        upstream_far.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"abc");
        upstream_far.write_all(b"de").await.unwrap();
        upstream_far.shutdown().await.unwrap();
        let mut back = Vec::new();
        client_far.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"de");
        let ended = carrying.await.unwrap().unwrap();
        assert_eq!(
            ended,
            Ended::Done {
                sent: 3,
                received: 2
            }
        );
    }
}
