//! The leader epoch cache: where each leader epoch starts in the log, kept in
//! `<partition dir>/leader-epoch-checkpoint` as Kafka keeps it.
//!
//! Every batch carries the leader epoch of the leader that appended it (its partition leader
//! epoch). The cache maps each epoch to the first offset written in it; from it, Kafka's
//! OffsetForLeaderEpoch answers "where did epoch N end?" (the start of the next epoch, or the log
//! end for the latest), which consumers use to detect log truncation after a leader change
//! (KIP-320) and followers use to truncate their logs before they replicate (KIP-101). Replication
//! (issue 19) builds on it: a follower calls [`LeaderEpochCache::assign`] for the batches it
//! appends, [`LeaderEpochCache::truncate_from_end`] when it truncates, and the leader answers
//! with [`LeaderEpochCache::end_offset_for`].
//!
//! # Today: one leader, epoch 0
//! A single node is the leader of every partition from its creation on and is never re-elected,
//! so every partition's leader epoch is [`LEADER_EPOCH`] (0): Metadata reports it, every batch is
//! stamped with it, ListOffsets answers it. Like Kafka's `Partition.makeLeader`, opening a log
//! assigns the leader epoch at the log end, so a fresh partition's file holds `0 0` (and after
//! DeleteRecords, `0 <log start>`).
//!
//! # Replicated partitions (issue 19)
//! A leader's epoch comes from the cluster metadata: `set_role(Leader { epoch })` assigns it at
//! the log end and client appends are stamped with it; a follower adds the epochs of the
//! leader's batches as they arrive, and a truncation cuts the cache back with the log
//! (`replica.rs`). Opening a log only assigns epoch 0 when the cache knows no later epoch.
//!
//! # Semantics (Kafka's `LeaderEpochFileCache`)
//! Entries are strictly increasing in both epoch and start offset. `assign(epoch, offset)` is a
//! no-op for the latest epoch at or after its start; otherwise it first removes the entries it
//! conflicts with (epoch or start not below the new one), then appends. `truncate_from_start`
//! (the log start moved) drops the entries wholly below the new start and moves the one covering
//! it to it; `truncate_from_end` (the log was cut back) drops the entries starting at or after
//! the new end.
//!
//! # Crash safety
//! The file is replaced crash-safely (`checkpoint.rs`). Kafka writes it synchronously in
//! `assign`, before the batch that opened the epoch is appended, so a flushed batch's epoch is
//! always in the file. Here the append path never waits on a file: `append_assign` updates the
//! cache in the same synchronous step that assigns the offsets and starts a background write.
//! A crash can then leave a batch of a new epoch on disk whose entry the file lacks. Opening a log
//! therefore checks the file against the log instead: it truncates the cache to the recovered log
//! (`[log start, log end)`), then looks at the last batch: if the cache does not give that
//! batch's epoch for its offset, the epochs after the cache's latest entry are recovered from the
//! batch headers from that entry's start on (a log with no file at all, e.g. written before this
//! existed, is recovered from its log start, in one step when its first and last batches share an
//! epoch, as epochs never decrease along a log). The check reads one batch header; the scan only
//! happens after a crash in the moment between a new epoch's first append and its file write.
//!
//! Retention moves the log start without touching the cache; every read of the cache truncates
//! it to the current log start first, and the file follows at the next write or open.

use std::cell::{Cell, RefCell};
use std::path::Path;

use glommio::sync::Semaphore;

use crate::format::record_batch::BatchHeader;

use super::checkpoint::{self, MalformedCheckpoint};
use super::error::StorageError;
use super::log::PartitionLog;
use super::segment::HeaderScanner;

/// The leader epoch of every partition on this single-node broker (see the module docs).
pub const LEADER_EPOCH: i32 = 0;
/// Kafka's `UNDEFINED_EPOCH`.
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's `UNDEFINED_EPOCH_OFFSET`.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;
/// The file name, in the partition directory.
pub const FILE_NAME: &str = "leader-epoch-checkpoint";
const VERSION: u32 = 0;

