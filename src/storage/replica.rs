//! The partition log as a replica: leader or follower of a replicated partition.
//!
//! A single node's log ([`ReplicaRole::Single`]) behaves as it always has: the high watermark is
//! the written end. As a leader the high watermark is what the replication layer says it is
//! (the ISR's minimum log end), consumer reads stop there and client appends are stamped with the
//! leader's epoch. As a follower only [`PartitionLog::append_replica`] writes, keeping the
//! leader's offsets and epochs.
//!
//! # Two ends: the log end and the high watermark
//! `log_end_offset` is the written end (what this replica has); `high_watermark` is what
//! consumers may see. For `Single` the two are one number and nothing here costs the hot path
//! more than a branch on the role. For a replica the high watermark is a number of its own,
//! moved only by [`PartitionLog::advance_high_watermark`] (monotonic, clamped to the written
//! end) and cut only by a truncation. Consumer reads (`read`, `read_below`), the last stable
//! offset, ListOffsets' latest and timestamp lookups, DeleteRecords and retention all stop at it;
//! a consumer fetch between it and the log end reads nothing (Kafka answers the same, not
//! OFFSET_OUT_OF_RANGE). [`PartitionLog::read_replica`] (a follower's fetch on the leader) reads to
//! the log end. Fetch long-polls wait on `wait_for_append`, which a high-watermark advance wakes;
//! followers' fetches wait on [`PartitionLog::wait_for_write`], which every write wakes.
//!
//! When a log first leaves `Single` (the broker opened it and the metadata made it a replica)
//! its high watermark starts at the log start: nothing is known to be replicated until the
//! leader has heard from its ISR (or, on a follower, until the leader's fetch responses say so),
//! which takes one fetch round. Kafka keeps a `replication-offset-checkpoint` to start from the
//! previous run's value; starting low instead never shows a consumer data that a failover could
//! take back, at the price of consumers seeing nothing new for that first round after a restart.
//!
//! # Epochs
//! `set_role(Leader { epoch })` records the epoch's start at the log end in the leader-epoch
//! cache (Kafka's `makeLeader`) and client appends are stamped with it (the writer sets the
//! partition leader epoch as it copies the batch, outside the CRC). A follower's appends keep the
//! leader's stamps, and a batch of an epoch newer than the cache's latest adds its entry (Kafka's
//! `appendAsFollower`).
//!
//! # Follower appends
//! [`PartitionLog::append_replica`] takes the batches of a fetch response as the leader stored
//! them: each is validated as a stored batch (length, magic, CRC; a compacted batch may hold
//! fewer records than its offset range), nothing is rewritten, and the bytes reach the file as
//! they are, so the follower's segments are byte-identical to the leader's when both roll at the
//! same points (below). The first batch must start at or after the log end and offsets must increase;
//! a gap is accepted (a compacted leader log has gaps, and Kafka's followers accept them too),
//! an overlap is refused with [`StorageError::UnexpectedAppendOffset`] (the fetcher then
//! truncates or resets). A trailing partial batch is ignored, as Kafka's follower does.
//! `max.message.bytes` is not applied: the leader did, and refusing here would stall
//! replication for good. The producer state is updated without checks (the leader checked;
//! the follower must end with the same state so that, once leader, it answers a retry as a
//! duplicate), markers end transactions and add `.txnindex` entries, index entries and roll
//! decisions are made as for a client append, in the same synchronous step, queued to the same
//! writer. Rolls are decided batch by batch (each batch is its own queued write; the writer
//! coalesces them), so a follower's segments start where a leader that appended one batch per
//! request (what clients send) started them, whatever the fetch size; after multi-batch
//! requests the boundaries may differ, as Kafka's do.
//!
//! # Truncation: an offline rebuild of the internals
//! [`PartitionLog::truncate_to`] cuts a follower's divergent tail. Rather than editing every part
//! of the in-memory state in place (segment map, indexes, time index and max timestamps,
//! transaction index, producer state, tail cache, writer and syncer positions), it takes the log
//! briefly offline for writes and rebuilds the state from the files, with the code that opens a
//! log:
//! 1. appends, rolls and markers are refused (`NOT_LEADER_OR_FOLLOWER`) and retention and the
//!    cleaner's swaps pause; the writer queue drains, the syncer, index persist and zero-fill
//!    end; the active file is closed;
//! 2. the leader-epoch cache is truncated and persisted (first, as Kafka does: a crash after it
//!    leaves epochs the reopened log recovers from its batch headers);
//! 3. producer snapshots past the cut are deleted (later appends would make them look valid);
//! 4. the segments after the one holding the cut are deleted, newest first (a crash leaves a
//!    prefix), and that segment's `.log` is cut at the start of the batch holding the offset and
//!    synced;
//! 5. the state is loaded as `open` loads it (recovery from the index's last entry, producer
//!    state from the newest snapshot at or below the cut plus a replay, `.txnindex` entries past
//!    the end dropped), keeping the role and the high watermark (lowered to the new end).
//!
//! A crash at any point leaves a log that opens as a prefix of the old one: at worst the divergent
//! tail is still there and the follower truncates again. The price is one reopen of the
//! partition's files per truncation, which happens when a replica returns or a leader changes,
//! not per fetch. Reads in flight keep their `Arc`'d descriptors and may see a shortened file (a
//! follower's own readers are rare: clients fetch from leaders).
//!
//! [`PartitionLog::truncate_fully_and_start_at`] empties the log and restarts it at an offset
//! (a follower far behind the leader's log start, or a truncation below its own log start).

