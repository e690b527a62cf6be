//! Consumer-group coordinator and committed offsets.