/// One epoch and the first offset written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The epochs of one partition's log, oldest first (see the module docs for the rules).
///
/// Invariant: entries are strictly increasing in epoch and in start offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// A cache with `entries` assigned in order (as Kafka loads its file).
    pub fn from_entries(entries: impl IntoIterator<Item = EpochEntry>) -> Self {
        let mut c = LeaderEpochCache::default();
        for e in entries {
            c.assign(e.epoch, e.start_offset);
        }
        c
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `start_offset`; true if the cache changed. Negative values
    /// are ignored (Kafka refuses them).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        let needed = self
            .latest()
            .is_none_or(|l| epoch != l.epoch || start_offset < l.start_offset);
        if !needed {
            return false;
        }
        let mut removed = Vec::new();
        while let Some(l) = self.entries.last().copied() {
            if l.epoch < epoch && l.start_offset < start_offset {
                break;
            }
            self.entries.pop();
            removed.push(l);
        }
        // Removing one entry that started at the same offset is expected (no data was written
        // in it); anything else truncated epochs that had data.
        if removed.len() > 1
            || removed
                .first()
                .is_some_and(|r| r.start_offset != start_offset)
        {
            tracing::warn!(
                ?removed,
                epoch,
                start_offset,
                "a new leader epoch entry truncated conflicting ones"
            );
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// The log start moved to `start_offset`: entries starting at or below it are removed and the
    /// last of them comes back starting at `start_offset`; true if the cache changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let n = self
            .entries
            .iter()
            .take_while(|e| e.start_offset <= start_offset)
            .count();
        if n == 0 {
            return false;
        }
        let last = self.entries[n - 1];
        let moved = EpochEntry {
            epoch: last.epoch,
            start_offset,
        };
        let changed = n > 1 || last != moved;
        self.entries.drain(..n);
        self.entries.insert(0, moved);
        changed
    }

    /// The log was cut back to end at `end_offset`: entries starting at or after it are removed;
    /// true if the cache changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        if end_offset >= 0 {
            while self.latest().is_some_and(|l| l.start_offset >= end_offset) {
                self.entries.pop();
            }
        }
        self.entries.len() != before
    }

    /// Kafka's `endOffsetFor`: the largest epoch at or below `requested` and where it ended (the
    /// start of the next epoch, or `log_end` for the latest epoch);
    /// ([`UNDEFINED_EPOCH`], [`UNDEFINED_EPOCH_OFFSET`]) when unknown. A `requested` below every
    /// epoch known answers `requested` with the first epoch's start (the data before was deleted).
    pub fn end_offset_for(&self, requested: i32, log_end: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if requested == UNDEFINED_EPOCH {
            return UNDEFINED;
        }
        if self.latest().is_some_and(|l| l.epoch == requested) {
            return (requested, log_end);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return UNDEFINED;
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            None => (requested, higher.start_offset),
            Some(floor) => (floor.epoch, higher.start_offset),
        }
    }

    /// Kafka's `epochForOffset`: the epoch `offset` was written in, if the cache knows it.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let mut prev = None;
        for e in &self.entries {
            if e.start_offset == offset {
                return Some(e.epoch);
            }
            if e.start_offset > offset {
                return prev;
            }
            prev = Some(e.epoch);
        }
        prev
    }

    /// The file's contents: version 0, the count, then `epoch startOffset` lines.
    pub fn encode(&self) -> Vec<u8> {
        let lines: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{} {}", e.epoch, e.start_offset))
            .collect();
        checkpoint::encode(VERSION, &lines)
    }

    /// Parses the file's contents (`file` names it in errors).
    pub fn parse(file: &str, bytes: &[u8]) -> Result<Self, MalformedCheckpoint> {
        let lines = checkpoint::parse(file, VERSION, bytes)?;
        let mut entries = Vec::with_capacity(lines.len());
        for l in lines {
            let entry = match l.as_slice() {
                [e, o] => e.parse().ok().zip(o.parse().ok()),
                _ => None,
            };
            let Some((epoch, start_offset)) = entry else {
                return Err(MalformedCheckpoint {
                    file: file.to_string(),
                    msg: format!("bad entry {:?}", l.join(" ")),
                });
            };
            entries.push(EpochEntry {
                epoch,
                start_offset,
            });
        }
        Ok(Self::from_entries(entries))
    }
}

/// A partition's cache plus what keeps its file in step: a version counter bumped on every change,
/// the version last persisted, and a one-permit semaphore serialising the writes (each writes the
/// cache as it is when its turn comes, so the file only moves forward).
pub(crate) struct EpochFile {
    cache: RefCell<LeaderEpochCache>,
    version: Cell<u64>,
    persisted: Cell<u64>,
    writing: Semaphore,
}

impl EpochFile {
    pub(crate) fn new() -> Self {
        EpochFile {
            cache: RefCell::new(LeaderEpochCache::default()),
            version: Cell::new(0),
            persisted: Cell::new(0),
            writing: Semaphore::new(1),
        }
    }

    /// Applies `f` to the cache; true (and the version bumped) when it changed it.
    fn update(&self, f: impl FnOnce(&mut LeaderEpochCache) -> bool) -> bool {
        let changed = f(&mut self.cache.borrow_mut());
        if changed {
            self.version.set(self.version.get() + 1);
        }
        changed
    }

