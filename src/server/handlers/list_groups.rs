//! ListGroups (key 16), v0–v5: asks every shard's coordinator. States filter (v4+) matches
//! case-insensitively as Kafka; every group is a "classic" group (types filter, v5).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::GroupId;
use kafka_protocol::messages::list_groups_request::ListGroupsRequest;
use kafka_protocol::messages::list_groups_response::{ListGroupsResponse, ListedGroup};

use super::{HandlerError, Reply, Request};
use crate::group::shard::coordinator;
use crate::protocol::errors;
use crate::shard::run_on;
use crate::util::sb;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: ListGroupsRequest = req.decode()?;
    let v = req.version;
    let mut error = errors::NONE;
    let mut all = Vec::new();
    for shard in 0..req.ctx.n_shards {
        let listed = run_on(shard, |ctx| async move {
            coordinator(&ctx).map(|c| {
                c.list()
                    .into_iter()
                    .map(|g| (g.group_id, g.protocol_type, g.state.name()))
                    .collect::<Vec<_>>()
            })
        })
        .await;
        match listed {
            Ok(Some(groups)) => all.extend(groups),
            _ => error = ResponseError::CoordinatorNotAvailable.code(),
        }
    }
    let states: Vec<String> = r.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = r.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let groups = all
        .into_iter()
        .filter(|(_, _, state)| states.is_empty() || states.contains(&state.to_lowercase()))
        .filter(|_| types.is_empty() || types.iter().any(|t| t == "classic"))
        .map(|(id, ptype, state)| {
            let mut g = ListedGroup::default()
                .with_group_id(GroupId(sb(&id)))
                .with_protocol_type(sb(&ptype));
            if v >= 4 {
                g = g.with_group_state(sb(state));
            }
            if v >= 5 {
                g = g.with_group_type(sb("classic"));
            }
            g
        })
        .collect();
    req.respond(
        &ListGroupsResponse::default()
            .with_error_code(error)
            .with_groups(groups),
    )
}
