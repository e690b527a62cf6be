//! Record-batch v2 building (producer side) and walking (consumer side), by hand.
//!
//! # Why not `kafka_protocol::records::RecordBatchEncoder`
//! The library encoder takes a `Vec<Record>` whose keys, values and header maps are owned `Bytes` /
//! `IndexMap`s: every message would cost several heap allocations before a single byte is written,
//! and it walks the records twice (size, then bytes). loadgen must push millions of messages per
//! second from one process, so this module writes records straight into one reusable buffer: the
//! caller hands slices (no ownership), varints are written from a stack array, the 61-byte header is
//! reserved up front and patched on [`BatchBuilder::finish`], and CRC-32C (hardware accelerated by
//! the `crc32c` crate) runs once over the finished batch. The only allocation is per batch (the
//! `Bytes` handed to the request encoder, carved out of the builder's buffer with `split`, which the
//! buffer reclaims once the request has been written).
//!
//! Compression is per batch too: records go to a scratch buffer and are compressed into the batch
//! with kafka-protocol's Kafka-framed codecs (gzip, xerial-snappy, lz4 frame, zstd).
//!
//! The consumer side ([`for_each_record`]) walks fetched bytes in place the same way instead of
//! `RecordBatchDecoder`, which would allocate per record.

use anyhow::{Context, Result, bail};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::Compression as KCompression;

/// Size of the fixed v2 batch header (baseOffset .. recordCount).
pub const BATCH_HEADER_LEN: usize = 61;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;

/// Producer-side compression codec (`--compression`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// Codec id in the batch attributes (bits 0-2).
    pub fn attribute_bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

/// Zigzag + LEB128 varint into `out`.
#[inline]
pub fn put_varint(out: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut tmp = [0u8; 10];
    let mut n = 0;
    while z >= 0x80 {
        tmp[n] = (z as u8) | 0x80;
        z >>= 7;
        n += 1;
    }
    tmp[n] = z as u8;
    out.extend_from_slice(&tmp[..=n]);
}

