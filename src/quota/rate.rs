//! A sampled rate, as Kafka's `Rate` over `SampledStat` measures quota usage.
//!
//! The rate is the sum of the live samples over the time they span, where the span counts at
//! least `samples - 1` full windows: a meter that just started does not read a burst as an
//! enormous rate (one 100 KB request at t=0 reads as 100 KB / 10 s, not / 1 ms). Samples older
//! than `samples * window` are dropped. Kafka's defaults: 11 samples of one second
//! (`quota.window.num`, `quota.window.size.seconds`).

/// Kafka's `quota.window.num`.
pub const SAMPLES: usize = 11;
/// Kafka's `quota.window.size.seconds`, in ms.
pub const WINDOW_MS: u64 = 1000;

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    start_ms: u64,
    value: f64,
}

/// Bytes per second over the last [`SAMPLES`] windows of [`WINDOW_MS`].
#[derive(Debug, Clone, Default)]
pub struct Rate {
    samples: Vec<Sample>,
    /// Index of the current sample in `samples`.
    current: usize,
}

impl Rate {
    /// Adds `value` at `now_ms`.
    pub fn record(&mut self, value: f64, now_ms: u64) {
        match self.samples.get(self.current) {
            Some(s) if now_ms < s.start_ms + WINDOW_MS => {}
            Some(_) if self.samples.len() < SAMPLES => {
                self.samples.push(Sample {
                    start_ms: now_ms,
                    value: 0.0,
                });
                self.current = self.samples.len() - 1;
            }
            Some(_) => {
                self.current = (self.current + 1) % SAMPLES;
                self.samples[self.current] = Sample {
                    start_ms: now_ms,
                    value: 0.0,
                };
            }
            None => {
                self.samples.push(Sample {
                    start_ms: now_ms,
                    value: 0.0,
                });
                self.current = 0;
            }
        }
        self.samples[self.current].value += value;
    }

    /// Removes a value recorded in the current sample (a request that was not served).
    pub fn unrecord(&mut self, value: f64) {
        if let Some(s) = self.samples.get_mut(self.current) {
            s.value = (s.value - value).max(0.0);
        }
    }

    /// (rate per second, the span in ms it was measured over) at `now_ms`.
    pub fn measure(&mut self, now_ms: u64) -> (f64, u64) {
        let horizon = SAMPLES as u64 * WINDOW_MS;
        for s in &mut self.samples {
            if now_ms.saturating_sub(s.start_ms) >= horizon {
                *s = Sample {
                    start_ms: now_ms,
                    value: 0.0,
                };
            }
        }
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        let oldest = self
            .samples
            .iter()
            .map(|s| s.start_ms)
            .min()
            .unwrap_or(now_ms);
        let mut span = now_ms.saturating_sub(oldest);
        let full = span / WINDOW_MS;
        let min_full = SAMPLES as u64 - 1;
        if full < min_full {
            span += (min_full - full) * WINDOW_MS;
        }
        (total * 1000.0 / span as f64, span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_spread_over_the_minimum_span() {
        let mut r = Rate::default();
        r.record(100_000.0, 0);
        let (rate, span) = r.measure(0);
        assert_eq!(span, 10_000);
        assert!((rate - 10_000.0).abs() < 1e-6);
    }

    #[test]
    fn steady_rate_is_measured_and_old_samples_expire() {
        let mut r = Rate::default();
        for t in 0..30u64 {
            r.record(1000.0, t * 1000);
        }
        let (rate, _) = r.measure(29_999);
        assert!((900.0..=1100.0).contains(&rate), "{rate}");
        let (rate, _) = r.measure(29_999 + 12_000);
        assert_eq!(rate, 0.0);
        r.record(5.0, 50_000);
        r.unrecord(5.0);
        assert_eq!(r.measure(50_000).0, 0.0);
    }
}
