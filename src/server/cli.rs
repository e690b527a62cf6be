//! `ringbolt serve`: flags, config file, signals.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

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
        // `listeners` may also name the controller listener (cluster mode): the client one is
        // its PLAINTEXT entry.
        let from_file = settings
            .client_listener()
            .with_context(|| match &self.config {
                Some(file) => format!("config file {}", file.display()),
                None => "listeners".into(),
            })?;
        let listen = match (&self.listen, from_file, &self.config) {
            (Some(l), _, _) => parse_listener(l).context("--listen")?,
            (None, Some(a), _) => a,
            (None, None, Some(file)) if settings.listeners.is_some() => anyhow::bail!(
                "config file {}: listeners has no PLAINTEXT:// client listener",
                file.display()
            ),
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
///
/// The signal handlers are installed first, before the configuration is read: from then on a
/// SIGTERM is never lost. The flag the handler sets is the broker's own stop flag, which the
/// shards poll themselves, so the stop depends neither on the main thread nor on a log line being
/// written; it works in every phase: during startup (the shards stop recovering; see
/// [`super::spawn_broker_until`]) as well as when serving. Each signal is logged the moment it
/// arrives, by a thread that does nothing else; a second one while stopping only says that the
/// shutdown is under way. The shutdown logs what it waits for every few seconds and is bounded
/// ([`super::SHUTDOWN_TIMEOUT`]), after which the process exits with an error naming the shards
/// that did not stop. Before the handlers are installed (argument parsing, logging setup: the
/// first milliseconds of the process) SIGTERM has its default effect and ends the process.
pub fn serve_main(args: ServeArgs) -> anyhow::Result<()> {
    let signals = StopSignals::install()?;
    let cfg = args.to_config()?;
    abort_on_panic();
    crate::tune::memlock_preflight()?;
    let nofile = super::startup::raise_nofile_limit();
    tracing::debug!(nofile, "open-files limit");
    let broker = match super::spawn_broker_until(cfg, signals.term.clone()) {
        Ok(b) => b,
        Err(e) if e.is::<super::StartupInterrupted>() => {
            signals.wait_logged();
            tracing::info!("stopped during startup");
            tracing::info!("shutdown complete");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    // Not println!: on a pipe whose reader is gone (EPIPE) it panics, and the panic hook would
    // abort the broker. The log has the address too.
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "ringbolt listening on {}", broker.local_addr());
        let _ = out.flush();
    }
    while !signals.term.load(Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    signals.wait_logged();
    tracing::info!("shutting down");
    broker.shutdown()?;
    tracing::info!("shutdown complete");
    Ok(())
}

/// SIGTERM and SIGINT: a flag set in the signal handler itself, and a thread that logs each
/// signal as it arrives.
struct StopSignals {
    term: Arc<AtomicBool>,
    /// Signals the thread has logged.
    logged: Arc<AtomicU32>,
}

impl StopSignals {
    fn install() -> anyhow::Result<StopSignals> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let term = Arc::new(AtomicBool::new(false));
        for sig in [SIGTERM, SIGINT] {
            signal_hook::flag::register(sig, term.clone()).context("installing signal handlers")?;
        }
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
            .context("installing signal handlers")?;
        let logged = Arc::new(AtomicU32::new(0));
        let seen = logged.clone();
        std::thread::Builder::new()
            .name("ringbolt-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                    if seen.load(Ordering::SeqCst) == 0 {
                        tracing::info!(signal = name, "signal received, shutting down");
                    } else {
                        tracing::info!(
                            signal = name,
                            "signal received again; the shutdown is under way (progress is logged)"
                        );
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                }
            })
            .context("starting the signal thread")?;
        Ok(StopSignals { term, logged })
    }

    /// Lets the signal thread log the signal that set the flag before the main thread goes on
    /// (and possibly ends the process); bounded, as that thread is only a witness.
    fn wait_logged(&self) {
        let t0 = std::time::Instant::now();
        while self.logged.load(Ordering::SeqCst) == 0
            && t0.elapsed() < std::time::Duration::from_secs(1)
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
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
        super::log_sink::flush(std::time::Duration::from_secs(1));
        default(info);
        std::process::abort();
    }));
}
