//! The metadata quorum: Raft (openraft) over the [`MetaCommand`] log, on a thread of its own.
//!
//! Everything async here runs on one OS thread with a tokio current-thread runtime that this
//! module starts and stops; shards never run tokio. They talk to it through [`QuorumHandle`],
//! which is `Send + Sync` and whose futures are plain channel receives that any executor (glommio)
//! can await.
//!
//! # Parts
//! - `types`: openraft's type config (node id = `node.id`, node = controller listener address,
//!   data = [`MetaCommand`], response = [`MetaResponse`], snapshot = an in-memory buffer).
//! - `log_store`: the durable Raft log, vote and commit/purge markers (file format there).
//! - `state_machine`: the [`ClusterImage`], snapshots, and the published image.
//! - `wire`, `net`, `server`: the controller transport (framed JSON over one TCP connection per
//!   peer) carrying Raft's RPCs, forwarded proposals, heartbeats and learner joins.
//! - `node`: routing of proposals and heartbeats to the leader.
//! - `broker`: registration and heartbeats; `active`: the active controller
//!   ([`super::controller::ControllerPolicy`]) on the Raft leader; `status`: DescribeQuorum.
//! - `thread`: the runtime thread and the handle's commands.
//!
//! # Decisions
//! - Bootstrap: every voter whose directory is empty calls openraft's `initialize` with the full
//!   `controller.quorum.voters` list. openraft makes that safe when several do (the same
//!   membership entry at index 0 on each; one election winner). A node with any state never
//!   initializes again.
//! - Raft timing follows `controller.quorum.election.timeout.ms`: elections time out between it
//!   and twice it, the leader heartbeats every fifth of it. A snapshot is taken every
//!   `snapshot_every` applied entries and the log below it is purged at once; a follower too far
//!   behind receives the snapshot whole, in one frame.
//! - A restarted node whose durable vote is a committed vote for itself resumes as leader of that
//!   term (openraft's behaviour); if the others moved on, it steps down at their first message,
//!   and nothing it proposes meanwhile can commit.
//! - Broker-only nodes (not voters) join as Raft learners: they ask the leader to add them with
//!   their controller listener address, which they must therefore have.

mod active;
mod broker;
mod log_store;
mod net;
mod node;
mod server;
mod state_machine;
mod status;
mod thread;
mod types;
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use broker::BrokerState;
use thread::Cmd;
use types::RaftMetricsOf;

use super::controller::SessionTimeouts;
use super::image::{ClusterImage, MetaCommand, MetaResponse};

/// How to start this node's quorum participation.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    pub node_id: i32,
    /// `controller.quorum.voters`: id → controller listener address.
    pub voters: Vec<(i32, SocketAddr)>,
    /// This node's controller listener (bound when it is a voter).
    pub controller_listen: Option<SocketAddr>,
    /// `process.roles` contains `controller`.
    pub is_controller: bool,
    /// `process.roles` contains `broker`: registers and heartbeats as a broker.
    pub is_broker: bool,
    /// Where the Raft log, vote and snapshots live (`<data-dir>/__cluster_metadata-0/`).
    pub dir: PathBuf,
    /// The advertised client listener and rack this broker registers with.
    pub broker_host: String,
    pub broker_port: i32,
    pub rack: Option<String>,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    pub session: SessionTimeouts,
    /// `controller.quorum.election.timeout.ms` (the minimum; Raft randomises up to twice it).
    pub election_timeout: Duration,
    /// Take a metadata snapshot (and drop the log below it) every this many applied entries.
    pub snapshot_every: u64,
}

/// Why a quorum call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QuorumError {
    /// No leader known right now (election in progress, or no majority reachable). Kafka clients
    /// see this as a retriable error (NOT_CONTROLLER / REQUEST_TIMED_OUT).
    #[error("no metadata quorum leader reachable: {0}")]
    NoLeader(String),
    #[error("metadata quorum timed out")]
    Timeout,
    #[error("metadata quorum is shut down")]
    Shutdown,
    #[error("metadata quorum: {0}")]
    Other(String),
}

