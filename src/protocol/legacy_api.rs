//! Hand-written codecs for the request versions kafka-protocol no longer generates (it follows
//! Kafka 4, which removed them, KIP-896): Produce v0–v2, Fetch v0–v3, ListOffsets v0 and
//! OffsetCommit v0–v1. No I/O.
//!
//! Requests are decoded into kafka-protocol's own request structs, so the handlers run the same
//! code for every version; only the response encoding differs. All of these versions use request
//! header v1 and response header v0 and are not flexible (plain `i16`-length strings, `i32`-length
//! arrays and bytes). Layouts (from Kafka 3.x's JSON schemas):
//!
//! ```text
//! Produce v0-2    acks i16, timeout i32, [topic string, [partition i32, records bytes]]
//!   response      [topic string, [partition i32, error i16, base_offset i64,
//!                  log_append_time i64 (v2)]], throttle_time i32 (v1+)
//! Fetch v0-3      replica i32, max_wait i32, min_bytes i32, max_bytes i32 (v3),
//!                 [topic string, [partition i32, fetch_offset i64, partition_max_bytes i32]]
//!   response      throttle_time i32 (v1+), [topic string, [partition i32, error i16,
//!                 high_watermark i64, records bytes]]
//! ListOffsets v0  replica i32, [topic string, [partition i32, timestamp i64, max_num_offsets i32]]
//!   response      [topic string, [partition i32, error i16, old_style_offsets [i64]]]
//! OffsetCommit v0-1  group string, generation i32 (v1), member string (v1),
//!                 [topic string, [partition i32, offset i64, commit_timestamp i64 (v1),
//!                  metadata nullable string]]
//!   response      [topic string, [partition i32, error i16]]
//! ```
//!
//! The OffsetCommit v0–v1 response has exactly the v2 layout (throttle time came with v3), so it
//! is encoded by kafka-protocol at v2. OffsetFetch v0 has exactly the v1 layouts (v1 only moved
//! the offsets from ZooKeeper into Kafka) and needs no codec here.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::GroupId;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::produce_response::ProduceResponse;
use kafka_protocol::protocol::StrBytes;

use crate::protocol::frame;

/// A request body that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| DecodeError(format!("truncated {what} at byte {}", self.pos)))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn i16(&mut self, what: &str) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(
            self.take(2, what)?.try_into().expect("2"),
        ))
    }
    fn i32(&mut self, what: &str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(
            self.take(4, what)?.try_into().expect("4"),
        ))
    }
    fn i64(&mut self, what: &str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(
            self.take(8, what)?.try_into().expect("8"),
        ))
    }
    fn string(&mut self, what: &str) -> Result<StrBytes, DecodeError> {
        let n = self.i16(what)?;
        if n < 0 {
            return Err(DecodeError(format!("null {what}")));
        }
        let b = self.take(n as usize, what)?;
        let s = std::str::from_utf8(b).map_err(|_| DecodeError(format!("{what} is not UTF-8")))?;
        Ok(StrBytes::from_string(s.to_string()))
    }
    fn nullable_string(&mut self, what: &str) -> Result<Option<StrBytes>, DecodeError> {
        let start = self.pos;
        if self.i16(what)? < 0 {
            return Ok(None);
        }
        self.pos = start;
        self.string(what).map(Some)
    }
    /// An array length; each element needs at least `min_elem` bytes (bounds allocation).
    fn array_len(&mut self, what: &str, min_elem: usize) -> Result<usize, DecodeError> {
        let n = self.i32(what)?;
        if n < 0 {
            return Ok(0);
        }
        let n = n as usize;
        if n.saturating_mul(min_elem) > self.buf.len() - self.pos {
            return Err(DecodeError(format!("{what}: {n} elements do not fit")));
        }
        Ok(n)
    }
    fn nullable_bytes(&mut self, body: &Bytes, what: &str) -> Result<Option<Bytes>, DecodeError> {
        let n = self.i32(what)?;
        if n < 0 {
            return Ok(None);
        }
        let start = self.pos;
        self.take(n as usize, what)?;
        Ok(Some(body.slice(start..self.pos)))
    }
    fn finish(&self) -> Result<(), DecodeError> {
        if self.pos != self.buf.len() {
            return Err(DecodeError(format!(
                "{} trailing bytes",
                self.buf.len() - self.pos
            )));
        }
        Ok(())
    }
}

