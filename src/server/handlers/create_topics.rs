//! CreateTopics (key 19), v2–v7: partitions, replica assignments, replication factor, configs,
//! validate_only; TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS, INVALID_TOPIC_EXCEPTION,
//! INVALID_REPLICATION_FACTOR, INVALID_CONFIG per topic; THROTTLING_QUOTA_EXCEEDED from v6 for a
//! client over its `controller_mutation_rate` (see [`crate::quota`]; older versions are throttled).
//!
//! On a single node the replication factor is 1 (or -1) and an assignment gives every partition
//! to this broker. In a cluster -1 means `default.replication.factor`, a factor above the live
//! brokers is INVALID_REPLICATION_FACTOR, and an assignment names any registered brokers
//! (`metadata::cluster`).

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult, CreateTopicsResponse,
};

use super::{HandlerError, Reply, Request};
use crate::config::dynamic::Layers;
use crate::metadata::TopicError;
use crate::metadata::controller::{self, NewTopic};
use crate::server::mutation_quota::{EXCEEDED_MESSAGE, MutationQuota};
use crate::shard::ShardCtx;
use crate::util::sb;

pub const MIN_VERSION: i16 = 2;
pub const MAX_VERSION: i16 = 7;

/// Decodes, checks each topic, creates the ones that pass through the controller, answers per
/// topic.
pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: CreateTopicsRequest = req.decode()?;
    let ctx = req.ctx.clone();
    let dups = duplicates(&r);
    let mut quota = MutationQuota::for_request(&req, 6);
    let mut results = Vec::with_capacity(r.topics.len());
    for t in &r.topics {
        let result = CreatableTopicResult::default().with_name(t.name.clone());
        let answer = match new_topic(t, &dups, ctx.info.node_id, ctx.info.quorum.is_some()) {
            Ok(new) => match quota.admit() {
                Ok(()) => {
                    let res = create(&ctx, new, r.validate_only, result).await;
                    if res.error_code == 0 {
                        quota.record(res.num_partitions);
                    }
                    res
                }
                Err(code) => refused(result, code, EXCEEDED_MESSAGE.into()),
            },
            Err((code, msg)) => refused(result, code, msg),
        };
        results.push(answer);
    }
    let throttle = quota.finish(&req);
    req.respond(
        &CreateTopicsResponse::default()
            .with_throttle_time_ms(throttle)
            .with_topics(results),
    )
}

/// Replica lists, one per partition, preferred leader first.
type Assignment = Vec<Vec<i32>>;

/// Why a topic is not created: its error code and message.
type Refusal = (i16, String);

/// The names that appear more than once in the request (each such topic is refused).
fn duplicates(r: &CreateTopicsRequest) -> HashSet<String> {
    crate::util::repeated(r.topics.iter().map(|t| t.name.0.as_str().to_string()))
}

/// Checks one requested topic, in this order: named once, its size, its configs.
fn new_topic(
    t: &CreatableTopic,
    dups: &HashSet<String>,
    node: i32,
    cluster: bool,
) -> Result<NewTopic, Refusal> {
    let name = t.name.0.as_str().to_string();
    if dups.contains(&name) {
        return Err((
            ResponseError::InvalidRequest.code(),
            format!("topic '{name}' appears more than once in the request"),
        ));
    }
    let (partitions, replication_factor, assignments) = if cluster {
        cluster_size(t)?
    } else {
        let (p, rf) = size(t, node)?;
        (p, rf, None)
    };
    let configs = configs(t)?;
    Ok(NewTopic {
        name,
        partitions,
        replication_factor,
        configs,
        assignments,
    })
}

/// Cluster mode: as requested (the controller places the replicas and checks the factor against
/// the live brokers), or the given replica assignment, which must number the partitions 0..n; the
/// controller checks its brokers.
fn cluster_size(t: &CreatableTopic) -> Result<(i32, i16, Option<Assignment>), Refusal> {
    if t.assignments.is_empty() {
        return Ok((t.num_partitions, t.replication_factor, None));
    }
    if t.num_partitions != -1 || t.replication_factor != -1 {
        return Err((
            ResponseError::InvalidRequest.code(),
            "both assignments and partitions/replication factor given".into(),
        ));
    }
    let mut by_index: Vec<_> = t.assignments.iter().collect();
    by_index.sort_by_key(|a| a.partition_index);
    if by_index
        .iter()
        .enumerate()
        .any(|(i, a)| a.partition_index != i as i32)
    {
        return Err((
            ResponseError::InvalidReplicaAssignment.code(),
            "replica assignment must number the partitions 0..n".into(),
        ));
    }
    let lists: Vec<Vec<i32>> = by_index
        .iter()
        .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
        .collect();
    let rf = lists.first().map(|l| l.len()).unwrap_or(0) as i16;
    Ok((lists.len() as i32, rf, Some(lists)))
}

