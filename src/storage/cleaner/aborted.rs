//! Which batches of a cleaned range belong to aborted transactions: Kafka's
//! `CleanedTransactionMetadata`, driven by the aborted-transaction index. No I/O here.
//!
//! A walk over the log in offset order feeds every batch (markers included) to
//! [`AbortedTracker::on_batch`]. An index entry becomes active for its producer once the walk
//! reaches its first offset; from then on that producer's transactional batches are aborted data,
//! until the walk meets the producer's next marker (which is the ABORT itself).

use std::collections::{HashSet, VecDeque};

use crate::format::record_batch::BatchHeader;
use crate::storage::txn_index::TxnIndexEntry;

/// Tracks the aborted transactions along one walk.
pub(crate) struct AbortedTracker {
    /// Entries not reached yet, by first offset.
    pending: VecDeque<TxnIndexEntry>,
    /// Producers inside an aborted transaction at the walk's position.
    active: HashSet<i64>,
}

impl AbortedTracker {
    /// For a walk starting at offset `start`: the entries whose marker is at or after it.
    pub(crate) fn new(entries: &[TxnIndexEntry], start: i64) -> Self {
        let mut pending: Vec<TxnIndexEntry> = entries
            .iter()
            .filter(|e| e.last_offset >= start)
            .copied()
            .collect();
        pending.sort_by_key(|e| e.first_offset);
        AbortedTracker {
            pending: pending.into(),
            active: HashSet::new(),
        }
    }

    /// Whether the batch `h` (the walk's next) is data of an aborted transaction.
    pub(crate) fn on_batch(&mut self, h: &BatchHeader) -> bool {
        while self
            .pending
            .front()
            .is_some_and(|e| e.first_offset <= h.last_offset())
        {
            let e = self.pending.pop_front().expect("front");
            self.active.insert(e.producer_id);
        }
        if h.is_control() {
            self.active.remove(&h.producer_id);
            return false;
        }
        h.is_transactional() && self.active.contains(&h.producer_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::record_batch::{ATTR_CONTROL, ATTR_TRANSACTIONAL, build_batch};

    fn h(pid: i64, offset: i64, attrs: i16) -> BatchHeader {
        let mut h = BatchHeader::parse(&build_batch(0, &[(1, None, b"v")], pid, 0, 0)).unwrap();
        h.base_offset = offset;
        h.attributes |= attrs;
        h
    }

    #[test]
    fn aborted_data_is_recognised_until_its_marker() {
        let t = ATTR_TRANSACTIONAL;
        let c = ATTR_TRANSACTIONAL | ATTR_CONTROL;
        let entries = [TxnIndexEntry {
            producer_id: 1,
            first_offset: 2,
            last_offset: 5,
            last_stable_offset: 6,
        }];
        let mut tr = AbortedTracker::new(&entries, 0);
        assert!(!tr.on_batch(&h(1, 0, t))); // an earlier (committed) transaction
        assert!(!tr.on_batch(&h(1, 1, c)));
        assert!(tr.on_batch(&h(1, 2, t)));
        assert!(!tr.on_batch(&h(2, 3, t))); // another producer
        assert!(tr.on_batch(&h(1, 4, t)));
        assert!(!tr.on_batch(&h(1, 5, c)));
        assert!(!tr.on_batch(&h(1, 6, t))); // the next transaction
        // A walk starting after the marker ignores the entry.
        let mut tr = AbortedTracker::new(&entries, 6);
        assert!(!tr.on_batch(&h(1, 6, t)));
    }
}
