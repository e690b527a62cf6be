//! The partition's single writer (direct-I/O appends) and its group-commit syncer.
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
//! # Syncer (group commit)
//! `wait_durable(n)` records the wish and starts the syncer if it is idle. The syncer loops: note
//! the high watermark `h` and the active file, `fdatasync` (or, when every written block's
//! metadata is committed, a device flush shared with the shard's partitions, `flush_anchor.rs`),
//! then `durable = h`. Every append whose
//! write completed before a sync started is covered by that sync; those that completed while it
//! was in flight are covered by the next one. One fdatasync is in flight at a time per partition.
//! A roll fdatasyncs the old segment (after trimming its padding) before the first write to the
//! new one, and fsyncs the directory after creating the new file, so "durable" always means a
//! prefix of the log.
//!
//! `flush.messages` and `flush.ms` only *request* syncs (they never block appends).
//!
//! # Zero-filling ahead
//! Once a partition is asked for durability, the writer keeps a zero-filled region ahead of its
//! data so that syncs mostly cover overwrites of committed blocks: `zero_fill.rs` (why, and how
//! much at a time). The active file may thus end in zeros past its logical end.
//!

use std::rc::Rc;
use std::time::Duration;

use glommio::io::OpenOptions;

use super::error::StorageError;
use super::segment::{self, sync_dir};
use super::state::{ActiveFile, Inner, Op, State, ZeroFill};
use super::zero_fill;

/// New index entries that trigger an incremental index-file write after a sync.
pub const PERSIST_INDEX_EVERY: usize = 128;

/// Upper bound of one coalesced DMA write.
pub const MAX_COALESCED_WRITE: usize = 4 << 20;

pub(crate) async fn writer_loop(inner: Rc<Inner>) {
    // Spawned while the caller holds the state borrow; glommio may poll a new task at once.
    // Yielding first also lets appends queued in the same tick coalesce into one write.
    futures_lite::future::yield_now().await;
    loop {
        let work = {
            let mut st = inner.st.borrow_mut();
            if st.failed.is_some() {
                st.writer_running = false;
                st.pending.clear();
                return;
            }
            match st.pending.front() {
                None => {
                    st.writer_running = false;
                    return;
                }
                Some(Op::Roll { .. } | Op::Snapshot { .. }) => {
                    vec![st.pending.pop_front().expect("front")]
                }
                Some(Op::Write { .. }) => {
                    let mut ops = Vec::new();
                    let mut bytes = 0;
                    while let Some(Op::Write { bytes: b, .. }) = st.pending.front() {
                        if !ops.is_empty() && bytes + b.len() > MAX_COALESCED_WRITE {
                            break;
                        }
                        bytes += b.len();
                        ops.push(st.pending.pop_front().expect("front"));
                    }
                    ops
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
                index,
                time_index,
                producers,
                seq,
            }) = work.into_iter().next()
            else {
                unreachable!("checked above")
            };
            do_roll(
                &inner, old_base, new_base, index, time_index, producers, seq,
            )
            .await
        } else {
            do_write(&inner, work).await
        };
        if let Err(e) = res {
            inner.fail(&e);
            let mut st = inner.st.borrow_mut();
            st.writer_running = false;
            st.pending.clear();
            return;
        }
    }
}

