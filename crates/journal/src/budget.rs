//! [`ByteBudget`]: how many bytes of entries may wait between two threads.
//!
//! The writer hands entries to its encoding thread, and the reader's read-ahead
//! thread hands decoded entries to the replay: in both, one side may run ahead
//! of the other. A channel bounded by entries would not bound memory — one
//! entry is a log line, another a batch of 1,000 embeddings (~6 MB) — so the
//! sender takes an entry's bytes from the budget before sending it and the
//! receiver gives them back once it is done with it. An entry larger than the
//! whole budget waits until nothing else is in flight, then goes alone.

use std::sync::{Condvar, Mutex};

/// Bytes in flight between a sender and a receiver thread, at most `limit` (or one
/// entry, when a single one is larger).
pub(crate) struct ByteBudget {
    limit: usize,
    state: Mutex<State>,
    released: Condvar,
}

#[derive(Default)]
struct State {
    now: usize,
    /// The most ever in flight (tests check the bound).
    peak: usize,
    /// Set when either side stops: nobody will release (or wait) any more.
    closed: bool,
}

impl ByteBudget {
    pub(crate) fn new(limit: usize) -> ByteBudget {
        ByteBudget {
            limit,
            state: Mutex::default(),
            released: Condvar::new(),
        }
    }

    /// Waits until `bytes` more fit the budget (or nothing is in flight, or the budget
    /// is closed), then takes them.
    pub(crate) fn acquire(&self, bytes: usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while !state.closed && state.now > 0 && state.now + bytes > self.limit {
            state = self.released.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.now += bytes;
        state.peak = state.peak.max(state.now);
    }

    /// Gives `bytes` back (an entry was taken off the other side, or dropped).
    pub(crate) fn release(&self, bytes: usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.now = state.now.saturating_sub(bytes);
        self.released.notify_all();
    }

    /// One side stopped: wake the other and never block it again.
    pub(crate) fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.released.notify_all();
    }

    /// The most bytes ever in flight.
    pub(crate) fn peak(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).peak
    }
}

#[cfg(test)]
mod tests {
    use super::ByteBudget;
    use std::sync::Arc;

    #[test]
    fn a_sender_waits_for_room_and_a_large_entry_goes_alone() {
        let budget = Arc::new(ByteBudget::new(10));
        budget.acquire(6);
        let waiting = Arc::clone(&budget);
        let sender = std::thread::spawn(move || waiting.acquire(20));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !sender.is_finished(),
            "20 bytes do not fit beside 6 of a budget of 10"
        );
        budget.release(6);
        sender.join().unwrap();
        assert_eq!(
            budget.peak(),
            20,
            "once nothing else was in flight it went alone"
        );
    }

    #[test]
    fn closing_wakes_a_waiting_sender() {
        let budget = Arc::new(ByteBudget::new(10));
        budget.acquire(10);
        let waiting = Arc::clone(&budget);
        let sender = std::thread::spawn(move || waiting.acquire(5));
        std::thread::sleep(std::time::Duration::from_millis(50));
        budget.close();
        sender.join().unwrap();
    }
}
