//! Listener, connections, dispatch and the per-API handlers.
//!
//! # Process shape
//!
//! [`spawn_broker`] loads the metadata file, then starts one shard thread per core (glommio
//! `LocalExecutor`, `Placement::Fixed`). Shard 0 binds the listen address first (so port 0 resolves
//! to one real port), then every other shard binds that same port; glommio sets SO_REUSEPORT, so the
//! kernel spreads incoming connections across shards. A connection stays on the shard that accepted
//! it; partition work is routed to the owner shard with [`crate::shard::run_on`].
//!
//! # Connections ([`connection`])
//!
//! Check-then-parse framing (the size is checked against `socket.request.max.bytes` before a buffer
//! for the frame exists), header decoded with kafka-protocol, dispatch by API key to
//! [`handlers`], one spawned task per request. Responses leave in request order: the reader pushes
//! each request's task into a bounded queue (`queued.max.requests.per.connection`), the writer awaits
//! them in order. A full queue stops the reader, so a client that never reads its responses only
//! stalls itself. An unknown API key, an unsupported API version (other than ApiVersions, which gets
//! the KIP-511 fallback), a malformed header or body closes the connection with a log line.
//!
//! # Zero-copy fetch ([`zerocopy`])
//!
//! Fetch responses are encoded by [`crate::protocol::fetch_response`] into header bytes plus file
//! slices; the writer sends the bytes with normal socket writes and the slices with sendfile(2) from
//! the segment file's page cache to the socket, so record bytes never enter user space. The socket
//! is switched to O_NONBLOCK; when sendfile hits EAGAIN the writer sends the *next single byte* of
//! the slice through glommio's ordinary async write (pread of one byte), which parks the task until
//! the socket is writable without blocking the executor, then resumes sendfile after that byte.
//! glommio 0.9 exposes no "wait until writable" for a raw fd; this keeps the wait on its io_uring poll
//! at the cost of one extra 1-byte pread+send per full socket buffer. The copying path
//! (`fetch.zerocopy.enable = false`: read slices into memory, encode with kafka-protocol) is kept
//! for comparison; `benches/fetch_path.rs` measures both (see the README / report for figures).
//!
//! # Shutdown
//!
//! [`BrokerHandle::shutdown`] (and SIGTERM/SIGINT in `ringbolt serve`) sets a flag every shard
//! polls: each stops accepting, stops reading new requests, finishes the ones in flight (a
//! long-polling fetch returns early), then waits until every shard got that far (another shard's
//! in-flight request may still need its partitions), flushes and closes its logs and leaves the mesh.

pub mod cli;
pub mod connection;
pub mod handlers;
pub mod partitions;
pub mod zerocopy;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_lite::FutureExt;
use glommio::net::TcpListener;
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};

pub use crate::config::{BrokerConfig, BrokerSettings};
use crate::metadata::{MetadataSnapshot, MetadataStore, controller};
use crate::shard::{BrokerInfo, MESH_CHANNEL_SIZE, Mesh, ShardCtx};
pub use cli::{ServeArgs, serve_main};

/// A running broker. Dropping it shuts it down too (errors are then only logged).
pub struct BrokerHandle {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    shards: Vec<ExecutorJoinHandle<()>>,
}

impl BrokerHandle {
    /// The bound address (the real port when the listen port was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Clean stop: stop accepting, finish in-flight requests, sync and close the logs.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        let mut failed = 0;
        for h in self.shards.drain(..) {
            if h.join().is_err() {
                failed += 1;
            }
        }
        if failed > 0 {
            anyhow::bail!("{failed} shard(s) ended abnormally");
        }
        Ok(())
    }
}

impl Drop for BrokerHandle {
    fn drop(&mut self) {
        if !self.shards.is_empty()
            && let Err(e) = self.stop_and_join()
        {
            tracing::error!(error = %e, "broker shutdown on drop failed");
        }
    }
}

