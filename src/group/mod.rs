//! Consumer-group coordinator and committed offsets.
//!
//! - [`state`]: one group's membership state machine (Kafka's classic rebalance protocol), pure.
pub mod state;
