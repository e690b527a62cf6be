//! What the server integration tests share: the broker side (an in-process broker, the real
//! `ringbolt serve` process) here, the client side from the `kafka-test-client` crate, re-exported
//! so that `use server_util::*` brings both.
#![allow(dead_code, unused_imports)] // each test binary uses its own part of it

pub(crate) mod process;

use std::path::Path;

use ringbolt::server::{BrokerConfig, BrokerHandle, spawn_broker};

pub(crate) use kafka_test_client::records::{batch, normalize, split_batches};
pub(crate) use kafka_test_client::{Client, sb, tn};

/// As in `ringbolt serve`: hostile array lengths must not abort the test's in-process broker.
#[global_allocator]
static ALLOC: ringbolt::server::alloc::HugeAllocGuard = ringbolt::server::alloc::HugeAllocGuard;

/// Logs to the test's output, `RUST_LOG` or warnings and up.
pub(crate) fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// A broker on 127.0.0.1 (any free port) with `shards` shards and its data in `dir`.
pub(crate) fn config(dir: &Path, shards: usize) -> BrokerConfig {
    let mut c = BrokerConfig::new("127.0.0.1:0".parse().unwrap(), dir);
    c.shards = shards;
    c
}

/// Starts the in-process broker of [`config`].
pub(crate) fn start(dir: &Path, shards: usize) -> BrokerHandle {
    init_logs();
    spawn_broker(config(dir, shards)).expect("broker starts")
}
