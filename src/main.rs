use std::path::PathBuf;

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
    /// Print every record batch of a segment file (`<base>.log`).
    DumpLog { path: PathBuf },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::DumpLog { path } => ringbolt::storage::dump::dump_log(&path)?,
    }
    Ok(())
}
