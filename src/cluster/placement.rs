//! Replica placement for new topics and partitions: Kafka's rack-aware round robin.

use std::collections::BTreeMap;

use super::image::BrokerRegistration;

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
    let _ = (brokers, first_partition, partitions, rf, seed);
    todo!("issue 19: placement")
}