async fn do_write(inner: &Rc<Inner>, ops: Vec<Op>) -> Result<(), StorageError> {
    let (dma, align, tail, written, base) = {
        let st = inner.st.borrow();
        let a = st.active.as_ref().ok_or(StorageError::Closed)?;
        (a.dma.clone(), a.align, a.tail.clone(), a.written, a.base)
    };
    let new_bytes: usize = ops
        .iter()
        .map(|op| match op {
            Op::Write { bytes, .. } => bytes.len(),
            Op::Roll { .. } | Op::Snapshot { .. } => 0,
        })
        .sum();
    let data_len = tail.len() + new_bytes;
    let buf_len = data_len.div_ceil(align as usize) * align as usize;
    let mut buf = dma.alloc_dma_buffer(buf_len);
    let out = buf.as_bytes_mut();
    out[..tail.len()].copy_from_slice(&tail);
    let mut at = tail.len();
    let mut next_offset = 0;
    let mut messages = 0;
    let mut seq = 0;
    for op in &ops {
        if let Op::Write {
            bytes,
            base_offset,
            position,
            next_offset: n,
            messages: m,
            seq: s,
        } = op
        {
            debug_assert_eq!(*position, written + (at - tail.len()) as u64);
            out[at..at + bytes.len()].copy_from_slice(bytes);
            rebase(&mut out[at..at + bytes.len()], *base_offset);
            at += bytes.len();
            next_offset = *n;
            messages += *m;
            seq = *s;
        }
    }
    out[data_len..].fill(0);
    let new_tail_start = data_len - data_len % align as usize;
    let new_tail = out[new_tail_start..data_len].to_vec();
    let write_pos = written - tail.len() as u64;
    let write_end = write_pos + buf_len as u64;
    let zero_fill = inner.st.borrow().sync_hint;
    if zero_fill {
        zero_fill::zero_fill_ahead(inner, &dma, written, write_end).await?;
    }
    // Blocks below `zeroed` were zero-filled and committed (a fill moves it only after its
    // fdatasync), so a write ending there changes no metadata.
    let changes_meta = write_end
        > inner
            .st
            .borrow()
            .active
            .as_ref()
            .map_or(0, |a| a.fill.zeroed());
    // Someone reads this partition: keep a copy of what this write adds (`recent.rs`).
    let keep = {
        let st = inner.st.borrow();
        st.segments.get(&base).is_some_and(|s| s.reader.is_some())
            && super::recent::RecentWrites::has_room(new_bytes)
    };
    let kept = keep.then(|| bytes::Bytes::copy_from_slice(&out[tail.len()..data_len]));
    let n = dma.write_at(buf, write_pos).await?;
    if n < data_len {
        return Err(StorageError::Io(std::io::Error::other(format!(
            "short direct write: {n} of {data_len} bytes"
        ))));
    }
    let (flush_now, arm_timer, flush_ms) = {
        let mut st = inner.st.borrow_mut();
        let new_written = written + new_bytes as u64;
        let a = st.active.as_mut().ok_or(StorageError::Closed)?;
        a.tail = new_tail;
        a.written = new_written;
        match kept {
            Some(b) => a.recent.push(written, b),
            None => a.recent.clear(),
        }
        if changes_meta {
            a.meta_changes += 1;
        }
        // The segment being written, not the newest in the map: a queued roll may already have
        // inserted the next one.
        if let Some(seg) = st.segments.get_mut(&base) {
            seg.size = new_written;
            seg.next_offset = next_offset;
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
                        new_bytes as libc::off_t,
                        libc::POSIX_FADV_WILLNEED,
                    );
                }
            }
        }
        st.hw = next_offset;
        st.done_seq = seq;
        st.unflushed_messages += messages;
        let cfg = inner.config.borrow();
        let flush_now = st.unflushed_messages >= cfg.flush_messages;
        let arm = cfg.flush_ms != u64::MAX && !st.flush_timer_armed;
        if arm {
            st.flush_timer_armed = true;
        }
        (flush_now, arm, cfg.flush_ms)
    };
    if flush_now {
        let mut st = inner.st.borrow_mut();
        let target = st.hw - 1;
        if st.sync_requested < target {
            st.sync_requested = target;
        }
        ensure_syncer(inner, &mut st);
    }
    if arm_timer {
        let inner2 = inner.clone();
        glommio::spawn_local(async move {
            glommio::timer::sleep(Duration::from_millis(flush_ms)).await;
            let mut st = inner2.st.borrow_mut();
            st.flush_timer_armed = false;
            if st.failed.is_none() && st.active.is_some() {
                let target = st.hw - 1;
                if st.sync_requested < target {
                    st.sync_requested = target;
                }
                ensure_syncer(&inner2, &mut st);
            }
        })
        .detach();
    }
    inner.progress.notify();
    inner.appended.notify();
    Ok(())
}

/// Sets the broker-owned header fields of the validated batches in `buf` (see `Op::Write`):
/// consecutive base offsets from `base`, partition leader epoch 0. This is where the produced
/// bytes are copied anyway (into the DMA buffer), so the request's bytes need no copy of their own.
fn rebase(buf: &mut [u8], base: i64) {
    use crate::protocol::record_batch::{BatchHeader, set_base_offset, set_partition_leader_epoch};
    let mut pos = 0;
    let mut next = base;
    while pos < buf.len() {
        let b = &mut buf[pos..];
        set_base_offset(b, next);
        set_partition_leader_epoch(b, 0);
        // Validated in `append_assign`; a header that does not parse cannot occur.
        let Ok(h) = BatchHeader::parse(b) else { return };
        next = h.last_offset() + 1;
        pos += h.total_len();
    }
}

