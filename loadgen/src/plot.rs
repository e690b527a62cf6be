//! The report's pictures: `latency.svg` (percentile curves) and `throughput.svg` (messages per
//! second over the run), written as plain SVG markup.
//!
//! Every series gets its own colour *and* line pattern, and the series that usually coincide are
//! drawn wide-and-solid under narrow-and-dashed, so one never hides another: produce and live
//! consume run at the same rate, and produce and end-to-end latency are often close. Hand-written
//! rather than drawn with a plotting crate: with SVG's own dash patterns and a few scale helpers
//! it takes no more code, no dependency, and gives files of a few KB (plotters draws every dash
//! as a separate path).

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::report::Throughput;

const W: f64 = 960.0;
const H: f64 = 600.0;

/// Estimated average character width of sans-serif text, in em (for laying out labels).
const TEXT_EM: f64 = 0.6;

/// How a series is drawn: colour, stroke width and SVG dash pattern ("" = solid).
#[derive(Clone, Copy, Debug)]
struct Pen {
    color: &'static str,
    width: f64,
    dash: &'static str,
}

/// Series pens in drawing order: wide solid blue, then dashed red on top, then dotted green.
const PENS: [Pen; 3] = [
    Pen {
        color: "#1f77b4",
        width: 5.0,
        dash: "",
    },
    Pen {
        color: "#d62728",
        width: 2.0,
        dash: "10 6",
    },
    Pen {
        color: "#2ca02c",
        width: 3.0,
        dash: "3 4",
    },
];

/// Reference lines: targets, bounds, phase boundaries.
const MARK: Pen = Pen {
    color: "#5a5a5a",
    width: 1.3,
    dash: "6 4",
};

/// A labelled reference value drawn across a plot (a target or a bound).
#[derive(Clone, Debug)]
pub struct Mark {
    pub label: String,
    pub value: f64,
}

/// Percentiles are plotted up to 99.9999 %: x is the number of nines, log10(1/(1-p)).
const NINES: f64 = 6.0;

/// Points of the percentile curve per nine.
const STEPS_PER_NINE: u32 = 100;

/// Percentile plot as HdrHistogram's plotter draws it: x = percentile on a log scale of
/// 1/(1-p), y = latency on a log scale. A log y axis keeps p50 (≈ 1 ms) and a tail of seconds
/// readable in one picture; a linear one flattened everything below the median to zero. `marks`
/// are latency bounds in ms drawn as horizontal reference lines.
pub fn latency_svg(series: &[(&str, &Histogram<u64>)], marks: &[Mark]) -> String {
    let curves: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(n, h)| (*n, percentile_curve(h)))
        .collect();
    let values = curves
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.1))
        .chain(marks.iter().map(|m| m.value));
    let (lo, hi) = log_range(values);
    let f = Frame {
        left: 95.0,
        top: 50.0,
        width: W - 95.0 - 45.0,
        height: H - 50.0 - 75.0,
        x: Scale::Linear(0.0, NINES),
        y: Scale::Log(lo, hi),
    };
    let x_axis = Axis {
        desc: "percentile (log scale of 1/(1-p))",
        ticks: (0..=NINES as u32)
            .map(|n| (f64::from(n), percentile_label(f64::from(n))))
            .collect(),
        minor: Vec::new(),
    };
    let mut svg =
        Svg::new("Latency by percentile (open loop: from each message's scheduled send time)");
    svg.axes(&f, &x_axis, &log_axis("latency (log scale)", lo, hi));
    let mut legend = Vec::new();
    for (i, (name, pts)) in curves.iter().enumerate() {
        let pen = PENS[i % PENS.len()];
        svg.series(&f, pts, pen);
        legend.push((name.to_string(), pen));
    }
    for m in marks {
        svg.series(&f, &[(0.0, m.value), (NINES, m.value)], MARK);
        legend.push((m.label.clone(), MARK));
    }
    svg.legend_box(&f, &legend);
    svg.finish()
}

/// (nines, latency ms) along the percentile curve, up to the percentile of the single slowest
/// sample (1/(1-p) = count): beyond it the histogram has no data, only its maximum.
fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let end = (h.len().max(1) as f64).log10().clamp(0.0, NINES);
    let steps = ((end * f64::from(STEPS_PER_NINE)).ceil() as u32).max(1);
    (0..=steps)
        .map(|i| {
            let x = end * f64::from(i) / f64::from(steps);
            let q = (1.0 - 10f64.powf(-x)).clamp(0.0, 1.0);
            (x, h.value_at_quantile(q) as f64 / 1e3)
        })
        .collect()
}

