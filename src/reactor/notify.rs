//! Two small shard-local wake-up primitives; no atomics, `!Send`.
//!
//! [`Notify`] is an auto-resetting flag with one waiter (a forwarder task
//! waiting for work); [`Latch`] is set once and wakes every waiter (the
//! shard's shutdown). Both wake, never poll. [`with_timeout`] bounds any
//! wait by a glommio timer.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Runs `f` for at most `limit`: `Some(output)`, or `None` once the time is
/// up (`f` is then dropped).
pub async fn with_timeout<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(f.await) }, async {
        glommio::timer::sleep(limit).await;
        None
    })
    .await
}

/// Auto-resetting notification for a single waiting task.
#[derive(Debug, Default)]
pub struct Notify {
    fired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Notify {
    /// Marks the notification and wakes the waiter, if any.
    pub fn fire(&self) {
        self.fired.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Waits until [`Notify::fire`] has been called since the last wait.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.fired.replace(false) {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

/// A flag set once, waking every task waiting on it.
#[derive(Debug, Default)]
pub struct Latch {
    set: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
}

impl Latch {
    /// Sets the latch; later calls do nothing.
    pub fn set(&self) {
        if !self.set.replace(true) {
            for waker in self.wakers.borrow_mut().drain(..) {
                waker.wake();
            }
        }
    }

    /// True once set.
    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Waits until the latch is set.
    pub async fn wait(&self) {
        poll_fn(|cx| self.poll_wait(cx)).await
    }

    /// Ready once set; otherwise registers the task to be woken.
    pub fn poll_wait(&self, cx: &Context<'_>) -> Poll<()> {
        if self.set.get() {
            return Poll::Ready(());
        }
        let mut wakers = self.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
