//! A raw Kafka client over std `TcpStream` for the server integration tests, plus broker helpers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use ringbolt::server::{BrokerConfig, BrokerHandle, spawn_broker};

/// As in `ringbolt serve`: hostile array lengths must not abort the test's in-process broker.
#[global_allocator]
static ALLOC: ringbolt::server::alloc::HugeAllocGuard = ringbolt::server::alloc::HugeAllocGuard;

pub(crate) fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

pub(crate) fn config(dir: &Path, shards: usize) -> BrokerConfig {
    let mut c = BrokerConfig::new("127.0.0.1:0".parse().unwrap(), dir);
    c.shards = shards;
    c
}

pub(crate) fn start(dir: &Path, shards: usize) -> BrokerHandle {
    init_logs();
    spawn_broker(config(dir, shards)).expect("broker starts")
}

pub(crate) struct Client {
    pub stream: TcpStream,
    corr: i32,
}

impl Client {
    pub(crate) fn connect(addr: SocketAddr) -> Client {
        Self::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    pub(crate) fn from_stream(stream: TcpStream) -> Client {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream, corr: 0 }
    }

    /// Sends a request; returns its correlation id.
    pub(crate) fn send<R: Encodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> i32 {
        self.send_with_body_version(key, version, version, req)
    }

    /// Sends a request whose header claims `version` but whose body is encoded at `body_version`
    /// (to speak versions the codec does not know, e.g. a future ApiVersions).
    pub(crate) fn send_with_body_version<R: Encodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        body_version: i16,
        req: &R,
    ) -> i32 {
        self.corr += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.corr)
            .with_client_id(Some(StrBytes::from_static_str("ringbolt-test")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        req.encode(&mut buf, body_version).unwrap();
        let n = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&n.to_be_bytes());
        self.stream.write_all(&buf).unwrap();
        self.corr
    }

    pub(crate) fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one response frame (without the size).
    pub(crate) fn recv_frame(&mut self) -> std::io::Result<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let n = i32::from_be_bytes(len) as usize;
        let mut buf = vec![0u8; n];
        self.stream.read_exact(&mut buf)?;
        Ok(Bytes::from(buf))
    }

    /// Reads a response of type `T` at `version`; checks the correlation id.
    pub(crate) fn recv<T: Decodable + HeaderVersion>(&mut self, corr: i32, version: i16) -> T {
        let mut frame = self.recv_frame().expect("response frame");
        let h = ResponseHeader::decode(&mut frame, T::header_version(version)).unwrap();
        assert_eq!(h.correlation_id, corr, "responses in request order");
        let resp = T::decode(&mut frame, version).expect("decodes");
        assert_eq!(frame.remaining(), 0, "no trailing bytes");
        resp
    }

    pub(crate) fn call<R: Encodable + HeaderVersion, T: Decodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> T {
        let c = self.send(key, version, req);
        self.recv(c, version)
    }

    /// True when the broker closed the connection (EOF or reset) within the read timeout.
    pub(crate) fn is_closed(&mut self) -> bool {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
        }
    }
}

/// A v2 record batch with `n` records, values `"{tag}-{i}"`, keys on even records, one header.
pub(crate) fn batch(tag: &str, n: usize, timestamp: i64) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32, // constant offset - sequence keeps the records in one batch
            timestamp: timestamp + i as i64,
            key: (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("{tag}-{i}"))),
            headers: [(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"v")),
            )]
            .into_iter()
            .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// Splits concatenated v2 batches into (base offset, batch bytes).
pub(crate) fn split_batches(mut b: &[u8]) -> Vec<(i64, Vec<u8>)> {
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
pub(crate) fn normalize(batch: &[u8]) -> Vec<u8> {
    let mut v = batch.to_vec();
    v[..8].fill(0);
    v[12..16].fill(0);
    v
}

use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use kafka_protocol::messages::create_topics_response::CreateTopicsResponse;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::fetch_response::FetchResponse;
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::produce_response::ProduceResponse;

pub(crate) fn tn(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

impl Client {
    pub(crate) fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
        version: i16,
    ) -> CreateTopicsResponse {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(tn(name))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1)
                    .with_configs(
                        configs
                            .iter()
                            .map(|(k, v)| {
                                CreatableTopicConfig::default()
                                    .with_name(StrBytes::from_string(k.to_string()))
                                    .with_value(Some(StrBytes::from_string(v.to_string())))
                            })
                            .collect(),
                    ),
            ]);
        self.call(ApiKey::CreateTopics, version, &req)
    }

    pub(crate) fn produce_req(
        topic: &str,
        partition: i32,
        acks: i16,
        records: Bytes,
    ) -> ProduceRequest {
        ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(5000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(tn(topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(records)),
                    ]),
            ])
    }

    /// Produces one batch; returns (error code, base offset).
    pub(crate) fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        acks: i16,
        records: Bytes,
        version: i16,
    ) -> (i16, i64) {
        let r: ProduceResponse = self.call(
            ApiKey::Produce,
            version,
            &Self::produce_req(topic, partition, acks, records),
        );
        let p = &r.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }

    pub(crate) fn fetch_req(
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
        min_bytes: i32,
    ) -> FetchRequest {
        FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(min_bytes)
            .with_max_bytes(50 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(tn(topic))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ])
    }

    /// Fetches one partition; returns (error, high watermark, records bytes).
    pub(crate) fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        version: i16,
    ) -> (i16, i64, Bytes) {
        let r: FetchResponse = self.call(
            ApiKey::Fetch,
            version,
            &Self::fetch_req(topic, partition, offset, 0, 0),
        );
        let p = &r.responses[0].partitions[0];
        (
            p.error_code,
            p.high_watermark,
            p.records.clone().unwrap_or_default(),
        )
    }
}
