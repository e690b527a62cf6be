//! The aborted-transaction index: `<base>.txnindex` beside a segment's `.log`, Kafka's file
//! format (`TransactionIndex`): 34-byte big-endian entries `version i16 (0), producer id i64,
//! first offset i64, last offset i64, last stable offset i64`, one per aborted transaction whose
//! ABORT marker lies in the segment, in marker order. `last offset` is the marker's offset;
//! `last stable offset` is the partition's LSO once the transaction ended (the first offset of the
//! oldest transaction still ongoing, or the marker's offset + 1): every later aborted transaction
//! started at or after it, which lets a lookup stop early.
//!
//! # Memory: summaries for sealed segments, entries for the active one
//! The active segment keeps its entries in memory (markers append to it synchronously). A sealed
//! segment keeps only a summary — count, least first offset, greatest last offset, last LSO —
//! and its entries stay in the file. `SegmentTxns::may_match` and `SegmentTxns::completes`
//! answer most lookups from the summaries alone (a partition without aborts never opens a
//! file); a lookup that needs a sealed segment's entries reads its file, as Kafka does on every
//! read_committed fetch that reaches such a segment. Why not cache them: the summaries keep an
//! idle partition's footprint independent of its abort history, and the files are small (a
//! segment with 10,000 aborts holds 340 KiB) and hot in the page cache while fetched.
//!
//! # When the file is written
//! A sealed segment's file is written whole at roll (before the roll's producer snapshot); the
//! active segment's file is rewritten before every producer-state snapshot (periodic and close),
//! holding the entries for markers below the snapshot's offset. So every snapshot on disk is
//! preceded by files holding every entry below it, and recovery (`log.rs` `load_txn_indexes`)
//! keeps the file entries below the replay start and re-derives the rest from the replayed
//! markers: entries a crash left missing come back, entries past the recovered end (or for
//! markers replayed again) go, and none is duplicated.

use std::io;
use std::path::{Path, PathBuf};

/// Bytes per entry.
pub const ENTRY_LEN: usize = 34;
/// The entry format version Kafka writes.
pub const VERSION: i16 = 0;

/// `<dir>/<base:020>.txnindex`.
pub fn path(dir: &Path, base: i64) -> PathBuf {
    dir.join(super::segment::file_name(base, "txnindex"))
}

/// One aborted transaction (Kafka's `AbortedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnIndexEntry {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The ABORT marker's offset.
    pub last_offset: i64,
    /// The LSO once this transaction ended.
    pub last_stable_offset: i64,
}

/// The file bytes of `entries`.
pub fn encode(entries: &[TxnIndexEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_LEN);
    for e in entries {
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&e.producer_id.to_be_bytes());
        out.extend_from_slice(&e.first_offset.to_be_bytes());
        out.extend_from_slice(&e.last_offset.to_be_bytes());
        out.extend_from_slice(&e.last_stable_offset.to_be_bytes());
    }
    out
}

/// The entries of a file: whole entries of version 0, up to the first that is not (a torn
/// tail). The flag says something was left over.
pub fn parse(bytes: &[u8]) -> (Vec<TxnIndexEntry>, bool) {
    let mut out = Vec::with_capacity(bytes.len() / ENTRY_LEN);
    let i64_at = |c: &[u8], at: usize| i64::from_be_bytes(c[at..at + 8].try_into().expect("8"));
    for c in bytes.chunks(ENTRY_LEN) {
        if c.len() < ENTRY_LEN || i16::from_be_bytes([c[0], c[1]]) != VERSION {
            return (out, true);
        }
        out.push(TxnIndexEntry {
            producer_id: i64_at(c, 2),
            first_offset: i64_at(c, 10),
            last_offset: i64_at(c, 18),
            last_stable_offset: i64_at(c, 26),
        });
    }
    (out, false)
}

