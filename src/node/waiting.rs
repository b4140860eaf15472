//! The client commands a node's router holds until their answer comes: which
//! connection waits for the answer to which `(client, seq)`.
//!
//! An answer may never come: the command was lost with an old leader, the
//! client went elsewhere, or a connection sends commands and never reads. So what waits is bounded three
//! ways:
//!
//! - **By connection.** When a connection closes, everything it waited for
//!   goes with it.
//! - **By age.** An entry older than [`DEADLINE`] (30 s) goes at the next
//!   sweep (every eighth of it). A client asks again after each attempt
//!   (1 s by default), which renews its entry, and gives up on an operation
//!   after 5 s by default: an entry not renewed for 30 s belongs to a client
//!   that gave up long ago. It gets no answer: its outcome is unknown, and
//!   the client's own timeout already says so.
//! - **By count.** A connection may have at most [`PER_CONN`] (1,024)
//!   commands waiting, and the node at most [`MAX_WAITING`] (65,536) in all.
//!   Past either, a new command is answered `Busy` at once and is not
//!   proposed; its client retries a little later, as it does when a leader's
//!   queue is full. (The client library has one command in flight per
//!   connection, so only a client that never reads its answers meets the
//!   first bound.)
//!
//! This is bookkeeping of the shell, so it may read the clock: the router
//! passes `now` in, and the tests pass any instant they like.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Commands one connection may have waiting at most; past it, `Busy`.
pub const PER_CONN: usize = 1_024;
/// Commands waiting at one node at most, over all its connections; past it,
/// `Busy`.
pub const MAX_WAITING: usize = 65_536;
/// How long an entry waits for its answer at most (unless its client asks
/// again, which renews it).
pub const DEADLINE: Duration = Duration::from_secs(30);

/// `(client, seq)`: the command an answer is for.
pub type Key = (u64, u64);

struct Entry<R> {
    session: u64,
    to: R,
    at: Instant,
}

/// Who waits for which answer, reached through an `R` (a recipient).
pub struct Waiting<R> {
    entries: HashMap<Key, Entry<R>>,
    /// Entries per connection (sessions with none are not kept).
    per_session: HashMap<u64, usize>,
    deadline: Duration,
    /// When entries were last swept for their age.
    swept: Option<Instant>,
}

impl<R> Default for Waiting<R> {
    fn default() -> Self {
        Waiting::with_deadline(DEADLINE)
    }
}

impl<R> Waiting<R> {
    /// Nothing waiting; entries go after `deadline`.
    pub fn with_deadline(deadline: Duration) -> Self {
        Waiting {
            entries: HashMap::new(),
            per_session: HashMap::new(),
            deadline,
            swept: None,
        }
    }

    /// Commands waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Connection `session` waits, through `to`, for the answer to `key`,
    /// asked at `now`. The same command asked again on the same connection
    /// renews its entry; asked on another, it moves there. `Err(to)` if the
    /// connection or the node has too many waiting already: the command must
    /// be answered `Busy` and not proposed.
    pub fn insert(&mut self, key: Key, session: u64, to: R, now: Instant) -> Result<(), R> {
        if let Some(e) = self.entries.get_mut(&key) {
            if e.session == session {
                e.to = to;
                e.at = now;
                return Ok(());
            }
        }
        let mine = self.per_session.get(&session).copied().unwrap_or(0);
        let fresh = !self.entries.contains_key(&key);
        if mine >= PER_CONN || (fresh && self.entries.len() >= MAX_WAITING) {
            return Err(to);
        }
        if let Some(old) = self.entries.insert(
            key,
            Entry {
                session,
                to,
                at: now,
            },
        ) {
            release(&mut self.per_session, old.session);
        }
        *self.per_session.entry(session).or_default() += 1;
        Ok(())
    }

    /// The answer to `key` came: who waits for it, if anyone still does.
    pub fn take(&mut self, key: Key) -> Option<R> {
        let e = self.entries.remove(&key)?;
        release(&mut self.per_session, e.session);
        Some(e.to)
    }

    /// Connection `session` closed: forget everything it waited for.
    pub fn forget(&mut self, session: u64) {
        if self.per_session.remove(&session).is_some() {
            self.entries.retain(|_, e| e.session != session);
        }
    }

