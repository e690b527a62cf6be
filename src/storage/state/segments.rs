//! The segments' part of the state: the map of segments, the log start, and which sealed
//! segments keep their indexes and read descriptor loaded. What one segment holds: `segment.rs`.

use std::collections::{BTreeMap, VecDeque};

use super::super::segment::Segment;

/// Sealed segments whose indexes and read descriptor stay loaded (per partition).
pub(crate) const WARM_SEALED_SEGMENTS: usize = 2;

/// The partition's segments by base offset.
///
/// Invariants:
/// - Never empty. The newest segment is the one appends are assigned to; a queued roll inserts it
///   before the writer has switched files, so until then the writer's segment is the one before
///   (`ActiveFile::base`).
/// - `log_start` is at least the first segment's base and never moves back: retention deletes
///   whole segments from the front ([`SegmentMap::remove_front`]) and moves it to the first
///   remaining base; DeleteRecords moves it anywhere up to the high watermark, inside a segment
///   too ([`SegmentMap::advance_log_start`], `log_start.rs`).
/// - `warm` lists sealed segments with loaded indexes, least recently used first, at most
///   [`WARM_SEALED_SEGMENTS`] of them after each change: a sealed segment that leaves it drops its
///   indexes and read descriptor (loaded again on use).
pub(crate) struct SegmentMap {
    segments: BTreeMap<i64, Segment>,
    warm: VecDeque<i64>,
    log_start: i64,
}

impl SegmentMap {
    /// The recovered segments of a log (at least one).
    pub(crate) fn new(segments: BTreeMap<i64, Segment>) -> Self {
        let log_start = *segments.keys().next().expect("a segment");
        SegmentMap {
            segments,
            warm: VecDeque::new(),
            log_start,
        }
    }

    pub(crate) fn log_start(&self) -> i64 {
        self.log_start
    }

    pub(crate) fn len(&self) -> usize {
        self.segments.len()
    }

    /// The newest segment, the one appends are assigned to.
    pub(crate) fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    pub(crate) fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    pub(crate) fn get(&self, base: i64) -> Option<&Segment> {
        self.segments.get(&base)
    }

    pub(crate) fn get_mut(&mut self, base: i64) -> Option<&mut Segment> {
        self.segments.get_mut(&base)
    }

    /// All segments, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Segment> {
        self.segments.values()
    }

    /// Base offsets of all segments, oldest first.
    pub(crate) fn bases(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }

    /// The segments whose base is below `limit`, oldest first.
    pub(crate) fn before(&self, limit: i64) -> impl Iterator<Item = &Segment> {
        self.segments.range(..limit).map(|(_, s)| s)
    }

    /// The base of the segment holding `offset`, or else of the first segment after it (across
    /// a gap); `None` past the last segment.
    pub(crate) fn holding_or_after(&self, offset: i64) -> Option<i64> {
        match self.segments.range(..=offset).next_back() {
            Some((b, s)) if s.next_offset > offset => Some(*b),
            _ => self.segments.range(offset + 1..).next().map(|(b, _)| *b),
        }
    }

    /// The segments from the one at `base` on, oldest first.
    pub(crate) fn starting_at(&self, base: i64) -> impl Iterator<Item = &Segment> {
        self.segments.range(base..).map(|(_, s)| s)
    }

    /// Seals the newest segment's indexes and adds an empty segment at `new_base` (created at
    /// `now`); returns the sealed segment's base and its final index files (offset, time and
    /// aborted-transaction index; the last empty when it has no entry).
    pub(crate) fn roll(&mut self, new_base: i64, now: i64) -> (i64, [Vec<u8>; 3]) {
        let old = self.active_mut();
        old.seal_time_index();
        if let Some(i) = old.index.as_mut() {
            i.shrink();
        }
        if let Some(t) = old.time_index.as_mut() {
            t.shrink();
        }
        let old_base = old.base_offset;
        let index = old.index.as_ref().map(|i| i.encode()).unwrap_or_default();
        let time_index = old
            .time_index
            .as_ref()
            .map(|t| t.encode())
            .unwrap_or_default();
        let txn_index = old.txns.seal();
        self.segments
            .insert(new_base, Segment::new_empty(new_base, now));
        self.warm.push_back(old_base);
        self.evict_cold();
        (old_base, [index, time_index, txn_index])
    }

    /// Marks the sealed segment at `base` as just used (its indexes were loaded).
    pub(crate) fn touch_warm(&mut self, base: i64) {
        if let Some(i) = self.warm.iter().position(|&b| b == base) {
            self.warm.remove(i);
        }
        self.warm.push_back(base);
        self.evict_cold();
    }

    /// Drops indexes and descriptors of sealed segments beyond the warm set.
    fn evict_cold(&mut self) {
        let active_base = self.active().base_offset;
        while self.warm.len() > WARM_SEALED_SEGMENTS {
            let Some(b) = self.warm.pop_front() else {
                break;
            };
            if b == active_base {
                continue;
            }
            if let Some(s) = self.segments.get_mut(&b) {
                s.index = None;
                s.time_index = None;
                s.reader = None;
            }
        }
    }

    /// Moves the log start up to `offset` (never back) and returns the bases of the segments below
    /// `sealed_limit` that lie wholly below it, oldest first: the caller removes them
    /// ([`SegmentMap::remove_front`]) and deletes their files.
    pub(crate) fn advance_log_start(&mut self, offset: i64, sealed_limit: i64) -> Vec<i64> {
        if offset > self.log_start {
            self.log_start = offset;
        }
        self.segments
            .range(..sealed_limit)
            .take_while(|(_, s)| s.next_offset <= self.log_start)
            .map(|(b, _)| *b)
            .collect()
    }

    /// Replaces the sealed segments at `old` by `new` (the log cleaner's swap; `new` starts at
    /// the first of them, so the log start does not move) and marks it warm.
    pub(crate) fn replace(&mut self, old: &[i64], new: Segment) {
        for b in old {
            self.segments.remove(b);
            self.warm.retain(|w| w != b);
        }
        let base = new.base_offset;
        self.segments.insert(base, new);
        self.touch_warm(base);
    }

    /// Removes the segments at `bases` (retention: the oldest sealed ones) and moves the log
    /// start to the first remaining segment.
    pub(crate) fn remove_front(&mut self, bases: &[i64]) {
        for b in bases {
            self.segments.remove(b);
            self.warm.retain(|w| w != b);
        }
        if !bases.is_empty() {
            let first = *self.segments.keys().next().expect("active segment remains");
            if self.log_start < first {
                self.log_start = first;
            }
        }
    }
}
