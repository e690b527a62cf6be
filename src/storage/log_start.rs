//! The log start offset moved by DeleteRecords, persisted across restarts and crashes.
//!
//! Retention only ever deletes whole segments, so the first segment's base was all the log start
//! needed. DeleteRecords (`PartitionLog::delete_records`) moves the log start to any offset up to
//! the high watermark, usually inside a segment: offsets below it are gone for clients (Fetch
//! answers OFFSET_OUT_OF_RANGE, ListOffsets EARLIEST answers it), the segments wholly below it
//! are deleted at once, and the one holding it stays until retention removes it. A fetch at or
//! above the log start inside that segment may return the whole first batch, records below the
//! log start included, as Kafka's does (clients skip records before their fetch offset).
//!
//! # Where it is kept: `<partition dir>/log-start-offset`
//! Kafka keeps every log's start in one file per log directory (`log-start-offset-checkpoint`,
//! `topic partition offset` lines) and rewrites it every
//! `log.flush.start.offset.checkpoint.interval.ms`; a crash in between loses the move, which
//! Kafka accepts because the other replicas still have it. A single node has no other replica,
//! and DeleteRecords here answers only once the move is durable. A per-directory file would make
//! every DeleteRecords rewrite the start of every partition and gather them from all shards (they
//! live on different threads); a file per partition is written by the partition's owner shard
//! alone, costs one small write per DeleteRecords, and goes away with the partition's directory
//! when the topic is deleted. It uses Kafka's checkpoint framing (`checkpoint.rs`: version `0`,
//! count `1`, then the offset), replaced crash-safely (temp file, fsync, rename, directory fsync).
//!
//! # Order of a move, and what a crash leaves
//! 1. Everything below the new start is made durable (`wait_durable`), so recovery can never cut
//!    the log back below a persisted start.
//! 2. The file is replaced. From here a restart applies the new start, whatever follows.
//! 3. The in-memory start moves (readers see it only now, so what they see is never ahead of what
//!    survives a crash), the leader epoch cache is truncated to it, and the sealed segments wholly
//!    below it are unlinked. A crash before the unlink leaves them on disk; the next open finds
//!    the persisted start above them and deletes them then.
//!
//! On open the start is `max(first segment base, persisted start)`. Should the persisted start
//! lie beyond the recovered log end (only if the device lost synced data), the log restarts
//! empty at the persisted start, as Kafka's loader does, rather than hand out offsets that
//! clients were told are deleted.
//!
//! Moves are serialised per partition (a one-permit semaphore), and each writes the start as it
//! is when its turn comes, so a slower, smaller move never overwrites a larger one.

use std::path::Path;

use glommio::sync::Semaphore;

use super::checkpoint;
use super::error::StorageError;
use super::log::PartitionLog;
use super::segment::{self, sync_dir};

/// The file name, in the partition directory.
pub const FILE_NAME: &str = "log-start-offset";
const VERSION: u32 = 0;

/// DeleteRecords' "up to the high watermark" offset (Kafka's `DeleteRecordsRequest.HIGH_WATERMARK`).
pub const HIGH_WATERMARK: i64 = -1;

/// Serialises moves of one partition's log start (see the module docs).
pub(crate) struct LogStartFile {
    lock: Semaphore,
}

impl LogStartFile {
    pub(crate) fn new() -> Self {
        LogStartFile {
            lock: Semaphore::new(1),
        }
    }

    /// Takes the partition's turn to move its log start (a truncation takes it too).
    pub(crate) async fn turn(&self) -> Result<glommio::sync::Permit<'_>, StorageError> {
        self.lock
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed)
    }
}

/// The persisted log start of the partition in `dir`, if one was written.
pub(crate) async fn read(dir: &Path) -> Result<Option<i64>, StorageError> {
    let Some(bytes) = checkpoint::read(dir, FILE_NAME).await? else {
        return Ok(None);
    };
    let file = dir.join(FILE_NAME).display().to_string();
    let entries = checkpoint::parse(&file, VERSION, &bytes)
        .map_err(|e| StorageError::Io(std::io::Error::other(e)))?;
    match entries.as_slice() {
        [fields] if fields.len() == 1 => match fields[0].parse::<i64>() {
            Ok(o) if o >= 0 => Ok(Some(o)),
            _ => Err(StorageError::Io(std::io::Error::other(format!(
                "malformed log start offset in {file}: {:?}",
                fields[0]
            )))),
        },
        _ => Err(StorageError::Io(std::io::Error::other(format!(
            "{file} must hold exactly one offset"
        )))),
    }
}

/// Persists `offset` as the log start of the partition in `dir`.
pub(crate) async fn write(dir: &Path, offset: i64) -> Result<(), StorageError> {
    checkpoint::write(
        dir,
        FILE_NAME,
        checkpoint::encode(VERSION, &[offset.to_string()]),
    )
    .await
}

