//! The active controller's decisions: broker sessions, fencing, leader election.
//!
//! Runs on the quorum thread of the node that is currently the Raft leader. Pure logic over the
//! applied [`ClusterImage`] and a clock passed in: it returns the commands to propose, the quorum
//! module proposes them.
//!
//! # Sessions (Kafka's `BrokerHeartbeatManager`)
//! The policy remembers, per broker id, the broker epoch it last heard from and when. A new
//! policy (a controller that just won an election) has no history, so it gives every registered
//! broker a full session from the moment it became active; so does a registration it first sees
//! in the image. An unfenced broker without a heartbeat for longer than
//! `broker.session.timeout.ms` is fenced. A heartbeat from an epoch the image does not hold is
//! answered `unknown` (the broker registers again) — unless the epoch lies beyond the image's
//! applied index: then this controller simply has not applied that registration yet, and the
//! broker is told it is fenced and keeps heartbeating.
//!
//! # Unfencing
//! A fenced broker is unfenced once it heartbeats with an applied metadata index at least its
//! registration's (it has seen its own registration, hence the whole image up to it) and does not
//! want to shut down.
//!
//! # Controlled shutdown
//! A broker asking to shut down gets BeginControlledShutdown proposed (leaderships move, it leaves
//! ISRs). It is `shutdown_ready` once it leads no partition that still has another eligible
//! replica: either everything moved, or a partition has no other broker that could take it. While
//! it still leads a partition whose ISR gained an eligible member, the command is proposed again
//! (applying it again moves what can be moved). A fenced broker may stop at once: it leads
//! nothing.
//!
//! # Elections
//! Fencing and unfencing elect leaders inside `apply`; the tick adds a safety net for partitions
//! still without a leader: a clean election when an ISR member is eligible, an unclean one only
//! when the topic (or the dynamic cluster default) sets `unclean.leader.election.enable`.
//! Preferred-leader rebalancing (Kafka's `auto.leader.rebalance.enable`) is not done here.
//!
//! # Proposals in flight
//! A command is not proposed again while an equal one is pending: each proposal is remembered for
//! [`RETRY_MS`], after which, if the condition still holds (the proposal was lost with a leader
//! change, say), it is proposed again. Every command the policy makes is harmless when applied
//! twice (an already fenced broker, an election that is no longer needed), so a retry racing the
//! original costs nothing. The tick walks every partition: linear in the cluster's partitions,
//! which is fine at a tick every ~100 ms for the partition counts this broker aims at.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::image::{ClusterImage, MetaCommand, NO_LEADER};

/// A broker's periodic heartbeat to the active controller (Kafka's BrokerHeartbeat).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub broker_id: i32,
    /// The broker epoch it registered with (the registration's log index).
    pub epoch: u64,
    /// The highest metadata offset the broker has applied.
    pub applied_index: u64,
    /// The broker wants to shut down (controlled shutdown).
    pub want_shutdown: bool,
}

/// The controller's answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// The controller does not know this broker epoch: register again.
    pub unknown: bool,
    pub fenced: bool,
    /// Controlled shutdown finished: the broker leads nothing and may stop.
    pub shutdown_ready: bool,
}

/// Timing of broker sessions (Kafka's names; see the defaults in `config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimeouts {
    /// `broker.session.timeout.ms`: a broker without a heartbeat this long is fenced.
    pub session_timeout_ms: u64,
}

/// How long a proposed command counts as in flight before the policy may propose it again.
pub const RETRY_MS: u64 = 1000;

/// The active controller's in-memory view of broker sessions.
#[derive(Debug)]
pub struct ControllerPolicy {
    timeouts: SessionTimeouts,
    /// Broker id → (broker epoch, time of its last heartbeat or of the session's start).
    sessions: BTreeMap<i32, (u64, u64)>,
    /// Commands proposed and when, until [`RETRY_MS`] passed.
    pending: Vec<(MetaCommand, u64)>,
}

impl ControllerPolicy {
    /// A policy that just became active at `now_ms`: every registered broker's session starts
    /// now (a new controller has no heartbeat history, so it gives each a full session).
    pub fn new(timeouts: SessionTimeouts, image: &ClusterImage, now_ms: u64) -> Self {
        let sessions = image
            .brokers
            .values()
            .map(|b| (b.id, (b.epoch, now_ms)))
            .collect();
        ControllerPolicy {
            timeouts,
            sessions,
            pending: Vec::new(),
        }
    }

