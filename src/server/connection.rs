//! One client connection: framed reads, per-request tasks, in-order writes.
//!
//! The reader reads whole frames (size checked first), decodes the header, spawns the handler as a
//! local task and pushes the task handle into a bounded queue; the writer pops handles in order,
//! awaits each and writes its response. The queue bound is the per-connection in-flight limit.
//! Reader and writer share the socket as a [`SharedStream`] (see there why that is safe).

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use bytes::{Buf, Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use glommio::channels::local_channel;
use glommio::net::TcpStream;
use glommio::task::JoinHandle;
use kafka_protocol::messages::ApiKey;

use super::handlers::{self, Reply, Request};
use super::shared_stream::SharedStream;
use super::zerocopy;
use crate::protocol::frame::{self, FrameError};
use crate::shard::ShardCtx;
use crate::sync::LocalEvent;

/// Bytes asked of the socket per read while no frame size is known.
const READ_CHUNK: usize = 64 * 1024;
/// A large frame's buffer grows by at most this much per read, so a client that announces a big
/// (but allowed) frame and then stalls does not make the broker allocate all of it up front.
const MAX_READ_STEP: usize = 1024 * 1024;
/// How long a connection may keep draining responses once the broker is shutting down.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads one whole frame (without its size prefix); `None` on a clean EOF between frames.
async fn read_frame(
    io: &mut SharedStream,
    buf: &mut BytesMut,
    max: u32,
) -> Result<Option<Bytes>, ReadError> {
    loop {
        let want = match frame::peek_size(buf) {
            Some(size) => {
                let size = frame::check_frame_size(size, max)?;
                if buf.len() >= 4 + size {
                    let mut f = buf.split_to(4 + size);
                    f.advance(4);
                    return Ok(Some(f.freeze()));
                }
                (4 + size - buf.len()).clamp(READ_CHUNK, MAX_READ_STEP)
            }
            None => READ_CHUNK,
        };
        let old = buf.len();
        buf.resize(old + want, 0);
        let n = match io.read(&mut buf[old..]).await {
            Ok(n) => n,
            Err(e) => {
                buf.truncate(old);
                return Err(e.into());
            }
        };
        buf.truncate(old + n);
        if n == 0 {
            return if old == 0 {
                Ok(None)
            } else {
                Err(ReadError::Truncated)
            };
        }
    }
}

/// The peer address as Java's `InetAddress.toString()` prints an address it did not resolve
/// (`/` + the literal): what Kafka reports as a group member's `client_host`. Java prints an IPv6
/// address in full (`0:0:0:0:0:0:0:1`, no `::` compression) and an IPv4-mapped one as IPv4.
fn java_inet_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("/{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("/{v4}"),
            None => {
                let groups: Vec<String> = v6.segments().iter().map(|s| format!("{s:x}")).collect();
                format!("/{}", groups.join(":"))
            }
        },
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; no memory is passed.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Serves one accepted connection until EOF, error, protocol violation or broker shutdown.
pub async fn serve(ctx: Rc<ShardCtx>, stream: TcpStream) {
    let peer_addr = stream.peer_addr().ok();
    let peer = peer_addr
        .map(|a| a.to_string())
        .unwrap_or_else(|| "?".into());
    let client_host: Rc<str> = peer_addr
        .map(|a| java_inet_string(a.ip()))
        .unwrap_or_default()
        .into();
    let _ = stream.set_nodelay(true);
    // sendfile needs a non-blocking socket so a full send buffer returns EAGAIN instead of blocking
    // the executor thread; glommio's own reads/writes use MSG_DONTWAIT + io_uring polls either way.
    if let Err(e) = set_nonblocking(stream.as_raw_fd()) {
        tracing::warn!(%peer, error = %e, "cannot make socket non-blocking");
        return;
    }
    tracing::debug!(%peer, shard = ctx.id, "connection accepted");
    let io = SharedStream::new(stream);
    let max_inflight = ctx.info.settings.max_inflight_per_connection;
    let (tx, rx) = local_channel::new_bounded::<JoinHandle<Reply>>(max_inflight);
    let writer_done = Rc::new(LocalEvent::default());
    let writer = glommio::spawn_local(write_loop(
        ctx.clone(),
        io.clone(),
        rx,
        writer_done.clone(),
        peer.clone(),
    ));

    let reader = read_loop(ctx.clone(), io.clone(), tx, peer.clone(), client_host);
    let ended = async {
        reader.await;
    }
    .or(async {
        writer_done.wait().await;
    })
    .or(async {
        ctx.stopping.wait().await;
    });
    ended.await;
    // The sender is gone (reader finished or dropped): the writer drains what is queued. During
    // shutdown a client that does not read its responses gets SHUTDOWN_GRACE, then is dropped
    // (dropping the writer task cancels it), so it cannot hold the broker's shutdown hostage.
    let finished = async {
        writer.await;
        true
    }
    .or(async {
        ctx.stopping.wait().await;
        glommio::timer::sleep(SHUTDOWN_GRACE).await;
        false
    })
    .await;
    if !finished {
        tracing::warn!(%peer, "dropping connection that did not drain within the shutdown grace period");
    }
    // Dropping the last `SharedStream` closes the socket.
    drop(io);
    tracing::debug!(%peer, "connection closed");
}

async fn read_loop(
    ctx: Rc<ShardCtx>,
    mut io: SharedStream,
    tx: local_channel::LocalSender<JoinHandle<Reply>>,
    peer: String,
    client_host: Rc<str>,
) {
    let max = ctx.info.settings.socket_request_max_bytes;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    // The release event of the previous request (requests of one connection run in order).
    let mut prev = Rc::new(LocalEvent::default());
    prev.set();
    let muted_until = Rc::new(std::cell::Cell::new(None));
    loop {
        let frame = match read_frame(&mut io, &mut buf, max).await {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(ReadError::Io(e)) => {
                tracing::debug!(%peer, error = %e, "read failed");
                return;
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                return;
            }
        };
        let parsed = match frame::parse_header(frame) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad request header");
                return;
            }
        };
        let version = parsed.header.request_api_version;
        let task = match handlers::supported_versions(parsed.api_key) {
            None => {
                tracing::warn!(%peer, api_key = ?parsed.api_key, "closing connection: unsupported API key");
                return;
            }
            Some((min, max)) if version < min || version > max => {
                if parsed.api_key == ApiKey::ApiVersions {
                    // KIP-511: answer at v0 with UNSUPPORTED_VERSION and the full table.
                    let reply = handlers::api_versions::fallback(parsed.header.correlation_id);
                    glommio::spawn_local(async move { reply }).detach()
                } else {
                    tracing::warn!(%peer, api_key = ?parsed.api_key, version, min, max,
                        "closing connection: UNSUPPORTED_VERSION");
                    return;
                }
            }
            Some(_) => {
                let done = Rc::new(LocalEvent::default());
                let req = Request {
                    ctx: ctx.clone(),
                    api_key: parsed.api_key,
                    version,
                    header: parsed.header,
                    body: parsed.body,
                    after: std::mem::replace(&mut prev, done.clone()),
                    done: handlers::Release(done),
                    muted_until: muted_until.clone(),
                    client_host: client_host.clone(),
                };
                glommio::spawn_local(handlers::dispatch(req)).detach()
            }
        };
        if tx.send(task).await.is_err() {
            return;
        }
    }
}

