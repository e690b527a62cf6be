//! Enforcing `request_percentage` quotas on one request: the handler's poll time is metered after
//! it answered, the connection is muted for the throttle time and the answer's `throttle_time_ms`
//! raised to it where the field's place is known (see [`crate::quota`] for the model and why).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

use super::fetch_response::Chunk;
use super::handlers::{Reply, Request};
use crate::quota::request_time::nanos_to_percentage;
use crate::quota::{self, MeterKey, REQUEST_PERCENTAGE, rate::WINDOW_MS};
use crate::shard::ShardCtx;

/// What to charge a request of a client that has a request quota, taken before its handler runs
/// (the handler consumes the [`Request`]).
pub struct Charge {
    ctx: Rc<ShardCtx>,
    quota: f64,
    meter: MeterKey,
    api: ApiKey,
    version: i16,
    muted_until: Rc<Cell<Option<Instant>>>,
}

/// The request quota that governs `req`'s client, if any. Without any `request_percentage` quota
/// configured this is one scan of the (usually empty) quota table, no allocation.
pub fn charge_for(req: &Request) -> Option<Charge> {
    let client_id = req.header.client_id.as_deref().unwrap_or("");
    let (quota, meter) = req.ctx.with_metadata(|snap| {
        if !quota::any_has(&snap.quotas, REQUEST_PERCENTAGE) {
            return None;
        }
        quota::resolve(
            &snap.quotas,
            REQUEST_PERCENTAGE,
            &req.principal().name,
            client_id,
        )
    })?;
    Some(Charge {
        ctx: req.ctx.clone(),
        quota,
        meter,
        api: req.api_key,
        version: req.version,
        muted_until: req.muted_until.clone(),
    })
}

impl Charge {
    /// Records `busy` (the handler's poll time) and throttles: mutes the connection and, where the
    /// answer has `throttle_time_ms` first, raises it to the throttle time.
    pub fn settle(self, reply: Reply, busy: Duration) -> Reply {
        let now = crate::util::now_ms().max(0) as u64;
        // Kafka bounds a request-time throttle by one window (`quota.window.size.seconds`).
        let ms = self.ctx.info.quota_meters.record_value(
            self.meter,
            self.quota,
            nanos_to_percentage(busy.as_nanos()),
            now,
            WINDOW_MS,
        );
        if ms == 0 {
            return reply;
        }
        let until = Instant::now() + Duration::from_millis(ms);
        if self.muted_until.get().is_none_or(|u| u < until) {
            self.muted_until.set(Some(until));
        }
        match reply {
            Reply::Frame(frame) => Reply::Frame(raise_throttle(frame, self.api, self.version, ms)),
            // A zero-copy Fetch: its header and throttle time are in the first (memory) chunk.
            Reply::Chunked(mut frame) => {
                if let Some(Chunk::Bytes(head)) = frame.chunks.first_mut() {
                    *head = raise_throttle(head.clone(), self.api, self.version, ms);
                }
                Reply::Chunked(frame)
            }
            other => other,
        }
    }
}

/// The lowest version from which `throttle_time_ms` is the first field of `api`'s response body,
/// or `None` where it never is (Produce has it last, ApiVersions after its key table, OffsetDelete
/// after its error code). Checked against kafka-protocol's codecs by the test below.
fn throttle_leads_from(api: ApiKey) -> Option<i16> {
    use ApiKey::*;
    Some(match api {
        Fetch | FindCoordinator | Heartbeat | LeaveGroup | SyncGroup | DescribeGroups
        | ListGroups | DeleteTopics => 1,
        ListOffsets | JoinGroup | CreateTopics | OffsetForLeaderEpoch => 2,
        Metadata | OffsetCommit | OffsetFetch => 3,
        DeleteRecords
        | InitProducerId
        | DescribeConfigs
        | AlterConfigs
        | DescribeLogDirs
        | CreatePartitions
        | DeleteGroups
        | ElectLeaders
        | IncrementalAlterConfigs
        | AlterPartitionReassignments
        | ListPartitionReassignments
        | DescribeClientQuotas
        | AlterClientQuotas
        | DescribeCluster
        | ListConfigResources
        | AddPartitionsToTxn
        | AddOffsetsToTxn
        | EndTxn
        | DescribeTransactions
        | ListTransactions
        | TxnOffsetCommit
        | DescribeProducers => 0,
        _ => return None,
    })
}

/// Where `throttle_time_ms` sits in an encoded frame of `api` at `version`, if it is known: after
/// the header where it leads the body; for Produce (v1+), where it ends the body, before the
/// body's tagged fields in flexible versions (only when there are none: Ringbolt sets no
/// `node_endpoints`, so the frame ends with the empty count, one zero byte).
fn throttle_offset(frame: &[u8], api: ApiKey, version: i16) -> Option<usize> {
    let flexible = api.response_header_version(version) >= 1;
    if throttle_leads_from(api).is_some_and(|min| version >= min) {
        // Size prefix, correlation id, and for a flexible header its (empty) tagged fields:
        // one byte, as `protocol::frame::start_frame` writes them.
        return Some(8 + usize::from(flexible));
    }
    if api == ApiKey::Produce && version >= 1 {
        return if flexible {
            (frame.last() == Some(&0)).then(|| frame.len().checked_sub(5))?
        } else {
            frame.len().checked_sub(4)
        };
    }
    None
}

