//! The writer's part of the state: the queue of work for the writer task, with the offsets and
//! positions appends are assigned (`WriteQueue`), and the active segment's file (`ActiveFile`).
//! How the writer works: `appender.rs`.

use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;
use glommio::io::DmaFile;

use super::super::producer_state;
use super::super::recent::RecentWrites;
use super::{MetaChanges, ZeroFill};

/// Queued work for the writer task.
pub(crate) enum Op {
    /// Seal the active segment and start a new one at `new_base`.
    Roll {
        old_base: i64,
        new_base: i64,
        /// The sealed segment's final index files, encoded at enqueue time: offset, time and
        /// aborted-transaction index (empty: no file).
        indexes: [Vec<u8>; 3],
        /// The producer-state snapshot as of `new_base` (`producer_state`).
        producers: Vec<u8>,
        seq: u64,
    },
    /// Write the producer-state snapshot for `offset` (periodic, see `producer_state`).
    Snapshot {
        offset: i64,
        bytes: Vec<u8>,
        seq: u64,
    },
    /// Bytes for the active segment at `position` (contiguous with the previous write).
    Write {
        /// The batches as the producer sent them (shared with the request frame), except under
        /// `LogAppendTime`, where they are a patched copy. The writer sets each batch's base
        /// offset (from `base_offset` on) and partition leader epoch (`epoch`) as it copies them
        /// into its DMA buffer: both lie outside the CRC'd range. A follower's write
        /// (`epoch` = `None`) is the leader's batches, copied verbatim.
        bytes: Bytes,
        base_offset: i64,
        epoch: Option<i32>,
        position: u64,
        next_offset: i64,
        messages: u64,
        seq: u64,
    },
}

/// What appends queue for the writer, and how far it got. Appends take their offsets and file
/// positions here synchronously, in call order; the writer task works the queue in that order.
///
/// Invariants:
/// - Offsets below `written` are written; offsets in `[written, assigned)` belong to queued or
///   in-flight writes, assigned in increasing order (contiguously for client appends; a
///   follower's append may leave the gaps a compacted leader log has), so `written <=
///   assigned`. `proj_size` is the active segment's size once everything queued is written (0
///   right after a roll is queued: the next write starts the new segment).
/// - Every op carries a sequence number below `next_seq`, increasing in queue order; the writer
///   completes ops in that order, and `done_seq` is the number of the last one completed.
/// - `running` is true exactly while a writer task exists; the task ends only once it found the
///   queue empty (or the log failed, dropping what was queued).
/// - `unsnapshotted`: bytes queued since the last producer-state snapshot was queued (a roll
///   writes one too).
pub(crate) struct WriteQueue {
    pending: VecDeque<Op>,
    next_seq: u64,
    done_seq: u64,
    running: bool,
    assigned: i64,
    written: i64,
    proj_size: u64,
    unsnapshotted: u64,
}

impl WriteQueue {
    /// The queue of a log whose active segment ends at `next_offset`, `size` bytes.
    pub(crate) fn new(next_offset: i64, size: u64) -> Self {
        WriteQueue {
            pending: VecDeque::new(),
            next_seq: 1,
            done_seq: 0,
            running: false,
            assigned: next_offset,
            written: next_offset,
            proj_size: size,
            unsnapshotted: 0,
        }
    }

    /// The next offset to assign (queued appends included).
    pub(crate) fn assigned(&self) -> i64 {
        self.assigned
    }

    /// One past the last written offset.
    pub(crate) fn written_end(&self) -> i64 {
        self.written
    }

    /// The active segment's size once everything queued is written.
    pub(crate) fn projected_size(&self) -> u64 {
        self.proj_size
    }

    /// The sequence number of the last op queued.
    pub(crate) fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Whether a writer task exists.
    pub(crate) fn writer_running(&self) -> bool {
        self.running
    }

