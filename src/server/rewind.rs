//! `Rewind`: a connection's I/O with bytes already read put back in front of it, so the
//! connection can change hands between reads: from the protocol sniff to hyper, from one
//! hyper HTTP/1.1 connection to the next after an idle spell (see `Connections`), and to
//! an upgrade's tunnel (`ClientUpgrade`).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

use super::guard::PREFACE;

/// What a connection's first bytes say it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Anything that is not the HTTP/2 preface.
    Http1,
    /// The HTTP/2 preface (prior knowledge, or h2 by ALPN).
    Http2,
    /// The peer closed before saying.
    Closed,
}

/// `inner` with `prefix` to be read first.
pub struct Rewind<I> {
    inner: I,
    prefix: Bytes,
}

impl<I: AsyncRead + Unpin> Rewind<I> {
    /// `inner` with nothing put back.
    pub fn new(inner: I) -> Self {
        Rewind { inner, prefix: Bytes::new() }
    }

    /// Puts `bytes` back in front of whatever is still unread. They are copied: `bytes` may
    /// be a few bytes left in a buffer of kilobytes (hyper's), which is let go.
    pub fn put_back(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        let mut joined = Vec::with_capacity(bytes.len() + self.prefix.len());
        joined.extend_from_slice(&bytes);
        joined.extend_from_slice(&self.prefix);
        self.prefix = joined.into();
    }

    /// Whether bytes are waiting to be read.
    pub fn has_unread(&self) -> bool {
        !self.prefix.is_empty()
    }

    /// Waits for the next bytes and puts them back; `false` once the peer has closed.
    ///
    /// # Errors
    /// The read's error.
    pub async fn wait_for_bytes(&mut self) -> io::Result<bool> {
        let mut buffer = [0u8; 64];
        let n = self.inner.read(&mut buffer).await?;
        self.put_back(Bytes::copy_from_slice(&buffer[..n]));
        Ok(n > 0)
    }

    /// Reads until the bytes either stop matching the HTTP/2 preface or complete it, and
    /// puts them back.
    ///
    /// # Errors
    /// The read's error (including `FirstBytes`' deadline).
    pub async fn sniff(&mut self) -> io::Result<Protocol> {
        let mut seen = [0u8; PREFACE.len()];
        let mut n = 0;
        let protocol = loop {
            let read = self.inner.read(&mut seen[n..]).await?;
            if read == 0 {
                break if n == 0 { Protocol::Closed } else { Protocol::Http1 };
            }
            n += read;
            if seen[..n] != PREFACE[..n] {
                break Protocol::Http1;
            }
            if n == PREFACE.len() {
                break Protocol::Http2;
            }
        };
        self.put_back(Bytes::copy_from_slice(&seen[..n]));
        Ok(protocol)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A client connection's I/O, whatever it runs over (TCP, TLS).
pub trait ClientIo: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> ClientIo for T {}

/// The client's side of an upgraded HTTP/1.1 connection: in the extensions of a request
/// that asks for an upgrade, it resolves to the connection once the gateway's `101` has
/// been written (and to an error if the answer was anything else). Extensions must be
/// `Clone`: the first copy to ask takes the connection.
#[derive(Clone)]
pub struct ClientUpgrade(Arc<Mutex<Option<Handover>>>);

/// Where an upgraded connection arrives.
type Handover = oneshot::Receiver<Box<dyn ClientIo>>;

/// The connection was not upgraded after all.
#[derive(Debug, thiserror::Error)]
#[error("the client connection was not upgraded")]
pub struct NotUpgraded;

impl ClientUpgrade {
    /// A pending upgrade and the sender that completes it.
    pub(crate) fn new() -> (Self, oneshot::Sender<Box<dyn ClientIo>>) {
        let (sender, receiver) = oneshot::channel();
        (ClientUpgrade(Arc::new(Mutex::new(Some(receiver)))), sender)
    }

    /// The upgraded connection, bytes the client sent after its request head first.
    ///
    /// # Errors
    /// `NotUpgraded` when the answer was not a `101`, or another copy took the connection.
    pub async fn connection(self) -> Result<Box<dyn ClientIo>, NotUpgraded> {
        let receiver = self.0.lock().ok().and_then(|mut r| r.take()).ok_or(NotUpgraded)?;
        receiver.await.map_err(|_| NotUpgraded)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    async fn sniffed(sent: &[u8]) -> (Protocol, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(1024);
        client.write_all(sent).await.unwrap();
        drop(client);
        let mut io = Rewind::new(server);
        let protocol = io.sniff().await.unwrap();
        let mut replayed = Vec::new();
        io.read_to_end(&mut replayed).await.unwrap();
        (protocol, replayed)
    }

    #[tokio::test]
    async fn the_sniff_decides_and_puts_every_byte_back() {
        let request = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
        assert_eq!(sniffed(request).await, (Protocol::Http1, request.to_vec()));
        let mut h2 = PREFACE.to_vec();
        h2.extend_from_slice(b"\0\0\0\x04");
        assert_eq!(sniffed(&h2).await, (Protocol::Http2, h2.clone()));
        assert_eq!(sniffed(&PREFACE[..5]).await, (Protocol::Http1, PREFACE[..5].to_vec()));
        assert_eq!(sniffed(b"").await, (Protocol::Closed, Vec::new()));
    }

    #[tokio::test]
    async fn bytes_put_back_come_before_unread_ones() {
        let (mut client, server) = tokio::io::duplex(1024);
        client.write_all(b"de").await.unwrap();
        drop(client);
        let mut io = Rewind::new(server);
        io.put_back(Bytes::from_static(b"c"));
        io.put_back(Bytes::from_static(b"ab"));
        assert!(io.has_unread());
        let mut all = Vec::new();
        io.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"abcde");
    }
}
