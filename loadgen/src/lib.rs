//! loadgen: an open-loop Kafka load generator with latency histograms.
//!
//! It speaks the Kafka protocol itself (kafka-protocol codecs, hand-built record batches), so it
//! measures any Kafka-compatible broker. See `run.rs` for the phases of a run, `producer.rs` for the
//! open-loop schedule, `batch.rs` for why batches are built by hand.

pub mod args;
pub mod batch;
pub mod client;
pub mod consumer;
pub mod embedded;
pub mod message;
pub mod plot;
pub mod producer;
pub mod report;
pub mod run;
pub mod stats;
pub mod txn;
pub mod verify;

use anyhow::Result;

/// Runs loadgen with parsed flags: picks or starts the broker, runs, writes the report.
/// Returns whether every expectation passed.
pub fn main_with(args: args::Args) -> Result<bool> {
    args.validate()?;
    let (embedded, bootstrap, broker) = match &args.bootstrap {
        Some(b) => (None, b.clone(), format!("external broker at {b}")),
        None => {
            let e = embedded::Embedded::start(args.embedded_shards)?;
            let addr = e.addr().to_string();
            let d = e.describe();
            (Some(e), addr, d)
        }
    };
    if args.txn_records > 0 {
        let result = txn::run(&args, &bootstrap);
        if let Ok(s) = &result {
            txn::report(s, &args.report_dir)?;
        }
        if let Some(e) = embedded
            && let Err(err) = e.shutdown()
        {
            eprintln!("loadgen: warning: {err:#}");
        }
        return result.map(|s| s.transactions > 0);
    }
    let result = run::run(&args, &bootstrap, broker);
    // Report first: the broker's shutdown must not stand between the user and the figures.
    if let Ok(outcome) = &result {
        print!("{}", report::text(&outcome.summary));
        report::write_dir(
            &args.report_dir,
            &outcome.summary,
            &outcome.produce_hist,
            &outcome.e2e_hist,
            &run::latency_marks(&args),
        )?;
        println!("report written to {}", args.report_dir.display());
    }
    if let Some(e) = embedded
        && let Err(err) = e.shutdown()
    {
        tracing::warn!("embedded broker shutdown: {err:#}");
        eprintln!("loadgen: warning: {err:#}");
    }
    let outcome = result?;
    Ok(outcome.summary.passed)
}
