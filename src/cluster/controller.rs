//! The active controller's decisions: broker sessions, fencing, leader election.
//!
//! Runs on the quorum thread of the node that is currently the Raft leader. Pure logic over the
//! applied [`ClusterImage`] and a clock passed in: it returns the commands to propose, the quorum
//! module proposes them.

use serde::{Deserialize, Serialize};

use super::image::{ClusterImage, MetaCommand};

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

/// The active controller's in-memory view of broker sessions.
#[derive(Debug)]
pub struct ControllerPolicy {
    timeouts: SessionTimeouts,
}

impl ControllerPolicy {
    /// A policy that just became active at `now_ms`: every registered broker's session starts
    /// now (a new controller has no heartbeat history, so it gives each a full session).
    pub fn new(timeouts: SessionTimeouts, image: &ClusterImage, now_ms: u64) -> Self {
        let _ = (image, now_ms);
        ControllerPolicy { timeouts }
    }

    /// Handles one heartbeat; returns the reply and the commands to propose (unfence a broker
    /// that caught up, begin a controlled shutdown).
    pub fn on_heartbeat(
        &mut self,
        image: &ClusterImage,
        hb: &Heartbeat,
        now_ms: u64,
    ) -> (HeartbeatReply, Vec<MetaCommand>) {
        let _ = (image, hb, now_ms, self.timeouts);
        todo!("issue 19: controller heartbeat")
    }

    /// Periodic check (every ~100 ms): commands to fence expired sessions, elect leaders for
    /// partitions without one whose replicas came back, and similar.
    pub fn on_tick(&mut self, image: &ClusterImage, now_ms: u64) -> Vec<MetaCommand> {
        let _ = (image, now_ms);
        todo!("issue 19: controller tick")
    }
}
