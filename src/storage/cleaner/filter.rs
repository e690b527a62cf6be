//! What the cleaner keeps of one batch: Kafka's `MemoryRecords.filterTo` with the cleaner's
//! `RecordFilter` (`Cleaner.cleanInto`), for one v2 batch. No I/O here.
//!
//! The rules, as Kafka applies them:
//! - A record is kept if its offset is past what the offset map covers, or it has a key and its
//!   offset is at least the map's latest offset for that key (a key absent from the map: kept),
//!   and, for a tombstone (null value), the batch carries no delete horizon yet or the horizon
//!   is still ahead of the cleaning time. A record without a key inside the covered range is
//!   dropped (a compacted log cannot hold one; it got there under another policy).
//! - A batch that keeps every record and needs no delete horizon is copied verbatim (compressed
//!   bytes, CRC and all). Otherwise it is rebuilt from the kept records with the same base
//!   offset, *last offset* (so the producer's last sequence survives), producer id, epoch, base
//!   sequence, partition leader epoch and codec (recompressed); record offsets never change, so
//!   gaps appear, as in Kafka.
//! - KIP-534's delete horizon: the first time a kept batch holds a tombstone, the rebuild stamps
//!   `now + delete.retention.ms` into it (attribute bit 6, carried in the base timestamp field;
//!   record timestamp deltas are re-based so every record keeps its timestamp). A later pass
//!   after that time drops the tombstones. So a tombstone stays readable for at least
//!   `delete.retention.ms` after the cleaner first saw it.
//! - A batch that ends up empty disappears, unless it is the newest batch of an idempotent
//!   producer the log still tracks: then an empty batch (header only, record count 0) with its
//!   offsets, producer id, epoch and sequence is kept, so the producer state rebuilt from the log
//!   after a restart still knows the producer's last sequence.
//! - Control batches (transaction markers) are kept as they are. Kafka drops a marker once no
//!   data of its transaction is left and `delete.retention.ms` passed; this cleaner keeps every
//!   marker (a few dozen bytes per transaction and partition).
//! - A batch of an aborted transaction (`pass.rs` tells, from the aborted-transaction index) is
//!   dropped whole ([`aborted_batch`]), except that the newest batch of a producer the log still
//!   tracks stays as an empty batch, as above. Its records never enter the offset map either, so
//!   an aborted value never shadows a committed one.

use std::collections::HashMap;

use crate::format::compression::{self, Codec, CompressionError};
use crate::format::record_batch::{
    self, ATTR_COMPRESSION_MASK, ATTR_CONTROL, ATTR_TIMESTAMP_TYPE, ATTR_TRANSACTIONAL,
    BatchHeader, HEADER_LEN, LOG_OVERHEAD,
};
pub use crate::format::records::{Record, decode, parse_records};

use super::offset_map::OffsetMap;

/// Attribute bit 6: the batch's base timestamp is its delete horizon (KIP-534).
pub const ATTR_DELETE_HORIZON: i16 = 0x40;

/// What a pass knows when it filters.
pub struct FilterCtx<'a> {
    pub map: &'a OffsetMap,
    /// The cleaning time (wall-clock ms).
    pub now: i64,
    pub delete_retention_ms: i64,
    /// Producer id → last offset of its newest batch (`ProducerStates::last_batch_offsets`).
    pub producer_last: &'a HashMap<i64, i64>,
}

/// What becomes of one batch.
#[derive(Debug)]
pub enum Kept {
    /// Copied verbatim.
    Original,
    /// Replaced by these bytes (a rebuilt or an empty batch).
    Rewritten(Vec<u8>),
    /// Dropped.
    Dropped,
}

/// One batch's outcome.
#[derive(Debug)]
pub struct Filtered {
    pub kept: Kept,
    pub records_in: usize,
    pub records_kept: usize,
    /// The delete horizon of a kept batch that still holds tombstones (a later pass drops them).
    pub tombstone_horizon: Option<i64>,
}

