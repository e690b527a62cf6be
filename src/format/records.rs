//! Decoding the records of a v2 batch (key, value presence, timestamps, offsets), for what
//! must look inside records: the log cleaner and the key check of a compacted topic's produce.
//! The hot paths never decode records. No I/O here.

use super::compression::{self, CompressionError};
use super::record_batch::{self, BatchError, BatchHeader, HEADER_LEN};

/// One record of a decoded records section, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub attributes: u8,
    /// The record's timestamp (the batch's max timestamp under `LogAppendTime`).
    pub timestamp: i64,
    pub offset_delta: i64,
    pub key: Option<&'a [u8]>,
    /// Null value: a delete marker.
    pub tombstone: bool,
    /// The value (`None` for a tombstone).
    pub value: Option<&'a [u8]>,
    /// The record's bytes from its offset delta to its end (re-emitted as they are).
    pub tail: &'a [u8],
}

fn bad(what: &str) -> BatchError {
    BatchError::Invalid(format!("malformed record: {what}"))
}

/// Decodes the records of an uncompressed records section `raw` of the batch `h`.
pub fn parse_records<'a>(h: &BatchHeader, raw: &'a [u8]) -> Result<Vec<Record<'a>>, BatchError> {
    let mut out = Vec::with_capacity(h.records_count.clamp(0, 1 << 16) as usize);
    let mut pos = 0usize;
    let varlong =
        |pos: &mut usize| record_batch::read_varlong(raw, pos).ok_or_else(|| bad("varint"));
    for _ in 0..h.records_count.max(0) {
        let len = varlong(&mut pos)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|&e| e <= raw.len())
            .ok_or_else(|| bad("length"))?;
        let attributes = *raw.get(pos).ok_or_else(|| bad("attributes"))?;
        pos += 1;
        let ts_delta = varlong(&mut pos)?;
        let tail_start = pos;
        let offset_delta = varlong(&mut pos)?;
        let key_len = varlong(&mut pos)?;
        let key = if key_len >= 0 {
            let stop = usize::try_from(key_len)
                .ok()
                .and_then(|l| pos.checked_add(l))
                .filter(|&e| e <= end)
                .ok_or_else(|| bad("key"))?;
            let k = &raw[pos..stop];
            pos = stop;
            Some(k)
        } else {
            None
        };
        let value_len = varlong(&mut pos)?;
        let value = if value_len >= 0 {
            let stop = usize::try_from(value_len)
                .ok()
                .and_then(|l| pos.checked_add(l))
                .filter(|&e| e <= end)
                .ok_or_else(|| bad("value"))?;
            let v = &raw[pos..stop];
            pos = stop;
            Some(v)
        } else {
            None
        };
        if pos > end {
            return Err(bad("past its length"));
        }
        let timestamp = if h.is_log_append_time() {
            h.max_timestamp
        } else {
            h.base_timestamp.wrapping_add(ts_delta)
        };
        out.push(Record {
            attributes,
            timestamp,
            offset_delta,
            key,
            tombstone: value.is_none(),
            value,
            tail: &raw[tail_start..end],
        });
        pos = end;
    }
    if pos != raw.len() {
        return Err(bad("bytes after the last record"));
    }
    Ok(out)
}

/// The decoded records of a whole batch (decompressed if needed) and its header.
pub fn decode(batch: &[u8]) -> Result<(BatchHeader, Vec<u8>), CompressionError> {
    let h = BatchHeader::parse(batch)?;
    let raw = if h.compression() == 0 {
        batch[HEADER_LEN..h.total_len()].to_vec()
    } else {
        compression::batch_records(batch)?
    };
    Ok((h, raw))
}
