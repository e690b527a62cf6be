//! Replica placement for new topics and partitions: Kafka's rack-aware round robin.
//!
//! # Rules (Kafka's `AdminUtils.assignReplicasToBrokers`, which `StripedReplicaPlacer` refines)
//! - Candidates are the brokers that are unfenced and not in controlled shutdown, in id order.
//! - Partition `p`'s first replica (its preferred leader) is broker `(p + start) mod n`: leaders
//!   go round robin over the brokers, so a topic with a multiple of `n` partitions has the same
//!   number of leaders on every broker.
//! - The followers of `p` follow at a distance `1 + (shift + j) mod (n - 1)` from the first
//!   replica, and `shift` grows by one after every `n` partitions. Without the shift, partitions
//!   led by broker `b` would all have the same followers, and losing `b` would move all its load
//!   onto one broker; with it, followers of the same leader differ from round to round.
//! - Rack awareness applies when every candidate has a `broker.rack`: the brokers are arranged
//!   alternating racks (first broker of each rack, then the second of each, …), and a follower is
//!   only taken from a rack that holds none of the partition's replicas yet — until every rack
//!   holds one, after which any broker not yet chosen fits. So `rf ≤ racks` puts every replica
//!   on its own rack. When only some brokers have a rack, placement ignores racks (Kafka refuses
//!   unless told to ignore them; a cluster being re-racked one broker at a time should still be
//!   able to create topics).
//! - `start` and `shift` come from `seed` (the proposer passes something random, as Kafka picks
//!   them at random), so that topics do not all start on the same broker; the same seed and
//!   brokers always give the same assignment.

use std::collections::BTreeMap;

use super::image::BrokerRegistration;
use crate::metadata::MAX_PARTITIONS;

/// Why no assignment could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// Kafka: INVALID_REPLICATION_FACTOR (38).
    #[error("replication factor {rf} is larger than the {available} available brokers")]
    TooFewBrokers { rf: i16, available: usize },
    #[error("{0}")]
    Invalid(String),
}

/// Assigns `partitions` new partitions (numbered from `first_partition`) `rf` replicas each over
/// the unfenced brokers, spreading leaders and replicas evenly and across racks when every broker
/// has one (Kafka's `StripedReplicaPlacer` rules). `seed` picks the starting broker (the proposer
/// passes something random, so that topics do not all start on the same broker).
pub fn assign(
    brokers: &BTreeMap<i32, BrokerRegistration>,
    first_partition: i32,
    partitions: i32,
    rf: i16,
    seed: u64,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if rf < 1 {
        return Err(PlacementError::Invalid(format!(
            "replication factor must be at least 1, not {rf}"
        )));
    }
    if first_partition < 0 || partitions < 0 {
        return Err(PlacementError::Invalid(format!(
            "invalid partition range: {partitions} from {first_partition}"
        )));
    }
    if i64::from(first_partition) + i64::from(partitions) > i64::from(MAX_PARTITIONS) {
        return Err(PlacementError::Invalid(format!(
            "{} partitions, at most {MAX_PARTITIONS} allowed",
            i64::from(first_partition) + i64::from(partitions)
        )));
    }
    let candidates: Vec<&BrokerRegistration> = brokers
        .values()
        .filter(|b| !b.fenced && !b.in_controlled_shutdown)
        .collect();
    let rf = rf as usize;
    if rf > candidates.len() {
        return Err(PlacementError::TooFewBrokers {
            rf: rf as i16,
            available: candidates.len(),
        });
    }
    let rack_aware = candidates.iter().all(|b| b.rack.is_some());
    let (arranged, racks): (Vec<(i32, &str)>, usize) = if rack_aware {
        rack_alternated(&candidates)
    } else {
        // Every broker its own "rack": the rack rule never bites, and the shift is Kafka's
        // rack-unaware one.
        let list = candidates.iter().map(|b| (b.id, "")).collect();
        (list, 1)
    };
    let n = arranged.len();
    let start = (seed % n as u64) as usize;
    let base_shift = ((seed / n as u64) % n as u64) as usize;
    let mut out = Vec::with_capacity(partitions as usize);
    for p in first_partition..first_partition + partitions {
        let p = p as usize;
        // Kafka counts the rounds from the first partition it places; counting them from
        // partition 0 makes a partition's replicas depend only on its number, so partitions
        // added later continue the pattern of the first ones.
        let shift = base_shift + p / n;
        let first = (p + start) % n;
        let (leader, leader_rack) = arranged[first];
        let mut replicas = vec![leader];
        let mut used_racks = vec![leader_rack];
        let mut k = 0usize;
        while replicas.len() < rf {
            let (broker, rack) = arranged[follower_index(first, shift * racks, k, n)];
            let rack_ok = !rack_aware || !used_racks.contains(&rack) || used_racks.len() >= racks;
            if rack_ok && !replicas.contains(&broker) {
                replicas.push(broker);
                if !used_racks.contains(&rack) {
                    used_racks.push(rack);
                }
            }
            k += 1;
            if k > 2 * n * n {
                // Cannot happen (every other broker is visited each n - 1 steps); never loop.
                return Err(PlacementError::Invalid(format!(
                    "no placement found for partition {p}"
                )));
            }
        }
        out.push(replicas);
    }
    Ok(out)
}

/// The index of the `k`-th follower candidate of the partition whose first replica is at
/// `first`: never `first` itself, every other index once per `n - 1` steps.
fn follower_index(first: usize, shift: usize, k: usize, n: usize) -> usize {
    if n == 1 {
        return first;
    }
    (first + 1 + (shift + k) % (n - 1)) % n
}

/// Brokers ordered alternating racks: racks by name, the first broker (lowest id) of each, then
/// the second of each, and so on; and the number of racks.
fn rack_alternated<'a>(brokers: &[&'a BrokerRegistration]) -> (Vec<(i32, &'a str)>, usize) {
    let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for b in brokers {
        by_rack
            .entry(b.rack.as_deref().unwrap_or(""))
            .or_default()
            .push(b.id);
    }
    let racks = by_rack.len();
    let mut out = Vec::with_capacity(brokers.len());
    let mut round = 0;
    while out.len() < brokers.len() {
        for (rack, ids) in &by_rack {
            if let Some(id) = ids.get(round) {
                out.push((*id, *rack));
            }
        }
        round += 1;
    }
    (out, racks)
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;