    /// Writes the cache to `dir` unless the file already holds this version or a later one.
    async fn persist(&self, dir: &Path) -> Result<(), StorageError> {
        let _turn = self
            .writing
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed)?;
        let version = self.version.get();
        if self.persisted.get() >= version {
            return Ok(());
        }
        let bytes = self.cache.borrow().encode();
        checkpoint::write(dir, FILE_NAME, bytes).await?;
        self.persisted.set(version);
        Ok(())
    }
}

/// Reads the cache persisted in `dir`; empty when there is no file, or when it is malformed
/// (logged: the cache is then recovered from the log, see the module docs).
async fn load(dir: &Path) -> Result<LeaderEpochCache, StorageError> {
    let Some(bytes) = checkpoint::read(dir, FILE_NAME).await? else {
        return Ok(LeaderEpochCache::default());
    };
    let file = dir.join(FILE_NAME).display().to_string();
    Ok(LeaderEpochCache::parse(&file, &bytes).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "recovering the leader epochs from the log");
        LeaderEpochCache::default()
    }))
}

impl PartitionLog {
    /// Open: loads the cache, checks it against the recovered log (recovering missed epochs from
    /// the batch headers), assigns the leader epoch at the log end and persists the result if it
    /// differs from the file.
    pub(crate) async fn load_leader_epochs(&self) -> Result<(), StorageError> {
        let dir = self.dir().to_path_buf();
        let loaded = load(&dir).await?;
        let (start, end) = (self.log_start_offset(), self.log_end_offset());
        let mut cache = loaded.clone();
        cache.truncate_from_end(end);
        cache.truncate_from_start(start);
        if start < end
            && let Some(last) = self.last_batch_header().await?
        {
            let at = last.base_offset.max(start);
            if cache.epoch_for_offset(at) != Some(last.partition_leader_epoch)
                && last.partition_leader_epoch >= 0
            {
                self.recover_epochs(&mut cache, &last, start).await?;
            }
        }
        // A single node's epoch; a replica's cache keeps the epochs its leaders stamped (the role
        // notes its own epoch when it becomes leader, `replica.rs`).
        if cache.latest().is_none_or(|l| l.epoch <= LEADER_EPOCH) {
            cache.assign(LEADER_EPOCH, end);
        }
        let epochs = self.epoch_file();
        let changed = cache != loaded;
        *epochs.cache.borrow_mut() = cache;
        if changed {
            epochs.version.set(epochs.version.get() + 1);
            epochs.persist(&dir).await?;
        } else {
            epochs.persisted.set(epochs.version.get());
        }
        Ok(())
    }

    /// Open: adds the epochs the cache missed, from the batch headers after its latest entry (or
    /// the log start). `last` is the log's last batch.
    async fn recover_epochs(
        &self,
        cache: &mut LeaderEpochCache,
        last: &BatchHeader,
        start: i64,
    ) -> Result<(), StorageError> {
        let from = cache.latest().map_or(start, |l| l.start_offset);
        tracing::info!(dir = %self.dir().display(), from, "recovering leader epochs from the batch headers");
        if cache.latest().is_none() {
            let first = self.first_batch_header(start).await?;
            if first.is_some_and(|f| f.partition_leader_epoch == last.partition_leader_epoch) {
                cache.assign(last.partition_leader_epoch, start);
                return Ok(());
            }
        }
        let mut seen = Vec::new();
        self.scan_headers(from, |h| {
            seen.push((h.partition_leader_epoch, h.base_offset.max(start)));
            true
        })
        .await?;
        for (epoch, offset) in seen {
            cache.assign(epoch, offset);
        }
        Ok(())
    }

    /// The log's last batch header (readable data only), if any.
    async fn last_batch_header(&self) -> Result<Option<BatchHeader>, StorageError> {
        let end = self.log_end_offset();
        if end <= self.log_start_offset() {
            return Ok(None);
        }
        let mut last = None;
        self.scan_headers(end - 1, |h| {
            last = Some(*h);
            true
        })
        .await?;
        Ok(last)
    }

    /// The header of the batch holding `offset`, if any.
    async fn first_batch_header(&self, offset: i64) -> Result<Option<BatchHeader>, StorageError> {
        let mut first = None;
        self.scan_headers(offset, |h| {
            first = Some(*h);
            false
        })
        .await?;
        Ok(first)
    }

