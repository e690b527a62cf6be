//! SyncGroup (key 14), v0–v5. Followers park until the leader's assignment arrives.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::sync_group_request::SyncGroupRequest;
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;

use super::{HandlerError, Reply, Request};
use crate::group::shard::on_coordinator;
use crate::group::state::{SyncRequest, SyncResult};
use crate::util::sb;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: SyncGroupRequest = req.decode()?;
    let group = r.group_id.0.to_string();
    let sr = SyncRequest {
        req: 0,
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.as_ref().map(|s| s.to_string()),
        generation_id: r.generation_id,
        protocol_type: r.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: r.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: r
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let g = group.clone();
    let res = on_coordinator(
        &req.ctx,
        &group,
        move |c| async move { c.sync(&g, sr).await },
    )
    .await
    .unwrap_or(SyncResult {
        error: ResponseError::CoordinatorNotAvailable.code(),
        ..Default::default()
    });
    let v5 = req.version >= 5;
    let resp = SyncGroupResponse::default()
        .with_error_code(res.error)
        .with_protocol_type(if v5 {
            res.protocol_type.as_deref().map(sb)
        } else {
            None
        })
        .with_protocol_name(if v5 {
            res.protocol_name.as_deref().map(sb)
        } else {
            None
        })
        .with_assignment(res.assignment);
    req.respond(&resp)
}
