//! Clock, histograms and the counters shared by the worker threads.
//!
//! Every worker records into its own `Histogram` (no sharing on the per-message path) and folds it
//! into the shared one a few times per second ([`LocalHist`]), so the progress line can show a p99
//! "so far" while the hot loop touches only thread-local memory. Per-second throughput buckets are
//! atomics bumped once per request/response, not per message.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

/// Highest latency tracked: one hour, in µs (larger values are clamped).
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A new latency histogram: 1 µs .. 1 h, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Monotonic nanoseconds on the Unix-epoch scale: stamps written into records are comparable
/// across threads of this process (and roughly across processes on one host).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base: Instant,
    base_unix_ns: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        let base = Instant::now();
        let base_unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Clock { base, base_unix_ns }
    }

    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.base_unix_ns + self.base.elapsed().as_nanos() as u64
    }

    /// The `Instant` at clock time `ns` (for sleeping until a deadline).
    pub fn instant_at(&self, ns: u64) -> Instant {
        self.base + Duration::from_nanos(ns.saturating_sub(self.base_unix_ns))
    }
}

/// Latency in µs between two clock readings (at least 1 so it fits the histogram).
#[inline]
pub fn latency_us(from_ns: u64, to_ns: u64) -> u64 {
    (to_ns.saturating_sub(from_ns) / 1_000).clamp(1, MAX_LATENCY_US)
}

/// A thread-local histogram that is folded into a shared one periodically.
pub struct LocalHist<'a> {
    pub hist: Histogram<u64>,
    shared: &'a Mutex<Histogram<u64>>,
    last_merge: Instant,
}

impl<'a> LocalHist<'a> {
    pub fn new(shared: &'a Mutex<Histogram<u64>>) -> Self {
        LocalHist {
            hist: new_histogram(),
            shared,
            last_merge: Instant::now(),
        }
    }

    #[inline]
    pub fn record(&mut self, us: u64) {
        self.hist.saturating_record(us);
    }

    /// Merges into the shared histogram if 200 ms have passed (or `force`).
    pub fn maybe_merge(&mut self, force: bool) {
        if force || self.last_merge.elapsed() >= Duration::from_millis(200) {
            if !self.hist.is_empty() {
                let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
                let _ = s.add(&self.hist);
                self.hist.reset();
            }
            self.last_merge = Instant::now();
        }
    }
}

impl Drop for LocalHist<'_> {
    fn drop(&mut self) {
        self.maybe_merge(true);
    }
}

/// Per-second counters over the run (index = second since the run's start).
pub struct Timeline {
    start_ns: u64,
    buckets: Vec<AtomicU64>,
}

impl Timeline {
    pub fn new(start_ns: u64, seconds: usize) -> Self {
        Timeline {
            start_ns,
            buckets: (0..seconds).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn add(&self, at_ns: u64, n: u64) {
        let i = (at_ns.saturating_sub(self.start_ns) / 1_000_000_000) as usize;
        let i = i.min(self.buckets.len() - 1);
        self.buckets[i].fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self, second: usize) -> u64 {
        self.buckets
            .get(second)
            .map_or(0, |b| b.load(Ordering::Relaxed))
    }

    /// Counts per second up to (excluding) `seconds`.
    pub fn series(&self, seconds: usize) -> Vec<u64> {
        (0..seconds.min(self.buckets.len()))
            .map(|s| self.get(s))
            .collect()
    }
}

/// State shared by all worker threads of one run.
pub struct Live {
    pub clock: Clock,
    /// Scheduled time of the first message.
    pub t0_ns: u64,
    /// Messages scheduled before this are warmup (not counted in rates and latencies).
    pub measure_start_ns: u64,
    /// No message is scheduled at or after this.
    pub produce_end_ns: u64,
    pub produce_hist: Mutex<Histogram<u64>>,
    pub e2e_hist: Mutex<Histogram<u64>>,
    /// Acknowledged messages per second of acknowledgement.
    pub produced: Timeline,
    /// Consumed messages per second by the live consumers.
    pub consumed: Timeline,
    /// Consumed messages per second by the catch-up consumers.
    pub caught_up: Timeline,
    /// Acknowledged messages scheduled after the warmup.
    pub measured_acked: AtomicU64,
    /// Earliest / latest acknowledgement time of a measured message.
    pub first_ack_ns: AtomicU64,
    pub last_ack_ns: AtomicU64,
    /// All acknowledged messages (including warmup).
    pub acked_total: AtomicU64,
    pub consumed_total: AtomicU64,
    /// Messages whose produce failed + consumer-side errors.
    pub errors: AtomicU64,
}

impl Live {
    pub fn new(clock: Clock, t0_ns: u64, warmup_s: f64, duration_s: f64) -> Self {
        let measure_start_ns = t0_ns + (warmup_s * 1e9) as u64;
        let produce_end_ns = measure_start_ns + (duration_s * 1e9) as u64;
        // Room for the run plus a long drain and catch-up.
        let seconds = (warmup_s + duration_s) as usize + 3_600;
        Live {
            clock,
            t0_ns,
            measure_start_ns,
            produce_end_ns,
            produce_hist: Mutex::new(new_histogram()),
            e2e_hist: Mutex::new(new_histogram()),
            produced: Timeline::new(t0_ns, seconds),
            consumed: Timeline::new(t0_ns, seconds),
            caught_up: Timeline::new(t0_ns, seconds),
            measured_acked: AtomicU64::new(0),
            first_ack_ns: AtomicU64::new(u64::MAX),
            last_ack_ns: AtomicU64::new(0),
            acked_total: AtomicU64::new(0),
            consumed_total: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    pub fn add_errors(&self, n: u64) {
        self.errors.fetch_add(n, Ordering::Relaxed);
    }

    pub fn p99_us(h: &Mutex<Histogram<u64>>) -> Option<u64> {
        let h = h.lock().unwrap_or_else(|e| e.into_inner());
        (!h.is_empty()).then(|| h.value_at_quantile(0.99))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hist_merges_into_shared() {
        let shared = Mutex::new(new_histogram());
        {
            let mut l = LocalHist::new(&shared);
            for v in 1..=100 {
                l.record(v);
            }
        }
        let s = shared.lock().unwrap();
        assert_eq!(s.len(), 100);
        assert_eq!(s.max(), 100);
    }

    #[test]
    fn timeline_buckets_by_second() {
        let t = Timeline::new(1_000, 3);
        t.add(1_000, 2);
        t.add(1_000 + 1_500_000_000, 3);
        t.add(1_000 + 99_000_000_000, 4); // clamped into the last bucket
        assert_eq!(t.series(3), vec![2, 3, 4]);
    }

    #[test]
    fn latency_is_clamped() {
        assert_eq!(latency_us(10, 5), 1);
        assert_eq!(latency_us(0, 2_500_000), 2_500);
    }
}
