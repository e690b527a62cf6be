//! Typed broker and topic configuration.
//!
//! Settings keep Apache Kafka's names (`num.partitions`, `log.retention.ms`, …) so an operator can
//! carry a `server.properties` over almost line by line. The TOML file may spell them either quoted
//! (`"num.partitions" = 3`) or bare (`num.partitions = 3`, which TOML reads as nested tables); both
//! are flattened back to dotted names before deserialising, and unknown names are rejected so that a
//! typo does not silently fall back to a default.
//!
//! Topic-level configs (`retention.ms`, `segment.bytes`, … as sent in CreateTopics) are overrides on
//! top of the broker's `log.*` defaults; [`BrokerSettings::log_config`] merges them into the storage
//! engine's [`LogConfig`] and [`BrokerSettings::describe_topic`] lists them for DescribeConfigs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::format::compression::TopicCompression;
use crate::storage::cleaner::CleanerConfig;
use crate::storage::{CleanupPolicy, LogConfig, TimestampType};

/// Errors from reading or validating configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing config: {0}")]
    Parse(String),
    #[error("config file {path}: {source}")]
    InFile {
        path: PathBuf,
        source: Box<ConfigError>,
    },
    #[error("unknown topic config `{0}`")]
    UnknownTopicConfig(String),
    #[error("invalid value `{value}` for config `{name}`")]
    InvalidValue { name: String, value: String },
}

/// Everything needed to start a broker. Build with [`BrokerConfig::new`] or from the CLI.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Address every shard binds (SO_REUSEPORT); port 0 picks a free port (see `local_addr`).
    pub listen: SocketAddr,
    /// `host:port` given to clients in Metadata; defaults to the bound address.
    pub advertised_listener: Option<String>,
    /// Holds `<topic>-<partition>/` directories and `ringbolt-metadata.json`.
    pub data_dir: PathBuf,
    /// Number of shards (pinned executors); 0 = one per available core.
    pub shards: usize,
    /// Kafka-named settings.
    pub settings: BrokerSettings,
}

impl BrokerConfig {
    /// Defaults for everything except the two things that must be chosen.
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        BrokerConfig {
            listen,
            advertised_listener: None,
            data_dir: data_dir.into(),
            shards: 0,
            settings: BrokerSettings::default(),
        }
    }

    /// The shard count actually used.
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }
}

