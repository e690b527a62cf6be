//! Where the clean part of a compacted log ends (the first dirty offset), kept per partition in
//! `<partition dir>/cleaner-offset-checkpoint`.
//!
//! Kafka keeps one `cleaner-offset-checkpoint` per log directory, one line per partition. Here
//! every shard cleans its own partitions, so one shared file would need a writer shared by the
//! shards (or a lock around a rewrite of everyone's lines); a file per partition is written only
//! by the shard that owns the partition, and disappears with the partition directory when the
//! topic is deleted. The content uses Kafka's checkpoint format (version 0, one entry:
//! `topic partition offset`), so it reads like Kafka's file. It is written after a pass swapped
//! its segments in (temporary file, fdatasync, rename, directory sync); a crash before that only
//! means the next pass re-cleans part of the log, which is harmless.

use std::path::{Path, PathBuf};

use crate::storage::error::StorageError;
use crate::storage::segment::{sync_dir, write_small_file};

/// The file's name inside the partition directory.
pub const FILE_NAME: &str = "cleaner-offset-checkpoint";

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// `topic` and `partition` from a `<topic>-<partition>` directory name.
fn topic_partition(dir: &Path) -> (String, i32) {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    match name.rsplit_once('-') {
        Some((t, p)) => (t.to_string(), p.parse().unwrap_or(0)),
        None => (name, 0),
    }
}

/// The recorded first dirty offset, if the file exists and parses.
pub fn read(dir: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(path(dir)).ok()?;
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let n: usize = lines.next()?.trim().parse().ok()?;
    if n != 1 {
        return None;
    }
    lines.next()?.split_whitespace().nth(2)?.parse().ok()
}

/// Records `offset` as the first dirty offset, durably.
pub async fn write(dir: &Path, offset: i64) -> Result<(), StorageError> {
    let (topic, partition) = topic_partition(dir);
    let text = format!("0\n1\n{topic} {partition} {offset}\n");
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    write_small_file(&tmp, text.into_bytes()).await?;
    std::fs::rename(&tmp, path(dir))?;
    sync_dir(dir).await
}