/// (partitions, replication factor): as requested (the controller checks them), or from a
/// replica assignment, which on a single broker must give partitions 0..n to this broker.
fn size(t: &CreatableTopic, node: i32) -> Result<(i32, i16), Refusal> {
    if t.assignments.is_empty() {
        return Ok((t.num_partitions, t.replication_factor));
    }
    if t.num_partitions != -1 || t.replication_factor != -1 {
        return Err((
            ResponseError::InvalidRequest.code(),
            "both assignments and partitions/replication factor given".into(),
        ));
    }
    let mut idx: Vec<i32> = t.assignments.iter().map(|a| a.partition_index).collect();
    idx.sort();
    let contiguous = idx.iter().enumerate().all(|(i, p)| *p == i as i32);
    let single = t
        .assignments
        .iter()
        .all(|a| a.broker_ids.len() == 1 && a.broker_ids[0].0 == node);
    if !contiguous || !single {
        return Err((
            ResponseError::InvalidReplicaAssignment.code(),
            format!("replica assignment must give partitions 0..n to broker {node}"),
        ));
    }
    Ok((t.assignments.len() as i32, 1))
}

/// The requested configs; a null value is INVALID_CONFIG (the last one named in the message).
fn configs(t: &CreatableTopic) -> Result<BTreeMap<String, String>, Refusal> {
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
    match null_config {
        Some(n) => Err((
            ResponseError::InvalidConfig.code(),
            format!("null value for config {n}"),
        )),
        None => Ok(configs),
    }
}

/// Creates the topic through the controller (with `validate_only`, only validates it): its id,
/// size and effective configs, or the controller's refusal.
async fn create(
    ctx: &ShardCtx,
    new: NewTopic,
    validate_only: bool,
    result: CreatableTopicResult,
) -> CreatableTopicResult {
    let name = new.name.clone();
    let rf = match &new.assignments {
        Some(a) => a.first().map(|l| l.len() as i16).unwrap_or(-1),
        None if new.replication_factor == -1 => ctx.settings().default_replication_factor,
        None => new.replication_factor,
    };
    match controller::create_topic(new, validate_only).await {
        Ok(meta) => {
            let snap = ctx.metadata();
            let layers = Layers {
                static_settings: &ctx.info.settings,
                overrides: &snap.broker_configs,
                node: ctx.info.node_id,
                effective: &snap.settings,
            };
            let described = layers
                .describe_topic(&meta.configs, |_| true)
                .into_iter()
                .map(|d| {
                    CreatableTopicConfigs::default()
                        .with_name(sb(&d.name))
                        .with_value(d.value.as_deref().map(sb))
                        .with_read_only(d.read_only)
                        .with_config_source(d.source.code())
                })
                .collect();
            result
                .with_topic_id(if validate_only {
                    uuid::Uuid::nil()
                } else {
                    meta.id
                })
                .with_num_partitions(meta.partitions)
                .with_replication_factor(replication_factor(ctx, &meta.name, rf))
                .with_configs(Some(described))
        }
        Err(e) => {
            if !matches!(e, TopicError::AlreadyExists(_)) {
                tracing::info!(topic = %name, error = %e, "create topic refused");
            }
            refused(result, e.error_code(), e.to_string())
        }
    }
}

/// The replication factor to report: 1 on a single node; in a cluster the created topic's (its
/// first partition's replica count), or the requested one for `validate_only`.
fn replication_factor(ctx: &ShardCtx, topic: &str, requested: i16) -> i16 {
    if ctx.info.quorum.is_none() {
        return 1;
    }
    ctx.with_metadata(|m| {
        m.cluster
            .as_ref()
            .and_then(|i| i.partition(topic, 0))
            .map(|p| p.replicas.len() as i16)
    })
    .unwrap_or(requested)
}

/// A topic's answer when it is not created.
fn refused(result: CreatableTopicResult, code: i16, msg: String) -> CreatableTopicResult {
    result
        .with_error_code(code)
        .with_error_message(Some(sb(&msg)))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
}
