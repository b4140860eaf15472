//! [`Conn`]: a connection someone opened *to* this node: a peer's link (frames
//! of envelopes) or a client (requests and responses). It sends a challenge
//! at once; the first frame back must be a [`Hello`] of at most 4 KiB signed
//! with the key the roster holds for who it names (a member, the client, the
//! administrator), within 2 s (see [`super::gate`] for how many may wait). Only
//! the administrator may set faults or change the members. Anything else
//! (garbage, another cluster, a stranger, a wrong proof, an oversized frame)
//! closes just that connection, with a log line naming the remote address
//! (a few a second at most; the rest are counted).
//! Only then is the actor made, reading frames up to the full limit.
//!
//! Reading is a stream attached to the actor; writing goes through a
//! [`Writer`]. The outbound side, this node's link to a peer, is
//! [`super::link`].

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use super::router::{
    ClientCommand, Forget, GetLog, GetMessages, Inbound, Router, SetFaults, SharedStatus, ToClient,
};
use crate::kv::Op;
use crate::net::{self, Caller, Challenge, Hello, PeerFrame, Request, Response, Welcome};
use crate::paxos::{Command, NodeId};

use super::gate::{Gate, Quiet};
use super::writer::Writer;

/// How long a new connection has to finish its handshake (a peer or the CLI
/// says hello within milliseconds; a stranger holds a slot no longer).
pub(super) const HELLO_TIMEOUT: Duration = Duration::from_secs(2);

/// What every connection to this node needs to know.
pub struct ConnContext {
    /// This node.
    pub me: NodeId,
    /// Which process of it this is.
    pub incarnation: u64,
    /// The cluster's name.
    pub cluster: String,
    /// Its members as its log says, and its keys (it signs as itself and
    /// checks callers by the roster, grown by the members added at run time).
    pub members: super::members::SharedMembers,
    /// The router.
    pub router: Addr<Router>,
    /// Where `synod log` asks.
    pub log: Recipient<GetLog>,
    /// The node's status.
    pub status: SharedStatus,
    /// Its data directory (for its size in `status`).
    pub data_dir: std::path::PathBuf,
    /// Handshakes under way ([`Gate`]), and how often a refusal is logged.
    pub gate: std::cell::RefCell<Gate>,
    /// The refusal log's budget.
    pub quiet: std::cell::RefCell<Quiet>,
    /// How long client operations took to answer, lately (for `status`).
    pub clients: std::cell::RefCell<crate::stats::Window>,
}

/// The largest frame read before the caller proved its key: a hello fits
/// in far less, and a stranger cannot make the node reserve more.
const HELLO_FRAME: usize = 4096;

/// A connection someone opened to this node, once it proved its key.
pub struct Conn {
    ctx: Rc<ConnContext>,
    peer_addr: SocketAddr,
    caller: Caller,
    writer: Writer,
    session: u64,
    /// When each operation in flight on this connection arrived.
    asked: std::collections::HashMap<(u64, u64), std::time::Instant>,
}

type Reader = FramedRead<tokio::net::tcp::OwnedReadHalf, tokio_util::codec::LengthDelimitedCodec>;

impl Conn {
    /// Serve `stream`, accepted from `peer_addr`: challenge it at once, and
    /// serve it only once its hello proves a key the roster knows.
    pub fn serve(stream: TcpStream, peer_addr: SocketAddr, ctx: Rc<ConnContext>, session: u64) {
        let (ticket, pushed_out, evicted) = ctx.gate.borrow_mut().admit(peer_addr.ip());
        if evicted > 0 {
            refused(&ctx, &format!("made room for {peer_addr}: {evicted} older handshake(s) without a hello dropped"));
        }
        actix_rt::spawn(async move {
            let shake = tokio::select! {
                shake = tokio::time::timeout(HELLO_TIMEOUT, welcome(stream, &ctx)) => Some(shake),
                _ = pushed_out => None,
            };
            ctx.gate.borrow_mut().done(ticket);
            let Some(shake) = shake else {
                // Pushed out by newer connections: already logged.
                return;
            };
            match shake {
                Ok(Ok((reader, writer, caller))) => {
                    Conn::create(move |c| {
                        c.add_stream(reader);
                        Conn {
                            ctx,
                            peer_addr,
                            caller,
                            writer,
                            session,
                            asked: Default::default(),
                        }
                    });
                }
                Ok(Err(why)) => refused(
                    &ctx,
                    &format!("dropping connection from {peer_addr}: {why}"),
                ),
                Err(_) => refused(
                    &ctx,
                    &format!(
                        "dropping connection from {peer_addr}: no hello within {} s",
                        HELLO_TIMEOUT.as_secs()
                    ),
                ),
            }
        });
    }

