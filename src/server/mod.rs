//! Listener, connections, dispatch and the per-API handlers.
//!
//! # Process shape
//!
//! [`spawn_broker`] checks the listen address and locks the data directory ([`startup`]), loads the
//! metadata file, then starts one shard thread per core (glommio `LocalExecutor`,
//! `Placement::Fixed`). Shard 0 binds the listen address first (so port 0 resolves to one real
//! port), then every other shard binds that same port; glommio sets SO_REUSEPORT, so the kernel
//! spreads incoming connections across shards. Each shard then recovers and opens the partitions
//! it owns; no shard accepts before all of them have (requests for a partition are routed to its
//! owner, so one early shard would answer UNKNOWN_TOPIC_OR_PARTITION for partitions that exist).
//! Connections made meanwhile wait in the listen backlog. A connection stays on the shard that
//! accepted it; partition work is routed to the owner shard with [`crate::shard::run_on`].
//!
//! # Connections ([`connection`])
//!
//! Check-then-parse framing (the size is checked against `socket.request.max.bytes` before a buffer
//! for the frame exists), header decoded with kafka-protocol, dispatch by API key to
//! [`handlers`], one spawned task per request. Responses leave in request order: the reader pushes
//! each request's task into a bounded queue (`queued.max.requests.per.connection`), the writer awaits
//! them in order. A full queue stops the reader, so a client that never reads its responses only
//! stalls itself. An unknown API key, an unsupported API version (other than ApiVersions, which gets
//! the KIP-511 fallback), a malformed header or body closes the connection with a log line. That is
//! what Kafka's SocketServer does too: a response body at a version the broker does not speak cannot
//! be encoded, and clients only send versions they negotiated through ApiVersions, so in practice
//! only ApiVersions itself (sent before negotiation) needs an UNSUPPORTED_VERSION answer.
//!
//! Requests of one connection also *take effect* in order, as in Kafka (which processes one request
//! per connection at a time; producers with several requests in flight rely on it): each request
//! task waits until its predecessor released it ([`handlers::Request::release`]). By default that
//! is when the predecessor's handler finished; Fetch releases at once (read-only, so a long poll
//! does not hold up the connection) and Produce as soon as its appends have their offsets, before
//! their writes and the acks=-1 durability wait, so pipelined produces overlap both.
//!
//! Decoding: kafka-protocol pre-allocates arrays from their claimed length, so a tiny request
//! claiming 2^31 elements would abort the process on allocation failure; `ringbolt serve` installs
//! [`alloc::HugeAllocGuard`], which turns such reservations into untouched `MAP_NORESERVE`
//! mappings so the decode fails and only that connection is closed.
//!
//! # Zero-copy fetch ([`zerocopy`])
//!
//! Fetch responses are encoded by [`fetch_response`] into header bytes plus file
//! slices; the writer sends the bytes with normal socket writes and the slices with sendfile(2) from
//! the segment file's page cache to the socket, so record bytes never enter user space. The socket
//! is switched to O_NONBLOCK; when sendfile hits EAGAIN the writer sends the *next single byte* of
//! the slice through glommio's ordinary async write (pread of one byte), which parks the task until
//! the socket is writable without blocking the executor, then resumes sendfile after that byte.
//! glommio 0.9 exposes no "wait until writable" for a raw fd; this keeps the wait on its io_uring poll
//! at the cost of one extra 1-byte pread+send per full socket buffer. The copying path
//! (`fetch.zerocopy.enable = false`: read slices into memory, encode with kafka-protocol) is kept
//! for comparison; `cargo bench --bench fetch_path` measures both over loopback (4 MiB fetches of
//! 64 KiB batches from a page-cache-resident 128 MiB partition, the two paths alternated twice).
//! With sendfile the broker spends clearly less CPU per GiB served; consume throughput moved with
//! machine load and did not separate the paths, as it is bound by the client reading and decoding
//! on the same cores (measured in `docs/perf/zerocopy-fetch.md`). On loopback the sender also pays
//! for the TCP receive processing, which is a large part of both; on a real NIC the saved copies are
//! a larger share. Zero-copy is therefore the default; the copying path stays for comparison and debugging.
//!
//! sendfile reads the file synchronously, and segments are written with O_DIRECT, so the slice may
//! not be in the page cache. Each piece of a slice is first made ready through io_uring
//! (`storage::page_cache::settle`: a `cachestat` check, and a warm-up read only when needed), so
//! the wait for the device happens off the shard thread.
//!
//! # Shutdown
//!
//! [`BrokerHandle::shutdown`] (and SIGTERM/SIGINT in `ringbolt serve`) sets a flag every shard
//! polls: each stops accepting, stops reading new requests, finishes the ones in flight (a
//! long-polling fetch returns early), then waits until every shard got that far (another shard's
//! in-flight request may still need its partitions), flushes and closes its logs and leaves the mesh.
//!
//! Every wait of a shutdown is bounded, and a slow one says what it waits for:
//!
//! - A connection gets `SHUTDOWN_GRACE` (5 s) to write the responses it owes; a client that
//!   stopped reading (its socket buffers full) is then dropped with a warning naming the peer.
//! - Partition logs are flushed and closed [`CLOSE_CONCURRENCY`] at a time per shard: each close
//!   syncs several files, so closing thousands of partitions one after the other costs seconds,
//!   while the syncs of different files overlap well.
//! - Each shard publishes what it is doing (`ShardStatus`); the thread that shuts the broker down
//!   logs every [`PROGRESS_EVERY`] which shards it still waits for and why ("draining 3
//!   connection(s)", "flushing and closing 812 partition log(s)"), and gives up after
//!   [`SHUTDOWN_TIMEOUT`]:
//!   the shard threads are left to the end of the process and `shutdown` returns an error naming
//!   them. That only happens when a shard thread no longer runs its tasks at all (a task that
//!   never yields, a blocked system call); recovery on the next start handles whatever it did not
//!   flush, as after a crash.
//! - In `ringbolt serve`, log lines never block a shard or the shutdown: they are queued to a
//!   writer thread ([`log_sink`]), so a stderr nobody reads costs log lines, not the broker.
//!
//! # Stopping during startup
//!
//! [`spawn_broker_until`] takes the stop flag from its caller (`ringbolt serve` passes the one its
//! signal handlers set), so a SIGTERM that arrives while the shards recover is acted on at once
//! instead of after recovery: shards stop opening partition logs (one partition's recovery is not
//! interrupted), skip the group coordinator, close what they opened and exit, and the call returns
//! [`StartupInterrupted`]. A shard that fails to bind still joins the shard mesh before it exits,
//! because the others wait in the mesh's join until every shard arrived; a shard thread that
//! cannot even be created leaves them waiting there for good, so they are abandoned (they have
//! opened nothing yet).

