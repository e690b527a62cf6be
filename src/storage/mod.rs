//! The partition log: Kafka's on-disk layout, direct-I/O appends, group commit, recovery and
//! retention.
//!
//! # Layout
//! `<data-dir>/<topic>-<partition>/` holds segments named by their 20-digit base offset, exactly
//! as Apache Kafka writes them:
//! - `.log`: v2 record batches as the producer sent them; only the broker-owned header fields are
//!   rewritten (base offset, partition leader epoch = 0 on a single node, the leader's epoch on
//!   a replicated partition, and for `LogAppendTime` the timestamp-type
//!   bit plus maxTimestamp, with the CRC recomputed).
//! - `.index`: sparse, 8-byte entries (relative offset u32 BE, position u32 BE), one per
//!   `index.interval.bytes` ([`index`]).
//! - `.timeindex`: 12-byte entries (timestamp i64 BE, relative offset u32 BE), appended only when
//!   the segment's max timestamp grows ([`time_index`]).
//! - `.txnindex`: the aborted transactions whose ABORT marker lies in the segment, Kafka's 34-byte
//!   entries (version, producer id, first offset, last offset, last stable offset); present only
//!   when there is one ([`txn_index`]).
//!
//! Next to them:
//! - `leader-epoch-checkpoint`: where each leader epoch starts, Kafka's file ([`leader_epoch`]).
//! - `log-start-offset`: the log start DeleteRecords moved, when it did ([`log_start`]; Kafka
//!   keeps one file per log directory instead, see there why this is per partition).
//! - `<offset>.snapshot`: the producer state as of that offset ([`producer_state`]).
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
//! The writer task is [`appender`]; group commit and the `flush.*` policies are [`syncer`]; the
//! zero-fill ahead of the data that keeps syncs cheap is [`zero_fill`]. What they and `append`
//! share lives in `state/`, one part per owner (the writer's queue and active file, the syncer's,
//! the zero-fill's, the tail cache's, the segment map), each a type with private fields whose doc
//! states its invariants; [`log`] and the tasks depend on it, not on each other's state.
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
//! # Idempotent producers ([`producer_state`])
//! `append` checks batches that carry a producer id against the partition's producer state
//! (epoch, last five sequence ranges) inside the same synchronous step that assigns offsets, so a
//! check and its append cannot interleave with another append. A retried batch is answered with
//! its original offsets and not written again; sequence gaps and stale epochs are refused. The state
//! is snapshotted to `<offset>.snapshot` at roll and close and rebuilt on open from the newest
//! snapshot plus the batch headers after it.
//!
//! # Transactions ([`txn`], [`txn_index`], [`producer_state`])
//! The same producer state machine carries transactions (KIP-98). A transactional batch starts
//! its producer's transaction at its base offset; a non-transactional batch of a producer in a
//! transaction is refused (`INVALID_TXN_STATE`), and so is any control batch a client sends
//! (`INVALID_RECORD`). [`PartitionLog::append_marker`] writes the transaction coordinator's
//! COMMIT/ABORT marker as Kafka's control batch through the same synchronous append step
//! (offset assigned at once, fenced by producer epoch and coordinator epoch), ending the
//! transaction. [`PartitionLog::last_stable_offset`] is the first offset of the oldest
//! transaction still open (or whose marker is not written yet), else the high watermark. An
//! ABORT adds an entry to the active segment's `.txnindex`; [`PartitionLog::aborted_transactions`]
//! answers a read_committed fetch's range from the entries (active segment) and per-segment
//! summaries (sealed ones, whose files are read only when they may hold a match). Recovery
//! replays markers with the producer state (it reads the marker's record, not just the header)
//! and rebuilds the ongoing transactions, the LSO and the index entries of the replayed range;
//! the index files are written before each producer snapshot, so entries below a snapshot are
//! always on disk. Retention, DeleteRecords and open delete a segment's `.txnindex` with it; the
//! cleaner never cleans past the LSO, drops aborted data (keeping every marker) and merges the
//! indexes of the segments it merges.
//!
//! # Read path ([`read`])
//! `read` maps (offset, max_bytes) to `FileSlice`s — (Arc'd buffered fd, position, length) of
//! whole batches — via the sparse index plus a short header walk. Direct writes bypass (and
//! invalidate) the page cache, so a consumer that keeps up would read every batch from the device
//! (and the connection's `sendfile` would block on it). Two things keep it off the device:
//! - the tail cache ([`recent`]): once someone has read the partition, the writer keeps a copy of
//!   its last writes (256 KiB per partition, 64 MiB per shard), and a read inside that range is
//!   answered from memory (`FileSlice::mem`);
//! - for readers further behind, the writer issues `posix_fadvise(WILLNEED)` on the segment's read
//!   descriptor for each range it just wrote: the kernel reads it back asynchronously and a
//!   catch-up fetch finds it cached (`cargo bench --bench storage -- read/` measures a read just
//!   behind the writer; measured in `docs/perf/storage-bench.md`). Cost: the device reads written
//!   data once more, only for partitions that have readers.
//!
//! What is still read from the file goes through [`page_cache`], so a miss waits in io_uring, not
//! on the shard thread.
//!
//! # Compaction ([`cleaner`])
//! A log whose `cleanup.policy` includes `compact` is cleaned by its shard's log cleaner: closed
//! segments are rewritten keeping the latest record per key (offsets kept, so gaps appear) and
//! swapped in crash-safely; retention applies only when the policy includes `delete`. Readers
//! hold `Arc`'d descriptors, so a fetch that located batches before a swap still reads them.
//!
//! # Footprint
//! An idle partition holds its segment map, the active segment's indexes (8 + 12 bytes per
//! entry, one entry per 4 KiB appended), one partial block (< 4 KiB) and two descriptors; one
//! that has been read also its tail cache (up to 256 KiB). Sealed
//! segments keep only counters; at most `WARM_SEALED_SEGMENTS` (`state/segments.rs`) of them keep their indexes
//! and read descriptor loaded (LRU). No task and no buffer exist while a partition is idle.
//!
//! # Using it from the server
//! `PartitionLog` is `!Send` and must be opened and used inside a glommio executor (it spawns its
//! writer/syncer tasks with `glommio::spawn_local`). Keep it as `Rc<PartitionLog>` on the owner
//! shard. Produce: `append(records)` (or `append_assign` + `wait_written`, to act between the two),
//! then for acks=-1 `wait_durable(info.last_offset)`. Fetch:
//! `read(offset, max_bytes)`, and if empty, race `wait_for_append()` against the max-wait timer.
//! Retention: spawn `log.clone().retention_loop(every)` once per partition, or call
//! `enforce_retention(now)` from a shard-wide timer. Shutdown: `close()` (syncs, trims, writes
//! indexes).
//!
//! # Blocking system calls
//! The data path (appends, syncs, index-file writes) goes through io_uring. The fetch path reads
//! batch headers with `preadv2(RWF_NOWAIT)` and falls back to io_uring for whatever the page cache
//! does not hold up to date, and the connection makes each slice ready the same way before
//! `sendfile` ([`page_cache`]): a consumer reading data that is not cached no longer stalls the
//! shard. A few cheap calls stay synchronous and are confined to rare or cached work: `open(2)` of
//! read descriptors, `posix_fadvise` hints, `unlink(2)` in retention, directory listing and tail
//! scans in `open`, and the `pread(2)` of recovery and producer-state rebuilds. ListOffsets by
//! timestamp and max timestamp read (and decode) their one batch through [`page_cache`] too.
//!
//! # Deviations from the brief's contract
//! None in signatures. Additions: `dir`, `config`, `is_closed`, `retention_loop`,
//! `segment_count`, `segment_bases`, `heap_bytes`, `open_sealed_readers`, `delete_records`,
//! `size_bytes`, `end_offset_for_epoch`, `leader_epochs`, `ongoing_transactions`,
//! `aborted_entries`,
//! `ReadResult::{read_to_vec, total_len}`, and for replication (issue 19, [`replica`]):
//! `wait_for_write`, `truncate_fully_and_start_at`, `ReplicaRole::append_epoch`.
//! `log_end_offset` is the written end (appends still queued are not counted); the high
//! watermark equals it for a single node ([`ReplicaRole::Single`]) and is the replicated one for
//! a leader or follower ([`replica`]).

pub mod appender;
pub mod checkpoint;
pub mod cleaner;
pub mod config;
pub mod dump;
pub mod error;
pub mod flush_anchor;
pub mod index;
pub mod iopoll;
pub mod keyed_log;
pub mod leader_epoch;
pub mod log;
pub mod log_start;
pub mod page_cache;
pub mod producer_state;
pub mod read;
pub mod recent;
pub mod recovery;
pub mod replica;
pub mod retention;
pub mod segment;
pub mod slice;
mod state;
pub mod syncer;
pub mod time_index;
pub mod txn;
pub mod txn_index;
mod txn_log;
pub mod zero_fill;

pub use config::{CleanupPolicy, LogConfig, TimestampType};
pub use error::StorageError;
pub use log::PartitionLog;
pub use replica::ReplicaRole;
pub use slice::{AppendInfo, FileSlice, ReadResult};
pub use state::SyncStats;
