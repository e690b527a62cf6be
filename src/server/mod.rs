//! Listener, connections, dispatch and the per-API handlers.
