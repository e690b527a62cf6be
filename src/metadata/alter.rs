//! Controller operations that change what exists: topic configs, dynamic broker configs and
//! partition counts.
//!
//! Each runs on the controller shard under the store's operation permit, so a read-modify-write
//! (an incremental config change, a partition count check) never races another change. As with
//! topic creation the order is validate → persist → publish, and the answer waits until every
//! shard applied the new snapshot: after an AlterConfigs answer the partitions' running logs have
//! the new config (`apply_snapshot` calls `PartitionLog::set_config`), and after a
//! CreatePartitions answer the new partitions are open on their owners.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use super::controller::{MetadataStore, publish, serialized};
use super::{MAX_PARTITIONS, TopicError, TopicMeta};
use crate::config::dynamic::{
    AlterError, AlterOp, CLUSTER_DEFAULT, Resource, apply_ops, effective_settings, validate_topic,
};
use crate::shard::ShardCtx;

/// How a resource's overrides change.
#[derive(Debug, Clone)]
pub enum ConfigChange {
    /// IncrementalAlterConfigs: operations on the current overrides.
    Incremental(Vec<AlterOp>),
    /// AlterConfigs: the complete new set of overrides (anything not named goes back to default).
    Replace(BTreeMap<String, String>),
}

/// Whose configs change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigTarget {
    Topic(String),
    /// The cluster-wide default layer ([`CLUSTER_DEFAULT`]) or a node id's layer.
    Broker(String),
}

/// ConfigResource types on the wire.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

impl ConfigTarget {
    /// The target of an (Incremental)AlterConfigs resource; other resource types (broker loggers,
    /// client metrics, groups) are refused with INVALID_REQUEST.
    pub fn from_resource(resource_type: i8, name: &str, node: i32) -> Result<Self, TopicError> {
        match resource_type {
            RESOURCE_TOPIC => Ok(ConfigTarget::Topic(name.to_string())),
            RESOURCE_BROKER => Self::broker(name, node),
            other => Err(TopicError::InvalidRequest(format!(
                "unsupported resource type {other}"
            ))),
        }
    }

    /// The broker layer for DescribeConfigs/AlterConfigs' broker resource name: `""` is the
    /// cluster-wide default, this node's id its own layer; other names are refused.
    pub fn broker(resource_name: &str, node: i32) -> Result<Self, TopicError> {
        if resource_name.is_empty() || resource_name == node.to_string() {
            Ok(ConfigTarget::Broker(resource_name.to_string()))
        } else if resource_name.parse::<i32>().is_ok() {
            Err(TopicError::InvalidRequest(format!(
                "broker {resource_name} is not this broker ({node})"
            )))
        } else {
            Err(TopicError::InvalidRequest(format!(
                "invalid broker name '{resource_name}'"
            )))
        }
    }
}

/// Changes (or with `validate_only` only checks) the configs of a topic or broker layer.
pub async fn alter_configs(
    target: ConfigTarget,
    change: ConfigChange,
    validate_only: bool,
) -> Result<(), TopicError> {
    serialized(move |ctx, store| async move {
        match target {
            ConfigTarget::Topic(name) => {
                alter_topic(&ctx, &store, name, change, validate_only).await
            }
            ConfigTarget::Broker(key) => {
                alter_broker(&ctx, &store, key, change, validate_only).await
            }
        }
    })
    .await
}

async fn alter_topic(
    ctx: &Rc<ShardCtx>,
    store: &MetadataStore,
    name: String,
    change: ConfigChange,
    validate_only: bool,
) -> Result<(), TopicError> {
    let old = store
        .topics
        .borrow()
        .get(&name)
        .cloned()
        .ok_or_else(|| TopicError::UnknownTopic(name.clone()))?;
    let settings = store.effective.borrow().clone();
    let next = match change {
        ConfigChange::Incremental(ops) => {
            let defaults = settings.topic_defaults();
            apply_ops(Resource::Topic, &old.configs, &ops, |n| {
                defaults.get(n).cloned()
            })?
        }
        ConfigChange::Replace(m) => m,
    };
    validate_topic(&settings, &next)?;
    if validate_only || next == old.configs {
        return Ok(());
    }
    if let Some(quorum) = ctx.info.quorum.clone() {
        let cmd = crate::cluster::MetaCommand::SetTopicConfigs {
            name: name.clone(),
            configs: next,
        };
        super::cluster::propose(&quorum, cmd).await?;
        tracing::info!(topic = %name, "altered topic configs in the cluster");
        return Ok(());
    }
    let new = Arc::new(TopicMeta {
        configs: next,
        ..(*old).clone()
    });
    replace_topic(ctx, store, old, new).await?;
    tracing::info!(topic = %name, "altered topic configs");
    Ok(())
}

