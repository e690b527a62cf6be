//! The durable Raft log of the metadata quorum, in `<data-dir>/__cluster_metadata-0/`.
//!
//! # Files
//! - `raft.log`: the entries, appended in index order. Each is one frame:
//!   `u32 LE payload length | u32 LE CRC-32C of the payload | payload`, the payload being the
//!   serde_json encoding of openraft's `Entry` (log id + blank / command / membership). JSON is
//!   larger than a binary encoding, but metadata entries are small and rare (topic changes, ISR
//!   changes, broker registrations), readable with `strings`, and serde_json is already a
//!   dependency.
//! - `raft-vote.json`: the last vote (term, candidate, committed flag).
//! - `raft-state.json`: the last purged log id and the last known committed log id.
//!
//! # Durability
//! Appends are written and `fdatasync`ed before openraft's callback is told they are on disk
//! (Raft must not acknowledge an entry it could lose). The vote and the state file are replaced
//! crash-safely: written to a temporary file, fsynced, renamed over the old one, and the directory
//! fsynced. All I/O is synchronous on the quorum thread: the metadata log sees a few writes a
//! second, and a blocking fsync there only delays other metadata RPCs, never a shard.
//!
//! # Truncation, purge, reload
//! A conflicting suffix (a new leader overwrote it) is cut with `set_len` at the first removed
//! frame. A purge (after a snapshot) first records the purged log id durably, then rewrites the
//! file with the remaining entries (temp + rename): at metadata sizes a rewrite every
//! `snapshot_every` entries is cheap, and it keeps the log a single file. On start the file is
//! read front to back; the first frame that is short, fails its CRC, does not decode, or breaks
//! the index sequence is a torn tail from a crash mid-append and is cut off (it was never
//! acknowledged). Entries at or below the purged id (a crash between the two steps of a purge)
//! are skipped.
//!
//! All entries above the purge point are also kept in memory (a `BTreeMap`): the log between two
//! snapshots is small, and openraft's replication reads from it concurrently through
//! [`LogReader`], which shares the same state.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, StorageIOError};
use serde::{Deserialize, Serialize};

use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "raft-vote.json";
const STATE_FILE: &str = "raft-state.json";
/// Frame header: payload length + CRC-32C.
const HEADER: usize = 8;
/// No metadata entry comes near this; a larger length in a header is corruption.
const MAX_ENTRY: usize = 64 << 20;

/// What `raft-state.json` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StateFile {
    purged: Option<LogId>,
    committed: Option<LogId>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    file: File,
    /// Entries above `state.purged`, by index.
    entries: BTreeMap<u64, Entry>,
    /// Byte offset of each entry's frame in `file`.
    offsets: BTreeMap<u64, u64>,
    /// End of the last whole frame.
    end: u64,
    vote: Option<Vote>,
    state: StateFile,
}

/// The log storage openraft drives. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub(crate) struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

/// A read-only view for openraft's replication tasks.
#[derive(Debug, Clone)]
pub(crate) struct LogReader {
    inner: Arc<Mutex<Inner>>,
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic while holding the lock leaves the in-memory maps possibly ahead of the file only
    // in ways reload repairs; keep going rather than poisoning the quorum thread.
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes `bytes` to `dir/name` crash-safely: temp file, fsync, rename, directory fsync.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// Reads a JSON file written by [`write_atomic`]; `None` when it does not exist.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn frame(entry: &Entry) -> std::io::Result<Vec<u8>> {
    let payload = serde_json::to_vec(entry)?;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| (l as usize) <= MAX_ENTRY)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "entry too large"))?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes the frames in `buf`: the entries with their offsets, and the end of the last good
