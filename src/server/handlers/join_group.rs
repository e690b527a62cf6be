//! JoinGroup (key 11), v0–v9. Parks until the group's rebalance completes (see
//! `group::state`); v4+ dynamic members first get MEMBER_ID_REQUIRED with their member id,
//! static members (v5+ `group_instance_id`, KIP-345) join at once. A restarted static member
//! gets its old place back without a rebalance; v9 tells such a leader to skip the assignment.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequest;
use kafka_protocol::messages::join_group_response::{JoinGroupResponse, JoinGroupResponseMember};

use super::{HandlerError, Reply, Request};
use crate::group::shard::on_coordinator;
use crate::group::state::{JoinRequest, JoinResult, Protocol};
use crate::util::sb;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 9;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: JoinGroupRequest = req.decode()?;
    let v = req.version;
    let group = r.group_id.0.to_string();
    let jr = JoinRequest {
        req: 0,
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: req
            .header
            .client_id
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        client_host: req.client_host.to_string(),
        session_timeout_ms: r.session_timeout_ms,
        // v0 has no rebalance timeout; Kafka uses the session timeout.
        rebalance_timeout_ms: if v == 0 {
            r.session_timeout_ms
        } else {
            r.rebalance_timeout_ms
        },
        protocol_type: r.protocol_type.to_string(),
        protocols: r
            .protocols
            .iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata.clone(),
            })
            .collect(),
        require_known_member_id: v >= 4,
        supports_skip_assignment: v >= 9,
    };
    let member_id = jr.member_id.clone();
    let g = group.clone();
    let res = on_coordinator(
        &req.ctx,
        &group,
        move |c| async move { c.join(&g, jr).await },
    )
    .await
    .unwrap_or_else(|| JoinResult {
        error: ResponseError::CoordinatorNotAvailable.code(),
        generation_id: -1,
        member_id,
        ..Default::default()
    });
    let resp = JoinGroupResponse::default()
        .with_error_code(res.error)
        .with_generation_id(res.generation_id)
        .with_protocol_type(if v >= 7 {
            res.protocol_type.as_deref().map(sb)
        } else {
            None
        })
        .with_protocol_name(if v >= 7 {
            res.protocol_name.as_deref().map(sb)
        } else {
            Some(sb(res.protocol_name.as_deref().unwrap_or("")))
        })
        .with_leader(sb(&res.leader))
        .with_skip_assignment(v >= 9 && res.skip_assignment)
        .with_member_id(sb(&res.member_id))
        .with_members(
            res.members
                .iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(sb(&m.member_id))
                        .with_group_instance_id(if v >= 5 {
                            m.group_instance_id.as_deref().map(sb)
                        } else {
                            None
                        })
                        .with_metadata(m.metadata.clone())
                })
                .collect(),
        );
    req.respond(&resp)
}
