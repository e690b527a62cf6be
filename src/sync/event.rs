//! [`LocalEvent`]: a shard-local latch, set once and awaited by many.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A one-shot, shard-local event (used for "shutting down", request ordering): set once, awaited
/// by many. A waiting future deregisters itself when dropped, so futures that race it and lose
/// (every connection's read loop, every long poll) leave nothing behind.
#[derive(Default)]
pub struct LocalEvent {
    set: Cell<bool>,
    waiters: RefCell<HashMap<u64, Waker>>,
    next: Cell<u64>,
}

impl LocalEvent {
    pub fn set(&self) {
        if self.set.replace(true) {
            return;
        }
        let waiters: Vec<Waker> = self.waiters.borrow_mut().drain().map(|(_, w)| w).collect();
        for w in waiters {
            w.wake();
        }
    }

    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Resolves once the event is set.
    pub fn wait(&self) -> EventWait<'_> {
        EventWait {
            event: self,
            key: None,
        }
    }

    /// Waiters currently registered (for tests).
    pub fn waiter_count(&self) -> usize {
        self.waiters.borrow().len()
    }
}

/// Future returned by [`LocalEvent::wait`].
pub struct EventWait<'a> {
    event: &'a LocalEvent,
    key: Option<u64>,
}

impl Future for EventWait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.event.set.get() {
            if let Some(k) = self.key.take() {
                self.event.waiters.borrow_mut().remove(&k);
            }
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(k) => k,
            None => {
                let k = self.event.next.get();
                self.event.next.set(k + 1);
                self.key = Some(k);
                k
            }
        };
        self.event
            .waiters
            .borrow_mut()
            .insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for EventWait<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            self.event.waiters.borrow_mut().remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_event_waiters_deregister_when_dropped() {
        let ev = LocalEvent::default();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        for _ in 0..1000 {
            let mut w = Box::pin(ev.wait());
            assert!(w.as_mut().poll(&mut cx).is_pending());
            assert!(w.as_mut().poll(&mut cx).is_pending()); // re-poll reuses its slot
        }
        assert_eq!(ev.waiter_count(), 0);
        let mut w = Box::pin(ev.wait());
        assert!(w.as_mut().poll(&mut cx).is_pending());
        ev.set();
        assert!(w.as_mut().poll(&mut cx).is_ready());
        assert!(Box::pin(ev.wait()).as_mut().poll(&mut cx).is_ready());
        assert_eq!(ev.waiter_count(), 0);
    }
}
