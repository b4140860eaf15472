//! The router: local messages go straight to a role; remote ones through the
//! fault layer to the peer's link. It also remembers which client connection
//! waits for which command.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use actix::prelude::*;

use super::conn::{Outbound, PeerLink};
use super::roles::{AcceptorActor, Deliver, LeaderActor, LearnerActor, ReplicaActor, SharedStatus};
use crate::net::faults::Fate;
use crate::net::NetFaults;
use crate::paxos::{Command, Envelope, Message, NodeId, Reply, Role};
use crate::rng::Rng;

/// Envelopes a local role wants sent.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Route(pub Vec<Envelope>);

/// Envelopes that arrived from a peer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Inbound(pub NodeId, pub Vec<Envelope>);

/// Answers to clients.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Replies(pub Vec<Reply>);

/// An answer for one client connection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ToClient(pub Reply);

/// A client's command, and where to send its answer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClientCommand {
    /// The command.
    pub cmd: Command,
    /// The connection that waits for it.
    pub session: u64,
    /// How to reach that connection.
    pub reply_to: Recipient<ToClient>,
}

/// A client connection closed: forget what it waited for.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Forget(pub u64);

/// Replace the outbound faults.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetFaults(pub NetFaults);

/// The role actors of this node.
pub struct Roles {
    /// The acceptor.
    pub acceptor: Addr<AcceptorActor>,
    /// The proposer/leader.
    pub leader: Addr<LeaderActor>,
    /// The learner.
    pub learner: Addr<LearnerActor>,
    /// The replica.
    pub replica: Addr<ReplicaActor>,
}

/// The router of one node.
pub struct Router {
    id: NodeId,
    roles: Roles,
    peers: BTreeMap<NodeId, Addr<PeerLink>>,
    faults: NetFaults,
    rng: Rng,
    waiting: HashMap<(u64, u64), (u64, Recipient<ToClient>)>,
    status: SharedStatus,
    sent: u64,
}

impl Router {
    /// A router for node `id`.
    pub fn new(
        id: NodeId,
        roles: Roles,
        peers: BTreeMap<NodeId, Addr<PeerLink>>,
        status: SharedStatus,
    ) -> Self {
        Router {
            id,
            roles,
            peers,
            faults: NetFaults::none(),
            rng: Rng::new(id),
            waiting: HashMap::new(),
            status,
            sent: 0,
        }
    }

    fn local(&self, from: NodeId, msg: Message) {
        let d = Deliver { from, msg };
        match d.msg.role() {
            Role::Acceptor => self.roles.acceptor.do_send(d),
            Role::Proposer => self.roles.leader.do_send(d),
            Role::Learner => self.roles.learner.do_send(d),
            Role::Replica => self.roles.replica.do_send(d),
        }
    }

    fn remote(&mut self, env: Envelope, ctx: &mut Context<Self>) {
        let Some(link) = self.peers.get(&env.to) else {
            return;
        };
        if self.faults.is_clear() {
            self.sent += 1;
            link.do_send(Outbound(env));
            return;
        }
        match self.faults.decide(&mut self.rng, env.to) {
            Fate::Drop => {}
            Fate::Send { copies, delay_ms } => {
                for &ms in &delay_ms[..copies as usize] {
                    self.sent += 1;
                    if ms == 0 {
                        link.do_send(Outbound(env.clone()));
                    } else {
                        let (link, env) = (link.clone(), env.clone());
                        ctx.run_later(Duration::from_millis(ms), move |_, _| {
                            link.do_send(Outbound(env));
                        });
                    }
                }
            }
        }
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Duration::from_millis(200), |act, _| {
            act.status.borrow_mut().sent = act.sent;
        });
    }
}

impl Handler<Route> for Router {
    type Result = ();

    fn handle(&mut self, Route(envs): Route, ctx: &mut Context<Self>) {
        for env in envs {
            if env.to == self.id {
                self.local(env.from, env.msg);
            } else {
                self.remote(env, ctx);
            }
        }
    }
}

impl Handler<Inbound> for Router {
    type Result = ();

    fn handle(&mut self, Inbound(peer, envs): Inbound, _: &mut Context<Self>) {
        // A partition cuts both ways: what a blocked peer sends is dropped too.
        if self.faults.blocked.contains(&peer) {
            return;
        }
        for env in envs {
            if env.from == peer && env.to == self.id {
                self.local(env.from, env.msg);
            }
        }
    }
}

impl Handler<ClientCommand> for Router {
    type Result = ();

    fn handle(&mut self, c: ClientCommand, _: &mut Context<Self>) {
        self.waiting
            .insert((c.cmd.client, c.cmd.seq), (c.session, c.reply_to));
        self.local(self.id, Message::Request(c.cmd));
    }
}

impl Handler<Replies> for Router {
    type Result = ();

    fn handle(&mut self, Replies(replies): Replies, _: &mut Context<Self>) {
        for r in replies {
            if let Some((_, to)) = self.waiting.remove(&(r.client, r.seq)) {
                to.do_send(ToClient(r));
            }
        }
    }
}

impl Handler<Forget> for Router {
    type Result = ();

    fn handle(&mut self, Forget(session): Forget, _: &mut Context<Self>) {
        self.waiting.retain(|_, (s, _)| *s != session);
    }
}

impl Handler<SetFaults> for Router {
    type Result = ();

    fn handle(&mut self, SetFaults(f): SetFaults, _: &mut Context<Self>) {
        tracing::info!("message faults now: {f}");
        self.rng = Rng::derive(f.seed, self.id);
        self.status.borrow_mut().faults = f.clone();
        self.faults = f;
    }
}
