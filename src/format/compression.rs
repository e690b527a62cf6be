//! Kafka's compression codecs, and re-encoding a v2 batch in another codec. No I/O here.
//!
//! Codec ids are the attribute bits 0–2 of a record batch (and of a v0/v1 message): 0 none,
//! 1 gzip, 2 snappy, 3 lz4, 4 zstd. The byte formats are the ones Kafka's Java client writes and
//! every client reads:
//!
//! - gzip: an RFC 1952 stream (several members are accepted on read).
//! - snappy: xerial/snappy-java framing (16-byte header `\x82SNAPPY\0`, version, compat, then
//!   `[u32 length][raw snappy block]*`), which Kafka writes; sarama and some librdkafka versions
//!   write plain raw snappy, so a buffer without the xerial magic is read as raw snappy (as
//!   snappy-java's `SnappyInputStream` does). We write xerial framing with 32 KiB blocks.
//! - lz4: the LZ4 frame format with independent 64 KiB blocks and no content checksum (what
//!   Kafka's `KafkaLZ4BlockOutputStream` writes). Magic-0 messages carry a frame-header checksum
//!   computed the wrong way (KAFKA-3160: over the magic number too; old Java clients and librdkafka
//!   with message version 0 write it so), which Kafka ignores for magic 0; [`fix_lz4_header`]
//!   rewrites it before decoding such messages.
//! - zstd: a standard zstd frame (level 3 when we compress, Kafka's default).
//!
//! Crates: flate2, snap, lz4_flex (pure Rust, frame format) and zstd. kafka-protocol's own
//! `compression` module was not reused: it decompresses without any output bound (a 1 MiB gzip
//! batch of zeros expands to ~1 GiB), uses the C `lz4` binding, and its `records` module only
//! re-encodes whole records (its header map drops duplicate header keys), whereas re-encoding a
//! batch here never decodes a record: the records section is decompressed and recompressed as one
//! byte string and only the header's attributes, length and CRC change.
//!
//! # Where this runs
//! Not on the hot path. With a topic's `compression.type = producer` (the default) a batch is
//! stored exactly as received: the CRC-32C covers the compressed bytes and nothing is
//! decompressed. Only a topic whose `compression.type` names a codec different from a batch's
//! makes [`recompress_batch`] run (in the Produce handler on the connection's shard, before the
//! append is sent to the owner shard: the cost lands where the request came in and the owner's
//! append loop never stalls on it). Recompression also validates: the decompressed records
//! section must hold exactly `recordsCount` length-prefixed records.

use std::io::{Read, Write};

use super::record_batch::{self, BatchError, HEADER_LEN, LOG_OVERHEAD};

/// Largest decompressed records section accepted (bounds memory against decompression bombs).
pub const MAX_DECOMPRESSED: usize = 128 << 20;

/// A compression codec, by its attribute value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Codec {
    /// From attribute bits 0–2; `None` for the undefined values 5–7.
    pub fn from_id(id: u8) -> Option<Codec> {
        Some(match id {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            _ => return None,
        })
    }

    pub fn id(self) -> u8 {
        self as u8
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

/// A topic's (or the broker's) `compression.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopicCompression {
    /// `producer`: keep whatever the producer sent.
    #[default]
    Producer,
    /// Store every batch in this codec (`uncompressed`/`none` → [`Codec::None`]).
    Codec(Codec),
}

impl TopicCompression {
    /// Parses Kafka's values: producer, uncompressed (or none), gzip, snappy, lz4, zstd.
    pub fn parse(v: &str) -> Option<TopicCompression> {
        Some(match v.trim() {
            "producer" => TopicCompression::Producer,
            "uncompressed" | "none" => TopicCompression::Codec(Codec::None),
            "gzip" => TopicCompression::Codec(Codec::Gzip),
            "snappy" => TopicCompression::Codec(Codec::Snappy),
            "lz4" => TopicCompression::Codec(Codec::Lz4),
            "zstd" => TopicCompression::Codec(Codec::Zstd),
            _ => return None,
        })
    }

    /// The effective setting: the topic override if present and valid, else the broker's.
    pub fn effective(topic: Option<&String>, broker: &str) -> TopicCompression {
        topic
            .and_then(|v| Self::parse(v))
            .or_else(|| Self::parse(broker))
            .unwrap_or_default()
    }
}