    /// Walks the headers of the readable batches from the one holding `from` on, in order,
    /// calling `visit` until it returns false.
    async fn scan_headers(
        &self,
        from: i64,
        mut visit: impl FnMut(&BatchHeader) -> bool,
    ) -> Result<(), StorageError> {
        let mut cur = from;
        loop {
            let hw = self.log_end_offset();
            if cur >= hw {
                return Ok(());
            }
            let Some(base) = self.inner().state().segments().holding_or_after(cur) else {
                return Ok(());
            };
            cur = cur.max(base);
            self.ensure_loaded(base).await?;
            let (file, size, next, pos) = {
                let mut st = self.inner().state_mut();
                let dir = self.dir().to_path_buf();
                let Some(seg) = st.segments_mut().get_mut(base) else {
                    continue; // deleted meanwhile
                };
                let file = seg.reader(&dir)?;
                let rel = (cur - base).clamp(0, u32::MAX as i64) as u32;
                let pos = seg
                    .index
                    .as_ref()
                    .and_then(|i| i.lookup(rel))
                    .map_or(0, |e| e.position as u64);
                (file, seg.size, seg.next_offset, pos)
            };
            let mut scanner = HeaderScanner::new(&file, size);
            let mut pos = pos;
            while let Some(h) = scanner.header_at_async(pos).await? {
                pos += h.total_len() as u64;
                if h.last_offset() < cur {
                    continue;
                }
                if !visit(&h) {
                    return Ok(());
                }
            }
            if next <= cur {
                return Ok(());
            }
            cur = next;
        }
    }

    /// Append: the batches from `base_offset` on were stamped with `epoch`; records where the
    /// epoch starts if it is new, and writes the file in the background.
    pub(crate) fn note_epoch(&self, epoch: i32, base_offset: i64) {
        let epochs = self.epoch_file_rc();
        if epochs.update(|c| c.assign(epoch, base_offset)) {
            let dir = self.dir().to_path_buf();
            glommio::spawn_local(async move {
                if let Err(e) = epochs.persist(&dir).await {
                    tracing::warn!(dir = %dir.display(), error = %e, "writing the leader epoch checkpoint failed");
                }
            })
            .detach();
        }
    }

    /// A follower's append: a batch of the leader stamped with `epoch` starts at `base_offset`;
    /// recorded only when `epoch` is newer than the latest known (Kafka's `appendAsFollower`).
    pub(crate) fn note_epoch_if_newer(&self, epoch: i32, base_offset: i64) {
        let newer = epoch >= 0
            && self
                .epoch_file()
                .cache
                .borrow()
                .latest()
                .is_none_or(|l| epoch > l.epoch);
        if newer {
            self.note_epoch(epoch, base_offset);
        }
    }

    /// Truncation: drops the epochs starting at or after `end` (all of them for `None`: the log
    /// restarts empty) and persists the cache before the log is cut, as Kafka's `truncateTo`
    /// does (a crash in between leaves epochs the reopened log recovers from its batches).
    pub(crate) async fn truncate_epochs_from_end(
        &self,
        end: Option<i64>,
    ) -> Result<(), StorageError> {
        let epochs = self.epoch_file();
        if epochs.update(|c| c.truncate_from_end(end.unwrap_or(0).max(0))) {
            epochs.persist(self.dir()).await?;
        }
        Ok(())
    }

    /// DeleteRecords: truncates the cache to the new log start and persists it.
    pub(crate) async fn truncate_epochs_from_start(&self, start: i64) -> Result<(), StorageError> {
        let epochs = self.epoch_file();
        if epochs.update(|c| c.truncate_from_start(start)) {
            epochs.persist(self.dir()).await?;
        }
        Ok(())
    }