/// Produce v0–v2 → kafka-protocol's `ProduceRequest` (records shared with `body`).
pub fn decode_produce(body: &Bytes) -> Result<ProduceRequest, DecodeError> {
    let mut r = Reader { buf: body, pos: 0 };
    let acks = r.i16("acks")?;
    let timeout_ms = r.i32("timeout")?;
    let n = r.array_len("topics", 6)?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.string("topic name")?;
        let np = r.array_len("partitions", 8)?;
        let mut parts = Vec::with_capacity(np);
        for _ in 0..np {
            let index = r.i32("partition")?;
            let records = r.nullable_bytes(body, "records")?;
            parts.push(
                PartitionProduceData::default()
                    .with_index(index)
                    .with_records(records),
            );
        }
        topics.push(
            TopicProduceData::default()
                .with_name(TopicName(name))
                .with_partition_data(parts),
        );
    }
    r.finish()?;
    Ok(ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(topics))
}

fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len() as i16);
    buf.put_slice(s.as_bytes());
}

/// A Produce v0–v2 response frame (size prefix and response header v0 included).
pub fn encode_produce_response(correlation_id: i32, version: i16, resp: &ProduceResponse) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    frame::start_frame(&mut buf, correlation_id, 0);
    buf.put_i32(resp.responses.len() as i32);
    for t in &resp.responses {
        put_string(&mut buf, t.name.0.as_str());
        buf.put_i32(t.partition_responses.len() as i32);
        for p in &t.partition_responses {
            buf.put_i32(p.index);
            buf.put_i16(p.error_code);
            buf.put_i64(p.base_offset);
            if version >= 2 {
                buf.put_i64(p.log_append_time_ms);
            }
        }
    }
    if version >= 1 {
        buf.put_i32(resp.throttle_time_ms);
    }
    frame::finish_frame(&mut buf);
    buf.freeze()
}

/// Fetch v0–v3 → kafka-protocol's `FetchRequest` (no session; `max_bytes` i32::MAX before v3).
pub fn decode_fetch(body: &[u8], version: i16) -> Result<FetchRequest, DecodeError> {
    let mut r = Reader { buf: body, pos: 0 };
    let replica_id = r.i32("replica id")?;
    let max_wait_ms = r.i32("max wait")?;
    let min_bytes = r.i32("min bytes")?;
    let max_bytes = if version >= 3 {
        r.i32("max bytes")?
    } else {
        i32::MAX
    };
    let n = r.array_len("topics", 6)?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.string("topic name")?;
        let np = r.array_len("partitions", 16)?;
        let mut parts = Vec::with_capacity(np);
        for _ in 0..np {
            let partition = r.i32("partition")?;
            let fetch_offset = r.i64("fetch offset")?;
            let partition_max_bytes = r.i32("partition max bytes")?;
            parts.push(
                FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(fetch_offset)
                    .with_partition_max_bytes(partition_max_bytes),
            );
        }
        topics.push(
            FetchTopic::default()
                .with_topic(TopicName(name))
                .with_partitions(parts),
        );
    }
    r.finish()?;
    Ok(FetchRequest::default()
        .with_replica_id(BrokerId(replica_id))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_topics(topics))
}

/// One partition of a Fetch v0–v3 response; `records` is already a legacy message set.
pub struct LegacyFetchPartition {
    pub partition: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub records: Vec<u8>,
}

/// A Fetch v0–v3 response frame.
pub fn encode_fetch_response(
    correlation_id: i32,
    version: i16,
    topics: &[(String, Vec<LegacyFetchPartition>)],
) -> Bytes {
    let len: usize = topics
        .iter()
        .flat_map(|(_, ps)| ps.iter().map(|p| p.records.len() + 32))
        .sum();
    let mut buf = BytesMut::with_capacity(64 + len);
    frame::start_frame(&mut buf, correlation_id, 0);
    if version >= 1 {
        buf.put_i32(0); // throttle time
    }
    buf.put_i32(topics.len() as i32);
    for (name, parts) in topics {
        put_string(&mut buf, name);
        buf.put_i32(parts.len() as i32);
        for p in parts {
            buf.put_i32(p.partition);
            buf.put_i16(p.error_code);
            buf.put_i64(p.high_watermark);
            buf.put_i32(p.records.len() as i32);
            buf.put_slice(&p.records);
        }
    }
    frame::finish_frame(&mut buf);
    buf.freeze()
}

