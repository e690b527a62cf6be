//! The socket of one connection, shared by its reader and its writer.
//!
//! A connection's read loop and write loop are separate tasks on the same shard, and both need the
//! glommio `TcpStream`. It sits behind `Rc<RefCell<_>>` and is borrowed only inside a single
//! `poll_*` call, never across an await, so the two never hold it at once. That is enough because
//! glommio keeps separate read and write readiness sources: a pending read and a pending write on
//! the same socket do not interfere.
//!
//! Used by [`super::connection`] (framed reads, in-order writes) and [`super::zerocopy`] (writes
//! and sendfile of chunked responses), which therefore need not know each other. Dropping the last
//! clone closes the socket.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;

/// The shared socket: reader and writer borrow it only inside `poll_*`.
#[derive(Clone)]
pub struct SharedStream(Rc<RefCell<TcpStream>>);

impl SharedStream {
    pub fn new(stream: TcpStream) -> Self {
        SharedStream(Rc::new(RefCell::new(stream)))
    }

    pub fn raw_fd(&self) -> RawFd {
        self.0.borrow().as_raw_fd()
    }
}

impl AsyncRead for SharedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for SharedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_close(cx)
    }
}