pub mod alloc;
pub mod authz;
pub mod cli;
pub mod cluster_mode;
pub mod connection;
pub mod fetch_response;
pub mod handlers;
pub mod legacy_fetch;
pub mod log_sink;
pub mod mutation_quota;
pub mod partitions;
pub mod request_quota;
pub mod shared_stream;
pub mod startup;
pub mod zerocopy;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_lite::FutureExt;
use glommio::net::TcpListener;
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};

pub use crate::config::{BrokerConfig, BrokerSettings};
use crate::metadata::{MetadataSnapshot, MetadataStore, controller};
use crate::shard::{BrokerInfo, MESH_CHANNEL_SIZE, Mesh, ShardCtx};
use crate::util::now_ms;
pub use cli::{ServeArgs, serve_main};

/// How long [`BrokerHandle::shutdown`] waits for the shards before it gives up on them.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a slow startup or shutdown logs what it is waiting for.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Partition logs one shard flushes and closes at the same time on shutdown.
pub const CLOSE_CONCURRENCY: u64 = 64;
/// Longest startup without any shard reporting progress (bound, ready or failed).
const STARTUP_STALL: Duration = Duration::from_secs(60);

/// The log cleaner's share of a shard's CPU when requests compete for it (the default task
/// queue has 1000): the cleaner gets a tenth of the shard's time under load and all of it when
/// idle.
const CLEANER_SHARES: usize = 100;

/// [`spawn_broker_until`] was asked to stop before the broker was ready; everything it had started
/// was shut down cleanly.
#[derive(Debug, thiserror::Error)]
#[error("stopped during startup, before the broker was ready")]
pub struct StartupInterrupted;

