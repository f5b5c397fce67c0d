//! Slot waiters: the forwarding tasks of one core waiting for a slot at a processor
//! (`Route::Full`), woken one per freed slot, oldest first.

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    future::Future,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, Waker},
};

/// Forwarding tasks waiting for a slot at a processor ([`Route::Full`](crate::upstream::route::Route::Full)), woken one per freed
/// slot, oldest first: no timer, and no herd of tasks woken for one slot.
#[derive(Debug, Default)]
pub struct SlotWaiters {
    /// Waiting tasks in arrival order. Bounded by `DISPATCH_INFLIGHT_MAX`: each is a task.
    queue: RefCell<VecDeque<Rc<Waiter>>>,
}

#[derive(Debug, Default)]
struct Waiter {
    woken: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl SlotWaiters {
    /// Waits until [`SlotWaiters::wake_one`] picks this task.
    pub fn wait(&self) -> SlotWait<'_> {
        SlotWait { waiters: self, waiter: None }
    }

    /// A slot was freed: wakes the task that has waited longest, if any.
    pub fn wake_one(&self) {
        // A waiter whose future is gone (dropped) holds the only other reference no more.
        while let Some(waiter) = self.queue.borrow_mut().pop_front() {
            if Rc::strong_count(&waiter) > 1 {
                waiter.woken.set(true);
                if let Some(waker) = waiter.waker.take() {
                    waker.wake();
                }
                return;
            }
        }
    }

    /// Tasks waiting.
    pub fn len(&self) -> usize {
        self.queue.borrow().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The future of [`SlotWaiters::wait`].
#[derive(Debug)]
pub struct SlotWait<'a> {
    waiters: &'a SlotWaiters,
    waiter: Option<Rc<Waiter>>,
}

impl Future for SlotWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &self.waiter {
            Some(waiter) if waiter.woken.get() => {
                self.waiter = None;
                Poll::Ready(())
            }
            Some(waiter) => {
                *waiter.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
            None => {
                let waiter = Rc::new(Waiter::default());
                *waiter.waker.borrow_mut() = Some(cx.waker().clone());
                self.waiters.queue.borrow_mut().push_back(Rc::clone(&waiter));
                self.waiter = Some(waiter);
                Poll::Pending
            }
        }
    }
}

impl Drop for SlotWait<'_> {
    fn drop(&mut self) {
        // Woken but never run: the slot it was given goes to the next in line.
        if self.waiter.as_ref().is_some_and(|w| w.woken.get()) {
            self.waiters.wake_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: waiters are woken one per freed slot, oldest first; a dropped waiter is skipped,
    /// and one dropped after being woken passes its slot on. Method: poll the futures by hand
    /// with a no-op waker.
    #[test]
    fn slot_waiters_wake_one_in_order() {
        let waiters = SlotWaiters::default();
        let mut cx = Context::from_waker(Waker::noop());
        let mut a = Box::pin(waiters.wait());
        let mut b = Box::pin(waiters.wait());
        let mut c = Box::pin(waiters.wait());
        for w in [&mut a, &mut b, &mut c] {
            assert!(w.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(waiters.len(), 3);
        waiters.wake_one();
        assert!(a.as_mut().poll(&mut cx).is_ready(), "the oldest first");
        assert!(b.as_mut().poll(&mut cx).is_pending() && c.as_mut().poll(&mut cx).is_pending());
        drop(b);
        waiters.wake_one();
        assert!(c.as_mut().poll(&mut cx).is_ready(), "a dropped waiter is skipped");
        let mut d = Box::pin(waiters.wait());
        let mut e = Box::pin(waiters.wait());
        assert!(d.as_mut().poll(&mut cx).is_pending() && e.as_mut().poll(&mut cx).is_pending());
        waiters.wake_one();
        drop(d);
        assert!(e.as_mut().poll(&mut cx).is_ready(), "woken then dropped: the slot moves on");
        assert!(waiters.is_empty());
    }
}
