//! The cluster: several brokers, a replicated metadata log, and who leads which partition.
//!
//! # Shape (as KRaft does it)
//! A few nodes are controller voters (`process.roles` contains `controller`, listed in
//! `controller.quorum.voters`); they replicate a metadata log with Raft ([`quorum`], on the
//! `openraft` crate, running on one thread of its own with its own tokio runtime — never on a
//! shard). Every command in that log is a [`image::MetaCommand`]; applying the committed commands
//! in order gives every node the same [`image::ClusterImage`]: registered brokers (and which are
//! fenced), topics with each partition's replicas, leader, leader epoch, partition epoch and ISR,
//! dynamic configs, quotas, producer-id blocks. Broker-only nodes follow the log as Raft learners.
//!
//! The Raft leader is the *active controller*: it runs [`controller::ControllerPolicy`], which
//! turns broker heartbeats and the passage of time into commands (fence a broker whose session
//! expired, elect new leaders from the ISR, unfence a broker that caught up with the log).
//!
//! Each node's quorum thread publishes every newly applied image; shard 0 turns it into the
//! shards' immutable [`crate::metadata::MetadataSnapshot`] (as the single-node controller does
//! today) and each shard applies the partition roles it implies ([`crate::replica`]: lead, or
//! follow by fetching from the leader).
//!
//! # Single node
//! Without `process.roles` nothing here runs: the broker is its own controller with the JSON
//! metadata file ([`crate::metadata`]), leads every partition at epoch 0, and a snapshot's
//! `cluster` is `None`.

pub mod controller;
pub mod image;
pub mod placement;
pub mod quorum;

pub use image::{
    BrokerRegistration, ClusterImage, MetaCommand, MetaResponse, PartitionState, TopicImage,
};
pub use quorum::{QuorumConfig, QuorumError, QuorumHandle, QuorumStatus};
