//! A minimal blocking Kafka client: framing, version negotiation and the handful of APIs loadgen
//! needs (ApiVersions, Metadata, CreateTopics, ListOffsets, Produce, Fetch).
//!
//! Message bodies and headers are encoded/decoded with kafka-protocol 0.18; only the record batches
//! inside Produce/Fetch are handled by hand (see `batch.rs`). Connections are plain std sockets:
//! loadgen runs one writer and one reader thread per producer connection, so pipelining needs no
//! async runtime — `try_clone` gives each thread its own handle to the same socket. Requests carry a
//! correlation id; Kafka answers in order on a connection, which the producer relies on and checks.
//!
//! Version choice: the highest version both sides support, capped where newer versions switch to
//! topic ids (Produce 13, Fetch 13) so topic names keep working against any broker.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::{ApiKey, BrokerId, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// Largest response frame accepted (guards against garbage length prefixes).
const MAX_FRAME: usize = 256 * 1024 * 1024;
const CLIENT_ID: &str = "ringbolt-loadgen";
/// Longest wait for any response (or for a write to make progress) on a connection.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Kafka error codes loadgen reacts to.
pub mod error_code {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
}

/// Errors that go away by themselves (leadership settling after topic creation).
pub fn is_retriable(code: i16) -> bool {
    matches!(code, 3 | 5 | 6 | 7 | 13 | 14 | 15 | 74 | 75)
}

/// Version ranges the broker advertised in ApiVersions.
#[derive(Clone, Debug, Default)]
pub struct Versions(HashMap<i16, (i16, i16)>);

impl Versions {
    /// Highest version in both `ours` and the broker's range for `key`.
    pub fn pick(&self, key: ApiKey, ours: (i16, i16)) -> Result<i16> {
        let (bmin, bmax) = *self
            .0
            .get(&(key as i16))
            .ok_or_else(|| anyhow!("broker does not support {key:?}"))?;
        let v = bmax.min(ours.1);
        if v < ours.0.max(bmin) {
            bail!("no common version for {key:?}: broker {bmin}..={bmax}, loadgen {ours:?}");
        }
        Ok(v)
    }
}

/// Negotiated versions of the APIs loadgen uses.
#[derive(Clone, Copy, Debug)]
pub struct ApiChoice {
    pub produce: i16,
    pub fetch: i16,
    pub metadata: i16,
    pub list_offsets: i16,
    pub create_topics: i16,
}

impl ApiChoice {
    fn from_versions(v: &Versions) -> Result<Self> {
        Ok(ApiChoice {
            produce: v.pick(ApiKey::Produce, (3, 12))?,
            fetch: v.pick(ApiKey::Fetch, (4, 12))?,
            metadata: v.pick(ApiKey::Metadata, (1, 12))?,
            list_offsets: v.pick(ApiKey::ListOffsets, (1, 9))?,
            create_topics: v.pick(ApiKey::CreateTopics, (2, 7)).unwrap_or(-1),
        })
    }
}

/// Appends one size-prefixed request frame (header + body) to `out`.
pub fn encode_frame<R: Encodable + HeaderVersion>(
    out: &mut BytesMut,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    req: &R,
) -> Result<()> {
    let start = out.len();
    out.put_i32(0);
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    header.encode(out, R::header_version(version))?;
    req.encode(out, version)?;
    let len = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Reads one size-prefixed frame; `buf`'s allocation is reused between calls once the previous
/// frame has been dropped.
///
/// The body is read with `Read::take(..).read_to_end`, which hands the socket the buffer's spare
/// capacity without zero-filling it first (std's `TcpStream` reads into uninitialised memory):
/// zeroing a catch-up Fetch response of up to 32 MiB before overwriting it stood out in `perf` of
/// the consumer threads (measured in `docs/perf/loadgen.md`).
pub fn read_frame(stream: &mut impl Read, buf: &mut BytesMut) -> Result<Bytes> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            anyhow!(
                "no response from the broker within {} s",
                RESPONSE_TIMEOUT.as_secs()
            )
        }
        _ => anyhow::Error::new(e).context("reading frame length"),
    })?;
    let len = i32::from_be_bytes(len);
    if len < 4 || len as usize > MAX_FRAME {
        bail!("bad response frame length {len}");
    }
    let len = len as usize;
    buf.clear();
    // Unique again once the previous frame is gone: the Vec keeps its allocation.
    let mut v: Vec<u8> = std::mem::take(buf).into();
    v.reserve_exact(len);
    let n = stream
        .take(len as u64)
        .read_to_end(&mut v)
        .context("reading frame")?;
    if n != len {
        bail!("connection closed after {n} of {len} frame bytes");
    }
    *buf = BytesMut::from(Bytes::from(v)); // no copy: the Bytes is unique
    Ok(buf.split().freeze())
}