enum Startup {
    Bound(SocketAddr),
    Ready,
    Failed(String),
}

struct ShardPlan {
    id: usize,
    n: usize,
    listen: SocketAddr,
    cfg: BrokerConfig,
    cluster_id: String,
    snapshot: Arc<MetadataSnapshot>,
    mesh: Mesh,
    stop: Arc<AtomicBool>,
    drained: Arc<AtomicUsize>,
    report: std::sync::mpsc::Sender<Startup>,
}

/// Starts the broker's shard threads and returns once every shard is listening.
pub fn spawn_broker(cfg: BrokerConfig) -> anyhow::Result<BrokerHandle> {
    std::fs::create_dir_all(&cfg.data_dir)?;
    let n = cfg.shard_count();
    let (snapshot, cluster_id) = MetadataStore::load_snapshot(&cfg.data_dir)?;
    let cores = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1);
    let mesh: Mesh = Mesh::full(n, MESH_CHANNEL_SIZE);
    let stop = Arc::new(AtomicBool::new(false));
    let drained = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let mut handle = BrokerHandle {
        local_addr: cfg.listen,
        stop: stop.clone(),
        shards: Vec::with_capacity(n),
    };
    let plan = |id: usize, listen: SocketAddr| ShardPlan {
        id,
        n,
        listen,
        cfg: cfg.clone(),
        cluster_id: cluster_id.clone(),
        snapshot: snapshot.clone(),
        mesh: mesh.clone(),
        stop: stop.clone(),
        drained: drained.clone(),
        report: tx.clone(),
    };
    let start = |p: ShardPlan| -> anyhow::Result<ExecutorJoinHandle<()>> {
        let id = p.id;
        Ok(LocalExecutorBuilder::new(Placement::Fixed(id % cores))
            .name(&format!("ringbolt-shard-{id}"))
            .spawn(move || shard_main(p))
            .map_err(|e| anyhow::anyhow!("starting shard {id}: {e}"))?)
    };
    let wait = |rx: &std::sync::mpsc::Receiver<Startup>| {
        rx.recv_timeout(Duration::from_secs(60))
            .map_err(|_| anyhow::anyhow!("shard did not start in time"))
    };
    handle.shards.push(start(plan(0, cfg.listen))?);
    let addr = match wait(&rx)? {
        Startup::Bound(a) => a,
        Startup::Failed(e) => anyhow::bail!("shard 0: {e}"),
        Startup::Ready => anyhow::bail!("shard 0 reported ready before binding"),
    };
    handle.local_addr = addr;
    for id in 1..n {
        handle.shards.push(start(plan(id, addr))?);
    }
    let mut ready = 0;
    while ready < n {
        match wait(&rx)? {
            Startup::Ready => ready += 1,
            Startup::Bound(_) => {}
            Startup::Failed(e) => anyhow::bail!("{e}"),
        }
    }
    tracing::info!(%addr, shards = n, data_dir = %cfg.data_dir.display(), "broker listening");
    Ok(handle)
}

fn broker_info(cfg: &BrokerConfig, bound: SocketAddr, cluster_id: String) -> BrokerInfo {
    let (host, port) = match &cfg.advertised_listener {
        Some(a) => {
            let a = a.split_once("://").map(|(_, r)| r).unwrap_or(a);
            match a.rsplit_once(':') {
                Some((h, p)) => (
                    h.trim_matches(|c| c == '[' || c == ']').to_string(),
                    p.parse().unwrap_or(bound.port() as i32),
                ),
                None => (a.to_string(), bound.port() as i32),
            }
        }
        None => {
            let ip = bound.ip();
            let host = if ip.is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                ip.to_string()
            };
            (host, bound.port() as i32)
        }
    };
    BrokerInfo {
        node_id: 1,
        cluster_id,
        advertised_host: host,
        advertised_port: port,
        data_dir: cfg.data_dir.clone(),
        settings: cfg.settings.clone(),
    }
}