    /// Handles one heartbeat; returns the reply and the commands to propose (unfence a broker
    /// that caught up, begin a controlled shutdown).
    pub fn on_heartbeat(
        &mut self,
        image: &ClusterImage,
        hb: &Heartbeat,
        now_ms: u64,
    ) -> (HeartbeatReply, Vec<MetaCommand>) {
        let Some(reg) = image
            .brokers
            .get(&hb.broker_id)
            .filter(|b| b.epoch == hb.epoch)
        else {
            let reply = HeartbeatReply {
                unknown: hb.epoch <= image.applied_index,
                fenced: true,
                shutdown_ready: false,
            };
            return (reply, Vec::new());
        };
        self.sessions.insert(reg.id, (reg.epoch, now_ms));
        let mut commands = Vec::new();
        let mut shutdown_ready = false;
        if hb.want_shutdown {
            if reg.fenced {
                shutdown_ready = true;
            } else if !reg.in_controlled_shutdown || has_movable_leadership(image, reg.id) {
                let cmd = MetaCommand::BeginControlledShutdown {
                    id: reg.id,
                    epoch: reg.epoch,
                };
                if self.propose_once(&cmd, now_ms) {
                    commands.push(cmd);
                }
            } else {
                shutdown_ready = !leads_with_alternative(image, reg.id);
            }
        } else if reg.fenced && hb.applied_index >= reg.epoch {
            let cmd = MetaCommand::UnfenceBroker {
                id: reg.id,
                epoch: reg.epoch,
            };
            if self.propose_once(&cmd, now_ms) {
                commands.push(cmd);
            }
        }
        let reply = HeartbeatReply {
            unknown: false,
            fenced: reg.fenced,
            shutdown_ready,
        };
        (reply, commands)
    }

    /// Periodic check (every ~100 ms): commands to fence expired sessions, elect leaders for
    /// partitions without one whose replicas came back, and similar.
    pub fn on_tick(&mut self, image: &ClusterImage, now_ms: u64) -> Vec<MetaCommand> {
        let mut wanted = Vec::new();
        self.sessions.retain(|id, _| image.brokers.contains_key(id));
        for reg in image.brokers.values() {
            let session = self.sessions.entry(reg.id).or_insert((reg.epoch, now_ms));
            if session.0 != reg.epoch {
                // A registration this policy has not heard from yet: a full session from now.
                *session = (reg.epoch, now_ms);
            }
            let silent_for = now_ms.saturating_sub(session.1);
            if !reg.fenced && silent_for > self.timeouts.session_timeout_ms {
                wanted.push(MetaCommand::FenceBroker {
                    id: reg.id,
                    epoch: reg.epoch,
                });
            } else if !reg.fenced
                && reg.in_controlled_shutdown
                && has_movable_leadership(image, reg.id)
            {
                wanted.push(MetaCommand::BeginControlledShutdown {
                    id: reg.id,
                    epoch: reg.epoch,
                });
            }
        }
        for (topic, partition, p) in image.iter_partitions() {
            if p.leader != NO_LEADER {
                continue;
            }
            let clean = p.isr.iter().any(|r| image.is_eligible(*r));
            let unclean = !clean
                && image.unclean_election_allowed(topic)
                && p.replicas.iter().any(|r| image.is_eligible(*r));
            if clean || unclean {
                wanted.push(MetaCommand::ElectLeader {
                    topic: topic.to_string(),
                    partition,
                    preferred: false,
                    unclean,
                });
            }
        }
        wanted.retain(|cmd| self.propose_once(cmd, now_ms));
        wanted
    }

    /// Whether `cmd` should be proposed now: not while an equal proposal is younger than
    /// [`RETRY_MS`]. Records it as proposed when it should.
    fn propose_once(&mut self, cmd: &MetaCommand, now_ms: u64) -> bool {
        self.pending
            .retain(|(_, at)| now_ms.saturating_sub(*at) < RETRY_MS);
        if self.pending.iter().any(|(c, _)| c == cmd) {
            return false;
        }
        self.pending.push((cmd.clone(), now_ms));
        true
    }
}

/// Whether broker `id` leads a partition whose leadership could move now: another ISR member
/// is eligible.
fn has_movable_leadership(image: &ClusterImage, id: i32) -> bool {
    image
        .iter_partitions()
        .any(|(_, _, p)| p.leader == id && p.isr.iter().any(|r| *r != id && image.is_eligible(*r)))
}

/// Whether broker `id` leads a partition with another eligible replica (in sync or not): the
/// partition would stay available, or become so sooner, if `id` waited before stopping.
fn leads_with_alternative(image: &ClusterImage, id: i32) -> bool {
    image.iter_partitions().any(|(_, _, p)| {
        p.leader == id && p.replicas.iter().any(|r| *r != id && image.is_eligible(*r))
    })
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;