/// Waits until no background index persist is running (close rewrites the index files whole).
pub(crate) async fn wait_persist_idle(inner: &Rc<Inner>) {
    while inner.st.borrow().persisting {
        inner.progress.wait().await;
    }
}

/// Writes a periodic producer-state snapshot. A failure only costs a longer replay after a
/// crash, so it is logged, not fatal.
async fn do_snapshot(inner: &Rc<Inner>, offset: i64, bytes: Vec<u8>, seq: u64) {
    let dir = inner.dir.clone();
    let res = async {
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
        let mut st = inner.st.borrow_mut();
        if st.done_seq < seq {
            st.done_seq = seq;
        }
    }
    inner.progress.notify();
}

async fn do_roll(
    inner: &Rc<Inner>,
    old_base: i64,
    new_base: i64,
    index: Vec<u8>,
    time_index: Vec<u8>,
    producers: Vec<u8>,
    seq: u64,
) -> Result<(), StorageError> {
    let dir = inner.dir.clone();
    let (old_dma, old_written, align) = {
        let st = inner.st.borrow();
        let a = st.active.as_ref().ok_or(StorageError::Closed)?;
        debug_assert_eq!(a.base, old_base);
        (a.dma.clone(), a.written, a.align)
    };
    // Seal: trim the direct-I/O padding (after any zero-fill landed), make the data and the new
    // size durable, write the trimmed indexes.
    zero_fill::wait_fill_idle(inner).await;
    old_dma.truncate(old_written).await?;
    old_dma.fdatasync().await?;
    segment::write_small_file(&segment::index_path(&dir, old_base), index).await?;
    segment::write_small_file(&segment::time_index_path(&dir, old_base), time_index).await?;
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
        let mut st = inner.st.borrow_mut();
        st.active = Some(ActiveFile {
            base: new_base,
            dma: Rc::new(f),
            align,
            tail: Vec::new(),
            written: 0,
            fill: ZeroFill::new(0),
            meta_changes: 1,
            meta_synced: 0,
            recent: Default::default(),
        });
        // Everything before the new segment was synced with the old one.
        if st.durable < new_base {
            st.durable = new_base;
        }
        st.done_seq = seq;
        if let Some(s) = st.segments.get_mut(&old_base) {
            s.persisted_index = s.index.as_ref().map_or(0, |i| i.len());
            s.persisted_time_index = s.time_index.as_ref().map_or(0, |t| t.len());
        }
    }
    if let Ok(f) = Rc::try_unwrap(old_dma) {
        f.close().await?;
    }
    inner.progress.notify();
    inner.synced.notify();
    Ok(())
}

pub(crate) fn ensure_syncer(inner: &Rc<Inner>, st: &mut State) {
    if !st.syncer_running && st.failed.is_none() {
        st.syncer_running = true;
        glommio::spawn_local(sync_loop(inner.clone())).detach();
    }
}

async fn sync_loop(inner: Rc<Inner>) {
    futures_lite::future::yield_now().await;
    // The shard's device flush, looked up once per run of this loop (the lookup allocates).
    let mut shared: Option<Option<Rc<super::flush_anchor::DeviceFlush>>> = None;
    loop {
        let (target, dma, flush_only, changes) = {
            let mut st = inner.st.borrow_mut();
            let idle = st.failed.is_some()
                || st.sync_requested < st.durable
                || st.hw <= st.durable
                || st.active.is_none();
            if idle {
                st.syncer_running = false;
                return;
            }
            st.unflushed_messages = 0;
            let a = st.active.as_ref().expect("checked");
            // Data that sits in committed blocks needs only a device flush, shared with every
            // partition of the shard; the segment's own fdatasync would also wait for a journal
            // commit whenever a zero-fill runs (see `flush_anchor.rs`).
            let flush_only = a.meta_changes == a.meta_synced;
            (st.hw, a.dma.clone(), flush_only, a.meta_changes)
        };
        let device = if flush_only {
            if shared.is_none() {
                shared = Some(super::flush_anchor::device_flush_for(&inner.dir).await);
            }
            shared.clone().flatten()
        } else {
            None
        };
        let synced = match &device {
            Some(device) => device.flush().await.map_err(StorageError::from),
            None => dma.fdatasync().await.map_err(StorageError::from),
        };
        if synced.is_ok() {
            let mut st = inner.st.borrow_mut();
            if device.is_some() {
                st.sync_stats.anchor_syncs += 1;
            } else {
                st.sync_stats.file_syncs += 1;
                if let Some(a) = st.active.as_mut().filter(|a| Rc::ptr_eq(&a.dma, &dma)) {
                    a.meta_synced = a.meta_synced.max(changes);
                }
            }
        }
        if let Err(e) = synced {
            inner.fail(&e);
            inner.st.borrow_mut().syncer_running = false;
            return;
        }
        {
            let mut st = inner.st.borrow_mut();
            if st.durable < target {
                st.durable = target;
            }
        }
        inner.synced.notify();
        // Index entries for synced data are appended to the index files (unsynced hints that
        // recovery verifies), so reopening after a crash scans only the tail. In its own task:
        // awaited here, its open/write/close of two files held up the next sync (and every
        // acks=all produce waiting for it) after every sync that added PERSIST_INDEX_EVERY
        // entries, many times a second at 250k msg/s (docs/perf/storage-appender.md).
        let start = {
            let mut st = inner.st.borrow_mut();
            !std::mem::replace(&mut st.persisting, true)
        };
        if start {
            let inner2 = inner.clone();
            glommio::spawn_local(async move {
                if let Err(e) = persist_active_indexes(&inner2, false).await {
                    tracing::warn!(dir = %inner2.dir.display(), error = %e, "could not persist index entries");
                }
                inner2.st.borrow_mut().persisting = false;
                inner2.progress.notify();
            })
            .detach();
        }
    }
}