/// Why (de)compression failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    #[error("unknown compression codec {0}")]
    UnknownCodec(u8),
    #[error("corrupt {codec} data: {msg}")]
    Corrupt { codec: &'static str, msg: String },
    #[error("decompressed data exceeds {0} bytes")]
    TooLarge(usize),
    #[error(transparent)]
    Batch(#[from] BatchError),
}

fn corrupt(codec: Codec, e: impl std::fmt::Display) -> CompressionError {
    CompressionError::Corrupt {
        codec: codec.name(),
        msg: e.to_string(),
    }
}

/// Reads `r` to the end, refusing more than `limit` bytes.
fn read_bounded(codec: Codec, r: impl Read, limit: usize) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    r.take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(codec, e))?;
    if out.len() > limit {
        return Err(CompressionError::TooLarge(limit));
    }
    Ok(out)
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;
const XERIAL_BLOCK: usize = 32 * 1024;

fn snappy_raw(data: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CompressionError> {
    let n = snap::raw::decompress_len(data).map_err(|e| corrupt(Codec::Snappy, e))?;
    if out.len() + n > limit {
        return Err(CompressionError::TooLarge(limit));
    }
    let at = out.len();
    out.resize(at + n, 0);
    snap::raw::Decoder::new()
        .decompress(data, &mut out[at..])
        .map_err(|e| corrupt(Codec::Snappy, e))?;
    Ok(())
}

fn snappy_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    if data.len() < XERIAL_HEADER_LEN || &data[..8] != XERIAL_MAGIC {
        snappy_raw(data, limit, &mut out)?;
        return Ok(out);
    }
    let mut pos = XERIAL_HEADER_LEN;
    while pos < data.len() {
        let Some(len) = data.get(pos..pos + 4) else {
            return Err(corrupt(Codec::Snappy, "truncated xerial block length"));
        };
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        pos += 4;
        let Some(block) = data.get(pos..pos.saturating_add(len)) else {
            return Err(corrupt(Codec::Snappy, "truncated xerial block"));
        };
        snappy_raw(block, limit, &mut out)?;
        pos += len;
    }
    Ok(out)
}

fn snappy_compress(data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + data.len() / 2 + 64);
    out.extend_from_slice(XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes()); // version
    out.extend_from_slice(&1i32.to_be_bytes()); // minimum compatible version
    let mut enc = snap::raw::Encoder::new();
    for chunk in data.chunks(XERIAL_BLOCK) {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        out.resize(at + 4 + snap::raw::max_compress_len(chunk.len()), 0);
        let n = enc
            .compress(chunk, &mut out[at + 4..])
            .map_err(|e| corrupt(Codec::Snappy, e))?;
        out.truncate(at + 4 + n);
        out[at..at + 4].copy_from_slice(&(n as u32).to_be_bytes());
    }
    Ok(out)
}

/// KAFKA-3160: magic-0 lz4 frames may carry a header checksum computed over the magic number as
/// well; Kafka skips the check for them. Returns the frame with the checksum recomputed as the
/// LZ4 frame format defines it (`xxh32(FLG..) >> 8`), or `None` if `data` is not an lz4 frame
/// header.
pub fn fix_lz4_header(data: &[u8]) -> Option<Vec<u8>> {
    const MAGIC: [u8; 4] = 0x184D_2204u32.to_le_bytes();
    let flg = *data.get(4)?;
    if data[..4] != MAGIC {
        return None;
    }
    let mut hc_at = 6; // FLG, BD
    if flg & 0x08 != 0 {
        hc_at += 8; // content size
    }
    if flg & 0x01 != 0 {
        hc_at += 4; // dictionary id
    }
    if data.len() <= hc_at {
        return None;
    }
    let hc = (twox_hash::XxHash32::oneshot(0, &data[4..hc_at]) >> 8) as u8;
    let mut out = data.to_vec();
    out[hc_at] = hc;
    Some(out)
}