/// Decodes a response frame: returns its correlation id and body.
pub fn decode_response<R: Decodable + HeaderVersion>(
    mut frame: Bytes,
    key: ApiKey,
    version: i16,
) -> Result<(i32, R)> {
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))?;
    let body =
        R::decode(&mut frame, version).with_context(|| format!("decoding {key:?} v{version}"))?;
    Ok((header.correlation_id, body))
}

/// Encodes a Produce request carrying one batch per listed partition of `topic`.
pub fn encode_produce(
    out: &mut BytesMut,
    version: i16,
    correlation_id: i32,
    acks: i16,
    topic: &TopicName,
    batches: impl Iterator<Item = (i32, Bytes)>,
) -> Result<()> {
    let partition_data = batches
        .map(|(p, b)| {
            PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(b))
        })
        .collect();
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic.clone())
                .with_partition_data(partition_data),
        ]);
    encode_frame(out, ApiKey::Produce, version, correlation_id, &req)
}

/// Builds a Fetch request for `parts` = (partition, offset) of `topic`.
pub fn fetch_request(
    topic: &TopicName,
    parts: &[(i32, i64)],
    max_wait_ms: i32,
    partition_max_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(64 * 1024 * 1024)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic.clone())
                .with_partitions(
                    parts
                        .iter()
                        .map(|&(p, off)| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(off)
                                .with_log_start_offset(-1)
                                .with_current_leader_epoch(-1)
                                .with_last_fetched_epoch(-1)
                                .with_partition_max_bytes(partition_max_bytes)
                        })
                        .collect(),
                ),
        ])
}

/// Partition layout of a topic from Metadata.
#[derive(Clone, Debug)]
pub struct TopicMeta {
    pub partitions: Vec<i32>,
    /// Address of the leader of every partition (loadgen requires a single leader).
    pub leader: SocketAddr,
}

/// One blocking connection used for request/response exchanges.
pub struct Conn {
    stream: TcpStream,
    next_correlation: i32,
    pub api: ApiChoice,
    rbuf: BytesMut,
    wbuf: BytesMut,
}

impl Conn {
    /// Connects and negotiates API versions.
    pub fn connect(addr: &str) -> Result<Conn> {
        let sa = addr
            .to_socket_addrs()
            .with_context(|| format!("resolving {addr}"))?
            .next()
            .ok_or_else(|| anyhow!("{addr} resolves to nothing"))?;
        let stream = TcpStream::connect_timeout(&sa, Duration::from_secs(10))
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        // A broker that stops answering must end the run with an error, not hang it.
        stream.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
        stream.set_write_timeout(Some(RESPONSE_TIMEOUT))?;
        let mut c = Conn {
            stream,
            next_correlation: 1,
            api: ApiChoice {
                produce: -1,
                fetch: -1,
                metadata: -1,
                list_offsets: -1,
                create_topics: -1,
            },
            rbuf: BytesMut::with_capacity(64 * 1024),
            wbuf: BytesMut::with_capacity(64 * 1024),
        };
        let versions = c.api_versions()?;
        c.api = ApiChoice::from_versions(&versions)?;
        Ok(c)
    }

    pub fn peer_addr(&self) -> Result<SocketAddr> {
        Ok(self.stream.peer_addr()?)
    }

    pub fn next_correlation(&mut self) -> i32 {
        let c = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        c
    }

    /// Splits into independent read and write handles of the same socket (for pipelining).
    pub fn into_split(self) -> Result<(TcpStream, TcpStream)> {
        let w = self.stream.try_clone()?;
        Ok((w, self.stream))
    }

