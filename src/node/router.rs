//! The router, and the actor messages every part of a node shares.
//!
//! Messages between nodes go from a role to the router, through the fault
//! layer, to the peer's link; messages that arrive from a peer's connection go
//! from the router to the role that handles them. Notices between the roles of
//! this node go through the router too, in order, and never near a socket.
//! The router also remembers which client connection waits for which command,
//! within bounds ([`super::waiting`]: per connection, for the node, and by
//! age; a command past them is answered `Busy` at once and not proposed).
//! The fault layer it sends through is [`super::inject`]; the sample of sent
//! messages it keeps for the live page is [`super::tap`].
//!
//! Everything the roles and the connections need from one another is defined
//! here, so the arrows run one way: `roles` and `conn` use the router; the
//! router knows them only as recipients.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::inject::Injector;
use super::tap::Tap;
use super::waiting::Waiting;
use crate::net::faults::Fate;
use crate::net::{NetFaults, NodeStatus};
use crate::paxos::{Command, Envelope, Message, NodeId, Notice, Outcome, Reply, Role, Slot, Value};

/// The node's status, shared by the actors of its (single-threaded) System.
pub type SharedStatus = Rc<RefCell<NodeStatus>>;

/// What a role is handed: a message from the wire, or a notice from a role of
/// this node.
#[derive(Debug)]
pub enum Input {
    /// A protocol message from node `from`.
    Message { from: NodeId, msg: Message },
    /// A notice from one of this node's roles (or a client's command).
    Notice(Notice),
}

impl Input {
    /// What it is, for logs: the message's or the notice's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Input::Message { msg, .. } => msg.kind(),
            Input::Notice(n) => n.kind(),
        }
    }
}

/// An input for one role.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver(pub Input);

/// What a local role wants done, in one mailbox message: envelopes to send,
/// notices for the node's other roles, answers for clients.
#[derive(Message, Default)]
#[rtype(result = "()")]
pub struct Effects {
    /// Messages to other nodes (or to a role of this one).
    pub send: Vec<Envelope>,
    /// Notices to this node's roles.
    pub notices: Vec<Notice>,
    /// Answers to clients.
    pub replies: Vec<Reply>,
}

/// Envelopes that arrived from a peer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Inbound(pub NodeId, pub Vec<Envelope>);

/// An envelope for one peer's link.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Outbound(pub Envelope);

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

/// Replace the outbound faults (already checked).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetFaults(pub NetFaults);

/// Chosen slots from `from` on, for `synod log`: at most `limit` entries and
/// about [`crate::net::MAX_LOG_BYTES`] of values; the first unchosen slot; and
/// the floor (slots below were compacted into a snapshot).
#[derive(Message)]
#[rtype(result = "(Vec<(Slot, Value)>, Slot, Slot)")]
pub struct GetLog {
    /// First slot wanted.
    pub from: Slot,
    /// At most this many.
    pub limit: usize,
}

/// The sampled messages after event `after` (at most [`super::tap::TAP_LEN`]).
#[derive(Message)]
#[rtype(result = "Vec<crate::net::MsgEvent>")]
pub struct GetMessages {
    /// The last event the asker has.
    pub after: u64,
}

/// Where the router sends each role's inputs.
pub struct Roles {
    /// The acceptor.
    pub acceptor: Recipient<Deliver>,
    /// The proposer (the leader, once it has won phase 1).
    pub proposer: Recipient<Deliver>,
    /// The learner.
    pub learner: Recipient<Deliver>,
    /// The replica.
    pub replica: Recipient<Deliver>,
}

impl Roles {
    fn of(&self, role: Role) -> &Recipient<Deliver> {
        match role {
            Role::Acceptor => &self.acceptor,
            Role::Proposer => &self.proposer,
            Role::Learner => &self.learner,
            Role::Replica => &self.replica,
        }
    }
}

/// The router of one node.
pub struct Router {
    id: NodeId,
    roles: Roles,
    peers: BTreeMap<NodeId, Recipient<Outbound>>,
    inject: Injector,
    /// Which connection waits for the answer to which command.
    waiting: Waiting<Recipient<ToClient>>,
    status: SharedStatus,
    sent: u64,
    /// A sample of the messages sent, for the live page.
    tap: Tap,
    /// Each peer's link as last reported (open or closed), blocked or not:
    /// told to the roles when a partition that hid it heals.
    links: BTreeMap<NodeId, bool>,
    /// The members the log names, shared with the door, and how to open a
    /// link to one added at run time.
    grow: Option<(super::members::SharedMembers, LinkMaker)>,
}

/// Opens a link to a node added at run time: its id, its address, and the
/// keys to prove and check with (made in `node::start`, so the router knows
/// links only as recipients).
pub type LinkMaker = Box<
    dyn Fn(NodeId, std::net::SocketAddr, crate::net::Keys, Addr<Router>) -> Recipient<Outbound>,
>;

