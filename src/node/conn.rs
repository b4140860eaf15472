//! One actor per TCP connection.
//!
//! - [`PeerLink`]: this node's connection *to* one peer. It connects (and
//!   reconnects, with backoff), says hello, and batches the envelopes routed to
//!   it into frames.
//! - [`Conn`]: a connection someone opened *to* this node: a peer's link (frames
//!   of envelopes) or a client (requests and responses). Its first frame must be
//!   a good [`Hello`]; garbage, a wrong cluster or an oversized frame closes just
//!   that connection, with a log line.
//!
//! Reading is a stream attached to the actor; writing goes through a channel to
//! a small task that coalesces frames into one `write`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio_util::codec::FramedRead;

use super::roles::{GetLog, LearnerActor, SharedStatus};
use super::router::{ClientCommand, Forget, Inbound, Router, SetFaults, ToClient};
use crate::net::{self, Caller, Hello, PeerFrame, Request, Response};
use crate::paxos::{Command, Envelope, NodeId};

/// Envelopes buffered for a peer that is not connected, at most.
const BACKLOG: usize = 4096;
/// Seconds a new connection has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Start the task that writes `rx`'s payloads as frames; it reports the end of
/// the connection by dropping `rx`.
fn spawn_writer(mut w: OwnedWriteHalf, mut rx: UnboundedReceiver<Bytes>) {
    actix_rt::spawn(async move {
        let mut buf = Vec::with_capacity(64 * 1024);
        while let Some(first) = rx.recv().await {
            net::put_frame(&mut buf, &first);
            while buf.len() < (1 << 20) {
                match rx.try_recv() {
                    Ok(more) => net::put_frame(&mut buf, &more),
                    Err(_) => break,
                }
            }
            if w.write_all(&buf).await.is_err() {
                break;
            }
            buf.clear();
        }
        let _ = w.shutdown().await;
    });
}

// ------------------------------------------------------------------ outbound

/// An envelope for this link's peer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Outbound(pub Envelope);

#[derive(Message)]
#[rtype(result = "()")]
struct Flush;

/// This node's connection to one peer.
pub struct PeerLink {
    me: NodeId,
    peer: NodeId,
    addr: SocketAddr,
    cluster: String,
    tx: Option<UnboundedSender<Bytes>>,
    pending: Vec<Envelope>,
    backlog: VecDeque<Bytes>,
    flush_due: bool,
    connecting: bool,
    backoff: Duration,
    /// Counts connections, so a stale one's end is not taken for the current's.
    generation: u64,
}

impl PeerLink {
    /// A link from `me` to `peer` at `addr`.
    pub fn new(me: NodeId, peer: NodeId, addr: SocketAddr, cluster: &str) -> Self {
        PeerLink {
            me,
            peer,
            addr,
            cluster: cluster.to_string(),
            tx: None,
            pending: Vec::new(),
            backlog: VecDeque::new(),
            flush_due: false,
            connecting: false,
            backoff: Duration::from_millis(10),
            generation: 0,
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.connecting || self.tx.is_some() {
            return;
        }
        self.connecting = true;
        let addr = self.addr;
        async move { tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await }
            .into_actor(self)
            .map(|res, act, ctx| {
                act.connecting = false;
                match res {
                    Ok(Ok(stream)) => act.connected(stream, ctx),
                    _ => act.retry(ctx),
                }
            })
            .spawn(ctx);
    }

    fn retry(&mut self, ctx: &mut Context<Self>) {
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(Duration::from_millis(200));
        ctx.run_later(wait, |act, ctx| act.connect(ctx));
    }

    fn connected(&mut self, stream: TcpStream, ctx: &mut Context<Self>) {
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (tx, rx) = unbounded_channel();
        spawn_writer(write, rx);
        let _ = tx.send(net::encode(&Hello::new(
            &self.cluster,
            Caller::Node(self.me),
        )));
        for frame in self.backlog.drain(..) {
            let _ = tx.send(frame);
        }
        self.backoff = Duration::from_millis(10);
        tracing::debug!("connected to node {} at {}", self.peer, self.addr);
        // The peer never writes on this connection; reading tells us when it
        // closes, so we reconnect even if we have nothing to send.
        self.generation += 1;
        let generation = self.generation;
        async move {
            use tokio::io::AsyncReadExt;
            let mut read = read;
            let mut sink = [0u8; 64];
            while let Ok(n) = read.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        }
        .into_actor(self)
        .map(move |_, act, ctx| act.disconnected(generation, ctx))
        .spawn(ctx);
        self.tx = Some(tx);
    }

    fn disconnected(&mut self, generation: u64, ctx: &mut Context<Self>) {
        if generation == self.generation && self.tx.take().is_some() {
            tracing::debug!("lost the connection to node {}", self.peer);
            self.retry(ctx);
        }
    }
}

impl Actor for PeerLink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.connect(ctx);
    }
}

impl Handler<Outbound> for PeerLink {
    type Result = ();

