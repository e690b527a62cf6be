//! Legacy message sets (magic 0 and 1) and their conversion to and from v2 record batches.
//! No I/O here.
//!
//! Old clients (sarama with `config.Version` below 0.11, Kafka clients before 0.11) produce and
//! fetch *message sets* instead of record batches (the seed article, section 1.1.6):
//!
//! ```text
//! offset      i64   (producer: anything; magic 1 compressed inner sets: relative 0..n-1)
//! size        i32   bytes after this field
//! crc         u32   CRC-32 (IEEE) of magic..end
//! magic       i8    0 or 1
//! attributes  i8    bits 0-2 codec, bit 3 timestamp type (magic 1)
//! timestamp   i64   magic 1 only
//! key         i32 length (-1 = null) + bytes
//! value       i32 length (-1 = null) + bytes
//! ```
//!
//! A compressed message is a *wrapper*: its value is a whole message set compressed with the
//! codec in its attributes (inner messages are never compressed again). In magic 1 the inner
//! offsets are relative and the wrapper carries the absolute offset of the last inner message;
//! with `LogAppendTime` the wrapper's timestamp applies to every inner message.
//!
//! # What is converted where
//! - Produce v0–v2: the Produce handler hands the message set to [`to_v2_batch`], which checks
//!   every CRC (a mismatch is CORRUPT_MESSAGE), unwraps compressed wrappers and builds v2
//!   batches: one per compressed wrapper, in the wrapper's codec (storage keeps the producer's
//!   choice), and one per run of uncompressed messages of up to [`MAX_CONVERTED_BATCH`] bytes
//!   (Kafka size-checks each uncompressed legacy message on its own; one huge batch would trip
//!   `max.message.bytes`). Offset deltas are 0..n-1 (the log assigns offsets as for any batch);
//!   producer id/epoch/sequence -1. Timestamps are kept; magic 0 has none, so its records get -1
//!   (Kafka's `NO_TIMESTAMP`). Decompression of the whole set is bounded by
//!   `compression::MAX_DECOMPRESSED`. Cost: one decode and re-encode per message (and a
//!   decompress/compress for wrapped sets), on the connection's shard; `cargo bench --bench
//!   codec` measures it (`docs/perf/codec.md`).
//! - Fetch v0–v3: [`down_convert`] turns the stored v2 batches into a message set of magic 0
//!   (Fetch v0–v1) or 1 (Fetch v2–v3) with the original offsets; records before the fetch
//!   offset and control batches are dropped. Compressed batches are decompressed and sent
//!   **uncompressed** (no wrapper): old consumers read both, this saves the CPU of recompressing
//!   per fetch at the cost of bandwidth, and avoids codecs magic 0/1 never had (zstd). The v2
//!   fetch path is untouched (zero-copy); only v0–v3 fetches read records into memory.
//!
//! # What is lost
//! Record headers (magic 0/1 have none) when an old consumer reads what a new producer wrote;
//! timestamps for magic 0 consumers (and for magic 0 producers: stored as -1, so a modern
//! consumer sees "no timestamp" and time-based lookups skip them); producer ids and sequences
//! (old formats have none).

use crate::format::compression::{self, Codec, CompressionError, MAX_DECOMPRESSED};
use crate::format::record_batch::{
    self, BatchError, BatchHeader, HEADER_LEN, LOG_OVERHEAD, read_varlong, write_varlong,
};

/// Kafka's `NO_TIMESTAMP`.
pub const NO_TIMESTAMP: i64 = -1;
/// crc + magic + attributes + key length + value length.
const MIN_MESSAGE_SIZE_V0: usize = 4 + 1 + 1 + 4 + 4;
const ATTR_TIMESTAMP_TYPE: u8 = 0x08;

