//! Executors pinned per core, partition routing and the cross-shard mesh.
//!
//! # Model
//!
//! A broker runs `n` shards. Each shard is one OS thread running a glommio `LocalExecutor` pinned with
//! `Placement::Fixed(core)`, with its own SO_REUSEPORT listener on the broker port, its own partition
//! logs and its own copy of the metadata snapshot. Nothing mutable crosses a thread boundary: state that
//! belongs to a shard lives in its [`ShardCtx`] (reached through `Rc`, `RefCell`, no locks), and every
//! other shard reaches it only by sending a closure over the mesh with [`run_on`].
//!
//! # Ownership
//!
//! [`owner`] maps `(topic, partition, n_shards)` to a shard with a pure function (FNV-1a of the topic
//! name plus the partition index, modulo `n`), so consecutive partitions of one topic land on consecutive
//! shards and a restart with a different core count simply redistributes partition directories: any
//! shard can open any partition.
//!
//! # The mesh
//!
//! A glommio full `MeshBuilder` of bounded channels (`MESH_CHANNEL_SIZE` slots per pair of shards)
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
//!
//! Other subsystems (the group coordinator) keep their per-shard state in the context's type map
//! ([`ShardCtx::local_state`]) and reach another shard's state with the same [`run_on`].

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use glommio::channels::channel_mesh::{Full, MeshBuilder, Senders};

use crate::config::BrokerSettings;
use crate::metadata::{MetadataSnapshot, MetadataStore};
use crate::storage::PartitionLog;
use crate::sync::LocalEvent;

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