use std::rc::Rc;

use bytes::Bytes;

use crate::format::record_batch::{self, BatchHeader};
use crate::util::now_ms;

use super::error::StorageError;
use super::log::{PartitionLog, load_state, needs_roll};
use super::segment::{self, HeaderScanner, sync_dir};
use super::slice::{AppendInfo, ReadResult};
use super::state::ActiveFile;
use super::txn::{self, TxnMarker};

/// What this broker is for the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplicaRole {
    /// Not replicated (single node): HW = written end, epoch 0.
    #[default]
    Single,
    /// Leader at `epoch`: client appends allowed and stamped with it; HW set by
    /// [`PartitionLog::advance_high_watermark`].
    Leader { epoch: i32 },
    /// Follower of the leader at `epoch`: client appends refused (NOT_LEADER_OR_FOLLOWER).
    Follower { epoch: i32 },
}

impl ReplicaRole {
    /// The partition leader epoch client appends are stamped with (`LEADER_EPOCH`, 0, on a
    /// single node); `None` on a follower, which takes no client appends.
    pub fn append_epoch(&self) -> Option<i32> {
        match *self {
            ReplicaRole::Single => Some(super::leader_epoch::LEADER_EPOCH),
            ReplicaRole::Leader { epoch } => Some(epoch),
            ReplicaRole::Follower { .. } => None,
        }
    }
}

impl PartitionLog {
    /// Switches the role. Becoming leader at a new epoch records the epoch's start at the log
    /// end in the leader-epoch cache. Wakes `wait_high_watermark` waiters (which fail unless
    /// the role they waited under is still the current one) and fetch long-polls.
    pub fn set_role(&self, role: ReplicaRole) {
        let (old, end) = {
            let mut st = self.inner().state_mut();
            let old = st.role();
            st.set_role(role);
            (old, st.queue().assigned())
        };
        if let ReplicaRole::Leader { epoch } = role {
            let latest = self.leader_epochs().last().map(|e| e.epoch);
            if latest.is_none_or(|l| epoch >= l) {
                self.note_epoch(epoch, end);
            } else {
                tracing::warn!(dir = %self.dir().display(), epoch, latest, "leader epoch older than the log's latest; not recorded");
            }
        }
        if old != role {
            tracing::debug!(dir = %self.dir().display(), ?old, new = ?role, "replica role changed");
            self.inner().appended().notify();
        }
    }

    pub fn role(&self) -> ReplicaRole {
        self.inner().state().role()
    }

