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
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // glommio::reactor's only log line is the failed iopoll probe that storage::iopoll provokes on
    // purpose (explained by our INFO line); an ERROR at every start would send operators hunting.
    // RUST_LOG naming glommio keeps full control.
    if !std::env::var("RUST_LOG").is_ok_and(|v| v.contains("glommio")) {
        filter = filter.add_directive("glommio::reactor=off".parse().expect("static directive"));
    }
    // Through a queue and a writer thread: a stalled stderr must not stall the broker (see
    // `server::log_sink`); what is queued is flushed before the process ends.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(ringbolt::server::log_sink::Stderr)
        .init();
    let flush = || ringbolt::server::log_sink::flush(std::time::Duration::from_secs(2));
    let result = match Cli::parse().command {
        Command::Serve(args) => ringbolt::server::serve_main(args),
        Command::DumpLog { path } => ringbolt::storage::dump::dump_log(&path)
            .with_context(|| format!("dump-log {}", path.display())),
        Command::Tune(args) => {
            let code = ringbolt::tune::tune_main(args);
            flush();
            std::process::exit(code?)
        }
    };
    flush();
    result
}
