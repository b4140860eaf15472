//! A node's RESP port: one thread accepts, one thread a connection.
//!
//! Each connection reads what arrives (at most [`MAX_REQUEST`] of a command
//! not yet whole), answers every whole command in order (pipelined commands
//! included), writing replies out as they fill 64 KiB ([`Replies`]: an MGET's
//! values, a pipeline's replies are never held whole), and reads again. So
//! one connection holds a few MiB at most, whatever it asks. Commands go to the cluster through synod's own client, with a
//! client id of the connection's own: it finds the leader (a follower's
//! connection is forwarded there without the RESP client knowing), retries
//! with the same request id, and gives up within its timeout. A protocol
//! error closes that connection with a log line; the node serves on.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::client::{self, Client, ClientError};
use crate::cluster::Cluster;
use crate::kv::{Op, OpResult};
use crate::net::{NodeStatus, Request, Response};
use crate::paxos::NodeId;

use super::commands::{dispatch, After, Backend, ClientState, PasswordCheck};
use super::proto::{self, Frame, Replies};

/// Connections served at once; one more is told so and closed.
pub const MAX_CONNECTIONS: usize = 1024;
/// The most a connection may have sent of one command before it is whole.
pub const MAX_REQUEST: usize = 4 << 20;

/// How long a client may leave replies unread before it is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a node's RESP port needs.
#[derive(Clone, Debug)]
pub struct RespConfig {
    /// The cluster, with the client key (the port's client proves it to
    /// nodes) and the roster (which checks the RESP password).
    pub cluster: Cluster,
    /// This node.
    pub node: NodeId,
}

/// Serve RESP on `listener` from a thread of its own.
pub fn spawn(listener: TcpListener, cfg: RespConfig) -> std::io::Result<()> {
    let name = format!("node{}-resp", cfg.node);
    std::thread::Builder::new()
        .name(name)
        .spawn(move || accept(listener, Arc::new(cfg)))?;
    Ok(())
}

fn accept(listener: TcpListener, cfg: Arc<RespConfig>) {
    let live = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("RESP accept failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if live.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            let _ = stream.write_all(b"-ERR max number of clients reached\r\n");
            continue;
        }
        live.fetch_add(1, Ordering::Relaxed);
        let (cfg, gone) = (cfg.clone(), live.clone());
        let spawned = std::thread::Builder::new()
            .name("resp-conn".into())
            .stack_size(1 << 20)
            .spawn(move || {
                serve(stream, &cfg);
                gone.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            live.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!("RESP: cannot start a connection thread: {e}");
        }
    }
}

/// The cluster, as a connection's commands see it.
struct ClusterBackend<'a> {
    cfg: &'a RespConfig,
    client: Option<Client>,
}

impl Backend for ClusterBackend<'_> {
    fn execute(&mut self, op: Op) -> Result<OpResult, ClientError> {
        let cluster = &self.cfg.cluster;
        self.client
            .get_or_insert_with(|| Client::new(cluster.clone()))
            .execute(op)
    }

    fn status(&mut self) -> Option<NodeStatus> {
        let addr = self.cfg.cluster.node(self.cfg.node)?.addr;
        match client::query(
            addr,
            &self.cfg.cluster,
            &Request::Status,
            Duration::from_secs(1),
        ) {
            Ok(Response::Status(s)) => Some(*s),
            _ => None,
        }
    }

    fn client_id(&mut self) -> Result<u64, ClientError> {
        let cluster = &self.cfg.cluster;
        self.client
            .get_or_insert_with(|| Client::new(cluster.clone()))
            .session()
    }
}

fn serve(mut stream: TcpStream, cfg: &RespConfig) {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a: SocketAddr| a.to_string());
    let _ = stream.set_nodelay(true);
    let me = cfg.cluster.node(cfg.node);
    let password = match (cfg.cluster.redis_auth, cfg.cluster.keys.clone()) {
        (true, Some(keys)) => {
            Some(Box::new(move |p: &[u8]| keys.roster.is_resp_password(p)) as PasswordCheck)
        }
        // Asked for AUTH but no roster to check it against: nobody gets in.
        (true, None) => Some(Box::new(|_: &[u8]| false) as PasswordCheck),
        (false, _) => None,
    };
    let mut session = ClientState {
        node: cfg.node,
        port: me.and_then(|n| n.redis_addr).map_or(0, |a| a.port()),
        fsync: cfg.cluster.fsync,
        password,
        authenticated: false,
    };
    let mut backend = ClusterBackend { cfg, client: None };
    // Replies go out through a second handle as they are made; a client that
    // stops reading them is dropped after WRITE_TIMEOUT.
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let _ = writer.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let mut used = 0;
        let mut close = false;
        let mut out = Replies::to(&mut writer);
        loop {
            match proto::parse(&buf[used..]) {
                Ok(Some((args, n))) => {
                    used += n;
                    if args.is_empty() {
                        continue;
                    }
                    if dispatch(&args, &mut session, &mut backend, &mut out) == After::Close {
                        close = true;
                        break;
                    }
                }
                Ok(None) if buf.len() - used > MAX_REQUEST => {
                    tracing::warn!("RESP client {peer}: a request above {MAX_REQUEST} bytes; closing the connection");
                    out.frame(&Frame::err("Protocol error: request too big"));
                    close = true;
                    break;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("RESP client {peer}: {e}; closing the connection");
                    out.frame(&Frame::err(&e));
                    close = true;
                    break;
                }
            }
        }
        buf.drain(..used);
        if let Err(e) = out.flush() {
            tracing::warn!("RESP client {peer}: its replies could not be written ({e}; it has {} s to read them); closing the connection", WRITE_TIMEOUT.as_secs());
            return;
        }
        drop(out);
        if close {
            // Let the client read the last reply: closing with its bytes
            // unread would reset the connection and lose it.
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
            let mut left = 1 << 20;
            while left > 0 {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left -= n.min(left),
                }
            }
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
