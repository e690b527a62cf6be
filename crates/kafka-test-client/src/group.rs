//! Consumer-group requests as a classic (pre-KIP-848) consumer sends them: protocol type
//! `consumer`, one assignor, `range`.

use bytes::Bytes;
use kafka_protocol::messages::GroupId;
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};

use crate::requests::sb;

/// JoinGroup of `member` ("" for a new member) with `timeout_ms` as both session and rebalance
/// timeout, offering the `range` assignor with `metadata`.
pub fn join_group_request(
    group: &str,
    member: &str,
    timeout_ms: i32,
    metadata: Bytes,
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_session_timeout_ms(timeout_ms)
        .with_rebalance_timeout_ms(timeout_ms)
        .with_member_id(sb(member))
        .with_protocol_type(sb("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(sb("range"))
                .with_metadata(metadata),
        ])
}

/// SyncGroup of `member` in `generation`; the leader passes every member's assignment, the others
/// none.
pub fn sync_group_request(
    group: &str,
    member: &str,
    generation: i32,
    assignments: &[(&str, &[u8])],
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id(generation)
        .with_member_id(sb(member))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(sb(m))
                        .with_assignment(Bytes::copy_from_slice(a))
                })
                .collect(),
        )
}

/// Heartbeat of `member` in `generation`.
pub fn heartbeat_request(group: &str, member: &str, generation: i32) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id(generation)
        .with_member_id(sb(member))
}
