//! One handler per Kafka API key, each declaring its supported version range.
//!
//! The `api_table!` list below is the single source of truth: it declares the handler modules,
//! generates [`SUPPORTED_APIS`] (what ApiVersions advertises and what the connection accepts; a
//! request outside it gets UNSUPPORTED_VERSION handling, never a guess) and the dispatch `match`.
//! To add an API: write `handlers/<api>.rs` with `MIN_VERSION`, `MAX_VERSION` and
//! `async fn handle(req: Request) -> Result<Reply, HandlerError>`, and add one line to the list.
//!
//! # Advertised only in a cluster
//! DescribeQuorum (key 55) describes the KRaft metadata quorum, and a single node has none (its
//! metadata is a file on one node, `metadata`). A Kafka broker without KRaft (ZooKeeper mode) did
//! not advertise the API either, so `Admin.describeMetadataQuorum` (`kafka-metadata-quorum`) fails
//! at once with `UnsupportedVersionException` on the client, without a request; a single Ringbolt
//! node gives the same answer ([`advertised`] leaves it out of ApiVersions). A cluster node
//! ([`crate::cluster`]) advertises and serves it.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use crate::protocol::frame;
use crate::server::fetch_response::ChunkedFrame;
use crate::shard::ShardCtx;
use crate::sync::LocalEvent;
use crate::util::sb;

/// A decoded request header plus its still-encoded body, on the shard that read it.
pub struct Request {
    pub ctx: Rc<ShardCtx>,
    pub api_key: ApiKey,
    pub version: i16,
    pub header: RequestHeader,
    pub body: Bytes,
    /// Per-connection ordering: set when the previous request released its successor.
    pub after: Rc<LocalEvent>,
    /// Released (set) when this request's effects are in place; see [`Request::release`].
    pub done: Release,
    /// Until when the connection is muted by a quota throttle (shared by its requests).
    pub muted_until: Rc<Cell<Option<Instant>>>,
    /// The connection's peer address as Kafka reports it (`/127.0.0.1`, see
    /// `connection::java_inet_string`), made once per connection.
    pub client_host: Rc<str>,
}

/// Releases the next request of the same connection when set or dropped (so a cancelled or
/// failed request never stalls the connection).
pub struct Release(pub Rc<LocalEvent>);

impl Release {
    pub fn set(&self) {
        self.0.set();
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        self.0.set();
    }
}

/// What the connection writes back.
pub enum Reply {
    /// Nothing (Produce with acks=0).
    None,
    /// A whole response frame, size prefix included.
    Frame(Bytes),
    /// A frame made of memory and file chunks (zero-copy fetch).
    Chunked(ChunkedFrame),
    /// Close the connection (Kafka's answer to malformed requests and failed acks=0 produces).
    Close(String),
}

/// A request the broker cannot serve at all; the connection is closed with a log line.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("malformed {api:?} v{version} request: {msg}")]
    Decode {
        api: ApiKey,
        version: i16,
        msg: String,
    },
    #[error("encoding {api:?} v{version} response: {msg}")]
    Encode {
        api: ApiKey,
        version: i16,
        msg: String,
    },
    #[error("API {0:?} is not supported")]
    Unsupported(ApiKey),
}

impl Request {
    /// Lets the connection's next request start. Requests of one connection run in order, like in
    /// Kafka (which processes one request per connection at a time): each waits until its
    /// predecessor released it, by default when the predecessor's handler finished. Handlers
    /// release earlier when that is safe: Fetch at once (it changes nothing), Produce as soon as
    /// its appends have their offsets (before the write and the durability wait), so pipelined
    /// produces are applied in request order while their writes and fsyncs overlap.
    pub fn release(&self) {
        self.done.set();
    }

    /// Who sent the request. Connections do not authenticate yet, so this is `User:ANONYMOUS`,
    /// the principal Kafka gives an unauthenticated PLAINTEXT connection (see
    /// [`crate::server::authz`]).
    pub fn principal(&self) -> &crate::server::authz::Principal {
        &crate::server::authz::ANONYMOUS
    }

