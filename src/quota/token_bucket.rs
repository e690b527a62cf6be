//! A token bucket, as Kafka's `TokenBucket` stat meters `controller_mutation_rate` (KIP-599).
//!
//! The bucket holds at most `burst = quota * samples * window` tokens (with Kafka's defaults 11 s
//! worth of the quota) and refills at `quota` tokens per second; a mutation takes one token per
//! partition created or deleted and may take it below zero. While the bucket is below zero the
//! quota is exceeded, and it takes `-tokens / quota` seconds to climb back: that is the throttle
//! time. A new bucket starts full (Kafka's starts empty at time 0 and refills to the burst at the
//! first use).

use super::rate::{SAMPLES, WINDOW_MS};

#[derive(Debug, Clone, Default)]
pub struct TokenBucket {
    tokens: f64,
    last_ms: Option<u64>,
}

impl TokenBucket {
    fn burst(quota: f64) -> f64 {
        quota * SAMPLES as f64 * (WINDOW_MS as f64 / 1000.0)
    }

    fn refill(&mut self, quota: f64, now_ms: u64) {
        let burst = Self::burst(quota);
        self.tokens = match self.last_ms {
            None => burst,
            Some(last) => {
                (self.tokens + quota * now_ms.saturating_sub(last) as f64 / 1000.0).min(burst)
            }
        };
        self.last_ms = Some(self.last_ms.map_or(now_ms, |l| l.max(now_ms)));
    }

    /// How long until the bucket is back at zero, in ms (0 while it is not below zero).
    pub fn throttle_ms(&mut self, quota: f64, now_ms: u64) -> u64 {
        self.refill(quota, now_ms);
        if self.tokens >= 0.0 || quota <= 0.0 {
            0
        } else {
            (-self.tokens / quota * 1000.0).round() as u64
        }
    }

    /// Takes `permits` tokens.
    pub fn record(&mut self, quota: f64, permits: f64, now_ms: u64) {
        self.refill(quota, now_ms);
        self.tokens = (self.tokens - permits).min(Self::burst(quota));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_throttles_until_refilled() {
        let mut b = TokenBucket::default();
        // 2 partitions/s: a burst of 22, then below zero.
        assert_eq!(b.throttle_ms(2.0, 1000), 0);
        b.record(2.0, 20.0, 1000);
        assert_eq!(b.throttle_ms(2.0, 1000), 0);
        b.record(2.0, 10.0, 1000);
        // 22 - 30 = -8 tokens at 2/s: 4 s to zero.
        assert_eq!(b.throttle_ms(2.0, 1000), 4000);
        assert_eq!(b.throttle_ms(2.0, 3000), 2000);
        assert_eq!(b.throttle_ms(2.0, 5000), 0);
        // Refills up to the burst only.
        assert_eq!(b.throttle_ms(2.0, 1_000_000), 0);
        b.record(2.0, 23.0, 1_000_000);
        assert_eq!(b.throttle_ms(2.0, 1_000_000), 500);
    }
}