/// Broker settings under Kafka's names; `Default` gives Kafka's defaults.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerSettings {
    /// `listeners`: `PLAINTEXT://host:port` or `host:port` (the `--listen` flag wins).
    #[serde(rename = "listeners")]
    pub listeners: Option<String>,
    /// `advertised.listeners` (the `--advertised-listener` flag wins).
    #[serde(rename = "advertised.listeners")]
    pub advertised_listeners: Option<String>,
    /// `log.dirs` / `log.dir`: the data directory (the `--data-dir` flag wins).
    #[serde(rename = "log.dirs", alias = "log.dir")]
    pub log_dirs: Option<String>,
    /// `num.shards` (Ringbolt): shard count, 0 = cores (the `--shards` flag wins).
    #[serde(rename = "num.shards")]
    pub num_shards: Option<usize>,
    /// `num.partitions`: partitions of an auto-created topic.
    #[serde(rename = "num.partitions")]
    pub num_partitions: i32,
    /// `auto.create.topics.enable`.
    #[serde(rename = "auto.create.topics.enable")]
    pub auto_create_topics_enable: bool,
    /// `message.max.bytes`: largest record batch accepted (topic override `max.message.bytes`).
    #[serde(rename = "message.max.bytes")]
    pub message_max_bytes: u32,
    /// `fetch.max.bytes`: most record bytes in one Fetch response, over the client's own
    /// `max_bytes` (the first batch of the first partition with data is returned even if larger).
    #[serde(rename = "fetch.max.bytes")]
    pub fetch_max_bytes: u32,
    /// `socket.request.max.bytes`: largest request frame; bigger frames close the connection.
    #[serde(rename = "socket.request.max.bytes")]
    pub socket_request_max_bytes: u32,
    /// `log.retention.ms` (topic override `retention.ms`), -1 = forever.
    #[serde(rename = "log.retention.ms")]
    pub log_retention_ms: i64,
    /// `log.retention.bytes` (topic override `retention.bytes`), -1 = unlimited.
    #[serde(rename = "log.retention.bytes")]
    pub log_retention_bytes: i64,
    /// `log.segment.bytes` (topic override `segment.bytes`).
    #[serde(rename = "log.segment.bytes")]
    pub log_segment_bytes: u64,
    /// `log.roll.ms` (topic override `segment.ms`).
    #[serde(rename = "log.roll.ms")]
    pub log_roll_ms: i64,
    /// `log.index.interval.bytes` (topic override `index.interval.bytes`).
    #[serde(rename = "log.index.interval.bytes")]
    pub log_index_interval_bytes: u32,
    /// `log.index.size.max.bytes` (topic override `segment.index.bytes`).
    #[serde(rename = "log.index.size.max.bytes")]
    pub log_index_size_max_bytes: u32,
    /// `log.flush.interval.messages` (topic override `flush.messages`); absent = never by count.
    #[serde(rename = "log.flush.interval.messages")]
    pub log_flush_interval_messages: u64,
    /// `log.flush.interval.ms` (topic override `flush.ms`); absent = never by time.
    #[serde(rename = "log.flush.interval.ms")]
    pub log_flush_interval_ms: u64,
    /// `log.message.timestamp.type`: `CreateTime` or `LogAppendTime`.
    #[serde(rename = "log.message.timestamp.type")]
    pub log_message_timestamp_type: String,
    /// `log.retention.check.interval.ms`: how often each shard enforces retention.
    #[serde(rename = "log.retention.check.interval.ms")]
    pub log_retention_check_interval_ms: u64,
    /// `queued.max.requests.per.connection` (Ringbolt): requests one connection may have in
    /// flight before the broker stops reading from it (backpressure).
    #[serde(rename = "queued.max.requests.per.connection")]
    pub max_inflight_per_connection: usize,
    /// `fetch.zerocopy.enable` (Ringbolt): send fetched record bytes with sendfile(2) instead of
    /// copying them through user space. Kept switchable for the comparison bench.
    #[serde(rename = "fetch.zerocopy.enable")]
    pub fetch_zerocopy_enable: bool,
    /// `default.replication.factor`: accepted for compatibility; only 1 is meaningful.
    #[serde(rename = "default.replication.factor")]
    pub default_replication_factor: i16,
    /// `group.initial.rebalance.delay.ms`: first rebalance of an empty group waits for joiners.
    #[serde(rename = "group.initial.rebalance.delay.ms")]
    pub group_initial_rebalance_delay_ms: i32,
    /// `offsets.retention.minutes`: committed offsets of empty groups expire after this.
    #[serde(rename = "offsets.retention.minutes")]
    pub offsets_retention_minutes: i64,
    /// `compression.type` (topic override of the same name): `producer` keeps batches as sent;
    /// `uncompressed`/`none`, `gzip`, `snappy`, `lz4`, `zstd` re-encode them on produce.
    #[serde(rename = "compression.type")]
    pub compression_type: String,
    /// `log.cleanup.policy` (topic override `cleanup.policy`): `delete`, `compact` or both.
    #[serde(rename = "log.cleanup.policy")]
    pub log_cleanup_policy: String,
    /// `log.cleaner.enable`: run the log cleaner (compacted topics are not compacted without it).
    #[serde(rename = "log.cleaner.enable")]
    pub log_cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: how long a shard's cleaner sleeps when no log needs cleaning.
    #[serde(rename = "log.cleaner.backoff.ms")]
    pub log_cleaner_backoff_ms: u64,
    /// `log.cleaner.io.max.bytes.per.second`: the cleaners' read plus write budget (all shards
    /// together, split evenly); Kafka's default `Double.MAX_VALUE` means unlimited.
    #[serde(rename = "log.cleaner.io.max.bytes.per.second")]
    pub log_cleaner_io_max_bytes_per_second: f64,
    /// `log.cleaner.dedupe.buffer.size`: memory for the cleaners' key → offset maps (all shards
    /// together, split evenly).
    #[serde(rename = "log.cleaner.dedupe.buffer.size")]
    pub log_cleaner_dedupe_buffer_size: u64,
    /// `log.cleaner.delete.retention.ms` (topic override `delete.retention.ms`).
    #[serde(rename = "log.cleaner.delete.retention.ms")]
    pub log_cleaner_delete_retention_ms: i64,
    /// `log.cleaner.min.compaction.lag.ms` (topic override `min.compaction.lag.ms`).
    #[serde(rename = "log.cleaner.min.compaction.lag.ms")]
    pub log_cleaner_min_compaction_lag_ms: i64,
    /// `log.cleaner.max.compaction.lag.ms` (topic override `max.compaction.lag.ms`).
    #[serde(rename = "log.cleaner.max.compaction.lag.ms")]
    pub log_cleaner_max_compaction_lag_ms: i64,
    /// `log.cleaner.min.cleanable.ratio` (topic override `min.cleanable.dirty.ratio`).
    #[serde(rename = "log.cleaner.min.cleanable.ratio")]
    pub log_cleaner_min_cleanable_ratio: f64,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        let log = LogConfig::default();
        BrokerSettings {
            listeners: None,
            advertised_listeners: None,
            log_dirs: None,
            num_shards: None,
            num_partitions: 1,
            auto_create_topics_enable: true,
            message_max_bytes: 1_048_588,
            fetch_max_bytes: 57_671_680,
            socket_request_max_bytes: 104_857_600,
            log_retention_ms: 7 * 24 * 3600 * 1000,
            log_retention_bytes: -1,
            log_segment_bytes: 1 << 30,
            log_roll_ms: 7 * 24 * 3600 * 1000,
            log_index_interval_bytes: log.index_interval_bytes,
            log_index_size_max_bytes: log.segment_index_bytes,
            log_flush_interval_messages: u64::MAX,
            log_flush_interval_ms: u64::MAX,
            log_message_timestamp_type: "CreateTime".into(),
            log_retention_check_interval_ms: 300_000,
            max_inflight_per_connection: 32,
            fetch_zerocopy_enable: true,
            default_replication_factor: 1,
            group_initial_rebalance_delay_ms: 3000,
            offsets_retention_minutes: 7 * 24 * 60,
            compression_type: "producer".into(),
            log_cleanup_policy: "delete".into(),
            log_cleaner_enable: true,
            log_cleaner_backoff_ms: 15_000,
            log_cleaner_io_max_bytes_per_second: f64::MAX,
            log_cleaner_dedupe_buffer_size: 128 << 20,
            log_cleaner_delete_retention_ms: log.delete_retention_ms,
            log_cleaner_min_compaction_lag_ms: log.min_compaction_lag_ms,
            log_cleaner_max_compaction_lag_ms: log.max_compaction_lag_ms,
            log_cleaner_min_cleanable_ratio: log.min_cleanable_dirty_ratio,
        }
    }
}

