//! The partition's single writer: direct-I/O appends, rolls and producer-state snapshots.
//!
//! # Writer
//! At most one writer task per partition exists, spawned when work is queued and ending when the
//! queue is empty (an idle partition has no task and no buffer). It drains every queued write
//! (up to [`MAX_COALESCED_WRITE`]) into one aligned DMA buffer: the in-memory copy of the
//! segment's partial last block, then the new batches, zero-padded to the alignment, and issues a
//! single `write_at` at the block-aligned position. Only one write is ever in flight, so two writes
//! rewriting the same partial block can never land out of order. The file therefore carries up to
//! one block of zero padding past its logical end while active; roll and close truncate it away,
//! and recovery treats a zero tail as padding.
//!
//! Its state, with the invariants, is `WriteQueue` and `ActiveFile` (`state/write.rs`).
//!
//! # Syncs and zero-filling
//! Durability is the syncer's (`syncer.rs`, group commit); the writer tells it what it wrote,
//! for the `flush.*` policies, and syncs a segment itself when a roll seals it.
//!
//! Once a partition is asked for durability, the writer keeps a zero-filled region ahead of its
//! data so that syncs mostly cover overwrites of committed blocks: `zero_fill.rs` (why, and how
//! much at a time). The active file may thus end in zeros past its logical end.

use std::rc::Rc;

use bytes::Bytes;
use glommio::io::{DmaBuffer, DmaFile, OpenOptions};

use super::error::StorageError;
use super::recent::RecentWrites;
use super::replica::ReplicaRole;
use super::segment::{self, sync_dir};
use super::state::{ActiveFile, Inner, Op};
use super::{syncer, zero_fill};

/// Upper bound of one coalesced DMA write.
pub const MAX_COALESCED_WRITE: usize = 4 << 20;

/// The writer task: works the queue, in order, until it is empty or the log failed.
pub(crate) async fn writer_loop(inner: Rc<Inner>) {
    // Spawned while the caller holds the state borrow; glommio may poll a new task at once.
    // Yielding first also lets appends queued in the same tick coalesce into one write.
    futures_lite::future::yield_now().await;
    loop {
        let work = {
            let mut st = inner.state_mut();
            if st.is_failed() {
                st.queue_mut().stop();
                drop(st);
                inner.idle().notify();
                return;
            }
            match st.queue_mut().take_work(MAX_COALESCED_WRITE) {
                Some(work) => work,
                None => {
                    drop(st);
                    inner.idle().notify();
                    return;
                }
            }
        };
        let res = if let Some(Op::Snapshot { .. }) = work.first() {
            let Some(Op::Snapshot { offset, bytes, seq }) = work.into_iter().next() else {
                unreachable!("checked above")
            };
            do_snapshot(&inner, offset, bytes, seq).await;
            Ok(())
        } else if matches!(work.first(), Some(Op::Roll { .. })) {
            let Some(Op::Roll {
                old_base,
                new_base,
                indexes,
                producers,
                seq,
            }) = work.into_iter().next()
            else {
                unreachable!("checked above")
            };
            do_roll(&inner, old_base, new_base, indexes, producers, seq).await
        } else {
            do_write(&inner, work).await
        };
        if let Err(e) = res {
            inner.fail(&e);
            inner.state_mut().queue_mut().stop();
            inner.idle().notify();
            return;
        }
    }
}

/// The active file as the previous write left it: where the next write starts.
struct FileEnd {
    dma: Rc<DmaFile>,
    align: u64,
    /// The last partial block, rewritten at the start of the next write.
    tail: Vec<u8>,
    written: u64,
    base: i64,
}

/// What a coalesced write adds, and what completing it publishes.
struct Staged {
    /// Bytes of the DMA buffer: data (the old partial block, then the new batches) and the zero
    /// padding up to the alignment.
    buf_len: usize,
    /// Bytes of data in the buffer.
    data_len: usize,
    /// Bytes the write adds after the old partial block.
    new_bytes: usize,
    /// The new partial last block.
    new_tail: Vec<u8>,
    /// One past the last offset written.
    next_offset: i64,
    messages: u64,
    /// The sequence number of the last op written.
    seq: u64,
}

