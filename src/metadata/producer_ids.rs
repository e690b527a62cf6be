//! Producer ids for InitProducerId: unique across restarts, allocated in persisted blocks.
//!
//! Shard 0 owns the one allocator (other shards ask it over the mesh, InitProducerId is rare: once
//! per producer instance). Like Kafka's `ProducerIdManager` it hands out ids from a block of
//! [`BLOCK_SIZE`]; before the first id of a new block is returned, the block's end is written to
//! `<data-dir>/ringbolt-producer-ids` (temp file, fsync, rename, fsync of the directory). After a
//! restart allocation resumes at that end, so an id is never handed out twice; at most one block
//! per restart is skipped. The file write is blocking I/O on shard 0's thread, deliberately (as for
//! the metadata file): once per thousand producers, a few bytes.
//!
//! In a cluster the blocks come from the metadata quorum instead (`ClusterBlock`), so ids are
//! unique across brokers.

use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Name of the high-water file inside the data dir.
pub const PRODUCER_IDS_FILE: &str = "ringbolt-producer-ids";
/// Ids reserved per file write.
pub const BLOCK_SIZE: i64 = 1000;

/// The allocator (lives on shard 0, see [`crate::shard::ShardCtx::local_state`]).
pub struct ProducerIdAllocator {
    path: PathBuf,
    loaded: Cell<bool>,
    next: Cell<i64>,
    /// End (exclusive) of the block persisted in the file.
    limit: Cell<i64>,
}

impl ProducerIdAllocator {
    pub fn new(data_dir: &Path) -> Self {
        ProducerIdAllocator {
            path: data_dir.join(PRODUCER_IDS_FILE),
            loaded: Cell::new(false),
            next: Cell::new(0),
            limit: Cell::new(0),
        }
    }

    /// The next unused producer id.
    pub fn allocate(&self) -> std::io::Result<i64> {
        if !self.loaded.get() {
            let high = match std::fs::read_to_string(&self.path) {
                Ok(s) => s
                    .trim()
                    .parse::<i64>()
                    .map_err(|e| std::io::Error::other(format!("{}: {e}", self.path.display())))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => return Err(e),
            };
            self.next.set(high.max(0));
            self.limit.set(high.max(0));
            self.loaded.set(true);
        }
        let id = self.next.get();
        if id >= self.limit.get() {
            let limit = id
                .checked_add(BLOCK_SIZE)
                .ok_or_else(|| std::io::Error::other("producer ids exhausted"))?;
            self.persist(limit)?;
            self.limit.set(limit);
        }
        self.next.set(id + 1);
        Ok(id)
    }

    fn persist(&self, limit: i64) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            writeln!(f, "{limit}")?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// Shard that owns the allocator.
pub const ALLOCATOR_SHARD: usize = 0;

/// A new producer id from the allocator on [`ALLOCATOR_SHARD`], from any shard. Errors are the
/// Kafka error to answer.
pub async fn allocate_remote() -> Result<i64, kafka_protocol::ResponseError> {
    if crate::shard::current().is_some_and(|c| c.info.quorum.is_some()) {
        return crate::shard::run_on(ALLOCATOR_SHARD, |ctx| async move {
            ctx.local_state(ClusterBlock::default).allocate(&ctx).await
        })
        .await
        .unwrap_or(Err(kafka_protocol::ResponseError::CoordinatorNotAvailable));
    }
    let allocated = crate::shard::run_on(ALLOCATOR_SHARD, |ctx| async move {
        let data_dir = ctx.info.data_dir.clone();
        ctx.local_state(|| ProducerIdAllocator::new(&data_dir))
            .allocate()
            .map_err(|e| e.to_string())
    })
    .await;
    match allocated {
        Ok(Ok(id)) => Ok(id),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "allocating a producer id failed");
            Err(kafka_protocol::ResponseError::UnknownServerError)
        }
        Err(e) => {
            tracing::warn!(error = %e, "producer-id allocator unreachable");
            Err(kafka_protocol::ResponseError::CoordinatorNotAvailable)
        }
    }
}

/// Cluster mode: ids from blocks of [`BLOCK_SIZE`] that the metadata quorum hands this broker
/// (Kafka's AllocateProducerIds), so no two brokers ever hand out the same id; a restart takes a
/// new block (the rest of the old one is skipped, as on a single node).
#[derive(Default)]
struct ClusterBlock {
    next: Cell<i64>,
    limit: Cell<i64>,
    /// One block request at a time.
    fetching: std::cell::RefCell<Option<Rc<crate::sync::LocalEvent>>>,
}

impl ClusterBlock {
    async fn allocate(
        &self,
        ctx: &crate::shard::ShardCtx,
    ) -> Result<i64, kafka_protocol::ResponseError> {
        use kafka_protocol::ResponseError;
        loop {
            let id = self.next.get();
            if id < self.limit.get() {
                self.next.set(id + 1);
                return Ok(id);
            }
            let pending = self.fetching.borrow().clone();
            if let Some(ev) = pending {
                ev.wait().await;
                continue;
            }
            let ev = Rc::new(crate::sync::LocalEvent::default());
            *self.fetching.borrow_mut() = Some(ev.clone());
            let quorum = ctx
                .info
                .quorum
                .clone()
                .ok_or(ResponseError::UnknownServerError);
            let res = match quorum {
                Ok(q) => {
                    q.propose(crate::cluster::MetaCommand::AllocateProducerIds {
                        broker: ctx.info.node_id,
                        count: BLOCK_SIZE,
                    })
                    .await
                }
                Err(e) => {
                    self.fetching.borrow_mut().take();
                    ev.set();
                    return Err(e);
                }
            };
            self.fetching.borrow_mut().take();
            ev.set();
            match res {
                Ok((_, crate::cluster::MetaResponse::ProducerIds { first })) => {
                    self.next.set(first);
                    self.limit.set(first + BLOCK_SIZE);
                }
                Ok((_, other)) => {
                    tracing::error!(?other, "allocating a producer-id block failed");
                    return Err(ResponseError::UnknownServerError);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "allocating a producer-id block failed");
                    return Err(ResponseError::CoordinatorNotAvailable);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_restarts() {
        let dir = std::env::temp_dir().join(format!("ringbolt-pids-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let a = ProducerIdAllocator::new(&dir);
        let first: Vec<i64> = (0..1500).map(|_| a.allocate().unwrap()).collect();
        assert_eq!(first, (0..1500).collect::<Vec<_>>());
        // "Restart": a new allocator on the same dir continues after the persisted block.
        let b = ProducerIdAllocator::new(&dir);
        let next = b.allocate().unwrap();
        assert_eq!(next, 2000);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
