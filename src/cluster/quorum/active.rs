//! The active controller: while this node is the Raft leader it runs the [`ControllerPolicy`],
//! feeding it the brokers' heartbeats and a tick every 100 ms, and proposes the commands it
//! returns, in order, each awaited. A command that fails is logged and dropped; the policy sees
//! the unchanged image on its next tick and asks again.
//!
//! The policy starts only once the leader has applied the blank entry of its own term, so it
//! never decides from an image older than everything committed before it took over. It is
//! dropped as soon as the node stops leading: a new controller starts from the image with fresh
//! sessions for every broker, as Kafka's does.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use openraft::{RaftMetrics, ServerState};
use tokio::sync::mpsc;

use super::node::{HeartbeatMsg, Node};
use super::types::NodeId;
use super::wire::Forwarded;
use crate::cluster::controller::ControllerPolicy;
use crate::cluster::image::{MetaCommand, MetaResponse};

const TICK: Duration = Duration::from_millis(100);

/// Monotonic milliseconds for the policy's clock.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

fn is_active(m: &RaftMetrics<NodeId, openraft::BasicNode>, id: NodeId) -> bool {
    m.state == ServerState::Leader
        && m.current_leader == Some(id)
        && m.last_applied
            .is_some_and(|l| l.leader_id.term == m.current_term)
}

/// Runs the policy whenever this node leads, until the runtime stops.
pub(crate) async fn run(node: Arc<Node>) {
    let mut metrics = node.raft.metrics();
    loop {
        loop {
            if is_active(&metrics.borrow_and_update(), node.id) {
                break;
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
        let term = metrics.borrow().current_term;
        tracing::info!(node = node.id, term, "active controller: starting");
        let (tx, rx) = mpsc::unbounded_channel();
        *node.active.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        lead(&node, &mut metrics, rx).await;
        *node.active.lock().unwrap_or_else(|e| e.into_inner()) = None;
        tracing::info!(node = node.id, term, "active controller: stopped");
    }
}

async fn lead(
    node: &Node,
    metrics: &mut tokio::sync::watch::Receiver<RaftMetrics<NodeId, openraft::BasicNode>>,
    mut heartbeats: mpsc::UnboundedReceiver<HeartbeatMsg>,
) {
    let image = node.image.borrow().clone();
    let mut policy = ControllerPolicy::new(node.cfg.session, &image, now_ms());
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let term = metrics.borrow().current_term;
    loop {
        let cmds = tokio::select! {
            changed = metrics.changed() => {
                let m = metrics.borrow_and_update();
                if changed.is_err() || m.current_term != term || !is_active(&m, node.id) {
                    return;
                }
                continue;
            }
            _ = tick.tick() => {
                let image = node.image.borrow().clone();
                policy.on_tick(&image, now_ms())
            }
            msg = heartbeats.recv() => {
                let Some((hb, reply)) = msg else { return };
                let image = node.image.borrow().clone();
                let (answer, cmds) = policy.on_heartbeat(&image, &hb, now_ms());
                let _ = reply.send(answer);
                cmds
            }
        };
        for cmd in cmds {
            if !propose(node, cmd).await {
                break;
            }
        }
    }
}

/// Proposes one policy command on this (leader) node; false when the rest should wait.
async fn propose(node: &Node, cmd: MetaCommand) -> bool {
    let what = format!("{cmd:?}");
    match node.propose_local(cmd).await {
        Forwarded::Ok((index, MetaResponse::Error { code, message })) => {
            tracing::info!(index, code, %message, command = %what, "active controller: command refused");
            true
        }
        Forwarded::Ok((index, _)) => {
            tracing::debug!(index, command = %what, "active controller: command applied");
            true
        }
        Forwarded::NotLeader { .. } => false,
        Forwarded::Failed(e) => {
            tracing::warn!(error = %e, command = %what, "active controller: command failed");
            false
        }
    }
}
