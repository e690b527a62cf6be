//! `ringbolt serve`: flags, config file, signals.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

use crate::config::{BrokerConfig, BrokerSettings, parse_listener};

/// Flags of `ringbolt serve`; each overrides the matching entry of `--config`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (every shard binds it with SO_REUSEPORT) [default: 127.0.0.1:9092]
    #[arg(long)]
    pub listen: Option<String>,
    /// host:port given to clients in Metadata [default: the listen address]
    #[arg(long)]
    pub advertised_listener: Option<String>,
    /// Data directory [default: ./data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Number of shards (pinned executor threads) [default: one per core]
    #[arg(long)]
    pub shards: Option<usize>,
    /// TOML file with Kafka-named settings (num.partitions, log.retention.ms, ...)
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl ServeArgs {
    /// Flags over file over defaults.
    pub fn to_config(&self) -> anyhow::Result<BrokerConfig> {
        let settings = match &self.config {
            Some(p) => BrokerSettings::from_file(p)?,
            None => BrokerSettings::default(),
        };
        let listen = match (&self.listen, &settings.listeners, &self.config) {
            (Some(l), _, _) => parse_listener(l).context("--listen")?,
            (None, Some(l), Some(file)) => {
                parse_listener(l).with_context(|| format!("config file {}", file.display()))?
            }
            (None, Some(l), None) => parse_listener(l)?,
            (None, None, _) => parse_listener("127.0.0.1:9092")?,
        };
        let data_dir = self
            .data_dir
            .clone()
            .or_else(|| settings.log_dirs.as_ref().map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("./data"));
        let advertised_listener = self
            .advertised_listener
            .clone()
            .or_else(|| settings.advertised_listeners.clone());
        let shards = self.shards.or(settings.num_shards).unwrap_or(0);
        Ok(BrokerConfig {
            listen,
            advertised_listener,
            data_dir,
            shards,
            settings,
        })
    }
}

/// Runs the broker until SIGTERM or SIGINT, then shuts it down cleanly.
pub fn serve_main(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = args.to_config()?;
    abort_on_panic();
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, term.clone())?;
    }
    crate::tune::memlock_preflight()?;
    let nofile = super::startup::raise_nofile_limit();
    tracing::debug!(nofile, "open-files limit");
    let broker = super::spawn_broker(cfg)?;
    println!("ringbolt listening on {}", broker.local_addr());
    while !term.load(Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    tracing::info!("signal received, shutting down");
    broker.shutdown()?;
    tracing::info!("shutdown complete");
    Ok(())
}

/// A panic on any shard thread aborts the whole process after logging it.
///
/// Shards share nothing, so a dead shard would leave the process half alive: its listener gone,
/// but the other shards still accepting connections and routing work for its partitions to a
/// mesh nobody drains — clients would hang instead of failing over to a restart. Aborting hands
/// the decision to the supervisor (the systemd unit restarts the broker), and recovery on open
/// truncates any torn tail, so nothing acknowledged with acks=all is lost.
fn abort_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        tracing::error!(
            thread = thread.name().unwrap_or("?"),
            "panic: {info}; aborting the broker (shards share nothing, so one cannot be lost alone)"
        );
        default(info);
        std::process::abort();
    }));
}
