//! Hand-written Fetch response encoder (v4–v16) that keeps record bytes as file slices.
//!
//! Why not `kafka_protocol::messages::FetchResponse`: its `records` field is an owned `Bytes`, so
//! using it means reading every fetched batch from the segment file into user-space memory and then
//! copying it again into the encode buffer: two copies of exactly the bytes that make up almost all of
//! a consumer's traffic. This encoder writes everything *around* the records (sizes, ids, offsets,
//! tagged-field markers) into one small buffer and leaves a [`Chunk::File`] hole for each partition's
//! records, which the connection fills with sendfile(2) straight from the page cache. The output is
//! byte-for-byte what kafka-protocol produces (checked by the tests below for every version).
//!
//! Supported: v4–v16; topics by name up to v12, by topic id from v13. Fields this broker never sets
//! (diverging epoch, current leader, snapshot id, node endpoints; all tagged) are left out, which
//! the schema allows; preferred read replica is -1. Aborted transactions are null for
//! read_uncommitted reads and failed partitions and a list (possibly empty) for read_committed
//! ones, as Kafka sends them (`FetchDataInfo.abortedTransactions` is empty unless the read was
//! read_committed, and KafkaApis writes an empty one as null).
//!
//! It lives here, next to [`super::zerocopy`] that sends its output, rather than in
//! [`crate::protocol`]: its holes are [`FileSlice`]s of the partition log, and the protocol module
//! stays free of storage types (storage and protocol share only [`crate::format`]).

use bytes::{BufMut, Bytes, BytesMut};

use crate::storage::FileSlice;
use crate::storage::txn::AbortedTxn;

/// One partition of a Fetch response.
#[derive(Debug, Clone)]
pub struct PartitionOut {
    pub partition: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// `None` is written as a null array.
    pub aborted: Option<Vec<AbortedTxn>>,
    /// Whole record batches, in order.
    pub records: Vec<FileSlice>,
}

/// One topic of a Fetch response.
#[derive(Debug, Clone)]
pub struct TopicOut {
    pub name: String,
    /// Written instead of the name from v13 on.
    pub id: uuid::Uuid,
    pub partitions: Vec<PartitionOut>,
}

/// A piece of an encoded response: bytes in memory, or a range of a segment file.
#[derive(Debug, Clone)]
pub enum Chunk {
    Bytes(Bytes),
    File(FileSlice),
}

/// A complete response frame (size prefix included) as chunks.
#[derive(Debug, Clone)]
pub struct ChunkedFrame {
    pub chunks: Vec<Chunk>,
    /// Total bytes on the wire, size prefix included.
    pub len: usize,
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn put_array_len(buf: &mut BytesMut, flexible: bool, n: usize) {
    if flexible {
        put_uvarint(buf, n as u64 + 1);
    } else {
        buf.put_i32(n as i32);
    }
}

/// A nullable array's length: null is 0 (compact) or -1.
fn put_null_array(buf: &mut BytesMut, flexible: bool) {
    if flexible {
        put_uvarint(buf, 0);
    } else {
        buf.put_i32(-1);
    }
}

/// Encodes a whole Fetch response frame for `version` (4..=16).
pub fn encode(
    correlation_id: i32,
    version: i16,
    throttle_time_ms: i32,
    error_code: i16,
    session_id: i32,
    topics: &[TopicOut],
) -> ChunkedFrame {
    debug_assert!((4..=16).contains(&version));
    let flexible = version >= 12;
    let mut buf = BytesMut::with_capacity(64 + topics.len() * 64);
    let mut holes: Vec<(usize, FileSlice)> = Vec::new();
    let mut file_bytes = 0usize;

    buf.put_i32(0); // size, patched below
    buf.put_i32(correlation_id);
    if flexible {
        buf.put_u8(0); // response header v1 tagged fields
    }
    buf.put_i32(throttle_time_ms);
    if version >= 7 {
        buf.put_i16(error_code);
        buf.put_i32(session_id);
    }
    put_array_len(&mut buf, flexible, topics.len());
    for t in topics {
        if version >= 13 {
            buf.put_slice(t.id.as_bytes());
        } else {
            if flexible {
                put_uvarint(&mut buf, t.name.len() as u64 + 1);
            } else {
                buf.put_i16(t.name.len() as i16);
            }
            buf.put_slice(t.name.as_bytes());
        }
        put_array_len(&mut buf, flexible, t.partitions.len());
        for p in &t.partitions {
            buf.put_i32(p.partition);
            buf.put_i16(p.error_code);
            buf.put_i64(p.high_watermark);
            buf.put_i64(p.last_stable_offset);
            if version >= 5 {
                buf.put_i64(p.log_start_offset);
            }
            match &p.aborted {
                None => put_null_array(&mut buf, flexible),
                Some(list) => {
                    put_array_len(&mut buf, flexible, list.len());
                    for a in list {
                        buf.put_i64(a.producer_id);
                        buf.put_i64(a.first_offset);
                        if flexible {
                            buf.put_u8(0); // aborted transaction tagged fields
                        }
                    }
                }
            }
            if version >= 11 {
                buf.put_i32(-1); // preferred read replica
            }
            let len: usize = p.records.iter().map(|s| s.len as usize).sum();
            if flexible {
                put_uvarint(&mut buf, len as u64 + 1);
            } else {
                buf.put_i32(len as i32);
            }
            for s in &p.records {
                if s.len > 0 {
                    holes.push((buf.len(), s.clone()));
                }
            }
            file_bytes += len;
            if flexible {
                buf.put_u8(0); // partition tagged fields
            }
        }
        if flexible {
            buf.put_u8(0); // topic tagged fields
        }
    }
    if flexible {
        buf.put_u8(0); // response tagged fields
    }
    let total = buf.len() + file_bytes;
    buf[..4].copy_from_slice(&((total - 4) as i32).to_be_bytes());

    let bytes = buf.freeze();
    let mut chunks = Vec::with_capacity(holes.len() * 2 + 1);
    let mut at = 0;
    for (pos, slice) in holes {
        if pos > at {
            chunks.push(Chunk::Bytes(bytes.slice(at..pos)));
        }
        chunks.push(Chunk::File(slice));
        at = pos;
    }
    if at < bytes.len() {
        chunks.push(Chunk::Bytes(bytes.slice(at..)));
    }
    ChunkedFrame { chunks, len: total }
}

impl ChunkedFrame {
    /// Materialises the frame in memory (reads the file slices): tests and the copying path.
    pub fn to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len);
        for c in &self.chunks {
            match c {
                Chunk::Bytes(b) => out.extend_from_slice(b),
                Chunk::File(s) => out.extend_from_slice(&s.read_to_vec()?),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, FetchResponse, FetchableTopicResponse, PartitionData,
    };
    use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
    use std::io::Write;
    use std::sync::Arc;

    fn file_with(content: &[u8]) -> Arc<std::fs::File> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(content).unwrap();
        Arc::new(f)
    }

