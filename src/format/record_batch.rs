//! Record batch v2 (magic 2): header view, validation and the broker-owned header rewrites.
//!
//! No I/O here. The broker never decodes individual records on the produce or fetch path: a
//! produced batch is checked at batch level and stored verbatim, with only the fields the broker
//! owns rewritten. Layout (all big-endian, from Kafka's `DefaultRecordBatch`):
//!
//! ```text
//!  0  baseOffset            i64   broker-owned
//!  8  batchLength           i32   bytes after this field
//! 12  partitionLeaderEpoch  i32   broker-owned
//! 16  magic                 i8    = 2
//! 17  crc                   u32   CRC-32C of bytes 21..end
//! 21  attributes            i16   bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control
//! 23  lastOffsetDelta       i32
//! 27  baseTimestamp         i64
//! 35  maxTimestamp          i64
//! 43  producerId            i64
//! 51  producerEpoch         i16
//! 53  baseSequence          i32
//! 57  recordsCount          i32
//! 61  records...
//! ```
//!
//! Base offset and partition leader epoch sit before the CRC'd range, so assigning offsets never
//! recomputes the CRC. Only `LogAppendTime` (which rewrites attributes and maxTimestamp) does.

/// Size of the fixed v2 header.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength` counts from (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;
/// Smallest legal `batchLength` (a header with no records).
pub const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;

pub const BASE_OFFSET_OFFSET: usize = 0;
pub const LENGTH_OFFSET: usize = 8;
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
pub const MAGIC_OFFSET: usize = 16;
pub const CRC_OFFSET: usize = 17;
pub const ATTRIBUTES_OFFSET: usize = 21;
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
pub const PRODUCER_ID_OFFSET: usize = 43;
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
pub const BASE_SEQUENCE_OFFSET: usize = 53;
pub const RECORDS_COUNT_OFFSET: usize = 57;

pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
pub const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;

/// Why a batch was refused. Mapped to Kafka error codes by the storage layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Shorter than a header, or `batchLength` disagrees with the bytes present.
    #[error("truncated or malformed batch length: {0}")]
    BadLength(String),
    #[error("unsupported magic {0} (only v2 record batches are stored)")]
    BadMagic(i8),
    #[error("CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    /// Record count vs lastOffsetDelta, negative fields.
    #[error("invalid record batch: {0}")]
    Invalid(String),
    #[error("invalid timestamp {0}")]
    BadTimestamp(i64),
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The decoded fixed header of one v2 batch. Plain values, copied out of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses the 61-byte header. `buf` must hold at least [`HEADER_LEN`] bytes; magic is not
    /// checked here (see [`validate_batch`]).
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::BadLength(format!(
                "{} bytes, a v2 header needs {HEADER_LEN}",
                buf.len()
            )));
        }
        Ok(BatchHeader {
            base_offset: i64_at(buf, BASE_OFFSET_OFFSET),
            batch_length: i32_at(buf, LENGTH_OFFSET),
            partition_leader_epoch: i32_at(buf, PARTITION_LEADER_EPOCH_OFFSET),
            magic: buf[MAGIC_OFFSET] as i8,
            crc: u32_at(buf, CRC_OFFSET),
            attributes: i16_at(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: i32_at(buf, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: i64_at(buf, BASE_TIMESTAMP_OFFSET),
            max_timestamp: i64_at(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: i64_at(buf, PRODUCER_ID_OFFSET),
            producer_epoch: i16_at(buf, PRODUCER_EPOCH_OFFSET),
            base_sequence: i32_at(buf, BASE_SEQUENCE_OFFSET),
            records_count: i32_at(buf, RECORDS_COUNT_OFFSET),
        })
    }

    /// Total size on disk: `batchLength + 12`.
    pub fn total_len(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
    /// 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> u8 {
        (self.attributes & ATTR_COMPRESSION_MASK) as u8
    }
    pub fn compression_name(&self) -> &'static str {
        match self.compression() {
            0 => "none",
            1 => "gzip",
            2 => "snappy",
            3 => "lz4",
            4 => "zstd",
            _ => "unknown",
        }
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_TIMESTAMP_TYPE != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
}

/// CRC-32C over attributes..end of one whole batch (`batch.len() >= HEADER_LEN`).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..])
}

/// Reads the total length (`batchLength + 12`) of the batch starting at `buf[0]`, if the first
/// 12 bytes are present and the length is plausible.
pub fn peek_total_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < LOG_OVERHEAD {
        return None;
    }
    let len = i32_at(buf, LENGTH_OFFSET);
    if len < MIN_BATCH_LENGTH {
        return None;
    }
    Some(len as usize + LOG_OVERHEAD)
}