/// What a shard is doing, published for the progress lines of a slow startup or shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    Starting = 0,
    Recovering,
    Ready,
    Serving,
    Draining,
    WaitingDrained,
    Closing,
    WaitingClosed,
    Stopped,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        use Phase::*;
        [
            Starting,
            Recovering,
            Ready,
            Serving,
            Draining,
            WaitingDrained,
            Closing,
            WaitingClosed,
            Stopped,
        ]
        .get(v as usize)
        .copied()
        .unwrap_or(Stopped)
    }
}

/// One shard's published state (written by the shard, read by the thread that starts or stops
/// the broker).
#[derive(Debug, Default)]
struct ShardStatus {
    phase: AtomicU8,
    connections: AtomicUsize,
    logs_left: AtomicUsize,
}

impl ShardStatus {
    fn set(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::SeqCst))
    }

    /// What the shard is doing, for a log line.
    fn describe(&self) -> String {
        match self.phase() {
            Phase::Starting => "starting".into(),
            Phase::Recovering => "opening its partition logs".into(),
            Phase::Ready => "ready, waiting for the other shards".into(),
            Phase::Serving => format!(
                "serving {} connection(s)",
                self.connections.load(Ordering::SeqCst)
            ),
            Phase::Draining => format!(
                "draining {} connection(s)",
                self.connections.load(Ordering::SeqCst)
            ),
            Phase::WaitingDrained => "waiting for the other shards to drain".into(),
            Phase::Closing => format!(
                "flushing and closing {} partition log(s)",
                self.logs_left.load(Ordering::SeqCst)
            ),
            Phase::WaitingClosed => "waiting for the other shards to close their logs".into(),
            Phase::Stopped => "stopped".into(),
        }
    }
}