/// Why a legacy message set was refused (Kafka answers CORRUPT_MESSAGE).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegacyError {
    #[error("truncated message set: {0}")]
    Truncated(String),
    #[error("message CRC-32 mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("unsupported magic {0} in a message set")]
    BadMagic(i8),
    #[error("invalid message: {0}")]
    Invalid(String),
    #[error(transparent)]
    Compression(#[from] CompressionError),
    #[error(transparent)]
    Batch(#[from] BatchError),
}

/// One message of a legacy set, or one record to write into one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub offset: i64,
    /// [`NO_TIMESTAMP`] for magic 0.
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// A parsed (and unwrapped) message set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSet {
    /// Highest magic seen.
    pub magic: i8,
    /// The codec of the (last) compressed wrapper, if any.
    pub codec: Codec,
    pub messages: Vec<Message>,
    /// How `messages` arrived, in order: (codec, count) per top-level uncompressed message
    /// (count 1, [`Codec::None`]) or per compressed wrapper.
    pub units: Vec<(Codec, usize)>,
}

/// The magic byte of a record set: offset 16 in both a v0/v1 message and a v2 batch.
pub fn magic_of(records: &[u8]) -> Option<i8> {
    records.get(record_batch::MAGIC_OFFSET).map(|b| *b as i8)
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize, what: &str) -> Result<&'a [u8], LegacyError> {
    let end = pos
        .checked_add(n)
        .filter(|e| *e <= buf.len())
        .ok_or_else(|| LegacyError::Truncated(format!("{what} at byte {pos}")))?;
    let s = &buf[*pos..end];
    *pos = end;
    Ok(s)
}

fn i32_of(b: &[u8]) -> i32 {
    i32::from_be_bytes(b.try_into().expect("4 bytes"))
}
fn i64_of(b: &[u8]) -> i64 {
    i64::from_be_bytes(b.try_into().expect("8 bytes"))
}

fn bytes_field(buf: &[u8], pos: &mut usize, what: &str) -> Result<Option<Vec<u8>>, LegacyError> {
    let len = i32_of(take(buf, pos, 4, what)?);
    if len < -1 {
        return Err(LegacyError::Invalid(format!("{what} length {len}")));
    }
    if len == -1 {
        return Ok(None);
    }
    Ok(Some(take(buf, pos, len as usize, what)?.to_vec()))
}

/// Parses a message set, checking every CRC and unwrapping compressed messages (one level).
pub fn parse_message_set(buf: &[u8]) -> Result<MessageSet, LegacyError> {
    let mut set = MessageSet {
        magic: 0,
        codec: Codec::None,
        messages: Vec::new(),
        units: Vec::new(),
    };
    let mut budget = MAX_DECOMPRESSED;
    parse_into(buf, &mut set, false, &mut budget)?;
    if set.messages.is_empty() {
        return Err(LegacyError::Invalid("empty message set".into()));
    }
    Ok(set)
}