/// Encoded size of a zigzag varint.
#[inline]
pub fn varint_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    let bits = 64 - (z | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Reads a zigzag varint from `buf[*pos..]`. Single-byte values (most record fields: attributes
/// deltas, key/header lengths) take an inlined fast path; the loop is out of line.
#[inline(always)]
pub fn get_varint(buf: &[u8], pos: &mut usize) -> Result<i64> {
    if let Some(&b) = buf.get(*pos)
        && b < 0x80
    {
        *pos += 1;
        return Ok(i64::from(b >> 1) ^ -i64::from(b & 1));
    }
    get_varint_slow(buf, pos)
}

#[inline(never)]
fn get_varint_slow(buf: &[u8], pos: &mut usize) -> Result<i64> {
    let mut z: u64 = 0;
    let mut shift = 0;
    loop {
        let Some(&b) = buf.get(*pos) else {
            bail!("truncated varint")
        };
        *pos += 1;
        z |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            bail!("varint too long");
        }
    }
    Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
}

/// Builds one v2 record batch at a time into a reusable buffer.
pub struct BatchBuilder {
    buf: BytesMut,
    scratch: BytesMut,
    compression: Compression,
    count: i32,
    base_ts: i64,
    max_ts: i64,
}

impl BatchBuilder {
    pub fn new(compression: Compression, capacity: usize) -> Self {
        let mut b = BatchBuilder {
            buf: BytesMut::with_capacity(capacity + BATCH_HEADER_LEN + 1024),
            scratch: BytesMut::with_capacity(if compression == Compression::None {
                0
            } else {
                capacity + 1024
            }),
            compression,
            count: 0,
            base_ts: 0,
            max_ts: 0,
        };
        b.reset();
        b
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.buf.put_bytes(0, BATCH_HEADER_LEN);
        self.scratch.clear();
        self.count = 0;
    }

    /// Number of records in the open batch.
    pub fn count(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Uncompressed size of the open batch in bytes (what `--batch-size` compares against).
    pub fn size(&self) -> usize {
        self.buf.len() + self.scratch.len()
    }

    /// Size a record with these key/value lengths adds to the batch.
    pub fn record_size(&self, ts_ms: i64, key_len: Option<usize>, value_len: usize) -> usize {
        let body = self.body_len(ts_ms, key_len, value_len);
        varint_len(body as i64) + body
    }

    fn body_len(&self, ts_ms: i64, key_len: Option<usize>, value_len: usize) -> usize {
        let ts_delta = if self.count == 0 {
            0
        } else {
            ts_ms - self.base_ts
        };
        1 + varint_len(ts_delta)
            + varint_len(i64::from(self.count))
            + match key_len {
                Some(k) => varint_len(k as i64) + k,
                None => 1,
            }
            + varint_len(value_len as i64)
            + value_len
            + 1
    }

    /// Appends one record whose value is the concatenation of `value_parts` (so a caller can pass a
    /// per-message header and a shared filler without copying them together first).
    #[inline]
    pub fn append(&mut self, ts_ms: i64, key: Option<&[u8]>, value_parts: &[&[u8]]) {
        let value_len: usize = value_parts.iter().map(|p| p.len()).sum();
        if self.count == 0 {
            self.base_ts = ts_ms;
            self.max_ts = ts_ms;
        }
        let body = self.body_len(ts_ms, key.map(<[u8]>::len), value_len);
        let ts_delta = ts_ms - self.base_ts;
        let offset_delta = i64::from(self.count);
        let out = if self.compression == Compression::None {
            &mut self.buf
        } else {
            &mut self.scratch
        };
        out.reserve(body + 10);
        put_varint(out, body as i64);
        out.put_u8(0); // record attributes
        put_varint(out, ts_delta);
        put_varint(out, offset_delta);
        match key {
            Some(k) => {
                put_varint(out, k.len() as i64);
                out.extend_from_slice(k);
            }
            None => put_varint(out, -1),
        }
        put_varint(out, value_len as i64);
        for p in value_parts {
            out.extend_from_slice(p);
        }
        put_varint(out, 0); // no headers
        self.count += 1;
        if ts_ms > self.max_ts {
            self.max_ts = ts_ms;
        }
    }

    /// Seals the open batch (header, compression, CRC-32C) and returns it; the builder is reset for
    /// the next batch. Returns `None` when the batch is empty.
    pub fn finish(&mut self) -> Result<Option<Bytes>> {
        if self.count == 0 {
            return Ok(None);
        }
        if self.compression != Compression::None {
            let scratch = &self.scratch;
            let out = &mut self.buf;
            let put = |b: &mut BytesMut| -> Result<()> {
                b.extend_from_slice(scratch);
                Ok(())
            };
            use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
            match self.compression {
                Compression::Gzip => Gzip::compress(out, put),
                Compression::Snappy => Snappy::compress(out, put),
                Compression::Lz4 => Lz4::compress(out, put),
                Compression::Zstd => Zstd::compress(out, put),
                Compression::None => unreachable!(),
            }
            .context("compressing batch")?;
        }
        let total = self.buf.len();
        let h = &mut self.buf[..BATCH_HEADER_LEN];
        h[0..8].copy_from_slice(&0i64.to_be_bytes()); // base offset (broker assigns)
        h[8..12].copy_from_slice(&((total - 12) as i32).to_be_bytes());
        h[12..16].copy_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        h[16] = 2; // magic
        h[21..23].copy_from_slice(&self.compression.attribute_bits().to_be_bytes());
        h[23..27].copy_from_slice(&(self.count - 1).to_be_bytes());
        h[27..35].copy_from_slice(&self.base_ts.to_be_bytes());
        h[35..43].copy_from_slice(&self.max_ts.to_be_bytes());
        h[43..51].copy_from_slice(&(-1i64).to_be_bytes()); // producer id
        h[51..53].copy_from_slice(&(-1i16).to_be_bytes()); // producer epoch
        h[53..57].copy_from_slice(&(-1i32).to_be_bytes()); // base sequence
        h[57..61].copy_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&self.buf[ATTRIBUTES_OFFSET..]);
        self.buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        let out = self.buf.split().freeze();
        self.reset();
        Ok(Some(out))
    }
}

/// One record seen by [`for_each_record`].
pub struct RecordView<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// Summary of one walked batch.
pub struct BatchInfo {
    pub base_offset: i64,
    pub last_offset: i64,
}

/// Walks every record of every complete batch in `data` (a Fetch partition's `records`), in place.
/// A trailing partial batch (allowed by the Fetch protocol) is ignored. Returns the batches walked.
/// CRC-32C is checked; compressed batches are inflated into a temporary buffer.
pub fn for_each_record(data: &[u8], mut f: impl FnMut(&RecordView<'_>)) -> Result<Vec<BatchInfo>> {
    let mut infos = Vec::new();
    let mut pos = 0;
    while data.len() - pos >= BATCH_HEADER_LEN {
        let h = &data[pos..];
        let base_offset = i64::from_be_bytes(h[0..8].try_into().unwrap());
        let batch_len = i32::from_be_bytes(h[8..12].try_into().unwrap());
        if batch_len < (BATCH_HEADER_LEN - 12) as i32 {
            bail!("batch at offset {base_offset}: bad length {batch_len}");
        }
        let total = 12 + batch_len as usize;
        if data.len() - pos < total {
            break; // partial batch at the end of a fetch response
        }
        let batch = &h[..total];
        if batch[16] != 2 {
            bail!(
                "batch at offset {base_offset}: magic {} unsupported",
                batch[16]
            );
        }
        let crc = u32::from_be_bytes(batch[CRC_OFFSET..CRC_OFFSET + 4].try_into().unwrap());
        if crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]) != crc {
            bail!("batch at offset {base_offset}: CRC-32C mismatch");
        }
        let attributes = i16::from_be_bytes(batch[21..23].try_into().unwrap());
        let last_delta = i32::from_be_bytes(batch[23..27].try_into().unwrap());
        let base_ts = i64::from_be_bytes(batch[27..35].try_into().unwrap());
        let count = i32::from_be_bytes(batch[57..61].try_into().unwrap());
        infos.push(BatchInfo {
            base_offset,
            last_offset: base_offset + i64::from(last_delta),
        });
        pos += total;
        if attributes & 0x20 != 0 {
            continue; // control batch (transaction markers)
        }
        let body = &batch[BATCH_HEADER_LEN..];
        let codec = attributes & 0x7;
        if codec == 0 {
            walk_records(body, count, base_offset, base_ts, &mut f)?;
        } else {
            let inflated = decompress(codec, body)
                .with_context(|| format!("batch at offset {base_offset}"))?;
            walk_records(&inflated, count, base_offset, base_ts, &mut f)?;
        }
    }
    Ok(infos)
}