/// Writes the queued `ops` (all `Op::Write`s, contiguous) with one direct write, then publishes
/// them: readable, counted for the flush policies.
async fn do_write(inner: &Rc<Inner>, ops: Vec<Op>) -> Result<(), StorageError> {
    let end = file_end(inner)?;
    let (buf, staged) = stage(&end, &ops);
    let write_pos = end.written - end.tail.len() as u64;
    let write_end = write_pos + staged.buf_len as u64;
    if inner.state().sync().wanted() {
        zero_fill::zero_fill_ahead(inner, &end.dma, end.written, write_end).await?;
    }
    // Blocks below `zeroed` were zero-filled and committed (a fill moves it only after its
    // fdatasync), so a write ending there changes no metadata.
    let changes_meta = write_end > inner.state().active().map_or(0, |a| a.fill().zeroed());
    // Someone reads this partition: keep a copy of what this write adds (`recent.rs`).
    let keep = {
        let st = inner.state();
        st.segments()
            .get(end.base)
            .is_some_and(|s| s.reader.is_some())
            && RecentWrites::has_room(staged.new_bytes)
    };
    let kept =
        keep.then(|| Bytes::copy_from_slice(&buf.as_bytes()[end.tail.len()..staged.data_len]));
    let n = end.dma.write_at(buf, write_pos).await?;
    if n < staged.data_len {
        return Err(StorageError::Io(std::io::Error::other(format!(
            "short direct write: {n} of {} bytes",
            staged.data_len
        ))));
    }
    let (flush_now, arm_timer, flush_ms) = publish(inner, &end, staged, kept, changes_meta)?;
    if flush_now {
        syncer::request_sync_of_written(inner, &mut inner.state_mut());
    }
    if arm_timer {
        syncer::start_flush_timer(inner, flush_ms);
    }
    inner.progress().notify();
    inner.written().notify();
    // A single replica's high watermark is the written end; a replica's moves only when the
    // replication layer advances it (`replica.rs`), which wakes the readers then.
    if inner.state().role() == ReplicaRole::Single {
        inner.appended().notify();
    }
    Ok(())
}

/// Write, first phase: where the active file ends now.
fn file_end(inner: &Inner) -> Result<FileEnd, StorageError> {
    let st = inner.state();
    let a = st.active().ok_or(StorageError::Closed)?;
    Ok(FileEnd {
        dma: a.dma().clone(),
        align: a.align(),
        tail: a.tail().to_vec(),
        written: a.written(),
        base: a.base(),
    })
}

/// Write, second phase: the DMA buffer holding the old partial block, then the batches of `ops`
/// with their broker-owned header fields set, zero-padded to the alignment.
fn stage(end: &FileEnd, ops: &[Op]) -> (DmaBuffer, Staged) {
    let tail = &end.tail;
    let new_bytes: usize = ops
        .iter()
        .map(|op| match op {
            Op::Write { bytes, .. } => bytes.len(),
            Op::Roll { .. } | Op::Snapshot { .. } => 0,
        })
        .sum();
    let data_len = tail.len() + new_bytes;
    let buf_len = data_len.div_ceil(end.align as usize) * end.align as usize;
    let mut buf = end.dma.alloc_dma_buffer(buf_len);
    let out = buf.as_bytes_mut();
    out[..tail.len()].copy_from_slice(tail);
    let mut at = tail.len();
    let mut next_offset = 0;
    let mut messages = 0;
    let mut seq = 0;
    for op in ops {
        if let Op::Write {
            bytes,
            base_offset,
            epoch,
            position,
            next_offset: n,
            messages: m,
            seq: s,
        } = op
        {
            debug_assert_eq!(*position, end.written + (at - tail.len()) as u64);
            out[at..at + bytes.len()].copy_from_slice(bytes);
            if let Some(epoch) = epoch {
                rebase(&mut out[at..at + bytes.len()], *base_offset, *epoch);
            }
            at += bytes.len();
            next_offset = *n;
            messages += *m;
            seq = *s;
        }
    }
    out[data_len..].fill(0);
    let new_tail_start = data_len - data_len % end.align as usize;
    let new_tail = out[new_tail_start..data_len].to_vec();
    let staged = Staged {
        buf_len,
        data_len,
        new_bytes,
        new_tail,
        next_offset,
        messages,
        seq,
    };
    (buf, staged)
}

/// Write, last phase: the write completed. Advances the active file and its segment, keeps the
/// tail cache's copy (`kept`) or drops the cache, hints readahead for readers, moves the high
/// watermark, and counts the messages for the flush policies. Returns whether a sync is due
/// (`flush.messages`), and whether to start the `flush.ms` timer, with its period.
fn publish(
    inner: &Inner,
    end: &FileEnd,
    staged: Staged,
    kept: Option<Bytes>,
    changes_meta: bool,
) -> Result<(bool, bool, u64), StorageError> {
    let mut st = inner.state_mut();
    let written = end.written;
    let new_written = written + staged.new_bytes as u64;
    let a = st.active_mut().ok_or(StorageError::Closed)?;
    a.wrote(staged.new_tail, new_written);
    a.recent_mut().record(written, kept);
    if changes_meta {
        a.commits_mut().note();
    }
    // The segment being written, not the newest in the map: a queued roll may already have
    // inserted the next one.
    if let Some(seg) = st.segments_mut().get_mut(end.base) {
        seg.size = new_written;
        seg.next_offset = staged.next_offset;
        // Someone reads this partition: also start readahead of what was just written, so a
        // reader that falls behind the tail cache (a catch-up consumer) finds it in the page
        // cache (direct writes bypass it).
        if let Some(r) = &seg.reader {
            use std::os::fd::AsRawFd;
            // SAFETY: plain syscall on a descriptor we own; only a hint.
            unsafe {
                libc::posix_fadvise(
                    r.as_raw_fd(),
                    written as libc::off_t,
                    staged.new_bytes as libc::off_t,
                    libc::POSIX_FADV_WILLNEED,
                );
            }
        }
    }
    st.queue_mut().written(staged.next_offset, staged.seq);
    let cfg = inner.config();
    let flush_now = st
        .sync_mut()
        .note_written(staged.messages, cfg.flush_messages);
    let arm = cfg.flush_ms != u64::MAX && st.sync_mut().try_arm_timer();
    Ok((flush_now, arm, cfg.flush_ms))
}