/// Decompresses `data` written with `codec`, refusing output larger than `limit`.
pub fn decompress(codec: Codec, data: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Codec::None => {
            if data.len() > limit {
                return Err(CompressionError::TooLarge(limit));
            }
            Ok(data.to_vec())
        }
        Codec::Gzip => read_bounded(codec, flate2::read::MultiGzDecoder::new(data), limit),
        Codec::Snappy => snappy_decompress(data, limit),
        Codec::Lz4 => read_bounded(codec, lz4_flex::frame::FrameDecoder::new(data), limit),
        Codec::Zstd => ZSTD_DECODER.with(|d| {
            // One decompression context per thread, reset for each batch (a failed decode must
            // not leak into the next): creating one costs more than decoding a small batch.
            let mut d = d.borrow_mut();
            let ctx = d.get_or_insert_with(zstd::zstd_safe::DCtx::create);
            ctx.reset(zstd::zstd_safe::ResetDirective::SessionOnly)
                .map_err(|code| corrupt(codec, zstd::zstd_safe::get_error_name(code)))?;
            read_bounded(
                codec,
                zstd::stream::read::Decoder::with_context(data, ctx),
                limit,
            )
        }),
    }
}

thread_local! {
    /// The zstd contexts of this thread (see `compress` and `decompress`).
    static ZSTD: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    static ZSTD_DECODER: std::cell::RefCell<Option<zstd::zstd_safe::DCtx<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Compresses `data` with `codec` in the format Kafka's Java client writes.
pub fn compress(codec: Codec, data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Codec::None => Ok(data.to_vec()),
        Codec::Gzip => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 2 + 64),
                flate2::Compression::default(),
            );
            e.write_all(data).map_err(|e| corrupt(codec, e))?;
            e.finish().map_err(|e| corrupt(codec, e))
        }
        Codec::Snappy => snappy_compress(data),
        Codec::Lz4 => {
            use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
            let info = FrameInfo::new()
                .block_size(BlockSize::Max64KB)
                .block_mode(BlockMode::Independent);
            let mut e =
                FrameEncoder::with_frame_info(info, Vec::with_capacity(data.len() / 2 + 64));
            e.write_all(data).map_err(|e| corrupt(codec, e))?;
            e.finish().map_err(|e| corrupt(codec, e))
        }
        Codec::Zstd => ZSTD.with(|z| {
            // One compression context per thread: creating one costs more than compressing a
            // small batch (the log cleaner recompresses every rebuilt batch).
            let mut z = z.borrow_mut();
            if z.is_none() {
                *z = Some(zstd::bulk::Compressor::new(3).map_err(|e| corrupt(codec, e))?);
            }
            let c = z.as_mut().expect("just set");
            c.compress(data).map_err(|e| corrupt(codec, e))
        }),
    }
}

/// Checks that an uncompressed v2 records section holds exactly `count` length-prefixed records.
pub fn check_records(raw: &[u8], count: i32) -> Result<(), BatchError> {
    let mut pos = 0usize;
    for i in 0..count.max(0) {
        let len = record_batch::read_varlong(raw, &mut pos)
            .ok_or_else(|| BatchError::Invalid(format!("record {i}: bad length varint")))?;
        if len < 0 || pos.saturating_add(len as usize) > raw.len() {
            return Err(BatchError::Invalid(format!(
                "record {i}: length {len} overruns the batch"
            )));
        }
        pos += len as usize;
    }
    if pos != raw.len() {
        return Err(BatchError::Invalid(format!(
            "{} bytes after the last of {count} records",
            raw.len() - pos
        )));
    }
    Ok(())
}

/// The decompressed records section of one whole, validated v2 batch.
pub fn batch_records(batch: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let h = record_batch::BatchHeader::parse(batch)?;
    if h.batch_length < record_batch::MIN_BATCH_LENGTH || batch.len() < h.total_len() {
        return Err(BatchError::BadLength(format!(
            "batchLength {} with {} bytes present",
            h.batch_length,
            batch.len()
        ))
        .into());
    }
    let codec =
        Codec::from_id(h.compression()).ok_or(CompressionError::UnknownCodec(h.compression()))?;
    let raw = decompress(codec, &batch[HEADER_LEN..h.total_len()], MAX_DECOMPRESSED)?;
    check_records(&raw, h.records_count)?;
    Ok(raw)
}

/// (offset delta, timestamp) of every record of one whole v2 batch, decompressing its records
/// section if needed. For the ListOffsets lookups that need a record's own offset (by timestamp,
/// max timestamp): they decode the one batch they land on, never a batch on the append or fetch
/// path.
pub fn record_timestamps(batch: &[u8]) -> Result<Vec<(i32, i64)>, CompressionError> {
    let h = record_batch::BatchHeader::parse(batch)?;
    let malformed = || BatchError::Invalid("malformed records section".into());
    if h.compression() == 0 {
        return Ok(record_batch::record_timestamps(batch).ok_or_else(malformed)?);
    }
    let raw = batch_records(batch)?;
    Ok(record_batch::records_timestamps(&h, &raw).ok_or_else(malformed)?)
}