/// ListOffsets v0 → kafka-protocol's `ListOffsetsRequest` plus each partition's
/// `max_num_offsets`, in request order.
pub fn decode_list_offsets_v0(body: &[u8]) -> Result<(ListOffsetsRequest, Vec<i32>), DecodeError> {
    let mut r = Reader { buf: body, pos: 0 };
    let replica_id = r.i32("replica id")?;
    let n = r.array_len("topics", 6)?;
    let mut topics = Vec::with_capacity(n);
    let mut maxes = Vec::new();
    for _ in 0..n {
        let name = r.string("topic name")?;
        let np = r.array_len("partitions", 16)?;
        let mut parts = Vec::with_capacity(np);
        for _ in 0..np {
            let partition = r.i32("partition")?;
            let timestamp = r.i64("timestamp")?;
            maxes.push(r.i32("max num offsets")?);
            parts.push(
                ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(timestamp),
            );
        }
        topics.push(
            ListOffsetsTopic::default()
                .with_name(TopicName(name))
                .with_partitions(parts),
        );
    }
    r.finish()?;
    Ok((
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(replica_id))
            .with_topics(topics),
        maxes,
    ))
}

/// OffsetCommit v0–v1 → kafka-protocol's `OffsetCommitRequest` plus each partition's commit
/// timestamp (v1; -1, "the broker's clock", for v0), in request order. v0 has no generation
/// and member id: they are set to -1 and "", a simple (non-member) commit. The retention time is
/// -1 (the broker's default): it came with v2.
pub fn decode_offset_commit_v0_v1(
    body: &[u8],
    version: i16,
) -> Result<(OffsetCommitRequest, Vec<i64>), DecodeError> {
    let mut r = Reader { buf: body, pos: 0 };
    let group = r.string("group id")?;
    let (generation, member) = if version >= 1 {
        (r.i32("generation id")?, r.string("member id")?)
    } else {
        (-1, StrBytes::default())
    };
    let n = r.array_len("topics", 6)?;
    let mut topics = Vec::with_capacity(n);
    let mut timestamps = Vec::new();
    for _ in 0..n {
        let name = r.string("topic name")?;
        let np = r.array_len("partitions", if version >= 1 { 22 } else { 14 })?;
        let mut parts = Vec::with_capacity(np);
        for _ in 0..np {
            let partition = r.i32("partition")?;
            let offset = r.i64("committed offset")?;
            timestamps.push(if version >= 1 {
                r.i64("commit timestamp")?
            } else {
                -1
            });
            let metadata = r.nullable_string("metadata")?;
            parts.push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(offset)
                    .with_committed_metadata(metadata),
            );
        }
        topics.push(
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(name))
                .with_partitions(parts),
        );
    }
    r.finish()?;
    Ok((
        OffsetCommitRequest::default()
            .with_group_id(GroupId(group))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(member)
            .with_retention_time_ms(-1)
            .with_topics(topics),
        timestamps,
    ))
}

/// One partition of a ListOffsets v0 response: (partition, error code, offsets).
pub type OldStyleOffsets = (i32, i16, Vec<i64>);