/// frame (everything after it is a torn or corrupt tail).
fn decode_frames(buf: &[u8]) -> (Vec<(u64, Entry)>, u64) {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut prev_index: Option<u64> = None;
    while buf.len() - pos >= HEADER {
        let len = u32::from_le_bytes(buf[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(buf[pos + 4..pos + 8].try_into().expect("4 bytes"));
        if len > MAX_ENTRY || buf.len() - pos - HEADER < len {
            break;
        }
        let payload = &buf[pos + HEADER..pos + HEADER + len];
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Ok(entry) = serde_json::from_slice::<Entry>(payload) else {
            break;
        };
        let index = entry.log_id.index;
        if prev_index.is_some_and(|p| index != p + 1) {
            break;
        }
        prev_index = Some(index);
        out.push((pos as u64, entry));
        pos += HEADER + len;
    }
    (out, pos as u64)
}

fn io_err(e: &std::io::Error) -> StorageError {
    StorageIOError::write_logs(e).into()
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting a torn tail.
    pub(crate) fn open(dir: &Path) -> std::io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let vote: Option<Vote> = read_json(&dir.join(VOTE_FILE))?;
        let state: StateFile = read_json(&dir.join(STATE_FILE))?.unwrap_or_default();
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        let (frames, end) = decode_frames(&buf);
        if end < buf.len() as u64 {
            tracing::warn!(
                path = %path.display(),
                kept = end,
                cut = buf.len() as u64 - end,
                "metadata log: cutting a torn or corrupt tail"
            );
            file.set_len(end)?;
            file.sync_all()?;
        }
        let purged_index = state.purged.map(|l| l.index);
        let mut entries = BTreeMap::new();
        let mut offsets = BTreeMap::new();
        for (off, entry) in frames {
            let index = entry.log_id.index;
            if purged_index.is_some_and(|p| index <= p) {
                continue;
            }
            offsets.insert(index, off);
            entries.insert(index, entry);
        }
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                file,
                entries,
                offsets,
                end,
                vote,
                state,
            })),
        })
    }

    /// True when nothing was ever stored here (no vote, no entries, nothing purged).
    pub(crate) fn is_pristine(&self) -> bool {
        let inner = lock(&self.inner);
        inner.vote.is_none() && inner.entries.is_empty() && inner.state.purged.is_none()
    }

    /// Index of the last entry (or of the purge point), 0 when empty.
    #[cfg(test)]
    pub(crate) fn last_index(&self) -> u64 {
        let inner = lock(&self.inner);
        inner.last_log_id().map_or(0, |l| l.index)
    }
}

impl Inner {
    fn last_log_id(&self) -> Option<LogId> {
        self.entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(self.state.purged)
    }

