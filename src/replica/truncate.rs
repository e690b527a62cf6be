//! Where a follower cuts its log before it fetches from a new leader (KIP-101, KIP-279): Kafka's
//! `AbstractFetcherThread.truncateToEpochEndOffsets` / `getOffsetTruncationState`.
//!
//! The follower asks the leader (OffsetForLeaderEpoch v4 with its replica id) where the
//! follower's latest epoch ends in the leader's log. Records past that point were written under
//! an epoch the leader does not share, or past the point where the leader's log diverged: they
//! were never acknowledged to an acks=all producer (the leader would have them) and must go, or
//! the follower's log would differ from the leader's at the same offsets.
//!
//! - The leader knows no epoch at or below ours (`end_offset` -1): truncate to our high
//!   watermark, the only point known to be shared (the pre-KIP-101 rule).
//! - It answers an epoch we also have: cut at the smaller of its end and ours for that epoch.
//! - It answers an epoch we do not have (ours are all different around there): cut at our end of
//!   the largest epoch we have below it and ask again with that epoch; the epochs only go down,
//!   so this ends.
//!
//! Cutting more than needed is always safe for a follower (it fetches the rest again); cutting
//! less never is. So every bound is a minimum, including our own log end.

use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderEpochRequest, OffsetForLeaderPartition, OffsetForLeaderTopic,
};

use crate::server::handlers::topic_name;

/// OffsetForLeaderEpoch's version the follower speaks (replica_id, current_leader_epoch).
pub const VERSION: i16 = 4;

/// One partition's question: (topic, partition, current leader epoch, our latest epoch).
pub type Ask = (String, i32, i32, i32);

/// The request for `asks`, grouped by topic in order.
pub fn request(node_id: i32, asks: &[Ask]) -> OffsetForLeaderEpochRequest {
    let mut topics: Vec<OffsetForLeaderTopic> = Vec::new();
    for (topic, partition, current, latest) in asks {
        let p = OffsetForLeaderPartition::default()
            .with_partition(*partition)
            .with_current_leader_epoch(*current)
            .with_leader_epoch(*latest);
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == topic => t.partitions.push(p),
            _ => topics.push(
                OffsetForLeaderTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(vec![p]),
            ),
        }
    }
    OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(node_id))
        .with_topics(topics)
}

/// Where to cut, and whether that settles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub offset: i64,
    /// `false`: ask again with the (lower) latest epoch left after this cut.
    pub complete: bool,
}

/// The truncation point from the leader's answer (`leader_epoch`, `leader_end`), this log's
/// `(epoch, end)` for the leader's epoch (`end_offset_for_epoch`: the largest epoch at or below
/// it that we have, -1/-1 for none), our log end and high watermark.
pub fn cut(leader_epoch: i32, leader_end: i64, local: (i32, i64), leo: i64, hw: i64) -> Cut {
    if leader_end < 0 || leader_epoch < 0 {
        return Cut {
            offset: hw.min(leo),
            complete: true,
        };
    }
    let (local_epoch, local_end) = local;
    if local_epoch < 0 || local_end < 0 {
        return Cut {
            offset: hw.min(leo),
            complete: true,
        };
    }
    if local_epoch == leader_epoch {
        Cut {
            offset: leader_end.min(local_end).min(leo),
            complete: true,
        }
    } else {
        Cut {
            offset: local_end.min(leader_end).min(leo),
            complete: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_groups_partitions_by_topic() {
        let r = request(
            2,
            &[
                ("a".into(), 0, 5, 4),
                ("a".into(), 1, 5, 5),
                ("b".into(), 0, 1, 0),
            ],
        );
        assert_eq!(r.replica_id, BrokerId(2));
        assert_eq!(r.topics.len(), 2);
        assert_eq!(r.topics[0].partitions.len(), 2);
        assert_eq!(r.topics[0].partitions[1].current_leader_epoch, 5);
        assert_eq!(r.topics[0].partitions[1].leader_epoch, 5);
        assert_eq!(r.topics[1].topic.0.as_str(), "b");
    }

    #[test]
    fn same_epoch_cuts_at_the_shorter_end() {
        // We wrote past where the leader's epoch 3 ended (the leader moved on at 100).
        assert_eq!(
            cut(3, 100, (3, 120), 120, 90),
            Cut {
                offset: 100,
                complete: true
            }
        );
        // We are behind the leader in its current epoch: nothing to cut.
        assert_eq!(
            cut(3, 150, (3, 120), 120, 90),
            Cut {
                offset: 120,
                complete: true
            }
        );
    }

    #[test]
    fn unknown_epoch_falls_back_to_the_high_watermark() {
        assert_eq!(
            cut(-1, -1, (3, 120), 120, 90),
            Cut {
                offset: 90,
                complete: true
            }
        );
        assert_eq!(
            cut(2, 80, (-1, -1), 120, 90),
            Cut {
                offset: 90,
                complete: true
            }
        );
    }

    #[test]
    fn an_epoch_we_lack_cuts_and_asks_again() {
        // We asked for 5; the leader's largest at or below is 4, which we never had (our epochs
        // are 3 then 5): cut at our end of 3 and ask again with 3.
        assert_eq!(
            cut(4, 110, (3, 100), 130, 50),
            Cut {
                offset: 100,
                complete: false
            }
        );
        // Never past the leader's end either.
        assert_eq!(cut(4, 95, (3, 100), 130, 50).offset, 95);
    }
}
