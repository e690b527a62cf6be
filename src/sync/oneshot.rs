//! A single-threaded one-shot channel: parked JoinGroup/SyncGroup requests and queued offset
//! commits wait on one. Everything of a group lives on its coordinator shard, so no atomics.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

struct Inner<T> {
    value: Option<T>,
    waker: Option<Waker>,
    sender_gone: bool,
}

pub struct Sender<T>(Rc<RefCell<Inner<T>>>);
pub struct Receiver<T>(Rc<RefCell<Inner<T>>>);

pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Rc::new(RefCell::new(Inner {
        value: None,
        waker: None,
        sender_gone: false,
    }));
    (Sender(inner.clone()), Receiver(inner))
}

impl<T> Sender<T> {
    pub fn send(self, value: T) {
        let mut i = self.0.borrow_mut();
        i.value = Some(value);
        if let Some(w) = i.waker.take() {
            w.wake();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut i = self.0.borrow_mut();
        i.sender_gone = true;
        if let Some(w) = i.waker.take() {
            w.wake();
        }
    }
}

/// Resolves to `None` when the sender was dropped without sending.
impl<T> Future for Receiver<T> {
    type Output = Option<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut i = self.0.borrow_mut();
        if let Some(v) = i.value.take() {
            return Poll::Ready(Some(v));
        }
        if i.sender_gone {
            return Poll::Ready(None);
        }
        i.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_value_and_reports_dropped_sender() {
        glommio::LocalExecutor::default().run(async {
            let (tx, rx) = channel();
            glommio::spawn_local(async move { tx.send(7) }).detach();
            assert_eq!(rx.await, Some(7));
            let (tx, rx) = channel::<u8>();
            drop(tx);
            assert_eq!(rx.await, None);
        });
    }
}
