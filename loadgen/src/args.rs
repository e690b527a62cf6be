//! Command-line flags. The same struct is serialised into `summary.json` under `config`.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::batch::Compression;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Produce,
    Consume,
    Both,
}

/// What `--txn-records` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TxnMode {
    /// Transactions: AddPartitionsToTxn, produce, EndTxn(commit).
    Transactional,
    /// The same loop with an idempotent producer and no transactions (the baseline).
    Idempotent,
}

/// Fetch isolation level of the consumers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    ReadUncommitted,
    ReadCommitted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
pub enum Acks {
    #[value(name = "0")]
    #[serde(rename = "0")]
    None,
    #[value(name = "1")]
    #[serde(rename = "1")]
    Leader,
    #[value(name = "all")]
    #[serde(rename = "all")]
    All,
}

impl Acks {
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Open-loop Kafka load generator: produce at a fixed rate, consume, verify, report latency.
#[derive(Clone, Debug, Parser, Serialize)]
#[command(name = "loadgen", version)]
pub struct Args {
    /// Target produce rate in messages/s (0 = as fast as possible).
    #[arg(long, default_value_t = 250_000)]
    pub rate: u64,
    /// Measured duration in seconds (after the warmup).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Warmup in seconds: produced and verified, but not counted in rates or latencies.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Message (record value) size in bytes; at least 32 (the loadgen header).
    #[arg(long, default_value_t = 200)]
    pub message_size: usize,
    /// Key cardinality (0 = no keys; messages are spread by a sticky partitioner).
    #[arg(long, default_value_t = 0)]
    pub keys: u64,
    /// Partitions of the topic when loadgen creates it.
    #[arg(long, default_value_t = 8)]
    pub partitions: i32,
    /// Topic (created if missing).
    #[arg(long, default_value = "loadgen")]
    pub topic: String,
    /// Producer connections.
    #[arg(long, default_value_t = 2)]
    pub producers: usize,
    /// Consumer connections.
    #[arg(long, default_value_t = 2)]
    pub consumers: usize,
    /// Produce acks: 0 (none), 1 (leader appended), all (in-sync replicas; durable on Ringbolt).
    ///
    /// `all` by default, as Kafka's producer since 3.0 and the seed tutorial's sarama producer
    /// (WaitForAll): the figures then describe what a default client gets.
    #[arg(long, value_enum, default_value = "all")]
    pub acks: Acks,
    /// Batch size in bytes per partition (uncompressed).
    #[arg(long, default_value_t = 16384)]
    pub batch_size: usize,
    /// Longest time a non-full batch waits before it is sent, in ms.
    #[arg(long, default_value_t = 5.0)]
    pub linger_ms: f64,
    /// Batch compression.
    #[arg(long, value_enum, default_value = "none")]
    pub compression: Compression,
    /// What to run.
    #[arg(long, value_enum, default_value = "both")]
    pub mode: Mode,
    /// Where to write summary.json, *.hgrm and *.svg.
    #[arg(long, default_value = "loadgen-report")]
    pub report_dir: PathBuf,
    /// Expected produce rate in msgs/s (PASS/FAIL line).
    #[arg(long, default_value_t = 250_000)]
    pub expect_produce: u64,
    /// Expected catch-up consume rate in msgs/s (PASS/FAIL line).
    #[arg(long, default_value_t = 550_000)]
    pub expect_consume: u64,
    /// Expected produce p99 latency bound in µs (PASS/FAIL line when given).
    ///
    /// The strict, opt-in latency target; `--max-schedule-lag-ms` is the always-on bound that
    /// only asks whether the offered rate was served on schedule.
    #[arg(long)]
    pub expect_p99_us: Option<u64>,
    /// How far produce may fall behind its schedule, in ms (PASS/FAIL line "produce schedule").
    ///
    /// Latency is measured from each message's scheduled send time, so a broker that cannot keep
    /// up shows as latency that grows with the backlog. The run fails when the produce p99 or the
    /// lag at the end of the run (last acknowledgement minus the schedule's end) exceeds this
    /// bound: then the offered rate was not served, even if every message was acknowledged in the
    /// end. The default is far above a healthy broker's tail (tens of ms) and far below a broker
    /// that fell behind (seconds). Not checked with --rate 0 (no schedule).
    #[arg(long, default_value_t = crate::run::DEFAULT_MAX_SCHEDULE_LAG_MS)]
    pub max_schedule_lag_ms: u64,
    /// Existing broker HOST:PORT; without it an embedded Ringbolt is started.
    #[arg(long)]
    pub bootstrap: Option<String>,
    /// Requests in flight per producer connection.
    #[arg(long, default_value_t = 5)]
    pub max_in_flight: usize,
    /// Shards of the embedded broker (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub embedded_shards: usize,
    /// Records per transaction: with `--mode produce`, runs the closed-loop transactional
    /// producer (`txn.rs`) instead of the open-loop one (0 = off).
    #[arg(long, default_value_t = 0)]
    pub txn_records: usize,
    /// With `--txn-records`: real transactions, or the idempotent baseline of the same loop.
    #[arg(long, value_enum, default_value = "transactional")]
    pub txn_mode: TxnMode,
    /// Consumers' isolation level (read-committed: data below the last stable offset only).
    #[arg(long, value_enum, default_value = "read-uncommitted")]
    pub isolation: Isolation,
}

/// Size of the loadgen header at the start of every value (see `producer.rs`).
pub const MIN_MESSAGE_SIZE: usize = 32;

impl Args {
    /// Rejects combinations that cannot run.
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        if self.message_size < MIN_MESSAGE_SIZE {
            bail!("--message-size must be at least {MIN_MESSAGE_SIZE}");
        }
        if !self.duration.is_finite()
            || self.duration <= 0.0
            || !self.warmup.is_finite()
            || self.warmup < 0.0
        {
            bail!("--duration must be > 0 and --warmup >= 0");
        }
        if self.partitions < 1 {
            bail!("--partitions must be at least 1");
        }
        if self.producers < 1 || self.consumers < 1 || self.max_in_flight < 1 {
            bail!("--producers, --consumers and --max-in-flight must be at least 1");
        }
        if !self.linger_ms.is_finite() || self.linger_ms < 0.0 {
            bail!("--linger-ms must be >= 0");
        }
        if self.txn_records > 0 && self.mode != Mode::Produce {
            bail!("--txn-records runs with --mode produce only");
        }
        Ok(())
    }
}
