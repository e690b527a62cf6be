//! CreateTopics (key 19), v2–v7: partitions, replica assignments (single broker), configs,
//! validate_only; TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS, INVALID_TOPIC_EXCEPTION,
//! INVALID_REPLICATION_FACTOR, INVALID_CONFIG per topic.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::CreateTopicsRequest;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult, CreateTopicsResponse,
};

use super::{HandlerError, Reply, Request};
use crate::metadata::TopicError;
use crate::metadata::controller::{self, NewTopic};
use crate::util::sb;

pub const MIN_VERSION: i16 = 2;
pub const MAX_VERSION: i16 = 7;

/// DescribeConfigs/CreateTopics config sources.
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_DEFAULT: i8 = 5;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: CreateTopicsRequest = req.decode()?;
    let ctx = req.ctx.clone();
    let mut seen = HashSet::new();
    let dups: HashSet<String> = r
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.as_str().to_string()))
        .map(|t| t.name.0.as_str().to_string())
        .collect();
    let mut results = Vec::with_capacity(r.topics.len());
    for t in &r.topics {
        let name = t.name.0.as_str().to_string();
        let result = CreatableTopicResult::default().with_name(t.name.clone());
        let fail = |code: i16, msg: String| {
            result
                .clone()
                .with_error_code(code)
                .with_error_message(Some(sb(&msg)))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
        };
        if dups.contains(&name) {
            results.push(fail(
                ResponseError::InvalidRequest.code(),
                format!("topic '{name}' appears more than once in the request"),
            ));
            continue;
        }
        let mut partitions = t.num_partitions;
        let mut replication = t.replication_factor;
        if !t.assignments.is_empty() {
            if partitions != -1 || replication != -1 {
                results.push(fail(
                    ResponseError::InvalidRequest.code(),
                    "both assignments and partitions/replication factor given".into(),
                ));
                continue;
            }
            let node = ctx.info.node_id;
            let mut idx: Vec<i32> = t.assignments.iter().map(|a| a.partition_index).collect();
            idx.sort();
            let contiguous = idx.iter().enumerate().all(|(i, p)| *p == i as i32);
            let single = t
                .assignments
                .iter()
                .all(|a| a.broker_ids.len() == 1 && a.broker_ids[0].0 == node);
            if !contiguous || !single {
                results.push(fail(
                    ResponseError::InvalidReplicaAssignment.code(),
                    format!("replica assignment must give partitions 0..n to broker {node}"),
                ));
                continue;
            }
            partitions = t.assignments.len() as i32;
            replication = 1;
        }
        let mut configs = BTreeMap::new();
        let mut null_config = None;
        for c in &t.configs {
            match &c.value {
                Some(v) => {
                    configs.insert(c.name.as_str().to_string(), v.as_str().to_string());
                }
                None => null_config = Some(c.name.as_str().to_string()),
            }
        }
        if let Some(n) = null_config {
            results.push(fail(
                ResponseError::InvalidConfig.code(),
                format!("null value for config {n}"),
            ));
            continue;
        }
        let res = controller::create_topic(
            NewTopic {
                name: name.clone(),
                partitions,
                replication_factor: replication,
                configs: configs.clone(),
            },
            r.validate_only,
        )
        .await;
        match res {
            Ok(meta) => {
                let described = ctx
                    .info
                    .settings
                    .describe_topic(&meta.configs)
                    .into_iter()
                    .map(|(n, v, is_default)| {
                        CreatableTopicConfigs::default()
                            .with_name(sb(&n))
                            .with_value(Some(sb(&v)))
                            .with_config_source(if is_default {
                                SOURCE_DEFAULT
                            } else {
                                SOURCE_TOPIC
                            })
                    })
                    .collect();
                results.push(
                    result
                        .with_topic_id(if r.validate_only {
                            uuid::Uuid::nil()
                        } else {
                            meta.id
                        })
                        .with_num_partitions(meta.partitions)
                        .with_replication_factor(1)
                        .with_configs(Some(described)),
                );
            }
            Err(e) => {
                if !matches!(e, TopicError::AlreadyExists(_)) {
                    tracing::info!(topic = %name, error = %e, "create topic refused");
                }
                results.push(fail(e.error_code(), e.to_string()));
            }
        }
    }
    req.respond(&CreateTopicsResponse::default().with_topics(results))
}
