//! Retention: whole sealed segments, oldest first, never the active one.
//!
//! Like Kafka's `deleteOldSegments`, two passes, each deleting the longest prefix of sealed
//! segments that satisfies its rule:
//! - time: `now - largest timestamp > retention.ms` (a segment without timestamps uses its
//!   creation/open time),
//! - size: while the log minus the oldest segment is still at least `retention.bytes`.
//!
//! The log start offset then moves to the first remaining segment's base. Deletion unlinks the
//! files; a `FileSlice` already handed out keeps its `Arc<File>`, so an in-flight send still reads
//! the deleted segment. Retention runs on the owner shard between appends: it only edits the
//! in-memory segment map and unlinks, never waits on the writer.

use super::error::StorageError;
use super::log::PartitionLog;
use super::segment::{self, sync_dir};
use crate::util::now_ms;

impl PartitionLog {
    /// Runs [`PartitionLog::enforce_retention`] every `every` until the log is closed (Kafka's
    /// `log.retention.check.interval.ms`, 5 minutes by default). Spawn it on the owner shard:
    /// `glommio::spawn_local(log.clone().retention_loop(every)).detach()`.
    pub async fn retention_loop(self: std::rc::Rc<Self>, every: std::time::Duration) {
        loop {
            glommio::timer::sleep(every).await;
            if self.is_closed() {
                return;
            }
            if let Err(e) = self.enforce_retention(now_ms()).await {
                tracing::warn!(dir = %self.dir().display(), error = %e, "retention failed");
            }
        }
    }

    /// Applies `retention.ms` and `retention.bytes` at wall-clock `now_ms`; returns how many
    /// segments were deleted. A log whose `cleanup.policy` lacks `delete` (`compact` alone) keeps
    /// every segment: only the cleaner shrinks it.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<usize, StorageError> {
        let cfg = self.config();
        if !cfg.cleanup_policy.delete {
            return Ok(0);
        }
        let victims: Vec<i64> = {
            let mut st = self.inner().state_mut();
            if st.is_truncating() {
                return Ok(0);
            }
            // Only what is below the high watermark (Kafka's `deletableSegments`): on a replica
            // the data above it is not committed yet. A single replica's sealed segments all are.
            let hw = st.hw();
            // Sealed = older than the newest segment *and* than the segment the writer still
            // writes or seals (a queued roll already inserted the newer one).
            let writer_base = st.active().map_or(i64::MAX, |a| a.base());
            let newest = st.segments().active().base_offset;
            let limit = writer_base.min(newest);
            let sealed: Vec<(i64, u64, i64)> = {
                st.segments()
                    .before(limit)
                    .take_while(|s| s.next_offset <= hw)
                    .map(|s| {
                        let ts = if s.max_timestamp >= 0 {
                            s.max_timestamp
                        } else {
                            s.created_ms
                        };
                        (s.base_offset, s.size, ts)
                    })
                    .collect()
            };
            let mut victims = Vec::new();
            if cfg.retention_ms >= 0 {
                for &(b, _, ts) in &sealed {
                    if now_ms - ts > cfg.retention_ms {
                        victims.push(b);
                    } else {
                        break;
                    }
                }
            }
            if cfg.retention_bytes >= 0 {
                let mut total: u64 = st.segments().iter().map(|s| s.size).sum::<u64>()
                    - sealed
                        .iter()
                        .filter(|(b, _, _)| victims.contains(b))
                        .map(|(_, sz, _)| *sz)
                        .sum::<u64>();
                for &(b, size, _) in sealed.iter().skip(victims.len()) {
                    if total as i64 - size as i64 >= cfg.retention_bytes {
                        victims.push(b);
                        total -= size;
                    } else {
                        break;
                    }
                }
            }
            st.segments_mut().remove_front(&victims);
            victims
        };
        if victims.is_empty() {
            return Ok(0);
        }
        let dir = self.inner().dir();
        for &b in &victims {
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
        sync_dir(dir).await?;
        tracing::info!(dir = %dir.display(), deleted = victims.len(), log_start = self.log_start_offset(), "retention deleted segments");
        Ok(victims.len())
    }
}
