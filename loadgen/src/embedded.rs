//! The embedded broker: with no `--bootstrap`, loadgen starts Ringbolt in-process on
//! 127.0.0.1:0 with a temporary data directory that is removed when the run ends.

use anyhow::Result;

/// A running in-process broker; dropping it shuts the broker down and removes its data.
pub struct Embedded {
    addr: std::net::SocketAddr,
}

impl Embedded {
    pub fn start(_shards: usize) -> Result<Embedded> {
        anyhow::bail!(
            "embedded Ringbolt not available yet (ringbolt::server::spawn_broker missing); use --bootstrap"
        )
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    pub fn describe(&self) -> String {
        format!(
            "embedded ringbolt {} at {}",
            env!("CARGO_PKG_VERSION"),
            self.addr
        )
    }

    pub fn shutdown(self) -> Result<()> {
        Ok(())
    }
}
