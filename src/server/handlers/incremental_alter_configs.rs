//! IncrementalAlterConfigs (key 44), v0–v1: SET / DELETE / APPEND / SUBTRACT on a topic's configs or
//! a dynamic broker layer (resource name `""` = cluster-wide default, or this broker's node id),
//! persisted and applied to the running partitions before the answer; `validate_only` checks
//! without changing anything. Per resource: INVALID_CONFIG (unknown name, wrong type, out of
//! range, not dynamically updatable, APPEND/SUBTRACT on a non-list), INVALID_REQUEST (duplicate
//! resource or key, null value, unknown operation or resource type),
//! UNKNOWN_TOPIC_OR_PARTITION. A refused resource changes nothing.

use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, IncrementalAlterConfigsRequest,
};
use kafka_protocol::messages::incremental_alter_configs_response::{
    AlterConfigsResourceResponse, IncrementalAlterConfigsResponse,
};

use super::{HandlerError, Reply, Request};
use crate::config::dynamic::AlterOp;
use crate::metadata::TopicError;
use crate::metadata::alter::{self, ConfigChange, ConfigTarget};
use crate::protocol::errors::NONE;
use crate::util::sb;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 1;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: IncrementalAlterConfigsRequest = req.decode()?;
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
    req.respond(&IncrementalAlterConfigsResponse::default().with_responses(responses))
}

async fn alter_one(
    res: &AlterConfigsResource,
    validate_only: bool,
    node: i32,
) -> Result<(), TopicError> {
    let target = ConfigTarget::from_resource(res.resource_type, res.resource_name.as_str(), node)?;
    let ops = res
        .configs
        .iter()
        .map(|c| {
            let name = c.name.to_string();
            let value = || {
                c.value.as_ref().map(|v| v.to_string()).ok_or_else(|| {
                    TopicError::InvalidRequest(format!("Null value not supported for : {name}"))
                })
            };
            Ok(match c.config_operation {
                0 => AlterOp::Set(name.clone(), value()?),
                1 => AlterOp::Delete(name),
                2 => AlterOp::Append(name.clone(), value()?),
                3 => AlterOp::Subtract(name.clone(), value()?),
                other => {
                    return Err(TopicError::InvalidRequest(format!(
                        "unknown config operation {other} for {name}"
                    )));
                }
            })
        })
        .collect::<Result<Vec<_>, TopicError>>()?;
    alter::alter_configs(target, ConfigChange::Incremental(ops), validate_only).await
}