    /// The follower's append: batches as the leader stored them (offsets, partition leader
    /// epochs, control batches included), which must start at or after the log end offset
    /// (module docs). Updates the producer state and leader-epoch cache as the leader's append
    /// did. Synchronous half, like [`PartitionLog::append_assign`]; wait with
    /// [`PartitionLog::wait_written`]. Refused on a leader.
    pub fn append_replica(&self, records: Bytes) -> Result<AppendInfo, StorageError> {
        let inner = self.inner();
        let (headers, first, last) = {
            let mut st = inner.state_mut();
            st.check_usable()?;
            if let ReplicaRole::Leader { epoch } = st.role() {
                return Err(StorageError::NotLeaderOrFollower(format!(
                    "the leader of epoch {epoch} takes no replica appends"
                )));
            }
            let (headers, used) = replica_batches(&records)?;
            let records = records.slice(..used);
            let log_end = st.queue().assigned();
            let first = headers[0].base_offset;
            let mut next = log_end;
            for h in &headers {
                if h.base_offset < next {
                    return Err(StorageError::UnexpectedAppendOffset {
                        first: h.base_offset,
                        log_end: next,
                    });
                }
                next = h.last_offset() + 1;
            }
            let last = next - 1;
            let now = now_ms();
            let cfg = inner.config();
            let interval = cfg.index_interval_bytes;
            let hw = st.hw();
            let mut at = 0usize;
            for h in &headers {
                let len = h.total_len();
                // Batch by batch: a gap (compaction on the leader) moves the log end to the
                // batch, so a roll starts the new segment there, as Kafka's does; and rolling
                // per batch puts the follower's segment boundaries where a leader that appended
                // one batch at a time put them (what clients send), whatever the fetch size.
                st.queue_mut().skip_to(h.base_offset);
                if needs_roll(&st, &cfg, len as u64, h.last_offset(), 1, now) {
                    st.push_roll(now);
                }
                let position = st.queue().projected_size();
                st.segments_mut()
                    .active_mut()
                    .index_batch(h, position, interval);
                if h.is_control() {
                    if let Some((commit, coordinator_epoch)) =
                        txn::decode_marker(&records[at..at + len])
                    {
                        let m = TxnMarker {
                            producer_id: h.producer_id,
                            producer_epoch: h.producer_epoch,
                            commit,
                            coordinator_epoch,
                        };
                        let done = st.producers_mut().apply_marker(
                            &m,
                            h.base_offset,
                            h.max_timestamp,
                            now,
                            hw,
                        );
                        if let Some(e) = done.and_then(|d| d.index_entry()) {
                            st.segments_mut().active_mut().txns.push(e);
                        }
                    }
                } else {
                    st.producers_mut().apply(h, now);
                }
                let bytes = records.slice(at..at + len);
                let messages = h.last_offset_delta as u64 + 1;
                if st
                    .queue_mut()
                    .push_write_verbatim(bytes, h.last_offset() + 1, messages)
                {
                    let end = st.queue().assigned();
                    let snapshot = st.producers_mut().encode(end);
                    st.queue_mut().push_snapshot(snapshot);
                }
                at += len;
            }
            drop(cfg);
            st.producers_mut().maybe_expire(now);
            self.ensure_writer(&mut st);
            (headers, first, last)
        };
        for h in &headers {
            self.note_epoch_if_newer(h.partition_leader_epoch, h.base_offset);
        }
        Ok(AppendInfo {
            base_offset: first,
            last_offset: last,
            log_append_time: -1,
            log_start_offset: self.log_start_offset(),
        })
    }

