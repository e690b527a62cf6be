//! Legacy message formats and compression against a real broker: Produce v0/v2 with magic 0/1
//! message sets (plain and gzip-wrapped), Fetch v0/v2 down-conversion, ListOffsets v0, a
//! corrupt CRC answered with CORRUPT_MESSAGE, and `compression.type` re-encoding stored batches.

mod server_util;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use kafka_test_client::records::{encode_batch, record};
use ringbolt::protocol::compression::Codec;
use ringbolt::protocol::legacy::{Message, NO_TIMESTAMP, build_message_set, parse_message_set};
use ringbolt::protocol::record_batch::BatchHeader;
use server_util::*;

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn get_str(b: &mut Bytes) -> String {
    let n = b.get_i16() as usize;
    String::from_utf8(b.split_to(n).to_vec()).unwrap()
}

/// Produce v0–v2 of one message set; returns (error, base offset).
fn produce_old(c: &mut Client, version: i16, topic: &str, set: &[u8]) -> (i16, i64) {
    let mut b = BytesMut::new();
    b.put_i16(-1);
    b.put_i32(5000);
    b.put_i32(1);
    put_str(&mut b, topic);
    b.put_i32(1);
    b.put_i32(0);
    b.put_i32(set.len() as i32);
    b.put_slice(set);
    let mut r = c.raw_call(ApiKey::Produce, version, &b);
    assert_eq!(r.get_i32(), 1);
    assert_eq!(get_str(&mut r), topic);
    assert_eq!(r.get_i32(), 1);
    assert_eq!(r.get_i32(), 0);
    let err = r.get_i16();
    let base = r.get_i64();
    if version >= 2 {
        assert_eq!(r.get_i64(), -1, "log append time (CreateTime topic)");
    }
    if version >= 1 {
        assert_eq!(r.get_i32(), 0, "throttle time");
    }
    assert!(r.is_empty());
    (err, base)
}

/// Fetch v0–v3 of partition 0 from `offset`; returns (error, high watermark, message set).
fn fetch_old(c: &mut Client, version: i16, topic: &str, offset: i64) -> (i16, i64, Bytes) {
    let mut b = BytesMut::new();
    b.put_i32(-1);
    b.put_i32(100);
    b.put_i32(0);
    if version >= 3 {
        b.put_i32(1 << 20);
    }
    b.put_i32(1);
    put_str(&mut b, topic);
    b.put_i32(1);
    b.put_i32(0);
    b.put_i64(offset);
    b.put_i32(1 << 20);
    let mut r = c.raw_call(ApiKey::Fetch, version, &b);
    if version >= 1 {
        assert_eq!(r.get_i32(), 0);
    }
    assert_eq!(r.get_i32(), 1);
    assert_eq!(get_str(&mut r), topic);
    assert_eq!(r.get_i32(), 1);
    assert_eq!(r.get_i32(), 0);
    let err = r.get_i16();
    let hw = r.get_i64();
    let n = r.get_i32() as usize;
    let set = r.split_to(n);
    assert!(r.is_empty());
    (err, hw, set)
}

/// ListOffsets v0 for partition 0; returns (error, offsets).
fn list_offsets_v0(c: &mut Client, topic: &str, ts: i64) -> (i16, Vec<i64>) {
    let mut b = BytesMut::new();
    b.put_i32(-1);
    b.put_i32(1);
    put_str(&mut b, topic);
    b.put_i32(1);
    b.put_i32(0);
    b.put_i64(ts);
    b.put_i32(10);
    let mut r = c.raw_call(ApiKey::ListOffsets, 0, &b);
    assert_eq!(r.get_i32(), 1);
    assert_eq!(get_str(&mut r), topic);
    assert_eq!(r.get_i32(), 1);
    assert_eq!(r.get_i32(), 0);
    let err = r.get_i16();
    let n = r.get_i32();
    let offsets = (0..n).map(|_| r.get_i64()).collect();
    (err, offsets)
}

fn msgs(tag: &str, n: usize, ts: Option<i64>) -> Vec<Message> {
    (0..n)
        .map(|i| Message {
            offset: 0,
            timestamp: ts.map_or(NO_TIMESTAMP, |t| t + i as i64),
            key: (i % 2 == 1).then(|| format!("{tag}-k{i}").into_bytes()),
            value: Some(format!("{tag} value {i}").into_bytes()),
        })
        .collect()
}

