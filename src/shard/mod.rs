//! Executors pinned per core, partition routing and the cross-shard mesh.