/// The shards not yet stopped, as "shard 1 (draining 2 connection(s)), ...".
fn pending_shards(statuses: &[ShardStatus]) -> String {
    statuses
        .iter()
        .enumerate()
        .filter(|(_, s)| s.phase() != Phase::Stopped)
        .map(|(i, s)| format!("shard {i} ({})", s.describe()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Marks the shard stopped however its thread ends (a panic included).
struct StoppedOnDrop(Arc<[ShardStatus]>, usize);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        self.0[self.1].set(Phase::Stopped);
    }
}

/// Counts a connection on its shard while it is served.
struct ConnectionCount(Arc<[ShardStatus]>, usize);

impl ConnectionCount {
    fn new(statuses: &Arc<[ShardStatus]>, id: usize) -> Self {
        statuses[id].connections.fetch_add(1, Ordering::SeqCst);
        ConnectionCount(statuses.clone(), id)
    }
}

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        self.0[self.1].connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running broker. Dropping it shuts it down too (errors are then only logged).
pub struct BrokerHandle {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    shards: Vec<ExecutorJoinHandle<()>>,
    statuses: Arc<[ShardStatus]>,
    /// Held until the shards are joined (fields drop after `Drop::drop`).
    data_dir: Option<startup::DataDir>,
    /// Cluster mode: the quorum thread, shut down after the shards ([`cluster_mode`]).
    quorum: Option<crate::cluster::QuorumHandle>,
}

impl BrokerHandle {
    /// The bound address (the real port when the listen port was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The data directory as resolved at startup (absolute).
    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(std::path::Path::new(""))
    }

    /// Clean stop: stop accepting, finish in-flight requests, sync and close the logs. Waits at
    /// most [`SHUTDOWN_TIMEOUT`]; past it the error names the shards that did not stop.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop_and_join(SHUTDOWN_TIMEOUT)
    }

    fn stop_and_join(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let joined = self.stop_and_join_shards(timeout);
        if joined.is_ok()
            && let Some(q) = self.quorum.take()
        {
            q.shutdown();
        }
        joined
    }

    fn stop_and_join_shards(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        if self.shards.is_empty() {
            return Ok(());
        }
        // Shards are started in id order; those never started have nothing to stop.
        let statuses = self.statuses.clone();
        let started = &statuses[..self.shards.len()];
        let t0 = Instant::now();
        let mut next_log = t0 + PROGRESS_EVERY;
        while started.iter().any(|s| s.phase() != Phase::Stopped) {
            let now = Instant::now();
            if now >= t0 + timeout {
                let pending = pending_shards(started);
                tracing::error!(
                    waited_s = timeout.as_secs(),
                    %pending,
                    "shutdown did not finish; leaving the remaining shard threads to the end of the process"
                );
                self.abandon();
                anyhow::bail!(
                    "shutdown did not finish within {} s; still running: {pending}",
                    timeout.as_secs()
                );
            }
            if now >= next_log {
                tracing::info!(
                    elapsed_s = (now - t0).as_secs(),
                    pending = %pending_shards(started),
                    "shutdown in progress"
                );
                next_log += PROGRESS_EVERY;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
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

    /// Stops waiting for the shard threads: they run on until they end or the process does. The
    /// data dir lock goes with the process too, as those threads may still write there.
    fn abandon(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.shards.clear();
        std::mem::forget(self.data_dir.take());
    }
}

impl Drop for BrokerHandle {
    fn drop(&mut self) {
        if (!self.shards.is_empty() || self.quorum.is_some())
            && let Err(e) = self.stop_and_join(SHUTDOWN_TIMEOUT)
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
    quota_meters: Arc<crate::quota::QuotaTracker>,
    /// Cluster mode: the metadata quorum ([`cluster_mode`]).
    quorum: Option<crate::cluster::QuorumHandle>,
    /// This shard's own copy of the mesh builder, made before any shard started (see
    /// [`mesh_copies`]); taken once, by the shard's `join`.
    mesh: Option<Mesh>,
    stop: Arc<AtomicBool>,
    /// Set once every shard reported [`Startup::Ready`]; no shard accepts before.
    open: Arc<AtomicBool>,
    drained: Arc<AtomicUsize>,
    statuses: Arc<[ShardStatus]>,
    report: std::sync::mpsc::Sender<Startup>,
}

/// Starts the broker's shard threads and returns once every shard has recovered its partitions and
/// accepts connections.
///
/// Fails before any shard starts when the data directory cannot be created, written or locked
/// (another broker holds it), or the listen address is served by another process
/// ([`startup`]); fails after recovery when a partition log cannot be opened.
pub fn spawn_broker(cfg: BrokerConfig) -> anyhow::Result<BrokerHandle> {
    spawn_broker_until(cfg, Arc::new(AtomicBool::new(false)))
}

/// [`spawn_broker`] with the caller's stop flag: setting it stops the broker, also while it is
/// still starting, in which case this returns [`StartupInterrupted`] once what was started has
/// shut down (see the module docs). The returned handle's [`BrokerHandle::shutdown`] sets the same
/// flag.
pub fn spawn_broker_until(
    mut cfg: BrokerConfig,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<BrokerHandle> {
    if stop.load(Ordering::SeqCst) {
        return Err(StartupInterrupted.into());
    }
    startup::check_address_free(cfg.listen)?;
    let data_dir = startup::lock_data_dir(&cfg.data_dir)?;
    cfg.data_dir = data_dir.path().to_owned();
    let n = cfg.shard_count();
    let cluster = cfg.settings.cluster()?;
    let (snapshot, cluster_id) = match &cluster {
        // Shards start empty; shard 0 publishes the quorum's images (`cluster_mode`).
        Some(cs) => (
            Arc::new(MetadataSnapshot {
                settings: Arc::new(cfg.settings.clone()),
                ..MetadataSnapshot::default()
            }),
            cs.derived_cluster_id(),
        ),
        None => MetadataStore::load_snapshot(&cfg.data_dir, &cfg.settings)?,
    };
    startup::warn_if_few_descriptors(
        snapshot
            .topics
            .values()
            .map(|t| t.partitions.max(0) as u64)
            .sum(),
    );
    let cpus = allowed_cpus();
    let mut meshes = mesh_copies(n);
    let quota_meters = Arc::new(crate::quota::QuotaTracker::default());
    let open = Arc::new(AtomicBool::new(false));
    let drained = Arc::new(AtomicUsize::new(0));
    let statuses: Arc<[ShardStatus]> = (0..n).map(|_| ShardStatus::default()).collect();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut handle = BrokerHandle {
        local_addr: cfg.listen,
        stop: stop.clone(),
        shards: Vec::with_capacity(n),
        statuses: statuses.clone(),
        data_dir: Some(data_dir),
        quorum: None,
    };
    // In cluster mode the shards stop on their own flag, set after a controlled shutdown.
    let shard_stop = match &cluster {
        Some(cs) => {
            let quorum = cluster_mode::start_quorum(&cfg, cs)?;
            handle.quorum = Some(quorum.clone());
            let shard_stop = Arc::new(AtomicBool::new(false));
            cluster_mode::spawn_stop_relay(stop.clone(), shard_stop.clone(), open.clone(), quorum)?;
            shard_stop
        }
        None => stop.clone(),
    };
    let quorum = handle.quorum.clone();
    let mut plan = |id: usize, listen: SocketAddr| ShardPlan {
        id,
        n,
        listen,
        cfg: cfg.clone(),
        cluster_id: cluster_id.clone(),
        snapshot: snapshot.clone(),
        quota_meters: quota_meters.clone(),
        quorum: quorum.clone(),
        mesh: meshes[id].take(),
        stop: shard_stop.clone(),
        open: open.clone(),
        drained: drained.clone(),
        statuses: statuses.clone(),
        report: tx.clone(),
    };
    let start = |p: ShardPlan| -> anyhow::Result<ExecutorJoinHandle<()>> {
        let id = p.id;
        LocalExecutorBuilder::new(Placement::Fixed(cpus[id % cpus.len()]))
            .name(&format!("ringbolt-shard-{id}"))
            .spawn(move || shard_main(p))
            .map_err(|e| anyhow::anyhow!("starting shard {id}: {e}"))
    };
    let mut wait = StartupWait {
        rx,
        stop: &stop,
        statuses: &statuses,
        last_report: Instant::now(),
        next_log: Instant::now() + PROGRESS_EVERY,
    };
    handle.shards.push(start(plan(0, cfg.listen))?);
    let addr = match wait.next(&mut handle, false)? {
        Startup::Bound(a) => a,
        Startup::Failed(e) => anyhow::bail!("shard 0: {e}"),
        Startup::Ready => anyhow::bail!("shard 0 reported ready before binding"),
    };
    handle.local_addr = addr;
    for id in 1..n {
        match start(plan(id, addr)) {
            Ok(h) => handle.shards.push(h),
            Err(e) => {
                // The shards already started wait in the mesh's join for this one, for good.
                tracing::error!(error = %e, started = id, "abandoning the shards already started");
                handle.abandon();
                return Err(e);
            }
        }
    }
    let mut ready = 0;
    while ready < n {
        match wait.next(&mut handle, true)? {
            Startup::Ready => ready += 1,
            Startup::Bound(_) => {}
            Startup::Failed(e) => anyhow::bail!("{e}"),
        }
    }
    open.store(true, Ordering::SeqCst);
    tracing::info!(%addr, shards = n, data_dir = %cfg.data_dir.display(), "broker listening");
    Ok(handle)
}

/// The startup reports of the shards, read while watching the stop flag.
struct StartupWait<'a> {
    rx: std::sync::mpsc::Receiver<Startup>,
    stop: &'a AtomicBool,
    statuses: &'a [ShardStatus],
    last_report: Instant,
    next_log: Instant,
}

impl StartupWait<'_> {
    /// The next report. Once every shard thread runs (`interruptible`), a stop request shuts
    /// them down and ends the startup with [`StartupInterrupted`]; before that it waits, as the
    /// shards already started could not leave the mesh's join without the others (shard 0 only
    /// has to bind). A startup where no shard reports anything for [`STARTUP_STALL`] fails with
    /// an error naming what each shard is doing.
    fn next(&mut self, handle: &mut BrokerHandle, interruptible: bool) -> anyhow::Result<Startup> {
        loop {
            let started = &self.statuses[..handle.shards.len()];
            if interruptible && self.stop.load(Ordering::SeqCst) {
                tracing::info!(
                    pending = %pending_shards(started),
                    "stop requested during startup; stopping the shards"
                );
                handle.stop_and_join(SHUTDOWN_TIMEOUT)?;
                return Err(StartupInterrupted.into());
            }
            match self.rx.recv_timeout(Duration::from_millis(20)) {
                Ok(r) => {
                    self.last_report = Instant::now();
                    return Ok(r);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    anyhow::bail!("shards ended during startup: {}", pending_shards(started))
                }
            }
            let now = Instant::now();
            if now >= self.last_report + STARTUP_STALL {
                anyhow::bail!(
                    "startup made no progress for {} s: {}",
                    STARTUP_STALL.as_secs(),
                    pending_shards(started)
                );
            }
            if now >= self.next_log {
                tracing::info!(pending = %pending_shards(started), "startup in progress");
                self.next_log = now + PROGRESS_EVERY;
            }
        }
    }
}

/// The CPU ids this process may run on (its affinity mask), so shards pin to allowed cores even
/// inside a cpuset that does not start at CPU 0.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills the zeroed cpu_set_t we pass with its exact size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let ok =
        // SAFETY: as above: `set` is a valid cpu_set_t and the size passed is its own.
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) }
            == 0;
    let cpus: Vec<usize> = if ok {
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `i` is below CPU_SETSIZE.
            .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
            .collect()
    } else {
        Vec::new()
    };
    if cpus.is_empty() { vec![0] } else { cpus }
}

