//! AlterConfigs (key 33), v0–v2, the legacy whole-set form: the resource's overrides become exactly
//! the configs named (anything not named goes back to its default) on a topic or a dynamic broker
//! layer (resource name `""` = cluster-wide default, or this broker's node id),
//! persisted and applied to the running partitions before the answer; `validate_only` checks
//! without changing anything. Per resource: INVALID_CONFIG (unknown name, wrong type, out of
//! range, not dynamically updatable, not dynamically updatable), INVALID_REQUEST (duplicate resource or key,
//! null value, unknown resource type),
//! UNKNOWN_TOPIC_OR_PARTITION. A refused resource changes nothing.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_request::{AlterConfigsRequest, AlterConfigsResource};
use kafka_protocol::messages::alter_configs_response::{
    AlterConfigsResourceResponse, AlterConfigsResponse,
};

use super::{HandlerError, Reply, Request};
use crate::metadata::TopicError;
use crate::metadata::alter::{self, ConfigChange, ConfigTarget};
use crate::protocol::errors::NONE;
use crate::util::sb;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: AlterConfigsRequest = req.decode()?;
    let dups = crate::util::repeated(
        r.resources
            .iter()
            .map(|res| (res.resource_type, res.resource_name.to_string())),
    );
    let mut responses = Vec::with_capacity(r.resources.len());
    for res in &r.resources {
        let key = (res.resource_type, res.resource_name.to_string());
        let outcome = if dups.contains(&key) {
            Err(TopicError::InvalidRequest(format!(
                "resource '{}' of type {} appears more than once",
                key.1, key.0
            )))
        } else {
            alter_one(res, r.validate_only, req.ctx.info.node_id).await
        };
        let resp = AlterConfigsResourceResponse::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        responses.push(match outcome {
            Ok(()) => resp.with_error_code(NONE),
            Err(e) => {
                tracing::info!(resource = %key.1, error = %e, "alter configs refused");
                resp.with_error_code(e.error_code())
                    .with_error_message(Some(sb(&e.to_string())))
            }
        });
    }
    req.respond(&AlterConfigsResponse::default().with_responses(responses))
}

async fn alter_one(
    res: &AlterConfigsResource,
    validate_only: bool,
    node: i32,
) -> Result<(), TopicError> {
    let target = ConfigTarget::from_resource(res.resource_type, res.resource_name.as_str(), node)?;
    let mut configs = BTreeMap::new();
    for c in &res.configs {
        let name = c.name.to_string();
        let Some(v) = &c.value else {
            return Err(TopicError::InvalidRequest(format!(
                "Null value not supported for : {name}"
            )));
        };
        if configs.insert(name.clone(), v.to_string()).is_some() {
            return Err(TopicError::InvalidRequest(format!(
                "Error due to duplicate config keys: {name}"
            )));
        }
    }
    alter::alter_configs(target, ConfigChange::Replace(configs), validate_only).await
}
