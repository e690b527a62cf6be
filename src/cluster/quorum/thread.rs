//! The quorum thread: a tokio current-thread runtime on an OS thread of its own
//! ("ringbolt-quorum") that runs openraft, the controller listener, the peer connections, the
//! broker's registration and heartbeats, and the active controller.
//!
//! Shards reach it through an unbounded mpsc of [`Cmd`]s and get answers on oneshots; both are
//! runtime-agnostic, so a glommio task awaits them like any future. Anything that needs a tokio
//! timer (the proposal deadline, the controlled-shutdown timeout) therefore runs here, not in the
//! caller.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use openraft::storage::RaftLogStorage;
use openraft::{BasicNode, Config, SnapshotPolicy};
use tokio::sync::{mpsc, oneshot, watch};

use super::broker::BrokerState;
use super::log_store::LogStore;
use super::net::{NetworkFactory, Peers};
use super::node::Node;
use super::state_machine::StateMachine;
use super::types::{Raft, RaftMetricsOf, raft_id};
use super::{QuorumConfig, QuorumError, active, broker, server};
use crate::cluster::image::{ClusterImage, MetaCommand, MetaResponse};

/// A request from a [`super::QuorumHandle`] to the quorum thread.
pub(crate) enum Cmd {
    Propose(
        MetaCommand,
        oneshot::Sender<Result<(u64, MetaResponse), QuorumError>>,
    ),
    ControlledShutdown(Duration, oneshot::Sender<()>),
    Shutdown,
}

/// What the thread hands back once it runs.
pub(crate) struct Started {
    pub(crate) metrics: watch::Receiver<RaftMetricsOf>,
}

/// Body of the quorum thread.
pub(crate) fn run(
    cfg: QuorumConfig,
    image_tx: watch::Sender<Arc<ClusterImage>>,
    broker: Arc<BrokerState>,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    started: std::sync::mpsc::Sender<anyhow::Result<Started>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = started.send(Err(e.into()));
            return;
        }
    };
    rt.block_on(async move {
        let node = match setup(cfg, image_tx, broker.clone()).await {
            Ok(node) => node,
            Err(e) => {
                let _ = started.send(Err(e));
                return;
            }
        };
        let _ = started.send(Ok(Started {
            metrics: node.raft.metrics(),
        }));
        serve_cmds(&node, &broker, cmds).await;
        if let Err(e) = node.raft.shutdown().await {
            tracing::warn!(error = %e, "metadata quorum: raft shutdown");
        }
    });
    // Dropping the runtime aborts the listener, the peer connections and the other tasks.
    drop(rt);
}

async fn setup(
    cfg: QuorumConfig,
    image_tx: watch::Sender<Arc<ClusterImage>>,
    broker: Arc<BrokerState>,
) -> anyhow::Result<Arc<Node>> {
    let id = raft_id(cfg.node_id);
    std::fs::create_dir_all(&cfg.dir)?;
    let mut log = LogStore::open(&cfg.dir)?;
    let pristine = log.is_pristine();
    let sm = StateMachine::open(&cfg.dir, image_tx)?;
    let image = sm.image_rx();

    let election = cfg.election_timeout.as_millis().max(10) as u64;
    let raft_cfg = Config {
        cluster_name: "ringbolt".into(),
        election_timeout_min: election,
        election_timeout_max: election * 2,
        heartbeat_interval: (election / 5).max(1),
        install_snapshot_timeout: 5_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_every.max(1)),
        max_in_snapshot_log_to_keep: 0,
        ..Default::default()
    }
    .validate()?;

    let listener = match cfg.controller_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };

    let peers = Arc::new(Peers::default());
    for (vid, addr) in &cfg.voters {
        if raft_id(*vid) != id {
            peers.set_addr(raft_id(*vid), &addr.to_string());
        }
    }
    let network = NetworkFactory {
        peers: peers.clone(),
    };
    let state = log.get_log_state().await?;
    let raft = Raft::new(id, Arc::new(raft_cfg), network, log, sm).await?;
    let is_voter = cfg.is_controller && cfg.voters.iter().any(|(v, _)| raft_id(*v) == id);
    if pristine && is_voter && state.last_log_id.is_none() {
        let members: std::collections::BTreeMap<u64, BasicNode> = cfg
            .voters
            .iter()
            .map(|(v, a)| (raft_id(*v), BasicNode::new(a.to_string())))
            .collect();
        // Every voter initializes with the same membership: openraft makes that safe (the
        // same membership entry at index 0 everywhere; only one of them wins the election).
        match raft.initialize(members).await {
            Ok(()) => tracing::info!(node = id, "metadata quorum: initialized with the voters"),
            Err(e) => tracing::info!(node = id, error = %e, "metadata quorum: not initializing"),
        }
    }
    let node = Arc::new(Node {
        id,
        cfg,
        raft,
        peers,
        image,
        active: Default::default(),
    });
    if let Some(listener) = listener {
        tokio::spawn(server::serve(listener, node.clone()));
    }
    if node.cfg.is_controller {
        tokio::spawn(active::run(node.clone()));
    }
    if node.cfg.is_broker {
        tokio::spawn(broker::run(node.clone(), broker));
    }
    Ok(node)
}

async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket
        .bind(addr)
        .map_err(|e| anyhow::anyhow!("controller listener {addr}: {e}"))?;
    Ok(socket.listen(128)?)
}

async fn serve_cmds(
    node: &Arc<Node>,
    broker: &Arc<BrokerState>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
) {
    while let Some(cmd) = cmds.recv().await {
        match cmd {
            Cmd::Propose(c, reply) => {
                let node = node.clone();
                tokio::spawn(async move {
                    let _ = reply.send(node.propose(c).await);
                });
            }
            Cmd::ControlledShutdown(timeout, reply) => {
                let broker = broker.clone();
                tokio::spawn(async move {
                    broker.want_shutdown.store(true, Ordering::Release);
                    broker.poke.notify_one();
                    let mut ready = broker.shutdown_ready.subscribe();
                    let _ = tokio::time::timeout(timeout, ready.wait_for(|r| *r)).await;
                    let _ = reply.send(());
                });
            }
            Cmd::Shutdown => break,
        }
    }
}