fn broker_info(p: &ShardPlan, bound: SocketAddr) -> BrokerInfo {
    let cfg = &p.cfg;
    let cluster_id = p.cluster_id.clone();
    let (host, port) = cluster_mode::advertised(cfg, bound);
    BrokerInfo {
        node_id: cfg.settings.node_id,
        cluster_id,
        advertised_host: host,
        advertised_port: port,
        data_dir: cfg.data_dir.clone(),
        settings: cfg.settings.clone(),
        quota_meters: p.quota_meters.clone(),
        quorum: p.quorum.clone(),
    }
}

/// One copy of a new shard mesh builder per shard, all made here on the calling thread.
///
/// glommio's `MeshBuilder` is `Send` but keeps its peer list in an `Rc`: a clone or drop on one
/// thread racing with one on another updates the non-atomic count wrongly, and a lost increment
/// frees the list while a shard still reads it (seen as heap corruption in the test suite, found
/// with AddressSanitizer). So no shard ever clones it: every copy is made before any shard thread
/// exists, and a shard only moves its copy into `join`, which drops it. Concurrent drops can at
/// worst lose a decrement, which leaks the (small) peer list instead of freeing it early.
fn mesh_copies(n: usize) -> Vec<Option<Mesh>> {
    let mesh: Mesh = Mesh::full(n, MESH_CHANNEL_SIZE);
    (0..n).map(|_| Some(mesh.clone())).collect()
}

