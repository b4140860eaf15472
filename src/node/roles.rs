//! One actor per Paxos role, each wrapping its pure state machine from
//! `crate::paxos` and carrying out the effects it returns through the role's
//! [`Gate`]: records to the role's log thread, messages that must wait held
//! until the thread reports them durable ([`Synced`]), everything else at once.

use std::collections::VecDeque;
use std::time::Duration;

use actix::prelude::*;

use super::disk::{Append, DiskTx, SnapshotWriter, Synced};
use super::router::{Deliver, Effects, GetLog, Input, Router, SharedStatus};
use crate::paxos::{
    Acceptor, Ballot, Forgotten, Gate, Learner, Mode, Outbox, Proposer, Ready, Replica,
};

/// Send a role's ready effects on: messages and notices to the router,
/// answers to the clients waiting; records to `disk` (if the role has one).
fn carry(router: &Addr<Router>, disk: Option<&DiskTx>, ready: Ready) {
    if let (Some(p), Some(disk)) = (ready.persist, disk) {
        disk.send(Append {
            batch: p.batch,
            records: p.records,
            rewrite: p.rewrite,
            forgotten: ready.forgotten,
        });
    }
    if !(ready.send.is_empty() && ready.notices.is_empty() && ready.replies.is_empty()) {
        router.do_send(Effects {
            send: ready.send,
            notices: ready.notices,
            replies: ready.replies,
        });
    }
}

/// A handler that held this node's event loop (which every role, link and
/// client session shares) this long is logged, with what it handled.
const SLOW_HANDLER: std::time::Duration = std::time::Duration::from_millis(50);

fn note_slow(role: &str, what: &str, started: std::time::Instant) {
    let took = started.elapsed();
    if took >= SLOW_HANDLER {
        tracing::warn!("the {role} took {} ms handling {what}", took.as_millis());
    }
}

/// The log reports every batch up to `batch` durable: let out what waited.
fn release(router: &Addr<Router>, gate: &mut Gate, batch: u64) {
    let released = gate.synced(batch);
    if !released.is_empty() {
        router.do_send(Effects {
            send: released,
            ..Effects::default()
        });
    }
}

// ------------------------------------------------------------------ acceptor

/// The acceptor: promises and accepts leave only after their records are
/// durable, and `status` shows a promise only once it is.
pub struct AcceptorActor {
    core: Acceptor,
    router: Addr<Router>,
    disk: DiskTx,
    gate: Gate,
    /// The promise as of each batch not yet durable.
    promised_at: VecDeque<(u64, Ballot)>,
    status: SharedStatus,
}

impl AcceptorActor {
    /// Wrap `core`; its records go to `disk`.
    pub fn new(core: Acceptor, router: Addr<Router>, disk: DiskTx, status: SharedStatus) -> Self {
        AcceptorActor {
            core,
            router,
            disk,
            gate: Gate::new(),
            promised_at: VecDeque::new(),
            status,
        }
    }
}

impl Actor for AcceptorActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        // What it promised before a restart (durable: it was recovered).
        self.status.borrow_mut().promised = self.core.promised();
    }
}

impl Handler<Deliver> for AcceptorActor {
    type Result = ();

    fn handle(&mut self, Deliver(input): Deliver, _: &mut Context<Self>) {
        let started = std::time::Instant::now();
        let what = input.kind();
        let mut out = Outbox::new();
        match input {
            Input::Message { from, msg } => self.core.handle(from, msg, &mut out),
            Input::Notice(n) => self.core.notice(n, &mut out),
        }
        let ready = self.gate.ready(out);
        match &ready.persist {
            Some(p) => self.promised_at.push_back((p.batch, self.core.promised())),
            // Nothing new to sync: the promise shown is the promise held, if
            // every batch before is durable (always, with `persist` broken).
            None if self.promised_at.is_empty() => {
                self.status.borrow_mut().promised = self.core.promised();
            }
            None => {}
        }
        carry(&self.router, Some(&self.disk), ready);
        note_slow("acceptor", what, started);
    }
}

impl Handler<Synced> for AcceptorActor {
    type Result = ();

    fn handle(&mut self, s: Synced, _: &mut Context<Self>) {
        release(&self.router, &mut self.gate, s.batch);
        let mut st = self.status.borrow_mut();
        while self.promised_at.front().is_some_and(|(b, _)| *b <= s.batch) {
            st.promised = self.promised_at.pop_front().expect("checked").1;
        }
        st.records = s.records;
        st.syncs = s.syncs;
    }
}

// ------------------------------------------------------------------ leader

