//! LeaveGroup (key 13), v0–v5: one member (v0–v2) or a batch identified by member id and/or
//! `group.instance.id` (v3+, KIP-345: an empty member id with an instance id removes that static
//! member at once, the admin "remove members" call), each with its own error code. An unknown
//! group is a request-level UNKNOWN_MEMBER_ID, as in Kafka.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::leave_group_request::LeaveGroupRequest;
use kafka_protocol::messages::leave_group_response::{LeaveGroupResponse, MemberResponse};

use super::{HandlerError, Reply, Request};
use crate::group::shard::on_coordinator;
use crate::protocol::errors;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: LeaveGroupRequest = req.decode()?;
    let group = r.group_id.0.to_string();
    let batched = req.version >= 3;
    let members: Vec<(String, Option<String>)> = if batched {
        r.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(r.member_id.to_string(), None)]
    };
    let g = group.clone();
    let ms = members.clone();
    let codes = on_coordinator(&req.ctx, &group, move |c| async move { c.leave(&g, &ms) }).await;
    let (top, codes) = match codes {
        Some(Ok(codes)) if batched => (errors::NONE, codes),
        Some(Ok(codes)) => (codes[0], codes),
        Some(Err(e)) => (e, Vec::new()),
        None => (ResponseError::CoordinatorNotAvailable.code(), Vec::new()),
    };
    let mut resp = LeaveGroupResponse::default().with_error_code(top);
    if batched && top == errors::NONE {
        resp = resp.with_members(
            r.members
                .iter()
                .zip(codes)
                .map(|(m, code)| {
                    MemberResponse::default()
                        .with_member_id(m.member_id.clone())
                        .with_group_instance_id(m.group_instance_id.clone())
                        .with_error_code(code)
                })
                .collect(),
        );
    }
    req.respond(&resp)
}