    /// Sends `req` and waits for its response.
    pub fn call<R: Request>(&mut self, version: i16, req: &R) -> Result<R::Response> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown api key {}", R::KEY))?;
        let corr = self.next_correlation();
        self.wbuf.clear();
        encode_frame(&mut self.wbuf, key, version, corr, req)?;
        self.stream.write_all(&self.wbuf)?;
        let frame = read_frame(&mut self.stream, &mut self.rbuf)?;
        let (got, resp) = decode_response::<R::Response>(frame, key, version)?;
        if got != corr {
            bail!("{key:?}: correlation id {got}, expected {corr}");
        }
        Ok(resp)
    }

    fn api_versions(&mut self) -> Result<Versions> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        // v3 first; a broker that does not know v3 answers in v0 format with UNSUPPORTED_VERSION.
        let corr = self.next_correlation();
        self.wbuf.clear();
        encode_frame(&mut self.wbuf, ApiKey::ApiVersions, 3, corr, &req)?;
        self.stream.write_all(&self.wbuf)?;
        let frame = read_frame(&mut self.stream, &mut self.rbuf)?;
        let resp =
            match decode_response::<ApiVersionsResponse>(frame.clone(), ApiKey::ApiVersions, 3) {
                Ok((_, r)) if r.error_code == 0 => r,
                _ => decode_response::<ApiVersionsResponse>(frame, ApiKey::ApiVersions, 0)?.1,
            };
        if resp.error_code != 0 && resp.api_keys.is_empty() {
            bail!("ApiVersions failed with error code {}", resp.error_code);
        }
        Ok(Versions(
            resp.api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect(),
        ))
    }

    /// Metadata for one topic. `Ok(None)` when the topic does not exist.
    pub fn topic_metadata(&mut self, topic: &str) -> Result<Option<TopicMeta>> {
        let name = TopicName(StrBytes::from_string(topic.to_owned()));
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name)),
            ]))
            .with_allow_auto_topic_creation(false);
        let resp = self.call(self.api.metadata, &req)?;
        let t = resp
            .topics
            .first()
            .ok_or_else(|| anyhow!("Metadata response without topics"))?;
        match t.error_code {
            error_code::NONE => {}
            error_code::UNKNOWN_TOPIC_OR_PARTITION => return Ok(None),
            error_code::LEADER_NOT_AVAILABLE => return Ok(None),
            e => bail!("Metadata for {topic}: error code {e}"),
        }
        let mut partitions: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
        partitions.sort_unstable();
        let leaders: std::collections::BTreeSet<i32> =
            t.partitions.iter().map(|p| p.leader_id.0).collect();
        if leaders.len() != 1 || partitions.is_empty() {
            bail!("topic {topic}: partitions led by {leaders:?}; loadgen needs one leader broker");
        }
        let leader = *leaders.first().unwrap();
        if leader < 0 {
            return Ok(None); // no leader yet
        }
        let b = resp
            .brokers
            .iter()
            .find(|b| b.node_id.0 == leader)
            .ok_or_else(|| anyhow!("leader {leader} missing from Metadata brokers"))?;
        let host = if b.host.as_str().is_empty() {
            "127.0.0.1"
        } else {
            b.host.as_str()
        };
        let leader = (host, b.port as u16)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| anyhow!("leader host {host} resolves to nothing"))?;
        Ok(Some(TopicMeta { partitions, leader }))
    }

    /// Creates `topic` (replication factor 1); an existing topic is not an error.
    pub fn create_topic(&mut self, topic: &str, partitions: i32) -> Result<()> {
        if self.api.create_topics < 0 {
            bail!("broker does not support CreateTopics; create {topic} first");
        }
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1),
            ]);
        let resp = self.call(self.api.create_topics, &req)?;
        for t in &resp.topics {
            if t.error_code != error_code::NONE && t.error_code != error_code::TOPIC_ALREADY_EXISTS
            {
                bail!(
                    "CreateTopics {topic}: error code {} {}",
                    t.error_code,
                    t.error_message.as_deref().unwrap_or("")
                );
            }
        }
        Ok(())
    }

    /// ListOffsets: `timestamp` -1 = latest (log end), -2 = earliest. Returns one offset per partition.
    /// Retriable errors (a fresh topic's leader not ready yet) are retried for up to 15 s.
    pub fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<Vec<i64>> {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            match self.list_offsets_once(topic, partitions, timestamp)? {
                Ok(v) => return Ok(v),
                Err(code) if is_retriable(code) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(code) => bail!("ListOffsets {topic}: error code {code}"),
            }
        }
    }

    fn list_offsets_once(
        &mut self,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<std::result::Result<Vec<i64>, i16>> {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|&p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(p)
                                    .with_current_leader_epoch(-1)
                                    .with_timestamp(timestamp)
                            })
                            .collect(),
                    ),
            ]);
        let resp = self.call(self.api.list_offsets, &req)?;
        let mut out = Vec::with_capacity(partitions.len());
        for &p in partitions {
            let r = resp
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .find(|r| r.partition_index == p)
                .ok_or_else(|| anyhow!("ListOffsets: no answer for partition {p}"))?;
            if r.error_code != 0 {
                return Ok(Err(r.error_code));
            }
            out.push(r.offset);
        }
        Ok(Ok(out))
    }
}

/// Finds or creates `topic`, waiting until it has a leader. Returns its layout.
pub fn ensure_topic(
    conn: &mut Conn,
    topic: &str,
    partitions: i32,
    create: bool,
) -> Result<TopicMeta> {
    if let Some(m) = conn.topic_metadata(topic)? {
        return Ok(m);
    }
    if !create {
        bail!("topic {topic} does not exist");
    }
    conn.create_topic(topic, partitions)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(m) = conn.topic_metadata(topic)? {
            return Ok(m);
        }
        if std::time::Instant::now() > deadline {
            bail!("topic {topic} has no leader 30 s after creation");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