/// Installs `new` in place of `old`: persisted (rolled back if that fails), then published.
async fn replace_topic(
    ctx: &Rc<ShardCtx>,
    store: &MetadataStore,
    old: Arc<TopicMeta>,
    new: Arc<TopicMeta>,
) -> Result<(), TopicError> {
    store
        .topics
        .borrow_mut()
        .insert(new.name.clone(), new.clone());
    store.bump();
    if let Err(e) = store.persist() {
        store.topics.borrow_mut().insert(old.name.clone(), old);
        store.bump();
        tracing::error!(topic = %new.name, error = %e, "persisting metadata failed");
        return Err(TopicError::Storage(e.to_string()));
    }
    let failed = publish(ctx, store.snapshot()).await;
    if let Some(first) = failed.first() {
        // New partitions that could not be opened (out of descriptors, disk): the metadata
        // stands, as in Kafka, and the owner retries at its next snapshot or restart.
        tracing::error!(topic = %new.name, failed = failed.len(), first = %first, "partitions could not all be opened");
        return Err(TopicError::Storage(format!(
            "{} partitions could not be opened, first {first}",
            failed.len()
        )));
    }
    Ok(())
}

async fn alter_broker(
    ctx: &Rc<ShardCtx>,
    store: &MetadataStore,
    key: String,
    change: ConfigChange,
    validate_only: bool,
) -> Result<(), TopicError> {
    let mut overrides = store.broker_configs.borrow().clone();
    let current = overrides.get(&key).cloned().unwrap_or_default();
    let next = match change {
        ConfigChange::Incremental(ops) => {
            let values = store.effective.borrow().values_with_unset();
            apply_ops(Resource::Broker, &current, &ops, |n| {
                values.get(n).cloned().flatten()
            })
            .map_err(broker_error)?
        }
        ConfigChange::Replace(m) => m,
    };
    if next.is_empty() {
        overrides.remove(&key);
    } else {
        overrides.insert(key.clone(), next.clone());
    }
    let node = store.static_settings.node_id;
    let effective = Arc::new(
        effective_settings(&store.static_settings, &overrides, node).map_err(broker_error)?,
    );
    if validate_only || next == current {
        return Ok(());
    }
    if let Some(quorum) = ctx.info.quorum.clone() {
        let cmd = crate::cluster::MetaCommand::SetBrokerConfigs { configs: overrides };
        super::cluster::propose(&quorum, cmd).await?;
        tracing::info!(layer = %key, configs = ?next, "altered dynamic broker configs in the cluster");
        return Ok(());
    }
    let old = store.broker_configs.replace(overrides);
    let old_effective = store.effective.replace(effective);
    store.bump();
    if let Err(e) = store.persist() {
        store.broker_configs.replace(old);
        store.effective.replace(old_effective);
        store.bump();
        tracing::error!(error = %e, "persisting metadata failed");
        return Err(TopicError::Storage(e.to_string()));
    }
    publish(ctx, store.snapshot()).await;
    let layer = if key == CLUSTER_DEFAULT {
        "cluster default"
    } else {
        key.as_str()
    };
    tracing::info!(layer, configs = ?next, "altered dynamic broker configs");
    Ok(())
}

/// Kafka answers every refused broker config change with INVALID_REQUEST (a topic's bad values
/// are INVALID_CONFIG).
fn broker_error(e: AlterError) -> TopicError {
    TopicError::InvalidRequest(e.to_string())
}

