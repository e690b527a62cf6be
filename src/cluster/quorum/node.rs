//! One node's quorum state shared by its tasks (server, broker, active controller), and the
//! routing of writes and heartbeats to the leader.
//!
//! A proposal goes to the local Raft first; when it is not the leader, openraft answers
//! `ForwardToLeader` and the proposal is sent to the leader it names, which writes it locally.
//! Without a known leader (an election is running) the proposer retries with a short backoff for
//! up to [`PROPOSE_DEADLINE`]. Only answers that prove nothing was written are retried (not the
//! leader, peer unreachable): a proposal whose fate is unknown (a timeout after sending) fails
//! with [`QuorumError::Timeout`] rather than risk applying it twice.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, watch};

use super::net::{CallError, Peers};
use super::types::{NodeId, Raft};
use super::wire::{Forwarded, Request, Response};
use super::{QuorumConfig, QuorumError};
use crate::cluster::controller::{Heartbeat, HeartbeatReply};
use crate::cluster::image::{ClusterImage, MetaCommand, MetaResponse};

/// How long a proposal keeps looking for a leader.
pub(crate) const PROPOSE_DEADLINE: Duration = Duration::from_secs(5);
/// How long the leader waits for one write to commit.
const WRITE_TIMEOUT: Duration = Duration::from_secs(4);
/// Timeout of a heartbeat RPC.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(1);

/// A heartbeat handed to the active controller, with where to send its reply.
pub(crate) type HeartbeatMsg = (Heartbeat, oneshot::Sender<HeartbeatReply>);

/// What the tasks of one quorum node share.
pub(crate) struct Node {
    pub(crate) id: NodeId,
    pub(crate) cfg: QuorumConfig,
    pub(crate) raft: Raft,
    pub(crate) peers: Arc<Peers>,
    pub(crate) image: watch::Receiver<Arc<ClusterImage>>,
    /// The active controller's heartbeat inbox while this node leads and runs it.
    pub(crate) active: Mutex<Option<mpsc::UnboundedSender<HeartbeatMsg>>>,
}

impl Node {
    /// The leader this node currently knows of.
    pub(crate) fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Writes `cmd` on this node if it leads; the answer says who does otherwise.
    pub(crate) async fn propose_local(&self, cmd: MetaCommand) -> Forwarded<(u64, MetaResponse)> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.raft.client_write(cmd)).await {
            Ok(Ok(resp)) => Forwarded::Ok((resp.log_id.index, resp.data)),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Forwarded::NotLeader {
                    leader: f.leader_id.filter(|&l| l != self.id),
                }
            }
            Ok(Err(e)) => Forwarded::Failed(e.to_string()),
            Err(_) => Forwarded::Failed(format!("not committed within {WRITE_TIMEOUT:?}")),
        }
    }

    /// Proposes `cmd` through whichever node leads, retrying while there is none.
    pub(crate) async fn propose(
        &self,
        cmd: MetaCommand,
    ) -> Result<(u64, MetaResponse), QuorumError> {
        let deadline = tokio::time::Instant::now() + PROPOSE_DEADLINE;
        let mut last = String::from("no leader elected");
        let mut attempt = 0usize;
        loop {
            attempt += 1;
            let target = match self.propose_local(cmd.clone()).await {
                Forwarded::Ok(r) => return Ok(r),
                Forwarded::NotLeader { leader } => leader.or_else(|| self.any_voter(attempt)),
                Forwarded::Failed(e) => {
                    if self.raft.metrics().borrow().running_state.is_err() {
                        return Err(QuorumError::Shutdown);
                    }
                    // A local write that failed after being accepted has an unknown fate.
                    return Err(QuorumError::Other(e));
                }
            };
            if let Some(leader) = target {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match self
                    .peers
                    .call(
                        leader,
                        Request::Propose(cmd.clone()),
                        left.max(Duration::from_millis(100)),
                    )
                    .await
                {
                    Ok(Response::Propose(Forwarded::Ok(r))) => return Ok(r),
                    Ok(Response::Propose(Forwarded::NotLeader { .. })) => {
                        last = format!("node {leader} is no longer the leader");
                    }
                    Ok(Response::Propose(Forwarded::Failed(e))) => {
                        return Err(QuorumError::Other(e));
                    }
                    Ok(_) => return Err(QuorumError::Other("unexpected response".into())),
                    Err(e @ CallError::Unreachable(..)) => last = e.to_string(),
                    Err(CallError::Failed(_, e)) if e.contains("timed out") => {
                        return Err(QuorumError::Timeout);
                    }
                    Err(e) => return Err(QuorumError::Other(e.to_string())),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(QuorumError::NoLeader(last));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A broker-only node that knows no leader yet asks the voters in turn (each answers with
    /// the leader it knows).
    fn any_voter(&self, attempt: usize) -> Option<NodeId> {
        if self.cfg.is_controller || self.cfg.voters.is_empty() {
            return None;
        }
        let (id, _) = self.cfg.voters[attempt % self.cfg.voters.len()];
        Some(super::types::raft_id(id))
    }

    /// Hands a heartbeat to the local active controller, if this node runs one.
    pub(crate) async fn heartbeat_local(&self, hb: Heartbeat) -> Forwarded<HeartbeatReply> {
        let tx = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(tx) = tx else {
            return Forwarded::NotLeader {
                leader: self.leader().filter(|&l| l != self.id),
            };
        };
        let (reply, rx) = oneshot::channel();
        if tx.send((hb, reply)).is_err() {
            return Forwarded::NotLeader { leader: None };
        }
        match tokio::time::timeout(HEARTBEAT_TIMEOUT, rx).await {
            Ok(Ok(r)) => Forwarded::Ok(r),
            _ => Forwarded::Failed("active controller did not answer".into()),
        }
    }

    /// Sends a heartbeat to the active controller, wherever it runs.
    pub(crate) async fn heartbeat(&self, hb: Heartbeat) -> Result<HeartbeatReply, QuorumError> {
        let leader = self
            .leader()
            .ok_or_else(|| QuorumError::NoLeader("no leader elected".into()))?;
        let answer = if leader == self.id {
            self.heartbeat_local(hb).await
        } else {
            match self
                .peers
                .call(leader, Request::Heartbeat(hb), HEARTBEAT_TIMEOUT)
                .await
            {
                Ok(Response::Heartbeat(a)) => a,
                Ok(_) => Forwarded::Failed("unexpected response".into()),
                Err(e) => Forwarded::Failed(e.to_string()),
            }
        };
        match answer {
            Forwarded::Ok(r) => Ok(r),
            Forwarded::NotLeader { .. } => Err(QuorumError::NoLeader(format!(
                "node {leader} is not the active controller"
            ))),
            Forwarded::Failed(e) => Err(QuorumError::Other(e)),
        }
    }

    /// Adds a broker-only node as a learner (on the leader).
    pub(crate) async fn add_learner_local(&self, id: NodeId, addr: String) -> Forwarded<()> {
        let known = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .is_some_and(|n| n.addr == addr);
        if known {
            return Forwarded::Ok(());
        }
        match tokio::time::timeout(
            WRITE_TIMEOUT,
            self.raft.add_learner(id, BasicNode::new(addr), false),
        )
        .await
        {
            Ok(Ok(_)) => Forwarded::Ok(()),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Forwarded::NotLeader {
                    leader: f.leader_id,
                }
            }
            Ok(Err(e)) => Forwarded::Failed(e.to_string()),
            Err(_) => Forwarded::Failed("learner change not committed in time".into()),
        }
    }
}
