//! One actor per TCP connection.
//!
//! - [`PeerLink`]: this node's connection *to* one peer. It connects (and
//!   reconnects, with backoff), proves the cluster secret in the handshake,
//!   learns which process of the peer it reached (its incarnation), and batches
//!   the envelopes routed to it into frames of at most [`net::MAX_FRAME`].
//!   While the peer is unreachable, frames wait in a backlog bounded in bytes;
//!   frames queued for a process of the peer that has since died are dropped
//!   when the link reaches its next one, never replayed to it.
//! - [`Conn`]: a connection someone opened *to* this node: a peer's link (frames
//!   of envelopes) or a client (requests and responses). It sends a challenge
//!   at once; the first frame back must be a [`Hello`] of at most 4 KiB with a
//!   good proof, from a member of this cluster, within 5 s. Anything else
//!   (garbage, another cluster, a stranger, a wrong proof, an oversized frame)
//!   closes just that connection, with one log line naming the remote address.
//!   Only then is the actor made, reading frames up to the full limit.
//!
//! Reading is a stream attached to the actor; writing goes through a channel to
//! a small task that coalesces frames into one `write`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio_util::codec::FramedRead;

use super::router::{
    ClientCommand, Forget, GetLog, GetMessages, Inbound, Outbound, PeerEvent, Router, SetFaults,
    SharedStatus, ToClient,
};
use crate::net::{self, Caller, Challenge, Hello, PeerFrame, Request, Response, Secret, Welcome};
use crate::paxos::{Command, Envelope, NodeId};

/// Bytes of frames buffered for a peer that is not connected, at most.
const BACKLOG_BYTES: usize = 16 << 20;
/// Bytes of frames handed to a connection's writer and not yet written, at
/// most (a paused peer stops reading; past this, frames are dropped as lost).
const IN_FLIGHT_BYTES: usize = 32 << 20;
/// Seconds a new connection has to finish its handshake.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection's writer: frames go through `tx`; `in_flight` counts the
/// bytes handed over and not yet written.
struct Writer {
    tx: UnboundedSender<Bytes>,
    in_flight: Arc<AtomicUsize>,
}

impl Writer {
    /// Start the task that writes frames to `w`; it ends with the connection.
    fn spawn(mut w: OwnedWriteHalf) -> Writer {
        let (tx, mut rx): (_, UnboundedReceiver<Bytes>) = unbounded_channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let counter = in_flight.clone();
        actix_rt::spawn(async move {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            while let Some(first) = rx.recv().await {
                let mut taken = first.len();
                if net::put_frame(&mut buf, first).is_err() {
                    tracing::error!("not sending a frame above the frame limit");
                }
                while buf.len() < (1 << 20) {
                    match rx.try_recv() {
                        Ok(more) => {
                            taken += more.len();
                            if net::put_frame(&mut buf, more).is_err() {
                                tracing::error!("not sending a frame above the frame limit");
                            }
                        }
                        Err(_) => break,
                    }
                }
                let ok = w.write_all(&buf).await.is_ok();
                counter.fetch_sub(taken, Ordering::Relaxed);
                if !ok {
                    break;
                }
                buf.clear();
            }
            let _ = w.shutdown().await;
        });
        Writer { tx, in_flight }
    }

    /// Hand `frame` to the writer; false if the connection is gone or too
    /// much is waiting already.
    fn send(&self, frame: Bytes) -> bool {
        let len = frame.len();
        if self.in_flight.load(Ordering::Relaxed) + len > IN_FLIGHT_BYTES {
            return false;
        }
        self.in_flight.fetch_add(len, Ordering::Relaxed);
        self.tx.send(frame).is_ok()
    }
}

// ------------------------------------------------------------------ outbound

#[derive(Message)]
#[rtype(result = "()")]
struct Flush;

/// What a link knows of the cluster and itself.
pub struct LinkConfig {
    /// This node.
    pub me: NodeId,
    /// The peer.
    pub peer: NodeId,
    /// Where the peer listens.
    pub addr: SocketAddr,
    /// The cluster's name.
    pub cluster: String,
    /// The cluster's secret.
    pub secret: Secret,
    /// Drop frames queued for a dead process of the peer (the `fresh` guard).
    pub fresh: bool,
    /// Told when the peer's process is reached and when its end closes.
    pub router: Addr<Router>,
}

/// This node's connection to one peer.
pub struct PeerLink {
    cfg: Rc<LinkConfig>,
    writer: Option<Writer>,
    pending: Vec<Envelope>,
    /// Frames waiting for a connection, each with the incarnation of the
    /// peer they were meant for (`None`: never reached yet).
    backlog: VecDeque<(Option<u64>, Bytes)>,
    backlog_bytes: usize,
    /// The process of the peer last reached.
    incarnation: Option<u64>,
    flush_due: bool,
    connecting: bool,
    backoff: Duration,
    /// Counts connections, so a stale one's end is not taken for the current's.
    generation: u64,
    dropped: u64,
}

type Handshaken = (
    FramedRead<tokio::net::tcp::OwnedReadHalf, tokio_util::codec::LengthDelimitedCodec>,
    OwnedWriteHalf,
    u64,
);

