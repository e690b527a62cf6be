use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Ringbolt: a Kafka-compatible message broker.
#[derive(Parser)]
#[command(name = "ringbolt", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker (SIGTERM/SIGINT shut it down cleanly).
    Serve(ringbolt::server::ServeArgs),
    /// Print every record batch of a segment file (`<base>.log`).
    DumpLog { path: PathBuf },
    /// Check or apply the host settings Ringbolt wants (tuning/README.md).
    Tune(ringbolt::tune::TuneArgs),
}

/// Keeps hostile array lengths in requests from aborting the broker (see its docs).
#[global_allocator]
static ALLOC: ringbolt::server::alloc::HugeAllocGuard = ringbolt::server::alloc::HugeAllocGuard;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => ringbolt::server::serve_main(args)?,
        Command::DumpLog { path } => ringbolt::storage::dump::dump_log(&path)
            .with_context(|| format!("dump-log {}", path.display()))?,
        Command::Tune(args) => std::process::exit(ringbolt::tune::tune_main(args)?),
    }
    Ok(())
}