/// Sets the `throttle_time_ms` of an encoded response frame to at least `ms`, where its place is
/// known ([`throttle_offset`]); other frames are returned unchanged.
fn raise_throttle(frame: Bytes, api: ApiKey, version: i16, ms: u64) -> Bytes {
    let Some(at) = throttle_offset(&frame, api, version) else {
        return frame;
    };
    // A frame's header alone takes 8 bytes: a throttle time can never start before it.
    if at < 8 {
        return frame;
    }
    let Some(old) = frame.get(at..at + 4) else {
        return frame;
    };
    let old = i32::from_be_bytes([old[0], old[1], old[2], old[3]]);
    let new = i32::try_from(ms).unwrap_or(i32::MAX);
    if new <= old {
        return frame;
    }
    let mut m = BytesMut::from(frame);
    m[at..at + 4].copy_from_slice(&new.to_be_bytes());
    m.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::handlers::{SUPPORTED_APIS, encode_frame};
    use kafka_protocol::messages::*;

    const MARK: i32 = 0x0102_0304;

    /// The frame of `api`'s default response at `version` with `throttle_time_ms` = [`MARK`],
    /// `None` where the codec refuses the version.
    fn marked(api: ApiKey, version: i16) -> Option<Bytes> {
        // Its response has no throttle_time_ms (a controller API in Kafka).
        if api == ApiKey::DescribeQuorum {
            return None;
        }
        macro_rules! enc {
            ($($key:ident => $ty:ty),* $(,)?) => {
                match api {
                    $(ApiKey::$key => encode_frame(
                        api, 7, version, &<$ty>::default().with_throttle_time_ms(MARK)).ok(),)*
                    other => panic!("no response type listed for {other:?}"),
                }
            };
        }
        enc! {
            Produce => ProduceResponse, Fetch => FetchResponse, ListOffsets => ListOffsetsResponse,
            Metadata => MetadataResponse, OffsetCommit => OffsetCommitResponse,
            OffsetFetch => OffsetFetchResponse, FindCoordinator => FindCoordinatorResponse,
            JoinGroup => JoinGroupResponse, Heartbeat => HeartbeatResponse,
            LeaveGroup => LeaveGroupResponse, SyncGroup => SyncGroupResponse,
            DescribeGroups => DescribeGroupsResponse, ListGroups => ListGroupsResponse,
            ApiVersions => ApiVersionsResponse, CreateTopics => CreateTopicsResponse,
            DeleteTopics => DeleteTopicsResponse, DeleteRecords => DeleteRecordsResponse,
            InitProducerId => InitProducerIdResponse,
            OffsetForLeaderEpoch => OffsetForLeaderEpochResponse,
            DescribeConfigs => DescribeConfigsResponse, AlterConfigs => AlterConfigsResponse,
            DescribeLogDirs => DescribeLogDirsResponse,
            CreatePartitions => CreatePartitionsResponse, DeleteGroups => DeleteGroupsResponse,
            ElectLeaders => ElectLeadersResponse,
            IncrementalAlterConfigs => IncrementalAlterConfigsResponse,
            AlterPartitionReassignments => AlterPartitionReassignmentsResponse,
            ListPartitionReassignments => ListPartitionReassignmentsResponse,
            OffsetDelete => OffsetDeleteResponse,
            DescribeClientQuotas => DescribeClientQuotasResponse,
            AlterClientQuotas => AlterClientQuotasResponse,
            DescribeCluster => DescribeClusterResponse,
            ListConfigResources => ListConfigResourcesResponse,
            AddPartitionsToTxn => AddPartitionsToTxnResponse,
            AddOffsetsToTxn => AddOffsetsToTxnResponse, EndTxn => EndTxnResponse,
            DescribeTransactions => DescribeTransactionsResponse,
            ListTransactions => ListTransactionsResponse,
            TxnOffsetCommit => TxnOffsetCommitResponse,
            DescribeProducers => DescribeProducersResponse,
        }
    }

    /// For every API and version served, [`throttle_offset`] points at `throttle_time_ms` exactly
    /// where the codec wrote it, and patching a frame writes the new value there.
    #[test]
    fn offsets_match_the_codecs() {
        let mut patched = 0;
        for &(api, min, max) in SUPPORTED_APIS {
            let codec_min = api.valid_versions().min;
            for v in min.max(codec_min)..=max {
                let Some(frame) = marked(api, v) else {
                    // The codec refuses a set field the version lacks: no place can be known.
                    assert!(
                        throttle_leads_from(api).is_none_or(|m| v < m) && api != ApiKey::Produce,
                        "{api:?} v{v}"
                    );
                    continue;
                };
                let read = |f: &Bytes, at: usize| {
                    f.get(at..at + 4)
                        .map(|b| i32::from_be_bytes(b.try_into().unwrap()))
                };
                match throttle_offset(&frame, api, v) {
                    Some(at) => {
                        assert_eq!(read(&frame, at), Some(MARK), "{api:?} v{v}");
                        let raised = raise_throttle(frame.clone(), api, v, MARK as u64 + 5);
                        assert_eq!(read(&raised, at), Some(MARK + 5), "{api:?} v{v}");
                        assert_eq!(raised.len(), frame.len());
                        // A smaller throttle keeps the larger one already there.
                        assert_eq!(raise_throttle(frame.clone(), api, v, 1), frame);
                        patched += 1;
                    }
                    None => {
                        // Only where the field is neither first nor Produce's last.
                        let head = 8 + usize::from(api.response_header_version(v) >= 1);
                        assert_ne!(read(&frame, head), Some(MARK), "{api:?} v{v} leads");
                        assert_eq!(raise_throttle(frame.clone(), api, v, 99_999), frame);
                    }
                }
            }
        }
        assert!(patched > 100, "{patched}");
    }
}