impl Router {
    /// A router for node `id`.
    pub fn new(
        id: NodeId,
        roles: Roles,
        peers: BTreeMap<NodeId, Recipient<Outbound>>,
        status: SharedStatus,
    ) -> Self {
        Router {
            id,
            roles,
            peers,
            inject: Injector::new(id),
            waiting: Waiting::default(),
            status,
            sent: 0,
            links: BTreeMap::new(),
            tap: Tap::default(),
            grow: None,
        }
    }

    /// Follow the configurations the log carries: keep `members` (the
    /// door's) up to date, and open links with `make` to the nodes added.
    pub fn with_members(mut self, members: super::members::SharedMembers, make: LinkMaker) -> Self {
        self.grow = Some((members, make));
        self
    }

    /// A configuration was learnt: admit and link the nodes it adds.
    fn configured(&mut self, configs: &crate::paxos::Configs, ctx: &mut Context<Self>) {
        let Some((members, make)) = &self.grow else {
            return;
        };
        let new = members.borrow_mut().learn(configs);
        for (peer, addr) in new {
            if self.peers.contains_key(&peer) {
                continue;
            }
            tracing::info!("node {peer} joined at {addr}: linking to it");
            let keys = members.borrow().keys().clone();
            self.peers
                .insert(peer, make(peer, addr, keys, ctx.address()));
        }
    }

    fn deliver(&self, from: NodeId, msg: Message) {
        let role = msg.role();
        self.roles
            .of(role)
            .do_send(Deliver(Input::Message { from, msg }));
    }

    fn link(&self, node: NodeId, up: bool) {
        self.notify(if up {
            Notice::PeerUp { node }
        } else {
            Notice::PeerGone { node }
        });
    }

    fn notify(&self, notice: Notice) {
        let Some((&last, rest)) = notice.roles().split_last() else {
            return;
        };
        for &role in rest {
            self.roles
                .of(role)
                .do_send(Deliver(Input::Notice(notice.clone())));
        }
        self.roles.of(last).do_send(Deliver(Input::Notice(notice)));
    }

    fn remote(&mut self, env: Envelope, ctx: &mut Context<Self>) {
        if !self.peers.contains_key(&env.to) {
            return;
        }
        let fate = self.inject.fate(env.to);
        let copies = match &fate {
            None => 1,
            Some(Fate::Drop) => 0,
            Some(Fate::Send { copies, .. }) => *copies,
        };
        self.tap.sample(&env, copies);
        let Some(link) = self.peers.get(&env.to) else {
            return;
        };
        match fate {
            None => {
                self.sent += 1;
                link.do_send(Outbound(env));
            }
            Some(Fate::Drop) => {}
            Some(Fate::Send { copies, delay_ms }) => {
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
            act.tap.expire();
            let gone = act.waiting.expire(Instant::now());
            if gone > 0 {
                tracing::debug!("{gone} client command(s) went unanswered for too long: forgotten");
            }
        });
    }
}

impl Handler<Effects> for Router {
    type Result = ();

    fn handle(&mut self, e: Effects, ctx: &mut Context<Self>) {
        for env in e.send {
            if env.to == self.id {
                self.deliver(env.from, env.msg);
            } else {
                self.remote(env, ctx);
            }
        }
        for n in e.notices {
            if let Notice::Configured(c) = &n {
                self.configured(c, ctx);
            }
            self.notify(n);
        }
        for r in e.replies {
            if let Some(to) = self.waiting.take((r.client, r.seq)) {
                to.do_send(ToClient(r));
            }
        }
    }
}

impl Handler<Inbound> for Router {
    type Result = ();

    fn handle(&mut self, Inbound(peer, envs): Inbound, _: &mut Context<Self>) {
        // A partition cuts both ways: what a blocked peer sends is dropped too.
        if self.inject.faults().blocked.contains(&peer) {
            return;
        }
        for env in envs {
            // A peer speaks only for itself, and only to us.
            if env.from == peer && env.to == self.id {
                self.deliver(env.from, env.msg);
            }
        }
    }
}

/// A link reached a peer's process (`up`), or saw the peer's end close.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerEvent {
    /// The peer.
    pub peer: NodeId,
    /// Reached, or closed.
    pub up: bool,
}

impl Handler<PeerEvent> for Router {
    type Result = ();

    fn handle(&mut self, e: PeerEvent, _: &mut Context<Self>) {
        self.links.insert(e.peer, e.up);
        // Across a partition nothing is learned, not even a peer's death.
        if !self.inject.faults().blocked.contains(&e.peer) {
            self.link(e.peer, e.up);
        }
    }
}

impl Handler<ClientCommand> for Router {
    type Result = ();

    fn handle(&mut self, c: ClientCommand, _: &mut Context<Self>) {
        let (client, seq) = (c.cmd.client, c.cmd.seq);
        match self
            .waiting
            .insert((client, seq), c.session, c.reply_to, Instant::now())
        {
            Ok(()) => self.notify(Notice::Request(c.cmd)),
            // Too many waiting already: refused now, nothing proposed.
            Err(to) => to.do_send(ToClient(Reply {
                client,
                seq,
                outcome: Outcome::Busy,
            })),
        }
    }
}

