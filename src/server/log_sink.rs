//! Log output that cannot stall the broker: `ringbolt`'s log lines go through a bounded queue to
//! one thread that writes them to stderr.
//!
//! Writing to stderr directly blocks the writing thread whenever the other end does not take the
//! bytes: a pipe whose reader stopped reading (a supervisor that hangs, `| tee` suspended with
//! ^Z), a terminal paused with ^S. A shard thread would then stop serving at its next warning,
//! and the main thread at its next line: a SIGTERM would be "ignored", nothing logged, the
//! listeners still open, until someone drains the pipe. Here the shards and the main thread only
//! queue the formatted line (never waiting); when the queue is full the line is dropped and
//! counted, and the writer thread reports how many were lost once stderr takes bytes again.
//!
//! Trade-offs: a line can be lost, only when the sink is stalled or the broker logs faster than
//! stderr drains (the queue holds [`QUEUE_LINES`] lines); and lines still queued when the process
//! ends are lost unless flushed: [`flush`] is called at the end of `main`, before
//! `process::exit`, and by the panic hook before it aborts, each waiting a bounded time (a
//! stalled stderr must not hold the exit hostage either).

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

/// Lines the queue holds before new ones are dropped.
pub const QUEUE_LINES: usize = 8192;

enum Msg {
    Line(Vec<u8>),
    Flush(Sender<()>),
}

struct Shared {
    tx: SyncSender<Msg>,
    dropped: AtomicU64,
}

static SINK: OnceLock<Shared> = OnceLock::new();

/// The `MakeWriter` for `tracing_subscriber::fmt().with_writer(..)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stderr;

/// One event's bytes, queued when dropped.
pub struct LineWriter {
    buf: Vec<u8>,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            buf: Vec::with_capacity(256),
        }
    }
}

impl Write for LineWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.buf);
        let sink = sink();
        match sink.tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                sink.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The writer thread is gone (it never ends while the process runs): write directly.
            Err(TrySendError::Disconnected(Msg::Line(l))) => {
                let _ = std::io::stderr().write_all(&l);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn sink() -> &'static Shared {
    SINK.get_or_init(|| {
        let (tx, rx) = sync_channel(QUEUE_LINES);
        let spawned = std::thread::Builder::new()
            .name("ringbolt-log".into())
            .spawn(move || write_loop(rx));
        if let Err(e) = spawned {
            // Lines then go to stderr directly (the Disconnected path above).
            let _ = writeln!(std::io::stderr(), "cannot start the log thread: {e}");
        }
        Shared {
            tx,
            dropped: AtomicU64::new(0),
        }
    })
}

fn write_loop(rx: Receiver<Msg>) {
    let mut err = std::io::stderr();
    let mut reported = 0u64;
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Line(l) => {
                let _ = err.write_all(&l);
            }
            Msg::Flush(ack) => {
                let _ = err.flush();
                let _ = ack.send(());
            }
        }
        let dropped = SINK
            .get()
            .map(|s| s.dropped.load(Ordering::Relaxed))
            .unwrap_or(0);
        if dropped > reported {
            let _ = writeln!(
                err,
                "ringbolt: {} log line(s) dropped: stderr did not take them in time",
                dropped - reported
            );
            reported = dropped;
        }
    }
}

/// Waits until the lines queued so far are written, at most `timeout`. Returns false when they
/// were not (stderr stalled).
pub fn flush(timeout: Duration) -> bool {
    let Some(sink) = SINK.get() else {
        return true;
    };
    let deadline = Instant::now() + timeout;
    let (ack_tx, ack_rx) = std::sync::mpsc::channel();
    let mut msg = Msg::Flush(ack_tx);
    loop {
        match sink.tx.try_send(msg) {
            Ok(()) => break,
            Err(TrySendError::Full(m)) => {
                if Instant::now() >= deadline {
                    return false;
                }
                msg = m;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(TrySendError::Disconnected(_)) => return true,
        }
    }
    ack_rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .is_ok()
}