/// Sets the broker-owned header fields of the validated batches in `buf` (see `Op::Write`):
/// consecutive base offsets from `base`, partition leader epoch `epoch`. This is where the
/// produced bytes are copied anyway (into the DMA buffer), so the request's bytes need no copy of
/// their own.
fn rebase(buf: &mut [u8], base: i64, epoch: i32) {
    use crate::format::record_batch::{BatchHeader, set_base_offset, set_partition_leader_epoch};
    let mut pos = 0;
    let mut next = base;
    while pos < buf.len() {
        let b = &mut buf[pos..];
        set_base_offset(b, next);
        set_partition_leader_epoch(b, epoch);
        // Validated in `append_assign`; a header that does not parse cannot occur.
        let Ok(h) = BatchHeader::parse(b) else { return };
        next = h.last_offset() + 1;
        pos += h.total_len();
    }
}

/// Writes a periodic producer-state snapshot, after the active segment's `.txnindex` entries
/// below it (`txn_index.rs`: a snapshot is never on disk before the index entries it implies).
/// A failure only costs a longer replay after a crash, so it is logged, not fatal.
async fn do_snapshot(inner: &Rc<Inner>, offset: i64, bytes: Vec<u8>, seq: u64) {
    let dir = inner.dir().to_path_buf();
    let res = async {
        if !super::txn_log::persist_writer_txn_index(inner, offset).await? {
            // A queued roll sealed the segment: its own snapshot follows with the index file.
            return Ok(());
        }
        super::producer_state::write_snapshot(&dir, offset, bytes).await?;
        sync_dir(&dir).await?;
        super::producer_state::remove_older_snapshots(&dir);
        Ok::<(), StorageError>(())
    }
    .await;
    if let Err(e) = res {
        tracing::warn!(dir = %dir.display(), error = %e, "could not write the producer-state snapshot");
    }
    {
        let mut st = inner.state_mut();
        st.queue_mut().done(seq);
    }
    inner.progress().notify();
}

/// Seals the active segment at `old_base` (trimmed, synced, final index files) and switches the
/// writer to a new file at `new_base`.
async fn do_roll(
    inner: &Rc<Inner>,
    old_base: i64,
    new_base: i64,
    indexes: [Vec<u8>; 3],
    producers: Vec<u8>,
    seq: u64,
) -> Result<(), StorageError> {
    let [index, time_index, txn_index] = indexes;
    let dir = inner.dir().to_path_buf();
    let (old_dma, old_written, align) = {
        let st = inner.state();
        let a = st.active().ok_or(StorageError::Closed)?;
        debug_assert_eq!(a.base(), old_base);
        (a.dma().clone(), a.written(), a.align())
    };
    // Seal: trim the direct-I/O padding (after any zero-fill landed), make the data and the new
    // size durable, write the trimmed indexes.
    zero_fill::wait_fill_idle(inner).await;
    old_dma.truncate(old_written).await?;
    old_dma.fdatasync().await?;
    segment::write_small_file(&segment::index_path(&dir, old_base), index).await?;
    segment::write_small_file(&segment::time_index_path(&dir, old_base), time_index).await?;
    if !txn_index.is_empty() {
        segment::write_small_file(&super::txn_index::path(&dir, old_base), txn_index).await?;
    }
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(segment::log_path(&dir, new_base))
        .await?;
    // Empty index files for the new segment, as Kafka creates them with the log.
    segment::write_small_file(&segment::index_path(&dir, new_base), Vec::new()).await?;
    segment::write_small_file(&segment::time_index_path(&dir, new_base), Vec::new()).await?;
    // The producer state as of the new base; the old segment is synced, so the snapshot never
    // covers data a crash could lose.
    super::producer_state::write_snapshot(&dir, new_base, producers).await?;
    sync_dir(&dir).await?;
    super::producer_state::remove_older_snapshots(&dir);
    {
        let mut st = inner.state_mut();
        st.set_active(ActiveFile::new(new_base, Rc::new(f), align, Vec::new(), 0));
        // Everything before the new segment was synced with the old one.
        st.sync_mut().advance(new_base);
        st.queue_mut().done(seq);
        if let Some(s) = st.segments_mut().get_mut(old_base) {
            s.persisted_index = s.index.as_ref().map_or(0, |i| i.len());
            s.persisted_time_index = s.time_index.as_ref().map_or(0, |t| t.len());
        }
    }
    if let Ok(f) = Rc::try_unwrap(old_dma) {
        f.close().await?;
    }
    inner.progress().notify();
    inner.synced().notify();
    Ok(())
}
