//! The tap: a sample of the messages a node sends, for the live page
//! (`synod web`). It samples only while someone watches (a page asked in the
//! last 5 s), at most [`TAP_RATE`] messages of each kind a second, and keeps
//! the newest [`TAP_LEN`].

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::net::MsgEvent;
use crate::paxos::Envelope;

/// Messages the tap keeps (the newest).
pub const TAP_LEN: usize = 512;
/// Messages of one kind the tap samples per second at most: watching costs
/// the cluster little (14 kinds, so at most 140 a second), and heartbeats do
/// not crowd out the Accepts a page wants to see.
const TAP_RATE: u32 = 10;
/// How long after a page last asked the tap goes on sampling.
const WATCHED_FOR: Duration = Duration::from_secs(5);

/// The sampled messages of one node.
#[derive(Default)]
pub struct Tap {
    /// The samples, newest last.
    kept: VecDeque<MsgEvent>,
    seq: u64,
    /// The tenth of a second being sampled, and the samples taken of each
    /// kind in it.
    budget: (u64, BTreeMap<&'static str, u32>),
    /// When a page last asked: with no one watching for 5 s, nothing is
    /// sampled (the tap costs an unwatched cluster nothing).
    watched_at: Option<Instant>,
}

impl Tap {
    /// Note a message sent (`copies` of it; 0: dropped), within the budget.
    pub fn sample(&mut self, env: &Envelope, copies: u8) {
        if self.watched_at.is_none() {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        // The budget is spent a tenth at a time, so a second's samples are
        // spread over it rather than bunched at its start.
        let tenth = now / 100_000;
        if self.budget.0 != tenth {
            self.budget = (tenth, Default::default());
        }
        let taken = self.budget.1.entry(env.msg.kind()).or_insert(0);
        if *taken == TAP_RATE / 10 {
            return;
        }
        *taken += 1;
        self.seq += 1;
        if self.kept.len() == TAP_LEN {
            self.kept.pop_front();
        }
        self.kept.push_back(MsgEvent {
            seq: self.seq,
            at_us: now,
            from: env.from,
            to: env.to,
            kind: env.msg.kind().to_string(),
            brief: env.msg.brief(),
            dropped: copies == 0,
            copies,
        });
    }

    /// The samples after `after`; someone watches from now on.
    pub fn since(&mut self, after: u64) -> Vec<MsgEvent> {
        self.watched_at = Some(Instant::now());
        self.kept
            .iter()
            .filter(|m| m.seq > after)
            .cloned()
            .collect()
    }

    /// Stop sampling (and forget the samples) if no one asked lately.
    pub fn expire(&mut self) {
        if self.watched_at.is_some_and(|t| t.elapsed() > WATCHED_FOR) {
            self.watched_at = None;
            self.kept.clear();
        }
    }
}
