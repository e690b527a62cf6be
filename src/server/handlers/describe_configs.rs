//! DescribeConfigs (key 32), v1–v4: topic configs and broker configs (resource name `""` for the
//! cluster-wide default layer or this broker's node id), each with its effective value, its source
//! (topic override, per-broker or cluster-wide dynamic, config file, default), and when asked its
//! synonyms (v1+) and type and documentation (v3+). Null or empty `configuration_keys` mean every
//! config. The layers are resolved by [`crate::config::dynamic`].

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
    DescribeConfigsSynonym,
};

use super::{HandlerError, Reply, Request};
use crate::config::dynamic::{Described, Layers};
use crate::metadata::alter::{ConfigTarget, RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::util::sb;

pub const MIN_VERSION: i16 = 1;
pub const MAX_VERSION: i16 = 4;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: DescribeConfigsRequest = req.decode()?;
    let ctx = req.ctx.clone();
    let snap = ctx.metadata();
    let layers = Layers {
        static_settings: &ctx.info.settings,
        overrides: &snap.broker_configs,
        node: ctx.info.node_id,
        effective: &snap.settings,
    };
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
        let described = match res.resource_type {
            RESOURCE_TOPIC => match snap.topic(name) {
                Some(t) => Ok(layers.describe_topic(&t.configs, wanted)),
                None => Err((
                    ResponseError::UnknownTopicOrPartition,
                    format!("unknown topic '{name}'"),
                )),
            },
            RESOURCE_BROKER => match ConfigTarget::broker(name, ctx.info.node_id) {
                Ok(_) => Ok(layers.describe_broker(name.is_empty(), wanted)),
                Err(e) => Err((e.response_error(), e.to_string())),
            },
            other => Err((
                ResponseError::InvalidRequest,
                format!("unsupported resource type {other}"),
            )),
        };
        results.push(match described {
            Ok(configs) => base.with_configs(
                configs
                    .into_iter()
                    .map(|d| entry(d, r.include_synonyms, r.include_documentation))
                    .collect(),
            ),
            Err((code, msg)) => base
                .with_error_code(code.code())
                .with_error_message(Some(sb(&msg))),
        });
    }
    req.respond(&DescribeConfigsResponse::default().with_results(results))
}

/// One config on the wire; synonyms and documentation only when the request asks for them.
fn entry(d: Described, synonyms: bool, documentation: bool) -> DescribeConfigsResourceResult {
    let synonyms = if synonyms {
        d.synonyms
            .iter()
            .map(|(n, v, s)| {
                DescribeConfigsSynonym::default()
                    .with_name(sb(n))
                    .with_value(v.as_deref().map(sb))
                    .with_source(s.code())
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(sb(&d.name))
        .with_value(d.value.as_deref().map(sb))
        .with_read_only(d.read_only)
        .with_config_source(d.source.code())
        .with_synonyms(synonyms)
        .with_config_type(d.ty.code())
        .with_documentation(documentation.then(|| sb(d.doc)))
}