    /// Meters `bytes` against this client's quota `key` (see [`crate::quota`]) and returns the
    /// throttle time in ms, 0 without a quota or within it. A throttled connection starts no
    /// further request until the time has passed, as Kafka mutes the channel.
    pub fn meter_quota(&self, key: &'static str, bytes: u64) -> u64 {
        let client_id = self.header.client_id.as_deref().unwrap_or("");
        let Some((quota, meter)) = self.ctx.with_metadata(|snap| {
            crate::quota::resolve(&snap.quotas, key, &self.principal().name, client_id)
        }) else {
            return 0;
        };
        let now = crate::util::now_ms().max(0) as u64;
        let ms = self.ctx.info.quota_meters.record(meter, quota, bytes, now);
        if ms > 0 {
            self.muted_until
                .set(Some(Instant::now() + Duration::from_millis(ms)));
        }
        ms
    }

    /// For a client too old to throttle itself (`throttles_itself` false: before KIP-219's
    /// versions), waits out `throttle_ms` before the answer, as Kafka delays it.
    pub async fn delay_if_old(&self, throttle_ms: u64, throttles_itself: bool) {
        if throttle_ms > 0 && !throttles_itself {
            glommio::timer::sleep(Duration::from_millis(throttle_ms)).await;
        }
    }

    /// Decodes the body as `T` at the request's version.
    pub fn decode<T: Decodable>(&self) -> Result<T, HandlerError> {
        self.decode_as(self.version)
    }

    /// Decodes the body as `T` at `wire_version`: for an old version whose layout is identical to
    /// a newer one that kafka-protocol still generates (OffsetFetch v0 = v1).
    pub fn decode_as<T: Decodable>(&self, wire_version: i16) -> Result<T, HandlerError> {
        let mut body = self.body.clone();
        T::decode(&mut body, wire_version).map_err(|e| HandlerError::Decode {
            api: self.api_key,
            version: self.version,
            msg: e.to_string(),
        })
    }

    /// A decode failure of a hand-written codec (`protocol::legacy_api`) as a handler error.
    pub fn decode_error(&self, e: impl std::fmt::Display) -> HandlerError {
        HandlerError::Decode {
            api: self.api_key,
            version: self.version,
            msg: e.to_string(),
        }
    }

    /// Encodes a response frame at the request's version.
    pub fn respond<R: Encodable + HeaderVersion>(&self, resp: &R) -> Result<Reply, HandlerError> {
        self.respond_as(self.version, resp)
    }

    /// Encodes a response frame at `wire_version` (see [`Request::decode_as`]).
    pub fn respond_as<R: Encodable + HeaderVersion>(
        &self,
        wire_version: i16,
        resp: &R,
    ) -> Result<Reply, HandlerError> {
        encode_frame(self.api_key, self.header.correlation_id, wire_version, resp).map(Reply::Frame)
    }
}

/// Encodes `resp` at `version` as a whole frame with its response header.
pub fn encode_frame<R: Encodable + HeaderVersion>(
    api: ApiKey,
    correlation_id: i32,
    version: i16,
    resp: &R,
) -> Result<Bytes, HandlerError> {
    let mut buf = BytesMut::with_capacity(128);
    frame::start_frame(&mut buf, correlation_id, R::header_version(version));
    resp.encode(&mut buf, version)
        .map_err(|e| HandlerError::Encode {
            api,
            version,
            msg: e.to_string(),
        })?;
    frame::finish_frame(&mut buf);
    Ok(buf.freeze())
}

macro_rules! api_table {
    ($($key:ident => $module:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// (API key, min version, max version) of every API this broker serves.
        pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
            $((ApiKey::$key, $module::MIN_VERSION, $module::MAX_VERSION),)*
        ];

        async fn dispatch_inner(req: Request) -> Result<Reply, HandlerError> {
            match req.api_key {
                $(ApiKey::$key => $module::handle(req).await,)*
                other => Err(HandlerError::Unsupported(other)),
            }
        }
    };
}

