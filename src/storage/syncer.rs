//! The partition's group-commit syncer, the `flush.*` policies, and the background writes of
//! index entries for synced data.
//!
//! `wait_durable(n)` records the wish and starts the syncer if it is idle. The syncer loops: note
//! the written end `h` and the active file, `fdatasync` (or, when every written block's
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
//! Its state, with the invariants, is `SyncState` (`state/sync.rs`) and, per active file,
//! `MetaChanges`.

use std::rc::Rc;
use std::time::Duration;

use super::error::StorageError;
use super::segment;
use super::state::{Inner, State};

/// New index entries that trigger an incremental index-file write after a sync.
pub const PERSIST_INDEX_EVERY: usize = 128;

/// Waits until no background index persist is running (close rewrites the index files whole).
pub(crate) async fn wait_persist_idle(inner: &Rc<Inner>) {
    while inner.state().sync().persisting() {
        inner.progress().wait().await;
    }
}

/// Starts the sync task unless it runs (or the log failed).
pub(crate) fn ensure_syncer(inner: &Rc<Inner>, st: &mut State) {
    if !st.is_failed() && st.sync_mut().try_start() {
        glommio::spawn_local(sync_loop(inner.clone())).detach();
    }
}

/// Asks for everything written so far to become durable (the `flush.*` policies).
pub(crate) fn request_sync_of_written(inner: &Rc<Inner>, st: &mut State) {
    let target = st.written_end() - 1;
    st.sync_mut().request(target);
    ensure_syncer(inner, st);
}

/// Starts the `flush.ms` timer once `SyncState::try_arm_timer` armed it: when it fires,
/// everything written by then is asked to become durable.
pub(crate) fn start_flush_timer(inner: &Rc<Inner>, flush_ms: u64) {
    let inner = inner.clone();
    glommio::spawn_local(async move {
        glommio::timer::sleep(Duration::from_millis(flush_ms)).await;
        let mut st = inner.state_mut();
        st.sync_mut().timer_fired();
        if !st.is_failed() && st.active().is_some() {
            request_sync_of_written(&inner, &mut st);
        }
    })
    .detach();
}

async fn sync_loop(inner: Rc<Inner>) {
    futures_lite::future::yield_now().await;
    // The shard's device flush, looked up once per run of this loop (the lookup allocates).
    let mut shared: Option<Option<Rc<super::flush_anchor::DeviceFlush>>> = None;
    loop {
        let (target, dma, flush_only, changes) = {
            let mut st = inner.state_mut();
            let hw = st.written_end();
            let idle = st.is_failed() || st.sync().is_idle(hw) || st.active().is_none();
            if idle {
                st.sync_mut().stop();
                drop(st);
                inner.idle().notify();
                return;
            }
            st.sync_mut().begin();
            let a = st.active().expect("checked");
            // Data that sits in committed blocks needs only a device flush, shared with every
            // partition of the shard; the segment's own fdatasync would also wait for a journal
            // commit whenever a zero-fill runs (see `flush_anchor.rs`).
            let flush_only = a.commits().all_committed();
            (hw, a.dma().clone(), flush_only, a.commits().made())
        };
        let device = if flush_only {
            if shared.is_none() {
                shared = Some(super::flush_anchor::device_flush_for(inner.dir()).await);
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
            let mut st = inner.state_mut();
            st.sync_mut().count(device.is_some());
            if device.is_none()
                && let Some(a) = st.active_mut().filter(|a| a.is_file(&dma))
            {
                a.commits_mut().committed_through(changes);
            }
        }
        if let Err(e) = synced {
            inner.fail(&e);
            inner.state_mut().sync_mut().stop();
            inner.idle().notify();
            return;
        }
        inner.state_mut().sync_mut().advance(target);
        inner.synced().notify();
        // Index entries for synced data are appended to the index files (unsynced hints that
        // recovery verifies), so reopening after a crash scans only the tail. In its own task:
        // awaited here, its open/write/close of two files held up the next sync (and every
        // acks=all produce waiting for it) after every sync that added PERSIST_INDEX_EVERY
        // entries, many times a second at 250k msg/s (docs/perf/storage-appender.md).
        let start = inner.state_mut().sync_mut().try_start_persist();
        if start {
            let inner2 = inner.clone();
            glommio::spawn_local(async move {
                if let Err(e) = persist_active_indexes(&inner2, false).await {
                    tracing::warn!(dir = %inner2.dir().display(), error = %e, "could not persist index entries");
                }
                inner2.state_mut().sync_mut().persist_done();
                inner2.progress().notify();
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
        let st = inner.state();
        let Some(base) = st.active().map(|a| a.base()) else {
            return Ok(());
        };
        let Some(seg) = st.segments().get(base) else {
            return Ok(());
        };
        let durable = st.sync().durable();
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
    let dir = inner.dir().to_path_buf();
    if full {
        segment::write_small_file(&segment::index_path(&dir, base), ib).await?;
        segment::write_small_file(&segment::time_index_path(&dir, base), tb).await?;
    } else {
        segment::write_small_file_at(&segment::index_path(&dir, base), ib, ipos).await?;
        segment::write_small_file_at(&segment::time_index_path(&dir, base), tb, tpos).await?;
    }
    let mut st = inner.state_mut();
    if let Some(seg) = st.segments_mut().get_mut(base) {
        seg.persisted_index = ilen;
        seg.persisted_time_index = tlen;
    }
    Ok(())
}
