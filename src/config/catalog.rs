//! What each config is: its Kafka type, whether it can change at runtime, its broker synonym and a
//! line of documentation — the metadata DescribeConfigs reports and AlterConfigs validates against.
//!
//! Values live elsewhere: broker settings in [`super::BrokerSettings`] (static file values plus the
//! dynamic overrides of [`super::dynamic`]), topic overrides in the topic's metadata. Keeping the
//! descriptions in one table rather than beside each field lets DescribeConfigs walk them by name,
//! and the tests below check that the table and the settings struct name the same configs, so a
//! new setting cannot be added without its description.
//!
//! "Dynamic" follows Kafka's update modes: the broker-wide defaults of topic configs (`log.*`,
//! `message.max.bytes`, `compression.type`, the cleaner's settings) are cluster-wide dynamic;
//! listeners, directories, thread/shard counts and the group coordinator's settings are read-only
//! (a restart applies them), as in Kafka.

/// A config's type as DescribeConfigs v3+ reports it (`config_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
}

impl ConfigType {
    /// The wire code.
    pub fn code(self) -> i8 {
        self as i8
    }

    /// Whether `value` is well-formed for this type (range checks are the settings' job).
    pub fn parses(self, value: &str) -> bool {
        let v = value.trim();
        match self {
            ConfigType::Boolean => {
                v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
            }
            ConfigType::String | ConfigType::List => true,
            ConfigType::Int => v.parse::<i32>().is_ok(),
            ConfigType::Short => v.parse::<i16>().is_ok(),
            ConfigType::Long => v.parse::<i64>().is_ok(),
            ConfigType::Double => v.parse::<f64>().is_ok_and(f64::is_finite),
        }
    }
}

/// A broker config.
#[derive(Debug, Clone, Copy)]
pub struct BrokerConfigDef {
    pub name: &'static str,
    pub ty: ConfigType,
    /// Changeable with IncrementalAlterConfigs/AlterConfigs without a restart.
    pub dynamic: bool,
    pub doc: &'static str,
}

/// A topic config and the broker config that gives its default.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigDef {
    pub name: &'static str,
    /// The broker config whose value is the default (Kafka's synonym); none for configs that only
    /// exist per topic.
    pub broker_synonym: Option<&'static str>,
    pub ty: ConfigType,
    pub doc: &'static str,
}

use ConfigType::*;

const fn b(
    name: &'static str,
    ty: ConfigType,
    dynamic: bool,
    doc: &'static str,
) -> BrokerConfigDef {
    BrokerConfigDef {
        name,
        ty,
        dynamic,
        doc,
    }
}

const fn t(
    name: &'static str,
    broker_synonym: Option<&'static str>,
    ty: ConfigType,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        broker_synonym,
        ty,
        doc,
    }
}

