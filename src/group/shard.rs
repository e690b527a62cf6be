//! Wiring of the coordinator into the broker's shards.
//!
//! Each shard runs one [`Coordinator`] for the groups placed on it, created by [`start_shard`]
//! when the shard starts (so offsets are reloaded before the shard serves requests) and kept in
//! the shard context's type map. Handlers on any shard reach a group's coordinator with
//! [`on_coordinator`], a [`crate::shard::run_on`] to the group's shard that hands the closure
//! that shard's coordinator; arguments and results are plain `Send` values.

use super::coordinator::{Coordinator, CoordinatorConfig, shard_for, system_clock};
use crate::shard::{BrokerInfo, ShardCtx, run_on};
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

/// `offsets.topic.num.partitions`: fixed, because it decides where existing groups live.
pub const OFFSETS_PARTITIONS: u32 = 50;

/// The coordinator slot in a shard's type map.
#[derive(Default)]
pub struct GroupShard {
    coordinator: RefCell<Option<Rc<Coordinator>>>,
}

/// The coordinator configuration from the broker's settings.
pub fn coordinator_config(info: &BrokerInfo) -> CoordinatorConfig {
    let mut c = CoordinatorConfig::new(&info.data_dir);
    c.offsets.num_partitions = OFFSETS_PARTITIONS;
    c.group.initial_rebalance_delay_ms = info.settings.group_initial_rebalance_delay_ms.max(0);
    c.offsets_retention_ms = info
        .settings
        .offsets_retention_minutes
        .saturating_mul(60_000);
    c
}

/// Loads this shard's offsets and starts its coordinator. A failure is logged; group requests
/// for this shard then get COORDINATOR_NOT_AVAILABLE.
pub async fn start_shard(ctx: &Rc<ShardCtx>) {
    let cfg = coordinator_config(&ctx.info);
    match Coordinator::start(ctx.id, ctx.n_shards, cfg, system_clock()).await {
        Ok(c) => {
            *ctx.local_state(GroupShard::default)
                .coordinator
                .borrow_mut() = Some(c);
        }
        Err(e) => tracing::error!(shard = ctx.id, error = %e, "group coordinator failed to start"),
    }
}

/// Stops the coordinator and closes its offsets logs (clean shutdown).
pub async fn stop_shard(ctx: &Rc<ShardCtx>) {
    let c = ctx
        .local_state(GroupShard::default)
        .coordinator
        .borrow_mut()
        .take();
    if let Some(c) = c
        && let Err(e) = c.shutdown().await
    {
        tracing::error!(shard = ctx.id, error = %e, "closing offsets logs failed");
    }
}

/// This shard's coordinator, if running.
pub fn coordinator(ctx: &ShardCtx) -> Option<Rc<Coordinator>> {
    ctx.local_state(GroupShard::default)
        .coordinator
        .borrow()
        .clone()
}

/// The shard coordinating `group` in this broker.
pub fn coordinator_shard(ctx: &ShardCtx, group: &str) -> usize {
    shard_for(group, ctx.n_shards, OFFSETS_PARTITIONS)
}

/// Runs `f` with the coordinator of `group` on its shard. `None` when that coordinator is not
/// available (not started, or the shard is shutting down).
pub async fn on_coordinator<F, Fut, T>(ctx: &ShardCtx, group: &str, f: F) -> Option<T>
where
    F: FnOnce(Rc<Coordinator>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    // In a cluster another broker may coordinate the group (see `handlers::find_coordinator`).
    if ctx.info.quorum.is_some()
        && !crate::metadata::cluster::coordinates_locally(
            ctx,
            crate::group::offsets::partition_for(group, OFFSETS_PARTITIONS),
        )
    {
        return None;
    }
    let target = coordinator_shard(ctx, group);
    let res = run_on(target, move |tctx| async move {
        match coordinator(&tctx) {
            Some(c) => Some(f(c).await),
            None => None,
        }
    })
    .await;
    match res {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "group coordinator call failed");
            None
        }
    }
}

/// Completes the transactional offset commits (TxnOffsetCommit) of producer `producer_id` in
/// `group`: on commit they become the group's committed offsets, on abort they are dropped. The
/// transaction coordinator calls it for every group of a transaction (AddOffsetsToTxn) when the
/// transaction ends; it returns once the outcome is durable (the marker in the group's offsets
/// partition is synced and applied). Idempotent: calling it again (a retry, or the coordinator
/// completing the transaction after a restart) writes nothing when nothing is pending. `Err`
/// carries a Kafka error code (COORDINATOR_NOT_AVAILABLE when the group's coordinator is down or
/// its log failed; retry).
pub async fn complete_txn(
    ctx: &ShardCtx,
    group: &str,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
) -> Result<(), i16> {
    let g = group.to_string();
    on_coordinator(ctx, group, move |c| async move {
        c.complete_txn(&g, producer_id, producer_epoch, commit)
            .await
    })
    .await
    .unwrap_or(Err(
        kafka_protocol::ResponseError::CoordinatorNotAvailable.code()
    ))
}
