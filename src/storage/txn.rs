//! Transactions in the partition log (KIP-98): transaction markers (control batches), the
//! producers' ongoing transactions, the last stable offset and the aborted-transaction index
//! (`.txnindex`).
//!
//! This file holds the types the rest of the broker uses and the control batch codec; the state
//! machine is `producer_state.rs` (ongoing transactions, LSO), the index is `txn_index.rs`, and
//! [`super::PartitionLog::append_marker`], [`super::PartitionLog::last_stable_offset`],
//! [`super::PartitionLog::aborted_transactions`] and [`super::PartitionLog::producers`] are the
//! entry points (`log.rs`, `txn_log.rs`).
//!
//! # The marker batch (Kafka's `MemoryRecords.withEndTransactionMarker`)
//! A v2 batch with attributes `transactional | control` (CreateTime), the producer's id and epoch,
//! base sequence -1, `lastOffsetDelta` 0 and one record: key = version i16 `0` + type i16 (`0`
//! ABORT, `1` COMMIT), value = version i16 `0` + coordinator epoch i32, no headers. The batch
//! timestamp is the broker's clock when it is written.

use crate::format::record_batch::{
    self, ATTR_CONTROL, ATTR_TRANSACTIONAL, BatchHeader, CRC_OFFSET, HEADER_LEN, LOG_OVERHEAD,
};

/// A transaction marker to write into one partition (Kafka's `EndTransactionMarker` in a control
/// batch carrying the producer's id and epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// COMMIT (true) or ABORT (false).
    pub commit: bool,
    /// The transaction coordinator's epoch (its partition's leader epoch in Kafka).
    pub coordinator_epoch: i32,
}

/// One aborted transaction overlapping a fetched range (Fetch's `aborted_transactions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// One producer's state on a partition (DescribeProducers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// -1 when unknown.
    pub last_sequence: i32,
    /// -1 when unknown.
    pub last_timestamp: i64,
    /// -1 when the producer never wrote a marker here.
    pub coordinator_epoch: i32,
    /// First offset of its ongoing transaction on this partition, or -1.
    pub current_txn_start_offset: i64,
}

/// Control record type of an ABORT marker (Kafka's `ControlRecordType.ABORT`).
pub const CONTROL_ABORT: i16 = 0;
/// Control record type of a COMMIT marker.
pub const CONTROL_COMMIT: i16 = 1;

/// The control batch for `marker`, base offset 0 (the log assigns it), timestamp `now_ms`.
pub fn encode_marker(marker: &TxnMarker, now_ms: i64) -> Vec<u8> {
    let mut rec = Vec::with_capacity(24);
    rec.push(0u8); // attributes
    record_batch::write_varlong(&mut rec, 0); // timestamp delta
    record_batch::write_varlong(&mut rec, 0); // offset delta
    record_batch::write_varlong(&mut rec, 4);
    rec.extend_from_slice(&0i16.to_be_bytes());
    let kind = if marker.commit {
        CONTROL_COMMIT
    } else {
        CONTROL_ABORT
    };
    rec.extend_from_slice(&kind.to_be_bytes());
    record_batch::write_varlong(&mut rec, 6);
    rec.extend_from_slice(&0i16.to_be_bytes());
    rec.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    record_batch::write_varlong(&mut rec, 0); // headers
    let mut body = Vec::with_capacity(rec.len() + 2);
    record_batch::write_varlong(&mut body, rec.len() as i64);
    body.extend_from_slice(&rec);

    let mut b = Vec::with_capacity(HEADER_LEN + body.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&[0; 4]); // crc
    b.extend_from_slice(&(ATTR_TRANSACTIONAL | ATTR_CONTROL).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&now_ms.to_be_bytes()); // base timestamp
    b.extend_from_slice(&now_ms.to_be_bytes()); // max timestamp
    b.extend_from_slice(&marker.producer_id.to_be_bytes());
    b.extend_from_slice(&marker.producer_epoch.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&1i32.to_be_bytes()); // records count
    b.extend_from_slice(&body);
    let crc = record_batch::compute_crc(&b);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The marker a stored control batch carries: (COMMIT?, coordinator epoch), read from its first
/// record (`batch` is the whole batch, uncompressed as control batches always are). `None` when
/// it is not a control batch or its record is not an end-transaction marker (Kafka also knows
/// other control types, e.g. KRaft's, which carry no transaction outcome).
pub fn decode_marker(batch: &[u8]) -> Option<(bool, i32)> {
    let h = BatchHeader::parse(batch).ok()?;
    if !h.is_control() || h.records_count < 1 || h.compression() != 0 {
        return None;
    }
    let recs = batch.get(HEADER_LEN..h.total_len().min(batch.len()))?;
    let mut pos = 0;
    let len = record_batch::read_varlong(recs, &mut pos)?;
    let end = pos.checked_add(usize::try_from(len).ok()?)?;
    let rec = recs.get(..end)?;
    pos += 1; // attributes
    record_batch::read_varlong(rec, &mut pos)?; // timestamp delta
    record_batch::read_varlong(rec, &mut pos)?; // offset delta
    let klen = record_batch::read_varlong(rec, &mut pos)?;
    if klen < 4 {
        return None;
    }
    let key = rec.get(pos..pos + klen as usize)?;
    pos += klen as usize;
    let kind = i16::from_be_bytes([key[2], key[3]]);
    let commit = match kind {
        CONTROL_ABORT => false,
        CONTROL_COMMIT => true,
        _ => return None,
    };
    let vlen = record_batch::read_varlong(rec, &mut pos)?;
    if vlen < 6 {
        return None;
    }
    let value = rec.get(pos..pos + vlen as usize)?;
    let epoch = i32::from_be_bytes(value[2..6].try_into().ok()?);
    Some((commit, epoch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_batch_round_trips_and_validates() {
        for commit in [true, false] {
            let m = TxnMarker {
                producer_id: 4242,
                producer_epoch: 7,
                commit,
                coordinator_epoch: 13,
            };
            let b = encode_marker(&m, 1_700_000_000_000);
            let h = record_batch::validate_batch(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch), (4242, 7));
            assert_eq!(
                (h.base_sequence, h.records_count, h.last_offset_delta),
                (-1, 1, 0)
            );
            assert_eq!(decode_marker(&b), Some((commit, 13)));
            // Kafka's bytes for the record: length 16 (zig-zag 32), attributes 0, deltas 0, key length 4 (zig-zag 8),
            // key, value length 6 (zig-zag 12), value, no headers.
            let kind = if commit { 1 } else { 0 };
            assert_eq!(
                &b[HEADER_LEN..],
                &[32, 0, 0, 0, 8, 0, 0, 0, kind, 12, 0, 0, 0, 0, 0, 13, 0]
            );
        }
        let data = record_batch::build_batch(0, &[(1, None, b"v")], 1, 0, 0);
        assert_eq!(decode_marker(&data), None);
    }
}