/// Applies the cleaner's rules (module docs) to the whole batch `batch`.
pub fn filter_batch(batch: &[u8], ctx: &FilterCtx<'_>) -> Result<Filtered, CompressionError> {
    let h = BatchHeader::parse(batch)?;
    if h.is_control() {
        return Ok(Filtered {
            kept: Kept::Original,
            records_in: h.records_count.max(0) as usize,
            records_kept: h.records_count.max(0) as usize,
            tombstone_horizon: None,
        });
    }
    let (h, raw) = decode(batch)?;
    let records = parse_records(&h, &raw)?;
    let horizon = (h.attributes & ATTR_DELETE_HORIZON != 0).then_some(h.base_timestamp);
    let latest = ctx.map.latest_offset();
    let kept: Vec<Record<'_>> = records
        .iter()
        .filter(|r| {
            let offset = h.base_offset + r.offset_delta;
            if offset > latest {
                return true;
            }
            let Some(key) = r.key else {
                return false;
            };
            let latest_for_key = offset >= ctx.map.get(key);
            let retain_deletes = horizon.is_none_or(|hz| ctx.now < hz);
            latest_for_key && (!r.tombstone || retain_deletes)
        })
        .copied()
        .collect();
    let has_tombstones = kept.iter().any(|r| r.tombstone);
    let set_horizon = has_tombstones && horizon.is_none();
    let new_horizon = if set_horizon {
        Some(ctx.now.saturating_add(ctx.delete_retention_ms))
    } else {
        horizon
    };
    let out = if kept.is_empty() {
        if h.producer_id >= 0 && ctx.producer_last.get(&h.producer_id) == Some(&h.last_offset()) {
            Kept::Rewritten(empty_batch(&h))
        } else {
            Kept::Dropped
        }
    } else if kept.len() == records.len() && !set_horizon {
        Kept::Original
    } else {
        Kept::Rewritten(rebuild(&h, &kept, new_horizon)?)
    };
    Ok(Filtered {
        kept: out,
        records_in: records.len(),
        records_kept: kept.len(),
        tombstone_horizon: new_horizon.filter(|_| has_tombstones),
    })
}

/// The outcome for a batch of an aborted transaction (module docs).
pub fn aborted_batch(batch: &[u8], ctx: &FilterCtx<'_>) -> Result<Filtered, CompressionError> {
    let h = BatchHeader::parse(batch)?;
    let kept =
        if h.producer_id >= 0 && ctx.producer_last.get(&h.producer_id) == Some(&h.last_offset()) {
            Kept::Rewritten(empty_batch(&h))
        } else {
            Kept::Dropped
        };
    Ok(Filtered {
        kept,
        records_in: h.records_count.max(0) as usize,
        records_kept: 0,
        tombstone_horizon: None,
    })
}

/// Writes the fixed header of a batch of `body_len` bytes of records into `out[..HEADER_LEN]`
/// (copied from `h` except what the arguments give) and its CRC over `out`.
fn finish_header(out: &mut [u8], attributes: i16, base_ts: i64, max_ts: i64, count: i32) {
    let len = (out.len() - LOG_OVERHEAD) as i32;
    out[record_batch::LENGTH_OFFSET..record_batch::LENGTH_OFFSET + 4]
        .copy_from_slice(&len.to_be_bytes());
    out[record_batch::ATTRIBUTES_OFFSET..record_batch::ATTRIBUTES_OFFSET + 2]
        .copy_from_slice(&attributes.to_be_bytes());
    out[record_batch::BASE_TIMESTAMP_OFFSET..record_batch::BASE_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&base_ts.to_be_bytes());
    out[record_batch::MAX_TIMESTAMP_OFFSET..record_batch::MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&max_ts.to_be_bytes());
    out[record_batch::RECORDS_COUNT_OFFSET..record_batch::RECORDS_COUNT_OFFSET + 4]
        .copy_from_slice(&count.to_be_bytes());
    let crc = record_batch::compute_crc(out);
    out[record_batch::CRC_OFFSET..record_batch::CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// The fixed header fields every rewritten batch keeps (base offset, last offset delta,
/// partition leader epoch, producer id, epoch and base sequence).
fn header_copy(h: &BatchHeader) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN);
    b.extend_from_slice(&h.base_offset.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // length, set by finish_header
    b.extend_from_slice(&h.partition_leader_epoch.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]); // crc
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&h.last_offset_delta.to_be_bytes());
    b.extend_from_slice(&[0; 16]); // base and max timestamp
    b.extend_from_slice(&h.producer_id.to_be_bytes());
    b.extend_from_slice(&h.producer_epoch.to_be_bytes());
    b.extend_from_slice(&h.base_sequence.to_be_bytes());
    b.extend_from_slice(&[0; 4]); // records count
    b
}