/// Reads the entries of the segment at `base` (none when the file does not exist: Kafka creates
/// it with the first entry). Blocking `read(2)` of a small file (see the module docs).
pub fn read(dir: &Path, base: i64) -> io::Result<Vec<TxnIndexEntry>> {
    match std::fs::read(path(dir, base)) {
        Ok(b) => Ok(parse(&b).0),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Kafka's `TransactionIndex.collectAbortedTxns`: adds the entries overlapping `[from, upper)`
/// (last offset >= from, first offset < upper) to `out`; true when an entry's LSO reached `upper`,
/// so no later segment can hold one that overlaps.
pub fn collect(
    entries: &[TxnIndexEntry],
    from: i64,
    upper: i64,
    out: &mut Vec<TxnIndexEntry>,
) -> bool {
    for e in entries {
        if e.last_offset >= from && e.first_offset < upper {
            out.push(*e);
        }
        if e.last_stable_offset >= upper {
            return true;
        }
    }
    false
}

/// One segment's aborted transactions: the entries (active segment) or a summary (sealed), see
/// the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentTxns {
    /// `Some` for the active segment.
    entries: Option<Vec<TxnIndexEntry>>,
    count: usize,
    min_first: i64,
    max_last: i64,
    last_lso: i64,
}

impl SegmentTxns {
    /// The in-memory index of an active segment holding `entries`.
    pub(crate) fn active(entries: Vec<TxnIndexEntry>) -> Self {
        let mut s = SegmentTxns::summary(&entries);
        s.entries = Some(entries);
        s
    }

    /// The summary of a sealed segment holding `entries`.
    pub(crate) fn summary(entries: &[TxnIndexEntry]) -> Self {
        SegmentTxns {
            entries: None,
            count: entries.len(),
            min_first: entries
                .iter()
                .map(|e| e.first_offset)
                .min()
                .unwrap_or(i64::MAX),
            max_last: entries
                .iter()
                .map(|e| e.last_offset)
                .max()
                .unwrap_or(i64::MIN),
            last_lso: entries.last().map_or(i64::MIN, |e| e.last_stable_offset),
        }
    }

    /// Adds an entry (active segment; on a sealed one only the summary changes).
    pub(crate) fn push(&mut self, e: TxnIndexEntry) {
        self.count += 1;
        self.min_first = self.min_first.min(e.first_offset);
        self.max_last = self.max_last.max(e.last_offset);
        self.last_lso = self.last_lso.max(e.last_stable_offset);
        if let Some(v) = self.entries.as_mut() {
            v.push(e);
        }
    }

    /// Seals it (roll): the entries' file bytes; only the summary stays.
    pub(crate) fn seal(&mut self) -> Vec<u8> {
        self.entries.take().map(|v| encode(&v)).unwrap_or_default()
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The entries, when held in memory (active segment).
    pub(crate) fn entries(&self) -> Option<&[TxnIndexEntry]> {
        self.entries.as_deref()
    }

    /// Whether an entry may overlap `[from, upper)`.
    pub(crate) fn may_match(&self, from: i64, upper: i64) -> bool {
        self.count > 0 && self.max_last >= from && self.min_first < upper
    }

    /// Whether a lookup for `upper` ends with this segment (an entry's LSO reached it).
    pub(crate) fn completes(&self, upper: i64) -> bool {
        self.count > 0 && self.last_lso >= upper
    }

    /// Approximate heap bytes.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.entries
            .as_ref()
            .map_or(0, |v| v.capacity() * std::mem::size_of::<TxnIndexEntry>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(pid: i64, first: i64, last: i64, lso: i64) -> TxnIndexEntry {
        TxnIndexEntry {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn file_format_round_trips_and_stops_at_a_torn_entry() {
        let entries = vec![e(1, 0, 10, 11), e(2, 5, 20, 21)];
        let mut b = encode(&entries);
        assert_eq!(b.len(), 2 * ENTRY_LEN);
        assert_eq!(&b[..2], &[0, 0]);
        assert_eq!(&b[2..10], &1i64.to_be_bytes());
        assert_eq!(parse(&b), (entries.clone(), false));
        b.extend_from_slice(&[0; 10]);
        assert_eq!(parse(&b), (entries.clone(), true));
        let mut v = encode(&entries);
        v[ENTRY_LEN] = 9; // second entry's version
        assert_eq!(parse(&v), (entries[..1].to_vec(), true));
    }

    #[test]
    fn collect_follows_kafka() {
        let entries = vec![e(1, 0, 10, 5), e(2, 5, 20, 21), e(3, 22, 30, 31)];
        let mut out = Vec::new();
        // [12, 25): txn 1 ended before 12; txn 2 overlaps; its LSO 21 < 25 so go on; txn 3
        // overlaps, LSO 31 >= 25: complete.
        assert!(collect(&entries, 12, 25, &mut out));
        assert_eq!(
            out.iter().map(|a| a.producer_id).collect::<Vec<_>>(),
            vec![2, 3]
        );
        out.clear();
        assert!(!collect(&entries, 31, 40, &mut out));
        assert!(out.is_empty());
        let s = SegmentTxns::summary(&entries);
        assert!(s.may_match(12, 25) && s.completes(25) && !s.completes(32));
        assert!(!s.may_match(31, 40) && !s.may_match(0, 0));
        assert!(!SegmentTxns::summary(&[]).may_match(0, i64::MAX));
    }
}
