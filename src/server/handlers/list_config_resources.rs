//! ListConfigResources (key 74), v0–v1 (KIP-1142; v0 was ListClientMetricsResources): the
//! resources that can carry configs, by type. Topics (2) lists every topic, broker (4) this node;
//! client-metrics (16) and group (32) resources carry no configs in Ringbolt, so none are listed.
//! An empty type list (v1) means every type; v0 asks only for client-metrics resources. Other
//! types get UNSUPPORTED_VERSION, as Kafka answers types it does not list.
//! `kafka-configs --describe --entity-type client-metrics|groups` and
//! `kafka-client-metrics --list` use it.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_config_resources_request::ListConfigResourcesRequest;
use kafka_protocol::messages::list_config_resources_response::{
    ConfigResource, ListConfigResourcesResponse,
};

use super::{HandlerError, Reply, Request};
use crate::metadata::alter::{RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::util::sb;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 1;

const RESOURCE_CLIENT_METRICS: i8 = 16;
const RESOURCE_GROUP: i8 = 32;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: ListConfigResourcesRequest = req.decode()?;
    let types: Vec<i8> = if req.version == 0 {
        vec![RESOURCE_CLIENT_METRICS]
    } else if r.resource_types.is_empty() {
        vec![
            RESOURCE_TOPIC,
            RESOURCE_BROKER,
            RESOURCE_CLIENT_METRICS,
            RESOURCE_GROUP,
        ]
    } else {
        r.resource_types.clone()
    };
    if let Some(bad) = types.iter().find(|t| {
        ![
            RESOURCE_TOPIC,
            RESOURCE_BROKER,
            RESOURCE_CLIENT_METRICS,
            RESOURCE_GROUP,
        ]
        .contains(t)
    }) {
        tracing::debug!(resource_type = bad, "ListConfigResources: unsupported type");
        return req.respond(
            &ListConfigResourcesResponse::default()
                .with_error_code(ResponseError::UnsupportedVersion.code()),
        );
    }
    let snap = req.ctx.metadata();
    let mut out = Vec::new();
    for t in types {
        let names: Vec<String> = match t {
            RESOURCE_TOPIC => snap.topics.keys().cloned().collect(),
            RESOURCE_BROKER => vec![req.ctx.info.node_id.to_string()],
            _ => Vec::new(),
        };
        out.extend(names.into_iter().map(|n| {
            ConfigResource::default()
                .with_resource_name(sb(&n))
                .with_resource_type(t)
        }));
    }
    req.respond(&ListConfigResourcesResponse::default().with_config_resources(out))
}
