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

/// Kafka topic-config names in the comments; `Default` gives Kafka's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        }
    }
}

impl LogConfig {
    /// Largest number of 8-byte entries an offset index may hold before the segment rolls.
    pub fn max_index_entries(&self) -> usize {
        (self.segment_index_bytes / 8).max(1) as usize
    }
}
