//! Enforcing `request_percentage` quotas on one request: the handler's poll time is metered after
//! it answered, the connection is muted for the throttle time and the answer's `throttle_time_ms`
//! raised to it where the field leads the body (see [`crate::quota`] for the model and why).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

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
    let snap = req.ctx.metadata();
    if !quota::any_has(&snap.quotas, REQUEST_PERCENTAGE) {
        return None;
    }
    let client_id = req.header.client_id.as_deref().unwrap_or("");
    let (quota, meter) = quota::resolve(
        &snap.quotas,
        REQUEST_PERCENTAGE,
        &req.principal().name,
        client_id,
    )?;
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
            other => other,
        }
    }
}

/// The lowest version from which `throttle_time_ms` is the first field of `api`'s response body,
/// or `None` where it never is (Produce and ApiVersions have it last, OffsetDelete after its error
/// code). Checked against kafka-protocol's codecs by the test below.
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
        | ListConfigResources => 0,
        _ => return None,
    })
}

/// Sets the `throttle_time_ms` of an encoded response frame to at least `ms`, where it leads the
/// body; other frames are returned unchanged.
fn raise_throttle(frame: Bytes, api: ApiKey, version: i16, ms: u64) -> Bytes {
    if throttle_leads_from(api).is_none_or(|min| version < min) {
        return frame;
    }
    // Size prefix, correlation id, and for a flexible header its (empty) tagged fields: one byte,
    // as `protocol::frame::start_frame` writes them.
    let at = 8 + usize::from(api.response_header_version(version) >= 1);
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
        }
    }

    /// For every API and version served, the table says "leads" exactly when the codec writes
    /// `throttle_time_ms` first, and patching a zero-throttle frame writes the new value there.
    #[test]
    fn table_matches_the_codecs() {
        for &(api, min, max) in SUPPORTED_APIS {
            let codec_min = api.valid_versions().min;
            for v in min.max(codec_min)..=max {
                let Some(frame) = marked(api, v) else {
                    // The codec refuses a set field the version lacks: it cannot lead there.
                    assert!(
                        throttle_leads_from(api).is_none_or(|m| v < m),
                        "{api:?} v{v}"
                    );
                    continue;
                };
                let at = 8 + usize::from(api.response_header_version(v) >= 1);
                let first = frame
                    .get(at..at + 4)
                    .map(|b| i32::from_be_bytes(b.try_into().unwrap()));
                let leads = throttle_leads_from(api).is_some_and(|m| v >= m);
                assert_eq!(first == Some(MARK), leads, "{api:?} v{v}");
                if leads {
                    let raised = raise_throttle(frame.clone(), api, v, MARK as u64 + 5);
                    let got = i32::from_be_bytes(raised[at..at + 4].try_into().unwrap());
                    assert_eq!(got, MARK + 5, "{api:?} v{v}");
                    assert_eq!(raised.len(), frame.len());
                    // A smaller throttle keeps the larger one already there.
                    assert_eq!(raise_throttle(frame.clone(), api, v, 1), frame);
                } else {
                    assert_eq!(raise_throttle(frame.clone(), api, v, 99_999), frame);
                }
            }
        }
    }
}
