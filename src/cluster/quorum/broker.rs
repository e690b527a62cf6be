//! The broker side of a node: registration with the controller and the heartbeats that keep its
//! session alive (Kafka's BrokerRegistration / BrokerHeartbeat, carried by the quorum transport).
//!
//! On start the broker proposes `RegisterBroker` with a fresh incarnation id (a random UUID per
//! process start, so the controller can tell a restart from a retry); the log index of that
//! registration is its broker epoch. It then heartbeats the active controller every
//! `broker.heartbeat.interval.ms` with its epoch and the metadata offset it has applied. A reply
//! saying the epoch is unknown (the controller fenced and forgot it, or a newer registration
//! replaced it) makes it register again. A controlled shutdown sets `want_shutdown` in the
//! heartbeats until the controller answers `shutdown_ready`.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::node::Node;
use super::types::raft_id;
use super::wire::{Forwarded, Request, Response};
use crate::cluster::controller::Heartbeat;
use crate::cluster::image::{MetaCommand, MetaResponse};

/// What the broker task shares with the handle.
#[derive(Debug)]
pub(crate) struct BrokerState {
    /// The registration's log index; 0 = not registered.
    pub(crate) epoch: AtomicU64,
    pub(crate) want_shutdown: AtomicBool,
    /// Wakes the heartbeat loop early (a controlled shutdown began).
    pub(crate) poke: Notify,
    /// Becomes true once the controller answered `shutdown_ready`.
    pub(crate) shutdown_ready: watch::Sender<bool>,
}

impl Default for BrokerState {
    fn default() -> Self {
        BrokerState {
            epoch: AtomicU64::new(0),
            want_shutdown: AtomicBool::new(false),
            poke: Notify::new(),
            shutdown_ready: watch::channel(false).0,
        }
    }
}

/// A random incarnation id (UUID v4 from the kernel's random source; a time-based fallback is
/// still unique per start on one host).
fn incarnation() -> String {
    let mut bytes = [0u8; 16];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !ok {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (t ^ u128::from(std::process::id())).to_le_bytes();
    }
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Registers and heartbeats until the runtime stops.
pub(crate) async fn run(node: Arc<Node>, state: Arc<BrokerState>) {
    let incarnation = incarnation();
    let interval = node.cfg.heartbeat_interval.max(Duration::from_millis(10));
    if !node.cfg.is_controller {
        join_as_learner(&node).await;
    }
    loop {
        let epoch = register(&node, &incarnation, interval).await;
        state.epoch.store(epoch, Ordering::Release);
        tracing::info!(broker = node.cfg.node_id, epoch, %incarnation, "broker registered");
        // The controller unfences a broker once it has applied its own registration: heartbeat
        // as soon as the local image has it, not an interval later.
        let mut image = node.image.clone();
        let _ = tokio::time::timeout(interval, image.wait_for(|i| i.applied_index >= epoch)).await;
        loop {
            let hb = Heartbeat {
                broker_id: node.cfg.node_id,
                epoch,
                applied_index: node.image.borrow().applied_index,
                want_shutdown: state.want_shutdown.load(Ordering::Acquire),
            };
            match node.heartbeat(hb).await {
                Ok(reply) if reply.unknown => {
                    tracing::info!(
                        broker = node.cfg.node_id,
                        epoch,
                        "controller does not know this broker epoch: registering again"
                    );
                    state.epoch.store(0, Ordering::Release);
                    break;
                }
                Ok(reply) => {
                    if reply.shutdown_ready {
                        state.shutdown_ready.send_replace(true);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "broker heartbeat failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = state.poke.notified() => {}
            }
        }
    }
}

async fn register(node: &Node, incarnation: &str, interval: Duration) -> u64 {
    loop {
        let cmd = MetaCommand::RegisterBroker {
            id: node.cfg.node_id,
            incarnation: incarnation.to_string(),
            host: node.cfg.broker_host.clone(),
            port: node.cfg.broker_port,
            rack: node.cfg.rack.clone(),
        };
        match node.propose(cmd).await {
            Ok((index, MetaResponse::Error { code, message })) => {
                tracing::warn!(index, code, %message, "broker registration refused");
            }
            Ok((index, _)) => return index,
            Err(e) => tracing::debug!(error = %e, "broker registration not committed yet"),
        }
        tokio::time::sleep(interval).await;
    }
}

/// A broker-only node asks the leader to replicate the metadata log to it.
async fn join_as_learner(node: &Node) {
    let Some(addr) = node.cfg.controller_listen else {
        tracing::warn!(
            "broker-only node without a controller listener: it cannot follow the metadata log"
        );
        return;
    };
    let mut attempt = 0usize;
    loop {
        attempt += 1;
        let voters = &node.cfg.voters;
        if voters.is_empty() {
            return;
        }
        let target = node
            .leader()
            .unwrap_or_else(|| raft_id(voters[attempt % voters.len()].0));
        let req = Request::AddLearner {
            id: node.id,
            addr: addr.to_string(),
        };
        match node.peers.call(target, req, Duration::from_secs(5)).await {
            Ok(Response::AddLearner(Forwarded::Ok(()))) => return,
            Ok(Response::AddLearner(Forwarded::NotLeader { leader: Some(l) })) => {
                if let Some((_, a)) = voters.iter().find(|(v, _)| raft_id(*v) == l) {
                    node.peers.set_addr(l, &a.to_string());
                }
            }
            other => tracing::debug!(?other, "joining the metadata quorum as a learner"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
