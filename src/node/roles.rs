//! One generic actor per Paxos role: [`RoleActor<M>`] wraps the role's pure
//! state machine ([`Machine`]) and carries out the effects it returns through
//! the role's [`Gate`], syncing records the way the role says
//! ([`Machine::sync`]): before the messages that depend on them leave, once a
//! tick, or not at all. What each role adds to the node's status is its
//! [`Shown`] hook.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::disk::{Append, DiskTx, SnapshotWriter, Synced};
use super::router::{Deliver, Effects, GetLog, Input, Router, SharedStatus};
use crate::net::NodeStatus;
use crate::paxos::{
    Acceptor, Ballot, Gate, Learner, Machine, Outbox, Proposer, Ready, Record, Replica, Sync,
};

/// Send a role's ready messages, notices and answers on to the router.
fn effects(router: &Addr<Router>, ready: Ready) {
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

fn note_slow(role: crate::paxos::Role, what: &str, started: Instant) {
    let took = started.elapsed();
    if took >= SLOW_HANDLER {
        tracing::warn!("the {role:?} took {} ms handling {what}", took.as_millis());
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

/// What a role shows in the node's status.
pub trait Shown: Machine + Unpin + 'static {
    /// What of the status may be shown only once the records written with
    /// it are durable (the acceptor's promise); `()` for the others.
    type Durable: Unpin + 'static;

    /// The durable part as it stands now.
    fn durable(&self) -> Self::Durable;

    /// Show a durable part.
    fn show_durable(_d: Self::Durable, _st: &mut NodeStatus) {}

    /// Show the rest, after every input.
    fn show(&self, _st: &mut NodeStatus) {}

    /// Show what the log thread reports at a sync.
    fn show_synced(_s: &Synced, _st: &mut NodeStatus) {}
}

impl Shown for Acceptor {
    type Durable = Ballot;

    fn durable(&self) -> Ballot {
        self.promised()
    }

    fn show_durable(promised: Ballot, st: &mut NodeStatus) {
        st.promised = promised;
    }

    fn show_synced(s: &Synced, st: &mut NodeStatus) {
        st.records = s.records;
        st.syncs = s.syncs;
    }
}

impl Shown for Proposer {
    type Durable = ();

    fn durable(&self) {}

    fn show(&self, st: &mut NodeStatus) {
        let mode = self.mode();
        if st.role != mode.name() {
            match mode {
                crate::paxos::Mode::Leader => tracing::info!("leading at ballot {}", self.ballot()),
                crate::paxos::Mode::Candidate => {
                    tracing::info!("candidate at ballot {}", self.ballot())
                }
                crate::paxos::Mode::PreCandidate => tracing::debug!("asking for pre-votes"),
                crate::paxos::Mode::Follower => tracing::info!(
                    "following (leader: {})",
                    self.leader_hint()
                        .map_or("unknown".into(), |l| l.to_string())
                ),
            }
            st.role = mode.name().to_string();
        }
        st.ballot = self.ballot();
        st.leader = self.leader_hint();
    }
}

impl Shown for Learner {
    type Durable = ();

    fn durable(&self) {}

    fn show(&self, st: &mut NodeStatus) {
        st.chosen = self.first_unchosen();
        let configs = self.configs();
        let now = configs.at(self.first_unchosen());
        if st.config != now.number || st.voters.is_empty() {
            st.config = now.number;
            st.voters = now.voters.iter().copied().collect();
            st.learners = now.learners.iter().copied().collect();
        }
        st.next_config = configs
            .pending(self.first_unchosen())
            .map(|(at, c)| (c.number, at, c.voters.iter().copied().collect()));
        let conflicts = self.conflicts();
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

impl Shown for Replica {
    type Durable = ();

    fn durable(&self) {}

    fn show(&self, st: &mut NodeStatus) {
        st.applied = self.next_slot();
        st.snapshot = self.snapshot_slot();
        st.sessions = self.sessions() as u64;
        st.digest = self.digest();
    }
}

/// A role's actor: its machine, its gate, its log (if it keeps one).
pub struct RoleActor<M: Shown> {
    core: M,
    router: Addr<Router>,
    /// The role's log thread (`None`: the role keeps no log).
    disk: Option<DiskTx>,
    /// While this node follows, its records are written and synced on the
    /// event loop at the end of the turn (see [`super::disk`]).
    inline: bool,
    /// Records for the end of this turn's sync.
    here: Vec<Append>,
    gate: Gate,
    /// How often the machine ticks (`None`: never).
    tick: Option<Duration>,
    status: SharedStatus,
    /// The durable part of the status as of each batch not yet synced.
    pending: VecDeque<(u64, M::Durable)>,
    /// Records of a lazily synced role, written once a tick.
    unwritten: Vec<Record>,
    /// Where the replica's snapshots go.
    snapshots: Option<SnapshotWriter>,
}

impl<M: Shown> RoleActor<M> {
    /// Wrap `core`; its records go to `disk`, it ticks every `tick`.
    pub fn new(
        core: M,
        router: Addr<Router>,
        disk: Option<DiskTx>,
        tick: Option<Duration>,
        status: SharedStatus,
    ) -> Self {
        RoleActor {
            core,
            router,
            disk,
            inline: false,
            here: Vec::new(),
            gate: Gate::new(),
            tick,
            status,
            pending: VecDeque::new(),
            unwritten: Vec::new(),
            snapshots: None,
        }
    }

    /// The same actor, its records written and synced on the event loop
    /// while the node follows.
    pub fn inline_while_following(mut self) -> Self {
        self.inline = true;
        self
    }

    /// The same actor, saving the snapshots its machine takes with `w`.
    pub fn with_snapshots(mut self, w: SnapshotWriter) -> Self {
        self.snapshots = Some(w);
        self
    }

    /// Carry out `out`: through the gate, records to the log as the role's
    /// [`Sync`] says, the rest to the router; then update the status.
    fn carry(&mut self, mut out: Outbox, ctx: &mut Context<Self>) {
        if self.core.sync() == Sync::Lazy {
            self.stage(&mut out, ctx);
        }
        let mut ready = self.gate.ready(out);
        let snapshot = ready.snapshot.take();
        let mut st = self.status.borrow_mut();
        match &ready.persist {
            Some(p) => self.pending.push_back((p.batch, self.core.durable())),
            // Nothing new to sync: what is held is durable once every batch
            // before it is (always, with `persist` broken).
            None if self.pending.is_empty() => M::show_durable(self.core.durable(), &mut st),
            None => {}
        }
        self.core.show(&mut st);
        drop(st);
        if let Some(p) = ready.persist.take() {
            let forgotten = std::mem::take(&mut ready.forgotten);
            self.persist(p, forgotten, ctx);
        }
        effects(&self.router, ready);
        // Saved after the notices went to the router: a replica that
        // installed a snapshot tells its learner and proposer the
        // configurations it holds before the snapshot's `Snapshotted` (sent
        // by the writer once durable) moves them past its slot.
        if let (Some(snap), Some(w)) = (snapshot, &self.snapshots) {
            w.save(snap);
        }
    }

    /// A lazily synced role: keep its records for the next tick's write, or
    /// (a compaction) write the new content now; nothing waits for them.
    fn stage(&mut self, out: &mut Outbox, ctx: &mut Context<Self>) {
        if out.rewrite {
            // What waited to be written is in the new content.
            self.unwritten.clear();
            let ready = self.gate.ready(Outbox {
                persist: std::mem::take(&mut out.persist),
                rewrite: true,
                forgotten: std::mem::take(&mut out.forgotten),
                ..Outbox::new()
            });
            self.write(ready, ctx);
            out.rewrite = false;
        } else {
            self.unwritten.append(&mut out.persist);
        }
    }

    /// Write what a lazily synced role staged.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.unwritten.is_empty() {
            return;
        }
        let ready = self.gate.ready(Outbox {
            persist: std::mem::take(&mut self.unwritten),
            ..Outbox::new()
        });
        self.write(ready, ctx);
    }

    fn write(&mut self, ready: Ready, ctx: &mut Context<Self>) {
        if let Some(p) = ready.persist {
            // Nothing waits for these records.
            self.gate.synced(p.batch);
            self.persist(p, ready.forgotten, ctx);
        }
    }

    /// Hand a batch of records to the role's log: to its thread while this
    /// node leads (its event loop carries every client's session and the
    /// pipeline of slots, so its syncs overlap that work), otherwise kept
    /// for the end of this turn, when the event loop writes them and syncs
    /// itself: the future yields once, so every task already woken (the
    /// connections' writers, carrying the messages this turn sent) runs
    /// first, and one sync covers every record written by then.
    fn persist(
        &mut self,
        p: crate::paxos::Persist,
        forgotten: crate::paxos::Forgotten,
        ctx: &mut Context<Self>,
    ) {
        let Some(disk) = &self.disk else { return };
        let a = Append {
            batch: p.batch,
            records: p.records,
            rewrite: p.rewrite,
            forgotten,
        };
        let leads = self.status.borrow().role == crate::paxos::Mode::Leader.name();
        // A compaction rewrites the whole log: the thread's work, unless
        // records kept for this turn must go first.
        if !self.here.is_empty() || (self.inline && !leads && !a.rewrite) {
            // (Once one is kept, the rest of the turn's are too: in order.)
            if self.here.is_empty() {
                ctx.spawn(
                    async { tokio::task::yield_now().await }
                        .into_actor(self)
                        .map(|(), act, _| act.write_here()),
                );
            }
            self.here.push(a);
        } else {
            disk.send(a);
        }
    }

    /// The end of the turn: write and sync what was kept, here.
    fn write_here(&mut self) {
        let (Some(disk), false) = (&self.disk, self.here.is_empty()) else {
            return;
        };
        if let Some(s) = disk.write_here(std::mem::take(&mut self.here)) {
            self.synced(s);
        }
    }

    /// Every batch up to `s.batch` is durable: let out what waited, show
    /// what is durable now.
    fn synced(&mut self, s: Synced) {
        release(&self.router, &mut self.gate, s.batch);
        let mut st = self.status.borrow_mut();
        while self.pending.front().is_some_and(|(b, _)| *b <= s.batch) {
            let (_, d) = self.pending.pop_front().expect("checked");
            M::show_durable(d, &mut st);
        }
        M::show_synced(&s, &mut st);
    }
}

impl<M: Shown> Actor for RoleActor<M> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // What it recovered: the durable part is durable, and the learner
        // tells the others what was chosen before the restart.
        M::show_durable(self.core.durable(), &mut self.status.borrow_mut());
        let mut out = Outbox::new();
        self.core.started(&mut out);
        self.carry(out, ctx);
        let Some(tick) = self.tick else { return };
        let mut last = Instant::now();
        let late = (tick * 10).max(Duration::from_millis(100));
        ctx.run_interval(tick, move |act, ctx| {
            let now = Instant::now();
            let gap = now.duration_since(last);
            last = now;
            if gap >= late && act.core.role() == crate::paxos::Role::Proposer {
                // Heartbeats and timeouts ride on this tick: a stall this long
                // can make followers start an election (etcd warns alike).
                tracing::warn!(
                    "this node's event loop stalled for {} ms (an overloaded machine?); heartbeats were late",
                    gap.as_millis()
                );
            }
            let mut out = Outbox::new();
            act.core.tick(&mut out);
            act.carry(out, ctx);
            if act.core.sync() == Sync::Lazy {
                act.flush(ctx);
            }
        });
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        if self.core.sync() == Sync::Lazy {
            self.flush(ctx);
        }
        // What waits for the end of the turn is written before the thread stops.
        if let Some(disk) = &self.disk {
            for a in std::mem::take(&mut self.here) {
                disk.send(a);
            }
        }
    }
}

impl<M: Shown> Handler<Deliver> for RoleActor<M> {
    type Result = ();

    fn handle(&mut self, Deliver(input): Deliver, ctx: &mut Context<Self>) {
        let started = Instant::now();
        let what = input.kind();
        let mut out = Outbox::new();
        match input {
            Input::Message { from, msg } => self.core.handle(from, msg, &mut out),
            Input::Notice(n) => self.core.notice(n, &mut out),
        }
        self.carry(out, ctx);
        note_slow(self.core.role(), what, started);
    }
}

impl<M: Shown> Handler<Synced> for RoleActor<M> {
    type Result = ();

    fn handle(&mut self, s: Synced, _: &mut Context<Self>) {
        self.synced(s);
    }
}

impl Handler<GetLog> for RoleActor<Learner> {
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