/// Whole decades around `values` (ms), at least one decade.
fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (min, max) = values
        .filter(|v| *v > 0.0)
        .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if max <= 0.0 {
        return (0.1, 10.0);
    }
    let lo = 10f64.powf(min.log10().floor());
    let hi = 10f64.powf((max * 1.05).log10().ceil());
    (lo, hi.max(lo * 10.0))
}

/// A log axis: labelled decades, unlabelled grid lines at 2 … 9 of each.
fn log_axis(desc: &'static str, lo: f64, hi: f64) -> Axis {
    let decades = (hi / lo).log10().round() as i32;
    let decade = |d: i32| lo * 10f64.powi(d);
    Axis {
        desc,
        ticks: (0..=decades)
            .map(|d| (decade(d), fmt_ms(decade(d))))
            .collect(),
        minor: (0..decades)
            .flat_map(|d| (2..10).map(move |m| decade(d) * f64::from(m)))
            .collect(),
    }
}

/// "0%", "90%", "99%", "99.9%", … for whole nines.
fn percentile_label(nines: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-nines));
    let decimals = (nines.round() as usize).saturating_sub(2);
    format!("{p:.decimals$}%")
}

/// A series of the throughput plot.
type Rates<'a> = (&'a str, &'a [u64], Pen);

/// Messages per second over the run, one step per second. Top: produce acknowledgements and
/// live consume against the target rate; bottom (own scale, when there was one): the catch-up
/// consume, which runs at many times the target rate and would flatten the top panel.
pub fn throughput_svg(t: &Throughput) -> String {
    let live = with_data(vec![
        ("produce (acknowledged)", &t.produce_per_sec, PENS[0]),
        ("consume (live)", &t.consume_per_sec, PENS[1]),
    ]);
    let catchup = with_data(vec![(
        "consume (catch-up, full speed)",
        &t.catchup_per_sec,
        PENS[2],
    )]);
    let seconds = [&t.produce_per_sec, &t.consume_per_sec, &t.catchup_per_sec]
        .iter()
        .map(|s| s.len())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let target = (t.target_per_sec > 0).then(|| Mark {
        label: format!("target {} msg/s", thousands(t.target_per_sec)),
        value: t.target_per_sec as f64,
    });
    let mut svg = Svg::new("Messages per second over the run");
    // (top, height) of the panels; each has its legend in a row above it.
    let (full, upper, lower) = ((64.0, H - 64.0 - 80.0), (64.0, 253.0), (404.0, 120.0));
    match (live.is_empty(), catchup.is_empty()) {
        (false, false) => {
            svg.rate_panel(upper, t, seconds, &live, target.as_ref());
            svg.rate_panel(lower, t, seconds, &catchup, None);
        }
        (true, false) => svg.rate_panel(full, t, seconds, &catchup, None),
        _ => svg.rate_panel(full, t, seconds, &live, target.as_ref()),
    }
    svg.finish()
}

/// The series that have any data.
fn with_data<'a>(series: Vec<(&'a str, &'a Vec<u64>, Pen)>) -> Vec<Rates<'a>> {
    series
        .into_iter()
        .filter(|(_, s, _)| s.iter().any(|&v| v > 0))
        .map(|(n, s, p)| (n, &s[..], p))
        .collect()
}

/// Per-second counts as a step line: second `i` is the segment from `i` to `i + 1`.
fn steps(per_second: &[u64]) -> Vec<(f64, f64)> {
    per_second
        .iter()
        .enumerate()
        .flat_map(|(i, &v)| [(i as f64, v as f64), (i as f64 + 1.0, v as f64)])
        .collect()
}

/// Up to about `n` ticks at 1, 2, 2.5 or 5 × 10^k from 0 to `max`.
fn linear_ticks(max: f64, n: f64, label: impl Fn(f64) -> String) -> Vec<(f64, String)> {
    let raw = (max / n).max(f64::MIN_POSITIVE);
    let p = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p);
    (0..)
        .map(|i| f64::from(i) * step)
        .take_while(|v| *v <= max * (1.0 + 1e-9))
        .map(|v| (v, label(v)))
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Scale {
    Linear(f64, f64),
    Log(f64, f64),
}

