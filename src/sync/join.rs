//! Waiting for many futures of one task: [`join_all`] (every one, outputs in order) and
//! [`select_any`] (the first to finish).
//!
//! Both poll every future they still hold on each wake-up instead of tracking which one woke:
//! simple, and cheap at the sizes they are used with (one future per owner shard of a request, one
//! per partition of a long poll). The futures run inside the calling task rather than as spawned
//! tasks, so dropping the caller drops (cancels) them.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// Polls all futures concurrently and returns their outputs in order.
pub async fn join_all<T>(futures: Vec<Pin<Box<dyn Future<Output = T>>>>) -> Vec<T> {
    let mut futures: Vec<Option<Pin<Box<dyn Future<Output = T>>>>> =
        futures.into_iter().map(Some).collect();
    let mut out: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    let mut left = futures.len();
    std::future::poll_fn(|cx| {
        for (i, slot) in futures.iter_mut().enumerate() {
            if let Some(f) = slot
                && let Poll::Ready(v) = f.as_mut().poll(cx)
            {
                out[i] = Some(v);
                *slot = None;
                left -= 1;
            }
        }
        if left == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    out.into_iter().map(|v| v.expect("all completed")).collect()
}

/// Resolves when any future resolves.
pub async fn select_any(mut futs: Vec<Pin<Box<dyn Future<Output = ()>>>>) {
    std::future::poll_fn(|cx| {
        for f in futs.iter_mut() {
            if f.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await
}