/// Fully validates the one batch that starts at `buf[0]` and returns its header. `buf` may hold
/// more bytes after it. Checks: length, magic 2, CRC-32C, a known codec (0–4), record count vs
/// lastOffsetDelta, timestamps (>= -1). Compressed records are not decompressed here.
pub fn validate_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = validate_stored_batch(buf)?;
    if h.records_count <= 0 {
        return Err(BatchError::Invalid(format!(
            "record count {} must be positive",
            h.records_count
        )));
    }
    if h.last_offset_delta as i64 + 1 != h.records_count as i64 {
        return Err(BatchError::Invalid(format!(
            "record count {} does not match lastOffsetDelta {}",
            h.records_count, h.last_offset_delta
        )));
    }
    Ok(h)
}

/// [`validate_batch`] for a batch already in the log: the log cleaner keeps a batch's offset
/// range while dropping records from it (Kafka keeps the last offset so the producer's last
/// sequence survives), and keeps empty batches (no records) for idempotent producers' state, so
/// here the record count may be anything from 0 to `lastOffsetDelta + 1`.
pub fn validate_stored_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    if buf.len() < LOG_OVERHEAD {
        return Err(BatchError::BadLength(format!(
            "{} trailing bytes, not a batch",
            buf.len()
        )));
    }
    let len = i32_at(buf, LENGTH_OFFSET);
    if len < MIN_BATCH_LENGTH {
        return Err(BatchError::BadLength(format!(
            "batchLength {len} < minimum {MIN_BATCH_LENGTH}"
        )));
    }
    let total = len as usize + LOG_OVERHEAD;
    if buf.len() < MAGIC_OFFSET + 1 {
        return Err(BatchError::BadLength(format!("{} bytes", buf.len())));
    }
    let magic = buf[MAGIC_OFFSET] as i8;
    if magic != 2 {
        return Err(BatchError::BadMagic(magic));
    }
    if buf.len() < total {
        return Err(BatchError::BadLength(format!(
            "batchLength says {total} bytes, only {} present",
            buf.len()
        )));
    }
    let batch = &buf[..total];
    let h = BatchHeader::parse(batch)?;
    let computed = compute_crc(batch);
    if computed != h.crc {
        return Err(BatchError::BadCrc {
            stored: h.crc,
            computed,
        });
    }
    if h.compression() > 4 {
        return Err(BatchError::Invalid(format!(
            "unknown compression codec {}",
            h.compression()
        )));
    }
    if h.records_count < 0
        || h.last_offset_delta < 0
        || h.records_count as i64 > h.last_offset_delta as i64 + 1
    {
        return Err(BatchError::Invalid(format!(
            "record count {} does not fit lastOffsetDelta {}",
            h.records_count, h.last_offset_delta
        )));
    }
    if h.base_timestamp < -1 {
        return Err(BatchError::BadTimestamp(h.base_timestamp));
    }
    if h.max_timestamp < -1 {
        return Err(BatchError::BadTimestamp(h.max_timestamp));
    }
    Ok(h)
}

/// Iterates whole, validated batches of a buffer; stops with an error at the first bad one.
pub fn validate_all(buf: &[u8]) -> Result<Vec<BatchHeader>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0;
    if buf.is_empty() {
        return Err(BatchError::BadLength("empty record set".into()));
    }
    while pos < buf.len() {
        let h = validate_batch(&buf[pos..])?;
        pos += h.total_len();
        out.push(h);
    }
    Ok(out)
}

/// Writes the broker-owned base offset.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes the partition leader epoch (outside the CRC'd range).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// Kafka's `setMaxTimestamp(LOG_APPEND_TIME, now)`: sets the timestamp-type attribute bit and
/// maxTimestamp, then recomputes the CRC. `batch` is exactly one whole batch.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attrs = i16_at(batch, ATTRIBUTES_OFFSET) | ATTR_TIMESTAMP_TYPE;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Reads a zig-zag varint (Kafka's `ByteUtils.readVarlong`) from `buf[*pos..]`.
pub fn read_varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    let mut shift = 0;
    loop {
        let b = *buf.get(*pos)?;
        *pos += 1;
        value |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    Some(((value >> 1) as i64) ^ -((value & 1) as i64))
}

/// Appends a zig-zag varint.
pub fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// (offset delta, timestamp) of each record of an *uncompressed* batch; used only off the hot
/// path (ListOffsets). `None` when the batch is compressed or the records section is malformed
/// (`compression::record_timestamps` also decodes compressed batches).
pub fn record_timestamps(batch: &[u8]) -> Option<Vec<(i32, i64)>> {
    let h = BatchHeader::parse(batch).ok()?;
    if h.compression() != 0 || batch.len() < h.total_len() {
        return None;
    }
    records_timestamps(&h, &batch[HEADER_LEN..h.total_len()])
}