/// Unlinks the files of the segments at `bases` (already removed from the segment map) and syncs
/// the directory.
pub(crate) async fn delete_segment_files(dir: &Path, bases: &[i64]) -> Result<(), StorageError> {
    if bases.is_empty() {
        return Ok(());
    }
    for &b in bases {
        for p in [
            segment::log_path(dir, b),
            segment::index_path(dir, b),
            segment::time_index_path(dir, b),
            super::txn_index::path(dir, b),
        ] {
            if let Err(e) = std::fs::remove_file(&p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(e.into());
            }
        }
    }
    sync_dir(dir).await
}

/// Open, when the persisted start lies past the recovered log end: removes every segment and
/// producer snapshot of the partition in `dir` and creates an empty segment at `start`.
pub(crate) async fn restart_empty_at(
    dir: &Path,
    bases: &[i64],
    start: i64,
) -> Result<(), StorageError> {
    tracing::warn!(
        dir = %dir.display(),
        log_start = start,
        "the persisted log start lies past the recovered log end; restarting the log empty there"
    );
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().to_string();
        if name.ends_with(".snapshot") {
            std::fs::remove_file(dir.join(&name))?;
        }
    }
    delete_segment_files(dir, bases).await?;
    let f = glommio::io::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .dma_open(segment::log_path(dir, start))
        .await?;
    f.close().await?;
    sync_dir(dir).await
}

impl PartitionLog {
    /// DeleteRecords: moves the log start to `offset` ([`HIGH_WATERMARK`] = the high watermark),
    /// never backwards, and deletes the sealed segments wholly below it; returns the log start
    /// afterwards (Kafka's low watermark). Answers once the new start is durable (see the module
    /// docs for the order). An offset above the high watermark, or negative other than -1, is
    /// `OffsetOutOfRange` and changes nothing.
    pub async fn delete_records(&self, offset: i64) -> Result<i64, StorageError> {
        let target = {
            let st = self.inner().state();
            st.check_usable()?;
            let hw = st.hw();
            let target = if offset == HIGH_WATERMARK { hw } else { offset };
            if target < 0 || target > hw {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    log_start: st.segments().log_start(),
                    high_watermark: hw,
                });
            }
            target
        };
        let _turn = self
            .log_start_file()
            .lock
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed)?;
        if target <= self.log_start_offset() {
            return Ok(self.log_start_offset());
        }
        let dir = self.dir().to_path_buf();
        self.wait_durable(target - 1).await?;
        write(&dir, target).await?;
        let victims = {
            let mut st = self.inner().state_mut();
            let limit = sealed_limit(&st);
            let victims = st.segments_mut().advance_log_start(target, limit);
            st.segments_mut().remove_front(&victims);
            victims
        };
        self.truncate_epochs_from_start(target).await?;
        delete_segment_files(&dir, &victims).await?;
        tracing::info!(
            dir = %dir.display(),
            log_start = self.log_start_offset(),
            deleted_segments = victims.len(),
            "log start moved by DeleteRecords"
        );
        Ok(self.log_start_offset())
    }

    /// Open: applies the persisted log start (deleting the sealed segments a crash left below it).
    pub(crate) async fn apply_persisted_log_start(
        &self,
        persisted: Option<i64>,
    ) -> Result<(), StorageError> {
        let Some(start) = persisted else {
            return Ok(());
        };
        let victims = {
            let mut st = self.inner().state_mut();
            let limit = sealed_limit(&st);
            let victims = st.segments_mut().advance_log_start(start, limit);
            st.segments_mut().remove_front(&victims);
            victims
        };
        delete_segment_files(self.dir(), &victims).await
    }

    fn log_start_file(&self) -> &LogStartFile {
        self.log_start_state()
    }
}

/// Segments below this base are sealed: older than the newest segment and than the one the
/// writer still writes (as retention decides).
fn sealed_limit(st: &super::state::State) -> i64 {
    let writer_base = st.active().map_or(i64::MAX, |a| a.base());
    writer_base.min(st.segments().active().base_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_round_trips_and_refuses_garbage() {
        glommio::LocalExecutorBuilder::default()
            .make()
            .unwrap()
            .run(async {
                let dir = tempfile::tempdir().unwrap();
                assert_eq!(read(dir.path()).await.unwrap(), None);
                write(dir.path(), 1234).await.unwrap();
                assert_eq!(
                    std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap(),
                    "0\n1\n1234\n"
                );
                assert_eq!(read(dir.path()).await.unwrap(), Some(1234));
                write(dir.path(), 99_000).await.unwrap();
                assert_eq!(read(dir.path()).await.unwrap(), Some(99_000));
                assert!(!dir.path().join(format!("{FILE_NAME}.tmp")).exists());
                for bad in ["0\n1\n-5\n", "0\n2\n1\n2\n", "0\n1\nabc\n", "3\n1\n7\n"] {
                    std::fs::write(dir.path().join(FILE_NAME), bad).unwrap();
                    assert!(read(dir.path()).await.is_err(), "{bad:?}");
                }
            });
    }
}
