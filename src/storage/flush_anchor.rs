//! Device flushes shared by a shard's partitions, through an anchor file.
//!
//! # Why
//! `fdatasync(fd)` on ext4 (and XFS) does two things: if the inode has metadata that data depends
//! on and that is not yet committed (new blocks, a larger size), it forces a journal commit; then
//! it flushes the device's volatile write cache. An acks=all sync of data that overwrote
//! zero-filled, already committed blocks needs only the flush, and one flush makes every completed
//! write on the device durable, whichever partition wrote it. Two costs follow from syncing each
//! partition's segment separately:
//! - While a partition's background zero-fill runs (see `appender.rs`), the *same inode* gains
//!   new blocks and a new size, so every data sync in that window also waits for a journal commit
//!   of the fill's metadata: at 250k msg/s acks=all such syncs took several times as long as the
//!   others, and a flush through the anchor took less (measured in
//!   `docs/perf/storage-appender.md`).
//! - Every partition had its own fdatasync in flight, so up to one flush per partition queued at
//!   a disk that serves requests in order, each waiting for the ones ahead of it.
//!
//! # What
//! When every data write a partition's sync must cover landed in blocks that were zero-filled *and
//! committed* before (the fill's own fdatasync completed; see `MetaChanges` in `state/sync.rs`), the data
//! needs nothing from the journal and a device flush is all durability requires. The syncer then
//! asks the shard's [`DeviceFlush`] instead of fdatasyncing the segment: it `fdatasync`s the
//! *anchor*, an empty file in the data directory that is never written. Its inode is always clean,
//! so the kernel skips the commit and issues just the flush (ext4: `ext4_fsync_journal` finds its
//! `i_datasync_tid` committed and sets `needs_barrier`; XFS: no log force, so `xfs_file_fsync`
//! flushes the data device). Group commit then spans the shard: a caller waits for the first flush
//! that starts after its call, at most `MAX_IN_FLIGHT` run at once, and every partition that asks
//! meanwhile shares the next one. Against the segment's own fdatasync (except during fills) this
//! lowered produce p99 at 250k msg/s acks=all and at the maximum rate, with throughput within the
//! disk's noise (measured in `docs/perf/storage-appender.md`).
//!
//! # When not
//! Only on ext4 and XFS (checked with `statfs`), with the anchor on the same device as the
//! partition; anywhere else (btrfs copy-on-write, tmpfs, …) the syncer always fdatasyncs the
//! segment itself, as it does for any partition whose newest writes changed metadata (the first
//! writes of a segment, writes that outran the zero-fill, partitions that never zero-fill). When
//! in doubt the segment's own fdatasync is used, which is always correct.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{DmaFile, OpenOptions};

use crate::sync::notify::Notify;

/// File name of the anchor in the data directory.
pub const ANCHOR_NAME: &str = ".ringbolt-flush-anchor";

const EXT4_SUPER_MAGIC: i64 = 0xEF53;
const XFS_SUPER_MAGIC: i64 = 0x5846_5342;

thread_local! {
    /// Per data directory: the shard's device flush, or `None` where the filesystem does not
    /// qualify (or opening the anchor failed). Shared by every partition of the shard.
    static FLUSHES: RefCell<HashMap<PathBuf, Option<Rc<DeviceFlush>>>> = RefCell::new(HashMap::new());
}

/// Flushes in flight at once (per shard and data directory).
const MAX_IN_FLIGHT: u8 = 2;

/// Group commit across the shard's partitions: device flushes through the anchor, at most one in
/// flight; a caller waits for the first flush that *starts* after its call, so every write that
/// completed before the call is covered, and all callers that arrive while one flush runs share
/// the next.
pub struct DeviceFlush {
    anchor: Rc<DmaFile>,
    /// Generation of the newest flush started / completed (0: none yet).
    started: Cell<u64>,
    completed: Cell<u64>,
    in_flight: Cell<u8>,
    /// A flush failed: the device lost writes it had acknowledged; every later call fails too
    /// (retrying a failed flush may report success for data that is gone).
    failed: RefCell<Option<String>>,
    done: Rc<Notify>,
}

impl DeviceFlush {
    /// Flushes started so far.
    pub fn flushes(&self) -> u64 {
        self.started.get()
    }

    /// Resolves once a device flush that started after this call has completed.
    pub async fn flush(self: &Rc<Self>) -> std::io::Result<()> {
        let need = self.started.get() + 1;
        loop {
            if let Some(e) = self.failed.borrow().as_ref() {
                return Err(std::io::Error::other(e.clone()));
            }
            if self.completed.get() >= need {
                return Ok(());
            }
            if self.started.get() < need && self.in_flight.get() < MAX_IN_FLIGHT {
                // Start the one we need. In its own task, so a caller that goes away cannot leave
                // it half done.
                let generation = self.started.get() + 1;
                self.started.set(generation);
                self.in_flight.set(self.in_flight.get() + 1);
                let me = self.clone();
                glommio::spawn_local(async move {
                    if let Err(e) = me.anchor.fdatasync().await {
                        tracing::error!(error = %e, "device flush through the anchor failed");
                        *me.failed.borrow_mut() = Some(e.to_string());
                    }
                    // A later flush covers everything an earlier one does.
                    me.completed.set(me.completed.get().max(generation));
                    me.in_flight.set(me.in_flight.get() - 1);
                    me.done.notify();
                })
                .detach();
            }
            self.done.wait().await;
        }
    }
}

fn fs_magic(path: &Path) -> Option<i64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs fills the struct we pass; the path is a valid C string.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut s) };
    (rc == 0).then_some(s.f_type as i64)
}

/// The shard's device flush for the partition directory `partition_dir` (its parent is the data
/// directory), set up on first use; `None` when a flush through the anchor would not be
/// equivalent to the segment's own fdatasync.
pub async fn device_flush_for(partition_dir: &Path) -> Option<Rc<DeviceFlush>> {
    let data_dir = partition_dir.parent()?.to_path_buf();
    if let Some(known) = FLUSHES.with(|a| a.borrow().get(&data_dir).cloned()) {
        return known;
    }
    let opened = open_anchor(&data_dir, partition_dir).await.map(|anchor| {
        Rc::new(DeviceFlush {
            anchor: Rc::new(anchor),
            started: Cell::new(0),
            completed: Cell::new(0),
            in_flight: Cell::new(0),
            failed: RefCell::new(None),
            done: Notify::new(),
        })
    });
    if opened.is_none() {
        tracing::debug!(dir = %data_dir.display(), "no flush anchor: segments fdatasync themselves");
    }
    FLUSHES.with(|a| {
        a.borrow_mut()
            .entry(data_dir)
            .or_insert_with(|| opened)
            .clone()
    })
}

async fn open_anchor(data_dir: &Path, partition_dir: &Path) -> Option<DmaFile> {
    let magic = fs_magic(partition_dir)?;
    if magic != EXT4_SUPER_MAGIC && magic != XFS_SUPER_MAGIC {
        return None;
    }
    let path = data_dir.join(ANCHOR_NAME);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .dma_open(&path)
        .await
        .ok()?;
    let same_device = match (std::fs::metadata(&path), std::fs::metadata(partition_dir)) {
        (Ok(a), Ok(p)) => a.dev() == p.dev(),
        _ => false,
    };
    same_device.then_some(f)
}