/// Every broker config Ringbolt has, sorted by name.
pub const BROKER_CONFIGS: &[BrokerConfigDef] = &[
    b(
        "advertised.listeners",
        String,
        false,
        "The address given to clients in Metadata responses, if different from the listener.",
    ),
    b(
        "auto.create.topics.enable",
        Boolean,
        false,
        "Create a topic with the default settings when a client produces to or asks metadata for an unknown one.",
    ),
    b(
        "broker.heartbeat.interval.ms",
        Int,
        false,
        "How often a broker heartbeats to the active controller.",
    ),
    b(
        "broker.rack",
        String,
        false,
        "The rack of this broker; replica placement spreads a partition's replicas over racks.",
    ),
    b(
        "broker.session.timeout.ms",
        Int,
        false,
        "A broker that has not heartbeated for this long is fenced and its leaderships move.",
    ),
    b(
        "compression.gzip.level",
        Int,
        true,
        "gzip level when the broker compresses; Ringbolt supports only the default.",
    ),
    b(
        "compression.lz4.level",
        Int,
        true,
        "lz4 level when the broker compresses; Ringbolt supports only the default.",
    ),
    b(
        "compression.type",
        String,
        true,
        "Default compression of topics: producer (keep what the producer sent), uncompressed, gzip, snappy, lz4 or zstd.",
    ),
    b(
        "compression.zstd.level",
        Int,
        true,
        "zstd level when the broker compresses; Ringbolt supports only the default.",
    ),
    b(
        "controller.listener.names",
        List,
        false,
        "The name of the controller listener in listeners (CONTROLLER when unset).",
    ),
    b(
        "controller.quorum.election.timeout.ms",
        Int,
        false,
        "How long a controller waits without a leader before it starts an election.",
    ),
    b(
        "controller.quorum.voters",
        List,
        false,
        "The controller quorum: id@host:port of every voter, comma-separated.",
    ),
    b(
        "default.replication.factor",
        Short,
        false,
        "Replication factor of topics created without one (and of automatically created topics); a single node holds one replica.",
    ),
    b(
        "fetch.max.bytes",
        Int,
        false,
        "Most record bytes one Fetch response carries, over the client's own limit.",
    ),
    b(
        "fetch.zerocopy.enable",
        Boolean,
        false,
        "Ringbolt: send fetched records from the file to the socket without copying them through user space.",
    ),
    b(
        "group.initial.rebalance.delay.ms",
        Int,
        false,
        "How long the first rebalance of an empty consumer group waits for more members to join.",
    ),
    b(
        "listeners",
        String,
        false,
        "The addresses the node listens on: PLAINTEXT://host:port for clients, in a cluster also the controller listener.",
    ),
    b(
        "log.cleaner.backoff.ms",
        Long,
        false,
        "How long a shard's cleaner sleeps when no log needs cleaning.",
    ),
    b(
        "log.cleaner.dedupe.buffer.size",
        Long,
        false,
        "Memory for the cleaners' key to offset maps, all shards together.",
    ),
    b(
        "log.cleaner.delete.retention.ms",
        Long,
        true,
        "How long a tombstone survives after its log was cleaned.",
    ),
    b(
        "log.cleaner.enable",
        Boolean,
        false,
        "Run the log cleaner; compacted topics are not compacted without it.",
    ),
    b(
        "log.cleaner.io.max.bytes.per.second",
        Double,
        false,
        "The cleaners' read plus write budget, all shards together.",
    ),
    b(
        "log.cleaner.max.compaction.lag.ms",
        Long,
        true,
        "A record is compacted at the latest this long after it was written.",
    ),
    b(
        "log.cleaner.min.cleanable.ratio",
        Double,
        true,
        "Clean a log once this share of it is dirty.",
    ),
    b(
        "log.cleaner.min.compaction.lag.ms",
        Long,
        true,
        "A record stays uncompacted at least this long.",
    ),
    b(
        "log.cleaner.threads",
        Int,
        false,
        "Cleaner threads; Ringbolt runs one cleaner task per shard and accepts only the default.",
    ),
    b(
        "log.cleanup.policy",
        List,
        true,
        "Default cleanup policy of topics: delete, compact, or both.",
    ),
    b(
        "log.dirs",
        String,
        false,
        "The directory holding the partition logs and the broker's metadata.",
    ),
    b(
        "log.flush.interval.messages",
        Long,
        true,
        "Force an fdatasync of a partition after this many messages (acks=all always waits for one).",
    ),
    b(
        "log.flush.interval.ms",
        Long,
        true,
        "Force an fdatasync of a partition when data has been unsynced this long.",
    ),
    b(
        "log.index.interval.bytes",
        Int,
        true,
        "Bytes of log between two entries of the sparse offset index.",
    ),
    b(
        "log.index.size.max.bytes",
        Int,
        true,
        "Largest offset index of a segment; a full index rolls the segment.",
    ),
    b(
        "log.local.retention.bytes",
        Long,
        true,
        "Local retention with tiered storage; not supported (only the default -2).",
    ),
    b(
        "log.local.retention.ms",
        Long,
        true,
        "Local retention with tiered storage; not supported (only the default -2).",
    ),
    b(
        "log.message.timestamp.after.max.ms",
        Long,
        true,
        "How far in the future a CreateTime timestamp may be; Ringbolt supports only no limit.",
    ),
    b(
        "log.message.timestamp.before.max.ms",
        Long,
        true,
        "How far in the past a CreateTime timestamp may be; Ringbolt supports only no limit.",
    ),
    b(
        "log.message.timestamp.type",
        String,
        true,
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's clock.",
    ),
    b(
        "log.preallocate",
        Boolean,
        true,
        "Preallocate segment files; Ringbolt always zero-fills ahead of its appends, so both values behave alike.",
    ),
    b(
        "log.retention.bytes",
        Long,
        true,
        "Delete the oldest segments of a partition once it is larger than this; -1 means no size limit.",
    ),
    b(
        "log.retention.check.interval.ms",
        Long,
        false,
        "How often each shard looks for segments to delete by retention.",
    ),
    b(
        "log.retention.hours",
        Int,
        true,
        "Retention in hours, used when log.retention.ms and log.retention.minutes are unset.",
    ),
    b(
        "log.retention.minutes",
        Int,
        true,
        "Retention in minutes, used when log.retention.ms is unset.",
    ),
    b(
        "log.retention.ms",
        Long,
        true,
        "Delete segments whose newest record is older than this; -1 keeps them forever.",
    ),
    b(
        "log.roll.hours",
        Int,
        true,
        "Roll time in hours, used when log.roll.ms is unset.",
    ),
    b(
        "log.roll.jitter.hours",
        Int,
        true,
        "Roll jitter in hours, used when log.roll.jitter.ms is unset; Ringbolt supports only 0.",
    ),
    b(
        "log.roll.jitter.ms",
        Long,
        true,
        "Random jitter subtracted from the roll time; Ringbolt supports only 0.",
    ),
    b(
        "log.roll.ms",
        Long,
        true,
        "Roll a new segment when the active one is this old.",
    ),
    b(
        "log.segment.bytes",
        Int,
        true,
        "Largest size of one segment file.",
    ),
    b(
        "log.segment.delete.delay.ms",
        Long,
        true,
        "Delay before a deleted segment's files go; Ringbolt's reads hold the files open, so it unlinks at once.",
    ),
    b(
        "message.max.bytes",
        Int,
        true,
        "Largest record batch the broker accepts.",
    ),
    b(
        "min.insync.replicas",
        Int,
        true,
        "Replicas that must be in sync for an acks=all produce to succeed; a single node holds one.",
    ),
    b(
        "node.id",
        Int,
        false,
        "This broker's id in Metadata and in broker config resources.",
    ),
    b(
        "num.partitions",
        Int,
        false,
        "Number of partitions of an automatically created topic.",
    ),
    b(
        "num.shards",
        Int,
        false,
        "Ringbolt: number of shards (pinned executors); 0 means one per core.",
    ),
    b(
        "offsets.retention.minutes",
        Int,
        false,
        "Committed offsets of a group that has been empty this long are deleted.",
    ),
    b(
        "process.roles",
        List,
        false,
        "broker, controller or both; unset runs a single node that is its own controller.",
    ),
    b(
        "queued.max.requests.per.connection",
        Int,
        false,
        "Ringbolt: requests one connection may have in flight before the broker stops reading from it.",
    ),
    b(
        "replica.fetch.max.bytes",
        Int,
        false,
        "Bytes a follower asks for per partition in one fetch from the leader.",
    ),
    b(
        "replica.fetch.wait.max.ms",
        Int,
        false,
        "The longest a follower's fetch waits at the leader for new data.",
    ),
    b(
        "replica.lag.time.max.ms",
        Long,
        false,
        "A follower that has not caught up with the leader for this long leaves the ISR.",
    ),
    b(
        "socket.request.max.bytes",
        Int,
        false,
        "Largest request the broker reads; a larger frame closes the connection.",
    ),
    b(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        Int,
        false,
        "How often the transaction coordinator aborts transactions past their timeout.",
    ),
    b(
        "transaction.max.timeout.ms",
        Int,
        false,
        "The longest transaction.timeout.ms a producer may ask for (INVALID_TRANSACTION_TIMEOUT above).",
    ),
    b(
        "transaction.partition.verification.enable",
        Boolean,
        false,
        "Produce verifies a transaction's first batch on a partition with the transaction coordinator.",
    ),
    b(
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        Int,
        false,
        "How often transactional ids idle past transactional.id.expiration.ms are removed.",
    ),
    b(
        "transaction.state.log.segment.bytes",
        Int,
        false,
        "Segment size of the transaction state log (__transaction_state).",
    ),
    b(
        "transactional.id.expiration.ms",
        Int,
        false,
        "A transactional id without a transaction for this long is removed.",
    ),
    b(
        "unclean.leader.election.enable",
        Boolean,
        true,
        "Whether a replica that is not in sync may become leader (data loss; never needed on a single node).",
    ),
];

