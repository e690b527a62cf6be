//! Topics, partitions and configs; persistence; snapshots to shards.