/// Kafka's `DefaultRecordBatch.writeEmptyHeader`: no records, no codec, no base timestamp, the
/// original offsets, producer fields and max timestamp.
fn empty_batch(h: &BatchHeader) -> Vec<u8> {
    let mut b = header_copy(h);
    let attrs = h.attributes & (ATTR_TIMESTAMP_TYPE | ATTR_TRANSACTIONAL | ATTR_CONTROL);
    finish_header(&mut b, attrs, -1, h.max_timestamp, 0);
    b
}

/// Kafka's `buildRetainedRecordsInto`: a batch of the `kept` records with `h`'s offsets and
/// producer fields, in `h`'s codec; base timestamp = the delete horizon if any, else the first
/// kept record's timestamp.
fn rebuild(
    h: &BatchHeader,
    kept: &[Record<'_>],
    horizon: Option<i64>,
) -> Result<Vec<u8>, CompressionError> {
    let base_ts = horizon.unwrap_or(kept[0].timestamp);
    let mut body = Vec::new();
    let mut rec = Vec::new();
    for r in kept {
        rec.clear();
        rec.push(r.attributes);
        record_batch::write_varlong(&mut rec, r.timestamp.wrapping_sub(base_ts));
        rec.extend_from_slice(r.tail);
        record_batch::write_varlong(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let codec =
        Codec::from_id(h.compression()).ok_or(CompressionError::UnknownCodec(h.compression()))?;
    let body = compression::compress(codec, &body)?;
    let mut b = header_copy(h);
    b.extend_from_slice(&body);
    let max_ts = if h.is_log_append_time() {
        h.max_timestamp
    } else {
        kept.iter().map(|r| r.timestamp).max().unwrap_or(-1)
    };
    let mut attrs = h.attributes
        & (ATTR_COMPRESSION_MASK | ATTR_TIMESTAMP_TYPE | ATTR_TRANSACTIONAL | ATTR_CONTROL);
    if horizon.is_some() {
        attrs |= ATTR_DELETE_HORIZON;
    }
    finish_header(&mut b, attrs, base_ts, max_ts, kept.len() as i32);
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::record_batch::{build_batch, validate_batch, validate_stored_batch};

    fn ctx<'a>(map: &'a OffsetMap, producers: &'a HashMap<i64, i64>, now: i64) -> FilterCtx<'a> {
        FilterCtx {
            map,
            now,
            delete_retention_ms: 1000,
            producer_last: producers,
        }
    }

    #[test]
    fn keeps_latest_per_key_and_the_offsets() {
        let mut b = build_batch(
            10,
            &[
                (100, Some(b"a"), b"1"),
                (101, Some(b"b"), b"2"),
                (102, Some(b"a"), b"3"),
            ],
            -1,
            -1,
            -1,
        );
        record_batch::set_base_offset(&mut b, 10);
        let mut map = OffsetMap::new(10);
        map.put(b"a", 12);
        map.put(b"b", 11);
        map.update_latest_offset(12);
        let p = HashMap::new();
        let f = filter_batch(&b, &ctx(&map, &p, 0)).unwrap();
        assert_eq!((f.records_in, f.records_kept), (3, 2));
        let Kept::Rewritten(out) = f.kept else {
            panic!("rewritten expected")
        };
        let h = validate_stored_batch(&out).unwrap();
        assert_eq!(
            (h.base_offset, h.last_offset(), h.records_count),
            (10, 12, 2)
        );
        assert!(validate_batch(&out).is_err(), "a gap: count < offset range");
        let (h, raw) = decode(&out).unwrap();
        let recs = parse_records(&h, &raw).unwrap();
        let got: Vec<_> = recs
            .iter()
            .map(|r| (r.offset_delta, r.key.unwrap(), r.timestamp))
            .collect();
        assert_eq!(got, vec![(1, &b"b"[..], 101), (2, &b"a"[..], 102)]);
        assert_eq!(h.base_timestamp, 101);
        assert_eq!(h.max_timestamp, 102);
    }

    #[test]
    fn tombstones_get_a_horizon_then_go() {
        let mut b = build_batch(0, &[(100, Some(b"a"), b"1")], -1, -1, -1);
        // Turn the record into a tombstone: rebuild by hand with a null value.
        let mut rec = vec![0u8];
        record_batch::write_varlong(&mut rec, 0);
        record_batch::write_varlong(&mut rec, 0);
        record_batch::write_varlong(&mut rec, 1);
        rec.push(b'a');
        record_batch::write_varlong(&mut rec, -1);
        record_batch::write_varlong(&mut rec, 0);
        let mut body = Vec::new();
        record_batch::write_varlong(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
        b.truncate(HEADER_LEN);
        b.extend_from_slice(&body);
        let h = BatchHeader::parse(&b).unwrap();
        finish_header(&mut b, 0, h.base_timestamp, h.max_timestamp, 1);
        validate_batch(&b).unwrap();
        let mut map = OffsetMap::new(10);
        map.put(b"a", 0);
        map.update_latest_offset(0);
        let p = HashMap::new();
        let f = filter_batch(&b, &ctx(&map, &p, 5000)).unwrap();
        assert_eq!(f.tombstone_horizon, Some(6000));
        let Kept::Rewritten(stamped) = f.kept else {
            panic!("horizon must be stamped")
        };
        let h = validate_stored_batch(&stamped).unwrap();
        assert!(h.attributes & ATTR_DELETE_HORIZON != 0);
        assert_eq!(h.base_timestamp, 6000);
        let (h2, raw) = decode(&stamped).unwrap();
        assert_eq!(
            parse_records(&h2, &raw).unwrap()[0].timestamp,
            100,
            "timestamp kept"
        );
        // Before the horizon: kept verbatim; after: dropped.
        assert!(matches!(
            filter_batch(&stamped, &ctx(&map, &p, 5999)).unwrap().kept,
            Kept::Original
        ));
        assert!(matches!(
            filter_batch(&stamped, &ctx(&map, &p, 6000)).unwrap().kept,
            Kept::Dropped
        ));
    }

    #[test]
    fn last_batch_of_a_producer_stays_as_an_empty_batch() {
        let b = build_batch(
            0,
            &[(100, Some(b"a"), b"1"), (100, Some(b"a"), b"2")],
            7,
            3,
            40,
        );
        let mut map = OffsetMap::new(10);
        map.put(b"a", 9);
        map.update_latest_offset(9);
        let mut p = HashMap::new();
        p.insert(7, 1);
        let f = filter_batch(&b, &ctx(&map, &p, 0)).unwrap();
        let Kept::Rewritten(e) = f.kept else {
            panic!("empty batch expected")
        };
        let h = validate_stored_batch(&e).unwrap();
        assert_eq!(
            (
                h.records_count,
                h.last_offset(),
                h.producer_id,
                h.producer_epoch,
                h.base_sequence
            ),
            (0, 1, 7, 3, 40)
        );
        p.insert(7, 50);
        assert!(matches!(
            filter_batch(&b, &ctx(&map, &p, 0)).unwrap().kept,
            Kept::Dropped
        ));
    }

    #[test]
    fn compressed_batches_are_recompressed_with_their_codec() {
        let plain = build_batch(
            0,
            &[
                (1, Some(b"a"), b"old"),
                (2, Some(b"b"), b"x"),
                (3, Some(b"a"), b"new"),
            ],
            -1,
            -1,
            -1,
        );
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let b = compression::recompress_batch(&plain, codec).unwrap();
            let mut map = OffsetMap::new(10);
            map.put(b"a", 2);
            map.put(b"b", 1);
            map.update_latest_offset(2);
            let p = HashMap::new();
            let Kept::Rewritten(out) = filter_batch(&b, &ctx(&map, &p, 0)).unwrap().kept else {
                panic!("rewritten expected")
            };
            let h = validate_stored_batch(&out).unwrap();
            assert_eq!(h.compression(), codec.id());
            let (h, raw) = decode(&out).unwrap();
            let vals: Vec<_> = parse_records(&h, &raw)
                .unwrap()
                .iter()
                .map(|r| r.key.unwrap().to_vec())
                .collect();
            assert_eq!(vals, vec![b"b".to_vec(), b"a".to_vec()]);
        }
    }
}
