//! DescribeCluster (key 60), v0–v2 (KIP-700): the cluster id, the controller and the brokers,
//! and with `include_cluster_authorized_operations` the cluster's authorized operations
//! ([`authz`]). kafka-clients' `Admin.describeCluster` uses it when the broker offers it
//! (librdkafka asks Metadata v10 instead).
//!
//! Ringbolt is one node that is both broker and controller, reached through its one listener, so
//! it answers the way a Kafka *broker* endpoint does: `endpoint_type` BROKER (1, the default) is
//! served; CONTROLLER (2), which clients send only to `bootstrap.controllers` endpoints, gets
//! MISMATCHED_ENDPOINT_TYPE, any other value UNSUPPORTED_ENDPOINT_TYPE (v0 has no such field: the
//! decoder gives it the default, BROKER). As in Kafka's KRaft broker,
//! the controller id reported is an alive broker's: this node's. v2's `include_fenced_brokers`
//! changes nothing, as this broker is never fenced.
//!
//! In a cluster the brokers are those of the replicated image (fenced ones only with v2's
//! `include_fenced_brokers`, marked `is_fenced`) and the controller is the metadata quorum's
//! leader.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_cluster_response::{
    DescribeClusterBroker, DescribeClusterResponse,
};

use super::{HandlerError, Reply, Request};
use crate::server::authz;
use crate::util::sb;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

const ENDPOINT_BROKER: i8 = 1;
const ENDPOINT_CONTROLLER: i8 = 2;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: DescribeClusterRequest = req.decode()?;
    if r.endpoint_type != ENDPOINT_BROKER {
        let (code, msg) = match r.endpoint_type {
            ENDPOINT_CONTROLLER => (
                ResponseError::MismatchedEndpointType.code(),
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of \
                 type CONTROLLER"
                    .to_string(),
            ),
            other => (
                ResponseError::UnsupportedEndpointType.code(),
                format!("Unsupported endpoint type {other}"),
            ),
        };
        return req.respond(
            &DescribeClusterResponse::default()
                .with_error_code(code)
                .with_error_message(Some(sb(&msg))),
        );
    }
    let info = &req.ctx.info;
    let node = BrokerId(info.node_id);
    let ops = if r.include_cluster_authorized_operations {
        authz::cluster_authorized_operations(req.principal())
    } else {
        authz::NOT_REQUESTED
    };
    let image = req.ctx.with_metadata(|m| m.cluster.clone());
    let (controller, brokers) = match (image, &info.quorum) {
        (Some(image), Some(quorum)) => (
            BrokerId(quorum.status().leader_id),
            image
                .brokers
                .values()
                .filter(|b| !b.fenced || r.include_fenced_brokers)
                .map(|b| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.id))
                        .with_host(sb(&b.host))
                        .with_port(b.port)
                        .with_rack(b.rack.as_deref().map(sb))
                        .with_is_fenced(b.fenced)
                })
                .collect(),
        ),
        _ => (
            node,
            vec![
                DescribeClusterBroker::default()
                    .with_broker_id(node)
                    .with_host(sb(&info.advertised_host))
                    .with_port(info.advertised_port)
                    .with_rack(None)
                    .with_is_fenced(false),
            ],
        ),
    };
    let resp = DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_BROKER)
        .with_cluster_id(sb(&info.cluster_id))
        .with_controller_id(controller)
        .with_brokers(brokers)
        .with_cluster_authorized_operations(ops);
    req.respond(&resp)
}