impl Scale {
    /// Position of `v` along the axis, 0 … 1.
    fn frac(self, v: f64) -> f64 {
        match self {
            Scale::Linear(lo, hi) => (v - lo) / (hi - lo),
            Scale::Log(lo, hi) => (v.max(lo).ln() - lo.ln()) / (hi.ln() - lo.ln()),
        }
    }
}

/// A plot area: its pixel rectangle and the scales of its axes.
struct Frame {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    x: Scale,
    y: Scale,
}

impl Frame {
    fn px(&self, (x, y): (f64, f64)) -> (f64, f64) {
        (
            self.left + self.width * self.x.frac(x),
            self.top + self.height * (1.0 - self.y.frac(y)),
        )
    }

    fn right(&self) -> f64 {
        self.left + self.width
    }

    fn bottom(&self) -> f64 {
        self.top + self.height
    }
}

/// One axis: its title, labelled ticks (value, label) and unlabelled grid lines.
struct Axis {
    desc: &'static str,
    ticks: Vec<(f64, String)>,
    minor: Vec<f64>,
}

/// An SVG document being written.
struct Svg(String);

impl Svg {
    fn new(title: &str) -> Self {
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="13">"#
        );
        let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let mut svg = Svg(s);
        svg.text((W / 2.0, 28.0), "middle", 19, "black", title);
        svg
    }

    fn finish(mut self) -> String {
        self.0.push_str("</svg>\n");
        self.0
    }

    fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), stroke: &str) {
        let _ = writeln!(
            self.0,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{stroke}"/>"#
        );
    }

    fn text(&mut self, (x, y): (f64, f64), anchor: &str, size: u32, fill: &str, s: &str) {
        let _ = writeln!(
            self.0,
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" font-size="{size}" fill="{fill}">{}</text>"#,
            esc(s)
        );
    }

    /// Grid, tick labels, axis titles and the frame's border.
    fn axes(&mut self, f: &Frame, x: &Axis, y: &Axis) {
        for &v in &y.minor {
            let (_, py) = f.px((0.0, v));
            self.line((f.left, py), (f.right(), py), "#f0f0f0");
        }
        for (v, label) in &x.ticks {
            let (px, _) = f.px((*v, 0.0));
            self.line((px, f.top), (px, f.bottom()), "#d8d8d8");
            self.text((px, f.bottom() + 18.0), "middle", 13, "black", label);
        }
        for (v, label) in &y.ticks {
            let (_, py) = f.px((0.0, *v));
            self.line((f.left, py), (f.right(), py), "#d8d8d8");
            self.text((f.left - 7.0, py + 4.5), "end", 13, "black", label);
        }
        let _ = writeln!(
            self.0,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
            f.left, f.top, f.width, f.height
        );
        let mid_x = f.left + f.width / 2.0;
        self.text((mid_x, f.bottom() + 42.0), "middle", 15, "black", x.desc);
        let (ax, ay) = (f.left - 72.0, f.top + f.height / 2.0);
        let _ = writeln!(
            self.0,
            r#"<text x="{ax:.1}" y="{ay:.1}" text-anchor="middle" font-size="15" transform="rotate(-90 {ax:.1} {ay:.1})">{}</text>"#,
            esc(y.desc)
        );
    }

    /// A line through `pts` (data coordinates).
    fn series(&mut self, f: &Frame, pts: &[(f64, f64)], pen: Pen) {
        let mut points = String::new();
        for &p in pts {
            let (x, y) = f.px(p);
            let _ = write!(points, "{x:.1},{y:.1} ");
        }
        self.polyline(points.trim_end(), pen);
    }

    fn polyline(&mut self, points: &str, pen: Pen) {
        let dash = if pen.dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{}""#, pen.dash)
        };
        let _ = writeln!(
            self.0,
            r#"<polyline fill="none" stroke="{}" stroke-width="{}" stroke-linejoin="round"{dash} points="{points}"/>"#,
            pen.color, pen.width
        );
    }

    /// A boxed legend in the lower right corner of `f`: a sample of each pen and its label.
    /// Percentile curves rise to the right, so the space below them there is free.
    fn legend_box(&mut self, f: &Frame, entries: &[(String, Pen)]) {
        if entries.is_empty() {
            return;
        }
        let chars = entries.iter().map(|(l, _)| l.chars().count()).max();
        let w = 64.0 + TEXT_EM * 14.0 * chars.unwrap_or(0) as f64;
        let h = 12.0 + 21.0 * entries.len() as f64;
        let x = f.right() - 12.0 - w;
        let y = f.bottom() - 12.0 - h;
        let _ = writeln!(
            self.0,
            r##"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="white" fill-opacity="0.85" stroke="#888"/>"##
        );
        for (i, (label, pen)) in entries.iter().enumerate() {
            let ly = y + 17.0 + 21.0 * i as f64;
            self.polyline(
                &format!("{:.1},{ly:.1} {:.1},{ly:.1}", x + 12.0, x + 44.0),
                *pen,
            );
            self.text((x + 54.0, ly + 5.0), "start", 14, "black", label);
        }
    }

    /// A legend as one row of entries starting at (x, y), outside any frame: the throughput
    /// series can be anywhere in their panel, so no corner inside it is reliably free.
    fn legend_row(&mut self, (mut x, y): (f64, f64), entries: &[(String, Pen)]) {
        for (label, pen) in entries {
            self.polyline(&format!("{x:.1},{y:.1} {:.1},{y:.1}", x + 30.0), *pen);
            self.text((x + 38.0, y + 5.0), "start", 14, "black", label);
            x += 38.0 + TEXT_EM * 14.0 * label.chars().count() as f64 + 30.0;
        }
    }

    /// One panel of the throughput plot at (top, height): step lines per second, the target as
    /// a dashed horizontal line, the end of the warmup and of the schedule as dashed vertical
    /// lines.
    fn rate_panel(
        &mut self,
        (top, height): (f64, f64),
        t: &Throughput,
        seconds: f64,
        series: &[Rates<'_>],
        target: Option<&Mark>,
    ) {
        let max = series
            .iter()
            .flat_map(|(_, s, _)| s.iter())
            .map(|&v| v as f64)
            .chain(target.map(|m| m.value))
            .fold(1.0f64, f64::max);
        let f = Frame {
            left: 95.0,
            top,
            width: W - 95.0 - 35.0,
            height,
            x: Scale::Linear(0.0, seconds),
            y: Scale::Linear(0.0, max * 1.2),
        };
        let x_axis = Axis {
            desc: "seconds since the first scheduled message",
            ticks: linear_ticks(seconds, 14.0, trim),
            minor: Vec::new(),
        };
        let y_axis = Axis {
            desc: "messages / s",
            ticks: linear_ticks(max * 1.2, height / 30.0, fmt_num),
            minor: Vec::new(),
        };
        self.axes(&f, &x_axis, &y_axis);
        for (x, label) in [
            (t.measure_start_s, "warmup ends"),
            (t.schedule_end_s, "schedule ends"),
        ] {
            if x > 0.0 && x < seconds {
                self.series(&f, &[(x, 0.0), (x, max * 1.2)], MARK);
                // Right of the line, or left of it when the label would leave the frame.
                let (px, _) = f.px((x, 0.0));
                let width = TEXT_EM * 13.0 * label.len() as f64;
                let (lx, anchor) = if px + 4.0 + width > f.right() {
                    (px - 4.0, "end")
                } else {
                    (px + 4.0, "start")
                };
                self.text((lx, f.top + 14.0), anchor, 13, MARK.color, label);
            }
        }
        let mut legend = Vec::new();
        if let Some(m) = target {
            self.series(&f, &[(0.0, m.value), (seconds, m.value)], MARK);
            legend.push((m.label.clone(), MARK));
        }
        for (name, s, pen) in series {
            self.series(&f, &steps(s), *pen);
            legend.push((name.to_string(), *pen));
        }
        self.legend_row((f.left, f.top - 13.0), &legend);
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Milliseconds with their unit: 0.1 ms, 20 ms, 1 s.
fn fmt_ms(v: f64) -> String {
    if v >= 1e3 {
        format!("{} s", trim(v / 1e3))
    } else {
        format!("{} ms", trim(v))
    }
}

/// 1.5M, 250k, 20, 0.5, 0.01.
fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

/// Up to three decimals, no trailing zeros.
fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// 250000 → "250,000".
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn latency_plot_draws_each_non_empty_series_with_a_legend_and_the_marks() {
        let mut produce = new_histogram();
        let mut e2e = new_histogram();
        for v in 1..=10_000u64 {
            produce.record(500 + v).unwrap();
            e2e.record(400 + v).unwrap();
        }
        let svg = latency_svg(
            &[
                ("produce", &produce),
                ("end-to-end", &e2e),
                ("empty", &new_histogram()),
            ],
            &[Mark {
                label: "bound 500 ms".into(),
                value: 500.0,
            }],
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for text in [
            "produce",
            "end-to-end",
            "bound 500 ms",
            "99.9%",
            "0.1 ms",
            "1 s",
        ] {
            assert!(svg.contains(&format!(">{text}<")), "{text} missing");
        }
        assert!(!svg.contains("empty"));
        // Two curves, one mark, and a legend sample of each.
        assert_eq!(svg.matches("<polyline").count(), 6);
        assert_eq!(svg.matches(r#"stroke-dasharray="10 6""#).count(), 2);
    }

    #[test]
    fn throughput_plot_shows_the_target_and_splits_off_the_catch_up() {
        let t = Throughput {
            produce_per_sec: vec![250_000, 250_000, 10],
            consume_per_sec: vec![249_000, 251_000, 10],
            catchup_per_sec: vec![0, 0, 3_000_000],
            target_per_sec: 250_000,
            measure_start_s: 1.0,
            schedule_end_s: 2.0,
        };
        let svg = throughput_svg(&t);
        for text in [
            "target 250,000 msg/s",
            "produce (acknowledged)",
            "consume (live)",
            "consume (catch-up, full speed)",
            "warmup ends",
            "schedule ends",
        ] {
            assert!(svg.contains(&format!(">{text}<")), "{text} missing");
        }
        assert_eq!(svg.matches("messages / s").count(), 2, "two panels");
        // Produce only: one panel, no catch-up series.
        let svg = throughput_svg(&Throughput {
            consume_per_sec: vec![],
            catchup_per_sec: vec![],
            ..t
        });
        assert!(svg.contains("produce (acknowledged)") && !svg.contains("catch-up"));
        assert_eq!(svg.matches("messages / s").count(), 1);
    }

    #[test]
    fn curve_stops_at_the_slowest_sample() {
        let mut h = new_histogram();
        for v in 1..=1_000u64 {
            h.record(v * 1_000).unwrap();
        }
        let c = percentile_curve(&h);
        assert_eq!(c.first().unwrap().0, 0.0);
        assert!((c.last().unwrap().0 - 3.0).abs() < 1e-9);
        assert!(c.windows(2).all(|w| w[0].1 <= w[1].1));
        assert!(c.last().unwrap().1 >= 999.0);
    }

    #[test]
    fn scales_and_ticks() {
        assert_eq!(log_range([0.3, 92.0].into_iter()), (0.1, 100.0));
        assert_eq!(log_range([1.0, 1.0].into_iter()), (1.0, 10.0));
        assert_eq!(log_range(std::iter::empty()), (0.1, 10.0));
        let a = log_axis("", 0.1, 100.0);
        let labels: Vec<&str> = a.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0.1 ms", "1 ms", "10 ms", "100 ms"]);
        assert_eq!(a.minor.len(), 24);
        assert!((Scale::Log(0.1, 100.0).frac(10.0) - 2.0 / 3.0).abs() < 1e-9);
        let t = linear_ticks(300_000.0, 6.0, fmt_num);
        let labels: Vec<&str> = t.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0", "50k", "100k", "150k", "200k", "250k", "300k"]);
        assert_eq!(linear_ticks(13.0, 14.0, trim).len(), 14);
    }

    #[test]
    fn labels() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(4.0), "99.99%");
        assert_eq!(fmt_num(250_000.0), "250k");
        assert_eq!(fmt_num(1_500_000.0), "1.5M");
        assert_eq!(fmt_num(0.5), "0.5");
        assert_eq!(fmt_ms(0.1), "0.1 ms");
        assert_eq!(fmt_ms(2_000.0), "2 s");
        assert_eq!(thousands(250_000), "250,000");
        assert_eq!(thousands(5_000_000), "5,000,000");
    }
}
