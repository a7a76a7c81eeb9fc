//! The shard's run queue: upgraded connections waiting to be polled.
//!
//! An upgraded connection has no task of its own (a glommio task costs a
//! 48-byte header plus its future in one allocation, the largest part of an
//! idle connection's footprint). Its state lives in the shard's table and
//! one task per shard polls the connections that were woken: a readiness
//! event, a queued close or ping, an acknowledged subscribe. Waking a
//! connection is pushing its table key here.
//!
//! The queue is thread-local because one shard runs per thread and the
//! wake-ups come from deep inside table updates (`ConnState::wake`), where
//! the shard is not at hand. Nothing here is ever touched from another
//! thread.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, RawWaker, RawWakerVTable, Waker};

/// Keys to poll, and the shard's polling task while it waits for one.
struct RunQueue {
    keys: RefCell<Vec<u32>>,
    waiter: Cell<Option<Waker>>,
}

thread_local! {
    static RUN: RunQueue = const {
        RunQueue {
            keys: RefCell::new(Vec::new()),
            waiter: Cell::new(None),
        }
    };
}

/// Queues connection `key` for a poll (the caller deduplicates, see
/// `ConnState::wake`; a key polled twice, or a stale key that now belongs
/// to a newer connection, costs only a poll that finds nothing to do).
pub(crate) fn schedule(key: u32) {
    let waiter = RUN.with(|q| {
        let mut keys = q.keys.borrow_mut();
        keys.push(key);
        if keys.len() == 1 {
            q.waiter.take()
        } else {
            None
        }
    });
    // Woken after the borrow ends: glommio only queues the task here, but
    // no borrow should be held across someone else's code.
    if let Some(waker) = waiter {
        waker.wake();
    }
}

/// The shard's one reader of the run queue (its polling task holds it).
/// Dropping it, when the executor drops the task at exit, forgets the
/// task's waker and any queued keys, so no waker of a dropped task outlives
/// it in thread-local storage.
pub(crate) struct RunQueueReader(());

impl RunQueueReader {
    /// The reader of this thread's run queue.
    pub(crate) fn new() -> RunQueueReader {
        RunQueueReader(())
    }

    /// Waits until some key is queued, then moves all queued keys into
    /// `batch`.
    pub(crate) async fn next_batch(&self, batch: &mut Vec<u32>) {
        poll_fn(|cx| {
            RUN.with(|q| {
                let mut keys = q.keys.borrow_mut();
                if keys.is_empty() {
                    q.waiter.set(Some(cx.waker().clone()));
                    return Poll::Pending;
                }
                std::mem::swap(batch, &mut *keys);
                Poll::Ready(())
            })
        })
        .await
    }

    /// True when some key is queued already (a connection that used up its
    /// rounds queued itself again, or one was woken during the batch).
    pub(crate) fn has_queued(&self) -> bool {
        RUN.with(|q| !q.keys.borrow().is_empty())
    }
}

impl Drop for RunQueueReader {
    fn drop(&mut self) {
        let _ = RUN.try_with(|q| {
            drop(q.waiter.take());
            *q.keys.borrow_mut() = Vec::new();
        });
    }
}

/// A `Waker` that schedules connection `key`, for the few waits that take a
/// `Waker` (bus congestion). It holds only the key, allocates nothing, and
/// must be woken on the shard's own thread (the bus's waiters are).
pub(crate) fn conn_waker(key: u32) -> Waker {
    // SAFETY: the vtable's functions treat the data pointer as a plain
    // integer (never dereferenced), so any value is valid for them.
    unsafe { Waker::from_raw(raw_waker(key as usize as *const ())) }
}

fn raw_waker(data: *const ()) -> RawWaker {
    RawWaker::new(data, &CONN_WAKER)
}

static CONN_WAKER: RawWakerVTable = RawWakerVTable::new(
    raw_waker,
    |data| schedule(data as usize as u32),
    |data| schedule(data as usize as u32),
    |_| {},
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_keys_and_conn_wakers_reach_the_reader_in_order() {
        let reader = RunQueueReader::new();
        schedule(3);
        let waker = conn_waker(0);
        let clone = waker.clone();
        clone.wake();
        waker.wake_by_ref();
        let mut batch = Vec::new();
        futures_lite::future::block_on(reader.next_batch(&mut batch));
        assert_eq!(
            batch,
            vec![3, 0, 0],
            "the caller deduplicates, not the queue"
        );
        schedule(7);
        drop(reader);
        assert!(
            RUN.with(|q| q.keys.borrow().is_empty()),
            "a dropped reader leaves no key behind"
        );
    }
}
