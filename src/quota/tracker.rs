//! The broker's quota meters, shared by every shard.

use std::collections::HashMap;
use std::sync::Mutex;

use super::MeterKey;
use super::rate::{Rate, SAMPLES, WINDOW_MS};
use super::token_bucket::TokenBucket;

/// Meters by quota key, behind one mutex: only requests of clients that have a quota reach it
/// (see the module docs of [`crate::quota`]), so its contention is bounded by their request rate.
#[derive(Debug, Default)]
pub struct QuotaTracker {
    meters: Mutex<HashMap<MeterKey, Rate>>,
    /// `controller_mutation_rate` buckets.
    buckets: Mutex<HashMap<MeterKey, TokenBucket>>,
}

/// The longest throttle one request gets: the whole measuring window.
pub const MAX_THROTTLE_MS: u64 = SAMPLES as u64 * WINDOW_MS;

impl QuotaTracker {
    /// Counts `bytes` on `meter` and returns how long to throttle the request (0 = not at all):
    /// Kafka's `(rate - quota) / quota * span`, at most [`MAX_THROTTLE_MS`].
    pub fn record(&self, meter: MeterKey, quota: f64, bytes: u64, now_ms: u64) -> u64 {
        self.record_value(meter, quota, bytes as f64, now_ms, MAX_THROTTLE_MS)
    }

    /// Counts `value` on `meter` and returns the throttle time, at most `max_throttle_ms` (Kafka
    /// bounds a request-time throttle by one window, see [`crate::quota`]).
    pub fn record_value(
        &self,
        meter: MeterKey,
        quota: f64,
        value: f64,
        now_ms: u64,
        max_throttle_ms: u64,
    ) -> u64 {
        let mut meters = self.meters.lock().unwrap_or_else(|p| p.into_inner());
        let rate = meters.entry(meter).or_default();
        rate.record(value, now_ms);
        let (observed, span) = rate.measure(now_ms);
        throttle_ms(observed, quota, span).min(max_throttle_ms)
    }

    /// The throttle time of a mutation meter now: > 0 while its bucket is below zero.
    pub fn mutation_throttle_ms(&self, meter: &MeterKey, quota: f64, now_ms: u64) -> u64 {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        match buckets.get_mut(meter) {
            Some(b) => b.throttle_ms(quota, now_ms),
            None => 0,
        }
    }

    /// Takes `permits` (partitions) from a mutation meter; returns its throttle time after that.
    pub fn record_mutation(&self, meter: MeterKey, quota: f64, permits: f64, now_ms: u64) -> u64 {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(meter).or_default();
        b.record(quota, permits, now_ms);
        b.throttle_ms(quota, now_ms)
    }

    /// Forgets the meters (quotas changed: usage under the old entities no longer applies).
    pub fn clear(&self) {
        self.meters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

fn throttle_ms(observed: f64, quota: f64, span_ms: u64) -> u64 {
    if observed <= quota || quota <= 0.0 {
        return 0;
    }
    (((observed - quota) / quota) * span_ms as f64)
        .round()
        .min(MAX_THROTTLE_MS as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MeterKey {
        MeterKey {
            key: super::super::PRODUCER_BYTE_RATE,
            user: String::new(),
            client_id: "c".into(),
        }
    }

    #[test]
    fn throttles_what_exceeds_the_quota() {
        let t = QuotaTracker::default();
        // 50 KB in a fresh 10 s span = 5 KB/s: under a 10 KB/s quota.
        assert_eq!(t.record(key(), 10_000.0, 50_000, 0), 0);
        // 200 KB → 20 KB/s: twice the quota → throttle (20-10)/10 * 10 s = 10 s.
        assert_eq!(t.record(key(), 10_000.0, 150_000, 0), 10_000);
        assert_eq!(throttle_ms(1e12, 1.0, 10_000), MAX_THROTTLE_MS);
    }

    #[test]
    fn request_time_throttle_is_bounded_by_one_window() {
        let t = QuotaTracker::default();
        let k = MeterKey {
            key: super::super::REQUEST_PERCENTAGE,
            user: String::new(),
            client_id: "c".into(),
        };
        // 1 s of polling in a fresh 10 s span = 10 % of a core: over a 1 % quota by 9x, so
        // Kafka's formula gives 90 s; a request quota throttles at most one window.
        assert_eq!(t.record_value(k.clone(), 1.0, 100.0, 0, 1000), 1000);
        // Under a 50 % quota: no throttle.
        assert_eq!(t.record_value(k, 50.0, 0.0, 0, 1000), 0);
    }
}
