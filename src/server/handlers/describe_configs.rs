//! DescribeConfigs (key 32), v1–v4: topic configs (effective value, source TOPIC or DEFAULT) and
//! broker configs (resource name "" or this broker's node id). Null or empty
//! `configuration_keys` mean every config.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
};

use super::create_topics::{SOURCE_DEFAULT, SOURCE_TOPIC};
use super::{HandlerError, Reply, Request};
use crate::util::sb;

pub const MIN_VERSION: i16 = 1;
pub const MAX_VERSION: i16 = 4;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Config source STATIC_BROKER_CONFIG (server.properties / --config).
const SOURCE_STATIC_BROKER: i8 = 4;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: DescribeConfigsRequest = req.decode()?;
    let ctx = req.ctx.clone();
    let settings = &ctx.info.settings;
    let snap = ctx.metadata();
    let mut results = Vec::with_capacity(r.resources.len());
    for res in &r.resources {
        let name = res.resource_name.as_str();
        let wanted = |n: &str| {
            res.configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == n))
        };
        let base = DescribeConfigsResult::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        let entry = |n: &str, v: &str, source: i8| {
            DescribeConfigsResourceResult::default()
                .with_name(sb(n))
                .with_value(Some(sb(v)))
                .with_config_source(source)
        };
        let result = match res.resource_type {
            RESOURCE_TOPIC => match snap.topic(name) {
                Some(t) => base.with_configs(
                    settings
                        .describe_topic(&t.configs)
                        .into_iter()
                        .filter(|(n, _, _)| wanted(n))
                        .map(|(n, v, is_default)| {
                            entry(
                                &n,
                                &v,
                                if is_default {
                                    SOURCE_DEFAULT
                                } else {
                                    SOURCE_TOPIC
                                },
                            )
                        })
                        .collect(),
                ),
                None => base
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    .with_error_message(Some(sb(&format!("unknown topic '{name}'")))),
            },
            RESOURCE_BROKER if name.is_empty() || name == ctx.info.node_id.to_string() => base
                .with_configs(
                    settings
                        .describe_broker()
                        .into_iter()
                        .filter(|(n, _)| wanted(n))
                        .map(|(n, v)| entry(&n, &v, SOURCE_STATIC_BROKER).with_read_only(true))
                        .collect(),
                ),
            RESOURCE_BROKER => base
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(sb(&format!("unknown broker '{name}'")))),
            other => base
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(sb(&format!("unsupported resource type {other}")))),
        };
        results.push(result);
    }
    req.respond(&DescribeConfigsResponse::default().with_results(results))
}