/// Every topic config Ringbolt has, sorted by name.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    t(
        "cleanup.policy",
        Some("log.cleanup.policy"),
        List,
        "delete removes old segments by retention; compact keeps the latest record of every key; both may be given.",
    ),
    t(
        "compression.gzip.level",
        Some("compression.gzip.level"),
        Int,
        "gzip level when the broker compresses; Ringbolt supports only the default.",
    ),
    t(
        "compression.lz4.level",
        Some("compression.lz4.level"),
        Int,
        "lz4 level when the broker compresses; Ringbolt supports only the default.",
    ),
    t(
        "compression.type",
        Some("compression.type"),
        String,
        "Compression of the topic's batches: producer (as sent), uncompressed, gzip, snappy, lz4 or zstd.",
    ),
    t(
        "compression.zstd.level",
        Some("compression.zstd.level"),
        Int,
        "zstd level when the broker compresses; Ringbolt supports only the default.",
    ),
    t(
        "delete.retention.ms",
        Some("log.cleaner.delete.retention.ms"),
        Long,
        "How long a tombstone survives after its log was cleaned.",
    ),
    t(
        "file.delete.delay.ms",
        Some("log.segment.delete.delay.ms"),
        Long,
        "Delay before a deleted segment's files go; Ringbolt unlinks at once, in-flight reads keep their descriptors.",
    ),
    t(
        "flush.messages",
        Some("log.flush.interval.messages"),
        Long,
        "Force an fdatasync after this many messages.",
    ),
    t(
        "flush.ms",
        Some("log.flush.interval.ms"),
        Long,
        "Force an fdatasync when data has been unsynced this long.",
    ),
    t(
        "index.interval.bytes",
        Some("log.index.interval.bytes"),
        Int,
        "Bytes of log between two offset index entries.",
    ),
    t(
        "local.retention.bytes",
        Some("log.local.retention.bytes"),
        Long,
        "Local retention with tiered storage; not supported (only the default -2).",
    ),
    t(
        "local.retention.ms",
        Some("log.local.retention.ms"),
        Long,
        "Local retention with tiered storage; not supported (only the default -2).",
    ),
    t(
        "max.compaction.lag.ms",
        Some("log.cleaner.max.compaction.lag.ms"),
        Long,
        "A record is compacted at the latest this long after it was written.",
    ),
    t(
        "max.message.bytes",
        Some("message.max.bytes"),
        Int,
        "Largest record batch the topic accepts.",
    ),
    t(
        "message.timestamp.after.max.ms",
        Some("log.message.timestamp.after.max.ms"),
        Long,
        "How far in the future a CreateTime timestamp may be; Ringbolt supports only no limit.",
    ),
    t(
        "message.timestamp.before.max.ms",
        Some("log.message.timestamp.before.max.ms"),
        Long,
        "How far in the past a CreateTime timestamp may be; Ringbolt supports only no limit.",
    ),
    t(
        "message.timestamp.type",
        Some("log.message.timestamp.type"),
        String,
        "CreateTime or LogAppendTime.",
    ),
    t(
        "min.cleanable.dirty.ratio",
        Some("log.cleaner.min.cleanable.ratio"),
        Double,
        "Clean the log once this share of it is dirty.",
    ),
    t(
        "min.compaction.lag.ms",
        Some("log.cleaner.min.compaction.lag.ms"),
        Long,
        "A record stays uncompacted at least this long.",
    ),
    t(
        "min.insync.replicas",
        Some("min.insync.replicas"),
        Int,
        "Replicas that must be in sync for an acks=all produce to succeed; more than one is refused on one broker (NOT_ENOUGH_REPLICAS).",
    ),
    t(
        "preallocate",
        Some("log.preallocate"),
        Boolean,
        "Preallocate segment files; Ringbolt always zero-fills ahead of its appends, so both values behave alike.",
    ),
    t(
        "remote.log.copy.disable",
        None,
        Boolean,
        "Tiered storage copying; not supported (only false).",
    ),
    t(
        "remote.log.delete.on.disable",
        None,
        Boolean,
        "Tiered storage deletion; not supported (only false).",
    ),
    t(
        "remote.storage.enable",
        None,
        Boolean,
        "Tiered storage for the topic; not supported (only false).",
    ),
    t(
        "retention.bytes",
        Some("log.retention.bytes"),
        Long,
        "Delete the oldest segments of a partition once it is larger than this; -1 means no limit.",
    ),
    t(
        "retention.ms",
        Some("log.retention.ms"),
        Long,
        "Delete segments whose newest record is older than this; -1 keeps them forever.",
    ),
    t(
        "segment.bytes",
        Some("log.segment.bytes"),
        Int,
        "Largest size of one segment file.",
    ),
    t(
        "segment.index.bytes",
        Some("log.index.size.max.bytes"),
        Int,
        "Largest offset index of a segment.",
    ),
    t(
        "segment.jitter.ms",
        Some("log.roll.jitter.ms"),
        Long,
        "Random jitter subtracted from segment.ms; Ringbolt supports only 0.",
    ),
    t(
        "segment.ms",
        Some("log.roll.ms"),
        Long,
        "Roll a new segment when the active one is this old.",
    ),
    t(
        "unclean.leader.election.enable",
        Some("unclean.leader.election.enable"),
        Boolean,
        "Whether a replica that is not in sync may become leader.",
    ),
];

