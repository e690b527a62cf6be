//! `loadgen` binary: parse flags, run, exit 1 on any FAIL (2 when the run could not complete).

use clap::Parser;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = loadgen::args::Args::parse();
    match loadgen::main_with(args) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            std::process::exit(2);
        }
    }
}
