//! The cross-shard mesh: calling a closure on another shard and getting its result back.
//!
//! A glommio full `MeshBuilder` of bounded channels ([`MESH_CHANNEL_SIZE`] slots per pair of shards)
//! carries type-erased envelopes, `Box<dyn FnOnce(Rc<ShardCtx>) + Send>`. [`run_on`] wraps the caller's
//! closure in a request envelope; the target's receive loop runs the envelope, which spawns a local task
//! that builds and awaits the caller's (not necessarily `Send`) future with the target's context, then
//! sends a reply envelope back carrying the `Send` result. The origin's receive loop completes the
//! waiting future. Receive loops never block (they only spawn or complete), so a full channel delays
//! the sender (backpressure) but cannot deadlock the mesh. On the same shard [`run_on`] calls the
//! closure directly, with no channel hop.
//!
//! The builder itself must not be cloned on a shard: glommio keeps its peer list in an `Rc`
//! although the builder is `Send`, so every shard's copy is made on the spawning thread before any
//! shard runs (`server::mesh_copies`, which says why).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use glommio::channels::channel_mesh::{Full, MeshBuilder, Senders};

use super::ctx::{ShardCtx, current};

/// Slots per (sender, receiver) pair in the mesh; a full channel makes `run_on` wait.
pub const MESH_CHANNEL_SIZE: usize = 1024;

/// The message type carried by the mesh.
pub type Envelope = Box<dyn FnOnce(Rc<ShardCtx>) + Send>;

/// The mesh builder shared by all shards of one broker (each joins it once).
pub type Mesh = MeshBuilder<Envelope, Full>;

/// Errors from cross-shard calls.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("not running on a broker shard")]
    NotOnShard,
    #[error("shard {0} does not exist")]
    NoSuchShard(usize),
    #[error("shard {0} is shutting down")]
    Closed(usize),
}

/// This shard's end of the mesh, kept in its [`ShardCtx`]: the senders to every peer (once
/// joined) and the calls waiting for a reply.
#[derive(Default)]
pub(super) struct MeshPort {
    senders: RefCell<Option<Rc<Senders<Envelope>>>>,
    pending: RefCell<HashMap<u64, Rc<ReplySlot>>>,
    next_call: Cell<u64>,
}

impl ShardCtx {
    /// Joins the mesh and starts one receive loop per peer.
    pub(crate) async fn join_mesh(self: &Rc<Self>, mesh: Mesh) -> std::io::Result<()> {
        let (senders, mut receivers) = mesh
            .join()
            .await
            .map_err(|_| std::io::Error::other("joining the shard mesh failed"))?;
        *self.mesh.senders.borrow_mut() = Some(Rc::new(senders));
        for (_peer, rx) in receivers.streams() {
            let ctx = self.clone();
            glommio::spawn_local(async move {
                while let Some(envelope) = rx.recv().await {
                    envelope(ctx.clone());
                }
            })
            .detach();
        }
        Ok(())
    }

    /// Closes the mesh senders so peers' receive loops end, and fails calls still waiting.
    pub(crate) fn leave_mesh(&self) {
        if let Some(s) = self.mesh.senders.borrow_mut().take() {
            s.close();
        }
        let pending: Vec<Rc<ReplySlot>> = self
            .mesh
            .pending
            .borrow_mut()
            .drain()
            .map(|(_, s)| s)
            .collect();
        for slot in pending {
            let w = slot.waker.borrow_mut().take();
            drop(slot);
            if let Some(w) = w {
                w.wake();
            }
        }
    }

    fn complete(&self, call: u64, value: Box<dyn Any + Send>) {
        if let Some(slot) = self.mesh.pending.borrow_mut().remove(&call) {
            slot.fill(value);
        }
    }
}

