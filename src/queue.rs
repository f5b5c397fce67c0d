//! Queue: a core's bounded FIFO of accepted payments waiting for a forwarding slot.

use std::collections::VecDeque;

use crate::payment::Payment;

/// The queue is at its limit: the caller answers 503 rather than drop or grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull;

/// Payments accepted (answered 202) but not yet being forwarded.
#[derive(Debug)]
pub struct Queue {
    /// Oldest first. Grows on demand up to `len_max`; memory is 48 bytes a payment.
    items: VecDeque<Payment>,
    /// `QUEUE_LEN_MAX`.
    len_max: usize,
}

impl Queue {
    /// An empty queue holding at most `len_max` payments.
    pub fn new(len_max: usize) -> Queue {
        assert!(len_max > 0, "a queue must hold at least one payment");
        Queue { items: VecDeque::new(), len_max }
    }

    /// Appends `payment`, or refuses when full.
    pub fn push(&mut self, payment: Payment) -> Result<(), QueueFull> {
        if self.items.len() >= self.len_max {
            return Err(QueueFull);
        }
        self.items.push_back(payment);
        Ok(())
    }

    /// Takes the oldest payment.
    pub fn pop(&mut self) -> Option<Payment> {
        self.items.pop_front()
    }

    /// Payments waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: FIFO order, and a full queue refuses instead of growing.
    #[test]
    fn bounded_fifo() {
        let mut q = Queue::new(2);
        let p = |c| Payment { correlation_id: [b'0'; 36], cents: c };
        q.push(p(1)).unwrap();
        q.push(p(2)).unwrap();
        assert_eq!(q.push(p(3)), Err(QueueFull));
        assert_eq!(q.pop().map(|p| p.cents), Some(1));
        q.push(p(3)).unwrap();
        assert_eq!((q.pop().unwrap().cents, q.pop().unwrap().cents, q.pop()), (2, 3, None));
    }
}
