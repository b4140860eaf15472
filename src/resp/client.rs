//! A small RESP client, for `synod chaos --client redis` and `synod bench
//! --redis`: the same operations as synod's own client, over the nodes' RESP
//! ports, so the checkers' verdict and the benchmark cover that path too.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::kv::{Op, OpResult};

use super::proto::{self, Frame};

/// One RESP connection.
pub struct RespConn {
    stream: TcpStream,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl RespConn {
    /// Connect to `addr`; every reply must come within `timeout`.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<RespConn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        Ok(RespConn {
            stream,
            buf: Vec::new(),
            out: Vec::new(),
        })
    }

    /// Send one command and read its reply.
    pub fn call(&mut self, args: &[&[u8]]) -> std::io::Result<Frame> {
        self.out.clear();
        proto::command(args, &mut self.out);
        self.stream.write_all(&self.out)?;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match proto::parse_reply(&self.buf).map_err(std::io::Error::other)? {
                Some((reply, used)) => {
                    self.buf.drain(..used);
                    return Ok(reply);
                }
                None => match self.stream.read(&mut chunk)? {
                    0 => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the node closed the connection",
                        ))
                    }
                    n => self.buf.extend_from_slice(&chunk[..n]),
                },
            }
        }
    }
}

/// Why an operation over RESP did not complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RespFailure {
    /// True if it may have been applied (its outcome is unknown).
    pub maybe_applied: bool,
    /// What happened.
    pub message: String,
}

/// A key-value client over the nodes' RESP ports: it talks to one node (any
/// node forwards to the leader), and moves to the next when that one fails.
pub struct RespKv {
    addrs: Vec<SocketAddr>,
    next: usize,
    conn: Option<RespConn>,
    id: u64,
    seq: u64,
    timeout: Duration,
}

impl RespKv {
    /// A client of the RESP ports `addrs`, starting at `addrs[first]`; a
    /// reply must come within `timeout`.
    pub fn new(addrs: Vec<SocketAddr>, first: usize, timeout: Duration) -> RespKv {
        RespKv {
            next: first % addrs.len().max(1),
            addrs,
            conn: None,
            id: 0,
            seq: 0,
            timeout,
        }
    }

    /// The synod client id the node uses for this connection (`CLIENT ID`).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Operations sent on this connection: the node's client numbers them
    /// the same way, one a command.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    fn connected(&mut self) -> Result<&mut RespConn, RespFailure> {
        if self.conn.is_none() {
            let mut last = String::from("no RESP address");
            for _ in 0..self.addrs.len() {
                let addr = self.addrs[self.next];
                self.next = (self.next + 1) % self.addrs.len();
                let conn = RespConn::connect(addr, self.timeout).and_then(|mut c| {
                    match c.call(&[b"CLIENT", b"ID"])? {
                        Frame::Int(id) => Ok((c, id as u64)),
                        other => Err(std::io::Error::other(format!("CLIENT ID: {other:?}"))),
                    }
                });
                match conn {
                    Ok((c, id)) => {
                        self.conn = Some(c);
                        self.id = id;
                        self.seq = 0;
                        break;
                    }
                    Err(e) => last = format!("{addr}: {e}"),
                }
            }
            if self.conn.is_none() {
                return Err(RespFailure {
                    maybe_applied: false,
                    message: last,
                });
            }
        }
        Ok(self.conn.as_mut().expect("connected just above"))
    }

    /// Run `op` as the matching command.
    pub fn execute(&mut self, op: &Op) -> Result<OpResult, RespFailure> {
        let args: Vec<&[u8]> = match op {
            Op::Put { key, value } => vec![b"SET", key.as_bytes(), value.as_bytes()],
            Op::Get { key } => vec![b"GET", key.as_bytes()],
            Op::Cas {
                key,
                expect: None,
                new,
            } => vec![b"SET", key.as_bytes(), new.as_bytes(), b"NX"],
            Op::Cas {
                key,
                expect: Some(old),
                new,
            } => vec![
                b"SET",
                key.as_bytes(),
                new.as_bytes(),
                b"IFEQ",
                old.as_bytes(),
            ],
            Op::Register => {
                return Err(RespFailure {
                    maybe_applied: false,
                    message: "a RESP connection's session is opened by the node".into(),
                })
            }
            Op::Reconfig { .. } => {
                return Err(RespFailure {
                    maybe_applied: false,
                    message: "membership changes go through `synod member`".into(),
                })
            }
            Op::Delete { .. } => {
                return Err(RespFailure {
                    maybe_applied: false,
                    message: "DEL over RESP answers a count, not the value removed".into(),
                })
            }
        };
        let conn = self.connected()?;
        let reply = conn.call(&args);
        self.seq += 1;
        let unknown = |message: String| RespFailure {
            maybe_applied: !op.is_read(),
            message,
        };
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                // A node that died or hangs: its answer may never come.
                self.conn = None;
                return Err(unknown(e.to_string()));
            }
        };
        match (op, reply) {
            (Op::Put { .. }, Frame::Simple(s)) if s == "OK" => Ok(OpResult::Done),
            (Op::Cas { .. }, Frame::Simple(s)) if s == "OK" => Ok(OpResult::Swapped(true)),
            (Op::Cas { .. }, Frame::Bulk(None)) => Ok(OpResult::Swapped(false)),
            (Op::Get { .. }, Frame::Bulk(v)) => Ok(OpResult::Value(
                v.map(|b| String::from_utf8_lossy(&b).into_owned()),
            )),
            (_, Frame::Error(e)) => {
                if e.contains("session expired") {
                    self.conn = None;
                }
                let maybe = e.contains("may still be applied") || e.contains("session expired");
                Err(RespFailure {
                    maybe_applied: maybe && !op.is_read(),
                    message: e,
                })
            }
            (_, other) => {
                self.conn = None;
                Err(unknown(format!("unexpected reply {other:?}")))
            }
        }
    }
}