/// One shard's life: bind, join the mesh, recover its partitions, serve until the broker stops,
/// shut down.
async fn shard_main(mut p: ShardPlan) {
    let mesh = p.mesh.take();
    let _stopped = StoppedOnDrop(p.statuses.clone(), p.id);
    let Some((listener, bound)) = bind(&p) else {
        return;
    };
    let ctx = install_ctx(&p, bound);
    watch_stop(&ctx, &p.stop);
    crate::storage::iopoll::avoid_iopoll_without_poll_queues(&p.cfg.data_dir).await;
    if !enter_mesh(&p, &ctx, mesh).await {
        return;
    }
    let Some(listener) = listener else {
        shutdown_shard(&p, &ctx).await;
        return;
    };
    recover(&p, &ctx).await;
    wait_until_open(&p).await;
    accept_until_stopped(&p, &ctx, listener).await;
    shutdown_shard(&p, &ctx).await;
}

/// Binds this shard's listener; shard 0 reports the bound address. `None` when shard 0 failed
/// (nothing else was started); a later shard that failed goes on without a listener.
fn bind(p: &ShardPlan) -> Option<(Option<TcpListener>, SocketAddr)> {
    let bound = TcpListener::bind(p.listen).and_then(|l| {
        let a = l.local_addr()?;
        Ok((l, a))
    });
    let (listener, bound) = match bound {
        Ok((l, a)) => (Some(l), a),
        Err(e) => {
            let _ = p
                .report
                .send(Startup::Failed(format!("binding {}: {e}", p.listen)));
            if p.id == 0 {
                // No other shard was started: nobody waits for this one.
                return None;
            }
            // The shards already started wait for this one in the mesh's join: join, then stop.
            (None, p.listen)
        }
    };
    if p.id == 0 {
        let _ = p.report.send(Startup::Bound(bound));
    }
    Some((listener, bound))
}