/// Kafka's names for broker config `name`, itself first: the less precise units it falls back to.
pub fn synonym_names(name: &str) -> Vec<&'static str> {
    match name {
        "log.retention.ms" => vec![
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ],
        "log.roll.ms" => vec!["log.roll.ms", "log.roll.hours"],
        "log.roll.jitter.ms" => vec!["log.roll.jitter.ms", "log.roll.jitter.hours"],
        _ => broker(name).map(|d| d.name).into_iter().collect(),
    }
}

/// The description of broker config `name`.
pub fn broker(name: &str) -> Option<&'static BrokerConfigDef> {
    BROKER_CONFIGS.iter().find(|d| d.name == name)
}

/// The description of topic config `name`.
pub fn topic(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BrokerSettings, TOPIC_CONFIG_NAMES};

    #[test]
    fn tables_are_sorted_and_unique() {
        assert!(BROKER_CONFIGS.windows(2).all(|w| w[0].name < w[1].name));
        assert!(TOPIC_CONFIGS.windows(2).all(|w| w[0].name < w[1].name));
    }

    #[test]
    fn every_setting_is_described() {
        let values = BrokerSettings::default().values_with_unset();
        for name in values.keys() {
            assert!(
                broker(name).is_some(),
                "broker config {name} has no description"
            );
        }
        for d in BROKER_CONFIGS {
            assert!(
                values.contains_key(d.name),
                "described {} is no setting",
                d.name
            );
        }
        for n in TOPIC_CONFIG_NAMES {
            assert!(topic(n).is_some(), "topic config {n} has no description");
        }
        for d in TOPIC_CONFIGS {
            assert!(TOPIC_CONFIG_NAMES.contains(&d.name), "{}", d.name);
            if let Some(b) = d.broker_synonym {
                assert!(
                    broker(b).is_some_and(|s| s.dynamic),
                    "{}'s default {b} must be a dynamic broker config",
                    d.name
                );
            }
        }
    }

    #[test]
    fn types_parse() {
        assert!(Long.parses("-1") && !Long.parses("soon"));
        assert!(Int.parses("1024") && !Int.parses("3000000000"));
        assert!(Boolean.parses("TRUE") && !Boolean.parses("yes"));
        assert!(Double.parses("0.5") && !Double.parses("NaN"));
    }
}