    fn handle(&mut self, Outbound(env): Outbound, ctx: &mut Context<Self>) {
        self.pending.push(env);
        if !self.flush_due {
            // Everything routed to this peer before the flush runs goes in one frame.
            self.flush_due = true;
            ctx.notify(Flush);
        }
    }
}

impl Handler<Flush> for PeerLink {
    type Result = ();

    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) {
        self.flush_due = false;
        if self.pending.is_empty() {
            return;
        }
        let frame = net::encode(&PeerFrame(std::mem::take(&mut self.pending)));
        let sent = match &self.tx {
            Some(tx) => tx.send(frame.clone()).is_ok(),
            None => false,
        };
        if !sent {
            self.disconnected(self.generation, ctx);
            if self.backlog.len() >= BACKLOG {
                self.backlog.pop_front();
            }
            self.backlog.push_back(frame);
        }
    }
}

// ------------------------------------------------------------------ inbound

/// A connection someone opened to this node.
pub struct Conn {
    me: NodeId,
    cluster: String,
    peer_addr: SocketAddr,
    caller: Option<Caller>,
    tx: UnboundedSender<Bytes>,
    router: Addr<Router>,
    learner: Addr<LearnerActor>,
    status: SharedStatus,
    session: u64,
}

impl Conn {
    /// Serve `stream`, accepted from `peer_addr`.
    #[allow(clippy::too_many_arguments)]
    pub fn serve(
        stream: TcpStream,
        peer_addr: SocketAddr,
        me: NodeId,
        cluster: String,
        router: Addr<Router>,
        learner: Addr<LearnerActor>,
        status: SharedStatus,
        session: u64,
    ) {
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (tx, rx) = unbounded_channel();
        spawn_writer(write, rx);
        Conn::create(move |ctx| {
            ctx.add_stream(FramedRead::new(read, net::codec()));
            Conn {
                me,
                cluster,
                peer_addr,
                caller: None,
                tx,
                router,
                learner,
                status,
                session,
            }
        });
    }

    fn drop_conn(&mut self, why: &str, ctx: &mut Context<Self>) {
        tracing::warn!("dropping connection from {}: {why}", self.peer_addr);
        ctx.stop();
    }

    fn respond(&self, r: &Response) {
        let _ = self.tx.send(net::encode(r));
    }

    fn request(&mut self, req: Request, ctx: &mut Context<Self>) {
        match req {
            Request::Op { client, seq, op } => self.router.do_send(ClientCommand {
                cmd: Command { client, seq, op },
                session: self.session,
                reply_to: ctx.address().recipient(),
            }),
            Request::Status => {
                let mut st = self.status.borrow().clone();
                st.id = self.me;
                self.respond(&Response::Status(st));
            }
            Request::Log { from, limit } => {
                self.learner
                    .send(GetLog { from, limit })
                    .into_actor(self)
                    .map(|res, act, _| match res {
                        Ok((entries, first_unchosen)) => act.respond(&Response::Log {
                            entries,
                            first_unchosen,
                        }),
                        Err(e) => act.respond(&Response::Error(e.to_string())),
                    })
                    .wait(ctx);
            }
            Request::SetFaults(f) => {
                self.router.do_send(SetFaults(f));
                self.respond(&Response::Ok);
            }
        }
    }
}

impl Actor for Conn {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_later(HELLO_TIMEOUT, |act, ctx| {
            if act.caller.is_none() {
                act.drop_conn("no hello within 5 s", ctx);
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if self.caller == Some(Caller::Client) {
            self.router.do_send(Forget(self.session));
        }
    }
}

impl StreamHandler<Result<BytesMut, std::io::Error>> for Conn {
    fn handle(&mut self, frame: Result<BytesMut, std::io::Error>, ctx: &mut Context<Self>) {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => return self.drop_conn(&e.to_string(), ctx),
        };
        match &self.caller {
            None => match net::decode::<Hello>(&frame) {
                Ok(hello) => match hello.refusal(&self.cluster) {
                    Some(why) => self.drop_conn(&format!("refused hello: {why}"), ctx),
                    None => {
                        if hello.caller == Caller::Client {
                            self.respond(&Response::Welcome { node: self.me });
                        }
                        self.caller = Some(hello.caller);
                    }
                },
                Err(e) => self.drop_conn(&format!("bad hello: {e}"), ctx),
            },
            Some(Caller::Node(peer)) => {
                let peer = *peer;
                match net::decode::<PeerFrame>(&frame) {
                    Ok(PeerFrame(envs)) => self.router.do_send(Inbound(peer, envs)),
                    Err(e) => self.drop_conn(&e, ctx),
                }
            }
            Some(Caller::Client) => match net::decode::<Request>(&frame) {
                Ok(req) => self.request(req, ctx),
                Err(e) => self.drop_conn(&e, ctx),
            },
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<ToClient> for Conn {
    type Result = ();

    fn handle(&mut self, ToClient(r): ToClient, _: &mut Context<Self>) {
        self.respond(&Response::Op {
            client: r.client,
            seq: r.seq,
            outcome: r.outcome,
        });
    }
}