/// Topic-level config names this broker understands (CreateTopics / DescribeConfigs).
pub const TOPIC_CONFIG_NAMES: &[&str] = &[
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "segment.index.bytes",
    "index.interval.bytes",
    "max.message.bytes",
    "flush.messages",
    "flush.ms",
    "message.timestamp.type",
    "compression.type",
    "delete.retention.ms",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "min.cleanable.dirty.ratio",
];

fn flatten(prefix: &str, table: &toml::Table, out: &mut toml::Table) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            other => {
                out.insert(key, other.clone());
            }
        }
    }
}

fn parse_num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, ConfigError> {
    v.trim().parse().map_err(|_| ConfigError::InvalidValue {
        name: name.into(),
        value: v.into(),
    })
}

/// `Long.MAX_VALUE` (Kafka's "never") and anything larger map to `u64::MAX`.
fn parse_flush(name: &str, v: &str) -> Result<u64, ConfigError> {
    let n: i64 = parse_num(name, v)?;
    if n < 0 {
        return Err(ConfigError::InvalidValue {
            name: name.into(),
            value: v.into(),
        });
    }
    Ok(if n == i64::MAX { u64::MAX } else { n as u64 })
}

fn flush_str(v: u64) -> String {
    if v == u64::MAX {
        i64::MAX.to_string()
    } else {
        v.to_string()
    }
}