/// Makes this shard's context (shard 0's also owns the metadata store) and installs it on the
/// thread.
fn install_ctx(p: &ShardPlan, bound: SocketAddr) -> Rc<ShardCtx> {
    let info = Arc::new(broker_info(p, bound));
    let store = (p.id == 0).then(|| {
        Rc::new(MetadataStore::new(
            &p.cfg.data_dir,
            &p.snapshot,
            p.cluster_id.clone(),
            Arc::new(p.cfg.settings.clone()),
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
    ctx
}

/// Sets `ctx.stopping` once the stop flag (set from a non-executor thread) is. Started before
/// recovery, so a stop during startup is seen by `apply_snapshot` between two partitions.
fn watch_stop(ctx: &Rc<ShardCtx>, stop: &Arc<AtomicBool>) {
    let ctx = ctx.clone();
    let stop = stop.clone();
    glommio::spawn_local(async move {
        while !stop.load(Ordering::SeqCst) {
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
        ctx.stopping.set();
    })
    .detach();
}

/// Joins the shard mesh. On failure reports it, counts this shard as drained and closed (so no
/// other shard waits for it at shutdown) and returns false.
async fn enter_mesh(p: &ShardPlan, ctx: &Rc<ShardCtx>, mesh: Option<Mesh>) -> bool {
    let joined = match mesh {
        Some(mesh) => ctx.join_mesh(mesh).await,
        None => Err(std::io::Error::other("no shard mesh for this shard")),
    };
    if let Err(e) = joined {
        let _ = p.report.send(Startup::Failed(e.to_string()));
        p.drained.fetch_add(2, Ordering::SeqCst);
        ShardCtx::uninstall();
        return false;
    }
    true
}

/// Opens this shard's partition logs and starts its group coordinator, reports the outcome and
/// starts retention.
async fn recover(p: &ShardPlan, ctx: &Rc<ShardCtx>) {
    let status = &p.statuses[p.id];
    status.set(Phase::Recovering);
    let failed = controller::apply_snapshot(ctx, p.snapshot.clone()).await;
    let joined = if p.id == 0 {
        cluster_mode::follow_and_wait_registered(ctx, &p.stop).await
    } else {
        Ok(())
    };
    if !ctx.stopping.is_set() {
        crate::group::shard::start_shard(ctx).await;
        crate::txn::shard::start_shard(ctx).await;
    }
    // A failed shard still goes through the shutdown sequence (the others wait for it there);
    // `spawn_broker` stops the broker when it reads the failure.
    let _ = p.report.send(match failed.first() {
        None if joined.is_err() => {
            Startup::Failed(format!("cluster: {}", joined.err().unwrap_or_default()))
        }
        None => Startup::Ready,
        Some(first) => Startup::Failed(format!(
            "shard {}: {} partition log(s) could not be opened, first {first}",
            p.id,
            failed.len()
        )),
    });
    status.set(Phase::Ready);
    spawn_retention(ctx);
    spawn_cleaner(ctx);
}

/// Waits until every shard is ready (or the broker stops). Connections that arrive meanwhile wait
/// in the listen backlog: a shard that accepted before the others recovered would route requests
/// to partitions not open yet, and clients would be told that existing partitions are unknown.
async fn wait_until_open(p: &ShardPlan) {
    while !p.open.load(Ordering::SeqCst) && !p.stop.load(Ordering::SeqCst) {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
}

/// Accepts and serves connections until the broker stops, then waits for them to end.
async fn accept_until_stopped(p: &ShardPlan, ctx: &Rc<ShardCtx>, listener: TcpListener) {
    let status = &p.statuses[p.id];
    status.set(Phase::Serving);
    let gate = glommio::sync::Gate::new();
    while p.open.load(Ordering::SeqCst) {
        let accepted = async { Some(listener.accept().await) }
            .or(async {
                ctx.stopping.wait().await;
                None
            })
            .await;
        match accepted {
            Some(Ok(stream)) => {
                let c = ctx.clone();
                let count = ConnectionCount::new(&p.statuses, p.id);
                let served = async move {
                    connection::serve(c, stream).await;
                    drop(count);
                };
                match gate.spawn(served) {
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
    status.set(Phase::Draining);
    drop(listener);
    // Bounded: every connection ends within its shutdown grace (see `connection::serve`).
    let _ = gate.close().await;
}

/// The end of a shard once its connections are gone: wait until every shard drained (another
/// shard's in-flight request may still need our partitions), close the logs, wait until every
/// shard closed its logs, leave the mesh.
async fn shutdown_shard(p: &ShardPlan, ctx: &Rc<ShardCtx>) {
    let status = &p.statuses[p.id];
    p.drained.fetch_add(1, Ordering::SeqCst);
    status.set(Phase::WaitingDrained);
    while p.drained.load(Ordering::SeqCst) < p.n {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    status.set(Phase::Closing);
    close_logs(ctx, status).await;
    crate::txn::shard::stop_shard(ctx).await;
    crate::group::shard::stop_shard(ctx).await;
    // Wait until every shard closed its logs before tearing down the mesh.
    p.drained.fetch_add(1, Ordering::SeqCst);
    status.set(Phase::WaitingClosed);
    while p.drained.load(Ordering::SeqCst) < 2 * p.n {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    ctx.leave_mesh();
    ShardCtx::uninstall();
    tracing::debug!(shard = p.id, "shard stopped");
}

/// Flushes and closes every log of this shard, [`CLOSE_CONCURRENCY`] at a time.
async fn close_logs(ctx: &Rc<ShardCtx>, status: &ShardStatus) {
    let logs = ctx.all_logs();
    status.logs_left.store(logs.len(), Ordering::SeqCst);
    let limit = Rc::new(glommio::sync::Semaphore::new(CLOSE_CONCURRENCY));
    let mut left = logs.len();
    let tasks: Vec<_> = logs
        .into_iter()
        .map(|(topic, partition, log)| {
            let limit = limit.clone();
            glommio::spawn_local(async move {
                let _permit = limit.acquire_permit(1).await;
                if let Err(e) = log.flush().await {
                    tracing::error!(%topic, partition, error = %e, "flush on shutdown failed");
                }
                if let Err(e) = log.close().await {
                    tracing::error!(%topic, partition, error = %e, "close on shutdown failed");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await;
        left -= 1;
        status.logs_left.store(left, Ordering::SeqCst);
    }
}

/// Runs this shard's log cleaner (`storage::cleaner`) in its own low-share task queue until the
/// broker stops.
fn spawn_cleaner(ctx: &Rc<ShardCtx>) {
    let cfg = ctx.info.settings.cleaner_config();
    if !cfg.enable {
        return;
    }
    let backoff = Duration::from_millis(cfg.backoff_ms.max(10));
    let shard = ctx.id;
    let ctx = ctx.clone();
    let run = async move {
        let mut cleaner = crate::storage::cleaner::ShardCleaner::new(cfg, ctx.n_shards);
        while !ctx.stopping.is_set() {
            let logs: Vec<_> = ctx.all_logs().into_iter().map(|(_, _, l)| l).collect();
            match cleaner.clean_filthiest(&logs, now_ms()).await {
                Some(Ok(r)) => {
                    tracing::info!(
                        dir = %r.dir.display(),
                        dirty_ratio = r.dirty_ratio,
                        read = r.stats.bytes_read,
                        written = r.stats.bytes_written,
                        records_kept = r.stats.records_kept,
                        records_read = r.stats.records_read,
                        segments_before = r.stats.segments_before,
                        segments_after = r.stats.segments_after,
                        "log cleaner cleaned a log"
                    );
                    continue;
                }
                Some(Err((dir, e))) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "log cleaner failed")
                }
                None => {}
            }
            let _ = async {
                glommio::timer::sleep(backoff).await;
            }
            .or(ctx.stopping.wait())
            .await;
        }
    };
    let tq = glommio::executor().create_task_queue(
        glommio::Shares::Static(CLEANER_SHARES),
        glommio::Latency::NotImportant,
        "log-cleaner",
    );
    match glommio::spawn_local_into(run, tq) {
        Ok(t) => {
            t.detach();
        }
        Err(e) => tracing::error!(shard, error = %e, "log cleaner not started"),
    }
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
                // Shutdown closes the logs meanwhile; a pass over thousands must not hold it up.
                if ctx.stopping.is_set() {
                    break;
                }
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