async fn shard_main(p: ShardPlan) {
    let listener = match TcpListener::bind(p.listen) {
        Ok(l) => l,
        Err(e) => {
            let _ = p
                .report
                .send(Startup::Failed(format!("binding {}: {e}", p.listen)));
            return;
        }
    };
    let bound = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            let _ = p.report.send(Startup::Failed(e.to_string()));
            return;
        }
    };
    if p.id == 0 {
        let _ = p.report.send(Startup::Bound(bound));
    }
    let info = Arc::new(broker_info(&p.cfg, bound, p.cluster_id.clone()));
    let store = (p.id == 0).then(|| {
        Rc::new(MetadataStore::new(
            &p.cfg.data_dir,
            &p.snapshot,
            p.cluster_id.clone(),
        ))
    });
    let ctx = ShardCtx::new(
        p.id,
        p.n,
        info,
        Arc::new(MetadataSnapshot::default()),
        store,
    );
    ctx.install();
    if let Err(e) = ctx.join_mesh(p.mesh).await {
        let _ = p.report.send(Startup::Failed(e.to_string()));
        return;
    }
    controller::apply_snapshot(&ctx, p.snapshot.clone()).await;
    let _ = p.report.send(Startup::Ready);

    // Shutdown watcher: the flag is set from a non-executor thread.
    {
        let ctx = ctx.clone();
        let stop = p.stop.clone();
        glommio::spawn_local(async move {
            while !stop.load(Ordering::SeqCst) {
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
            ctx.stopping.set();
        })
        .detach();
    }
    spawn_retention(&ctx);

    let gate = glommio::sync::Gate::new();
    loop {
        let accepted = async { Some(listener.accept().await) }
            .or(async {
                ctx.stopping.wait().await;
                None
            })
            .await;
        match accepted {
            Some(Ok(stream)) => {
                let c = ctx.clone();
                match gate.spawn(connection::serve(c, stream)) {
                    Ok(task) => {
                        task.detach();
                    }
                    Err(_) => break,
                }
            }
            Some(Err(e)) => {
                tracing::warn!(shard = p.id, error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
            None => break,
        }
    }
    drop(listener);
    let _ = gate.close().await;
    p.drained.fetch_add(1, Ordering::SeqCst);
    // Other shards may still be finishing requests that touch our partitions.
    while p.drained.load(Ordering::SeqCst) < p.n {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    for (topic, partition, log) in ctx.all_logs() {
        if let Err(e) = log.flush().await {
            tracing::error!(%topic, partition, error = %e, "flush on shutdown failed");
        }
        if let Err(e) = log.close().await {
            tracing::error!(%topic, partition, error = %e, "close on shutdown failed");
        }
    }
    // Wait until every shard closed its logs before tearing down the mesh.
    p.drained.fetch_add(1, Ordering::SeqCst);
    while p.drained.load(Ordering::SeqCst) < 2 * p.n {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    ctx.leave_mesh();
    ShardCtx::uninstall();
    tracing::debug!(shard = p.id, "shard stopped");
}

/// Enforces retention on this shard's logs every `log.retention.check.interval.ms`.
fn spawn_retention(ctx: &Rc<ShardCtx>) {
    let ctx = ctx.clone();
    let every = Duration::from_millis(ctx.info.settings.log_retention_check_interval_ms.max(10));
    glommio::spawn_local(async move {
        loop {
            let stopped = async {
                glommio::timer::sleep(every).await;
                false
            }
            .or(async {
                ctx.stopping.wait().await;
                true
            })
            .await;
            if stopped {
                break;
            }
            let now = now_ms();
            for (topic, partition, log) in ctx.all_logs() {
                match log.enforce_retention(now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(%topic, partition, segments = n, "retention deleted segments"),
                    Err(e) => tracing::warn!(%topic, partition, error = %e, "retention failed"),
                }
            }
        }
    })
    .detach();
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