/// What DescribeQuorum reports (Kafka's `kafka-metadata-quorum describe --status/--replication`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuorumStatus {
    pub leader_id: i32,
    /// Raft term (KRaft's epoch).
    pub leader_epoch: i32,
    /// Committed log index (KRaft's high watermark).
    pub high_watermark: i64,
    /// Per voter: (id, log end offset, last fetch/ack time in ms since epoch, -1 unknown).
    pub voters: Vec<ReplicaStatus>,
    /// Learners (broker-only nodes).
    pub observers: Vec<ReplicaStatus>,
}

/// One replica of the metadata log in [`QuorumStatus`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub id: i32,
    pub log_end_offset: i64,
    pub last_fetch_ms: i64,
    pub last_caught_up_ms: i64,
}

/// The shards' handle on the quorum thread. Cheap to clone.
#[derive(Clone)]
pub struct QuorumHandle {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: i32,
    cmds: mpsc::UnboundedSender<Cmd>,
    image: watch::Receiver<Arc<ClusterImage>>,
    metrics: watch::Receiver<RaftMetricsOf>,
    broker: Arc<BrokerState>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for QuorumHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QuorumHandle")
    }
}

impl QuorumHandle {
    /// Starts the quorum thread (binds the controller listener, loads the log and snapshot,
    /// joins the quorum, and for a broker starts registering and heartbeating). Returns once the
    /// thread runs; the first image arrives through [`QuorumHandle::watch`].
    pub fn start(cfg: QuorumConfig) -> anyhow::Result<QuorumHandle> {
        let node_id = cfg.node_id;
        if node_id < 0 {
            anyhow::bail!("node.id must not be negative (got {node_id})");
        }
        let (image_tx, image) = watch::channel(Arc::new(ClusterImage::default()));
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let broker = Arc::new(BrokerState::default());
        let thread = {
            let broker = broker.clone();
            std::thread::Builder::new()
                .name("ringbolt-quorum".into())
                .spawn(move || thread::run(cfg, image_tx, broker, cmd_rx, started_tx))?
        };
        let started = match started_rx.recv() {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                anyhow::bail!("metadata quorum thread ended during start");
            }
        };
        Ok(QuorumHandle {
            inner: Arc::new(Inner {
                node_id,
                cmds: cmd_tx,
                image,
                metrics: started.metrics,
                broker,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Proposes `cmd` (forwarded to the Raft leader if this node is not it) and resolves once it
    /// is committed and applied on the leader, with its log index and result. The caller waits
    /// for its own node's image to reach that index when it needs to see the effect.
    pub async fn propose(&self, cmd: MetaCommand) -> Result<(u64, MetaResponse), QuorumError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .cmds
            .send(Cmd::Propose(cmd, tx))
            .map_err(|_| QuorumError::Shutdown)?;
        rx.await.map_err(|_| QuorumError::Shutdown)?
    }

    /// The latest image this node has applied.
    pub fn image(&self) -> Arc<ClusterImage> {
        self.inner.image.borrow().clone()
    }

    /// Every newly applied image (tokio's watch channel: runtime-agnostic, awaitable on a shard).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<Arc<ClusterImage>> {
        self.inner.image.clone()
    }

    /// Leader, term, commit index and replica progress for DescribeQuorum.
    pub fn status(&self) -> QuorumStatus {
        status::from_metrics(self.inner.node_id, &self.inner.metrics.borrow())
    }

    /// The broker epoch this node registered with (`None` before its registration committed).
    pub fn broker_epoch(&self) -> Option<u64> {
        match self.inner.broker.epoch.load(Ordering::Acquire) {
            0 => None,
            e => Some(e),
        }
    }

    /// Begins a controlled shutdown (heartbeats ask for it) and resolves when the controller says
    /// this broker leads nothing any more, or after `timeout`.
    pub async fn controlled_shutdown(&self, timeout: Duration) {
        let (tx, rx) = oneshot::channel();
        if self
            .inner
            .cmds
            .send(Cmd::ControlledShutdown(timeout, tx))
            .is_ok()
        {
            let _ = rx.await;
        }
    }

    /// Stops the quorum thread (sends nothing more; the log is already durable) and joins it.
    pub fn shutdown(&self) {
        let _ = self.inner.cmds.send(Cmd::Shutdown);
        let thread = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = thread
            && t.join().is_err()
        {
            tracing::error!("metadata quorum thread panicked");
        }
    }
}
