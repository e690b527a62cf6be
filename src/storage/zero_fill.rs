//! Zero-filling ahead of the data, for partitions that sync.
//!
//! On ext4 a direct write that extends the file makes the next fdatasync commit a journal
//! transaction for the new size; a write into blocks that already hold data does not, and
//! `fallocate` does not help (unwritten extents must be converted, also journaled). Syncing a
//! 16 KiB write that overwrites zero-filled blocks is several times faster than syncing one that
//! extends the file (measured in `docs/perf/storage-appender.md`). So once a partition has been
//! asked for durability (`wait_durable`, or a `flush.*` policy), the
//! writer keeps a zero-filled region ahead of the data, in chunks of the file's current size
//! clamped to 1..4 MiB (never past `segment.bytes`), and syncs then mostly cover overwrites.
//! The fill runs in the background: when the data comes within half a chunk of the zeroed end,
//! a task writes the next chunk strictly beyond every data write issued so far and fdatasyncs
//! it, so the size change lands in that sync rather than in an acks=all one. A data write that
//! would reach into a fill still in flight waits for it (zeros landing after data would erase
//! it); roll and close wait for it before trimming. Before this was in the background, every fill
//! stalled the partition's appends, and at 250k msg/s acks=all those stalls were most of the
//! produce p99 (measured in `docs/perf/storage-appender.md`). The cost is
//! writing those bytes twice; partitions that never sync (acks=0/1 without flush policy) append
//! plainly, as Kafka does.
//!
//! The fill writes one [`FILL_PIECE`] (64 KiB) at a time, and a shard has at most
//! [`FILL_PIECES_PER_SHARD`] pieces in flight over all its partitions. The fill's first version put
//! the whole chunk in flight as 1 MiB writes; a probe build that timed every step (250k msg/s
//! acks=all, 8 partitions) found the whole tail of the broker's request time in the few data
//! syncs that overlapped a fill. The development VM's disk serves requests in order, so every data
//! write and flush queued behind the chunk's zeros. With one piece in flight a fill takes longer
//! but adds at most one piece of queueing to anyone, which cut produce p99 and p99.9 (measured in
//! `docs/perf/storage-appender.md`). Syncs of data in committed blocks are device flushes shared by
//! the shard's partitions, which skip the journal commit of a running fill (`flush_anchor.rs`).
//! The active file may thus end in up to a chunk of zeros; roll and close trim it to its exact
//! size (what Kafka shows), and recovery treats a zero tail as padding.
//!
//! The fill's state, with its invariants, is `ZeroFill` (`state/fill.rs`), one per active file;
//! this module holds the policy (how much, when) and the background task.

use std::rc::Rc;

use super::error::StorageError;
use super::state::Inner;

/// Zero-fill step bounds: the active file is zero-filled ahead of the data by its current size,
/// clamped to these, so a small partition holds at most 1 MiB of zeros beyond its data. Each fill
/// changes the file size, which costs its sync an inode write: with 1,000 partitions at acks=all,
/// 64 KiB fills made that inode write a large share of broker CPU (measured in
/// `docs/perf/storage-appender.md`).
pub const ZERO_FILL_MIN: u64 = 1 << 20;
pub const ZERO_FILL_MAX: u64 = 4 << 20;

/// One zero-fill write. The fill writes its chunk one piece at a time, never more than one in
/// flight: on a disk that serves requests in order (the development VM's does), a 4 MiB burst of
/// zeros (4 × 1 MiB in flight) delayed every data write and fdatasync queued behind it (measured
/// in `docs/perf/storage-appender.md`).
pub const FILL_PIECE: usize = 64 << 10;

/// Zero-fill pieces in flight at once on a shard, over all its partitions. One piece per
/// partition still let every partition that needed zeros put a piece in flight: with 1,000
/// partitions (each starting with a 1 MiB fill) up to 500 pieces, 32 MiB of zeros, per shard
/// stood ahead of the data in an in-order disk queue. At `--rate 0 --partitions 1000 --acks all`
/// a gate of 4 per shard cut produce p99 and p99.9 several-fold against the ungated code (8 did
/// worse, 2 varied more) with throughput within noise; with 8 partitions over 2 shards the gate
/// rarely binds. Measured in `docs/perf/storage-appender.md`.
pub const FILL_PIECES_PER_SHARD: u64 = 4;

