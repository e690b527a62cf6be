//! The partition log's transaction entry points: markers, the last stable offset, the aborted
//! transactions of a range and the producers (DescribeProducers), plus the `.txnindex` files'
//! persistence and their recovery on open. The state machine behind them is `producer_state.rs`,
//! the index format `txn_index.rs`.

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use tracing::{info, warn};

use crate::util::now_ms;

use super::error::StorageError;
use super::log::PartitionLog;
use super::segment::{self, Segment, sync_dir};
use super::slice::AppendInfo;
use super::state::Inner;
use super::txn::{self, AbortedTxn, ProducerInfo, TxnMarker};
use super::txn_index::{self, SegmentTxns, TxnIndexEntry};

impl PartitionLog {
    /// Writes a transaction marker (control batch) for `marker.producer_id`, ending its ongoing
    /// transaction on this partition, and returns its offset (assigned synchronously, like
    /// [`PartitionLog::append_assign`]; wait with [`PartitionLog::wait_written`] /
    /// [`PartitionLog::wait_durable`]).
    ///
    /// Refused, with nothing written: an epoch older than the partition's entry for the producer
    /// ([`StorageError::InvalidProducerEpoch`]), a coordinator epoch older than the producer's
    /// last marker's ([`StorageError::CoordinatorFenced`]). A marker for a producer without an
    /// ongoing transaction here is written anyway and completes nothing (Kafka does the same).
    /// An ABORT of a non-empty transaction adds its entry to the active segment's `.txnindex`.
    pub fn append_marker(&self, marker: TxnMarker) -> Result<AppendInfo, StorageError> {
        let batch = txn::encode_marker(&marker, now_ms());
        self.assign(Bytes::from(batch), Some(marker))
    }

    /// The last stable offset: the first offset of the oldest ongoing transaction (or of one
    /// whose marker is not written yet), or the high watermark when none is ongoing.
    /// read_committed readers see offsets below it only.
    pub fn last_stable_offset(&self) -> i64 {
        let st = self.inner().state();
        st.producers().last_stable_offset(st.hw())
    }

    /// Aborted transactions whose data overlaps `[from, upper)` (Fetch's `aborted_transactions`
    /// for a read_committed fetch of that range), oldest marker first: Kafka's
    /// `collectAbortedTransactions`, from the segment holding `from` on until an entry's LSO
    /// reaches `upper`. Sealed segments answer from their summaries, reading their `.txnindex`
    /// only when it may hold a match (a small blocking read, see `txn_index.rs`).
    pub fn aborted_transactions(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        self.aborted_entries(from, upper)
            .into_iter()
            .map(|e| AbortedTxn {
                producer_id: e.producer_id,
                first_offset: e.first_offset,
            })
            .collect()
    }

    /// [`PartitionLog::aborted_transactions`] with whole index entries (the log cleaner needs
    /// their last offsets).
    pub fn aborted_entries(&self, from: i64, upper: i64) -> Vec<TxnIndexEntry> {
        let mut out = Vec::new();
        if upper <= from {
            return out;
        }
        let st = self.inner().state();
        let Some(start) = st.segments().holding_or_after(from) else {
            return out;
        };
        for seg in st.segments().starting_at(start) {
            let t = &seg.txns;
            if t.may_match(from, upper) {
                let complete = match t.entries() {
                    Some(e) => txn_index::collect(e, from, upper, &mut out),
                    None => match txn_index::read(self.dir(), seg.base_offset) {
                        Ok(e) => txn_index::collect(&e, from, upper, &mut out),
                        Err(e) => {
                            warn!(dir = %self.dir().display(), base = seg.base_offset, error = %e, "could not read a transaction index");
                            false
                        }
                    },
                };
                if complete {
                    break;
                }
            } else if t.completes(upper) {
                break;
            }
        }
        out
    }

    /// Every producer tracked on this partition, by id (DescribeProducers).
    pub fn producers(&self) -> Vec<ProducerInfo> {
        self.inner().state().producers().infos()
    }

    /// Producer ids with an ongoing transaction here and its first offset, oldest first.
    pub fn ongoing_transactions(&self) -> Vec<(i64, i64)> {
        self.inner()
            .state()
            .producers()
            .ongoing()
            .map(|(first, pid)| (pid, first))
            .collect()
    }
}

/// Writes the `.txnindex` of the segment the writer writes with its entries for markers below
/// `below` (before a producer snapshot at `below`, or at close with `i64::MAX`). False when a
/// queued roll already sealed that segment's entries (its roll writes the file, then a snapshot).
pub(crate) async fn persist_writer_txn_index(
    inner: &Rc<Inner>,
    below: i64,
) -> Result<bool, StorageError> {
    let (base, entries) = {
        let st = inner.state();
        let Some(base) = st.active().map(|a| a.base()) else {
            return Ok(true);
        };
        let Some(seg) = st.segments().get(base) else {
            return Ok(true);
        };
        match seg.txns.entries() {
            Some(e) => (
                base,
                e.iter()
                    .filter(|e| e.last_offset < below)
                    .copied()
                    .collect::<Vec<_>>(),
            ),
            None => return Ok(seg.txns.len() == 0),
        }
    };
    if entries.is_empty() {
        return Ok(true);
    }
    let path = txn_index::path(inner.dir(), base);
    let created = !path.exists();
    segment::write_small_file(&path, txn_index::encode(&entries)).await?;
    if created {
        sync_dir(inner.dir()).await?;
    }
    Ok(true)
}

/// Open, fifth phase: each segment's aborted-transaction index, from its `.txnindex` file for
/// markers below `from` (where the producer-state replay started) and from `replayed` (the
/// replay's entries) at and above it; entries past a segment's recovered end go. Files that
/// differ are rewritten (or removed when empty). The newest segment keeps its entries in memory,
/// the others a summary.
pub(crate) async fn load_txn_indexes(
    dir: &Path,
    segments: &mut BTreeMap<i64, Segment>,
    from: i64,
    replayed: &[TxnIndexEntry],
) -> Result<(), StorageError> {
    let newest = *segments.keys().next_back().expect("a segment");
    let mut changed_dir = false;
    for (&base, seg) in segments.iter_mut() {
        let path = txn_index::path(dir, base);
        let bytes = segment::read_small_file(&path).await?;
        let (on_disk, torn) = bytes
            .as_deref()
            .map_or((Vec::new(), false), txn_index::parse);
        let keep_below = from.min(seg.next_offset);
        let mut entries: Vec<TxnIndexEntry> = on_disk
            .iter()
            .filter(|e| e.last_offset >= base && e.last_offset < keep_below)
            .copied()
            .collect();
        entries.extend(
            replayed
                .iter()
                .filter(|e| e.last_offset >= base && e.last_offset < seg.next_offset),
        );
        if entries != on_disk || torn {
            info!(
                segment = %path.display(),
                on_disk = on_disk.len(),
                recovered = entries.len(),
                "rebuilt the transaction index"
            );
            if entries.is_empty() {
                if let Err(e) = std::fs::remove_file(&path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    return Err(e.into());
                }
            } else {
                segment::write_small_file(&path, txn_index::encode(&entries)).await?;
            }
            changed_dir = true;
        }
        seg.txns = if base == newest {
            SegmentTxns::active(entries)
        } else {
            SegmentTxns::summary(&entries)
        };
    }
    if changed_dir {
        sync_dir(dir).await?;
    }
    Ok(())
}
