//! The partition log: Kafka's on-disk layout, direct-I/O appends, group commit, recovery and
//! retention.
//!
//! # Layout
//! `<data-dir>/<topic>-<partition>/` holds segments named by their 20-digit base offset, exactly
//! as Apache Kafka writes them:
//! - `.log`: v2 record batches as the producer sent them; only the broker-owned header fields are
//!   rewritten (base offset, partition leader epoch = 0, and for `LogAppendTime` the timestamp-type
//!   bit plus maxTimestamp, with the CRC recomputed).
//! - `.index`: sparse, 8-byte entries (relative offset u32 BE, position u32 BE), one per
//!   `index.interval.bytes` ([`index`]).
//! - `.timeindex`: 12-byte entries (timestamp i64 BE, relative offset u32 BE), appended only when
//!   the segment's max timestamp grows ([`time_index`]).
//!
//! Sealed segments carry indexes trimmed to their entries (what Kafka leaves after a roll); the
//! active segment's index files hold the entries for durable data, appended after each sync.
//!
//! # Write path ([`appender`])
//! `append` validates every batch (no per-record decoding), assigns offsets and file positions
//! synchronously — so call order is log order — and queues the bytes for the partition's single
//! writer, which coalesces everything queued into one aligned O_DIRECT write through glommio's
//! `DmaFile`, rewriting the partial last block it keeps in memory. Why direct I/O: the broker
//! controls when bytes reach the device (no writeback storms, no double buffering of producer
//! data in the page cache), and writes are plain io_uring submissions. Reads use a separate
//! buffered descriptor (sendfile-able); Linux invalidates the page-cache range a direct write
//! covers, so buffered readers never see stale data.
//!
//! # Durability: what each acks level promises after power loss
//! - `acks=all` (-1): the handler calls [`PartitionLog::wait_durable`] for the batch's last
//!   offset and answers only after an fdatasync covering it completed (group commit: one sync in
//!   flight per partition; it covers every append written before it started). An acknowledged
//!   batch survives power loss (given a device that honours flushes). This is the default.
//! - `acks=1`: answered once the bytes are written to the file (the direct write completed, so
//!   they are in the device's queue/cache, not in the page cache). Survives a broker crash
//!   (kill -9); after power loss it survives only if a sync happened meanwhile — by `flush.messages`,
//!   `flush.ms`, a later acks=all append on the partition, a roll or a clean close. Kafka makes the
//!   same trade and relies on replication, which a single Ringbolt broker does not have.
//! - `acks=0`: no answer; no promise beyond "accepted into the connection". Same storage path as
//!   acks=1.
//!
//! After recovery the log is always a prefix of what was appended: torn or corrupt tails are cut
//! at the first batch that fails validation ([`recovery`]).
//!
//! # Read path ([`read`])
//! `read` maps (offset, max_bytes) to `FileSlice`s — (Arc'd buffered fd, position, length) of
//! whole batches — via the sparse index plus a short header walk. There is no separate in-memory
//! tail cache: the batches just written are in the page cache already (the direct write is
//! followed by buffered reads that fault them in once), so a "recent data" cache would mostly
//! duplicate kernel pages. Revisit with the Fetch benchmark.
//!
//! # Footprint
//! An idle partition holds its segment map, the active segment's indexes (8 + 12 bytes per
//! entry, one entry per 4 KiB appended), one partial block (< 4 KiB) and two descriptors. Sealed
//! segments keep only counters; at most [`log::WARM_SEALED_SEGMENTS`] of them keep their indexes
//! and read descriptor loaded (LRU). No task and no buffer exist while a partition is idle.
//!
//! # Deviations from the brief's contract
//! None in signatures. Additions: `dir`, `config`, `segment_count`, `segment_bases`,
//! `heap_bytes`, `open_sealed_readers`, `ReadResult::read_to_vec`. `log_end_offset` is the
//! written end (equal to the high watermark); appends still queued are not counted.

pub mod appender;
pub mod config;
pub mod dump;
pub mod error;
pub mod index;
pub mod log;
mod notify;
pub mod read;
pub mod recovery;
pub mod retention;
pub mod segment;
pub mod slice;
pub mod time_index;

pub use config::{LogConfig, TimestampType};
pub use error::StorageError;
pub use log::PartitionLog;
pub use slice::{AppendInfo, FileSlice, ReadResult};