/// The proposer role: elections, heartbeats, batching. Its log holds the
/// rounds it used, durable before a Prepare leaves.
pub struct ProposerActor {
    core: Proposer,
    router: Addr<Router>,
    disk: DiskTx,
    gate: Gate,
    tick: Duration,
    status: SharedStatus,
    mode: Mode,
}

impl ProposerActor {
    /// Wrap `core`, ticking every `tick`; its records go to `disk`.
    pub fn new(
        core: Proposer,
        router: Addr<Router>,
        disk: DiskTx,
        tick: Duration,
        status: SharedStatus,
    ) -> Self {
        ProposerActor {
            core,
            router,
            disk,
            gate: Gate::new(),
            tick,
            status,
            mode: Mode::Follower,
        }
    }

    fn carry(&mut self, out: Outbox) {
        let ready = self.gate.ready(out);
        carry(&self.router, Some(&self.disk), ready);
        let mode = self.core.mode();
        if mode != self.mode {
            match mode {
                Mode::Leader => tracing::info!("leading at ballot {}", self.core.ballot()),
                Mode::Candidate => tracing::info!("candidate at ballot {}", self.core.ballot()),
                Mode::PreCandidate => tracing::debug!("asking for pre-votes"),
                Mode::Follower => tracing::info!(
                    "following (leader: {})",
                    self.core
                        .leader_hint()
                        .map_or("unknown".into(), |l| l.to_string())
                ),
            }
            self.mode = mode;
        }
        let mut st = self.status.borrow_mut();
        st.role = mode.name().to_string();
        st.ballot = self.core.ballot();
        st.leader = self.core.leader_hint();
    }
}

impl Actor for ProposerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let mut last = std::time::Instant::now();
        let late = (self.tick * 10).max(std::time::Duration::from_millis(100));
        ctx.run_interval(self.tick, move |act, _| {
            let now = std::time::Instant::now();
            let gap = now.duration_since(last);
            last = now;
            if gap >= late {
                // Heartbeats and timeouts ride on this tick: a stall this long
                // can make followers start an election (etcd warns alike).
                tracing::warn!(
                    "this node's event loop stalled for {} ms (an overloaded machine?); heartbeats were late",
                    gap.as_millis()
                );
            }
            let mut out = Outbox::new();
            act.core.tick(&mut out);
            act.carry(out);
        });
    }
}

impl Handler<Deliver> for ProposerActor {
    type Result = ();

    fn handle(&mut self, Deliver(input): Deliver, _: &mut Context<Self>) {
        let started = std::time::Instant::now();
        let what = input.kind();
        let mut out = Outbox::new();
        match input {
            Input::Message { from, msg } => self.core.handle(from, msg, &mut out),
            Input::Notice(n) => self.core.notice(n, &mut out),
        }
        self.carry(out);
        note_slow("proposer", what, started);
    }
}

impl Handler<Synced> for ProposerActor {
    type Result = ();

    fn handle(&mut self, s: Synced, _: &mut Context<Self>) {
        release(&self.router, &mut self.gate, s.batch);
    }
}

// ------------------------------------------------------------------ learner

/// The learner: counts votes, spreads and catches up on chosen slots. Its
/// records need no sync before anything is said (they can be learned again), so
/// they go to the log thread once a tick rather than once a slot: a crash loses
/// at most a tick of them, which catch-up restores.
pub struct LearnerActor {
    core: Learner,
    router: Addr<Router>,
    /// `None` when nothing may be persisted (the `persist` rule is off).
    disk: Option<DiskTx>,
    gate: Gate,
    unwritten: Vec<crate::paxos::Record>,
    tick: Duration,
    status: SharedStatus,
}

impl LearnerActor {
    /// Wrap `core`; its records go to `disk`.
    pub fn new(
        core: Learner,
        router: Addr<Router>,
        disk: Option<DiskTx>,
        tick: Duration,
        status: SharedStatus,
    ) -> Self {
        LearnerActor {
            core,
            router,
            disk,
            gate: Gate::new(),
            unwritten: Vec::new(),
            tick,
            status,
        }
    }

    fn write(&mut self) {
        if let (false, Some(disk)) = (self.unwritten.is_empty(), &self.disk) {
            let records = std::mem::take(&mut self.unwritten);
            let mut out = Outbox::new();
            out.persist = records;
            let ready = self.gate.ready(out);
            // Nothing waits for the learner's records.
            if let Some(p) = ready.persist {
                self.gate.synced(p.batch);
                disk.send(Append {
                    batch: p.batch,
                    records: p.records,
                    rewrite: false,
                    forgotten: Forgotten::default(),
                });
            }
        }
    }

