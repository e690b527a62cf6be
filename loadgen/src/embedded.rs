//! The embedded broker: with no `--bootstrap`, loadgen starts Ringbolt in-process
//! (`ringbolt::server::spawn_broker`) listening on 127.0.0.1:0, with a temporary data directory
//! that is removed when the run ends.
//!
//! Trade-off: broker and load generator share the machine's cores (and this process), so the
//! figures are a lower bound of what the broker does alone; it makes the first command work with
//! nothing else installed. For comparisons, run `ringbolt serve` (or Kafka) and use `--bootstrap`.

use std::net::SocketAddr;
use std::time::Duration;

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

    /// Stops the broker cleanly, then removes its data directory. Waits at most
    /// [`SHUTDOWN_TIMEOUT`]: a broker that does not stop must not hang the load generator (its
    /// threads end with the process).
    pub fn shutdown(mut self) -> Result<()> {
        stop(self.handle.take())
    }
}

/// Longest wait for the embedded broker's clean stop.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

fn stop(handle: Option<BrokerHandle>) -> Result<()> {
    let Some(h) = handle else { return Ok(()) };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("embedded-shutdown".into())
        .spawn(move || {
            let _ = tx.send(h.shutdown());
        })
        .context("spawning the shutdown thread")?;
    match rx.recv_timeout(SHUTDOWN_TIMEOUT) {
        Ok(r) => r,
        Err(_) => anyhow::bail!(
            "embedded broker did not stop within {} s",
            SHUTDOWN_TIMEOUT.as_secs()
        ),
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Err(e) = stop(self.handle.take()) {
            tracing::warn!("embedded broker shutdown: {e:#}");
        }
    }
}
