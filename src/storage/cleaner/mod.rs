//! Log compaction: Kafka's log cleaner, one per shard.
//!
//! A log whose `cleanup.policy` includes `compact` keeps, in its closed segments, only the latest
//! record of each key; tombstones (null values) go once `delete.retention.ms` has passed since
//! the cleaner first saw them. Offsets never change: a compacted log has gaps, as in Kafka. The
//! active segment is never touched, so appends and the tail cache are unaffected.
//!
//! # Scheduling ([`ShardCleaner`])
//! Each shard runs one cleaner task over the logs it owns (no cross-shard traffic, no locks),
//! in a glommio task queue with a small share, so request handling wins whenever both are
//! runnable; the cleaner yields between batches. A round picks the shard's compacted log with the
//! highest dirty ratio — dirty bytes (closed segments past the log's checkpoint) over all closed
//! bytes — among those above `min.cleanable.dirty.ratio`, or with a dirty record older than
//! `max.compaction.lag.ms`, or whose kept tombstones reached their delete horizon, and cleans
//! it; with nothing to clean it sleeps `log.cleaner.backoff.ms`. The policy and the compaction
//! configs are read from the log's current config at every round, so `PartitionLog::set_config`
//! takes effect at the next one. Reads and writes are charged to a byte-rate budget
//! (`log.cleaner.io.max.bytes.per.second`, split evenly between shards, [`throttle`]).
//!
//! # A pass ([`pass`])
//! As Kafka's `Cleaner.doClean`: an offset map (key digest → latest offset, [`offset_map`],
//! bounded by `log.cleaner.dedupe.buffer.size` split between shards) is built over the dirty
//! range — from the checkpoint to the active segment, or to the first segment holding a record
//! younger than `min.compaction.lag.ms`; then every closed segment from the log start up to
//! where the map ends is rewritten, in groups of adjacent segments that fit one segment
//! (`segment.bytes`), keeping what [`filter`] decides (latest value per key, tombstones until
//! their horizon, idempotent producers' last batches, compressed batches recompressed with their
//! codec). Each group is swapped in crash-safely ([`swap`]), and the checkpoint moves to the end
//! of the map ([`checkpoint`]).
//!
//! # Cost
//! A pass reads the whole closed log (clean part included, as Kafka does: the map decides what
//! of it survives) and writes what survives; records are decoded (and decompressed) once to
//! build the map and once to filter. Memory: the map, one 1 MiB read window and one 1 MiB write
//! buffer per shard. `cargo bench --bench cleaner` measures a pass (`docs/perf/compaction.md`).

mod aborted;
pub mod checkpoint;
pub mod filter;
pub mod offset_map;
pub mod pass;
pub mod swap;
pub mod throttle;

use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::{Rc, Weak};

use super::error::StorageError;
use super::log::PartitionLog;
use offset_map::OffsetMap;
use pass::CleanStats;
use throttle::Throttle;

/// The broker-wide cleaner settings (`log.cleaner.*`); `Default` gives Kafka's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerConfig {
    /// `log.cleaner.enable`.
    pub enable: bool,
    /// `log.cleaner.backoff.ms`: sleep when no log needs cleaning.
    pub backoff_ms: u64,
    /// `log.cleaner.io.max.bytes.per.second`, all shards together (`f64::MAX`: unlimited).
    pub io_max_bytes_per_second: f64,
    /// `log.cleaner.dedupe.buffer.size`, all shards together.
    pub dedupe_buffer_size: u64,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            enable: true,
            backoff_ms: 15_000,
            io_max_bytes_per_second: f64::MAX,
            dedupe_buffer_size: 128 << 20,
        }
    }
}

/// What one round cleaned.
#[derive(Debug, Clone)]
pub struct CleanReport {
    pub dir: PathBuf,
    pub dirty_ratio: f64,
    pub stats: CleanStats,
}

/// The cleaner's memory of one log.
struct LogState {
    /// The log this state belongs to: a recreated partition (same directory, new log) reloads
    /// its checkpoint. Weak, so a dropped log's memory cannot be reused by a new one that would
    /// then pass for it.
    log: Weak<PartitionLog>,
    first_dirty: i64,
    tombstone_horizon: Option<i64>,
    /// No new attempt before this time (after a failure or a pass that changed nothing).
    retry_after: i64,
}

