//! OffsetDelete (key 47), v0: deletes committed offsets of partitions the group is not consuming
//! (GROUP_SUBSCRIBED_TO_TOPIC for topics a member subscribes to; NON_EMPTY_GROUP for active
//! groups of other protocol types; GROUP_ID_NOT_FOUND for unknown groups).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_delete_request::OffsetDeleteRequest;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponse, OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};

use super::{HandlerError, Reply, Request};
use crate::group::shard::on_coordinator;
use crate::protocol::errors;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 0;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: OffsetDeleteRequest = req.decode()?;
    let group = r.group_id.0.to_string();
    let parts: Vec<(String, i32)> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let g = group.clone();
    let (top, codes) = on_coordinator(&req.ctx, &group, move |c| async move {
        c.offset_delete(&g, parts).await
    })
    .await
    .unwrap_or((ResponseError::CoordinatorNotAvailable.code(), Vec::new()));
    let mut resp = OffsetDeleteResponse::default().with_error_code(top);
    if top == errors::NONE {
        let mut codes = codes.into_iter();
        resp = resp.with_topics(
            r.topics
                .iter()
                .map(|t| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(codes.next().unwrap_or(errors::NONE))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    }
    req.respond(&resp)
}