api_table! {
    ApiVersions => api_versions,
    Metadata => metadata,
    Produce => produce,
    Fetch => fetch,
    ListOffsets => list_offsets,
    CreateTopics => create_topics,
    DeleteTopics => delete_topics,
    DescribeConfigs => describe_configs,
    FindCoordinator => find_coordinator,
    JoinGroup => join_group,
    SyncGroup => sync_group,
    Heartbeat => heartbeat,
    LeaveGroup => leave_group,
    OffsetCommit => offset_commit,
    OffsetFetch => offset_fetch,
    ListGroups => list_groups,
    DescribeGroups => describe_groups,
    DescribeCluster => describe_cluster,
    DeleteGroups => delete_groups,
    OffsetDelete => offset_delete,
    TxnOffsetCommit => txn_offset_commit,
    InitProducerId => init_producer_id,
    CreatePartitions => create_partitions,
    AlterConfigs => alter_configs,
    IncrementalAlterConfigs => incremental_alter_configs,
    DescribeClientQuotas => describe_client_quotas,
    AlterClientQuotas => alter_client_quotas,
    ListConfigResources => list_config_resources,
    DeleteRecords => delete_records,
    OffsetForLeaderEpoch => offset_for_leader_epoch,
    DescribeLogDirs => describe_log_dirs,
    ElectLeaders => elect_leaders,
    AlterPartitionReassignments => alter_partition_reassignments,
    ListPartitionReassignments => list_partition_reassignments,
    AddPartitionsToTxn => add_partitions_to_txn,
    AddOffsetsToTxn => add_offsets_to_txn,
    EndTxn => end_txn,
    DescribeTransactions => describe_transactions,
    ListTransactions => list_transactions,
    DescribeProducers => describe_producers,
    DescribeQuorum => describe_quorum,
}

/// Whether ApiVersions lists `key` on this node: everything in the table, except the APIs only a
/// cluster node serves (see the module docs) on a single node.
pub fn advertised(key: ApiKey, cluster: bool) -> bool {
    cluster || key != ApiKey::DescribeQuorum
}

/// The supported version range of an API key, if the broker serves it.
pub fn supported_versions(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, min, max)| (min, max))
}

/// Runs the handler for a request whose version is in range, after its predecessor on the same
/// connection released it; errors become `Reply::Close`.
pub async fn dispatch(req: Request) -> Reply {
    let after = req.after.clone();
    after.wait().await;
    if let Some(until) = req.muted_until.get() {
        let now = Instant::now();
        if until > now {
            glommio::timer::sleep(until - now).await;
        }
    }
    let finish = |r: Result<Reply, HandlerError>| match r {
        Ok(r) => r,
        Err(e) => Reply::Close(e.to_string()),
    };
    // Clients with a `request_percentage` quota have their handler's poll time metered.
    match crate::server::request_quota::charge_for(&req) {
        None => finish(dispatch_inner(req).await),
        Some(charge) => {
            let (r, busy) = crate::quota::request_time::PollTimed::new(dispatch_inner(req)).await;
            charge.settle(finish(r), busy)
        }
    }
}

/// A Kafka topic name from a `&str`.
pub fn topic_name(s: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(sb(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Versions below kafka-protocol's range that `protocol::legacy_api` decodes by hand (or,
    /// for OffsetFetch v0, that share the v1 layout).
    fn hand_written_min(key: ApiKey) -> Option<i16> {
        match key {
            ApiKey::Produce
            | ApiKey::Fetch
            | ApiKey::ListOffsets
            | ApiKey::OffsetCommit
            | ApiKey::OffsetFetch => Some(0),
            _ => None,
        }
    }

    #[test]
    fn describe_quorum_is_advertised_only_in_a_cluster() {
        assert!(supported_versions(ApiKey::DescribeQuorum).is_some());
        assert!(!advertised(ApiKey::DescribeQuorum, false));
        assert!(advertised(ApiKey::DescribeQuorum, true));
        assert!(
            SUPPORTED_APIS
                .iter()
                .filter(|(k, _, _)| *k != ApiKey::DescribeQuorum)
                .all(|(k, _, _)| advertised(*k, false))
        );
    }

    #[test]
    fn table_is_within_codec_ranges() {
        for &(key, min, max) in SUPPORTED_APIS {
            let v = key.valid_versions();
            let codec_min = hand_written_min(key).unwrap_or(v.min);
            assert!(min <= max, "{key:?}");
            assert!(
                codec_min <= min && max <= v.max,
                "{key:?} {min}..{max} vs codec {v:?}"
            );
        }
    }
}