/// Runs `f` on shard `target` with that shard's context and returns its result here.
///
/// `f` itself must be `Send` (it crosses threads); the future it builds runs on the target and need
/// not be `Send`, so it may hold `Rc<PartitionLog>` across awaits. The result `T` travels back.
/// On the calling shard itself `f` is called directly. Fails when called off a shard, for an
/// unknown shard, or when the target is shutting down.
///
/// ```ignore
/// let hw = shard::run_on(owner, move |ctx| async move {
///     ctx.log(&topic, 0).map(|l| l.high_watermark())
/// }).await?;
/// ```
pub async fn run_on<F, Fut, T>(target: usize, f: F) -> Result<T, ShardError>
where
    F: FnOnce(Rc<ShardCtx>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    post(target, f).await?.await
}

/// Sends `f` to shard `target` and returns as soon as it is queued there, with a future for its
/// result: [`run_on`] split in two, for callers that must know their call is *ordered* before
/// they go on (produce releases a connection's next request at this point).
///
/// `f` is called by the target's receive loop as the envelope arrives, and only the future it
/// returns is spawned. So whatever `f` does before returning its future (assigning offsets, say)
/// happens in the order this shard posted: each (origin, target) channel is FIFO and one receive
/// loop drains it. On the calling shard itself `f` is called before `post` returns.
pub async fn post<F, Fut, T>(target: usize, f: F) -> Result<Posted<T>, ShardError>
where
    F: FnOnce(Rc<ShardCtx>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let ctx = current().ok_or(ShardError::NotOnShard)?;
    if target >= ctx.n_shards {
        return Err(ShardError::NoSuchShard(target));
    }
    if target == ctx.id {
        return Ok(Posted::Local(Box::pin(f(ctx))));
    }
    let call = ctx.mesh.next_call.get();
    ctx.mesh.next_call.set(call + 1);
    let slot = Rc::new(ReplySlot::default());
    ctx.mesh.pending.borrow_mut().insert(call, slot.clone());
    let origin = ctx.id;
    let envelope: Envelope = Box::new(move |tctx: Rc<ShardCtx>| {
        let fut = f(tctx.clone());
        glommio::spawn_local(async move {
            let value = fut.await;
            let reply: Envelope = Box::new(move |octx: Rc<ShardCtx>| {
                octx.complete(call, Box::new(value));
            });
            send_envelope(&tctx, origin, reply).await;
        })
        .detach();
    });
    let guard = PendingGuard {
        ctx: ctx.clone(),
        call,
    };
    if !send_envelope(&ctx, target, envelope).await {
        return Err(ShardError::Closed(target));
    }
    Ok(Posted::Remote {
        slot,
        _guard: guard,
        target,
        _result: std::marker::PhantomData,
    })
}

/// The result of a [`post`]ed call: resolves to the value `f`'s future produced on the target.
pub enum Posted<T> {
    /// Called on this shard; the future runs here.
    Local(Pin<Box<dyn Future<Output = T>>>),
    /// Queued on another shard; its reply envelope fills the slot.
    Remote {
        slot: Rc<ReplySlot>,
        _guard: PendingGuard,
        target: usize,
        _result: std::marker::PhantomData<fn() -> T>,
    },
}

impl<T: 'static> Future for Posted<T> {
    type Output = Result<T, ShardError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every field is Unpin (boxed future, Rc, plain data).
        match self.get_mut() {
            Posted::Local(f) => f.as_mut().poll(cx).map(Ok),
            Posted::Remote { slot, target, .. } => {
                match Pin::new(&mut SlotFuture { slot: &*slot }).poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Some(v)) => Poll::Ready(Ok(*v
                        .downcast::<T>()
                        .unwrap_or_else(|_| unreachable!("reply type matches call")))),
                    Poll::Ready(None) => Poll::Ready(Err(ShardError::Closed(*target))),
                }
            }
        }
    }
}

/// Sends an envelope, waiting while the channel is full. False when the mesh is closed.
async fn send_envelope(ctx: &Rc<ShardCtx>, target: usize, envelope: Envelope) -> bool {
    let senders = ctx.mesh.senders.borrow().clone();
    match senders {
        Some(s) => s.send_to(target, envelope).await.is_ok(),
        None => false,
    }
}