/// The shard that owns `(topic, partition)` among `n_shards`: pure and stable across restarts.
pub fn owner(topic: &str, partition: i32, n_shards: usize) -> usize {
    if n_shards <= 1 {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ((h % n_shards as u64) as usize + partition.max(0) as usize) % n_shards
}

/// Immutable facts about the broker, shared by all shards.
#[derive(Debug)]
pub struct BrokerInfo {
    /// Node id reported in Metadata (1, like a single-node KRaft cluster).
    pub node_id: i32,
    pub cluster_id: String,
    pub advertised_host: String,
    pub advertised_port: i32,
    pub data_dir: std::path::PathBuf,
    pub settings: BrokerSettings,
}

/// Per-shard state, reached through `Rc` on the shard's own thread only.
pub struct ShardCtx {
    pub id: usize,
    pub n_shards: usize,
    pub info: Arc<BrokerInfo>,
    metadata: RefCell<Arc<MetadataSnapshot>>,
    /// The partition logs this shard owns: topic → partition → log.
    logs: RefCell<HashMap<String, HashMap<i32, Rc<PartitionLog>>>>,
    /// The metadata store (controller role), present on shard 0 only.
    pub(crate) controller: Option<Rc<MetadataStore>>,
    senders: RefCell<Option<Rc<Senders<Envelope>>>>,
    pending: RefCell<HashMap<u64, Rc<ReplySlot>>>,
    next_call: Cell<u64>,
    ext: RefCell<HashMap<TypeId, Rc<dyn Any>>>,
    /// Set when the broker begins shutting down.
    pub stopping: LocalEvent,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<ShardCtx>>> = const { RefCell::new(None) };
}

/// The context of the shard running on this thread, if any.
pub fn current() -> Option<Rc<ShardCtx>> {
    CURRENT.with(|c| c.borrow().clone())
}

impl ShardCtx {
    pub(crate) fn new(
        id: usize,
        n_shards: usize,
        info: Arc<BrokerInfo>,
        metadata: Arc<MetadataSnapshot>,
        controller: Option<Rc<MetadataStore>>,
    ) -> Rc<Self> {
        Rc::new(ShardCtx {
            id,
            n_shards,
            info,
            metadata: RefCell::new(metadata),
            logs: RefCell::new(HashMap::new()),
            controller,
            senders: RefCell::new(None),
            pending: RefCell::new(HashMap::new()),
            next_call: Cell::new(0),
            ext: RefCell::new(HashMap::new()),
            stopping: LocalEvent::default(),
        })
    }

    /// Makes this context the thread's current shard.
    pub(crate) fn install(self: &Rc<Self>) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
    }

    pub(crate) fn uninstall() {
        CURRENT.with(|c| c.borrow_mut().take());
    }

    /// Joins the mesh and starts one receive loop per peer.
    pub(crate) async fn join_mesh(self: &Rc<Self>, mesh: Mesh) -> std::io::Result<()> {
        let (senders, mut receivers) = mesh
            .join()
            .await
            .map_err(|_| std::io::Error::other("joining the shard mesh failed"))?;
        *self.senders.borrow_mut() = Some(Rc::new(senders));
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
        if let Some(s) = self.senders.borrow_mut().take() {
            s.close();
        }
        let pending: Vec<Rc<ReplySlot>> =
            self.pending.borrow_mut().drain().map(|(_, s)| s).collect();
        for slot in pending {
            let w = slot.waker.borrow_mut().take();
            drop(slot);
            if let Some(w) = w {
                w.wake();
            }
        }
    }

    /// The current metadata snapshot (cheap `Arc` clone).
    pub fn metadata(&self) -> Arc<MetadataSnapshot> {
        self.metadata.borrow().clone()
    }

    pub(crate) fn set_metadata(&self, snap: Arc<MetadataSnapshot>) -> bool {
        let mut m = self.metadata.borrow_mut();
        if snap.version > m.version {
            *m = snap;
            true
        } else {
            false
        }
    }

    /// The log of `(topic, partition)` if this shard owns an open one.
    pub fn log(&self, topic: &str, partition: i32) -> Option<Rc<PartitionLog>> {
        self.logs
            .borrow()
            .get(topic)
            .and_then(|p| p.get(&partition))
            .cloned()
    }

    pub(crate) fn insert_log(&self, topic: &str, partition: i32, log: Rc<PartitionLog>) {
        self.logs
            .borrow_mut()
            .entry(topic.to_string())
            .or_default()
            .insert(partition, log);
    }

    pub(crate) fn remove_topic_logs(&self, topic: &str) -> Vec<(i32, Rc<PartitionLog>)> {
        self.logs
            .borrow_mut()
            .remove(topic)
            .map(|m| m.into_iter().collect())
            .unwrap_or_default()
    }

    /// Every open log on this shard as (topic, partition, log).
    pub fn all_logs(&self) -> Vec<(String, i32, Rc<PartitionLog>)> {
        let logs = self.logs.borrow();
        let mut v = Vec::new();
        for (t, parts) in logs.iter() {
            for (p, l) in parts {
                v.push((t.clone(), *p, l.clone()));
            }
        }
        v
    }

    /// The shard owning `(topic, partition)` in this broker.
    pub fn owner_of(&self, topic: &str, partition: i32) -> usize {
        owner(topic, partition, self.n_shards)
    }

    /// Per-shard state of type `T` for other subsystems, created with `init` on first use.
    pub fn local_state<T: 'static>(&self, init: impl FnOnce() -> T) -> Rc<T> {
        let mut ext = self.ext.borrow_mut();
        let entry = ext
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Rc::new(init()) as Rc<dyn Any>);
        entry
            .clone()
            .downcast::<T>()
            .unwrap_or_else(|_| unreachable!("type map keyed by TypeId"))
    }

    fn complete(&self, call: u64, value: Box<dyn Any + Send>) {
        if let Some(slot) = self.pending.borrow_mut().remove(&call) {
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
    let call = ctx.next_call.get();
    ctx.next_call.set(call + 1);
    let slot = Rc::new(ReplySlot::default());
    ctx.pending.borrow_mut().insert(call, slot.clone());
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
    let senders = ctx.senders.borrow().clone();
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
        self.ctx.pending.borrow_mut().remove(&self.call);
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
    use super::*;
    use std::pin::Pin;

    #[test]
    fn owner_is_pure_and_spreads_partitions() {
        assert_eq!(owner("t", 5, 1), 0);
        let a: Vec<usize> = (0..8).map(|p| owner("orders", p, 4)).collect();
        let b: Vec<usize> = (0..8).map(|p| owner("orders", p, 4)).collect();
        assert_eq!(a, b);
        for s in 0..4 {
            assert_eq!(a.iter().filter(|&&x| x == s).count(), 2);
        }
        assert!((0..100).all(|p| owner("x", p, 3) < 3));
    }

    fn test_info() -> Arc<BrokerInfo> {
        Arc::new(BrokerInfo {
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
