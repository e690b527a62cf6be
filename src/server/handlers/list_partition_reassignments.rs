//! ListPartitionReassignments (key 46), v0 (`kafka-reassign-partitions --list`,
//! `Admin.listPartitionReassignments`): on one node no reassignment is ever in progress
//! (AlterPartitionReassignments only accepts the current assignment, a no-op), so the answer
//! lists no topic, for `topics` null (all) as for named topics, unknown ones included: Kafka's
//! controller leaves out every partition without an ongoing reassignment and every unknown topic.
//! Without DESCRIBE on the cluster: CLUSTER_AUTHORIZATION_FAILED.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsRequest;
use kafka_protocol::messages::list_partition_reassignments_response::ListPartitionReassignmentsResponse;

use super::{HandlerError, Reply, Request};
use crate::server::authz::{self, AclOperation, CLUSTER_NAME, ResourceType};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 0;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let _r: ListPartitionReassignmentsRequest = req.decode()?;
    let resp = ListPartitionReassignmentsResponse::default().with_error_message(None);
    let resp = if authz::authorize(
        req.principal(),
        AclOperation::Describe,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        resp
    } else {
        resp.with_error_code(ResponseError::ClusterAuthorizationFailed.code())
    };
    req.respond(&resp)
}