/// Removes a call's reply slot when its caller stops waiting.
pub struct PendingGuard {
    ctx: Rc<ShardCtx>,
    call: u64,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.ctx.mesh.pending.borrow_mut().remove(&self.call);
    }
}

/// Where a remote call's reply lands.
#[derive(Default)]
pub struct ReplySlot {
    value: RefCell<Option<Box<dyn Any + Send>>>,
    waker: RefCell<Option<Waker>>,
}

impl ReplySlot {
    fn fill(&self, v: Box<dyn Any + Send>) {
        *self.value.borrow_mut() = Some(v);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

struct SlotFuture<'a> {
    slot: &'a Rc<ReplySlot>,
}

impl Future for SlotFuture<'_> {
    type Output = Option<Box<dyn Any + Send>>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(v) = self.slot.value.borrow_mut().take() {
            return Poll::Ready(Some(v));
        }
        // The strong count drops to 1 when the pending entry was removed without a reply.
        if Rc::strong_count(self.slot) == 1 {
            return Poll::Ready(None);
        }
        *self.slot.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::BrokerSettings;
    use crate::metadata::MetadataSnapshot;
    use crate::shard::BrokerInfo;

    fn test_info() -> Arc<BrokerInfo> {
        Arc::new(BrokerInfo {
            quota_meters: Default::default(),
            quorum: None,
            node_id: 1,
            cluster_id: "test".into(),
            advertised_host: "127.0.0.1".into(),
            advertised_port: 0,
            data_dir: std::env::temp_dir(),
            settings: BrokerSettings::default(),
        })
    }

    /// Two shards on a real mesh: calls in both directions, shard-local state, many concurrent
    /// calls through a small channel (backpressure), and a call off any shard.
    #[test]
    fn run_on_crosses_shards_and_keeps_state_local() {
        assert!(matches!(
            futures_lite::future::block_on(run_on(0, |_| async { 1 })),
            Err(ShardError::NotOnShard)
        ));
        // Every copy made before any executor runs: the builder's peer list is an `Rc` (see
        // `server::mesh_copies`).
        let mesh: Mesh = MeshBuilder::full(2, 4);
        let copies = vec![mesh.clone(), mesh];
        let handles: Vec<_> = copies
            .into_iter()
            .enumerate()
            .map(|(id, mesh)| {
                glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
                    .spawn(move || async move {
                        let ctx = ShardCtx::new(
                            id,
                            2,
                            test_info(),
                            Arc::new(MetadataSnapshot::default()),
                            None,
                        );
                        ctx.install();
                        ctx.join_mesh(mesh).await.unwrap();
                        let other = 1 - id;
                        // Each call increments a counter that lives on the *target* shard.
                        let mut futs = Vec::new();
                        for i in 0..100u64 {
                            futs.push(Box::pin(run_on(other, move |c| async move {
                                let n = c.local_state(|| Cell::new(0u64));
                                n.set(n.get() + 1);
                                glommio::yield_if_needed().await;
                                (c.id, i)
                            }))
                                as Pin<Box<dyn Future<Output = Result<(usize, u64), ShardError>>>>);
                        }
                        let results = crate::sync::join_all(futs).await;
                        for (i, r) in results.into_iter().enumerate() {
                            assert_eq!(r.unwrap(), (other, i as u64));
                        }
                        assert!(matches!(
                            run_on(7, |_| async {}).await,
                            Err(ShardError::NoSuchShard(7))
                        ));
                        // Same-shard calls run directly.
                        assert_eq!(run_on(id, |c| async move { c.id }).await.unwrap(), id);
                        // Let the peer finish its calls to us before reading our counter.
                        glommio::timer::sleep(std::time::Duration::from_millis(200)).await;
                        let mine = ctx.local_state(|| Cell::new(0u64)).get();
                        ctx.leave_mesh();
                        ShardCtx::uninstall();
                        mine
                    })
                    .unwrap()
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), 100);
        }
    }
}
