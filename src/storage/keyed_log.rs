//! Machinery shared by the broker's internal key/value logs (`__consumer_offsets`,
//! `__transaction_state`): a [`PartitionLog`] whose records are keyed state changes, read back
//! front to back at start and compacted by rewriting the live set.
//!
//! # Compaction: snapshot by rewrite
//! Storage retention is off for these logs (deleting an old segment could drop the only record
//! of a live key). Instead the owner rewrites a log once it is mostly superseded records: the live
//! set goes into a fresh log in `<dir>.compact`, which is synced and closed; then `<dir>` →
//! `<dir>.old`, `<dir>.compact` → `<dir>`, `<dir>.old` is removed ([`rewrite`]). [`recover_dirs`]
//! finishes or discards an interrupted rewrite at start. This trades a write of the live set for
//! not needing a key-aware cleaner, and is cheap because these logs' live sets are small.
//!
//! # Reload
//! [`for_each_record`] reads a whole log through `FileSlice::read_to_vec` (a blocking pread):
//! acceptable before the shard serves traffic, and bounded by compaction.

use super::{LogConfig, PartitionLog, StorageError};
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Batches are cut at about this size.
pub const BATCH_TARGET_BYTES: usize = 256 * 1024;

/// The storage settings of an internal log: retention off (see the module docs).
pub fn log_config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        retention_ms: -1,
        retention_bytes: -1,
        max_message_bytes: 4 * BATCH_TARGET_BYTES as u32,
        ..LogConfig::default()
    }
}

pub fn with_suffix(dir: &Path, suffix: &str) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Finishes or discards an interrupted rewrite of `dir` (see the module docs). Blocking fs
/// calls: start-up only.
pub fn recover_dirs(dir: &Path) -> std::io::Result<()> {
    let compact = with_suffix(dir, ".compact");
    let old = with_suffix(dir, ".old");
    if dir.exists() {
        if compact.exists() {
            std::fs::remove_dir_all(&compact)?;
        }
    } else if compact.exists() && old.exists() {
        tracing::warn!(dir = %dir.display(), "finishing interrupted internal-log rewrite");
        std::fs::rename(&compact, dir)?;
    } else if compact.exists() {
        std::fs::remove_dir_all(&compact)?;
    }
    if old.exists() && dir.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// Encodes key/value pairs (a `None` value is a tombstone) as v2 record batches of about
/// [`BATCH_TARGET_BYTES`] each, concatenated.
pub fn encode_records(entries: &[(Bytes, Option<Bytes>)], now: i64) -> BytesMut {
    let mut out = BytesMut::new();
    let mut records: Vec<Record> = Vec::new();
    let mut size = 0usize;
    let flush = |records: &mut Vec<Record>, out: &mut BytesMut| {
        if records.is_empty() {
            return;
        }
        let opts = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        // Encoding plain records into a BytesMut cannot fail.
        RecordBatchEncoder::encode(out, records.iter(), &opts).expect("encode internal batch");
        records.clear();
    };
    for (k, v) in entries {
        size += k.len() + v.as_ref().map_or(0, Bytes::len) + 16;
        records.push(Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: records.len() as i64,
            sequence: -1,
            timestamp: now,
            key: Some(k.clone()),
            value: v.clone(),
            headers: Default::default(),
            delete_horizon: false,
        });
        if size >= BATCH_TARGET_BYTES {
            flush(&mut records, &mut out);
            size = 0;
        }
    }
    flush(&mut records, &mut out);
    out
}

/// Calls `f(record)` for every record of `log` (control records included), in log order;
/// returns the number of records read. An undecodable batch ends the reload with a log line (what
/// follows it cannot be trusted).
pub async fn for_each_raw_record(
    log: &PartitionLog,
    mut f: impl FnMut(Record),
) -> Result<u64, StorageError> {
    let mut offset = log.log_start_offset();
    let mut count = 0u64;
    while offset < log.high_watermark() {
        let res = log.read(offset, 1 << 20).await?;
        let mut next = offset;
        for slice in &res.slices {
            let mut buf = Bytes::from(slice.read_to_vec()?);
            let sets = match RecordBatchDecoder::decode_all(&mut buf) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "undecodable internal-log batch; stopping reload");
                    return Ok(count);
                }
            };
            for set in sets {
                for r in set.records {
                    next = next.max(r.offset + 1);
                    count += 1;
                    f(r);
                }
            }
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(count)
}

/// Calls `f(offset, key, value)` for every keyed data record of `log`, in order (see
/// [`for_each_raw_record`]).
pub async fn for_each_record(
    log: &PartitionLog,
    mut f: impl FnMut(i64, Bytes, Option<Bytes>),
) -> Result<u64, StorageError> {
    for_each_raw_record(log, |r| {
        if !r.control
            && let Some(k) = r.key
        {
            f(r.offset, k, r.value);
        }
    })
    .await
}

/// Snapshot-by-rewrite compaction (module docs): replaces the log in `dir` (closing `current`)
/// by one holding `snapshot`, and returns the reopened log.
pub async fn rewrite(
    dir: &Path,
    cfg: &LogConfig,
    current: Option<Rc<PartitionLog>>,
    snapshot: BytesMut,
) -> Result<PartitionLog, StorageError> {
    let compact = with_suffix(dir, ".compact");
    let old = with_suffix(dir, ".old");
    if compact.exists() {
        std::fs::remove_dir_all(&compact)?;
    }
    let fresh = PartitionLog::open(compact.clone(), cfg.clone()).await?;
    if !snapshot.is_empty() {
        let info = fresh.append(snapshot).await?;
        fresh.wait_durable(info.last_offset).await?;
    }
    fresh.close().await?;
    if let Some(l) = current {
        l.close().await?;
    }
    glommio::io::rename(dir, &old).await?;
    glommio::io::rename(&compact, dir).await?;
    std::fs::remove_dir_all(&old)?;
    PartitionLog::open(dir.to_path_buf(), cfg.clone()).await
}
