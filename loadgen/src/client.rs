//! loadgen's connection to a broker: the shared `kafka-test-client` crate (framing, correlation
//! ids, ApiVersions) plus what loadgen needs on top of it — the versions it speaks, a topic's
//! layout from Metadata, topic creation, ListOffsets with retries, and the Produce and Fetch
//! requests of its hot paths.
//!
//! Message bodies and headers are encoded/decoded with kafka-protocol 0.18; only the record batches
//! inside Produce/Fetch are handled by hand (see `batch.rs`). Connections are plain std sockets:
//! loadgen runs one writer and one reader thread per producer connection, so pipelining needs no
//! async runtime — [`Conn::into_split`] gives each thread its own handle to the same socket, and
//! both frame with `kafka_test_client::frame`. Requests carry a correlation id; Kafka answers in
//! order on a connection, which the producer relies on and checks.
//!
//! Version choice: the highest version both sides support, capped where newer versions switch to
//! topic ids (Produce 13, Fetch 13) so topic names keep working against any broker.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::FetchRequest;
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::{ApiKey, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_test_client::requests::{
    create_topic_request, fetch_partition, list_offsets_request, metadata_request, produce_request,
};
use kafka_test_client::{Client, Versions, frame, tn};

const CLIENT_ID: &str = "ringbolt-loadgen";

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

/// Encodes a Produce request carrying one batch per listed partition of `topic`.
pub fn encode_produce(
    out: &mut BytesMut,
    version: i16,
    correlation_id: i32,
    acks: i16,
    topic: &TopicName,
    batches: impl Iterator<Item = (i32, Bytes)>,
) -> Result<()> {
    let req = produce_request(topic.clone(), acks, 30_000, batches);
    let header = frame::request_header(
        ApiKey::Produce,
        version,
        correlation_id,
        StrBytes::from_static_str(CLIENT_ID),
    );
    Ok(frame::encode_request(out, &header, version, &req)?)
}

/// Builds a Fetch request for `parts` = (partition, offset) of `topic`.
pub fn fetch_request(
    topic: &TopicName,
    parts: &[(i32, i64)],
    max_wait_ms: i32,
    partition_max_bytes: i32,
) -> FetchRequest {
    let partitions = parts
        .iter()
        .map(|&(p, offset)| fetch_partition(p, offset, partition_max_bytes));
    kafka_test_client::requests::fetch_request(
        topic.clone(),
        partitions,
        max_wait_ms,
        1,
        64 * 1024 * 1024,
    )
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
    client: Client,
    pub api: ApiChoice,
}

impl Conn {
    /// Connects and negotiates API versions.
    pub fn connect(addr: &str) -> Result<Conn> {
        // A broker that stops answering must end the run with an error, not hang it: the client
        // has read and write timeouts (kafka_test_client::DEFAULT_TIMEOUT).
        let mut client = Client::try_connect(addr)?.with_client_id(CLIENT_ID);
        let versions = client.try_api_versions()?;
        let api = ApiChoice::from_versions(&versions)?;
        Ok(Conn { client, api })
    }

    pub fn peer_addr(&self) -> Result<SocketAddr> {
        Ok(self.client.peer_addr()?)
    }

    pub fn next_correlation(&mut self) -> i32 {
        self.client.next_correlation()
    }

    /// Splits into independent write and read handles of the same socket (for pipelining).
    pub fn into_split(self) -> Result<(TcpStream, TcpStream)> {
        Ok(self.client.into_split()?)
    }

    /// Sends `req` and waits for its response.
    pub fn call<R: Request>(&mut self, version: i16, req: &R) -> Result<R::Response> {
        Ok(self.client.try_call(version, req)?)
    }

    /// Metadata for one topic. `Ok(None)` when the topic does not exist.
    pub fn topic_metadata(&mut self, topic: &str) -> Result<Option<TopicMeta>> {
        let req: MetadataRequest = metadata_request(&[topic]).with_allow_auto_topic_creation(false);
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
        let req = create_topic_request(topic, partitions, &[]).with_timeout_ms(30_000);
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
        let req = list_offsets_request(tn(topic), partitions.iter().map(|&p| (p, timestamp)));
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