/// Re-encodes one whole v2 batch (validated by the caller, exactly `total_len` bytes) with
/// `target`: the records section is decompressed, checked and recompressed; attributes' codec
/// bits, batchLength and CRC-32C are rewritten; every other header field is kept.
pub fn recompress_batch(batch: &[u8], target: Codec) -> Result<Vec<u8>, CompressionError> {
    let raw = batch_records(batch)?;
    let body = compress(target, &raw)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(&body);
    let len = (out.len() - LOG_OVERHEAD) as i32;
    out[record_batch::LENGTH_OFFSET..record_batch::LENGTH_OFFSET + 4]
        .copy_from_slice(&len.to_be_bytes());
    let at = record_batch::ATTRIBUTES_OFFSET;
    let attrs = i16::from_be_bytes([out[at], out[at + 1]]);
    let attrs = (attrs & !record_batch::ATTR_COMPRESSION_MASK) | target.id() as i16;
    out[at..at + 2].copy_from_slice(&attrs.to_be_bytes());
    let crc = record_batch::compute_crc(&out);
    out[record_batch::CRC_OFFSET..record_batch::CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Applies a topic's `compression.type` to a record set of v2 batches: `Ok(None)` when every
/// batch already uses `target` (store as received), else the re-encoded set. Each batch is
/// validated (length, magic, CRC-32C) before anything is decompressed.
pub fn conform(records: &[u8], target: Codec) -> Result<Option<Vec<u8>>, CompressionError> {
    let headers = record_batch::validate_all(records)?;
    if headers.iter().all(|h| h.compression() == target.id()) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(records.len());
    let mut pos = 0;
    for h in headers {
        let batch = &records[pos..pos + h.total_len()];
        pos += h.total_len();
        if h.compression() == target.id() {
            out.extend_from_slice(batch);
        } else {
            out.extend_from_slice(&recompress_batch(batch, target)?);
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::record_batch::{build_batch, validate_batch};

    const ALL: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    fn text(n: usize) -> Vec<u8> {
        (0..n).map(|i| b"compressible "[i % 13]).collect()
    }

    #[test]
    fn every_codec_round_trips() {
        for codec in ALL {
            for n in [0usize, 1, 100, 100_000] {
                let data = text(n);
                let c = compress(codec, &data).unwrap();
                assert_eq!(
                    decompress(codec, &c, MAX_DECOMPRESSED).unwrap(),
                    data,
                    "{codec:?} {n}"
                );
            }
        }
    }

    #[test]
    fn snappy_reads_raw_and_xerial() {
        let data = text(70_000);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(
            decompress(Codec::Snappy, &raw, MAX_DECOMPRESSED).unwrap(),
            data
        );
        let framed = compress(Codec::Snappy, &data).unwrap();
        assert_eq!(&framed[..8], XERIAL_MAGIC);
        // Three 32 KiB blocks.
        assert_eq!(
            decompress(Codec::Snappy, &framed, MAX_DECOMPRESSED).unwrap(),
            data
        );
    }

    #[test]
    fn decompression_is_bounded_and_garbage_refused() {
        let zeros = vec![0u8; 1 << 20];
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let c = compress(codec, &zeros).unwrap();
            assert_eq!(
                decompress(codec, &c, 1000),
                Err(CompressionError::TooLarge(1000)),
                "{codec:?}"
            );
            assert!(decompress(codec, b"definitely not compressed data", 1000).is_err());
        }
    }

    #[test]
    fn lz4_header_checksum_fix_for_magic_zero() {
        let data = text(5000);
        let good = compress(Codec::Lz4, &data).unwrap();
        // Break the header checksum the way KAFKA-3160 producers do (here: any other value).
        let mut broken = good.clone();
        broken[6] ^= 0x5a;
        assert!(decompress(Codec::Lz4, &broken, MAX_DECOMPRESSED).is_err());
        let fixed = fix_lz4_header(&broken).unwrap();
        assert_eq!(fixed, good);
        assert_eq!(
            decompress(Codec::Lz4, &fixed, MAX_DECOMPRESSED).unwrap(),
            data
        );
        assert_eq!(fix_lz4_header(b"not lz4 at all"), None);
        assert_eq!(fix_lz4_header(&good[..3]), None);
    }

    #[test]
    fn topic_compression_values() {
        assert_eq!(
            TopicCompression::parse("producer"),
            Some(TopicCompression::Producer)
        );
        assert_eq!(
            TopicCompression::parse("uncompressed"),
            Some(TopicCompression::Codec(Codec::None))
        );
        assert_eq!(
            TopicCompression::parse("zstd"),
            Some(TopicCompression::Codec(Codec::Zstd))
        );
        assert_eq!(TopicCompression::parse("brotli"), None);
        let zstd = "zstd".to_string();
        assert_eq!(
            TopicCompression::effective(Some(&zstd), "producer"),
            TopicCompression::Codec(Codec::Zstd)
        );
        assert_eq!(
            TopicCompression::effective(None, "gzip"),
            TopicCompression::Codec(Codec::Gzip)
        );
    }

    #[test]
    fn recompress_between_every_pair_keeps_the_records() {
        let plain = build_batch(
            0,
            &[
                (1000, Some(b"k"), b"value one value one"),
                (1005, None, b"v2"),
            ],
            7,
            1,
            3,
        );
        let raw = plain[HEADER_LEN..].to_vec();
        for from in ALL {
            let src = if from == Codec::None {
                plain.clone()
            } else {
                recompress_batch(&plain, from).unwrap()
            };
            let hs = validate_batch(&src).unwrap();
            assert_eq!(hs.compression(), from.id());
            for to in ALL {
                let out = conform(&src, to).unwrap();
                let out = match out {
                    None => {
                        assert_eq!(from, to);
                        src.clone()
                    }
                    Some(o) => o,
                };
                let h = validate_batch(&out).unwrap();
                assert_eq!(h.compression(), to.id(), "{from:?} -> {to:?}");
                assert_eq!(
                    (
                        h.records_count,
                        h.producer_id,
                        h.base_sequence,
                        h.max_timestamp
                    ),
                    (2, 7, 3, 1005)
                );
                assert_eq!(batch_records(&out).unwrap(), raw);
            }
        }
    }

    #[test]
    fn zstd_contexts_are_reused_safely() {
        let data = text(100_000);
        let good = compress(Codec::Zstd, &data).unwrap();
        let mut garbled = good.clone();
        let mid = garbled.len() / 2;
        garbled[mid] ^= 0xff;
        for bad in [&good[..good.len() / 2], &garbled[..]] {
            let _ = decompress(Codec::Zstd, bad, MAX_DECOMPRESSED);
            // A failed decode leaves nothing behind in the thread's context.
            assert_eq!(
                decompress(Codec::Zstd, &good, MAX_DECOMPRESSED).unwrap(),
                data
            );
        }
        assert!(decompress(Codec::Zstd, &good[..good.len() / 2], MAX_DECOMPRESSED).is_err());
        assert!(
            decompress(Codec::Zstd, &good, 1000).is_err(),
            "the output bound still holds"
        );
        assert_eq!(
            compress(Codec::Zstd, &data).unwrap(),
            good,
            "same frame as before"
        );
    }

    #[test]
    fn corrupt_compressed_batch_is_refused() {
        let plain = build_batch(0, &[(1, None, b"x")], -1, -1, -1);
        let mut gz = recompress_batch(&plain, Codec::Gzip).unwrap();
        // Damage the compressed body and fix the CRC so only the payload is wrong.
        let at = HEADER_LEN + 12;
        gz[at] ^= 0xff;
        let crc = record_batch::compute_crc(&gz);
        gz[record_batch::CRC_OFFSET..record_batch::CRC_OFFSET + 4]
            .copy_from_slice(&crc.to_be_bytes());
        assert!(conform(&gz, Codec::Zstd).is_err());
        // Wrong record count inside a well-compressed body.
        let mut two = plain.clone();
        two[record_batch::RECORDS_COUNT_OFFSET + 3] = 2;
        two[record_batch::LAST_OFFSET_DELTA_OFFSET + 3] = 1;
        let crc = record_batch::compute_crc(&two);
        two[record_batch::CRC_OFFSET..record_batch::CRC_OFFSET + 4]
            .copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            conform(&two, Codec::Gzip),
            Err(CompressionError::Batch(BatchError::Invalid(_)))
        ));
    }
}
