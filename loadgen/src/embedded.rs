//! The embedded broker: with no `--bootstrap`, loadgen starts Ringbolt in-process
//! (`ringbolt::server::spawn_broker`) listening on 127.0.0.1:0, with a temporary data directory
//! that is removed when the run ends.
//!
//! Trade-off: broker and load generator share the machine's cores (and this process), so the
//! figures are a lower bound of what the broker does alone; it makes the first command work with
//! nothing else installed. For comparisons, run `ringbolt serve` (or Kafka) and use `--bootstrap`.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use ringbolt::server::{BrokerConfig, BrokerHandle, spawn_broker};

/// A running in-process broker and its data directory.
pub struct Embedded {
    handle: Option<BrokerHandle>,
    addr: SocketAddr,
    shards: usize,
    // Dropped after the broker has stopped: removes the data.
    _dir: tempfile::TempDir,
}

impl Embedded {
    /// Starts Ringbolt with `shards` shards (0 = one per core).
    pub fn start(shards: usize) -> Result<Embedded> {
        let dir = tempfile::Builder::new()
            .prefix("loadgen-ringbolt-")
            .tempdir()
            .context("creating the embedded broker's data dir")?;
        let mut cfg = BrokerConfig::new(([127, 0, 0, 1], 0).into(), dir.path());
        cfg.shards = shards;
        let shards = cfg.shard_count();
        let handle = spawn_broker(cfg).context("starting the embedded Ringbolt broker")?;
        let addr = handle.local_addr();
        tracing::info!(%addr, data_dir = %dir.path().display(), "embedded ringbolt started");
        Ok(Embedded {
            handle: Some(handle),
            addr,
            shards,
            _dir: dir,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn describe(&self) -> String {
        format!(
            "embedded ringbolt {} ({} shards) at {}",
            env!("CARGO_PKG_VERSION"),
            self.shards,
            self.addr
        )
    }

    /// Stops the broker cleanly, then removes its data directory.
    pub fn shutdown(mut self) -> Result<()> {
        match self.handle.take() {
            Some(h) => h.shutdown(),
            None => Ok(()),
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take()
            && let Err(e) = h.shutdown()
        {
            tracing::warn!("embedded broker shutdown: {e:#}");
        }
    }
}
