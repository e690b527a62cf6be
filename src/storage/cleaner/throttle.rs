//! The cleaner's I/O budget (`log.cleaner.io.max.bytes.per.second`, Kafka's `Throttler`): every
//! byte read or written is charged; once the charge runs ahead of the rate by more than a short
//! burst, the cleaner sleeps (a glommio timer: the shard keeps serving requests meanwhile).

use std::time::{Duration, Instant};

/// How far ahead of the rate the cleaner may run before it sleeps.
const BURST: Duration = Duration::from_millis(20);

/// A byte-rate limiter for one shard's cleaner.
pub struct Throttle {
    bytes_per_sec: f64,
    /// When the bytes charged so far would be done at the rate.
    due: Instant,
}

impl Throttle {
    /// Unlimited when `bytes_per_sec` is not finite and positive (Kafka's `Double.MAX_VALUE`
    /// default counts as unlimited too).
    pub fn new(bytes_per_sec: f64) -> Self {
        Throttle {
            bytes_per_sec,
            due: Instant::now(),
        }
    }

    fn unlimited(&self) -> bool {
        !(self.bytes_per_sec.is_finite() && self.bytes_per_sec > 0.0 && self.bytes_per_sec < 1e15)
    }

    /// Charges `bytes`; sleeps while the charge is more than a short burst (20 ms) ahead of the
    /// rate.
    pub async fn charge(&mut self, bytes: u64) {
        if self.unlimited() {
            return;
        }
        let now = Instant::now();
        if self.due < now {
            self.due = now;
        }
        self.due += Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec);
        let ahead = self.due - now;
        if ahead > BURST {
            glommio::timer::sleep(ahead).await;
        }
    }
}