impl PeerLink {
    /// A link as `cfg` describes.
    pub fn new(cfg: LinkConfig) -> Self {
        PeerLink {
            cfg: Rc::new(cfg),
            writer: None,
            pending: Vec::new(),
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            incarnation: None,
            flush_due: false,
            connecting: false,
            backoff: Duration::from_millis(10),
            generation: 0,
            dropped: 0,
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.connecting || self.writer.is_some() {
            return;
        }
        self.connecting = true;
        let cfg = self.cfg.clone();
        handshake(cfg)
            .into_actor(self)
            .map(|res, act, ctx| {
                act.connecting = false;
                match res {
                    Ok(h) => act.connected(h, ctx),
                    Err(why) => {
                        if let Some(why) = why {
                            tracing::warn!("node {}: {why}", act.cfg.peer);
                        }
                        act.retry(ctx);
                    }
                }
            })
            .spawn(ctx);
    }

    fn retry(&mut self, ctx: &mut Context<Self>) {
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(Duration::from_millis(200));
        ctx.run_later(wait, |act, ctx| act.connect(ctx));
    }

    fn connected(&mut self, (mut frames, write, incarnation): Handshaken, ctx: &mut Context<Self>) {
        let writer = Writer::spawn(write);
        if self.incarnation.is_some_and(|i| i != incarnation) {
            tracing::info!(
                "node {} restarted (a new process); frames queued for the old one are dropped",
                self.cfg.peer
            );
        }
        self.incarnation = Some(incarnation);
        let mut stale = 0;
        for (meant, frame) in self.backlog.drain(..) {
            if self.cfg.fresh && meant.is_some_and(|m| m != incarnation) {
                stale += 1;
                continue;
            }
            if !writer.send(frame) {
                break;
            }
        }
        self.backlog_bytes = 0;
        if stale > 0 {
            tracing::debug!(
                "dropped {stale} frames meant for node {}'s previous process",
                self.cfg.peer
            );
        }
        self.backoff = Duration::from_millis(10);
        tracing::debug!("connected to node {} at {}", self.cfg.peer, self.cfg.addr);
        // The peer never writes after its welcome; reading tells us when it
        // closes (its process died or stopped: the kernel closes its sockets
        // at once), so the roles learn of it now and we reconnect even if we
        // have nothing to send.
        self.generation += 1;
        let generation = self.generation;
        async move { while let Some(Ok(_)) = frames.next().await {} }
            .into_actor(self)
            .map(move |_, act, ctx| act.disconnected(generation, ctx))
            .spawn(ctx);
        self.writer = Some(writer);
        self.cfg.router.do_send(PeerEvent {
            peer: self.cfg.peer,
            up: true,
        });
    }

    fn disconnected(&mut self, generation: u64, ctx: &mut Context<Self>) {
        if generation == self.generation && self.writer.take().is_some() {
            tracing::debug!("lost the connection to node {}", self.cfg.peer);
            // Its end closed (reading saw the end, or writing failed: a
            // paused peer only stops reading, it never fails a write).
            self.cfg.router.do_send(PeerEvent {
                peer: self.cfg.peer,
                up: false,
            });
            self.retry(ctx);
        }
    }

    /// Keep `frame` for when the peer is reachable again, within the bound.
    fn queue(&mut self, frame: Bytes) {
        while self.backlog_bytes + frame.len() > BACKLOG_BYTES {
            match self.backlog.pop_front() {
                Some((_, old)) => self.backlog_bytes -= old.len(),
                None => return,
            }
        }
        self.backlog_bytes += frame.len();
        self.backlog.push_back((self.incarnation, frame));
    }

    /// `envs` as frames of at most the frame limit each.
    fn frames(&mut self, envs: Vec<Envelope>) -> Vec<Bytes> {
        // A slice encodes as the PeerFrame of its envelopes would.
        let frame = net::encode(&envs.as_slice());
        if frame.len() <= net::MAX_FRAME {
            return vec![frame];
        }
        if envs.len() == 1 {
            tracing::error!(
                "not sending a {} of {} bytes to node {}: above the frame limit",
                envs[0].msg.kind(),
                frame.len(),
                self.cfg.peer
            );
            return Vec::new();
        }
        let mut envs = envs;
        let back = envs.split_off(envs.len() / 2);
        let mut out = self.frames(envs);
        out.extend(self.frames(back));
        out
    }
}

/// Connect to the peer and shake hands: read its challenge, prove the secret,
/// check its proof back. `Err(None)`: not reachable (quietly retried);
/// `Err(Some(why))`: reached, but it is not who it should be.
async fn handshake(cfg: Rc<LinkConfig>) -> Result<Handshaken, Option<String>> {
    let stream = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(cfg.addr))
        .await
        .map_err(|_| None)?
        .map_err(|_| None)?;
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut frames = FramedRead::new(read, net::codec());
    let mut next = async || -> Result<BytesMut, Option<String>> {
        match tokio::time::timeout(HELLO_TIMEOUT, frames.next()).await {
            Ok(Some(Ok(f))) => Ok(f),
            _ => Err(None),
        }
    };
    let challenge: Challenge = net::decode(&next().await?).map_err(Some)?;
    if let Some(why) = challenge.refusal() {
        return Err(Some(why));
    }
    if challenge.node != cfg.peer {
        return Err(Some(format!(
            "{} answered as node {}",
            cfg.addr, challenge.node
        )));
    }
    let hello = Hello::new(&cfg.cluster, Caller::Node(cfg.me), &cfg.secret, &challenge);
    let mut buf = BytesMut::new();
    net::put_frame(&mut buf, net::encode(&hello)).map_err(|e| Some(e.to_string()))?;
    write.write_all(&buf).await.map_err(|_| None)?;
    let welcome: Welcome = net::decode(&next().await?).map_err(Some)?;
    if !welcome.genuine(&cfg.cluster, &cfg.secret, &challenge, &hello) {
        return Err(Some(format!(
            "{} did not prove the cluster secret; not sending it anything",
            cfg.addr
        )));
    }
    Ok((frames, write, welcome.incarnation))
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
        let pending = std::mem::take(&mut self.pending);
        for frame in self.frames(pending) {
            let sent = match &self.writer {
                Some(w) if !w.tx.is_closed() => {
                    if !w.send(frame.clone()) {
                        // The peer stopped reading (paused?): count it lost.
                        self.dropped += 1;
                        if self.dropped.is_power_of_two() {
                            tracing::warn!(
                                "node {} is not reading; {} frames dropped so far",
                                self.cfg.peer,
                                self.dropped
                            );
                        }
                    }
                    true
                }
                _ => false,
            };
            if !sent {
                self.disconnected(self.generation, ctx);
                self.queue(frame);
            }
        }
    }
}

