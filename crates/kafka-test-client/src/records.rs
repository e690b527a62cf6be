//! v2 record batches for tests: built with kafka-protocol's encoder, split and compared by bytes.
//!
//! (loadgen builds its batches by hand, for speed; see its `batch.rs`.)

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A plain record (no producer id, create time) at `offset` within its batch. Its sequence is
/// its offset: the encoder starts a new batch where `offset - sequence` changes, so records made
/// with 0, 1, 2, … stay in one batch.
pub fn record(offset: i64, timestamp: i64, key: Option<Bytes>, value: Option<Bytes>) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: offset as i32,
        timestamp,
        key,
        value,
        headers: Default::default(),
    }
}

/// Encodes `records` as v2 batches with `compression`.
pub fn encode_batch(records: &[Record], compression: Compression) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("record batch encodes");
    buf.freeze()
}

/// A v2 record batch with `n` records, values `"{tag}-{i}"`, keys on even records, one header,
/// timestamps from `timestamp` on.
pub fn batch(tag: &str, n: usize, timestamp: i64) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            headers: [(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"v")),
            )]
            .into_iter()
            .collect(),
            ..record(
                i as i64,
                timestamp + i as i64,
                (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
                Some(Bytes::from(format!("{tag}-{i}"))),
            )
        })
        .collect();
    encode_batch(&records, Compression::None)
}

/// Splits concatenated v2 batches into (base offset, batch bytes); a partial trailing batch is
/// dropped.
pub fn split_batches(mut b: &[u8]) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 12 {
        let base = i64::from_be_bytes(b[..8].try_into().unwrap());
        let len = i32::from_be_bytes(b[8..12].try_into().unwrap()) as usize + 12;
        if b.len() < len {
            break; // partial trailing batch
        }
        out.push((base, b[..len].to_vec()));
        b = &b[len..];
    }
    out
}

/// A batch with the broker-owned header fields (base offset, partition leader epoch) zeroed.
pub fn normalize(batch: &[u8]) -> Vec<u8> {
    let mut v = batch.to_vec();
    v[..8].fill(0);
    v[12..16].fill(0);
    v
}
