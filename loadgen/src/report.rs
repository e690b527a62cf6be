//! The report: stdout summary, `summary.json`, `produce.hgrm` / `e2e.hgrm` and two SVG plots.
//!
//! File names and JSON keys are a stable interface (scripts read them). The `.hgrm` files follow
//! HdrHistogram's `outputPercentileDistribution` text format (5 ticks per half distance, values in
//! milliseconds — the unit HdrHistogram's plotters assume), so standard plotters read them. The SVGs
//! are drawn in `plot.rs`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::plot::{self, Mark};

#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ProduceSummary {
    /// Acknowledged messages scheduled after the warmup (the ones the rate is computed from).
    pub messages: u64,
    pub msgs_per_sec: f64,
    pub mb_per_sec: f64,
    pub latency_us: Percentiles,
    /// All acknowledged messages including the warmup.
    pub total_messages: u64,
    /// How far behind its schedule the run finished, in µs: the last acknowledgement minus the
    /// schedule's end (the last message's due time, to within 1/rate). A few ms when the broker
    /// keeps up.
    pub end_lag_us: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ConsumeSummary {
    /// Messages read by the full-speed catch-up consume.
    pub messages: u64,
    pub msgs_per_sec: f64,
    pub mb_per_sec: f64,
    /// Messages read by the live consumers while producing.
    pub live_messages: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct E2eSummary {
    pub latency_us: Percentiles,
    pub messages: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct VerificationSummary {
    pub checked: u64,
    pub violations: u64,
    pub foreign: u64,
    pub samples: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub produce: ProduceSummary,
    pub consume: ConsumeSummary,
    pub e2e: E2eSummary,
    pub errors: u64,
    pub passed: bool,
    pub checks: Vec<Check>,
    pub verification: VerificationSummary,
    pub config: serde_json::Value,
    pub broker: String,
    /// Messages per second: produce acks / consumed, one entry per second of the run.
    pub throughput: Throughput,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Throughput {
    pub produce_per_sec: Vec<u64>,
    pub consume_per_sec: Vec<u64>,
    pub catchup_per_sec: Vec<u64>,
    /// The offered produce rate (`--rate`; 0 = none: as fast as possible, or consume only).
    pub target_per_sec: u64,
    /// Seconds from the first scheduled message to the end of the warmup and of the schedule
    /// (0 when nothing was produced).
    pub measure_start_s: f64,
    pub schedule_end_s: f64,
}

/// Writes every report file into `dir`; `latency_marks` are bounds (ms) drawn on the latency plot.
pub fn write_dir(
    dir: &Path,
    s: &Summary,
    produce: &Histogram<u64>,
    e2e: &Histogram<u64>,
    latency_marks: &[Mark],
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let w = |name: &str, text: String| {
        std::fs::write(dir.join(name), text).with_context(|| format!("writing {name}"))
    };
    w("summary.json", serde_json::to_string_pretty(s)? + "\n")?;
    w("produce.hgrm", hgrm(produce))?;
    w("e2e.hgrm", hgrm(e2e))?;
    w(
        "latency.svg",
        plot::latency_svg(&[("produce", produce), ("end-to-end", e2e)], latency_marks),
    )?;
    w("throughput.svg", plot::throughput_svg(&s.throughput))?;
    Ok(())
}

/// HdrHistogram percentile distribution text (values in ms, as `outputValueUnitScalingRatio` 1000).
pub fn hgrm(h: &Histogram<u64>) -> String {
    let ratio = 1000.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let value = h.highest_equivalent(v.value_iterated_to()) as f64 / ratio;
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / ratio,
        h.stdev() / ratio
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / ratio,
        h.len()
    );
    // Java's getSubBucketCount(): 2^ceil(log2(2 * 10^sigfig)).
    let sub_buckets = (2.0 * 10f64.powi(i32::from(h.sigfig())))
        .log2()
        .ceil()
        .exp2() as u64;
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets
    );
    out
}

/// Human-readable report for stdout.
pub fn text(s: &Summary) -> String {
    let mut o = String::new();
    let us = |v: u64| format!("{:.3} ms", v as f64 / 1000.0);
    let lat = |o: &mut String, name: &str, p: &Percentiles| {
        let _ = writeln!(
            o,
            "  {name:<9} p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}",
            us(p.p50),
            us(p.p90),
            us(p.p99),
            us(p.p999),
            us(p.p9999),
            us(p.max)
        );
    };
    let _ = writeln!(o, "\n== loadgen report ({})", s.broker);
    let _ = writeln!(
        o,
        "produce:  {} msgs  {:.0} msg/s  {:.1} MB/s  (last ack {} after the schedule's end)",
        s.produce.messages,
        s.produce.msgs_per_sec,
        s.produce.mb_per_sec,
        us(s.produce.end_lag_us)
    );
    let _ = writeln!(
        o,
        "consume:  {} msgs  {:.0} msg/s  {:.1} MB/s (catch-up at full speed; {} read live)",
        s.consume.messages, s.consume.msgs_per_sec, s.consume.mb_per_sec, s.consume.live_messages
    );
    let _ = writeln!(o, "latency (from scheduled send time):");
    lat(&mut o, "produce", &s.produce.latency_us);
    lat(&mut o, "e2e", &s.e2e.latency_us);
    let _ = writeln!(
        o,
        "verification: {} checked, {} violations, {} foreign",
        s.verification.checked, s.verification.violations, s.verification.foreign
    );
    for v in s.verification.samples.iter().take(10) {
        let _ = writeln!(o, "  {v}");
    }
    let _ = writeln!(o, "errors: {}", s.errors);
    for c in &s.checks {
        let _ = writeln!(
            o,
            "{} {}: {}",
            if c.passed { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    let _ = writeln!(
        o,
        "{}",
        if s.passed {
            "RESULT: PASS"
        } else {
            "RESULT: FAIL"
        }
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn hgrm_has_header_rows_and_footer() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let text = hgrm(&h);
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .skip(1)
            .collect();
        assert!(rows.len() > 20);
        let last: Vec<&str> = rows.last().unwrap().split_whitespace().collect();
        assert_eq!(last[1], "1.000000000000");
        assert_eq!(last[2], "10000");
        assert!(
            text.contains("#[Max     =       10.007, Total count    =        10000]"),
            "{text}"
        );
    }
}