    /// Whether the op numbered `seq` (and every one before it) is complete.
    pub(crate) fn is_done(&self, seq: u64) -> bool {
        self.done_seq >= seq
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Queues a write of `bytes` holding the next `count` offsets at the end of the active
    /// segment. True when a producer-state snapshot is due: the caller queues it next
    /// ([`WriteQueue::push_snapshot`]).
    pub(crate) fn push_write(&mut self, bytes: Bytes, count: i64, epoch: i32) -> bool {
        let next = self.assigned + count;
        self.push(bytes, Some(epoch), next, count as u64)
    }

    /// A follower's write: the leader's batches verbatim, ending at `next_offset` (past any gap
    /// they leave), holding `messages` records. True when a snapshot is due, as
    /// [`WriteQueue::push_write`].
    pub(crate) fn push_write_verbatim(
        &mut self,
        bytes: Bytes,
        next_offset: i64,
        messages: u64,
    ) -> bool {
        self.push(bytes, None, next_offset, messages)
    }

    /// Moves the next offset to assign up to `offset` (a follower's append starting past a gap
    /// the leader's compaction left); never back.
    pub(crate) fn skip_to(&mut self, offset: i64) {
        if offset > self.assigned {
            self.assigned = offset;
        }
    }

    fn push(&mut self, bytes: Bytes, epoch: Option<i32>, next_offset: i64, messages: u64) -> bool {
        let total = bytes.len() as u64;
        let seq = self.take_seq();
        self.pending.push_back(Op::Write {
            bytes,
            base_offset: self.assigned,
            epoch,
            position: self.proj_size,
            next_offset,
            messages,
            seq,
        });
        self.proj_size += total;
        self.assigned = next_offset;
        self.unsnapshotted += total;
        let due = self.unsnapshotted >= producer_state::SNAPSHOT_EVERY_BYTES;
        if due {
            self.unsnapshotted = 0;
        }
        due
    }

    /// Queues the write of a producer-state snapshot taken at the assigned end.
    pub(crate) fn push_snapshot(&mut self, bytes: Vec<u8>) {
        let seq = self.take_seq();
        self.pending.push_back(Op::Snapshot {
            offset: self.assigned,
            bytes,
            seq,
        });
    }

    /// Queues a roll from the segment at `old_base` to a new one at the assigned end; returns the
    /// roll's sequence number.
    pub(crate) fn push_roll(
        &mut self,
        old_base: i64,
        indexes: [Vec<u8>; 3],
        producers: Vec<u8>,
    ) -> u64 {
        self.proj_size = 0;
        self.unsnapshotted = 0;
        let seq = self.take_seq();
        self.pending.push_back(Op::Roll {
            old_base,
            new_base: self.assigned,
            indexes,
            producers,
            seq,
        });
        seq
    }

    /// Marks the writer task as started if work is queued and none runs; true when the caller
    /// must spawn it.
    pub(crate) fn try_start_writer(&mut self) -> bool {
        if !self.running && !self.pending.is_empty() {
            self.running = true;
            return true;
        }
        false
    }

    /// The writer's next work: a roll or a snapshot alone, or the queued writes up to
    /// `max_bytes` (at least one). `None` when the queue is empty: the writer task ends.
    pub(crate) fn take_work(&mut self, max_bytes: usize) -> Option<Vec<Op>> {
        match self.pending.front() {
            None => {
                self.running = false;
                None
            }
            Some(Op::Roll { .. } | Op::Snapshot { .. }) => {
                Some(vec![self.pending.pop_front().expect("front")])
            }
            Some(Op::Write { .. }) => {
                let mut ops = Vec::new();
                let mut bytes = 0;
                while let Some(Op::Write { bytes: b, .. }) = self.pending.front() {
                    if !ops.is_empty() && bytes + b.len() > max_bytes {
                        break;
                    }
                    bytes += b.len();
                    ops.push(self.pending.pop_front().expect("front"));
                }
                Some(ops)
            }
        }
    }

    /// The writer task ends after a failure, dropping everything queued.
    pub(crate) fn stop(&mut self) {
        self.running = false;
        self.pending.clear();
    }

    /// The writes up to the one numbered `seq` are written: offsets below `next_offset` are
    /// readable.
    pub(crate) fn written(&mut self, next_offset: i64, seq: u64) {
        self.written = next_offset;
        self.done_seq = seq;
    }

    /// The roll or snapshot numbered `seq` is complete.
    pub(crate) fn done(&mut self, seq: u64) {
        if self.done_seq < seq {
            self.done_seq = seq;
        }
    }
}

/// The active segment's write side: the O_DIRECT file, the partial last block kept in memory so
/// the next write can rewrite it whole, and the parts of the state that live and die with the
/// file (zero-fill, metadata commits, tail cache). A roll replaces it; close takes it.
///
/// Invariants: `tail` holds the file's bytes `[written - tail.len(), written)`, the last partial
/// block (`tail.len() < align`); `written` is the end of the data written so far. The file may
/// hold zeros past `written` (the padding of the last block, and the zero-fill). Only the writer
/// task writes data to the file, one write at a time.
pub(crate) struct ActiveFile {
    base: i64,
    dma: Rc<DmaFile>,
    align: u64,
    tail: Vec<u8>,
    written: u64,
    fill: ZeroFill,
    commits: MetaChanges,
    recent: RecentWrites,
}

impl ActiveFile {
    /// The file of the segment at `base`, holding `written` bytes whose last partial block (by
    /// `align`) is `tail`; everything in it is durable.
    pub(crate) fn new(
        base: i64,
        dma: Rc<DmaFile>,
        align: u64,
        tail: Vec<u8>,
        written: u64,
    ) -> Self {
        ActiveFile {
            base,
            dma,
            align,
            tail,
            written,
            fill: ZeroFill::new(written),
            commits: MetaChanges::new(),
            recent: RecentWrites::default(),
        }
    }

    /// The segment's base offset.
    pub(crate) fn base(&self) -> i64 {
        self.base
    }

    pub(crate) fn dma(&self) -> &Rc<DmaFile> {
        &self.dma
    }

    /// Whether `dma` is this file (not one a roll or close replaced).
    pub(crate) fn is_file(&self, dma: &Rc<DmaFile>) -> bool {
        Rc::ptr_eq(&self.dma, dma)
    }

    pub(crate) fn align(&self) -> u64 {
        self.align
    }

    /// The end of the data written.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// The last partial block, `[written - tail.len(), written)`.
    pub(crate) fn tail(&self) -> &[u8] {
        &self.tail
    }

    /// Heap bytes held (the partial block's buffer).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.tail.capacity()
    }

    /// A write completed: the data now ends at `written`, with `tail` its last partial block.
    pub(crate) fn wrote(&mut self, tail: Vec<u8>, written: u64) {
        self.tail = tail;
        self.written = written;
    }

    pub(crate) fn fill(&self) -> &ZeroFill {
        &self.fill
    }

    pub(crate) fn fill_mut(&mut self) -> &mut ZeroFill {
        &mut self.fill
    }

    pub(crate) fn commits(&self) -> &MetaChanges {
        &self.commits
    }

    pub(crate) fn commits_mut(&mut self) -> &mut MetaChanges {
        &mut self.commits
    }

    pub(crate) fn recent(&self) -> &RecentWrites {
        &self.recent
    }

    pub(crate) fn recent_mut(&mut self) -> &mut RecentWrites {
        &mut self.recent
    }

    /// Gives up the file (close): its descriptor and the end of its data.
    pub(crate) fn into_file(self) -> (Rc<DmaFile>, u64) {
        (self.dma, self.written)
    }
}
