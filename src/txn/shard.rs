//! Wiring of the transaction coordinator into the broker's shards, as `group::shard` does for
//! groups: each shard runs one [`Coordinator`] for the transactional ids placed on it, created by
//! [`start_shard`] when the shard starts (so prepared transactions are resumed before the shard
//! serves) and kept in the shard context's type map; [`on_coordinator`] runs a closure with an
//! id's coordinator on its shard.

use super::coordinator::{Clock, Coordinator, TxnConfig, TxnView, shard_for};
use crate::shard::{BrokerInfo, ShardCtx, run_on};
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

/// `transaction.state.log.num.partitions`: fixed, because it decides where existing ids live.
pub const TXN_LOG_PARTITIONS: u32 = 50;

#[derive(Default)]
struct TxnShard {
    coordinator: RefCell<Option<Rc<Coordinator>>>,
}

/// The coordinator configuration from the broker's settings.
pub fn txn_config(info: &BrokerInfo) -> TxnConfig {
    let s = &info.settings;
    let mut c = TxnConfig::new(&info.data_dir);
    c.log.num_partitions = TXN_LOG_PARTITIONS;
    c.log.segment_bytes = s.transaction_state_log_segment_bytes.max(1024 * 1024);
    c.max_timeout_ms = s.transaction_max_timeout_ms.max(1);
    c.id_expiration_ms = s.transactional_id_expiration_ms.max(1);
    c.abort_interval_ms = s
        .transaction_abort_timed_out_transaction_cleanup_interval_ms
        .max(1);
    c.expire_interval_ms = s
        .transaction_remove_expired_transaction_cleanup_interval_ms
        .max(1);
    c
}

fn system_clock() -> Clock {
    Rc::new(crate::util::now_ms)
}

/// Loads this shard's transaction log and starts its coordinator. A failure is logged;
/// transactional requests for this shard then get COORDINATOR_NOT_AVAILABLE.
pub async fn start_shard(ctx: &Rc<ShardCtx>) {
    match Coordinator::start(ctx.id, ctx.n_shards, txn_config(&ctx.info), system_clock()).await {
        Ok(c) => *ctx.local_state(TxnShard::default).coordinator.borrow_mut() = Some(c),
        Err(e) => {
            tracing::error!(shard = ctx.id, error = %e, "transaction coordinator failed to start")
        }
    }
}

/// Stops the coordinator and closes its logs (clean shutdown).
pub async fn stop_shard(ctx: &Rc<ShardCtx>) {
    let c = ctx
        .local_state(TxnShard::default)
        .coordinator
        .borrow_mut()
        .take();
    if let Some(c) = c
        && let Err(e) = c.shutdown().await
    {
        tracing::error!(shard = ctx.id, error = %e, "closing transaction logs failed");
    }
}

/// This shard's coordinator, if running.
pub fn coordinator(ctx: &ShardCtx) -> Option<Rc<Coordinator>> {
    ctx.local_state(TxnShard::default)
        .coordinator
        .borrow()
        .clone()
}

/// Runs `f` with the coordinator of `transactional_id` on its shard; `None` when that
/// coordinator is not available (not started, or the shard is stopping).
pub async fn on_coordinator<F, Fut, T>(ctx: &ShardCtx, transactional_id: &str, f: F) -> Option<T>
where
    F: FnOnce(Rc<Coordinator>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    // In a cluster another broker may coordinate the id (see `handlers::find_coordinator`).
    if ctx.info.quorum.is_some()
        && !crate::metadata::cluster::coordinates_locally(
            ctx,
            super::log_partition(transactional_id, TXN_LOG_PARTITIONS),
        )
    {
        return None;
    }
    let target = shard_for(transactional_id, ctx.n_shards, TXN_LOG_PARTITIONS);
    let called = run_on(target, move |tctx| async move {
        let c = coordinator(&tctx)?;
        Some(f(c).await)
    })
    .await;
    called.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "transaction coordinator call failed");
        None
    })
}

/// Every transactional id of every shard (DescribeTransactions of all, ListTransactions).
pub async fn list_all(ctx: &ShardCtx) -> Vec<TxnView> {
    let mut out = Vec::new();
    for s in 0..ctx.n_shards {
        let views = run_on(s, |tctx| async move {
            coordinator(&tctx).map(|c| c.list()).unwrap_or_default()
        })
        .await;
        out.extend(views.unwrap_or_default());
    }
    out
}