async fn write_loop(
    ctx: Rc<ShardCtx>,
    mut io: SharedStream,
    rx: local_channel::LocalReceiver<JoinHandle<Reply>>,
    done: Rc<LocalEvent>,
    peer: String,
) {
    let fd = io.raw_fd();
    while let Some(task) = rx.recv().await {
        let reply = match task.await {
            Some(r) => r,
            None => break,
        };
        let res = match reply {
            Reply::None => Ok(()),
            Reply::Frame(bytes) => io.write_all(&bytes).await,
            Reply::Chunked(frame) => zerocopy::write_chunked(&mut io, fd, &frame).await,
            Reply::Close(reason) => {
                tracing::warn!(%peer, %reason, "closing connection");
                break;
            }
        };
        if let Err(e) = res {
            tracing::debug!(%peer, error = %e, "write failed");
            break;
        }
    }
    let _ = ctx;
    done.set();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_host_is_printed_as_java_does() {
        assert_eq!(java_inet_string("127.0.0.1".parse().unwrap()), "/127.0.0.1");
        assert_eq!(java_inet_string("::1".parse().unwrap()), "/0:0:0:0:0:0:0:1");
        assert_eq!(
            java_inet_string("::ffff:10.0.0.7".parse().unwrap()),
            "/10.0.0.7"
        );
        assert_eq!(
            java_inet_string("fe80::ab:12".parse().unwrap()),
            "/fe80:0:0:0:0:0:ab:12"
        );
    }
}