fn parse_ts_type(name: &str, v: &str) -> Result<TimestampType, ConfigError> {
    match v.trim() {
        "CreateTime" => Ok(TimestampType::CreateTime),
        "LogAppendTime" => Ok(TimestampType::LogAppendTime),
        _ => Err(ConfigError::InvalidValue {
            name: name.into(),
            value: v.into(),
        }),
    }
}

fn parse_policy(name: &str, v: &str) -> Result<CleanupPolicy, ConfigError> {
    CleanupPolicy::parse(v).ok_or_else(|| ConfigError::InvalidValue {
        name: name.into(),
        value: v.into(),
    })
}

/// A non-negative number of ms (`at_least` 1 for `max.compaction.lag.ms`, as Kafka).
fn parse_ms(name: &str, v: &str, at_least: i64) -> Result<i64, ConfigError> {
    let n: i64 = parse_num(name, v)?;
    if n < at_least {
        return Err(ConfigError::InvalidValue {
            name: name.into(),
            value: v.into(),
        });
    }
    Ok(n)
}

/// A ratio in [0, 1] (`min.cleanable.dirty.ratio`).
fn parse_ratio(name: &str, v: &str) -> Result<f64, ConfigError> {
    let r: f64 = parse_num(name, v)?;
    if !(0.0..=1.0).contains(&r) {
        return Err(ConfigError::InvalidValue {
            name: name.into(),
            value: v.into(),
        });
    }
    Ok(r)
}

fn parse_compression(name: &str, v: &str) -> Result<TopicCompression, ConfigError> {
    TopicCompression::parse(v).ok_or_else(|| ConfigError::InvalidValue {
        name: name.into(),
        value: v.into(),
    })
}