/// `budget`: decompressed bytes the whole set may still expand to (bounds memory).
fn parse_into(
    buf: &[u8],
    set: &mut MessageSet,
    inner: bool,
    budget: &mut usize,
) -> Result<(), LegacyError> {
    let mut pos = 0;
    while pos < buf.len() {
        let offset = i64_of(take(buf, &mut pos, 8, "offset")?);
        let size = i32_of(take(buf, &mut pos, 4, "message size")?);
        if size < MIN_MESSAGE_SIZE_V0 as i32 {
            return Err(LegacyError::Invalid(format!("message size {size}")));
        }
        let msg = take(buf, &mut pos, size as usize, "message")?;
        let stored = u32::from_be_bytes(msg[..4].try_into().expect("4 bytes"));
        let computed = crc32fast::hash(&msg[4..]);
        if stored != computed {
            return Err(LegacyError::BadCrc { stored, computed });
        }
        let magic = msg[4] as i8;
        let attrs = msg[5];
        let mut p = 6;
        let timestamp = match magic {
            0 => NO_TIMESTAMP,
            1 => i64_of(take(msg, &mut p, 8, "timestamp")?),
            m => return Err(LegacyError::BadMagic(m)),
        };
        set.magic = set.magic.max(magic);
        let key = bytes_field(msg, &mut p, "key")?;
        let value = bytes_field(msg, &mut p, "value")?;
        if p != msg.len() {
            return Err(LegacyError::Invalid(format!(
                "{} bytes after the value",
                msg.len() - p
            )));
        }
        let codec_id = attrs & 0x07;
        if codec_id == 0 {
            set.messages.push(Message {
                offset,
                timestamp,
                key,
                value,
            });
            if !inner {
                set.units.push((Codec::None, 1));
            }
            continue;
        }
        if inner {
            return Err(LegacyError::Invalid("nested compressed message".into()));
        }
        let codec = Codec::from_id(codec_id).ok_or(CompressionError::UnknownCodec(codec_id))?;
        set.codec = codec;
        let Some(value) = value else {
            return Err(LegacyError::Invalid(
                "compressed message without a value".into(),
            ));
        };
        let fixed = if magic == 0 && codec == Codec::Lz4 {
            compression::fix_lz4_header(&value)
        } else {
            None
        };
        let raw = compression::decompress(codec, fixed.as_deref().unwrap_or(&value), *budget)?;
        *budget -= raw.len();
        let first = set.messages.len();
        parse_into(&raw, set, true, budget)?;
        set.units.push((codec, set.messages.len() - first));
        if magic == 1 && attrs & ATTR_TIMESTAMP_TYPE != 0 {
            for m in &mut set.messages[first..] {
                m.timestamp = timestamp;
            }
        }
    }
    Ok(())
}