    fn carry(&mut self, mut out: Outbox) {
        if out.rewrite {
            // A compaction: what waited to be written is in the new content.
            self.unwritten.clear();
            let ready = self.gate.ready(Outbox {
                persist: std::mem::take(&mut out.persist),
                rewrite: true,
                forgotten: std::mem::take(&mut out.forgotten),
                ..Outbox::new()
            });
            if let (Some(p), Some(disk)) = (ready.persist, &self.disk) {
                self.gate.synced(p.batch);
                disk.send(Append {
                    batch: p.batch,
                    records: p.records,
                    rewrite: true,
                    forgotten: ready.forgotten,
                });
            }
            out.rewrite = false;
        } else if self.disk.is_some() {
            self.unwritten.append(&mut out.persist);
        }
        out.persist.clear();
        let ready = self.gate.ready(out);
        carry(&self.router, None, ready);
        let mut st = self.status.borrow_mut();
        st.chosen = self.core.first_unchosen();
        let conflicts = self.core.conflicts();
        if conflicts.len() as u64 != st.conflicts {
            st.conflicts = conflicts.len() as u64;
            st.first_conflicts = conflicts
                .iter()
                .take(crate::net::CONFLICTS_SHOWN)
                .map(|(slot, kept, other)| (*slot, short(kept.brief()), short(other.brief())))
                .collect();
        }
    }
}

impl Actor for LearnerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Tell the replica and the proposer what was chosen before a restart.
        let mut out = Outbox::new();
        self.core.replay(&mut out);
        self.carry(out);
        ctx.run_interval(self.tick, |act, _| {
            let mut out = Outbox::new();
            act.core.tick(&mut out);
            act.carry(out);
            act.write();
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.write();
    }
}

impl Handler<Deliver> for LearnerActor {
    type Result = ();

    fn handle(&mut self, Deliver(input): Deliver, _: &mut Context<Self>) {
        let started = std::time::Instant::now();
        let what = input.kind();
        let mut out = Outbox::new();
        match input {
            Input::Message { from, msg } => self.core.handle(from, msg, &mut out),
            Input::Notice(n) => self.core.notice(n, &mut out),
        }
        self.carry(out);
        note_slow("learner", what, started);
    }
}

impl Handler<GetLog> for LearnerActor {
    type Result = MessageResult<GetLog>;

    fn handle(&mut self, q: GetLog, _: &mut Context<Self>) -> Self::Result {
        let floor = self.core.floor();
        let mut bytes = 0;
        let entries = self
            .core
            .chosen()
            .range(q.from..)
            .take(q.limit.min(crate::net::MAX_LOG_ENTRIES))
            .take_while(|(_, v)| {
                bytes += v.size();
                bytes <= crate::net::MAX_LOG_BYTES
            })
            .map(|(s, v)| (*s, v.clone()))
            .collect();
        MessageResult((entries, self.core.first_unchosen(), floor))
    }
}

/// A value's brief form cut to 120 characters, for a status answer.
fn short(mut s: String) -> String {
    if let Some((i, _)) = s.char_indices().nth(120) {
        s.truncate(i);
        s.push('…');
    }
    s
}

// ------------------------------------------------------------------ replica

/// The replica: applies chosen slots in order and answers clients; takes
/// snapshots (made durable by a thread of their own) and serves and installs
/// them.
pub struct ReplicaActor {
    core: Replica,
    router: Addr<Router>,
    gate: Gate,
    snapshots: SnapshotWriter,
    status: SharedStatus,
}

impl ReplicaActor {
    /// Wrap `core`; its snapshots go to `snapshots`.
    pub fn new(
        core: Replica,
        router: Addr<Router>,
        snapshots: SnapshotWriter,
        status: SharedStatus,
    ) -> Self {
        ReplicaActor {
            core,
            router,
            gate: Gate::new(),
            snapshots,
            status,
        }
    }
}

impl Actor for ReplicaActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.status.borrow_mut().snapshot = self.core.snapshot_slot();
    }
}

impl Handler<Deliver> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, Deliver(input): Deliver, _: &mut Context<Self>) {
        let started = std::time::Instant::now();
        let what = input.kind();
        let mut out = Outbox::new();
        match input {
            Input::Message { from, msg } => self.core.handle(from, msg, &mut out),
            Input::Notice(notice) => self.core.notice(notice, &mut out),
        }
        let mut ready = self.gate.ready(out);
        if let Some(snap) = ready.snapshot.take() {
            self.snapshots.save(snap);
        }
        carry(&self.router, None, ready);
        let mut st = self.status.borrow_mut();
        st.applied = self.core.next_slot();
        st.snapshot = self.core.snapshot_slot();
        st.sessions = self.core.sessions() as u64;
        st.digest = self.core.digest();
        note_slow("replica", what, started);
    }
}
