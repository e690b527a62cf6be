//! DescribeGroups (key 15), v0–v6. An unknown or deleted group is described as Dead: from v6
//! with GROUP_ID_NOT_FOUND and the message `"Group <id> not found."` (KIP-1043), before that with
//! no error, as Kafka 4.x answers (`GroupMetadataManager.describeGroups`). Member metadata and assignments
//! are shown only while the group is Stable; `client_host` is the member's connection address as
//! Kafka prints it (`/127.0.0.1`), taken when it (re)joined.
//!
//! v3+ with `include_authorized_operations` reports the group's authorized operations
//! ([`authz`]) for every group described without error, as Kafka does; a group answered with an
//! error keeps the schema default ([`authz::NOT_REQUESTED`]).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::describe_groups_response::{
    DescribeGroupsResponse, DescribedGroup, DescribedGroupMember,
};

use super::{HandlerError, Reply, Request};
use crate::group::shard::on_coordinator;
use crate::protocol::errors;
use crate::server::authz::{self, ResourceType};
use crate::util::sb;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 6;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: DescribeGroupsRequest = req.decode()?;
    let v = req.version;
    let mut out = Vec::with_capacity(r.groups.len());
    for gid in &r.groups {
        let g = gid.0.to_string();
        let found =
            on_coordinator(&req.ctx, &g.clone(), move |c| async move { c.describe(&g) }).await;
        let mut d = DescribedGroup::default().with_group_id(gid.clone());
        let Some((mut code, desc)) = found else {
            out.push(d.with_error_code(ResponseError::CoordinatorNotAvailable.code()));
            continue;
        };
        if code == ResponseError::GroupIdNotFound.code() {
            if v >= 6 {
                d = d.with_error_message(Some(sb(&format!("Group {} not found.", gid.0))));
            } else {
                code = errors::NONE;
            }
        }
        if v >= 3 && r.include_authorized_operations && code == errors::NONE {
            d = d.with_authorized_operations(authz::authorized_operations(
                ResourceType::Group,
                gid.0.as_str(),
                req.principal(),
            ));
        }
        d = d
            .with_error_code(code)
            .with_group_state(sb(desc.state.name()))
            .with_protocol_type(sb(&desc.protocol_type))
            .with_protocol_data(sb(&desc.protocol))
            .with_members(
                desc.members
                    .iter()
                    .map(|m| {
                        DescribedGroupMember::default()
                            .with_member_id(sb(&m.member_id))
                            .with_group_instance_id(if v >= 4 {
                                m.group_instance_id.as_deref().map(sb)
                            } else {
                                None
                            })
                            .with_client_id(sb(&m.client_id))
                            .with_client_host(sb(&m.client_host))
                            .with_member_metadata(m.metadata.clone())
                            .with_member_assignment(m.assignment.clone())
                    })
                    .collect(),
            );
        out.push(d);
    }
    req.respond(&DescribeGroupsResponse::default().with_groups(out))
}
