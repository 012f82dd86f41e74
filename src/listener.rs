//! The guard in front of the bot's HTTP listeners (callbacks, operations): strangers cannot sit
//! on connections. At most `max` connections are open at once (more wait in the kernel's backlog
//! until one closes, so a flood cannot use up the process's file descriptors), and each is closed
//! `lifetime` after it was accepted, whatever it is doing, so a client that trickles its request
//! in (or never sends one) lets go of its place.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Sleep,
};
use tracing::warn;

/// A TCP listener that keeps at most `max` connections open (more wait in the kernel's backlog
/// until one closes) and closes each connection `lifetime` after it was accepted.
pub struct GuardedListener {
    inner: TcpListener,
    /// Which listener, for logs.
    name: &'static str,
    open: Arc<Semaphore>,
    lifetime: Duration,
}

impl GuardedListener {
    pub fn new(inner: TcpListener, name: &'static str, max: usize, lifetime: Duration) -> Self {
        GuardedListener { inner, name, open: Arc::new(Semaphore::new(max)), lifetime }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let permit = self.open.clone().acquire_owned().await.expect("the semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    // Answers go out at once, not held back by Nagle's algorithm until the
                    // client acknowledges the previous segment (up to its delayed-ACK timer).
                    if let Err(e) = stream.set_nodelay(true) {
                        warn!(listener = self.name, error = %e, "could not set TCP_NODELAY");
                    }
                    let deadline = Box::pin(tokio::time::sleep(self.lifetime));
                    return (GuardedStream { stream, deadline, _permit: permit }, addr);
                }
                Err(e) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    warn!(listener = self.name, error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection that fails every read and write once its deadline has passed, and frees its
/// place when dropped.
pub struct GuardedStream {
    stream: TcpStream,
    deadline: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl GuardedStream {
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn expired_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "connection lifetime exceeded")
}

impl AsyncRead for GuardedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Err(expired_error()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(expired_error()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(expired_error()));
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
