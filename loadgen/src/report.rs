//! The report: stdout summary, `summary.json`, `produce.hgrm` / `e2e.hgrm` and two SVG plots.
//!
//! File names and JSON keys are a stable interface (scripts read them). The `.hgrm` files follow
//! HdrHistogram's `outputPercentileDistribution` text format (5 ticks per half distance, values in
//! milliseconds — the unit HdrHistogram's plotters assume), so standard plotters read them. The SVGs
//! are written by hand (a few dozen lines of markup) rather than pulling a plotting stack in.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

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
}

/// Writes every report file into `dir`.
pub fn write_dir(
    dir: &Path,
    s: &Summary,
    produce: &Histogram<u64>,
    e2e: &Histogram<u64>,
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
        latency_svg(&[("produce", produce), ("end-to-end", e2e)]),
    )?;
    w("throughput.svg", throughput_svg(&s.throughput))?;
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

const W: f64 = 800.0;
const H: f64 = 480.0;
const L: f64 = 80.0; // left margin
const R: f64 = 30.0;
const T: f64 = 40.0;
const B: f64 = 60.0;
const COLORS: [&str; 3] = ["#1f77b4", "#d62728", "#2ca02c"];

fn svg_open(title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    let _ = writeln!(
        s,
        r##"<rect x="{L}" y="{T}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
        W - L - R,
        H - T - B
    );
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" axis maximum ≥ v (1, 2, 5 × 10^k).
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

fn y_axis(s: &mut String, max: f64, label: &str) {
    for i in 0..=5 {
        let v = max * f64::from(i) / 5.0;
        let y = H - B - (H - T - B) * f64::from(i) / 5.0;
        let _ = writeln!(
            s,
            r##"<line x1="{L}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/>"##,
            W - R
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            L - 6.0,
            y + 4.0,
            fmt_num(v)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>"#,
        H / 2.0,
        H / 2.0,
        esc(label)
    );
}

fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn legend(s: &mut String, names: &[&str]) {
    for (i, n) in names.iter().enumerate() {
        let x = L + 10.0 + 150.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{}" width="14" height="4" fill="{}"/>"#,
            T + 10.0,
            COLORS[i % 3]
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">{}</text>"#,
            x + 20.0,
            T + 16.0,
            esc(n)
        );
    }
}

/// Percentile plot: x = percentile on a log scale of 1/(1-p) (0 … 99.9999 %), y = latency in ms.
pub fn latency_svg(series: &[(&str, &Histogram<u64>)]) -> String {
    let mut s = svg_open("Latency by percentile (open loop, from scheduled send time)");
    let decades = 6.0; // up to 99.9999 %
    let max_ms = series
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(_, h)| h.max() as f64 / 1000.0)
        .fold(0.0, f64::max);
    let ymax = nice_max(max_ms);
    y_axis(&mut s, ymax, "latency (ms)");
    let pw = W - L - R;
    let ph = H - T - B;
    for d in 0..=6 {
        let x = L + pw * f64::from(d) / decades;
        let label = match d {
            0 => "0%".to_string(),
            1 => "90%".to_string(),
            n => format!("99.{}%", "9".repeat(n as usize - 2)).replace("99.%", "99%"),
        };
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{T}" x2="{x:.1}" y2="{}" stroke="#ddd"/>"##,
            H - B
        );
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">{label}</text>"#,
            H - B + 16.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>"#,
        L + pw / 2.0,
        H - 16.0
    );
    for (i, (_, h)) in series.iter().enumerate() {
        if h.is_empty() {
            continue;
        }
        let mut pts = String::new();
        for step in 0..=600 {
            let x_dec = decades * f64::from(step) / 600.0;
            let q = 1.0 - 10f64.powf(-x_dec);
            let v = h.value_at_quantile(q.min(1.0)) as f64 / 1000.0;
            let x = L + pw * x_dec / decades;
            let y = H - B - ph * (v / ymax).min(1.0);
            let _ = write!(pts, "{x:.1},{y:.1} ");
        }
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{pts}"/>"#,
            COLORS[i % 3]
        );
    }
    legend(&mut s, &series.iter().map(|(n, _)| *n).collect::<Vec<_>>());
    s.push_str("</svg>\n");
    s
}

/// Messages per second over the run.
pub fn throughput_svg(t: &Throughput) -> String {
    let mut s = svg_open("Throughput per second");
    let all = [&t.produce_per_sec, &t.consume_per_sec, &t.catchup_per_sec];
    let n = all.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
    let max = all
        .iter()
        .flat_map(|s| s.iter())
        .copied()
        .max()
        .unwrap_or(0);
    let ymax = nice_max(max as f64);
    y_axis(&mut s, ymax, "messages / s");
    let pw = W - L - R;
    let ph = H - T - B;
    let xs = |i: usize| L + pw * (i as f64 + 0.5) / n as f64;
    let step = (n / 10).max(1);
    for i in (0..n).step_by(step) {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{i}</text>"#,
            xs(i),
            H - B + 16.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">second of the run</text>"#,
        L + pw / 2.0,
        H - 16.0
    );
    for (ci, series) in all.iter().enumerate() {
        if series.iter().all(|&v| v == 0) {
            continue;
        }
        let mut pts = String::new();
        for (i, &v) in series.iter().enumerate() {
            let _ = write!(pts, "{:.1},{:.1} ", xs(i), H - B - ph * (v as f64 / ymax));
        }
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{pts}"/>"#,
            COLORS[ci]
        );
    }
    legend(
        &mut s,
        &["produce (acked)", "consume (live)", "consume (catch-up)"],
    );
    s.push_str("</svg>\n");
    s
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

    #[test]
    fn svgs_are_well_formed_enough() {
        let mut h = new_histogram();
        h.record(1500).unwrap();
        let l = latency_svg(&[("produce", &h), ("e2e", &new_histogram())]);
        assert!(l.starts_with("<svg") && l.trim_end().ends_with("</svg>"));
        assert_eq!(l.matches("<polyline").count(), 1);
        let t = throughput_svg(&Throughput {
            produce_per_sec: vec![1, 2, 3],
            consume_per_sec: vec![3, 2],
            catchup_per_sec: vec![0, 0],
        });
        assert_eq!(t.matches("<polyline").count(), 2);
    }

    #[test]
    fn nice_axis() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.2), 5.0);
        assert_eq!(nice_max(250_000.0), 500_000.0);
        assert_eq!(nice_max(100.0), 100.0);
    }
}