// ------------------------------------------------------------------ inbound

/// What every connection to this node needs to know.
pub struct ConnContext {
    /// This node.
    pub me: NodeId,
    /// Which process of it this is.
    pub incarnation: u64,
    /// The cluster's name.
    pub cluster: String,
    /// Its members.
    pub members: Vec<NodeId>,
    /// Its secret.
    pub secret: Secret,
    /// The router.
    pub router: Addr<Router>,
    /// Where `synod log` asks.
    pub log: Recipient<GetLog>,
    /// The node's status.
    pub status: SharedStatus,
    /// Its data directory (for its size in `status`).
    pub data_dir: std::path::PathBuf,
    /// Handshakes under way.
    pub handshakes: std::cell::Cell<usize>,
    /// How long client operations took to answer, lately (for `status`).
    pub clients: std::cell::RefCell<crate::stats::Window>,
}

/// The largest frame read before the caller proved the secret: a hello fits
/// in far less, and a stranger cannot make the node reserve more.
const HELLO_FRAME: usize = 4096;
/// Handshakes under way at once, at most; more connections wait their turn
/// by being closed at once.
const MAX_HANDSHAKES: usize = 64;

/// A connection someone opened to this node, once it proved the secret.
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
    /// serve it only once its hello proves the cluster's secret.
    pub fn serve(stream: TcpStream, peer_addr: SocketAddr, ctx: Rc<ConnContext>, session: u64) {
        if ctx.handshakes.get() >= MAX_HANDSHAKES {
            tracing::warn!(
                "dropping connection from {peer_addr}: {MAX_HANDSHAKES} handshakes already under way"
            );
            return;
        }
        ctx.handshakes.set(ctx.handshakes.get() + 1);
        actix_rt::spawn(async move {
            let shake = tokio::time::timeout(HELLO_TIMEOUT, welcome(stream, &ctx)).await;
            ctx.handshakes.set(ctx.handshakes.get() - 1);
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
                Ok(Err(why)) => tracing::warn!("dropping connection from {peer_addr}: {why}"),
                Err(_) => tracing::warn!(
                    "dropping connection from {peer_addr}: no hello within {} s",
                    HELLO_TIMEOUT.as_secs()
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
                st.disk_bytes = dir_bytes(&self.ctx.data_dir);
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
            Request::SetFaults(f) => match f.check(&self.ctx.members) {
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

/// Bytes of the files in `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The node's side of the handshake: challenge, a hello that proves the
/// secret (read with a small frame limit), welcome. Then the connection reads
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
    if let Some(why) = hello.refusal(&ctx.cluster, &ctx.members, &ctx.secret, &challenge) {
        return Err(format!("refused hello: {why}"));
    }
    let welcome = Welcome::new(
        &ctx.cluster,
        ctx.incarnation,
        &ctx.secret,
        &challenge,
        &hello,
    );
    writer.send(net::encode(&welcome));
    // From now on, frames up to the full limit.
    frames.decoder_mut().set_max_frame_length(net::MAX_FRAME);
    Ok((frames, writer, hello.caller))
}

impl Actor for Conn {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        if self.caller == Caller::Client {
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
        match self.caller {
            Caller::Node(peer) => match net::decode::<PeerFrame>(&frame) {
                Ok(PeerFrame(envs)) => self.ctx.router.do_send(Inbound(peer, envs)),
                Err(e) => self.drop_conn(&e, ctx),
            },
            Caller::Client => match net::decode::<Request>(&frame) {
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
