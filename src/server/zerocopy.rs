//! Writing chunked responses: in-memory parts with ordinary socket writes, file slices with
//! sendfile(2) from the segment file to the socket (no user-space copy of record bytes).
//!
//! Waiting for writability: the socket is O_NONBLOCK, so sendfile returns EAGAIN when the send
//! buffer is full. glommio 0.9 has no public "wait until this fd is writable"; instead the next single
//! byte of the slice is read with pread(2) and written with glommio's async write, which parks this
//! task on glommio's io_uring poll until the socket drains, then sendfile resumes after that byte.
//! Cost: one 1-byte pread + send per full socket buffer; the executor never blocks. TCP_CORK is held
//! for the duration of a multi-chunk response so the header pieces and the file data leave in full
//! segments instead of many small ones.
//!
//! sendfile itself may wait for the device when the slice is not in the page cache (segments are
//! written with O_DIRECT); every piece of a slice is made readable first through io_uring
//! (`storage::page_cache`), so that wait happens off the shard thread.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;

use futures_lite::AsyncWriteExt;

use super::fetch_response::{Chunk, ChunkedFrame};
use super::shared_stream::SharedStream;
use crate::storage::{FileSlice, page_cache};

/// Bytes of a slice made ready (`page_cache::settle`) before each `sendfile` run.
const SEND_PIECE: libc::off_t = 1 << 20;

fn set_cork(fd: RawFd, on: bool) {
    let v: libc::c_int = on as libc::c_int;
    // SAFETY: setsockopt with a pointer to a live c_int of the right size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Writes a whole chunked frame, file slices via sendfile.
pub async fn write_chunked(
    io: &mut SharedStream,
    sock: RawFd,
    frame: &ChunkedFrame,
) -> io::Result<()> {
    let cork = frame.chunks.len() > 1;
    if cork {
        set_cork(sock, true);
    }
    let res = async {
        for c in &frame.chunks {
            match c {
                Chunk::Bytes(b) => io.write_all(b).await?,
                Chunk::File(s) => send_file(io, sock, s).await?,
            }
        }
        Ok(())
    }
    .await;
    if cork {
        set_cork(sock, false);
    }
    res
}

/// Sends one file slice with sendfile(2), handling partial sends and EAGAIN without blocking.
pub async fn send_file(io: &mut SharedStream, sock: RawFd, slice: &FileSlice) -> io::Result<()> {
    if let Some(m) = &slice.mem {
        // From the partition's tail cache (`storage::recent`): the bytes are already here.
        return io.write_all(m).await;
    }
    let file_fd = slice.file.as_raw_fd();
    let mut off = slice.position as libc::off_t;
    let end = off + slice.len as libc::off_t;
    let mut ready_end = off;
    while off < end {
        if off >= ready_end {
            // sendfile reads the file synchronously: first make the next piece readable without
            // blocking the shard (normally a no-op check: the owner's read settled it already).
            ready_end = (off + SEND_PIECE).min(end);
            page_cache::settle(&slice.file, off as u64, (ready_end - off) as u64).await?;
        }
        let count = (ready_end - off) as usize;
        // SAFETY: both descriptors are open for the duration of the call (the slice holds an Arc
        // of the file, `io` the socket); `off` is a valid pointer the kernel updates.
        let n = unsafe { libc::sendfile(sock, file_fd, &mut off, count) };
        if n > 0 {
            continue;
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment file shorter than the slice",
            ));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => {
                tracing::trace!(
                    sock,
                    remaining = end - off,
                    "sendfile: socket full, waiting"
                );
                let mut byte = [0u8; 1];
                slice.file.read_exact_at(&mut byte, off as u64)?;
                io.write_all(&byte).await?;
                off += 1;
            }
            _ => return Err(err),
        }
    }
    Ok(())
}
