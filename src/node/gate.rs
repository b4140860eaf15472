//! The gate in front of a node's port: how many handshakes may be under way,
//! from whom, and how often a refusal is written to the log.
//!
//! A stranger may open connections and never say hello. Each one holds a
//! handshake slot until its deadline ([`super::conn::HELLO_TIMEOUT`]), so
//! slots are bounded (all together and per remote address) and, when full,
//! the **oldest** waiting handshake makes room for the newest: a peer or the
//! CLI, which says hello within a millisecond of connecting, always gets a
//! slot and finishes long before a stranger could push it out, however many
//! idle connections the stranger holds. Refusals are logged at most
//! [`LOG_PER_SECOND`] a second; the next line written counts those that were
//! not.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Handshakes under way at once, at most.
pub const MAX_HANDSHAKES: usize = 256;
/// Of those, at most this many from one remote address.
pub const MAX_PER_ADDRESS: usize = 128;
/// Refusal lines written a second, at most.
pub const LOG_PER_SECOND: u32 = 5;

/// The handshakes under way, oldest first.
#[derive(Default)]
pub struct Gate {
    next: u64,
    /// (ticket, remote address, the handshake's cancel switch).
    waiting: VecDeque<(u64, IpAddr, oneshot::Sender<()>)>,
}

impl Gate {
    /// Admit a handshake from `from`: its ticket, and the receiver that fires
    /// if it is pushed out to make room. Makes room first by cancelling the
    /// oldest handshake from the same address (at its cap) or from anyone
    /// (at the total cap); returns how many were pushed out.
    pub fn admit(&mut self, from: IpAddr) -> (u64, oneshot::Receiver<()>, usize) {
        let mut evicted = 0;
        if self.waiting.iter().filter(|w| w.1 == from).count() >= MAX_PER_ADDRESS {
            if let Some(i) = self.waiting.iter().position(|w| w.1 == from) {
                self.waiting.remove(i);
                evicted += 1;
            }
        }
        while self.waiting.len() >= MAX_HANDSHAKES {
            self.waiting.pop_front();
            evicted += 1;
        }
        self.next += 1;
        let (tx, rx) = oneshot::channel();
        self.waiting.push_back((self.next, from, tx));
        (self.next, rx, evicted)
    }

    /// The handshake with `ticket` ended (welcomed, refused or timed out).
    pub fn done(&mut self, ticket: u64) {
        if let Some(i) = self.waiting.iter().position(|w| w.0 == ticket) {
            self.waiting.remove(i);
        }
    }

    /// Handshakes under way.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// True if none is under way.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// A budget of log lines: at most [`LOG_PER_SECOND`] a second.
#[derive(Debug)]
pub struct Quiet {
    since: Instant,
    written: u32,
    skipped: u64,
}

impl Quiet {
    /// A fresh budget.
    pub fn new(now: Instant) -> Quiet {
        Quiet {
            since: now,
            written: 0,
            skipped: 0,
        }
    }

    /// May a line be written now? `Some(n)`: yes, and `n` lines were held
    /// back since the last one written; `None`: no (it is counted).
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if now.duration_since(self.since) >= Duration::from_secs(1) {
            self.since = now;
            self.written = 0;
        }
        if self.written >= LOG_PER_SECOND {
            self.skipped += 1;
            return None;
        }
        self.written += 1;
        Some(std::mem::take(&mut self.skipped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_handshake_makes_room_for_the_newest() {
        let mut g = Gate::default();
        let stranger: IpAddr = [10, 0, 0, 9].into();
        let peer: IpAddr = [10, 0, 0, 2].into();
        let mut held = Vec::new();
        for _ in 0..1000 {
            held.push(g.admit(stranger));
        }
        // The stranger keeps at most its own cap, and its oldest were cancelled.
        assert_eq!(g.len(), MAX_PER_ADDRESS);
        let (_, mut first, _) = held.remove(0);
        assert!(first.try_recv().is_err(), "pushed out: its switch is gone");
        // A peer is admitted at once, and stays while the stranger goes on.
        let (ticket, mut rx, evicted) = g.admit(peer);
        assert_eq!(evicted, 0);
        for _ in 0..(MAX_HANDSHAKES - MAX_PER_ADDRESS - 1) {
            g.admit(stranger);
        }
        assert_eq!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        g.done(ticket);
        assert_eq!(g.len(), MAX_PER_ADDRESS);
    }

    #[test]
    fn many_addresses_fill_the_gate_and_push_out_the_oldest() {
        let mut g = Gate::default();
        for i in 0..(MAX_HANDSHAKES as u32 + 10) {
            let (_, _, evicted) = g.admit(IpAddr::from(i.to_be_bytes()));
            assert_eq!(evicted, usize::from(i as usize >= MAX_HANDSHAKES));
        }
        assert_eq!(g.len(), MAX_HANDSHAKES);
    }

    #[test]
    fn refusals_are_logged_a_few_a_second_and_the_rest_counted() {
        let t = Instant::now();
        let mut q = Quiet::new(t);
        let written = (0..100).filter(|_| q.allow(t).is_some()).count();
        assert_eq!(written, LOG_PER_SECOND as usize);
        assert_eq!(q.allow(t + Duration::from_secs(1)), Some(95));
        assert_eq!(q.allow(t + Duration::from_secs(1)), Some(0));
    }
}