    #[test]
    fn matches_kafka_protocol_encoder_for_every_version() {
        let content: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        let file = file_with(&content);
        let topics = vec![
            TopicOut {
                name: "alpha".into(),
                id: uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
                partitions: vec![
                    PartitionOut {
                        partition: 0,
                        error_code: 0,
                        high_watermark: 42,
                        last_stable_offset: 40,
                        log_start_offset: 3,
                        aborted: Some(vec![
                            AbortedTxn {
                                producer_id: 7,
                                first_offset: 12,
                            },
                            AbortedTxn {
                                producer_id: 9,
                                first_offset: 30,
                            },
                        ]),
                        records: vec![
                            FileSlice::in_file(file.clone(), 10, 100),
                            FileSlice::in_file(file.clone(), 150, 50),
                        ],
                    },
                    PartitionOut {
                        partition: 3,
                        error_code: 1,
                        high_watermark: 7,
                        last_stable_offset: 7,
                        log_start_offset: 0,
                        aborted: None,
                        records: vec![],
                    },
                ],
            },
            TopicOut {
                name: "b".into(),
                id: uuid::Uuid::from_u128(42),
                partitions: vec![PartitionOut {
                    partition: 1,
                    error_code: 0,
                    high_watermark: 1,
                    last_stable_offset: 1,
                    log_start_offset: 0,
                    aborted: Some(vec![]),
                    records: vec![FileSlice::in_file(file, 0, 1)],
                }],
            },
        ];
        for version in 4..=16i16 {
            let ours = encode(99, version, 0, 0, 0, &topics).to_vec().unwrap();
            let theirs = FetchResponse::default().with_responses(
                topics
                    .iter()
                    .map(|t| {
                        let r = FetchableTopicResponse::default();
                        let r = if version >= 13 {
                            r.with_topic_id(t.id)
                        } else {
                            r.with_topic(TopicName(StrBytes::from_string(t.name.clone())))
                        };
                        r.with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    let mut rec = Vec::new();
                                    for s in &p.records {
                                        rec.extend(s.read_to_vec().unwrap());
                                    }
                                    PartitionData::default()
                                        .with_partition_index(p.partition)
                                        .with_error_code(p.error_code)
                                        .with_high_watermark(p.high_watermark)
                                        .with_last_stable_offset(p.last_stable_offset)
                                        .with_log_start_offset(p.log_start_offset)
                                        .with_aborted_transactions(p.aborted.as_ref().map(|list| {
                                            list.iter()
                                                .map(|a| {
                                                    AbortedTransaction::default()
                                                        .with_producer_id(
                                                            kafka_protocol::messages::ProducerId(
                                                                a.producer_id,
                                                            ),
                                                        )
                                                        .with_first_offset(a.first_offset)
                                                })
                                                .collect()
                                        }))
                                        .with_preferred_read_replica(
                                            kafka_protocol::messages::BrokerId(-1),
                                        )
                                        .with_records(Some(Bytes::from(rec)))
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            );
            let mut buf = BytesMut::new();
            frame::start_frame(&mut buf, 99, FetchResponse::header_version(version));
            theirs.encode(&mut buf, version).unwrap();
            frame::finish_frame(&mut buf);
            assert_eq!(ours, buf.to_vec(), "version {version}");
        }
    }
}
