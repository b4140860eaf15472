//! One actor per Paxos role, each wrapping its pure state machine from
//! `crate::paxos` and carrying out the effects it returns.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;

use super::disk::{Append, DiskTx, Synced};
use super::router::{Replies, Route, Router};
use crate::net::NodeStatus;
use crate::paxos::{
    Acceptor, Envelope, Leader, Learner, Message, Mode, NodeId, Outbox, Replica, Slot, Value,
};

/// The node's status, shared by the actors of its (single-threaded) System.
pub type SharedStatus = Rc<RefCell<NodeStatus>>;

/// A protocol message for one role.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver {
    /// The sending node.
    pub from: NodeId,
    /// The message.
    pub msg: Message,
}

/// Chosen slots from `from` on, for `synod log`.
#[derive(Message)]
#[rtype(result = "(Vec<(Slot, Value)>, Slot)")]
pub struct GetLog {
    /// First slot wanted.
    pub from: Slot,
    /// At most this many.
    pub limit: usize,
}

// ------------------------------------------------------------------ acceptor

/// The acceptor: promises and accepts leave only after their records are
/// durable (the storage thread reports [`Synced`]).
pub struct AcceptorActor {
    core: Acceptor,
    router: Addr<Router>,
    disk: DiskTx,
    last_batch: u64,
    synced: u64,
    held: VecDeque<(u64, Vec<Envelope>)>,
    status: SharedStatus,
}

impl AcceptorActor {
    /// Wrap `core`; its records go to `disk`.
    pub fn new(core: Acceptor, router: Addr<Router>, disk: DiskTx, status: SharedStatus) -> Self {
        AcceptorActor {
            core,
            router,
            disk,
            last_batch: 0,
            synced: 0,
            held: VecDeque::new(),
            status,
        }
    }
}

impl Actor for AcceptorActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        // What it promised before a restart, visible before anyone writes to it.
        self.status.borrow_mut().promised = self.core.promised();
    }
}

impl Handler<Deliver> for AcceptorActor {
    type Result = ();

    fn handle(&mut self, d: Deliver, _: &mut Context<Self>) {
        let mut out = Outbox::new();
        self.core.handle(d.from, d.msg, &mut out);
        if !out.persist.is_empty() {
            self.last_batch += 1;
            self.disk.send(Append {
                batch: self.last_batch,
                records: out.persist,
            });
        }
        if !out.send.is_empty() {
            self.router.do_send(Route(out.send));
        }
        if !out.send_durable.is_empty() {
            // Persist before send: wait for every record emitted so far.
            if self.synced >= self.last_batch && self.held.is_empty() {
                self.router.do_send(Route(out.send_durable));
            } else {
                self.held.push_back((self.last_batch, out.send_durable));
            }
        }
        self.status.borrow_mut().promised = self.core.promised();
    }
}

impl Handler<Synced> for AcceptorActor {
    type Result = ();

    fn handle(&mut self, s: Synced, _: &mut Context<Self>) {
        self.synced = s.batch;
        while self.held.front().is_some_and(|(b, _)| *b <= self.synced) {
            let (_, msgs) = self.held.pop_front().expect("checked");
            self.router.do_send(Route(msgs));
        }
        let mut st = self.status.borrow_mut();
        st.records = s.records;
        st.syncs = s.syncs;
    }
}

// ------------------------------------------------------------------ leader

/// The proposer role: elections, heartbeats, batching.
pub struct LeaderActor {
    core: Leader,
    router: Addr<Router>,
    tick: Duration,
    status: SharedStatus,
    mode: Mode,
}

impl LeaderActor {
    /// Wrap `core`, ticking every `tick`.
    pub fn new(core: Leader, router: Addr<Router>, tick: Duration, status: SharedStatus) -> Self {
        LeaderActor {
            core,
            router,
            tick,
            status,
            mode: Mode::Follower,
        }
    }

    fn carry(&mut self, out: Outbox) {
        if !out.send.is_empty() {
            self.router.do_send(Route(out.send));
        }
        if !out.replies.is_empty() {
            self.router.do_send(Replies(out.replies));
        }
        let mode = self.core.mode();
        if mode != self.mode {
            match mode {
                Mode::Leader => tracing::info!("leading at ballot {}", self.core.ballot()),
                Mode::Candidate => tracing::info!("candidate at ballot {}", self.core.ballot()),
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

impl Actor for LeaderActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.tick, |act, _| {
            let mut out = Outbox::new();
            act.core.tick(&mut out);
            act.carry(out);
        });
    }
}

impl Handler<Deliver> for LeaderActor {
    type Result = ();

    fn handle(&mut self, d: Deliver, _: &mut Context<Self>) {
        let mut out = Outbox::new();
        self.core.handle(d.from, d.msg, &mut out);
        self.carry(out);
    }
}

// ------------------------------------------------------------------ learner

/// The learner: counts accepts, spreads and catches up on chosen slots. Its
/// records need no sync before anything is said (they can be learned again), so
/// they go to the log thread once a tick rather than once a slot: a crash loses
/// at most a tick of them, which catch-up restores.
pub struct LearnerActor {
    core: Learner,
    router: Addr<Router>,
    /// `None` when nothing may be persisted (the `persist` rule is off).
    disk: Option<DiskTx>,
    unwritten: Vec<crate::paxos::Record>,
    batch: u64,
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
            unwritten: Vec::new(),
            batch: 0,
            tick,
            status,
        }
    }

    fn write(&mut self) {
        if let (false, Some(disk)) = (self.unwritten.is_empty(), &self.disk) {
            self.batch += 1;
            disk.send(Append {
                batch: self.batch,
                records: std::mem::take(&mut self.unwritten),
            });
        }
    }

    fn carry(&mut self, out: Outbox) {
        if self.disk.is_some() {
            self.unwritten.extend(out.persist);
        }
        if !out.send.is_empty() {
            self.router.do_send(Route(out.send));
        }
        self.status.borrow_mut().chosen = self.core.first_unchosen();
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

    fn handle(&mut self, d: Deliver, _: &mut Context<Self>) {
        let mut out = Outbox::new();
        self.core.handle(d.from, d.msg, &mut out);
        self.carry(out);
    }
}

impl Handler<GetLog> for LearnerActor {
    type Result = MessageResult<GetLog>;

    fn handle(&mut self, q: GetLog, _: &mut Context<Self>) -> Self::Result {
        let entries = self
            .core
            .chosen()
            .range(q.from..)
            .take(q.limit)
            .map(|(s, v)| (*s, v.clone()))
            .collect();
        MessageResult((entries, self.core.first_unchosen()))
    }
}

// ------------------------------------------------------------------ replica

/// The replica: applies chosen slots in order and answers clients.
pub struct ReplicaActor {
    core: Replica,
    router: Addr<Router>,
    status: SharedStatus,
}

impl ReplicaActor {
    /// Wrap `core`.
    pub fn new(core: Replica, router: Addr<Router>, status: SharedStatus) -> Self {
        ReplicaActor {
            core,
            router,
            status,
        }
    }
}

impl Actor for ReplicaActor {
    type Context = Context<Self>;
}

impl Handler<Deliver> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, d: Deliver, _: &mut Context<Self>) {
        let mut out = Outbox::new();
        self.core.handle(d.msg, &mut out);
        if !out.replies.is_empty() {
            self.router.do_send(Replies(out.replies));
        }
        self.status.borrow_mut().applied = self.core.next_slot();
    }
}