    fn drop_conn(&mut self, why: &str, ctx: &mut Context<Self>) {
        tracing::warn!("dropping connection from {}: {why}", self.peer_addr);
        ctx.stop();
    }

    fn respond(&self, r: &Response) {
        self.writer.send(net::encode(r));
    }

    fn request(&mut self, req: Request, ctx: &mut Context<Self>) {
        match req {
            Request::Op { op, .. } if op.size() > net::MAX_OP_BYTES => {
                self.respond(&Response::Error(format!(
                    "the operation's key and value are {} bytes; the limit is {} bytes",
                    op.size(),
                    net::MAX_OP_BYTES
                )));
            }
            Request::Op {
                op: Op::Reconfig { .. },
                ..
            } if self.caller != Caller::Admin => {
                tracing::warn!(
                    "refused a membership change from {}: {} is not the administrator",
                    self.peer_addr,
                    self.caller
                );
                self.respond(&Response::Error(
                    "membership changes take the administrator's key".into(),
                ));
            }
            Request::Op { client, seq, op } => {
                // A client has one or a few operations in flight. An
                // operation never answered here (its client retried it
                // elsewhere) is forgotten once the map is full and it is
                // older than the window.
                let now = std::time::Instant::now();
                if self.asked.len() >= 1024 {
                    self.asked
                        .retain(|_, at| now.duration_since(*at) <= net::CLIENT_WINDOW);
                }
                if self.asked.len() < 1024 {
                    self.asked.insert((client, seq), now);
                }
                self.ctx.router.do_send(ClientCommand {
                    cmd: Command { client, seq, op },
                    session: self.session,
                    reply_to: ctx.address().recipient(),
                })
            }
            Request::Status => {
                let mut st = self.ctx.status.borrow().clone();
                st.id = self.ctx.me;
                (st.client_ops, st.client_p50_us, st.client_p99_us) = self
                    .ctx
                    .clients
                    .borrow_mut()
                    .summary(std::time::Instant::now());
                st.disk_bytes = crate::storage::dir_bytes(&self.ctx.data_dir);
                self.respond(&Response::Status(Box::new(st)));
            }
            Request::Log { from, limit } => {
                self.ctx
                    .log
                    .send(GetLog { from, limit })
                    .into_actor(self)
                    .map(|res, act, _| match res {
                        Ok((entries, first_unchosen, floor)) => act.respond(&Response::Log {
                            entries,
                            first_unchosen,
                            floor,
                        }),
                        Err(e) => act.respond(&Response::Error(e.to_string())),
                    })
                    .wait(ctx);
            }
            Request::Messages { after } => {
                self.ctx
                    .router
                    .send(GetMessages { after })
                    .into_actor(self)
                    .map(|res, act, _| match res {
                        Ok(m) => act.respond(&Response::Messages(m)),
                        Err(e) => act.respond(&Response::Error(e.to_string())),
                    })
                    .wait(ctx);
            }
            Request::SetFaults(_) if self.caller != Caller::Admin => {
                tracing::warn!(
                    "refused faults from {}: {} is not the administrator",
                    self.peer_addr,
                    self.caller
                );
                self.respond(&Response::Error(
                    "message faults take the administrator's key".into(),
                ));
            }
            Request::SetFaults(f) => match f.check(&self.ctx.members.borrow().named()) {
                Ok(()) => {
                    self.ctx.router.do_send(SetFaults(f));
                    self.respond(&Response::Ok);
                }
                Err(why) => {
                    tracing::warn!("refused faults from {}: {why}", self.peer_addr);
                    self.respond(&Response::Error(why));
                }
            },
        }
    }
}