/// A ListOffsets v0 response frame: per topic, its partitions.
pub fn encode_list_offsets_v0_response(
    correlation_id: i32,
    topics: &[(String, Vec<OldStyleOffsets>)],
) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    frame::start_frame(&mut buf, correlation_id, 0);
    buf.put_i32(topics.len() as i32);
    for (name, parts) in topics {
        put_string(&mut buf, name);
        buf.put_i32(parts.len() as i32);
        for (p, err, offsets) in parts {
            buf.put_i32(*p);
            buf.put_i16(*err);
            buf.put_i32(offsets.len() as i32);
            for o in offsets {
                buf.put_i64(*o);
            }
        }
    }
    frame::finish_frame(&mut buf);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn produce_body(records: &[u8]) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i32(1000);
        b.put_i32(1);
        put_string(&mut b, "t");
        b.put_i32(2);
        b.put_i32(0);
        b.put_i32(records.len() as i32);
        b.put_slice(records);
        b.put_i32(1);
        b.put_i32(-1);
        b.to_vec()
    }

    #[test]
    fn produce_request_decodes_and_refuses_garbage() {
        let body = Bytes::from(produce_body(b"abc"));
        let r = decode_produce(&body).unwrap();
        assert_eq!((r.acks, r.timeout_ms), (1, 1000));
        let t = &r.topic_data[0];
        assert_eq!(t.name.0.as_str(), "t");
        assert_eq!(t.partition_data[0].records.as_deref(), Some(&b"abc"[..]));
        assert_eq!(t.partition_data[1].records, None);
        for cut in 0..body.len() {
            assert!(decode_produce(&body.slice(..cut)).is_err(), "cut {cut}");
        }
        let mut huge = produce_body(b"");
        huge[6..10].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_produce(&Bytes::from(huge)).is_err());
    }

    #[test]
    fn fetch_request_versions() {
        for version in 0..=3i16 {
            let mut b = BytesMut::new();
            b.put_i32(-1);
            b.put_i32(500);
            b.put_i32(1);
            if version >= 3 {
                b.put_i32(1 << 20);
            }
            b.put_i32(1);
            put_string(&mut b, "topic");
            b.put_i32(1);
            b.put_i32(3);
            b.put_i64(42);
            b.put_i32(4096);
            let r = decode_fetch(&b, version).unwrap();
            assert_eq!(r.max_wait_ms, 500);
            assert_eq!(r.max_bytes, if version >= 3 { 1 << 20 } else { i32::MAX });
            let p = &r.topics[0].partitions[0];
            assert_eq!(
                (p.partition, p.fetch_offset, p.partition_max_bytes),
                (3, 42, 4096)
            );
            assert!(decode_fetch(&b[..b.len() - 1], version).is_err());
        }
    }

    #[test]
    fn list_offsets_v0_round_trip_shapes() {
        let mut b = BytesMut::new();
        b.put_i32(-1);
        b.put_i32(1);
        put_string(&mut b, "x");
        b.put_i32(1);
        b.put_i32(0);
        b.put_i64(-2);
        b.put_i32(1);
        let (r, maxes) = decode_list_offsets_v0(&b).unwrap();
        assert_eq!(r.topics[0].partitions[0].timestamp, -2);
        assert_eq!(maxes, vec![1]);
        let f = encode_list_offsets_v0_response(7, &[("x".into(), vec![(0, 0, vec![5])])]);
        // size, correlation id, 1 topic, "x", 1 partition, p0, err 0, 1 offset, 5
        assert_eq!(f.len(), 4 + 4 + 4 + 3 + 4 + 4 + 2 + 4 + 8);
        assert_eq!(&f[4..8], &7i32.to_be_bytes());
    }

    fn offset_commit_body(version: i16) -> BytesMut {
        let mut b = BytesMut::new();
        put_string(&mut b, "grp");
        if version >= 1 {
            b.put_i32(7);
            put_string(&mut b, "member-1");
        }
        b.put_i32(1);
        put_string(&mut b, "t");
        b.put_i32(2);
        for (p, o, ts, meta) in [(0, 42i64, 1_000i64, Some("m")), (3, 9, -1, None)] {
            b.put_i32(p);
            b.put_i64(o);
            if version >= 1 {
                b.put_i64(ts);
            }
            match meta {
                Some(m) => put_string(&mut b, m),
                None => b.put_i16(-1),
            }
        }
        b
    }

    #[test]
    fn offset_commit_v0_v1_decode() {
        for version in 0..=1i16 {
            let b = offset_commit_body(version);
            let (r, ts) = decode_offset_commit_v0_v1(&b, version).unwrap();
            assert_eq!(r.group_id.0.as_str(), "grp");
            let (generation, member) = if version == 1 {
                (7, "member-1")
            } else {
                (-1, "")
            };
            assert_eq!(r.generation_id_or_member_epoch, generation);
            assert_eq!(r.member_id.as_str(), member);
            assert_eq!(r.retention_time_ms, -1);
            let t = &r.topics[0];
            assert_eq!(t.name.0.as_str(), "t");
            let got: Vec<_> = t
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.committed_offset,
                        p.committed_metadata.as_ref().map(|m| m.to_string()),
                    )
                })
                .collect();
            assert_eq!(got, vec![(0, 42, Some("m".into())), (3, 9, None)]);
            let want_ts = if version == 1 {
                vec![1_000, -1]
            } else {
                vec![-1, -1]
            };
            assert_eq!(ts, want_ts);
            for cut in 0..b.len() {
                assert!(
                    decode_offset_commit_v0_v1(&b[..cut], version).is_err(),
                    "v{version} cut {cut}"
                );
            }
            let mut long = b.clone();
            long.put_u8(0);
            assert!(decode_offset_commit_v0_v1(&long, version).is_err());
        }
    }
}