    /// Forget entries older than the deadline at `now`, if a sweep is due
    /// (every eighth of the deadline); how many went.
    pub fn expire(&mut self, now: Instant) -> usize {
        if self
            .swept
            .is_some_and(|at| now.saturating_duration_since(at) < self.deadline / 8)
        {
            return 0;
        }
        self.swept = Some(now);
        let (deadline, before) = (self.deadline, self.entries.len());
        let per_session = &mut self.per_session;
        self.entries.retain(|_, e| {
            let keep = now.saturating_duration_since(e.at) < deadline;
            if !keep {
                release(per_session, e.session);
            }
            keep
        });
        before - self.entries.len()
    }
}

/// One entry of `session` went.
fn release(per_session: &mut HashMap<u64, usize>, session: u64) {
    if let Some(n) = per_session.get_mut(&session) {
        *n -= 1;
        if *n == 0 {
            per_session.remove(&session);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_that_never_gets_answers_holds_at_most_its_share() {
        let now = Instant::now();
        let mut w: Waiting<u32> = Waiting::default();
        for seq in 0..PER_CONN as u64 {
            assert_eq!(w.insert((7, seq), 1, 0, now), Ok(()));
        }
        // One more on that connection is refused, handed back to be
        // answered Busy; asking again for one already waiting is not.
        assert_eq!(w.insert((7, 5_000), 1, 9, now), Err(9));
        assert_eq!(w.insert((7, 3), 1, 0, now), Ok(()));
        assert_eq!(w.len(), PER_CONN);
        // Another connection is not held up by it.
        assert_eq!(w.insert((8, 1), 2, 0, now), Ok(()));
        // An answer makes room.
        assert_eq!(w.take((7, 0)), Some(0));
        assert_eq!(w.take((7, 0)), None, "answered once");
        assert_eq!(w.insert((7, 5_000), 1, 0, now), Ok(()));
        // A command moved to another connection counts there.
        assert_eq!(w.insert((7, 5_000), 2, 0, now), Ok(()));
        assert_eq!(w.insert((7, 5_001), 1, 0, now), Ok(()));
        assert_eq!(w.per_session[&1], PER_CONN);
        assert_eq!(w.per_session[&2], 2);
    }

    #[test]
    fn the_node_holds_at_most_max_waiting_over_all_connections() {
        let now = Instant::now();
        let mut w: Waiting<u32> = Waiting::default();
        let conns = MAX_WAITING / PER_CONN;
        for session in 0..conns as u64 {
            for seq in 0..PER_CONN as u64 {
                assert_eq!(w.insert((session, seq), session, 0, now), Ok(()));
            }
        }
        assert_eq!(w.insert((99_999, 1), 99_999, 9, now), Err(9));
        assert_eq!(w.len(), MAX_WAITING);
        // A closed connection frees its share.
        w.forget(0);
        assert_eq!(w.len(), MAX_WAITING - PER_CONN);
        assert!(!w.per_session.contains_key(&0));
        assert_eq!(w.insert((99_999, 1), 99_999, 0, now), Ok(()));
    }

    #[test]
    fn entries_nobody_renews_go_after_the_deadline() {
        let t0 = Instant::now();
        let mut w: Waiting<u32> = Waiting::default();
        w.insert((1, 1), 1, 0, t0).unwrap();
        w.insert((2, 1), 2, 0, t0).unwrap();
        assert_eq!(w.expire(t0), 0);
        // Client 2 asks again (a retry renews its entry).
        let later = t0 + DEADLINE / 2;
        w.insert((2, 1), 2, 0, later).unwrap();
        // Not swept again before an eighth of the deadline has passed.
        assert_eq!(w.expire(t0 + DEADLINE / 16), 0);
        assert_eq!(w.expire(t0 + DEADLINE), 1);
        assert_eq!(w.take((1, 1)), None, "gone: no answer reaches it");
        assert_eq!(w.len(), 1);
        assert!(!w.per_session.contains_key(&1));
        assert_eq!(w.expire(later + DEADLINE), 1);
        assert!(w.is_empty() && w.per_session.is_empty());
    }
}
