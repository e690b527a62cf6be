//! The time a request's task spends being polled: Ringbolt's measure of the request time that
//! `request_percentage` quotas limit (see [`crate::quota`] for why poll time stands in for
//! Kafka's request-handler thread time).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Kafka's `ClientRequestQuotaManager.NanosToPercentagePerSecond`: a request that takes `n` ns
/// records `n * 100 / 1e9`, so a rate of 100 is one thread (here: one core) busy all the time.
pub fn nanos_to_percentage(nanos: u128) -> f64 {
    nanos as f64 * 100.0 / 1e9
}

/// Wraps a future and sums the wall time spent inside its `poll` calls. The future is boxed (one
/// allocation per request, paid only by clients with a request quota) so the wrapper needs no
/// pin projection.
pub struct PollTimed<F> {
    inner: Pin<Box<F>>,
    busy: Duration,
}

impl<F: Future> PollTimed<F> {
    pub fn new(inner: F) -> Self {
        PollTimed {
            inner: Box::pin(inner),
            busy: Duration::ZERO,
        }
    }
}

impl<F: Future> Future for PollTimed<F> {
    /// The inner output and the time spent polling it.
    type Output = (F::Output, Duration);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let start = Instant::now();
        let res = self.inner.as_mut().poll(cx);
        self.busy += start.elapsed();
        let busy = self.busy;
        res.map(|out| (out, busy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_poll_time_not_waits() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let (v, busy) = PollTimed::new(async {
                    // Busy for ~20 ms, then parked for 100 ms (not counted).
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_millis(20) {
                        std::hint::spin_loop();
                    }
                    glommio::timer::sleep(Duration::from_millis(100)).await;
                    7
                })
                .await;
                assert_eq!(v, 7);
                assert!(busy >= Duration::from_millis(20), "{busy:?}");
                assert!(busy < Duration::from_millis(90), "{busy:?}");
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(nanos_to_percentage(10_000_000), 1.0);
    }
}