/// Writes the active segment's index entries to its index files: all of them, rewritten and
/// synced (`full`), or only the new ones, appended without sync.
pub(crate) async fn persist_active_indexes(
    inner: &Rc<Inner>,
    full: bool,
) -> Result<(), StorageError> {
    let (base, ib, tb, ipos, tpos, ilen, tlen) = {
        let st = inner.st.borrow();
        let Some(base) = st.active.as_ref().map(|a| a.base) else {
            return Ok(());
        };
        let Some(seg) = st.segments.get(&base) else {
            return Ok(());
        };
        let durable = st.durable;
        let idx = seg.index.as_ref();
        let tix = seg.time_index.as_ref();
        // Only entries for durable data. Entries are in offset order: binary search (this runs
        // after every fdatasync; a linear count grew with the segment, 262k entries in a full
        // 1 GiB segment).
        let ilen = idx.map_or(0, |i| {
            i.entries()
                .partition_point(|e| seg.base_offset + (e.relative_offset as i64) < durable)
        });
        let tlen = tix.map_or(0, |t| {
            t.entries()
                .partition_point(|e| seg.base_offset + (e.relative_offset as i64) < durable)
        });
        if full {
            let mut ib = idx.map(|i| i.encode()).unwrap_or_default();
            ib.truncate(ilen * 8);
            let mut tb = tix.map(|t| t.encode()).unwrap_or_default();
            tb.truncate(tlen * 12);
            (seg.base_offset, ib, tb, 0, 0, ilen, tlen)
        } else {
            // Batch index-file writes: recovery re-scans at most this many entries' worth of
            // data (about 512 KiB at the default interval), and the syncer is not held up by an
            // open/write/close pair after every fdatasync.
            if ilen < seg.persisted_index + PERSIST_INDEX_EVERY
                && tlen < seg.persisted_time_index + PERSIST_INDEX_EVERY
            {
                return Ok(());
            }
            let from_i = seg.persisted_index.min(ilen);
            let from_t = seg.persisted_time_index.min(tlen);
            let mut ib = idx.map(|i| i.encode_from(from_i)).unwrap_or_default();
            ib.truncate((ilen - from_i) * 8);
            let mut tb = tix.map(|t| t.encode_from(from_t)).unwrap_or_default();
            tb.truncate((tlen - from_t) * 12);
            (
                seg.base_offset,
                ib,
                tb,
                from_i as u64 * 8,
                from_t as u64 * 12,
                ilen,
                tlen,
            )
        }
    };
    let dir = inner.dir.clone();
    if full {
        segment::write_small_file(&segment::index_path(&dir, base), ib).await?;
        segment::write_small_file(&segment::time_index_path(&dir, base), tb).await?;
    } else {
        segment::write_small_file_at(&segment::index_path(&dir, base), ib, ipos).await?;
        segment::write_small_file_at(&segment::time_index_path(&dir, base), tb, tpos).await?;
    }
    let mut st = inner.st.borrow_mut();
    if let Some(seg) = st.segments.get_mut(&base) {
        seg.persisted_index = ilen;
        seg.persisted_time_index = tlen;
    }
    Ok(())
}
