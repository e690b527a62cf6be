//! DeleteGroups (key 42), v0–v2: only empty groups (NON_EMPTY_GROUP otherwise); their committed
//! offsets are deleted durably (tombstones in the offsets log).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use kafka_protocol::messages::delete_groups_response::{
    DeletableGroupResult, DeleteGroupsResponse,
};

use super::{HandlerError, Reply, Request};
use crate::group::shard::on_coordinator;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: DeleteGroupsRequest = req.decode()?;
    let mut results = Vec::with_capacity(r.groups_names.len());
    for gid in &r.groups_names {
        let g = gid.0.to_string();
        let code = on_coordinator(&req.ctx, &g.clone(), move |c| async move {
            c.delete_group(&g).await
        })
        .await
        .unwrap_or(ResponseError::CoordinatorNotAvailable.code());
        results.push(
            DeletableGroupResult::default()
                .with_group_id(gid.clone())
                .with_error_code(code),
        );
    }
    req.respond(&DeleteGroupsResponse::default().with_results(results))
}