thread_local! {
    /// The shard's zero-fill gate (FIFO, so partitions take turns).
    static FILL_GATE: Rc<glommio::sync::Semaphore> =
        Rc::new(glommio::sync::Semaphore::new(FILL_PIECES_PER_SHARD));
    /// Zero-fill pieces in flight on this shard now, and the most seen at once.
    static FILL_IN_FLIGHT: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// The most zero-fill pieces this shard (thread) had in flight at once.
pub fn fill_pieces_in_flight_peak() -> u64 {
    FILL_IN_FLIGHT.with(|c| c.get().1)
}

/// A turn to write one zero-fill piece; released on drop.
struct FillPiece {
    _permit: Option<glommio::sync::StaticPermit>,
}

async fn fill_piece_permit() -> FillPiece {
    let gate = FILL_GATE.with(Rc::clone);
    // The gate is never closed; if it were, the fill would go on ungated.
    let permit = gate.acquire_static_permit(1).await.ok();
    FILL_IN_FLIGHT.with(|c| {
        let (now, peak) = c.get();
        c.set((now + 1, peak.max(now + 1)));
    });
    FillPiece { _permit: permit }
}

impl Drop for FillPiece {
    fn drop(&mut self) {
        FILL_IN_FLIGHT.with(|c| {
            let (now, peak) = c.get();
            c.set((now - 1, peak));
        });
    }
}

thread_local! {
    /// One shared, read-only zero DMA buffer (one piece) per shard for zero-filling.
    static ZEROS: std::cell::RefCell<Option<Rc<glommio::io::DmaBuffer>>> = const { std::cell::RefCell::new(None) };
}

fn zero_buffer(dma: &glommio::io::DmaFile) -> Rc<glommio::io::DmaBuffer> {
    ZEROS.with(|z| {
        z.borrow_mut()
            .get_or_insert_with(|| {
                let mut b = dma.alloc_dma_buffer(FILL_PIECE);
                b.as_bytes_mut().fill(0);
                Rc::new(b)
            })
            .clone()
    })
}

/// Keeps the zero-filled region ahead of the data (see the module docs) without stalling
/// appends: when the data comes within half a chunk of the zeroed end, one background task
/// zero-fills the next chunk, strictly beyond every data write issued so far, then fdatasyncs it
/// so the size change it made is not left for an acks=all sync to write. Returns once the data
/// write ending at `write_end` can be issued without overlapping a zero write still in flight
/// (it waits only if the data outran the fill).
pub(crate) async fn zero_fill_ahead(
    inner: &Rc<Inner>,
    dma: &Rc<glommio::io::DmaFile>,
    written: u64,
    write_end: u64,
) -> Result<(), StorageError> {
    loop {
        {
            let mut st = inner.state_mut();
            st.check_online()?;
            let limit = inner.config().segment_bytes.max(write_end);
            let a = st.active_mut().ok_or(StorageError::Closed)?;
            match a.fill().in_flight() {
                Some((from, _)) if write_end <= from => return Ok(()),
                Some(_) => {} // the data caught up with the fill: wait for it below
                None => {
                    let chunk = written.clamp(ZERO_FILL_MIN, ZERO_FILL_MAX);
                    if write_end + chunk / 2 <= a.fill().zeroed() {
                        return Ok(());
                    }
                    let from = a.fill().zeroed().max(write_end);
                    let to = (from + chunk).min(limit).div_ceil(ZERO_FILL_MIN) * ZERO_FILL_MIN;
                    if to <= from {
                        return Ok(());
                    }
                    a.fill_mut().start(from, to);
                    glommio::spawn_local(fill_zeros(inner.clone(), dma.clone(), from, to)).detach();
                    return Ok(());
                }
            }
        }
        inner.progress().wait().await;
    }
}

/// The background zero-fill of `[from, to)`: [`FILL_PIECE`] writes of a shared zero buffer, one
/// at a time, then one fdatasync (which commits the new blocks and size: from then on data
/// writes below `to` change no metadata).
async fn fill_zeros(inner: Rc<Inner>, dma: Rc<glommio::io::DmaFile>, from: u64, to: u64) {
    let res = async {
        let zeros = zero_buffer(&dma);
        let mut pos = from;
        while pos < to {
            let n = ((to - pos) as usize).min(zeros.len());
            let _piece = fill_piece_permit().await;
            if n == zeros.len() {
                dma.write_rc_at(zeros.clone(), pos).await?;
            } else {
                let mut b = dma.alloc_dma_buffer(n);
                b.as_bytes_mut().fill(0);
                dma.write_at(b, pos).await?;
            }
            pos += n as u64;
            if inner.state().is_failed() {
                return Ok(None);
            }
        }
        let changes = inner.state().active().map_or(0, |a| a.commits().made());
        dma.fdatasync().await?;
        Ok::<Option<u64>, StorageError>(Some(changes))
    }
    .await;
    let synced = res.unwrap_or_else(|e| {
        inner.fail(&e);
        None
    });
    {
        let mut st = inner.state_mut();
        if let Some(a) = st.active_mut().filter(|a| a.is_file(&dma)) {
            a.fill_mut().finish(to);
            if let Some(c) = synced {
                a.commits_mut().committed_through(c);
            }
        }
    }
    inner.progress().notify();
}

/// Waits until no zero-fill is in flight on the active file (before it is trimmed).
pub(crate) async fn wait_fill_idle(inner: &Rc<Inner>) {
    loop {
        let busy = inner
            .state()
            .active()
            .is_some_and(|a| a.fill().in_flight().is_some());
        if !busy {
            return;
        }
        inner.progress().wait().await;
    }
}