    /// OffsetForLeaderEpoch: Kafka's `endOffsetFor(epoch, log end)` on the cache truncated to
    /// the current log start; (epoch, end offset).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let start = self.log_start_offset();
        let epochs = self.epoch_file();
        epochs.update(|c| c.truncate_from_start(start));
        epochs
            .cache
            .borrow()
            .end_offset_for(epoch, self.log_end_offset())
    }

    /// The epoch cache's entries (tests, tools), truncated to the current log start.
    pub fn leader_epochs(&self) -> Vec<EpochEntry> {
        let start = self.log_start_offset();
        let epochs = self.epoch_file();
        epochs.update(|c| c.truncate_from_start(start));
        epochs.cache.borrow().entries().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(epoch: i32, start_offset: i64) -> EpochEntry {
        EpochEntry {
            epoch,
            start_offset,
        }
    }

    #[test]
    fn assign_keeps_entries_monotonic() {
        let mut c = LeaderEpochCache::default();
        assert!(c.assign(0, 0));
        // The same epoch later in the log is no change.
        assert!(!c.assign(0, 10));
        assert!(c.assign(2, 10));
        assert!(c.assign(5, 30));
        assert_eq!(c.entries(), &[e(0, 0), e(2, 10), e(5, 30)]);
        // An older epoch, or a start not after the latest, removes the conflicting entries.
        assert!(c.assign(3, 20));
        assert_eq!(c.entries(), &[e(0, 0), e(2, 10), e(3, 20)]);
        assert!(c.assign(4, 5));
        assert_eq!(c.entries(), &[e(0, 0), e(4, 5)]);
        // The latest epoch earlier than its start moves it back.
        assert!(c.assign(4, 3));
        assert_eq!(c.entries(), &[e(0, 0), e(4, 3)]);
        assert!(!c.assign(-1, 50));
        assert!(!c.assign(6, -1));
    }

    #[test]
    fn truncation_from_start_and_end() {
        let mut c = LeaderEpochCache::from_entries([e(0, 0), e(1, 10), e(3, 20)]);
        // Exclusive: truncating to an entry's start keeps it.
        assert!(!c.truncate_from_start(0));
        assert!(c.truncate_from_start(15));
        assert_eq!(c.entries(), &[e(1, 15), e(3, 20)]);
        assert!(c.truncate_from_start(20));
        assert_eq!(c.entries(), &[e(3, 20)]);
        assert!(c.truncate_from_start(25));
        assert_eq!(c.entries(), &[e(3, 25)]);

        let mut c = LeaderEpochCache::from_entries([e(0, 0), e(1, 10), e(3, 20)]);
        assert!(!c.truncate_from_end(21));
        assert!(c.truncate_from_end(20));
        assert_eq!(c.entries(), &[e(0, 0), e(1, 10)]);
        assert!(c.truncate_from_end(5));
        assert_eq!(c.entries(), &[e(0, 0)]);
        assert!(c.truncate_from_end(0));
        assert!(c.entries().is_empty());
        assert!(!c.truncate_from_end(-1));
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let c = LeaderEpochCache::from_entries([e(1, 10), e(3, 20), e(6, 40)]);
        let leo = 55;
        assert_eq!(c.end_offset_for(UNDEFINED_EPOCH, leo), (-1, -1));
        // The latest epoch ends at the log end.
        assert_eq!(c.end_offset_for(6, leo), (6, 55));
        // A known epoch ends where the next starts.
        assert_eq!(c.end_offset_for(1, leo), (1, 20));
        assert_eq!(c.end_offset_for(3, leo), (3, 40));
        // An unknown epoch between known ones: the largest below it, ending at the next start.
        assert_eq!(c.end_offset_for(2, leo), (1, 20));
        assert_eq!(c.end_offset_for(5, leo), (3, 40));
        // Below every known epoch: the requested epoch, ending where the first known starts.
        assert_eq!(c.end_offset_for(0, leo), (0, 10));
        // Above the latest: unknown.
        assert_eq!(c.end_offset_for(7, leo), (-1, -1));
        assert_eq!(LeaderEpochCache::default().end_offset_for(0, leo), (-1, -1));
    }

    #[test]
    fn epoch_for_offset() {
        let c = LeaderEpochCache::from_entries([e(1, 10), e(3, 20)]);
        assert_eq!(c.epoch_for_offset(5), None);
        assert_eq!(c.epoch_for_offset(10), Some(1));
        assert_eq!(c.epoch_for_offset(19), Some(1));
        assert_eq!(c.epoch_for_offset(20), Some(3));
        assert_eq!(c.epoch_for_offset(1000), Some(3));
    }

    #[test]
    fn file_format_is_kafkas() {
        let c = LeaderEpochCache::from_entries([e(0, 0), e(4, 1200)]);
        assert_eq!(c.encode(), b"0\n2\n0 0\n4 1200\n");
        assert_eq!(LeaderEpochCache::parse("f", &c.encode()).unwrap(), c);
        assert_eq!(
            LeaderEpochCache::parse("f", b"0\n0\n").unwrap(),
            LeaderEpochCache::default()
        );
        for bad in [
            &b"0\n1\n0\n"[..],
            b"0\n1\n0 x\n",
            b"1\n1\n0 0\n",
            b"0\n2\n0 0\n",
        ] {
            assert!(LeaderEpochCache::parse("f", bad).is_err(), "{bad:?}");
        }
        // Out-of-order entries load as Kafka loads them: each assigned in turn.
        let c = LeaderEpochCache::parse("f", b"0\n3\n0 0\n5 50\n3 30\n").unwrap();
        assert_eq!(c.entries(), &[e(0, 0), e(3, 30)]);
    }
}