#[test]
fn old_producers_and_consumers_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(c.create_topic("old", 1, &[], 5).topics[0].error_code, 0);

    let m0 = msgs("magic0", 3, None);
    let m1 = msgs("magic1", 4, Some(1_700_000_000_000));
    assert_eq!(
        produce_old(&mut c, 0, "old", &build_message_set(0, Codec::None, &m0)),
        (0, 0)
    );
    assert_eq!(
        produce_old(&mut c, 2, "old", &build_message_set(1, Codec::Gzip, &m1)),
        (0, 3)
    );
    // A corrupt CRC: CORRUPT_MESSAGE, nothing written, the connection keeps working.
    let mut bad = build_message_set(1, Codec::None, &m1);
    let last = bad.len() - 1;
    bad[last] ^= 0x20;
    assert_eq!(produce_old(&mut c, 1, "old", &bad).0, 2);

    // A modern consumer sees v2 batches: the wrapped set stayed gzip, timestamps kept
    // (magic 0 had none: -1).
    let (err, hw, records) = c.fetch("old", 0, 0, 11);
    assert_eq!((err, hw), (0, 7));
    let mut buf = records.clone();
    let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap();
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0].compression, Compression::None);
    assert_eq!(sets[1].compression, Compression::Gzip);
    let all: Vec<_> = sets.iter().flat_map(|s| s.records.iter()).collect();
    let want: Vec<&Message> = m0.iter().chain(&m1).collect();
    for (i, (r, w)) in all.iter().zip(&want).enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.timestamp, w.timestamp);
        assert_eq!(r.key.as_deref(), w.key.as_deref());
        assert_eq!(r.value.as_deref(), w.value.as_deref());
    }

    // Old consumers: magic 0 (Fetch v0/v1) and magic 1 (Fetch v2/v3), offsets preserved, from
    // the middle of the first batch.
    for version in 0..=3i16 {
        let (err, hw, set) = fetch_old(&mut c, version, "old", 1);
        assert_eq!((err, hw), (0, 7), "v{version}");
        let got = parse_message_set(&set).unwrap();
        assert_eq!(got.magic, if version >= 2 { 1 } else { 0 });
        assert_eq!(got.codec, Codec::None, "sent uncompressed");
        assert_eq!(got.messages.len(), 6);
        for (i, m) in got.messages.iter().enumerate() {
            let w = want[i + 1];
            assert_eq!(m.offset, i as i64 + 1);
            assert_eq!((&m.key, &m.value), (&w.key, &w.value));
            let ts = if version >= 2 {
                w.timestamp
            } else {
                NO_TIMESTAMP
            };
            assert_eq!(m.timestamp, ts);
        }
    }
    // Past the end: empty set, no error.
    assert_eq!(fetch_old(&mut c, 0, "old", 7).2.len(), 0);

    assert_eq!(list_offsets_v0(&mut c, "old", -1), (0, vec![7]));
    assert_eq!(list_offsets_v0(&mut c, "old", -2), (0, vec![0]));
    broker.shutdown().unwrap();
}

fn v2_batch(codec: Compression, n: usize) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| {
            record(
                i as i64,
                1_000 + i as i64,
                Some(Bytes::from(format!("key {i}"))),
                Some(Bytes::from(format!(
                    "compressible value {i} compressible value"
                ))),
            )
        })
        .collect();
    encode_batch(&records, codec)
}

#[test]
fn topic_compression_type_recompresses_stored_batches() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    for (topic, ctype) in [("z", "zstd"), ("u", "uncompressed"), ("p", "producer")] {
        let r = c.create_topic(topic, 1, &[("compression.type", ctype)], 5);
        assert_eq!(r.topics[0].error_code, 0, "{topic}");
    }
    assert_eq!(
        c.create_topic("bad", 1, &[("compression.type", "brotli")], 5)
            .topics[0]
            .error_code,
        40,
        "INVALID_CONFIG"
    );
    let cases = [
        ("z", Compression::Gzip, 4u8),
        ("u", Compression::Snappy, 0),
        ("p", Compression::Lz4, 3),
    ];
    for (topic, sent, stored_codec) in cases {
        let b = v2_batch(sent, 20);
        assert_eq!(c.produce(topic, 0, -1, b.clone(), 9), (0, 0), "{topic}");
        let (err, _, records) = c.fetch(topic, 0, 0, 11);
        assert_eq!(err, 0);
        let h = BatchHeader::parse(&records).unwrap();
        assert_eq!(h.compression(), stored_codec, "{topic}: stored codec");
        if stored_codec == 3 {
            assert_eq!(
                normalize(&records),
                normalize(&b),
                "producer: stored as received"
            );
        }
        let mut got = records.clone();
        let mut want = b.clone();
        let got = RecordBatchDecoder::decode(&mut got).unwrap();
        let want = RecordBatchDecoder::decode(&mut want).unwrap();
        let fields = |rs: &[Record]| -> Vec<_> {
            rs.iter()
                .map(|r| (r.offset, r.timestamp, r.key.clone(), r.value.clone()))
                .collect()
        };
        assert_eq!(
            fields(&got.records),
            fields(&want.records),
            "{topic}: same records"
        );
    }
    // A legacy gzip set into the zstd topic: converted, then recompressed.
    assert_eq!(
        produce_old(
            &mut c,
            2,
            "z",
            &build_message_set(1, Codec::Gzip, &msgs("x", 3, Some(9)))
        ),
        (0, 20)
    );
    let (_, _, records) = c.fetch("z", 0, 20, 11);
    assert_eq!(BatchHeader::parse(&records).unwrap().compression(), 4);
    broker.shutdown().unwrap();
}

#[test]
fn log_append_time_topics_down_convert_with_the_broker_time() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 1);
    let mut c = Client::connect(broker.local_addr());
    let r = c.create_topic("lat", 1, &[("message.timestamp.type", "LogAppendTime")], 5);
    assert_eq!(r.topics[0].error_code, 0);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let m = msgs("lat", 3, Some(42));
    assert_eq!(
        produce_old(&mut c, 1, "lat", &build_message_set(1, Codec::None, &m)),
        (0, 0)
    );
    // Fetch v2: magic 1 with the timestamp-type bit and the append time on every message.
    let (err, _, set) = fetch_old(&mut c, 2, "lat", 0);
    assert_eq!(err, 0);
    let got = parse_message_set(&set).unwrap();
    assert_eq!(got.messages.len(), 3);
    for msg in &got.messages {
        assert!(
            msg.timestamp >= before,
            "append time {} < {before}",
            msg.timestamp
        );
    }
    let attrs = set[8 + 4 + 4 + 1];
    assert_eq!(attrs & 0x08, 0x08, "LogAppendTime attribute bit");
    broker.shutdown().unwrap();
}