fn decompress(codec: i16, body: &[u8]) -> Result<Bytes> {
    use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};
    let mut src = Bytes::copy_from_slice(body);
    let take = |b: &mut Bytes| -> Result<Bytes> { Ok(std::mem::take(b)) };
    match codec {
        1 => Gzip::decompress(&mut src, take),
        2 => Snappy::decompress(&mut src, take),
        3 => Lz4::decompress(&mut src, take),
        4 => Zstd::decompress(&mut src, take),
        c => bail!("unknown compression codec {c}"),
    }
}

fn walk_records(
    body: &[u8],
    count: i32,
    base_offset: i64,
    base_ts: i64,
    f: &mut impl FnMut(&RecordView<'_>),
) -> Result<()> {
    let mut pos = 0;
    for _ in 0..count {
        let len = get_varint(body, &mut pos)?;
        let end = pos
            .checked_add(usize::try_from(len).context("negative record length")?)
            .filter(|&e| e <= body.len())
            .context("record overruns batch")?;
        let rec = &body[..end];
        pos += 1; // attributes
        let ts_delta = get_varint(rec, &mut pos)?;
        let offset_delta = get_varint(rec, &mut pos)?;
        let key = take_bytes(rec, &mut pos)?;
        let value = take_bytes(rec, &mut pos)?;
        let headers = get_varint(rec, &mut pos)?;
        for _ in 0..headers {
            let klen = get_varint(rec, &mut pos)?;
            pos += usize::try_from(klen).context("negative header key length")?;
            take_bytes(rec, &mut pos)?;
        }
        if pos != end {
            bail!("record length mismatch");
        }
        f(&RecordView {
            offset: base_offset + offset_delta,
            timestamp: base_ts + ts_delta,
            key,
            value,
        });
    }
    Ok(())
}

fn take_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>> {
    let len = get_varint(buf, pos)?;
    if len < 0 {
        return Ok(None);
    }
    let end = *pos + len as usize;
    let s = buf.get(*pos..end).context("field overruns record")?;
    *pos = end;
    Ok(Some(s))
}

/// Maps our codec to kafka-protocol's, for tests that cross-check with the library decoder.
pub fn to_kafka_compression(c: Compression) -> KCompression {
    match c {
        Compression::None => KCompression::None,
        Compression::Gzip => KCompression::Gzip,
        Compression::Snappy => KCompression::Snappy,
        Compression::Lz4 => KCompression::Lz4,
        Compression::Zstd => KCompression::Zstd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    fn build(c: Compression, n: usize) -> Bytes {
        let mut b = BatchBuilder::new(c, 16384);
        for i in 0..n {
            let key = (i as u64).to_be_bytes();
            let k = if i % 3 == 0 { None } else { Some(&key[..]) };
            b.append(1_000 + i as i64, k, &[b"head", &[i as u8; 50]]);
        }
        b.finish().unwrap().unwrap()
    }

    #[test]
    fn varint_roundtrip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            64,
            -65,
            300,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let mut b = BytesMut::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
            let mut pos = 0;
            assert_eq!(get_varint(&b, &mut pos).unwrap(), v);
            assert_eq!(pos, b.len());
        }
    }

    #[test]
    fn library_decoder_accepts_our_batches() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut bytes = build(c, 20);
            let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
            let recs = &set.records;
            assert_eq!(recs.len(), 20, "{c:?}");
            for (i, r) in recs.iter().enumerate() {
                assert_eq!(r.offset, i as i64);
                assert_eq!(r.timestamp, 1_000 + i as i64);
                assert_eq!(r.key.is_none(), i % 3 == 0);
                assert_eq!(r.value.as_ref().unwrap().len(), 54);
            }
            assert_eq!(set.compression, to_kafka_compression(c));
        }
    }

    #[test]
    fn walker_reads_our_batches_and_checks_crc() {
        for c in [Compression::None, Compression::Zstd] {
            let a = build(c, 5);
            let mut two = BytesMut::new();
            two.extend_from_slice(&a);
            let mut second = build(c, 3).to_vec();
            second[0..8].copy_from_slice(&5i64.to_be_bytes()); // base offset is outside the CRC
            two.extend_from_slice(&second);
            two.extend_from_slice(&a[..30]); // partial trailing batch
            let mut seen = Vec::new();
            let infos = for_each_record(&two, |r| seen.push((r.offset, r.timestamp))).unwrap();
            assert_eq!(infos.len(), 2);
            assert_eq!(infos[1].last_offset, 7);
            assert_eq!(seen.len(), 8);
            assert_eq!(seen[7], (7, 1_002));
            let mut bad = a.to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(for_each_record(&bad, |_| {}).is_err());
        }
    }

    #[test]
    fn builder_is_reusable() {
        let mut b = BatchBuilder::new(Compression::None, 1024);
        assert!(b.finish().unwrap().is_none());
        b.append(5, None, &[b"x"]);
        let first = b.finish().unwrap().unwrap();
        b.append(5, None, &[b"x"]);
        let second = b.finish().unwrap().unwrap();
        assert_eq!(first, second);
        assert_eq!(b.size(), BATCH_HEADER_LEN);
    }
}
