//! Fan-out of partition work to owner shards: group items by owner, one `post` per owner shard,
//! all owners concurrently, results back in the original order.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use crate::shard::{self, ShardCtx, ShardError};
use crate::sync::join_all;

/// A boxed, shard-local future.
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Runs `work(ctx, items)` on each owner shard for the items it owns (concurrently across shards)
/// and returns one result per item, in input order. `err` builds the result for items whose shard
/// could not be reached (or that it answered short).
pub async fn on_owners<I, R, F, Fut>(items: Vec<(usize, I)>, work: F, err: impl Fn() -> R) -> Vec<R>
where
    I: Send + 'static,
    R: Send + 'static,
    F: Fn(Rc<ShardCtx>, Vec<I>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Vec<R>> + 'static,
{
    post_to_owners(items, work, err).await.await
}

/// [`on_owners`] in two steps: returns once every owner's call is queued (see [`shard::post`]:
/// `work`'s synchronous prefix then runs on each owner in the order this shard posted), with a
/// future for the results.
pub async fn post_to_owners<I, R, F, Fut>(
    items: Vec<(usize, I)>,
    work: F,
    err: impl Fn() -> R,
) -> impl Future<Output = Vec<R>>
where
    I: Send + 'static,
    R: Send + 'static,
    F: Fn(Rc<ShardCtx>, Vec<I>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Vec<R>> + 'static,
{
    let n = items.len();
    let mut groups: Vec<(usize, Vec<usize>, Vec<I>)> = Vec::new();
    for (i, (owner, item)) in items.into_iter().enumerate() {
        match groups.iter_mut().find(|g| g.0 == owner) {
            Some(g) => {
                g.1.push(i);
                g.2.push(item);
            }
            None => groups.push((owner, vec![i], vec![item])),
        }
    }
    let mut index_lists = Vec::with_capacity(groups.len());
    let mut futs: Vec<LocalFuture<Result<Vec<R>, ShardError>>> = Vec::new();
    for (owner, idx, group) in groups {
        index_lists.push(idx);
        let work = work.clone();
        match shard::post(owner, move |ctx| work(ctx, group)).await {
            Ok(posted) => futs.push(Box::pin(posted)),
            Err(e) => futs.push(Box::pin(std::future::ready(Err(e)))),
        }
    }
    async move {
        let results = join_all(futs).await;
        let mut out: Vec<Option<R>> = (0..n).map(|_| None).collect();
        for (idx, res) in index_lists.into_iter().zip(results) {
            match res {
                Ok(values) => {
                    for (i, v) in idx.into_iter().zip(values) {
                        out[i] = Some(v);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "owner shard unreachable");
                    for i in idx {
                        out[i] = Some(err());
                    }
                }
            }
        }
        out.into_iter().map(|v| v.unwrap_or_else(&err)).collect()
    }
}
