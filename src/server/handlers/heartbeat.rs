//! Heartbeat (key 12), v0–v4. REBALANCE_IN_PROGRESS tells a member to rejoin.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;

use super::{HandlerError, Reply, Request};
use crate::group::shard::on_coordinator;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 4;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: HeartbeatRequest = req.decode()?;
    let group = r.group_id.0.to_string();
    let member = r.member_id.to_string();
    let instance = r.group_instance_id.as_ref().map(|s| s.to_string());
    let generation = r.generation_id;
    let g = group.clone();
    let code = on_coordinator(&req.ctx, &group, move |c| async move {
        c.heartbeat(&g, &member, instance.as_deref(), generation)
    })
    .await
    .unwrap_or(ResponseError::CoordinatorNotAvailable.code());
    req.respond(&HeartbeatResponse::default().with_error_code(code))
}