    /// Cuts the log back so that `offset` is the new log end (a follower's divergent tail):
    /// segments, indexes, producer state, transaction state, leader-epoch cache. No-op when
    /// `offset` is at or past the end. Never below the high watermark's committed data on a
    /// leader (callers only truncate followers).
    ///
    /// The cut is at a batch boundary: when `offset` falls inside a batch, that whole batch goes
    /// and the new log end is its base offset. Below the log start, the log restarts empty at
    /// `offset` ([`PartitionLog::truncate_fully_and_start_at`]). See the module docs for how and
    /// why (an offline rebuild of the internals) and what a crash leaves.
    pub async fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        if offset >= self.inner().state().queue().assigned() {
            return Ok(());
        }
        if offset < self.log_start_offset() {
            return self.truncate_fully_and_start_at(offset).await;
        }
        let _turn = self.log_start_state().turn().await?;
        let Some(active) = self.quiesce(Some(offset)).await? else {
            return Ok(());
        };
        let res = self.cut_and_reload(offset, active).await;
        self.finish_truncation(res)
    }

    /// Empties the log and restarts it at `offset`, which becomes its log start, log end and
    /// high watermark (Kafka's `truncateFullyAndStartAt`: a follower whose log end lies below the
    /// leader's log start, or a truncation below this log's start). The leader-epoch cache and
    /// the producer state are cleared.
    pub async fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), StorageError> {
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset(),
                high_watermark: self.high_watermark(),
            });
        }
        let _turn = self.log_start_state().turn().await?;
        let Some(active) = self.quiesce(None).await? else {
            return Ok(());
        };
        let res = self.restart_and_reload(offset, active).await;
        self.finish_truncation(res)
    }

    /// Sets the high watermark (leader: the ISR's minimum log end; follower: the leader's HW,
    /// clamped to this log's end). Never moves backwards; wakes consumer fetches waiting on it.
    /// No-op for [`ReplicaRole::Single`], whose high watermark is the written end.
    pub fn advance_high_watermark(&self, hw: i64) {
        let moved = self.inner().state_mut().advance_hw(hw);
        if moved {
            self.inner().appended().notify();
        }
    }

    /// Resolves once the high watermark is past `offset`, or with the error that took the log
    /// offline. Started under a replica role, it ends with
    /// [`StorageError::NotLeaderOrFollower`] once the role changes (another epoch, or a
    /// follower) before the high watermark got there; [`StorageError::Closed`] when the log is
    /// closed first.
    pub async fn wait_high_watermark(&self, offset: i64) -> Result<(), StorageError> {
        let inner = self.inner();
        let started = self.role();
        loop {
            {
                let st = inner.state();
                if st.hw() > offset {
                    return Ok(());
                }
                st.check_online()?;
                if st.is_closed() {
                    return Err(StorageError::Closed);
                }
                if started != ReplicaRole::Single && st.role() != started {
                    return Err(StorageError::NotLeaderOrFollower(format!(
                        "the role changed from {started:?} to {:?} before the high watermark passed {offset}",
                        st.role()
                    )));
                }
            }
            inner.appended().wait().await;
        }
    }

    /// A follower's read on the leader: like [`PartitionLog::read`] but bounded by the log end
    /// (written data), not the high watermark. The result's `high_watermark` is the leader's.
    pub async fn read_replica(
        &self,
        offset: i64,
        max_bytes: u32,
    ) -> Result<ReadResult, StorageError> {
        Ok(self.read_up_to(offset, max_bytes, None, true).await?.0)
    }

    /// Truncation, first step: refuses appends, waits until the writer queue is drained and no
    /// writer, syncer, index persist or zero-fill runs, then takes the active file. `None` (and
    /// nothing changed) when `cut` is given and lies at or past the log end by then.
    async fn quiesce(&self, cut: Option<i64>) -> Result<Option<ActiveFile>, StorageError> {
        let inner = self.inner();
        {
            let mut st = inner.state_mut();
            st.check_usable()?;
            st.set_truncating(true);
        }
        loop {
            {
                let mut st = inner.state_mut();
                if let Err(e) = st.check_online() {
                    st.set_truncating(false);
                    drop(st);
                    inner.progress().notify();
                    return Err(e);
                }
                let q = st.queue();
                let quiet = q.is_done(q.last_seq())
                    && !q.writer_running()
                    && !st.sync().running()
                    && !st.sync().persisting()
                    && st.active().is_none_or(|a| a.fill().in_flight().is_none());
                if quiet {
                    if cut.is_some_and(|c| c >= st.written_end()) {
                        st.set_truncating(false);
                        drop(st);
                        inner.progress().notify();
                        return Ok(None);
                    }
                    return match st.take_active() {
                        Some(a) => Ok(Some(a)),
                        None => {
                            st.set_truncating(false);
                            Err(StorageError::Closed)
                        }
                    };
                }
            }
            futures_lite::future::or(inner.progress().wait(), inner.idle().wait()).await;
        }
    }

    /// Truncation, last step: appends resume and every waiter re-checks; an error takes the log
    /// offline (its state is half rebuilt).
    fn finish_truncation(&self, res: Result<(), StorageError>) -> Result<(), StorageError> {
        let inner = self.inner();
        if let Err(e) = &res {
            inner.fail(e);
        }
        inner.state_mut().set_truncating(false);
        inner.notify_all();
        res
    }

    /// Truncation to `offset` inside the log, with the writer quiet and `active` taken (module
    /// docs, steps 2 to 5).
    async fn cut_and_reload(&self, offset: i64, active: ActiveFile) -> Result<(), StorageError> {
        close_active(active).await?;
        let dir = self.dir().to_path_buf();
        let Some((seg_base, pos, cut)) = self.cut_point(offset).await? else {
            return self.reload(None).await;
        };
        tracing::info!(dir = %dir.display(), offset, cut, log_end = self.log_end_offset(), "truncating the log");
        self.truncate_epochs_from_end(Some(cut)).await?;
        super::producer_state::remove_snapshots_after(&dir, cut)?;
        let later: Vec<i64> = {
            let st = self.inner().state();
            st.segments()
                .bases()
                .into_iter()
                .filter(|&b| b > seg_base)
                .collect()
        };
        for &b in later.iter().rev() {
            for p in [
                segment::log_path(&dir, b),
                segment::index_path(&dir, b),
                segment::time_index_path(&dir, b),
                super::txn_index::path(&dir, b),
            ] {
                if let Err(e) = std::fs::remove_file(&p)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    return Err(e.into());
                }
            }
        }
        sync_dir(&dir).await?;
        {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(segment::log_path(&dir, seg_base))?;
            f.set_len(pos)?;
            f.sync_all()?;
        }
        self.reload(None).await
    }

    /// Full truncation: the log restarts empty at `offset` (steps as `cut_and_reload`, with the
    /// persisted log start moved first so a crash cannot reopen the old segments at a start
    /// that no longer matches).
    async fn restart_and_reload(
        &self,
        offset: i64,
        active: ActiveFile,
    ) -> Result<(), StorageError> {
        close_active(active).await?;
        let dir = self.dir().to_path_buf();
        tracing::info!(dir = %dir.display(), offset, log_end = self.log_end_offset(), "truncating the log fully");
        self.truncate_epochs_from_end(None).await?;
        super::log_start::write(&dir, offset).await?;
        super::producer_state::remove_snapshots_after(&dir, -1)?;
        let bases = self.inner().state().segments().bases();
        let later: Vec<i64> = bases.into_iter().rev().collect();
        super::log_start::delete_segment_files(&dir, &later).await?;
        let f = glommio::io::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(segment::log_path(&dir, offset))
            .await?;
        f.close().await?;
        sync_dir(&dir).await?;
        self.reload(Some(offset)).await
    }

    /// Truncation, step 5: the state as the files now are (`open`'s loader), keeping the role and
    /// the high watermark (set to `restart` when the log restarted empty there).
    async fn reload(&self, restart: Option<i64>) -> Result<(), StorageError> {
        let config = self.config();
        let (new, persisted_start) = load_state(self.dir(), &config).await?;
        self.inner()
            .state_mut()
            .replace_after_truncation(new, restart);
        self.apply_persisted_log_start(persisted_start).await?;
        let (start, end) = {
            let mut st = self.inner().state_mut();
            let start = st.segments().log_start();
            st.advance_hw(start);
            (start, st.written_end())
        };
        self.truncate_epochs_from_end(Some(end)).await?;
        tracing::info!(dir = %self.dir().display(), log_start = start, log_end = end, high_watermark = self.high_watermark(), "log truncated");
        Ok(())
    }

    /// Where a truncation to `offset` cuts: the segment holding it (or the first after it), the
    /// position there of the batch holding `offset` (or of the first after it; the segment's size
    /// when none), and that batch's base offset (the segment's end offset when none). `None` when
    /// no data lies at or after `offset`.
    async fn cut_point(&self, offset: i64) -> Result<Option<(i64, u64, i64)>, StorageError> {
        let Some((base, pos)) = self.batch_start(offset).await? else {
            return Ok(None);
        };
        let (file, size, next) = {
            let mut st = self.inner().state_mut();
            let dir = self.dir().to_path_buf();
            let Some(seg) = st.segments_mut().get_mut(base) else {
                return Ok(None);
            };
            (seg.reader(&dir)?, seg.size, seg.next_offset)
        };
        let mut scanner = HeaderScanner::new(&file, size);
        let cut = match scanner.header_at_async(pos).await? {
            Some(h) => h.base_offset,
            None => next,
        };
        Ok(Some((base, pos, cut)))
    }
}

