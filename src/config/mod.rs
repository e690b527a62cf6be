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
//! engine's [`LogConfig`]. What each config is (type, documentation, whether it may change at
//! runtime) is [`catalog`]; runtime changes and DescribeConfigs' view of the layers are [`dynamic`].

pub mod catalog;
pub mod cluster;
pub mod dynamic;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
    #[error("unknown broker config `{0}`")]
    UnknownBrokerConfig(String),
    #[error(
        "config `{name}` = `{value}` is not supported by Ringbolt yet (only its default `{default}`)"
    )]
    Unsupported {
        name: String,
        value: String,
        default: String,
    },
    #[error("invalid value `{value}` for config `{name}`")]
    InvalidValue { name: String, value: String },
    /// Cluster settings that do not fit together ([`cluster`]).
    #[error("{0}")]
    Cluster(String),
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
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerSettings {
    /// The names set in the config file (DescribeConfigs' STATIC_BROKER_CONFIG source).
    #[serde(skip)]
    explicit: BTreeSet<String>,
    /// `node.id`: this broker's id in Metadata and broker config resources.
    #[serde(rename = "node.id")]
    pub node_id: i32,
    /// `listeners`: `PLAINTEXT://host:port` or `host:port`, in a cluster also the controller
    /// listener (`CONTROLLER://host:port`); the `--listen` flag replaces the client one.
    #[serde(rename = "listeners")]
    pub listeners: Option<String>,
    /// `process.roles`: `broker`, `controller` or both; unset = a single node ([`cluster`]).
    #[serde(rename = "process.roles")]
    pub process_roles: Option<String>,
    /// `controller.quorum.voters`: `id@host:port` of every controller, comma-separated.
    #[serde(rename = "controller.quorum.voters")]
    pub controller_quorum_voters: Option<String>,
    /// `controller.listener.names`: the name of the controller listener in `listeners`
    /// (`CONTROLLER` when unset).
    #[serde(rename = "controller.listener.names")]
    pub controller_listener_names: Option<String>,
    /// `broker.rack`: the rack this broker registers with (rack-aware replica placement).
    #[serde(rename = "broker.rack")]
    pub broker_rack: Option<String>,
    /// `broker.heartbeat.interval.ms`: how often a broker heartbeats to the active controller
    /// (Ringbolt's default 250, Kafka's 2000: failover is detected within the session timeout).
    #[serde(rename = "broker.heartbeat.interval.ms")]
    pub broker_heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms`: a broker without a heartbeat this long is fenced (Ringbolt's
    /// default 1500, Kafka's 9000).
    #[serde(rename = "broker.session.timeout.ms")]
    pub broker_session_timeout_ms: u64,
    /// `controller.quorum.election.timeout.ms`: the Raft election timeout's lower bound
    /// (Ringbolt's default 500, Kafka's 1000).
    #[serde(rename = "controller.quorum.election.timeout.ms")]
    pub controller_quorum_election_timeout_ms: u64,
    /// `replica.lag.time.max.ms`: a follower that has not caught up for this long leaves the ISR.
    #[serde(rename = "replica.lag.time.max.ms")]
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms`: the longest a follower's fetch waits at the leader.
    #[serde(rename = "replica.fetch.wait.max.ms")]
    pub replica_fetch_wait_max_ms: u64,
    /// `replica.fetch.max.bytes`: bytes a follower asks for per partition and fetch.
    #[serde(rename = "replica.fetch.max.bytes")]
    pub replica_fetch_max_bytes: u32,
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
    /// `log.retention.ms` (topic override `retention.ms`), -1 = forever; unset, `log.retention.minutes`
    /// and then `log.retention.hours` give it ([`BrokerSettings::retention_ms`]).
    #[serde(rename = "log.retention.ms")]
    pub log_retention_ms: Option<i64>,
    /// `log.retention.minutes`: retention when `log.retention.ms` is unset.
    #[serde(rename = "log.retention.minutes")]
    pub log_retention_minutes: Option<i32>,
    /// `log.retention.hours`: retention when neither of the above is set (168).
    #[serde(rename = "log.retention.hours")]
    pub log_retention_hours: i32,
    /// `log.retention.bytes` (topic override `retention.bytes`), -1 = unlimited.
    #[serde(rename = "log.retention.bytes")]
    pub log_retention_bytes: i64,
    /// `log.segment.bytes` (topic override `segment.bytes`).
    #[serde(rename = "log.segment.bytes")]
    pub log_segment_bytes: u64,
    /// `log.roll.ms` (topic override `segment.ms`); unset, `log.roll.hours` gives it.
    #[serde(rename = "log.roll.ms")]
    pub log_roll_ms: Option<i64>,
    /// `log.roll.hours`: roll time when `log.roll.ms` is unset (168).
    #[serde(rename = "log.roll.hours")]
    pub log_roll_hours: i32,
    /// `log.roll.jitter.ms` (topic override `segment.jitter.ms`); only 0 (no jitter) is supported.
    #[serde(rename = "log.roll.jitter.ms")]
    pub log_roll_jitter_ms: Option<i64>,
    /// `log.roll.jitter.hours`: only 0 is supported.
    #[serde(rename = "log.roll.jitter.hours")]
    pub log_roll_jitter_hours: i32,
    /// `log.preallocate` (topic override `preallocate`). Ringbolt always zero-fills ahead of its
    /// appends (the effect Kafka's preallocation has), so both values behave the same.
    #[serde(rename = "log.preallocate")]
    pub log_preallocate: bool,
    /// `log.segment.delete.delay.ms` (topic override `file.delete.delay.ms`). Kafka renames deleted
    /// segments and unlinks them after this delay so that in-flight reads finish; Ringbolt's reads
    /// hold the segment's descriptor, so it unlinks at once and in-flight reads still complete.
    #[serde(rename = "log.segment.delete.delay.ms")]
    pub log_segment_delete_delay_ms: i64,
    /// `log.message.timestamp.before.max.ms` (topic override `message.timestamp.before.max.ms`);
    /// only the default (no limit) is supported.
    #[serde(rename = "log.message.timestamp.before.max.ms")]
    pub log_message_timestamp_before_max_ms: i64,
    /// `log.message.timestamp.after.max.ms`; only the default (no limit) is supported.
    #[serde(rename = "log.message.timestamp.after.max.ms")]
    pub log_message_timestamp_after_max_ms: i64,
    /// `log.local.retention.ms` (tiered storage; only the default -2 is supported).
    #[serde(rename = "log.local.retention.ms")]
    pub log_local_retention_ms: i64,
    /// `log.local.retention.bytes` (tiered storage; only the default -2 is supported).
    #[serde(rename = "log.local.retention.bytes")]
    pub log_local_retention_bytes: i64,
    /// `compression.gzip.level` (only the default, -1, is supported).
    #[serde(rename = "compression.gzip.level")]
    pub compression_gzip_level: i32,
    /// `compression.lz4.level` (only the default, 9, is supported).
    #[serde(rename = "compression.lz4.level")]
    pub compression_lz4_level: i32,
    /// `compression.zstd.level` (only the default, 3, is supported).
    #[serde(rename = "compression.zstd.level")]
    pub compression_zstd_level: i32,
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
    /// `default.replication.factor`: replicas of a topic created without one (-1); a single
    /// node accepts only 1.
    #[serde(rename = "default.replication.factor")]
    pub default_replication_factor: i16,
    /// `group.initial.rebalance.delay.ms`: first rebalance of an empty group waits for joiners.
    #[serde(rename = "group.initial.rebalance.delay.ms")]
    pub group_initial_rebalance_delay_ms: i32,
    /// `offsets.retention.minutes`: committed offsets of empty groups expire after this.
    #[serde(rename = "offsets.retention.minutes")]
    pub offsets_retention_minutes: i64,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask for.
    #[serde(rename = "transaction.max.timeout.ms")]
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: an idle transactional id is removed after this.
    #[serde(rename = "transactional.id.expiration.ms")]
    pub transactional_id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often timed-out
    /// transactions are looked for and aborted.
    #[serde(rename = "transaction.abort.timed.out.transaction.cleanup.interval.ms")]
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`: how often expired
    /// transactional ids are looked for.
    #[serde(rename = "transaction.remove.expired.transaction.cleanup.interval.ms")]
    pub transaction_remove_expired_transaction_cleanup_interval_ms: u64,
    /// `transaction.partition.verification.enable`: Produce checks with the transaction
    /// coordinator that a transaction's first batch on a partition belongs to it (KIP-890).
    #[serde(rename = "transaction.partition.verification.enable")]
    pub transaction_partition_verification_enable: bool,
    /// `transaction.state.log.segment.bytes`: segment size of `__transaction_state`.
    #[serde(rename = "transaction.state.log.segment.bytes")]
    pub transaction_state_log_segment_bytes: u64,
    /// `compression.type` (topic override of the same name): `producer` keeps batches as sent;
    /// `uncompressed`/`none`, `gzip`, `snappy`, `lz4`, `zstd` re-encode them on produce.
    #[serde(rename = "compression.type")]
    pub compression_type: String,
    /// `log.cleanup.policy` (topic override `cleanup.policy`): `delete`, `compact` or both.
    #[serde(rename = "log.cleanup.policy")]
    pub log_cleanup_policy: String,
    /// `min.insync.replicas` (topic override of the same name): acks=all produces need this many
    /// in-sync replicas; a single broker has one, so more refuses them (NOT_ENOUGH_REPLICAS).
    #[serde(rename = "min.insync.replicas")]
    pub min_insync_replicas: i32,
    /// `unclean.leader.election.enable` (topic override of the same name): whether an out-of-sync
    /// replica may become leader. A single broker never elects, so it holds either way.
    #[serde(rename = "unclean.leader.election.enable")]
    pub unclean_leader_election_enable: bool,
    /// `log.cleaner.enable`: run the log cleaner (compacted topics are not compacted without it).
    #[serde(rename = "log.cleaner.enable")]
    pub log_cleaner_enable: bool,
    /// `log.cleaner.threads`: Ringbolt runs one cleaner task per shard, so only Kafka's default
    /// (1) is accepted.
    #[serde(rename = "log.cleaner.threads")]
    pub log_cleaner_threads: i32,
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
            explicit: BTreeSet::new(),
            listeners: None,
            process_roles: None,
            controller_quorum_voters: None,
            controller_listener_names: None,
            broker_rack: None,
            broker_heartbeat_interval_ms: 250,
            broker_session_timeout_ms: 1500,
            controller_quorum_election_timeout_ms: 500,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_max_bytes: 1_048_576,
            advertised_listeners: None,
            log_dirs: None,
            num_shards: None,
            num_partitions: 1,
            auto_create_topics_enable: true,
            message_max_bytes: 1_048_588,
            fetch_max_bytes: 57_671_680,
            socket_request_max_bytes: 104_857_600,
            node_id: 1,
            log_retention_ms: None,
            log_retention_minutes: None,
            log_retention_hours: 168,
            log_retention_bytes: -1,
            log_segment_bytes: 1 << 30,
            log_roll_ms: None,
            log_roll_hours: 168,
            log_roll_jitter_ms: None,
            log_roll_jitter_hours: 0,
            log_preallocate: false,
            log_segment_delete_delay_ms: 60_000,
            log_message_timestamp_before_max_ms: i64::MAX,
            log_message_timestamp_after_max_ms: i64::MAX,
            log_local_retention_ms: -2,
            log_local_retention_bytes: -2,
            compression_gzip_level: -1,
            compression_lz4_level: 9,
            compression_zstd_level: 3,
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
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 7 * 24 * 3600 * 1000,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            transaction_remove_expired_transaction_cleanup_interval_ms: 3_600_000,
            transaction_partition_verification_enable: true,
            transaction_state_log_segment_bytes: 100 * 1024 * 1024,
            compression_type: "producer".into(),
            log_cleanup_policy: "delete".into(),
            min_insync_replicas: 1,
            unclean_leader_election_enable: false,
            log_cleaner_enable: true,
            log_cleaner_threads: 1,
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
    "min.insync.replicas",
    "unclean.leader.election.enable",
    "segment.jitter.ms",
    "preallocate",
    "file.delete.delay.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
    "local.retention.ms",
    "local.retention.bytes",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "remote.storage.enable",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
];

/// Configs (topic and broker) Kafka has that Ringbolt accepts only at their default value: the
/// feature behind them (roll jitter, timestamp bounds, compression levels, tiered storage) is not
/// built yet, and a value it would silently ignore is refused instead.
pub const DEFAULT_ONLY: &[&str] = &[
    "log.cleaner.threads",
    "segment.jitter.ms",
    "log.roll.jitter.ms",
    "log.roll.jitter.hours",
    "message.timestamp.before.max.ms",
    "log.message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
    "log.message.timestamp.after.max.ms",
    "local.retention.ms",
    "log.local.retention.ms",
    "local.retention.bytes",
    "log.local.retention.bytes",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "remote.storage.enable",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
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

/// Whether two config values say the same (numbers and booleans compared by value).
pub fn same_value(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    a == b
        || a.eq_ignore_ascii_case(b)
        || matches!((a.parse::<i128>(), b.parse::<i128>()), (Ok(x), Ok(y)) if x == y)
}

impl BrokerSettings {
    /// Parses a TOML config file (Kafka names, dotted keys quoted or bare).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        let mut flat = toml::Table::new();
        flatten("", &table, &mut flat);
        let explicit = flat
            .keys()
            .map(|k| {
                if k == "log.dir" {
                    "log.dirs".into()
                } else {
                    k.clone()
                }
            })
            .collect();
        let mut settings: BrokerSettings = toml::Value::Table(flat)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        settings.explicit = explicit;
        settings.validate()?;
        Ok(settings)
    }

    /// Effective `log.retention.ms`: itself, else `log.retention.minutes`, else `log.retention.hours`
    /// (Kafka's precedence).
    pub fn retention_ms(&self) -> i64 {
        self.log_retention_ms
            .or(self.log_retention_minutes.map(|m| m as i64 * 60_000))
            .unwrap_or(self.log_retention_hours as i64 * 3_600_000)
    }

    /// Effective `log.roll.ms`: itself, else `log.roll.hours`.
    pub fn roll_ms(&self) -> i64 {
        self.log_roll_ms
            .unwrap_or(self.log_roll_hours as i64 * 3_600_000)
    }

    /// Effective `log.roll.jitter.ms`: itself, else `log.roll.jitter.hours`.
    pub fn roll_jitter_ms(&self) -> i64 {
        self.log_roll_jitter_ms
            .unwrap_or(self.log_roll_jitter_hours as i64 * 3_600_000)
    }

    /// Whether the config file set `name`.
    pub fn is_explicit(&self, name: &str) -> bool {
        self.explicit.contains(name)
    }

    /// Every setting by its Kafka name, with its value as DescribeConfigs shows it (`None` for an
    /// optional setting left unset).
    pub fn values_with_unset(&self) -> BTreeMap<String, Option<String>> {
        let serde_json::Value::Object(m) = serde_json::to_value(self).unwrap_or_default() else {
            return BTreeMap::new();
        };
        m.into_iter()
            .map(|(k, v)| {
                let s = match v {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s),
                    // "Never" is u64::MAX inside, Long.MAX_VALUE on the wire.
                    serde_json::Value::Number(n)
                        if n.as_u64().is_some_and(|u| u > i64::MAX as u64) =>
                    {
                        Some(i64::MAX.to_string())
                    }
                    other => Some(other.to_string()),
                };
                (k, s)
            })
            .collect()
    }

    /// These settings with dynamic override layers applied in order (later layers win), each value
    /// parsed as its setting's type, and the result validated. Unknown names are refused.
    pub fn with_overrides(
        &self,
        layers: &[&BTreeMap<String, String>],
    ) -> Result<Self, ConfigError> {
        if layers.iter().all(|l| l.is_empty()) {
            return Ok(self.clone());
        }
        let serde_json::Value::Object(mut m) =
            serde_json::to_value(self).map_err(|e| ConfigError::Parse(e.to_string()))?
        else {
            return Err(ConfigError::Parse("settings are not a map".into()));
        };
        let bad = |name: &str, value: &str| ConfigError::InvalidValue {
            name: name.into(),
            value: value.into(),
        };
        for layer in layers {
            for (name, value) in layer.iter() {
                let cur = m
                    .get(name)
                    .ok_or_else(|| ConfigError::UnknownBrokerConfig(name.clone()))?;
                let v = value.trim();
                // An unset optional setting has no JSON type to go by: take the catalogue's.
                let typed;
                let cur = match (cur, catalog::broker(name).map(|d| d.ty)) {
                    (serde_json::Value::Null, Some(catalog::ConfigType::Boolean)) => {
                        typed = serde_json::Value::Bool(false);
                        &typed
                    }
                    (
                        serde_json::Value::Null,
                        Some(
                            catalog::ConfigType::Int
                            | catalog::ConfigType::Long
                            | catalog::ConfigType::Short,
                        ),
                    ) => {
                        typed = serde_json::Value::from(0);
                        &typed
                    }
                    (serde_json::Value::Null, Some(catalog::ConfigType::Double)) => {
                        typed = serde_json::Value::from(0.5);
                        &typed
                    }
                    (cur, _) => cur,
                };
                let parsed = match cur {
                    serde_json::Value::Bool(_) => match v.to_ascii_lowercase().as_str() {
                        "true" => serde_json::Value::Bool(true),
                        "false" => serde_json::Value::Bool(false),
                        _ => return Err(bad(name, value)),
                    },
                    serde_json::Value::Number(n) if n.is_f64() => v
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map(serde_json::Value::Number)
                        .ok_or_else(|| bad(name, value))?,
                    serde_json::Value::Number(_) => {
                        if let Ok(i) = v.parse::<i64>() {
                            serde_json::Value::from(i)
                        } else if let Ok(u) = v.parse::<u64>() {
                            serde_json::Value::from(u)
                        } else {
                            return Err(bad(name, value));
                        }
                    }
                    _ => serde_json::Value::String(value.clone()),
                };
                m.insert(name.clone(), parsed);
            }
        }
        let mut next: BrokerSettings = serde_json::from_value(serde_json::Value::Object(m))
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        next.explicit = self.explicit.clone();
        next.validate()?;
        Ok(next)
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
        if self.node_id < 0 {
            return Err(bad("node.id", self.node_id.to_string()));
        }
        let defaults = BrokerSettings::default().values_with_unset();
        for (name, value) in self.values_with_unset() {
            if !DEFAULT_ONLY.contains(&name.as_str()) {
                continue;
            }
            let default = defaults.get(&name).cloned().flatten();
            let same = match (&value, &default) {
                (Some(v), Some(d)) => same_value(v, d),
                // An unset jitter equals a zero one.
                (Some(v), None) | (None, Some(v)) => same_value(v, "0"),
                (None, None) => true,
            };
            if !same {
                return Err(ConfigError::Unsupported {
                    name,
                    value: value.unwrap_or_default(),
                    default: default.unwrap_or_default(),
                });
            }
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
        if self.min_insync_replicas < 1 {
            return Err(bad(
                "min.insync.replicas",
                self.min_insync_replicas.to_string(),
            ));
        }
        if self.max_inflight_per_connection == 0 {
            return Err(bad("queued.max.requests.per.connection", "0".into()));
        }
        if self.default_replication_factor < 1 {
            return Err(bad(
                "default.replication.factor",
                self.default_replication_factor.to_string(),
            ));
        }
        for (name, v) in [
            (
                "broker.heartbeat.interval.ms",
                self.broker_heartbeat_interval_ms,
            ),
            ("broker.session.timeout.ms", self.broker_session_timeout_ms),
            (
                "controller.quorum.election.timeout.ms",
                self.controller_quorum_election_timeout_ms,
            ),
            ("replica.lag.time.max.ms", self.replica_lag_time_max_ms),
            (
                "replica.fetch.max.bytes",
                u64::from(self.replica_fetch_max_bytes),
            ),
        ] {
            if v == 0 || v > i32::MAX as u64 {
                return Err(bad(name, v.to_string()));
            }
        }
        if self.broker_session_timeout_ms <= self.broker_heartbeat_interval_ms {
            return Err(ConfigError::Cluster(format!(
                "broker.session.timeout.ms ({}) must be larger than broker.heartbeat.interval.ms ({})",
                self.broker_session_timeout_ms, self.broker_heartbeat_interval_ms
            )));
        }
        self.cluster()?;
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
        // The broker-wide topic defaults obey the topic configs' ranges.
        self.log_config(&BTreeMap::new())?;
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
        m.insert("retention.ms", self.retention_ms().to_string());
        m.insert("retention.bytes", self.log_retention_bytes.to_string());
        m.insert("segment.bytes", self.log_segment_bytes.to_string());
        m.insert("segment.ms", self.roll_ms().to_string());
        m.insert("segment.jitter.ms", self.roll_jitter_ms().to_string());
        m.insert("preallocate", self.log_preallocate.to_string());
        m.insert(
            "file.delete.delay.ms",
            self.log_segment_delete_delay_ms.to_string(),
        );
        m.insert(
            "message.timestamp.before.max.ms",
            self.log_message_timestamp_before_max_ms.to_string(),
        );
        m.insert(
            "message.timestamp.after.max.ms",
            self.log_message_timestamp_after_max_ms.to_string(),
        );
        m.insert(
            "local.retention.ms",
            self.log_local_retention_ms.to_string(),
        );
        m.insert(
            "local.retention.bytes",
            self.log_local_retention_bytes.to_string(),
        );
        m.insert(
            "compression.gzip.level",
            self.compression_gzip_level.to_string(),
        );
        m.insert(
            "compression.lz4.level",
            self.compression_lz4_level.to_string(),
        );
        m.insert(
            "compression.zstd.level",
            self.compression_zstd_level.to_string(),
        );
        m.insert("remote.storage.enable", "false".into());
        m.insert("remote.log.copy.disable", "false".into());
        m.insert("remote.log.delete.on.disable", "false".into());
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
        m.insert("min.insync.replicas", self.min_insync_replicas.to_string());
        m.insert(
            "unclean.leader.election.enable",
            self.unclean_leader_election_enable.to_string(),
        );
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
            segment_ms: self.roll_ms(),
            index_interval_bytes: self.log_index_interval_bytes,
            segment_index_bytes: self.log_index_size_max_bytes,
            max_message_bytes: self.message_max_bytes,
            retention_ms: self.retention_ms(),
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
                // Applied by the Produce handler.
                "min.insync.replicas" => {
                    if parse_num::<i32>(n, v)? < 1 {
                        return Err(ConfigError::InvalidValue {
                            name: name.clone(),
                            value: v.clone(),
                        });
                    }
                }
                // Holds trivially on one broker (see the setting).
                "unclean.leader.election.enable" | "preallocate" => {
                    parse_num::<bool>(n, &v.to_ascii_lowercase())?;
                }
                "file.delete.delay.ms" => {
                    if parse_num::<i64>(n, v)? < 0 {
                        return Err(ConfigError::InvalidValue {
                            name: name.clone(),
                            value: v.clone(),
                        });
                    }
                }
                _ if DEFAULT_ONLY.contains(&n) => {
                    let default = self.topic_defaults().get(n).cloned().unwrap_or_default();
                    if !same_value(v, &default) {
                        return Err(ConfigError::Unsupported {
                            name: name.clone(),
                            value: v.clone(),
                            default,
                        });
                    }
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
        // Kafka's lower bounds (segment.bytes: Ringbolt's, so that a segment holds a batch).
        let checks: [(&str, bool, String); 5] = [
            (
                "segment.bytes",
                c.segment_bytes >= 1024,
                c.segment_bytes.to_string(),
            ),
            (
                "retention.ms",
                c.retention_ms >= -1,
                c.retention_ms.to_string(),
            ),
            ("segment.ms", c.segment_ms >= 1, c.segment_ms.to_string()),
            (
                "segment.index.bytes",
                c.segment_index_bytes >= 4,
                c.segment_index_bytes.to_string(),
            ),
            (
                "flush.messages",
                c.flush_messages >= 1,
                c.flush_messages.to_string(),
            ),
        ];
        if let Some((name, _, value)) = checks.into_iter().find(|(_, ok, _)| !ok) {
            return Err(ConfigError::InvalidValue {
                name: name.into(),
                value,
            });
        }
        Ok(c)
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
        assert!(s.values_with_unset()["fetch.max.bytes"].as_deref() == Some("1000000"));
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
