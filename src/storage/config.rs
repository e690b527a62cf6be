//! Per-partition log configuration, named after Kafka's topic configs.

use serde::{Deserialize, Serialize};

/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TimestampType {
    /// Keep the producer's timestamps.
    #[default]
    CreateTime,
    /// The broker stamps each batch with its append time (maxTimestamp + attribute bit).
    LogAppendTime,
}

/// `cleanup.policy`: what happens to old data, a comma-separated list of `delete` and `compact`
/// (Kafka's `delete`, `compact`, `compact,delete`; an empty list keeps everything forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupPolicy {
    /// `delete`: retention by time (`retention.ms`) and size (`retention.bytes`).
    pub delete: bool,
    /// `compact`: the log cleaner keeps the latest record per key (`storage::cleaner`).
    pub compact: bool,
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy {
            delete: true,
            compact: false,
        }
    }
}

impl CleanupPolicy {
    /// Parses Kafka's list form (`delete`, `compact`, `compact,delete`, any order, spaces
    /// allowed); `None` for an unknown or repeated item.
    pub fn parse(v: &str) -> Option<CleanupPolicy> {
        let mut p = CleanupPolicy {
            delete: false,
            compact: false,
        };
        for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let slot = match item {
                "delete" => &mut p.delete,
                "compact" => &mut p.compact,
                _ => return None,
            };
            if *slot {
                return None;
            }
            *slot = true;
        }
        Some(p)
    }

    /// Kafka's spelling (`delete`, `compact`, `compact,delete`, or empty).
    pub fn name(&self) -> &'static str {
        match (self.compact, self.delete) {
            (true, true) => "compact,delete",
            (true, false) => "compact",
            (false, true) => "delete",
            (false, false) => "",
        }
    }
}

/// Kafka topic-config names in the comments; `Default` gives Kafka's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `segment.bytes` (1 GiB).
    pub segment_bytes: u64,
    /// `segment.ms` (7 days).
    pub segment_ms: i64,
    /// `index.interval.bytes` (4096).
    pub index_interval_bytes: u32,
    /// `segment.index.bytes` (10 MiB).
    pub segment_index_bytes: u32,
    /// `max.message.bytes` (1048588 = 1 MiB + record-batch overhead, as Kafka).
    pub max_message_bytes: u32,
    /// `retention.ms` (7 days; -1 keeps forever).
    pub retention_ms: i64,
    /// `retention.bytes` (-1 = no limit).
    pub retention_bytes: i64,
    /// `flush.messages`: force an fdatasync after this many messages (u64::MAX = never by count).
    pub flush_messages: u64,
    /// `flush.ms`: force an fdatasync when data has been unsynced this long (u64::MAX = never).
    pub flush_ms: u64,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `cleanup.policy` (`delete`).
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms` (1 day): how long a tombstone stays readable after the cleaner
    /// first saw it (Kafka's delete horizon, stamped into its batch).
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms` (0): records younger than this stay uncompacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms` (`Long.MAX_VALUE`): a dirty record older than this makes the log
    /// cleanable whatever its dirty ratio (and caps how long a compacted segment stays active).
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio` (0.5): dirty bytes / all bytes of the cleanable log above
    /// which the cleaner picks the log.
    pub min_cleanable_dirty_ratio: f64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            max_message_bytes: 1_048_588,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            flush_messages: u64::MAX,
            flush_ms: u64::MAX,
            timestamp_type: TimestampType::CreateTime,
            cleanup_policy: CleanupPolicy::default(),
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
        }
    }
}

impl LogConfig {
    /// Largest number of 8-byte entries an offset index may hold before the segment rolls.
    pub fn max_index_entries(&self) -> usize {
        (self.segment_index_bytes / 8).max(1) as usize
    }

    /// The age at which the active segment rolls: `segment.ms`, capped for a compacted log by
    /// `max.compaction.lag.ms` (Kafka's `LogConfig.maxSegmentMs`), since the cleaner never
    /// touches the active segment.
    pub fn roll_ms(&self) -> i64 {
        if self.cleanup_policy.compact && self.max_compaction_lag_ms > 0 {
            self.segment_ms.min(self.max_compaction_lag_ms)
        } else {
            self.segment_ms
        }
    }
}