/// One shard's log cleaner: call [`ShardCleaner::clean_filthiest`] in a loop (the server does,
/// in a low-share task queue) and sleep `backoff_ms` when it returns `None`.
pub struct ShardCleaner {
    cfg: CleanerConfig,
    map: OffsetMap,
    throttle: Throttle,
    logs: HashMap<PathBuf, LogState>,
}

impl ShardCleaner {
    /// A cleaner for one of `shards` shards: the I/O budget and the dedupe buffer are split
    /// evenly between them.
    pub fn new(cfg: CleanerConfig, shards: usize) -> Self {
        let shards = shards.max(1);
        ShardCleaner {
            map: OffsetMap::with_budget(cfg.dedupe_buffer_size / shards as u64),
            throttle: Throttle::new(cfg.io_max_bytes_per_second / shards as f64),
            logs: HashMap::new(),
            cfg,
        }
    }

    pub fn config(&self) -> &CleanerConfig {
        &self.cfg
    }

    fn state_for(&mut self, log: &Rc<PartitionLog>) -> &mut LogState {
        let st = self
            .logs
            .entry(log.dir().to_path_buf())
            .or_insert_with(|| LogState {
                log: Weak::new(),
                first_dirty: 0,
                tombstone_horizon: None,
                retry_after: 0,
            });
        if !st.log.upgrade().is_some_and(|l| Rc::ptr_eq(&l, log)) {
            st.log = Rc::downgrade(log);
            st.first_dirty = checkpoint::read(log.dir()).unwrap_or(0);
            st.tombstone_horizon = None;
            st.retry_after = 0;
        }
        st
    }

    /// Cleans the filthiest compacted log among `logs` at wall-clock `now` (module docs);
    /// `None` when no log needs cleaning, else what was cleaned or the log that failed.
    pub async fn clean_filthiest(
        &mut self,
        logs: &[Rc<PartitionLog>],
        now: i64,
    ) -> Option<Result<CleanReport, (PathBuf, StorageError)>> {
        // Forget logs that are gone (deleted topics, moved partitions).
        self.logs
            .retain(|_, st| st.log.upgrade().is_some_and(|l| !l.is_closed()));
        let mut best: Option<(f64, Rc<PartitionLog>, pass::Cleanable)> = None;
        for log in logs {
            let cfg = log.config();
            if log.is_closed() || !cfg.cleanup_policy.compact {
                continue;
            }
            let (first_dirty, horizon, retry_after) = {
                let st = self.state_for(log);
                (st.first_dirty, st.tombstone_horizon, st.retry_after)
            };
            if now < retry_after {
                continue;
            }
            let c = match pass::cleanable(log, first_dirty, now).await {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(dir = %log.dir().display(), error = %e, "log cleaner: cannot evaluate log");
                    continue;
                }
            };
            let dirty = c.dirty_bytes > 0;
            let eligible = (dirty
                && (c.must_clean || c.dirty_ratio > cfg.min_cleanable_dirty_ratio))
                || horizon.is_some_and(|h| h <= now);
            if eligible && best.as_ref().is_none_or(|(r, _, _)| c.dirty_ratio > *r) {
                best = Some((c.dirty_ratio, log.clone(), c));
            }
        }
        let (ratio, log, c) = best?;
        let result = pass::clean(&log, &c, &mut self.map, &mut self.throttle, now).await;
        let backoff = self.cfg.backoff_ms as i64;
        let dir = log.dir().to_path_buf();
        Some(match result {
            Ok(stats) => {
                if let Err(e) = checkpoint::write(&dir, stats.end_offset).await {
                    tracing::warn!(dir = %dir.display(), error = %e, "log cleaner: checkpoint not written");
                }
                let st = self.state_for(&log);
                st.first_dirty = stats.end_offset;
                st.tombstone_horizon = stats.tombstone_horizon;
                if stats.swaps == 0 {
                    st.retry_after = now.saturating_add(backoff);
                }
                Ok(CleanReport {
                    dir,
                    dirty_ratio: ratio,
                    stats,
                })
            }
            Err(e) => {
                self.state_for(&log).retry_after = now.saturating_add(backoff.max(1000));
                Err((dir, e))
            }
        })
    }
}