    fn save_state(&self) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&self.state)?;
        write_atomic(&self.dir, STATE_FILE, &bytes)
    }

    fn append(&mut self, entries: Vec<Entry>) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        let Some(first) = entries.first().map(|e| e.log_id.index) else {
            return Ok(());
        };
        // openraft truncates a conflicting suffix before appending over it; should an append
        // ever overlap the log anyway, cut the old entries on disk too, so the file never holds
        // an index twice (reload would stop at the repeat and drop the newer entries).
        if self.entries.contains_key(&first) {
            self.truncate(first)?;
        }
        let mut buf = Vec::new();
        let mut offs = Vec::with_capacity(entries.len());
        for e in &entries {
            offs.push(self.end + buf.len() as u64);
            buf.extend_from_slice(&frame(e)?);
        }
        self.file.seek(SeekFrom::Start(self.end))?;
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.end += buf.len() as u64;
        for (e, off) in entries.into_iter().zip(offs) {
            let index = e.log_id.index;
            self.offsets.insert(index, off);
            self.entries.insert(index, e);
        }
        Ok(())
    }

    fn truncate(&mut self, from: u64) -> std::io::Result<()> {
        let Some((_, &off)) = self.offsets.range(from..).next() else {
            return Ok(());
        };
        self.file.set_len(off)?;
        self.file.sync_all()?;
        self.end = off;
        let gone: Vec<u64> = self.entries.range(from..).map(|(i, _)| *i).collect();
        for i in gone {
            self.entries.remove(&i);
            self.offsets.remove(&i);
        }
        Ok(())
    }

    fn purge(&mut self, upto: LogId) -> std::io::Result<()> {
        if self.state.purged.is_some_and(|p| p.index >= upto.index) {
            return Ok(());
        }
        self.state.purged = Some(upto);
        self.save_state()?;
        let keep: Vec<u64> = self
            .entries
            .range(upto.index + 1..)
            .map(|(i, _)| *i)
            .collect();
        let mut buf = Vec::new();
        let mut offsets = BTreeMap::new();
        let mut entries = BTreeMap::new();
        for i in keep {
            let e = self.entries.remove(&i).expect("listed");
            offsets.insert(i, buf.len() as u64);
            buf.extend_from_slice(&frame(&e)?);
            entries.insert(i, e);
        }
        let tmp = self.dir.join(format!("{LOG_FILE}.tmp"));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.dir.join(LOG_FILE))?;
        File::open(&self.dir)?.sync_all()?;
        self.file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(LOG_FILE))?;
        self.end = buf.len() as u64;
        self.entries = entries;
        self.offsets = offsets;
        Ok(())
    }

    fn range<RB: RangeBounds<u64>>(&self, range: RB) -> Vec<Entry> {
        self.entries.range(range).map(|(_, e)| e.clone()).collect()
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(lock(&self.inner).range(range))
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(lock(&self.inner).range(range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = lock(&self.inner);
        Ok(LogState {
            last_purged_log_id: inner.state.purged,
            last_log_id: inner.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            inner: self.inner.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut inner = lock(&self.inner);
        let bytes = serde_json::to_vec(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        write_atomic(&inner.dir, VOTE_FILE, &bytes).map_err(|e| StorageIOError::write_vote(&e))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(lock(&self.inner).vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut inner = lock(&self.inner);
        if inner.state.committed == committed {
            return Ok(());
        }
        inner.state.committed = committed;
        inner.save_state().map_err(|e| io_err(&e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(lock(&self.inner).state.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let res = lock(&self.inner).append(entries);
        match res {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "metadata log: append failed");
                let msg = e.to_string();
                callback.log_io_completed(Err(std::io::Error::other(msg)));
                Err(io_err(&e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        lock(&self.inner)
            .truncate(log_id.index)
            .map_err(|e| io_err(&e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        lock(&self.inner).purge(log_id).map_err(|e| io_err(&e))
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn lid(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn blank(term: u64, index: u64) -> Entry {
        Entry {
            log_id: lid(term, index),
            payload: EntryPayload::Blank,
        }
    }

    fn cmd(term: u64, index: u64) -> Entry {
        Entry {
            log_id: lid(term, index),
            payload: EntryPayload::Normal(crate::cluster::image::MetaCommand::DeleteTopic {
                name: format!("t{index}"),
            }),
        }
    }

    async fn indexes(store: &mut LogStore) -> Vec<(u64, u64)> {
        store
            .try_get_log_entries(0..)
            .await
            .unwrap()
            .iter()
            .map(|e| (e.log_id.leader_id.term, e.log_id.index))
            .collect()
    }

    #[tokio::test]
    async fn entries_vote_and_committed_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(dir.path()).unwrap();
        assert!(s.is_pristine());
        s.blocking_append(vec![blank(1, 1), cmd(1, 2), cmd(1, 3)])
            .await
            .unwrap();
        let vote = Vote::new_committed(1, 2);
        s.save_vote(&vote).await.unwrap();
        s.save_committed(Some(lid(1, 2))).await.unwrap();
        drop(s);

        let mut s = LogStore::open(dir.path()).unwrap();
        assert!(!s.is_pristine());
        assert_eq!(indexes(&mut s).await, vec![(1, 1), (1, 2), (1, 3)]);
        assert_eq!(s.read_vote().await.unwrap(), Some(vote));
        assert_eq!(s.read_committed().await.unwrap(), Some(lid(1, 2)));
        let state = s.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(lid(1, 3)));
        assert_eq!(state.last_purged_log_id, None);
        let e = s.try_get_log_entries(2..3).await.unwrap();
        assert!(matches!(e[0].payload, EntryPayload::Normal(_)));
    }

    #[tokio::test]
    async fn a_torn_or_corrupt_tail_is_cut_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(dir.path()).unwrap();
        s.blocking_append(vec![blank(1, 1), cmd(1, 2), cmd(1, 3)])
            .await
            .unwrap();
        drop(s);
        let path = dir.path().join(LOG_FILE);
        let good = std::fs::metadata(&path).unwrap().len();

        // A half-written frame after the last good one.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&frame(&cmd(1, 4)).unwrap()[..10]).unwrap();
        drop(f);
        let mut s = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut s).await, vec![(1, 1), (1, 2), (1, 3)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
        // Appending after the cut continues the log cleanly.
        s.blocking_append(vec![cmd(1, 4)]).await.unwrap();
        drop(s);

        // A flipped byte inside the last frame: its CRC fails, it goes.
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        let mut s = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut s).await, vec![(1, 1), (1, 2), (1, 3)]);
        assert_eq!(s.last_index(), 3);
    }

    #[tokio::test]
    async fn truncate_drops_the_conflicting_suffix_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(dir.path()).unwrap();
        s.blocking_append((1..=5).map(|i| cmd(1, i))).await.unwrap();
        s.truncate(lid(1, 3)).await.unwrap();
        assert_eq!(indexes(&mut s).await, vec![(1, 1), (1, 2)]);
        s.blocking_append(vec![cmd(2, 3), cmd(2, 4)]).await.unwrap();
        drop(s);
        let mut s = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut s).await, vec![(1, 1), (1, 2), (2, 3), (2, 4)]);
        // Truncating past the end changes nothing.
        s.truncate(lid(2, 9)).await.unwrap();
        assert_eq!(s.last_index(), 4);
    }

    #[tokio::test]
    async fn an_overlapping_append_replaces_the_old_entries_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(dir.path()).unwrap();
        s.blocking_append((1..=4).map(|i| cmd(1, i))).await.unwrap();
        s.blocking_append(vec![cmd(2, 3)]).await.unwrap();
        assert_eq!(indexes(&mut s).await, vec![(1, 1), (1, 2), (2, 3)]);
        drop(s);
        let mut s = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut s).await, vec![(1, 1), (1, 2), (2, 3)]);
    }

    #[tokio::test]
    async fn purge_keeps_the_rest_and_the_purge_point() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(dir.path()).unwrap();
        s.blocking_append((1..=5).map(|i| cmd(1, i))).await.unwrap();
        s.purge(lid(1, 3)).await.unwrap();
        assert_eq!(indexes(&mut s).await, vec![(1, 4), (1, 5)]);
        s.blocking_append(vec![cmd(1, 6)]).await.unwrap();
        drop(s);
        let mut s = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut s).await, vec![(1, 4), (1, 5), (1, 6)]);
        let state = s.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(lid(1, 3)));
        assert_eq!(state.last_log_id, Some(lid(1, 6)));
        // Purging past the end (a snapshot was installed): the purge point is the last log id.
        s.purge(lid(2, 9)).await.unwrap();
        assert!(indexes(&mut s).await.is_empty());
        drop(s);
        let mut s = LogStore::open(dir.path()).unwrap();
        let state = s.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(lid(2, 9)));
        s.blocking_append(vec![cmd(2, 10)]).await.unwrap();
        assert_eq!(indexes(&mut s).await, vec![(2, 10)]);
    }

    #[tokio::test]
    async fn a_crash_between_purge_marker_and_rewrite_skips_purged_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(dir.path()).unwrap();
        s.blocking_append((1..=4).map(|i| cmd(1, i))).await.unwrap();
        drop(s);
        // The marker says 2 is purged but the file still holds 1..=4.
        let state = StateFile {
            purged: Some(lid(1, 2)),
            committed: None,
        };
        write_atomic(dir.path(), STATE_FILE, &serde_json::to_vec(&state).unwrap()).unwrap();
        let mut s = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut s).await, vec![(1, 3), (1, 4)]);
    }
}
