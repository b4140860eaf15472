//! [`PeerLink`]: this node's connection *to* one peer. It connects (and
//! reconnects, with backoff), proves this node's key in the handshake,
//! learns which process of the peer it reached (its incarnation), and batches
//! the envelopes routed to it into frames of at most [`net::MAX_FRAME`].
//! While the peer is unreachable, frames wait in a backlog bounded in bytes
//! and in age (a frame older than [`STALL`] is dropped as lost: a peer paused
//! for long must not work through all it missed when it resumes); frames
//! queued for a process of the peer that has since died are dropped when the
//! link reaches its next one, never replayed to it. A peer that stops reading
//! loses the connection after [`STALL`] (see [`super::writer`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use super::router::{Outbound, PeerEvent, Router};
use crate::net::{self, Challenge, Hello, Keys, Welcome};
use crate::paxos::{Envelope, NodeId};

use super::conn::HELLO_TIMEOUT;
use super::writer::{Writer, STALL};

/// Bytes of frames buffered for a peer that is not connected, at most.
const BACKLOG_BYTES: usize = 16 << 20;

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
    /// This node's keys (it signs as itself; it checks the peer's key).
    pub keys: Keys,
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
    /// peer they were meant for (`None`: never reached yet) and when.
    backlog: VecDeque<(Option<u64>, Instant, Bytes)>,
    backlog_bytes: usize,
    /// The process of the peer last reached.
    incarnation: Option<u64>,
    flush_due: bool,
    connecting: bool,
    backoff: Duration,
    /// Counts connections, so a stale one's end is not taken for the current's.
    generation: u64,
    /// The task that reads the connection (to see its end).
    reader: Option<SpawnHandle>,
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
            reader: None,
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
        let now = Instant::now();
        for (meant, at, frame) in self.backlog.drain(..) {
            if self.cfg.fresh && meant.is_some_and(|m| m != incarnation) {
                stale += 1;
                continue;
            }
            if now.duration_since(at) > STALL {
                continue; // lost: it waited too long
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
        let reader = async move { while let Some(Ok(_)) = frames.next().await {} }
            .into_actor(self)
            .map(move |_, act, ctx| act.disconnected(generation, ctx));
        self.reader = Some(ctx.spawn(reader));
        self.writer = Some(writer);
        self.cfg.router.do_send(PeerEvent {
            peer: self.cfg.peer,
            up: true,
        });
    }

    fn disconnected(&mut self, generation: u64, ctx: &mut Context<Self>) {
        if generation == self.generation && self.writer.take().is_some() {
            tracing::debug!("lost the connection to node {}", self.cfg.peer);
            // Drop the reading half too: a connection whose writer gave up
            // on a stalled peer is reset only once both halves are gone.
            if let Some(reader) = self.reader.take() {
                ctx.cancel_future(reader);
            }
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
                Some((_, _, old)) => self.backlog_bytes -= old.len(),
                None => return,
            }
        }
        self.backlog_bytes += frame.len();
        self.backlog
            .push_back((self.incarnation, Instant::now(), frame));
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

/// Connect to the peer and shake hands: read its challenge, sign as this node,
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
    let hello = Hello::new(&cfg.cluster, &cfg.keys, &challenge);
    let mut buf = BytesMut::new();
    net::put_frame(&mut buf, net::encode(&hello)).map_err(|e| Some(e.to_string()))?;
    write.write_all(&buf).await.map_err(|_| None)?;
    let welcome: Welcome = net::decode(&next().await?).map_err(Some)?;
    if !welcome.genuine(&cfg.cluster, &cfg.keys.roster, &challenge, &hello) {
        return Err(Some(format!(
            "{} did not prove it is node {}; not sending it anything",
            cfg.addr, cfg.peer
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
                Some(w) if w.is_open() => {
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