/// (offset delta, timestamp) of each record in `records`, the uncompressed records section of
/// the batch whose header is `h`. A record's timestamp is `baseTimestamp + timestampDelta`, or
/// the batch's maxTimestamp under `LogAppendTime` (as Kafka's `DefaultRecordBatch` reads it).
/// `None` when the section does not hold `recordsCount` well-formed records.
pub fn records_timestamps(h: &BatchHeader, records: &[u8]) -> Option<Vec<(i32, i64)>> {
    let mut out = Vec::with_capacity(h.records_count.clamp(0, 1 << 16) as usize);
    let mut pos = 0;
    let end = records.len();
    for _ in 0..h.records_count {
        let len = read_varlong(records, &mut pos)?;
        if len < 0 {
            return None;
        }
        let record_end = pos.checked_add(len as usize)?;
        if record_end > end {
            return None;
        }
        pos += 1; // attributes
        let ts_delta = read_varlong(records, &mut pos)?;
        let offset_delta = read_varlong(records, &mut pos)?;
        if pos > record_end {
            return None;
        }
        let ts = if h.is_log_append_time() {
            h.max_timestamp
        } else {
            h.base_timestamp.wrapping_add(ts_delta)
        };
        out.push((offset_delta as i32, ts));
        pos = record_end;
    }
    Some(out)
}

/// A test record: (timestamp, key, value).
pub type SimpleRecord<'a> = (i64, Option<&'a [u8]>, &'a [u8]);

/// Builds an uncompressed v2 batch (tests, benches, tools). Each record is (timestamp, key, value);
/// no headers. Offsets are relative from 0; base offset is left at `base_offset`.
pub fn build_batch(
    base_offset: i64,
    records: &[SimpleRecord<'_>],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    assert!(!records.is_empty(), "a batch needs at least one record");
    let base_ts = records[0].0;
    let max_ts = records.iter().map(|r| r.0).max().unwrap_or(base_ts);
    let mut body = Vec::new();
    for (i, (ts, key, value)) in records.iter().enumerate() {
        let mut rec = Vec::new();
        rec.push(0u8); // attributes
        write_varlong(&mut rec, ts - base_ts);
        write_varlong(&mut rec, i as i64);
        match key {
            Some(k) => {
                write_varlong(&mut rec, k.len() as i64);
                rec.extend_from_slice(k);
            }
            None => write_varlong(&mut rec, -1),
        }
        write_varlong(&mut rec, value.len() as i64);
        rec.extend_from_slice(value);
        write_varlong(&mut rec, 0); // headers
        write_varlong(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let mut b = Vec::with_capacity(HEADER_LEN + body.len());
    b.extend_from_slice(&base_offset.to_be_bytes());
    b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&[0; 4]); // crc placeholder
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&((records.len() - 1) as i32).to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&base_sequence.to_be_bytes());
    b.extend_from_slice(&(records.len() as i32).to_be_bytes());
    b.extend_from_slice(&body);
    let crc = compute_crc(&b);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        build_batch(
            0,
            &[(1000, Some(b"k"), b"v1"), (1005, None, b"v2")],
            -1,
            -1,
            -1,
        )
    }

    #[test]
    fn build_and_validate_round_trip() {
        let b = sample();
        let h = validate_batch(&b).unwrap();
        assert_eq!(h.records_count, 2);
        assert_eq!(h.last_offset_delta, 1);
        assert_eq!(h.base_timestamp, 1000);
        assert_eq!(h.max_timestamp, 1005);
        assert_eq!(h.total_len(), b.len());
        assert_eq!(record_timestamps(&b).unwrap(), vec![(0, 1000), (1, 1005)]);
    }

    #[test]
    fn varlong_round_trip() {
        for v in [0i64, 1, -1, 63, -64, 64, 300, -300, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            let mut pos = 0;
            assert_eq!(read_varlong(&out, &mut pos), Some(v));
            assert_eq!(pos, out.len());
        }
    }

    #[test]
    fn refuses_bad_input() {
        let good = sample();
        let mut crc = good.clone();
        let last = crc.len() - 1;
        crc[last] ^= 1;
        assert!(matches!(
            validate_batch(&crc),
            Err(BatchError::BadCrc { .. })
        ));
        let mut magic = good.clone();
        magic[MAGIC_OFFSET] = 1;
        assert_eq!(validate_batch(&magic), Err(BatchError::BadMagic(1)));
        assert!(matches!(
            validate_batch(&good[..good.len() - 1]),
            Err(BatchError::BadLength(_))
        ));
        assert!(matches!(
            validate_batch(&good[..5]),
            Err(BatchError::BadLength(_))
        ));
        // Record count 3 with lastOffsetDelta 1 (CRC fixed up so only the count is wrong).
        let mut count = good.clone();
        count[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&3i32.to_be_bytes());
        let c = compute_crc(&count);
        count[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&c.to_be_bytes());
        assert!(matches!(
            validate_batch(&count),
            Err(BatchError::Invalid(_))
        ));
    }

    #[test]
    fn log_append_time_rewrites_crc() {
        let mut b = sample();
        set_log_append_time(&mut b, 42_000);
        let h = validate_batch(&b).unwrap();
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 42_000);
        assert_eq!(
            record_timestamps(&b).unwrap(),
            vec![(0, 42_000), (1, 42_000)]
        );
        set_base_offset(&mut b, 77);
        set_partition_leader_epoch(&mut b, 0);
        let h = validate_batch(&b).unwrap();
        assert_eq!(h.base_offset, 77);
        assert_eq!(h.last_offset(), 78);
    }
}
