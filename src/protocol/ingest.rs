//! What a produced record set goes through before the log sees it. No I/O here.
//!
//! The common case — v2 batches into a topic with `compression.type = producer` — shares the
//! request's bytes after a one-byte magic check: nothing is copied or decoded here (the log's
//! writer sets base offsets while copying into its DMA buffer). Two cases do more, both off that
//! path:
//! - a legacy message set (magic 0/1 at byte 16, sent by Produce v0–v2 clients) is converted to
//!   one v2 batch ([`legacy::to_v2_batch`]);
//! - a topic whose `compression.type` names a codec re-encodes every batch in another codec
//!   ([`compression::conform`]), which also checks that the compressed records decode.

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;

use crate::format::compression::{self, CompressionError, TopicCompression};
use crate::format::{record_batch, records};
use crate::protocol::legacy::{self, LegacyError};

/// Why a record set was refused before the append.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("legacy message set: {0}")]
    Legacy(#[from] LegacyError),
    #[error("compression.type: {0}")]
    Compression(#[from] CompressionError),
}

impl IngestError {
    /// Kafka's answer: CORRUPT_MESSAGE for every framing, CRC or codec failure.
    pub fn response_error(&self) -> ResponseError {
        ResponseError::CorruptMessage
    }

    /// The wire code of [`IngestError::response_error`].
    pub fn error_code(&self) -> i16 {
        self.response_error().code()
    }
}

/// Turns the records of one produced partition into what the log appends (see module docs).
/// The common case (v2 batches, the producer's compression kept) shares the request's bytes: the
/// log patches the broker-owned header fields as it copies them into its write buffer.
#[inline]
pub fn prepare(records: &Bytes, target: TopicCompression) -> Result<Bytes, IngestError> {
    if target == TopicCompression::Producer && legacy::magic_of(records).is_none_or(|m| m >= 2) {
        return Ok(records.clone());
    }
    convert(records, target).map(BytesMut::freeze)
}

/// Records refused by Kafka's per-record checks (`LogValidator`): the batch-relative index and
/// message of each, and the partition's error message (`processRecordErrors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordErrors {
    pub errors: Vec<(i32, String)>,
    pub message: String,
}

impl RecordErrors {
    /// INVALID_RECORD (87), Kafka's answer for a keyless record in a compacted topic.
    pub fn error_code(&self) -> i16 {
        ResponseError::InvalidRecord.code()
    }
}

/// Kafka's `LogValidator.validateKey` for a topic whose `cleanup.policy` includes `compact`:
/// every record needs a key. The records are decoded (decompressed if needed), so this runs only
/// for compacted topics, on the connection's shard. Like Kafka, the errors of the first batch
/// that has any are reported (record index within that batch), and nothing of the partition's
/// records is appended. Batches that do not even parse are left to the append's validation.
pub fn check_keys(records: &[u8], topic: &str, partition: i32) -> Result<(), RecordErrors> {
    let Ok(headers) = record_batch::validate_all(records) else {
        return Ok(());
    };
    let mut pos = 0;
    for h in headers {
        let batch = &records[pos..pos + h.total_len()];
        pos += h.total_len();
        if h.is_control() {
            continue;
        }
        let Ok((h, raw)) = records::decode(batch) else {
            return Ok(());
        };
        let Ok(recs) = records::parse_records(&h, &raw) else {
            return Ok(());
        };
        let errors: Vec<(i32, String)> = recs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.key.is_none())
            .map(|(i, _)| {
                (
                    i as i32,
                    format!(
                        "Compacted topic cannot accept message without key in topic partition {topic}-{partition}"
                    ),
                )
            })
            .collect();
        if !errors.is_empty() {
            let shown: Vec<String> = errors
                .iter()
                .take(3)
                .map(|(i, m)| format!("RecordError(batchIndex={i}, message='{m}')"))
                .collect();
            let message = format!(
                "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
                errors.len(),
                shown.join(", ")
            );
            return Err(RecordErrors { errors, message });
        }
    }
    Ok(())
}

#[cold]
fn convert(records: &[u8], target: TopicCompression) -> Result<BytesMut, IngestError> {
    let converted;
    let v2: &[u8] = match legacy::magic_of(records) {
        Some(m) if m < 2 => {
            converted = legacy::to_v2_batch(records)?;
            &converted
        }
        _ => records,
    };
    match target {
        TopicCompression::Producer => Ok(BytesMut::from(v2)),
        TopicCompression::Codec(c) => match compression::conform(v2, c)? {
            Some(re) => Ok(BytesMut::from(&re[..])),
            None => Ok(BytesMut::from(v2)),
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keyless_records_are_refused_with_kafkas_record_errors() {
        use crate::format::record_batch::build_batch;
        let good = build_batch(0, &[(1, Some(b"k"), b"v")], -1, -1, -1);
        assert_eq!(super::check_keys(&good, "t", 0), Ok(()));
        let mut two = good.clone();
        two.extend_from_slice(&build_batch(
            0,
            &[(1, Some(b"k"), b"v"), (1, None, b"v")],
            -1,
            -1,
            -1,
        ));
        let e = super::check_keys(&two, "t", 3).unwrap_err();
        assert_eq!(e.error_code(), 87);
        let m = "Compacted topic cannot accept message without key in topic partition t-3";
        assert_eq!(e.errors, vec![(1, m.to_string())]);
        assert_eq!(
            e.message,
            format!(
                "One or more records have been rejected due to 1 record errors in total, and only showing the first three errors at most: [RecordError(batchIndex=1, message='{m}')]"
            )
        );
    }

    use super::*;
    use crate::format::compression::Codec;
    use crate::format::record_batch::{build_batch, validate_all};
    use crate::protocol::legacy::{Message, build_message_set};

    #[test]
    fn producer_mode_keeps_bytes_and_legacy_is_converted() {
        let b = Bytes::from(build_batch(0, &[(1, None, b"x")], -1, -1, -1));
        let kept = prepare(&b, TopicCompression::Producer).unwrap();
        assert_eq!(&kept[..], &b[..]);
        assert_eq!(
            kept.as_ptr(),
            b.as_ptr(),
            "v2 batches are shared, not copied"
        );
        let set = build_message_set(
            1,
            Codec::Gzip,
            &[Message {
                offset: 0,
                timestamp: 5,
                key: None,
                value: Some(b"v".to_vec()),
            }],
        );
        let out = prepare(
            &Bytes::from(set.clone()),
            TopicCompression::Codec(Codec::Zstd),
        )
        .unwrap();
        let hs = validate_all(&out).unwrap();
        assert_eq!(hs[0].compression(), Codec::Zstd.id());
        assert_eq!(hs[0].max_timestamp, 5);
        let mut bad = set.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert_eq!(
            prepare(&Bytes::from(bad), TopicCompression::Producer)
                .unwrap_err()
                .error_code(),
            ResponseError::CorruptMessage.code()
        );
    }
}
