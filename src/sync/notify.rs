//! [`Notify`]: a tiny single-threaded notifier: a generation counter plus the wakers of futures
//! waiting for it to change. Waiters re-check their own condition after each wake-up. A dropped
//! waiter removes its waker, so a partition that sees thousands of abandoned long-polls holds
//! nothing for them.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A generation counter and the wakers waiting for it to move; see the module docs.
#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    next_key: Cell<u64>,
    wakers: RefCell<BTreeMap<u64, Waker>>,
}

impl Notify {
    pub(crate) fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    /// Wakes every current waiter.
    pub(crate) fn notify(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for (_, w) in wakers {
            w.wake();
        }
    }

    /// A future that resolves at the next [`Notify::notify`] after this call.
    pub(crate) fn wait(self: &Rc<Self>) -> Wait {
        Wait {
            notify: self.clone(),
            start: self.generation.get(),
            key: None,
        }
    }
}

/// Future returned by [`Notify::wait`].
pub(crate) struct Wait {
    notify: Rc<Notify>,
    start: u64,
    key: Option<u64>,
}

impl Future for Wait {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.start {
            if let Some(k) = self.key.take() {
                self.notify.wakers.borrow_mut().remove(&k);
            }
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(k) => k,
            None => {
                let k = self.notify.next_key.get();
                self.notify.next_key.set(k + 1);
                self.key = Some(k);
                k
            }
        };
        self.notify
            .wakers
            .borrow_mut()
            .insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.notify.wakers.borrow_mut().remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_next_notify_and_deregisters_when_dropped() {
        let n = Notify::new();
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..1000 {
            let mut w = Box::pin(n.wait());
            assert!(w.as_mut().poll(&mut cx).is_pending());
            assert!(w.as_mut().poll(&mut cx).is_pending()); // re-poll reuses its slot
        }
        assert!(n.wakers.borrow().is_empty());
        let mut before = Box::pin(n.wait());
        assert!(before.as_mut().poll(&mut cx).is_pending());
        n.notify();
        assert!(before.as_mut().poll(&mut cx).is_ready());
        // A wait created after the notify waits for the next one.
        let mut after = Box::pin(n.wait());
        assert!(after.as_mut().poll(&mut cx).is_pending());
        drop(after);
        assert!(n.wakers.borrow().is_empty());
    }
}