impl Handler<Forget> for Router {
    type Result = ();

    fn handle(&mut self, Forget(session): Forget, _: &mut Context<Self>) {
        self.waiting.forget(session);
    }
}

impl Handler<GetMessages> for Router {
    type Result = MessageResult<GetMessages>;

    fn handle(&mut self, q: GetMessages, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.tap.since(q.after))
    }
}

impl Handler<SetFaults> for Router {
    type Result = ();

    fn handle(&mut self, SetFaults(f): SetFaults, _: &mut Context<Self>) {
        tracing::info!("message faults now: {f}");
        self.status.borrow_mut().faults = f.clone();
        let old = self.inject.set(f);
        // A healed partition shows each link as it is now.
        for (&peer, &up) in &self.links {
            if old.blocked.contains(&peer) && !self.inject.faults().blocked.contains(&peer) {
                self.link(peer, up);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{Op, OpResult};
    use crate::node::waiting::PER_CONN;

    /// A role that counts the client commands handed to it.
    struct Role(Rc<RefCell<usize>>);

    impl Actor for Role {
        type Context = Context<Self>;
    }

    impl Handler<Deliver> for Role {
        type Result = ();

        fn handle(&mut self, Deliver(input): Deliver, _: &mut Context<Self>) {
            if let Input::Notice(Notice::Request(_)) = input {
                *self.0.borrow_mut() += 1;
            }
        }
    }

    /// A client connection that keeps the answers it gets.
    struct Client(Rc<RefCell<Vec<Reply>>>);

    impl Actor for Client {
        type Context = Context<Self>;
    }

    impl Handler<ToClient> for Client {
        type Result = ();

        fn handle(&mut self, ToClient(r): ToClient, _: &mut Context<Self>) {
            self.0.borrow_mut().push(r);
        }
    }

    /// Asks a client connection for nothing: once answered, everything sent
    /// to it before has been handled.
    #[derive(Message)]
    #[rtype(result = "()")]
    struct Ping;

    impl Handler<Ping> for Client {
        type Result = ();

        fn handle(&mut self, _: Ping, _: &mut Context<Self>) {}
    }

    /// Everything sent to the router so far has been handled, and so has
    /// everything it sent to `client` meanwhile (mailboxes keep their order).
    async fn settle(router: &Addr<Router>, client: &Addr<Client>) {
        router.send(GetMessages { after: 0 }).await.unwrap();
        client.send(Ping).await.unwrap();
    }

    fn get(client: u64, seq: u64) -> Command {
        Command {
            client,
            seq,
            op: Op::Get { key: "k".into() },
        }
    }

    #[actix_rt::test]
    async fn a_connection_past_its_share_of_waiting_commands_is_answered_busy() {
        let proposed = Rc::new(RefCell::new(0));
        let role = Role(proposed.clone()).start();
        let roles = Roles {
            acceptor: role.clone().recipient(),
            proposer: role.clone().recipient(),
            learner: role.clone().recipient(),
            replica: role.recipient(),
        };
        let router = Router::new(1, roles, BTreeMap::new(), Default::default()).start();
        let answers = Rc::new(RefCell::new(Vec::new()));
        let client = Client(answers.clone()).start();
        let ask = |cmd: Command, session: u64| {
            router.do_send(ClientCommand {
                cmd,
                session,
                reply_to: client.clone().recipient(),
            })
        };
        // A connection that sends and never gets an answer.
        let extra = 3;
        for seq in 1..=(PER_CONN + extra) as u64 {
            ask(get(7, seq), 1);
        }
        settle(&router, &client).await;
        assert_eq!(*proposed.borrow(), PER_CONN, "only its share was proposed");
        let busy: Vec<Reply> = (PER_CONN + 1..=PER_CONN + extra)
            .map(|seq| Reply {
                client: 7,
                seq: seq as u64,
                outcome: Outcome::Busy,
            })
            .collect();
        assert_eq!(*answers.borrow(), busy, "the rest answered Busy at once");
        // Another connection is served meanwhile.
        ask(get(8, 1), 2);
        // A connection that closes takes what it waited for along.
        ask(get(9, 1), 3);
        router.do_send(Forget(3));
        settle(&router, &client).await;
        assert_eq!(*proposed.borrow(), PER_CONN + 2);
        answers.borrow_mut().clear();
        let done = |client: u64, seq: u64| Reply {
            client,
            seq,
            outcome: Outcome::Done(OpResult::Value(None)),
        };
        let replies = (1..=PER_CONN as u64)
            .map(|seq| done(7, seq))
            .chain([done(8, 1), done(9, 1)])
            .collect();
        router.do_send(Effects {
            replies,
            ..Effects::default()
        });
        settle(&router, &client).await;
        assert_eq!(
            answers.borrow().len(),
            PER_CONN + 1,
            "all but the closed one's"
        );
        assert!(answers.borrow().iter().all(|r| r.client != 9));
    }
}