impl BrokerSettings {
    /// Parses a TOML config file (Kafka names, dotted keys quoted or bare).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        let mut flat = toml::Table::new();
        flatten("", &table, &mut flat);
        let settings: BrokerSettings = toml::Value::Table(flat)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Reads and parses a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text).map_err(|source| ConfigError::InFile {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |name: &str, value: String| ConfigError::InvalidValue {
            name: name.into(),
            value,
        };
        if self.num_partitions < 1 {
            return Err(bad("num.partitions", self.num_partitions.to_string()));
        }
        if self.socket_request_max_bytes < 64 {
            return Err(bad(
                "socket.request.max.bytes",
                self.socket_request_max_bytes.to_string(),
            ));
        }
        // Kafka's validator: at least 1024; an int, so at most i32::MAX.
        if !(1024..=i32::MAX as u32).contains(&self.fetch_max_bytes) {
            return Err(bad("fetch.max.bytes", self.fetch_max_bytes.to_string()));
        }
        if self.max_inflight_per_connection == 0 {
            return Err(bad("queued.max.requests.per.connection", "0".into()));
        }
        parse_ts_type(
            "log.message.timestamp.type",
            &self.log_message_timestamp_type,
        )?;
        parse_compression("compression.type", &self.compression_type)?;
        parse_policy("log.cleanup.policy", &self.log_cleanup_policy)?;
        for (name, v, min) in [
            (
                "log.cleaner.delete.retention.ms",
                self.log_cleaner_delete_retention_ms,
                0,
            ),
            (
                "log.cleaner.min.compaction.lag.ms",
                self.log_cleaner_min_compaction_lag_ms,
                0,
            ),
            (
                "log.cleaner.max.compaction.lag.ms",
                self.log_cleaner_max_compaction_lag_ms,
                1,
            ),
        ] {
            if v < min {
                return Err(bad(name, v.to_string()));
            }
        }
        if !(0.0..=1.0).contains(&self.log_cleaner_min_cleanable_ratio) {
            return Err(bad(
                "log.cleaner.min.cleanable.ratio",
                self.log_cleaner_min_cleanable_ratio.to_string(),
            ));
        }
        if self.log_cleaner_io_max_bytes_per_second.is_nan()
            || self.log_cleaner_io_max_bytes_per_second <= 0.0
        {
            return Err(bad(
                "log.cleaner.io.max.bytes.per.second",
                self.log_cleaner_io_max_bytes_per_second.to_string(),
            ));
        }
        Ok(())
    }

    /// The log cleaners' broker-wide settings (`log.cleaner.*`).
    pub fn cleaner_config(&self) -> CleanerConfig {
        CleanerConfig {
            enable: self.log_cleaner_enable,
            backoff_ms: self.log_cleaner_backoff_ms,
            io_max_bytes_per_second: self.log_cleaner_io_max_bytes_per_second,
            dedupe_buffer_size: self.log_cleaner_dedupe_buffer_size,
        }
    }

    /// The broker-level defaults for topic configs, as (topic config name, value).
    pub fn topic_defaults(&self) -> BTreeMap<&'static str, String> {
        let mut m = BTreeMap::new();
        m.insert("cleanup.policy", self.log_cleanup_policy.clone());
        m.insert(
            "delete.retention.ms",
            self.log_cleaner_delete_retention_ms.to_string(),
        );
        m.insert(
            "min.compaction.lag.ms",
            self.log_cleaner_min_compaction_lag_ms.to_string(),
        );
        m.insert(
            "max.compaction.lag.ms",
            self.log_cleaner_max_compaction_lag_ms.to_string(),
        );
        m.insert(
            "min.cleanable.dirty.ratio",
            self.log_cleaner_min_cleanable_ratio.to_string(),
        );
        m.insert("retention.ms", self.log_retention_ms.to_string());
        m.insert("retention.bytes", self.log_retention_bytes.to_string());
        m.insert("segment.bytes", self.log_segment_bytes.to_string());
        m.insert("segment.ms", self.log_roll_ms.to_string());
        m.insert(
            "segment.index.bytes",
            self.log_index_size_max_bytes.to_string(),
        );
        m.insert(
            "index.interval.bytes",
            self.log_index_interval_bytes.to_string(),
        );
        m.insert("max.message.bytes", self.message_max_bytes.to_string());
        m.insert(
            "flush.messages",
            flush_str(self.log_flush_interval_messages),
        );
        m.insert("flush.ms", flush_str(self.log_flush_interval_ms));
        m.insert(
            "message.timestamp.type",
            self.log_message_timestamp_type.clone(),
        );
        m.insert("compression.type", self.compression_type.clone());
        m
    }

    /// Checks topic-config overrides (names known, values parse) without building anything.
    pub fn validate_topic_configs(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<(), ConfigError> {
        self.log_config(overrides).map(|_| ())
    }

    /// Broker defaults merged with a topic's overrides, as the storage engine's config.
    pub fn log_config(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<LogConfig, ConfigError> {
        let mut c = LogConfig {
            segment_bytes: self.log_segment_bytes,
            segment_ms: self.log_roll_ms,
            index_interval_bytes: self.log_index_interval_bytes,
            segment_index_bytes: self.log_index_size_max_bytes,
            max_message_bytes: self.message_max_bytes,
            retention_ms: self.log_retention_ms,
            retention_bytes: self.log_retention_bytes,
            flush_messages: self.log_flush_interval_messages,
            flush_ms: self.log_flush_interval_ms,
            timestamp_type: parse_ts_type(
                "log.message.timestamp.type",
                &self.log_message_timestamp_type,
            )?,
            cleanup_policy: parse_policy("log.cleanup.policy", &self.log_cleanup_policy)?,
            delete_retention_ms: self.log_cleaner_delete_retention_ms,
            min_compaction_lag_ms: self.log_cleaner_min_compaction_lag_ms,
            max_compaction_lag_ms: self.log_cleaner_max_compaction_lag_ms,
            min_cleanable_dirty_ratio: self.log_cleaner_min_cleanable_ratio,
        };
        for (name, v) in overrides {
            let n = name.as_str();
            match n {
                "cleanup.policy" => c.cleanup_policy = parse_policy(n, v)?,
                "delete.retention.ms" => c.delete_retention_ms = parse_ms(n, v, 0)?,
                "min.compaction.lag.ms" => c.min_compaction_lag_ms = parse_ms(n, v, 0)?,
                "max.compaction.lag.ms" => c.max_compaction_lag_ms = parse_ms(n, v, 1)?,
                "min.cleanable.dirty.ratio" => c.min_cleanable_dirty_ratio = parse_ratio(n, v)?,
                "retention.ms" => c.retention_ms = parse_num(n, v)?,
                "retention.bytes" => c.retention_bytes = parse_num(n, v)?,
                "segment.bytes" => c.segment_bytes = parse_num(n, v)?,
                "segment.ms" => c.segment_ms = parse_num(n, v)?,
                "segment.index.bytes" => c.segment_index_bytes = parse_num(n, v)?,
                "index.interval.bytes" => c.index_interval_bytes = parse_num(n, v)?,
                "max.message.bytes" => c.max_message_bytes = parse_num(n, v)?,
                "flush.messages" => c.flush_messages = parse_flush(n, v)?,
                "flush.ms" => c.flush_ms = parse_flush(n, v)?,
                "message.timestamp.type" => c.timestamp_type = parse_ts_type(n, v)?,
                // Applied by the Produce handler (protocol::ingest), not by the log.
                "compression.type" => {
                    parse_compression(n, v)?;
                }
                _ => return Err(ConfigError::UnknownTopicConfig(name.clone())),
            }
        }
        if c.min_compaction_lag_ms > c.max_compaction_lag_ms {
            return Err(ConfigError::InvalidValue {
                name: "min.compaction.lag.ms".into(),
                value: c.min_compaction_lag_ms.to_string(),
            });
        }
        if c.segment_bytes < 1024 {
            return Err(ConfigError::InvalidValue {
                name: "segment.bytes".into(),
                value: c.segment_bytes.to_string(),
            });
        }
        Ok(c)
    }

    /// Every topic config with its effective value and whether it is the broker default.
    pub fn describe_topic(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Vec<(String, String, bool)> {
        self.topic_defaults()
            .into_iter()
            .map(|(name, default)| match overrides.get(name) {
                Some(v) => (name.to_string(), v.clone(), false),
                None => (name.to_string(), default, true),
            })
            .collect()
    }

    /// Broker configs for DescribeConfigs (resource type BROKER), as (name, value).
    pub fn describe_broker(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("num.partitions".into(), self.num_partitions.to_string()),
            (
                "auto.create.topics.enable".into(),
                self.auto_create_topics_enable.to_string(),
            ),
            (
                "message.max.bytes".into(),
                self.message_max_bytes.to_string(),
            ),
            (
                "socket.request.max.bytes".into(),
                self.socket_request_max_bytes.to_string(),
            ),
            ("fetch.max.bytes".into(), self.fetch_max_bytes.to_string()),
            ("log.retention.ms".into(), self.log_retention_ms.to_string()),
            (
                "log.retention.bytes".into(),
                self.log_retention_bytes.to_string(),
            ),
            (
                "log.segment.bytes".into(),
                self.log_segment_bytes.to_string(),
            ),
            ("log.roll.ms".into(), self.log_roll_ms.to_string()),
            (
                "log.flush.interval.messages".into(),
                flush_str(self.log_flush_interval_messages),
            ),
            (
                "log.flush.interval.ms".into(),
                flush_str(self.log_flush_interval_ms),
            ),
            (
                "log.message.timestamp.type".into(),
                self.log_message_timestamp_type.clone(),
            ),
            (
                "default.replication.factor".into(),
                self.default_replication_factor.to_string(),
            ),
            ("compression.type".into(), self.compression_type.clone()),
            ("log.cleanup.policy".into(), self.log_cleanup_policy.clone()),
            (
                "log.cleaner.enable".into(),
                self.log_cleaner_enable.to_string(),
            ),
            (
                "log.cleaner.backoff.ms".into(),
                self.log_cleaner_backoff_ms.to_string(),
            ),
            (
                "log.cleaner.io.max.bytes.per.second".into(),
                self.log_cleaner_io_max_bytes_per_second.to_string(),
            ),
            (
                "log.cleaner.dedupe.buffer.size".into(),
                self.log_cleaner_dedupe_buffer_size.to_string(),
            ),
            (
                "log.cleaner.delete.retention.ms".into(),
                self.log_cleaner_delete_retention_ms.to_string(),
            ),
            (
                "log.cleaner.min.compaction.lag.ms".into(),
                self.log_cleaner_min_compaction_lag_ms.to_string(),
            ),
            (
                "log.cleaner.max.compaction.lag.ms".into(),
                self.log_cleaner_max_compaction_lag_ms.to_string(),
            ),
            (
                "log.cleaner.min.cleanable.ratio".into(),
                self.log_cleaner_min_cleanable_ratio.to_string(),
            ),
        ];
        v.sort();
        v
    }
}

/// Parses a `--listen`/`listeners` value: `host:port` or `PLAINTEXT://host:port`.
pub fn parse_listener(s: &str) -> Result<SocketAddr, ConfigError> {
    let s = s.trim();
    let s = s.split_once("://").map(|(_, a)| a).unwrap_or(s);
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ConfigError::InvalidValue {
            name: "listeners".into(),
            value: s.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_accepts_bare_and_quoted_kafka_names() {
        let s = BrokerSettings::from_toml_str(
            "num.partitions = 3\n\"auto.create.topics.enable\" = false\nlog.segment.bytes = 4096\n",
        )
        .unwrap();
        assert_eq!(s.num_partitions, 3);
        assert!(!s.auto_create_topics_enable);
        assert_eq!(s.log_segment_bytes, 4096);
        assert_eq!(s.message_max_bytes, 1_048_588);
        assert_eq!(s.fetch_max_bytes, 57_671_680);
    }

    #[test]
    fn fetch_max_bytes_is_validated_like_kafka() {
        let s = BrokerSettings::from_toml_str("\"fetch.max.bytes\" = 1000000\n").unwrap();
        assert_eq!(s.fetch_max_bytes, 1_000_000);
        assert!(
            s.describe_broker()
                .contains(&("fetch.max.bytes".into(), "1000000".into()))
        );
        assert!(BrokerSettings::from_toml_str("\"fetch.max.bytes\" = 1023\n").is_err());
        assert!(BrokerSettings::from_toml_str("\"fetch.max.bytes\" = 3000000000\n").is_err());
        assert!(BrokerSettings::from_toml_str("\"fetch.max.bytes\" = -1\n").is_err());
    }

    #[test]
    fn toml_rejects_unknown_names() {
        assert!(BrokerSettings::from_toml_str("num.partitons = 3\n").is_err());
        assert!(BrokerSettings::from_toml_str("num.partitions = 0\n").is_err());
    }

    #[test]
    fn compression_type_broker_and_topic() {
        let s = BrokerSettings::from_toml_str("\"compression.type\" = \"zstd\"\n").unwrap();
        assert_eq!(s.compression_type, "zstd");
        assert_eq!(s.topic_defaults()["compression.type"], "zstd");
        assert!(BrokerSettings::from_toml_str("\"compression.type\" = \"brotli\"\n").is_err());
        let mut o = BTreeMap::new();
        o.insert("compression.type".to_string(), "uncompressed".to_string());
        assert!(s.validate_topic_configs(&o).is_ok());
        o.insert("compression.type".to_string(), "lzma".to_string());
        assert!(s.validate_topic_configs(&o).is_err());
    }

    #[test]
    fn topic_overrides_merge_and_validate() {
        let s = BrokerSettings::default();
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "1000".to_string());
        o.insert("flush.messages".to_string(), "1".to_string());
        let c = s.log_config(&o).unwrap();
        assert_eq!(c.retention_ms, 1000);
        assert_eq!(c.flush_messages, 1);
        o.insert("retention.ms".to_string(), "soon".to_string());
        assert!(s.log_config(&o).is_err());
        let mut o = BTreeMap::new();
        o.insert("no.such".to_string(), "1".to_string());
        assert!(matches!(
            s.log_config(&o),
            Err(ConfigError::UnknownTopicConfig(_))
        ));
    }

    #[test]
    fn cleanup_policy_and_compaction_configs() {
        let s = BrokerSettings::from_toml_str(
            "\"log.cleanup.policy\" = \"compact\"\n\"log.cleaner.min.cleanable.ratio\" = 0.1\n",
        )
        .unwrap();
        let c = s.log_config(&BTreeMap::new()).unwrap();
        assert!(c.cleanup_policy.compact && !c.cleanup_policy.delete);
        assert_eq!(c.min_cleanable_dirty_ratio, 0.1);
        assert_eq!(s.topic_defaults()["cleanup.policy"], "compact");
        let mut o = BTreeMap::new();
        o.insert("cleanup.policy".to_string(), "delete, compact".to_string());
        o.insert("delete.retention.ms".to_string(), "100".to_string());
        o.insert("min.cleanable.dirty.ratio".to_string(), "0.01".to_string());
        o.insert("max.compaction.lag.ms".to_string(), "5000".to_string());
        o.insert("segment.ms".to_string(), "60000".to_string());
        let c = s.log_config(&o).unwrap();
        assert_eq!(c.cleanup_policy.name(), "compact,delete");
        assert_eq!(c.delete_retention_ms, 100);
        assert_eq!(c.min_cleanable_dirty_ratio, 0.01);
        assert_eq!(c.roll_ms(), 5000, "max.compaction.lag.ms caps segment.ms");
        for (name, bad) in [
            ("cleanup.policy", "compact,compact"),
            ("cleanup.policy", "shred"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("delete.retention.ms", "-1"),
            ("max.compaction.lag.ms", "0"),
        ] {
            let mut o = BTreeMap::new();
            o.insert(name.to_string(), bad.to_string());
            assert!(s.log_config(&o).is_err(), "{name}={bad}");
        }
        assert!(BrokerSettings::from_toml_str("\"log.cleanup.policy\" = \"x\"\n").is_err());
    }

    #[test]
    fn listener_forms() {
        assert_eq!(
            parse_listener("PLAINTEXT://127.0.0.1:9092").unwrap(),
            "127.0.0.1:9092".parse().unwrap()
        );
        assert!(parse_listener("nonsense").is_err());
    }
}