/// Encodes records as the body of an (uncompressed) v2 batch; offset deltas 0..n-1.
fn v2_records(messages: &[Message], base_ts: i64) -> Vec<u8> {
    let mut body = Vec::new();
    let mut rec = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        rec.clear();
        rec.push(0u8);
        write_varlong(&mut rec, m.timestamp.wrapping_sub(base_ts));
        write_varlong(&mut rec, i as i64);
        for field in [&m.key, &m.value] {
            match field {
                Some(b) => {
                    write_varlong(&mut rec, b.len() as i64);
                    rec.extend_from_slice(b);
                }
                None => write_varlong(&mut rec, -1),
            }
        }
        write_varlong(&mut rec, 0); // no headers
        write_varlong(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    body
}

/// Builds one v2 batch (base offset 0, no producer id) holding `messages`, compressed with
/// `codec`.
pub fn build_v2_batch(messages: &[Message], codec: Codec) -> Result<Vec<u8>, LegacyError> {
    if messages.is_empty() {
        return Err(LegacyError::Invalid("no records".into()));
    }
    let base_ts = messages[0].timestamp;
    let max_ts = messages
        .iter()
        .map(|m| m.timestamp)
        .max()
        .unwrap_or(base_ts);
    let body = compression::compress(codec, &v2_records(messages, base_ts))?;
    let mut b = Vec::with_capacity(HEADER_LEN + body.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2);
    b.extend_from_slice(&[0; 4]); // crc
    b.extend_from_slice(&(codec.id() as i16).to_be_bytes());
    b.extend_from_slice(&((messages.len() - 1) as i32).to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&(messages.len() as i32).to_be_bytes());
    b.extend_from_slice(&body);
    let crc = record_batch::compute_crc(&b);
    b[record_batch::CRC_OFFSET..record_batch::CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(b)
}

/// Uncompressed messages are gathered into v2 batches of at most this many record bytes, so a
/// large uncompressed set (each of whose messages Kafka would size-check on its own) does not
/// become one batch above `max.message.bytes`.
pub const MAX_CONVERTED_BATCH: usize = 256 * 1024;

/// Produce v0–v2: a legacy message set → v2 batches (see the module docs): each compressed
/// wrapper becomes one batch in its codec; runs of uncompressed messages become uncompressed
/// batches of up to [`MAX_CONVERTED_BATCH`] bytes of values and keys.
pub fn to_v2_batch(message_set: &[u8]) -> Result<Vec<u8>, LegacyError> {
    let set = parse_message_set(message_set)?;
    let mut out = Vec::with_capacity(message_set.len() + 64);
    let mut at = 0;
    let mut run_start = 0;
    let mut run_bytes = 0usize;
    let flush = |out: &mut Vec<u8>, msgs: &[Message]| -> Result<(), LegacyError> {
        if !msgs.is_empty() {
            out.extend_from_slice(&build_v2_batch(msgs, Codec::None)?);
        }
        Ok(())
    };
    for &(codec, n) in &set.units {
        if codec != Codec::None {
            flush(&mut out, &set.messages[run_start..at])?;
            if n > 0 {
                out.extend_from_slice(&build_v2_batch(&set.messages[at..at + n], codec)?);
            }
            at += n;
            run_start = at;
            run_bytes = 0;
            continue;
        }
        let m = &set.messages[at];
        let size = m.key.as_ref().map_or(0, |k| k.len()) + m.value.as_ref().map_or(0, |v| v.len());
        if run_bytes > 0 && run_bytes + size > MAX_CONVERTED_BATCH {
            flush(&mut out, &set.messages[run_start..at])?;
            run_start = at;
            run_bytes = 0;
        }
        run_bytes += size + 16;
        at += n;
    }
    flush(&mut out, &set.messages[run_start..at])?;
    if out.is_empty() {
        return Err(LegacyError::Invalid("no records".into()));
    }
    Ok(out)
}

/// Appends one uncompressed message of `magic` (0 or 1).
pub fn write_message(out: &mut Vec<u8>, magic: i8, attrs: u8, m: &Message) {
    let klen = m.key.as_ref().map_or(0, |k| k.len());
    let vlen = m.value.as_ref().map_or(0, |v| v.len());
    let size = MIN_MESSAGE_SIZE_V0 + if magic >= 1 { 8 } else { 0 } + klen + vlen;
    out.extend_from_slice(&m.offset.to_be_bytes());
    out.extend_from_slice(&(size as i32).to_be_bytes());
    let crc_at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(magic as u8);
    out.push(attrs);
    if magic >= 1 {
        out.extend_from_slice(&m.timestamp.to_be_bytes());
    }
    for field in [&m.key, &m.value] {
        match field {
            Some(b) => {
                out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                out.extend_from_slice(b);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    let crc = crc32fast::hash(&out[crc_at + 4..]);
    out[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Builds a message set of `magic` the way an old producer would: uncompressed, or one wrapper
/// compressed with `codec` (inner offsets 0..n-1, relative for magic 1). Tests and tools.
pub fn build_message_set(magic: i8, codec: Codec, messages: &[Message]) -> Vec<u8> {
    let mut inner = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let m = Message {
            offset: if codec == Codec::None {
                m.offset
            } else {
                i as i64
            },
            ..m.clone()
        };
        write_message(&mut inner, magic, 0, &m);
    }
    if codec == Codec::None {
        return inner;
    }
    let wrapper = Message {
        offset: messages.len() as i64 - 1,
        timestamp: messages
            .iter()
            .map(|m| m.timestamp)
            .max()
            .unwrap_or(NO_TIMESTAMP),
        key: None,
        value: Some(compression::compress(codec, &inner).expect("compressing in memory")),
    };
    let mut out = Vec::new();
    write_message(&mut out, magic, codec.id(), &wrapper);
    out
}

/// Fetch v0–v3: stored v2 batches (whole, as read from the log) → a message set of `magic`
/// (0 or 1) holding every record at or after `fetch_offset`, offsets preserved, uncompressed.
/// A trailing partial batch is ignored.
pub fn down_convert(batches: &[u8], fetch_offset: i64, magic: i8) -> Result<Vec<u8>, LegacyError> {
    let mut out = Vec::with_capacity(batches.len() + batches.len() / 4);
    let mut pos = 0;
    while pos + HEADER_LEN <= batches.len() {
        let h = BatchHeader::parse(&batches[pos..])?;
        if h.batch_length < record_batch::MIN_BATCH_LENGTH || pos + h.total_len() > batches.len() {
            break;
        }
        let batch = &batches[pos..pos + h.total_len()];
        pos += h.total_len();
        if h.magic != 2 {
            return Err(LegacyError::BadMagic(h.magic));
        }
        if h.is_control() || h.last_offset() < fetch_offset {
            continue;
        }
        let raw = compression::batch_records(batch)?;
        let attrs = if magic >= 1 && h.is_log_append_time() {
            ATTR_TIMESTAMP_TYPE
        } else {
            0
        };
        let mut p = 0;
        for _ in 0..h.records_count {
            let bad =
                || LegacyError::Invalid(format!("malformed record in batch at {}", h.base_offset));
            let len = read_varlong(&raw, &mut p).ok_or_else(bad)?;
            let end = p
                .checked_add(len as usize)
                .filter(|e| *e <= raw.len())
                .ok_or_else(bad)?;
            let rec = &raw[..end];
            p += 1; // attributes
            let ts_delta = read_varlong(rec, &mut p).ok_or_else(bad)?;
            let off_delta = read_varlong(rec, &mut p).ok_or_else(bad)?;
            let field = |p: &mut usize| -> Result<Option<Vec<u8>>, LegacyError> {
                let n = read_varlong(rec, p).ok_or_else(bad)?;
                if n < 0 {
                    return Ok(None);
                }
                let e = p
                    .checked_add(n as usize)
                    .filter(|e| *e <= end)
                    .ok_or_else(bad)?;
                let v = rec[*p..e].to_vec();
                *p = e;
                Ok(Some(v))
            };
            let key = field(&mut p)?;
            let value = field(&mut p)?;
            p = end;
            let offset = h.base_offset + off_delta;
            if offset < fetch_offset {
                continue;
            }
            let timestamp = if magic == 0 {
                NO_TIMESTAMP
            } else if h.is_log_append_time() {
                h.max_timestamp
            } else {
                h.base_timestamp.wrapping_add(ts_delta)
            };
            write_message(
                &mut out,
                magic,
                attrs,
                &Message {
                    offset,
                    timestamp,
                    key,
                    value,
                },
            );
        }
    }
    Ok(out)
}

/// Length of the longest run of whole messages at the start of a message set (offset i64,
/// size i32, message) that fits in `limit` bytes; with `min_one`, at least the first message
/// whatever its size. Fetch v3 uses it to keep a down-converted partition within its byte limit.
pub fn fitting_prefix(set: &[u8], limit: usize, min_one: bool) -> usize {
    let mut end = 0;
    while end + 12 <= set.len() {
        let size = i32_of(&set[end + 8..end + 12]);
        let Some(next) = usize::try_from(size)
            .ok()
            .map(|n| end + 12 + n)
            .filter(|n| *n <= set.len())
        else {
            break;
        };
        if next > limit && !(min_one && end == 0) {
            break;
        }
        end = next;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::record_batch::{set_base_offset, validate_batch};

    #[test]
    fn fitting_prefix_keeps_whole_messages_within_the_limit() {
        let m = msgs(3, true);
        let set = build_message_set(1, Codec::None, &m);
        let mut ends = Vec::new();
        let mut one = Vec::new();
        for msg in &m {
            write_message(&mut one, 1, 0, msg);
            ends.push(one.len());
        }
        assert_eq!(one, set);
        assert_eq!(fitting_prefix(&set, set.len(), false), set.len());
        assert_eq!(fitting_prefix(&set, usize::MAX, false), set.len());
        assert_eq!(fitting_prefix(&set, ends[1], false), ends[1]);
        assert_eq!(fitting_prefix(&set, ends[1] - 1, false), ends[0]);
        assert_eq!(fitting_prefix(&set, ends[0] - 1, false), 0);
        assert_eq!(fitting_prefix(&set, 0, true), ends[0]);
        assert_eq!(fitting_prefix(&set, ends[1] - 1, true), ends[0]);
        // A trailing partial message never counts.
        assert_eq!(
            fitting_prefix(&set[..ends[1] + 5], usize::MAX, false),
            ends[1]
        );
        assert_eq!(fitting_prefix(&set[..5], usize::MAX, true), 0);
    }

    fn msgs(n: usize, ts: bool) -> Vec<Message> {
        (0..n)
            .map(|i| Message {
                offset: 1000 + i as i64, // producers send junk offsets; the log assigns
                timestamp: if ts {
                    1_700_000_000_000 + i as i64
                } else {
                    NO_TIMESTAMP
                },
                key: if i % 3 == 0 {
                    None
                } else {
                    Some(format!("k{i}").into_bytes())
                },
                value: if i == 4 {
                    None
                } else {
                    Some(format!("value {i} value").into_bytes())
                },
            })
            .collect()
    }

    fn with_offsets(m: &[Message], base: i64) -> Vec<Message> {
        m.iter()
            .enumerate()
            .map(|(i, m)| Message {
                offset: base + i as i64,
                ..m.clone()
            })
            .collect()
    }

    #[test]
    fn produce_convert_and_fetch_down_convert_round_trip() {
        for magic in [0i8, 1] {
            for codec in [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4] {
                let m = msgs(7, magic == 1);
                let set = build_message_set(magic, codec, &m);
                let parsed = parse_message_set(&set).unwrap();
                assert_eq!((parsed.magic, parsed.codec), (magic, codec));
                let mut batch = to_v2_batch(&set).unwrap();
                let h = validate_batch(&batch).unwrap();
                assert_eq!(h.records_count, 7);
                assert_eq!(h.compression(), codec.id(), "producer's codec kept");
                set_base_offset(&mut batch, 40);
                let want = with_offsets(&m, 40);
                for to_magic in [0i8, 1] {
                    let down = down_convert(&batch, 0, to_magic).unwrap();
                    let back = parse_message_set(&down).unwrap();
                    assert_eq!(back.codec, Codec::None);
                    let expect: Vec<Message> = want
                        .iter()
                        .map(|w| Message {
                            timestamp: if to_magic == 0 {
                                NO_TIMESTAMP
                            } else {
                                w.timestamp
                            },
                            ..w.clone()
                        })
                        .collect();
                    assert_eq!(
                        back.messages, expect,
                        "magic {magic} {codec:?} -> {to_magic}"
                    );
                }
                // From the middle of the batch: earlier records are dropped, offsets kept.
                let down = down_convert(&batch, 43, 1).unwrap();
                let back = parse_message_set(&down).unwrap();
                assert_eq!(back.messages.first().unwrap().offset, 43);
                assert_eq!(back.messages.len(), 4);
            }
        }
    }

    #[test]
    fn large_uncompressed_sets_are_split_and_wrappers_kept_apart() {
        let big: Vec<Message> = (0..40)
            .map(|i| Message {
                offset: i,
                timestamp: i,
                key: None,
                value: Some(vec![b'x'; 20_000]),
            })
            .collect();
        let mut set = build_message_set(1, Codec::None, &big);
        set.extend_from_slice(&build_message_set(1, Codec::Gzip, &big[..3]));
        set.extend_from_slice(&build_message_set(1, Codec::None, &big[..1]));
        let out = to_v2_batch(&set).unwrap();
        let hs = record_batch::validate_all(&out).unwrap();
        let shape: Vec<(u8, i32)> = hs
            .iter()
            .map(|h| (h.compression(), h.records_count))
            .collect();
        // 40 x 20 KB uncompressed: 13 + 13 + 13 + 1 under 256 KiB each; the gzip wrapper alone;
        // then the trailing uncompressed message.
        assert_eq!(
            shape,
            vec![(0, 13), (0, 13), (0, 13), (0, 1), (1, 3), (0, 1)]
        );
    }

    proptest::proptest! {
        /// Hostile bytes never panic the parsers: an error or a result, nothing else.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
                                flip in 0usize..400, offset in -5i64..50) {
            let _ = parse_message_set(&bytes);
            let _ = to_v2_batch(&bytes);
            let _ = down_convert(&bytes, offset, 1);
            for v in 0..=3 {
                let _ = crate::protocol::legacy_api::decode_fetch(&bytes, v);
            }
            let _ = crate::protocol::legacy_api::decode_produce(&bytes::Bytes::from(bytes.clone()));
            let _ = crate::protocol::legacy_api::decode_list_offsets_v0(&bytes);
            for v in 0..=1 {
                let _ = crate::protocol::legacy_api::decode_offset_commit_v0_v1(&bytes, v);
            }
            // Valid structures with one byte flipped.
            let mut set = build_message_set(1, Codec::Gzip, &msgs(3, true));
            let i = flip % set.len();
            set[i] ^= 0xa5;
            let _ = to_v2_batch(&set);
            let mut b = to_v2_batch(&build_message_set(0, Codec::None, &msgs(3, false))).unwrap();
            let i = flip % b.len();
            b[i] ^= 0xa5;
            let _ = down_convert(&b, offset, 0);
        }
    }

    #[test]
    fn magic_zero_has_no_timestamps() {
        let batch = to_v2_batch(&build_message_set(0, Codec::None, &msgs(3, false))).unwrap();
        let h = validate_batch(&batch).unwrap();
        assert_eq!(
            (h.base_timestamp, h.max_timestamp),
            (NO_TIMESTAMP, NO_TIMESTAMP)
        );
        assert_eq!(
            record_batch::record_timestamps(&batch).unwrap(),
            vec![(0, -1), (1, -1), (2, -1)]
        );
    }

    #[test]
    fn down_converts_compressed_and_log_append_time_batches() {
        let b = record_batch::build_batch(
            10,
            &[(5, Some(b"a"), b"one"), (9, None, b"two")],
            -1,
            -1,
            -1,
        );
        let mut z = compression::recompress_batch(&b, Codec::Zstd).unwrap();
        record_batch::set_log_append_time(&mut z, 777);
        let mut two = b.clone();
        set_base_offset(&mut two, 12);
        z.extend_from_slice(&two);
        z.extend_from_slice(&two[..20]); // partial trailing batch: ignored
        let back = parse_message_set(&down_convert(&z, 11, 1).unwrap()).unwrap();
        let got: Vec<(i64, i64)> = back
            .messages
            .iter()
            .map(|m| (m.offset, m.timestamp))
            .collect();
        assert_eq!(got, vec![(11, 777), (12, 5), (13, 9)]);
    }

    #[test]
    fn crc_and_framing_errors_are_refused() {
        let set = build_message_set(1, Codec::None, &msgs(2, true));
        let mut bad = set.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            parse_message_set(&bad),
            Err(LegacyError::BadCrc { .. })
        ));
        assert!(matches!(
            to_v2_batch(&set[..set.len() - 3]),
            Err(LegacyError::Truncated(_))
        ));
        let gz = build_message_set(0, Codec::Gzip, &msgs(2, false));
        let mut bad = gz.clone();
        bad[40] ^= 0x55; // inside the compressed value: CRC catches it first
        assert!(to_v2_batch(&bad).is_err());
        assert!(parse_message_set(&[]).is_err());
        let mut m2 = set.clone();
        m2[16] = 2;
        assert!(parse_message_set(&m2).is_err());
    }
}