/// Truncation: closes the active segment's direct-I/O file (no task uses it any more).
async fn close_active(active: ActiveFile) -> Result<(), StorageError> {
    let (dma, _) = active.into_file();
    if let Ok(f) = Rc::try_unwrap(dma) {
        f.close().await?;
    }
    Ok(())
}

/// The whole batches of a follower's fetch data, validated as stored batches, and the bytes they
/// span (a trailing partial batch is left out, as Kafka's follower leaves it). No whole batch is
/// `CorruptMessage`.
fn replica_batches(records: &Bytes) -> Result<(Vec<BatchHeader>, usize), StorageError> {
    let mut headers = Vec::new();
    let mut pos = 0usize;
    while pos < records.len() {
        let rest = &records[pos..];
        match record_batch::peek_total_len(rest) {
            Some(total) if total <= rest.len() => {}
            // Cut short by the fetch size: the next fetch brings it whole.
            Some(_) if !headers.is_empty() => break,
            None if !headers.is_empty() && rest.len() < record_batch::LOG_OVERHEAD => break,
            _ => {}
        }
        let h = record_batch::validate_stored_batch(rest)?;
        pos += h.total_len();
        headers.push(h);
    }
    if headers.is_empty() {
        return Err(StorageError::CorruptMessage(
            "a replica append holds no whole batch".into(),
        ));
    }
    Ok((headers, pos))
}