/// Log a refused handshake, unless the budget for such lines is spent (then
/// it is counted, and the next line written says how many were not).
fn refused(ctx: &ConnContext, line: &str) {
    match ctx.quiet.borrow_mut().allow(std::time::Instant::now()) {
        Some(0) => tracing::warn!("{line}"),
        Some(n) => tracing::warn!("{line} ({n} more refusals not logged)"),
        None => {}
    }
}

/// The node's side of the handshake: challenge, a hello that proves the
/// caller's key (read with a small frame limit), welcome. Then the connection reads
/// frames up to the full limit.
async fn welcome(stream: TcpStream, ctx: &ConnContext) -> Result<(Reader, Writer, Caller), String> {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let writer = Writer::spawn(write);
    let challenge = Challenge::new(ctx.me);
    writer.send(net::encode(&challenge));
    let mut frames = FramedRead::new(read, net::codec_limited(HELLO_FRAME));
    let frame = match frames.next().await {
        Some(Ok(f)) => f,
        Some(Err(e)) => return Err(format!("bad hello: {e}")),
        None => return Err("closed before its hello".into()),
    };
    let hello: Hello = net::decode(&frame).map_err(|e| format!("bad hello: {e}"))?;
    let welcome = {
        let members = ctx.members.borrow();
        let not_member = match hello.caller {
            Caller::Node(id) if id != ctx.me => members.refusal(id, ctx.status.borrow().chosen),
            _ => None,
        };
        let keys = members.keys();
        // The members are checked above; the hello checks the rest (a node
        // cannot call itself; the key must be the caller's).
        let admitted: Vec<NodeId> = match hello.caller {
            Caller::Node(id) if id != ctx.me => vec![id],
            _ => Vec::new(),
        };
        if let Some(why) =
            not_member.or_else(|| hello.refusal(&ctx.cluster, &admitted, &keys.roster, &challenge))
        {
            return Err(format!("refused hello: {why}"));
        }
        Welcome::new(&ctx.cluster, ctx.incarnation, keys, &challenge, &hello)
    };
    writer.send(net::encode(&welcome));
    // From now on, frames up to the full limit.
    frames.decoder_mut().set_max_frame_length(net::MAX_FRAME);
    Ok((frames, writer, hello.caller))
}

impl Actor for Conn {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        if self.caller.is_client() {
            self.ctx.router.do_send(Forget(self.session));
        }
    }
}

impl StreamHandler<Result<BytesMut, std::io::Error>> for Conn {
    fn handle(&mut self, frame: Result<BytesMut, std::io::Error>, ctx: &mut Context<Self>) {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => return self.drop_conn(&e.to_string(), ctx),
        };
        if !self.writer.is_open() {
            // It took none of its answers for a while (the writer gave up):
            // asking more would only pile up answers nobody reads.
            return self.drop_conn("it read none of its answers for 1 s", ctx);
        }
        match self.caller {
            Caller::Node(peer) => match net::decode::<PeerFrame>(&frame) {
                Ok(PeerFrame(envs)) => {
                    let first_unchosen = self.ctx.status.borrow().chosen;
                    let removed = self.ctx.members.borrow().refusal(peer, first_unchosen);
                    match removed {
                        None => self.ctx.router.do_send(Inbound(peer, envs)),
                        Some(why) => self.drop_conn(&why, ctx),
                    }
                }
                Err(e) => self.drop_conn(&e, ctx),
            },
            Caller::Client | Caller::Admin => match net::decode::<Request>(&frame) {
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
        if let Some(at) = self.asked.remove(&(r.client, r.seq)) {
            self.ctx
                .clients
                .borrow_mut()
                .record(std::time::Instant::now(), at.elapsed());
        }
        self.respond(&Response::Op {
            client: r.client,
            seq: r.seq,
            outcome: r.outcome,
        });
    }
}