/// Raises a topic's partition count to `count` (or with `validate_only` only checks that it may).
pub async fn create_partitions(
    name: String,
    count: i32,
    validate_only: bool,
) -> Result<(), TopicError> {
    create_partitions_assigned(name, count, None, validate_only).await
}

/// [`create_partitions`] with the new partitions' replicas given (cluster mode; a single node's
/// handler checks that an assignment names only itself).
pub async fn create_partitions_assigned(
    name: String,
    count: i32,
    assignments: Option<Vec<Vec<i32>>>,
    validate_only: bool,
) -> Result<(), TopicError> {
    if let Some(ctx) = crate::shard::current()
        && let Some(quorum) = ctx.info.quorum.clone()
    {
        return create_partitions_in_cluster(
            &ctx,
            &quorum,
            name,
            count,
            assignments,
            validate_only,
        )
        .await;
    }
    serialized(move |ctx, store| async move {
        let old = store
            .topics
            .borrow()
            .get(&name)
            .cloned()
            .ok_or_else(|| TopicError::UnknownTopic(name.clone()))?;
        check_count(old.partitions, count)?;
        if validate_only {
            return Ok(());
        }
        let new = Arc::new(TopicMeta {
            partitions: count,
            ..(*old).clone()
        });
        replace_topic(&ctx, &store, old, new).await?;
        tracing::info!(topic = %name, partitions = count, "increased partitions");
        Ok(())
    })
    .await
}

/// Cluster mode: checks the count, places the new partitions' replicas (as many as the topic's
/// first partition has) or checks the given ones, and proposes them.
async fn create_partitions_in_cluster(
    ctx: &ShardCtx,
    quorum: &crate::cluster::QuorumHandle,
    name: String,
    count: i32,
    assignments: Option<Vec<Vec<i32>>>,
    validate_only: bool,
) -> Result<(), TopicError> {
    let image = quorum.image();
    let _ = ctx;
    let topic = image
        .topics
        .get(&name)
        .ok_or_else(|| TopicError::UnknownTopic(name.clone()))?;
    let current = topic.partitions.len() as i32;
    check_count(current, count)?;
    let assignments = match assignments {
        Some(a) => {
            super::cluster::check_assignment(&image, &a)?;
            a
        }
        None => {
            let rf = topic
                .partitions
                .first()
                .map(|p| p.replicas.len())
                .unwrap_or(1) as i16;
            super::cluster::place(&image, current, count - current, rf)?
        }
    };
    if validate_only {
        return Ok(());
    }
    let cmd = crate::cluster::MetaCommand::CreatePartitions {
        name: name.clone(),
        assignments,
    };
    super::cluster::propose(quorum, cmd).await?;
    tracing::info!(topic = %name, partitions = count, "increased partitions in the cluster");
    Ok(())
}

/// Kafka's rules: only an increase, and within the broker's limit.
fn check_count(current: i32, count: i32) -> Result<(), TopicError> {
    if count == current {
        return Err(TopicError::PartitionsNotIncreased(format!(
            "Topic already has {current} partitions."
        )));
    }
    if count < current {
        return Err(TopicError::PartitionsNotIncreased(format!(
            "Topic currently has {current} partitions, which is higher than the requested {count}."
        )));
    }
    if count > MAX_PARTITIONS {
        return Err(TopicError::InvalidPartitions {
            got: count,
            max: MAX_PARTITIONS,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_counts_only_grow() {
        assert!(check_count(3, 5).is_ok());
        assert_eq!(check_count(3, 3).unwrap_err().error_code(), 37);
        assert_eq!(check_count(3, 2).unwrap_err().error_code(), 37);
        assert_eq!(
            check_count(3, MAX_PARTITIONS + 1).unwrap_err().error_code(),
            37
        );
    }

    #[test]
    fn broker_targets() {
        assert_eq!(
            ConfigTarget::broker("", 1).unwrap(),
            ConfigTarget::Broker(String::new())
        );
        assert!(ConfigTarget::broker("1", 1).is_ok());
        assert_eq!(ConfigTarget::broker("7", 1).unwrap_err().error_code(), 42);
        assert_eq!(ConfigTarget::broker("x", 1).unwrap_err().error_code(), 42);
    }
}
