//! DescribeQuorum's view ([`QuorumStatus`]) from openraft's metrics.
//!
//! Offsets are Raft log indexes (the metadata offsets images carry). Only the leader knows its
//! followers' progress; elsewhere each voter's end offset is unknown (-1) except this node's own.
//! openraft does not time replication acks, so fetch times are this node's clock for itself and
//! the leader's view of caught-up followers, -1 otherwise.

use super::types::{RaftMetricsOf, kafka_id};
use super::{QuorumStatus, ReplicaStatus};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(-1, |d| d.as_millis() as i64)
}

/// Builds the status that node `me` reports.
pub(crate) fn from_metrics(me: i32, m: &RaftMetricsOf) -> QuorumStatus {
    let now = now_ms();
    let last = m.last_log_index.map_or(0, |i| i as i64);
    let applied = m.last_applied.map_or(0, |l| l.index as i64);
    let membership = m.membership_config.membership();
    let progress = |id: u64| -> ReplicaStatus {
        let kid = kafka_id(id);
        if kid == me {
            return ReplicaStatus {
                id: kid,
                log_end_offset: last,
                last_fetch_ms: now,
                last_caught_up_ms: now,
            };
        }
        let matched = m
            .replication
            .as_ref()
            .and_then(|r| r.get(&id))
            .map(|l| l.map_or(0, |l| l.index as i64));
        match matched {
            Some(leo) => ReplicaStatus {
                id: kid,
                log_end_offset: leo,
                last_fetch_ms: now,
                last_caught_up_ms: if leo >= last { now } else { -1 },
            },
            None => ReplicaStatus {
                id: kid,
                log_end_offset: -1,
                last_fetch_ms: -1,
                last_caught_up_ms: -1,
            },
        }
    };
    let voters: Vec<ReplicaStatus> = membership.voter_ids().map(progress).collect();
    let observers: Vec<ReplicaStatus> = membership.learner_ids().map(progress).collect();
    QuorumStatus {
        leader_id: m.current_leader.map_or(-1, kafka_id),
        leader_epoch: i32::try_from(m.current_term).unwrap_or(i32::MAX),
        high_watermark: applied,
        voters,
        observers,
    }
}
