//! The commands a node's RESP port understands, over any [`Backend`].
//!
//! Every data command becomes one or more operations of the replicated log,
//! exactly as the CLI's: writes are chosen and applied before `+OK`, reads are
//! linearizable. What Redis has and synod has not (expiry, other types) gets a
//! Redis-style error, and the connection stays usable.

use crate::client::ClientError;
use crate::kv::{Op, OpResult};
use crate::net::NodeStatus;

use super::proto::{Args, Frame, Replies};

/// Where commands go: the cluster (a node's client), or a map in tests.
pub trait Backend {
    /// Run one operation through the replicated log.
    fn execute(&mut self, op: Op) -> Result<OpResult, ClientError>;
    /// This node's state, for INFO (None if it did not answer).
    fn status(&mut self) -> Option<NodeStatus>;
    /// The session this connection's writes carry in the log (`CLIENT ID`),
    /// opened now if need be.
    fn client_id(&mut self) -> Result<u64, ClientError>;
}

/// What the connection does after a reply.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    /// Read the next command.
    Continue,
    /// Close (QUIT).
    Close,
}

/// Checks a password AUTH gave.
pub type PasswordCheck = Box<dyn Fn(&[u8]) -> bool + Send>;

/// One connection's state: which node, whether it authenticated.
pub struct ClientState {
    /// This node's id.
    pub node: u64,
    /// This node's RESP port (for INFO).
    pub port: u16,
    /// Whether the log is synced before a reply (for CONFIG GET appendfsync).
    pub fsync: bool,
    /// The password AUTH must give, if any: `None`, no AUTH needed.
    pub password: Option<PasswordCheck>,
    /// Whether this connection gave it.
    pub authenticated: bool,
}

/// Why a command got no ordinary reply.
pub enum Failure {
    /// An error reply: nothing was applied.
    Reply(Frame),
    /// A write whose outcome is unknown: it may have been applied, or may be
    /// yet. A Redis client takes any error reply to mean "not applied" (and
    /// may send the write again), so there is none: the connection is closed
    /// without a reply, as if the server had died mid-command, which clients
    /// treat as an unknown outcome.
    Unknown(ClientError),
}

impl From<Frame> for Failure {
    fn from(f: Frame) -> Self {
        Failure::Reply(f)
    }
}

/// Run `op`; a failed write whose outcome is unknown is [`Failure::Unknown`].
fn exec(backend: &mut dyn Backend, op: Op) -> Result<OpResult, Failure> {
    let read = op.is_read();
    backend.execute(op).map_err(|e| {
        if e.maybe_applied() && !read {
            Failure::Unknown(e)
        } else {
            Failure::Reply(failed(&e))
        }
    })
}

/// The error for a failed operation that was not applied: TRYAGAIN when the
/// cluster could not commit it in time (the client may retry), ERR otherwise.
fn failed(e: &ClientError) -> Frame {
    match e {
        ClientError::NoQuorum { .. } | ClientError::Busy { .. } | ClientError::NotLeader { .. } => {
            Frame::Error(format!("TRYAGAIN {e}"))
        }
        ClientError::Expired | ClientError::TooLarge { .. } | ClientError::Refused { .. } => {
            Frame::err(e)
        }
    }
}

fn text(arg: &[u8], what: &str) -> Result<String, Frame> {
    String::from_utf8(arg.to_vec()).map_err(|_| {
        Frame::err(format!(
            "synod keeps UTF-8 text; this {what} is not valid UTF-8"
        ))
    })
}

fn arity(name: &str) -> Frame {
    Frame::err(format!("wrong number of arguments for '{name}' command"))
}

/// Run one command, its reply written to `out`; whether to keep the
/// connection.
pub fn dispatch(
    args: &Args,
    session: &mut ClientState,
    backend: &mut dyn Backend,
    out: &mut Replies,
) -> After {
    let Some(first) = args.first() else {
        out.frame(&Frame::err("empty command"));
        return After::Continue;
    };
    let name = String::from_utf8_lossy(first).to_ascii_lowercase();
    let rest = &args[1..];
    match name.as_str() {
        "quit" => {
            out.frame(&Frame::ok());
            return After::Close;
        }
        "auth" => {
            out.frame(&auth(rest, session));
            return After::Continue;
        }
        _ => {}
    }
    if session.password.is_some() && !session.authenticated && name != "hello" {
        out.frame(&Frame::Error("NOAUTH Authentication required.".into()));
        return After::Continue;
    }
    let reply = RedisCommand::parse(&name, first, rest)
        .map_err(Failure::Reply)
        .and_then(|cmd| cmd.apply(session, backend, out));
    match reply {
        Ok(()) => {}
        Err(Failure::Reply(reply)) => out.frame(&reply),
        Err(Failure::Unknown(e)) => {
            tracing::warn!("RESP: a {name}'s outcome is unknown ({e}); closing the connection without a reply, as a server that died would");
            out.cut();
        }
    }
    if out.broken() {
        After::Close
    } else {
        After::Continue
    }
}

fn auth(rest: &[Vec<u8>], session: &mut ClientState) -> Frame {
    let password = match rest {
        [p] => p,
        [user, p] if user.as_slice() == b"default" => p,
        [_, _] => {
            return Frame::Error(
                "WRONGPASS invalid username-password pair or user is disabled.".into(),
            )
        }
        _ => return arity("auth"),
    };
    match &session.password {
        None => Frame::err(
            "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ),
        Some(check) if check(password) => {
            session.authenticated = true;
            Frame::ok()
        }
        Some(_) => Frame::Error(
            "WRONGPASS invalid username-password pair or user is disabled.".into(),
        ),
    }
}

/// A parsed command: what [`RedisCommand::parse`] makes of the arguments
/// (mini-redis's frames → typed commands → apply). Parsing checks arity,
/// UTF-8 and options; nothing reaches the cluster before it succeeds.
#[derive(Debug, PartialEq, Eq)]
pub enum RedisCommand {
    /// PING [message]
    Ping(Option<Vec<u8>>),
    /// ECHO message
    Echo(Vec<u8>),
    /// GET key
    Get(String),
    /// SET key value [NX | XX | IFEQ old]
    Set {
        /// The key.
        key: String,
        /// Its new value.
        value: String,
        /// When to write.
        cond: SetCond,
    },
    /// DEL / UNLINK key...
    Del(Vec<String>),
    /// EXISTS key...
    Exists(Vec<String>),
    /// MGET key...
    Mget(Vec<String>),
    /// INFO [section]
    Info,
    /// SELECT 0 (the only database)
    Select,
    /// COMMAND [COUNT | DOCS | INFO ...]
    Command(Option<Vec<u8>>),
    /// CONFIG GET parameter...
    ConfigGet(Vec<Vec<u8>>),
    /// CLIENT subcommand (SETINFO, SETNAME, ID, GETNAME)
    Client(Vec<u8>),
    /// HELLO [2]
    Hello,
}

/// When SET writes.
#[derive(Debug, PartialEq, Eq)]
pub enum SetCond {
    /// Always.
    Always,
    /// NX: if the key is absent.
    Absent,
    /// XX: if it is present.
    Present,
    /// IFEQ old: if it holds `old`.
    Equal(String),
}

fn keys(args: &[Vec<u8>]) -> Result<Vec<String>, Frame> {
    args.iter().map(|k| text(k, "key")).collect()
}

impl RedisCommand {
    /// Parse command `name` (lowercase; `first` as sent) with arguments
    /// `rest`; the error reply if it is not one synod serves as given.
    pub fn parse(name: &str, first: &[u8], rest: &[Vec<u8>]) -> Result<Self, Frame> {
        use RedisCommand as C;
        Ok(match (name, rest) {
            ("ping", []) => C::Ping(None),
            ("ping", [msg]) => C::Ping(Some(msg.clone())),
            ("echo", [msg]) => C::Echo(msg.clone()),
            ("get", [key]) => C::Get(text(key, "key")?),
            ("set", [key, value, opts @ ..]) => C::Set {
                key: text(key, "key")?,
                value: text(value, "value")?,
                cond: set_cond(opts)?,
            },
            ("del" | "unlink", ks) if !ks.is_empty() => C::Del(keys(ks)?),
            ("exists", ks) if !ks.is_empty() => C::Exists(keys(ks)?),
            ("mget", ks) if !ks.is_empty() => C::Mget(keys(ks)?),
            ("info", [] | [_]) => C::Info,
            ("select", [db]) if db.as_slice() == b"0" => C::Select,
            ("select", [_]) => return Err(Frame::err("DB index is out of range")),
            ("command", _) => C::Command(rest.first().map(|s| s.to_ascii_lowercase())),
            ("config", [sub, params @ ..])
                if sub.eq_ignore_ascii_case(b"get") && !params.is_empty() =>
            {
                C::ConfigGet(params.to_vec())
            }
            ("config", [sub, ..]) => {
                return Err(Frame::err(format!(
                    "CONFIG {} is not supported; synod's settings live in its cluster file",
                    String::from_utf8_lossy(sub)
                )))
            }
            ("client", [sub, ..]) => C::Client(sub.to_ascii_lowercase()),
            ("hello", []) => C::Hello,
            ("hello", [v, ..]) if v.as_slice() == b"2" => C::Hello,
            ("hello", _) => {
                return Err(Frame::Error(
                    "NOPROTO this protocol version is not supported".into(),
                ))
            }
            (
                "ping" | "echo" | "get" | "set" | "del" | "unlink" | "exists" | "mget" | "info"
                | "select" | "config" | "client",
                _,
            ) => return Err(arity(name)),
            _ => {
                let mut msg = format!(
                    "unknown command '{}', with args beginning with: ",
                    String::from_utf8_lossy(&first[..first.len().min(128)])
                );
                for a in rest.iter().take(8) {
                    msg.push_str(&format!("'{}' ", String::from_utf8_lossy(a)));
                }
                return Err(Frame::err(msg));
            }
        })
    }

    /// Carry the command out against `backend`, writing its reply to `out`;
    /// an error reply (nothing written yet) comes back as `Err`.
    pub fn apply(
        self,
        session: &ClientState,
        backend: &mut dyn Backend,
        out: &mut Replies,
    ) -> Result<(), Failure> {
        use RedisCommand as C;
        let reply = match self {
            C::Ping(None) => Frame::Simple("PONG".into()),
            C::Ping(Some(msg)) | C::Echo(msg) => Frame::bulk(msg),
            C::Get(key) => match exec(backend, Op::Get { key })? {
                OpResult::Value(v) => Frame::Bulk(v.map(String::into_bytes)),
                other => return Err(Frame::err(format!("unexpected result {other}")).into()),
            },
            C::Set { key, value, cond } => set(key, value, cond, backend)?,
            C::Del(keys) => present(backend, keys, |key| Op::Delete { key })?,
            C::Exists(keys) => present(backend, keys, |key| Op::Get { key })?,
            C::Mget(keys) => return mget(keys, backend, out),
            C::Info => Frame::bulk(info(session, backend.status())),
            C::Select => Frame::ok(),
            C::Command(sub) => command(sub.as_deref()),
            C::ConfigGet(params) => config_get(&params, session),
            C::Client(sub) => client(&sub, backend),
            C::Hello => hello(session),
        };
        out.frame(&reply);
        Ok(())
    }
}

/// MGET: each value written as it is read, so the reply is never whole in
/// memory. An error on the first key is the reply; a later one leaves the
/// array unfinished, so the connection is closed (with a log line).
fn mget(keys: Vec<String>, backend: &mut dyn Backend, out: &mut Replies) -> Result<(), Failure> {
    let n = keys.len();
    for (i, key) in keys.into_iter().enumerate() {
        let value = match backend.execute(Op::Get { key }) {
            Ok(OpResult::Value(v)) => Frame::Bulk(v.map(String::into_bytes)),
            Ok(_) => Frame::nil(),
            Err(e) if i == 0 => return Err(Failure::Reply(failed(&e))),
            Err(e) => {
                tracing::warn!(
                    "RESP: MGET failed at key {} of {n}: {e}; closing the connection",
                    i + 1
                );
                out.cut();
                return Ok(());
            }
        };
        if i == 0 {
            out.array(n);
        }
        out.frame(&value);
        if out.broken() {
            return Ok(());
        }
    }
    Ok(())
}

/// DEL and EXISTS: run `op` on each key in turn; how many held a value.
fn present(
    backend: &mut dyn Backend,
    keys: Vec<String>,
    op: impl Fn(String) -> Op,
) -> Result<Frame, Failure> {
    let mut n = 0;
    for key in keys {
        if let OpResult::Value(Some(_)) = exec(backend, op(key))? {
            n += 1;
        }
    }
    Ok(Frame::Int(n))
}

/// SET's options: NX, XX or IFEQ old, at most one; expiry and GET refused.
fn set_cond(opts: &[Vec<u8>]) -> Result<SetCond, Frame> {
    let mut cond = SetCond::Always;
    let mut i = 0;
    while i < opts.len() {
        let opt = String::from_utf8_lossy(&opts[i]).to_ascii_lowercase();
        cond =
            match (opt.as_str(), &cond) {
                ("nx", SetCond::Always) => SetCond::Absent,
                ("xx", SetCond::Always) => SetCond::Present,
                ("ifeq", SetCond::Always) if i + 1 < opts.len() => {
                    i += 1;
                    SetCond::Equal(text(&opts[i], "value")?)
                }
                ("ex" | "px" | "exat" | "pxat" | "keepttl", _) => return Err(Frame::err(
                    "synod keys do not expire (EX, PX, EXAT, PXAT and KEEPTTL are not supported)",
                )),
                ("get", _) => {
                    return Err(Frame::err(
                        "SET ... GET is not supported; use GET, then SET ... IFEQ",
                    ))
                }
                _ => return Err(Frame::err("syntax error")),
            };
        i += 1;
    }
    Ok(cond)
}

/// SET key value under `cond`: plain, if absent, if present, if equal.
fn set(
    key: String,
    new: String,
    cond: SetCond,
    backend: &mut dyn Backend,
) -> Result<Frame, Failure> {
    let swapped = |r: OpResult| match r {
        OpResult::Swapped(true) => Frame::ok(),
        _ => Frame::nil(),
    };
    Ok(match cond {
        SetCond::Always => {
            exec(backend, Op::Put { key, value: new })?;
            Frame::ok()
        }
        SetCond::Absent => swapped(exec(
            backend,
            Op::Cas {
                key,
                expect: None,
                new,
            },
        )?),
        SetCond::Equal(old) => swapped(exec(
            backend,
            Op::Cas {
                key,
                expect: Some(old),
                new,
            },
        )?),
        // If present: read it, then swap from what was read. A swap refused
        // means someone wrote between the two: read again. The write happens
        // at the swap, while the key holds what was read, so it is present.
        SetCond::Present => {
            for _ in 0..100 {
                let OpResult::Value(current) = exec(backend, Op::Get { key: key.clone() })? else {
                    return Err(Frame::err("unexpected result").into());
                };
                let Some(current) = current else {
                    return Ok(Frame::nil());
                };
                let op = Op::Cas {
                    key: key.clone(),
                    expect: Some(current),
                    new: new.clone(),
                };
                if exec(backend, op)? == OpResult::Swapped(true) {
                    return Ok(Frame::ok());
                }
            }
            return Err(
                Frame::Error("TRYAGAIN the key kept changing under SET ... XX".into()).into(),
            );
        }
    })
}

/// INFO: a server section, replication in Redis's terms, and the node's Paxos state.
fn info(session: &ClientState, status: Option<NodeStatus>) -> String {
    let mut s = String::new();
    s.push_str("# Server\r\n");
    s.push_str("redis_version:7.0.0\r\n");
    s.push_str(&format!("synod_version:{}\r\n", env!("CARGO_PKG_VERSION")));
    s.push_str("redis_mode:standalone\r\n");
    s.push_str(&format!("process_id:{}\r\n", std::process::id()));
    s.push_str(&format!("tcp_port:{}\r\n", session.port));
    s.push_str("\r\n# Replication\r\n");
    match &status {
        Some(st) => {
            let leads = st.role == "leader";
            s.push_str(&format!(
                "role:{}\r\n",
                if leads { "master" } else { "slave" }
            ));
            if let (false, Some(l)) = (leads, st.leader) {
                s.push_str(&format!("master_node:{l}\r\n"));
            }
            s.push_str("\r\n# Paxos\r\n");
            s.push_str(&format!("node_id:{}\r\n", st.id));
            s.push_str(&format!("paxos_role:{}\r\n", st.role));
            s.push_str(&format!(
                "leader:{}\r\n",
                st.leader.map_or("none".to_string(), |l| l.to_string())
            ));
            s.push_str(&format!("promised:{}\r\n", st.promised));
            s.push_str(&format!("chosen:{}\r\n", st.chosen));
            s.push_str(&format!("applied:{}\r\n", st.applied));
            s.push_str(&format!("snapshot:{}\r\n", st.snapshot));
            s.push_str(&format!("disk_bytes:{}\r\n", st.disk_bytes));
        }
        None => {
            s.push_str("role:unknown\r\n");
            s.push_str(&format!("\r\n# Paxos\r\nnode_id:{}\r\n", session.node));
        }
    }
    s
}

/// COMMAND: enough for redis-cli to start (it asks for DOCS and COUNT).
fn command(sub: Option<&[u8]>) -> Frame {
    match sub {
        Some(b"count") => Frame::Int(COMMANDS.len() as i64),
        Some(b"docs" | b"info") => Frame::Array(Vec::new()),
        None => Frame::Array(COMMANDS.iter().map(|c| Frame::bulk(*c)).collect()),
        Some(_) => Frame::Array(Vec::new()),
    }
}

/// The commands served, for COMMAND.
const COMMANDS: [&str; 15] = [
    "ping", "echo", "get", "set", "del", "unlink", "exists", "mget", "info", "command", "config",
    "client", "select", "auth", "quit",
];

/// CONFIG GET: what redis-benchmark asks at start, answered truthfully.
fn config_get(params: &[Vec<u8>], session: &ClientState) -> Frame {
    let known = [
        ("save", String::new()),
        ("appendonly", "yes".to_string()),
        (
            "appendfsync",
            if session.fsync { "always" } else { "no" }.to_string(),
        ),
        ("databases", "1".to_string()),
    ];
    let mut out = Vec::new();
    for p in params {
        let p = p.to_ascii_lowercase();
        for (k, v) in &known {
            if p == k.as_bytes() || p == b"*" {
                out.push(Frame::bulk(*k));
                out.push(Frame::bulk(v.clone()));
            }
        }
    }
    Frame::Array(out)
}

fn client(sub: &[u8], backend: &mut dyn Backend) -> Frame {
    match sub {
        b"setinfo" | b"setname" => Frame::ok(),
        b"id" => match backend.client_id() {
            Ok(id) => Frame::Int(id as i64),
            Err(e) => failed(&e),
        },
        b"getname" => Frame::nil(),
        _ => Frame::err(format!(
            "CLIENT {} is not supported",
            String::from_utf8_lossy(sub)
        )),
    }
}

fn hello(session: &ClientState) -> Frame {
    Frame::Array(vec![
        Frame::bulk("server"),
        Frame::bulk("synod"),
        Frame::bulk("version"),
        Frame::bulk(env!("CARGO_PKG_VERSION")),
        Frame::bulk("proto"),
        Frame::Int(2),
        Frame::bulk("id"),
        Frame::Int(session.node as i64),
        Frame::bulk("mode"),
        Frame::bulk("standalone"),
        Frame::bulk("role"),
        Frame::bulk("master"),
        Frame::bulk("modules"),
        Frame::Array(Vec::new()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::Kv;

    /// A backend over a plain map: the commands' logic without a cluster.
    struct Map {
        kv: Kv,
        ops: Vec<Op>,
        fail: bool,
        /// Fail as a command whose outcome is unknown.
        unknown: bool,
    }

    impl Backend for Map {
        fn execute(&mut self, op: Op) -> Result<OpResult, ClientError> {
            if self.fail {
                return Err(ClientError::NoQuorum {
                    answered: 1,
                    total: 3,
                    majority: 2,
                    secs: 5.0,
                    maybe_applied: self.unknown,
                });
            }
            self.ops.push(op.clone());
            Ok(self.kv.apply(&op))
        }
        fn client_id(&mut self) -> Result<u64, ClientError> {
            Ok(42)
        }
        fn status(&mut self) -> Option<NodeStatus> {
            Some(NodeStatus {
                id: 2,
                role: "follower".into(),
                leader: Some(1),
                applied: 7,
                ..NodeStatus::default()
            })
        }
    }

    fn session(password: Option<&'static str>) -> ClientState {
        ClientState {
            node: 2,
            port: 8302,
            fsync: true,
            password: password
                .map(|p| Box::new(move |given: &[u8]| given == p.as_bytes()) as PasswordCheck),
            authenticated: false,
        }
    }

    fn map() -> Map {
        Map {
            kv: Kv::new(),
            ops: Vec::new(),
            fail: false,
            unknown: false,
        }
    }

    #[test]
    fn a_command_is_parsed_whole_before_anything_reaches_the_cluster() {
        let args = |ws: &[&[u8]]| ws.iter().map(|w| w.to_vec()).collect::<Vec<_>>();
        assert_eq!(
            RedisCommand::parse("set", b"SET", &args(&[b"k", b"v", b"IFEQ", b"old"])),
            Ok(RedisCommand::Set {
                key: "k".into(),
                value: "v".into(),
                cond: SetCond::Equal("old".into()),
            })
        );
        assert_eq!(
            RedisCommand::parse("set", b"SET", &args(&[b"k", b"v", b"NX", b"XX"])),
            Err(Frame::err("syntax error"))
        );
        // A DEL whose second key is not UTF-8 deletes nothing, not the first.
        let (mut s, mut m) = (session(None), map());
        let del = args(&[b"DEL", b"a", b"\xff"]);
        let (reply, _) = dispatch(&del, &mut s, &mut m);
        assert!(matches!(reply, Frame::Error(e) if e.contains("UTF-8")));
        assert!(m.ops.is_empty(), "{:?}", m.ops);
    }

    fn say(s: &mut ClientState, m: &mut Map, line: &str) -> Frame {
        let args = line.split(' ').map(|w| w.as_bytes().to_vec()).collect();
        dispatch(&args, s, m).0
    }

    /// One command's reply, read back from what it wrote, and the verdict.
    fn dispatch(args: &Args, s: &mut ClientState, m: &mut Map) -> (Frame, After) {
        let mut out = Replies::buffer();
        let after = super::dispatch(args, s, m, &mut out);
        let (frame, used) = super::super::proto::parse_reply(out.bytes())
            .unwrap()
            .unwrap();
        assert_eq!(used, out.bytes().len(), "one reply, whole");
        (frame, after)
    }

    #[test]
    fn set_get_and_conditional_sets_follow_redis() {
        let (mut s, mut m) = (session(None), map());
        assert_eq!(say(&mut s, &mut m, "GET k"), Frame::nil());
        assert_eq!(say(&mut s, &mut m, "SET k v XX"), Frame::nil());
        assert_eq!(say(&mut s, &mut m, "SET k a NX"), Frame::ok());
        assert_eq!(say(&mut s, &mut m, "SET k b NX"), Frame::nil());
        assert_eq!(say(&mut s, &mut m, "get k"), Frame::bulk("a"));
        assert_eq!(say(&mut s, &mut m, "SET k c IFEQ b"), Frame::nil());
        assert_eq!(say(&mut s, &mut m, "SET k c IFEQ a"), Frame::ok());
        assert_eq!(say(&mut s, &mut m, "SET k d XX"), Frame::ok());
        assert_eq!(say(&mut s, &mut m, "GET k"), Frame::bulk("d"));
        assert_eq!(
            say(&mut s, &mut m, "SET k d NX XX"),
            Frame::err("syntax error")
        );
        assert!(
            matches!(say(&mut s, &mut m, "SET k d EX 10"), Frame::Error(e) if e.contains("expire"))
        );
        assert_eq!(
            say(&mut s, &mut m, "MGET k nope k"),
            Frame::Array(vec![Frame::bulk("d"), Frame::nil(), Frame::bulk("d")])
        );
        assert_eq!(say(&mut s, &mut m, "EXISTS k nope k"), Frame::Int(2));
        assert_eq!(say(&mut s, &mut m, "DEL k nope"), Frame::Int(1));
        assert_eq!(say(&mut s, &mut m, "DEL k"), Frame::Int(0));
        // Every data command went through the backend, as log operations.
        assert!(m.ops.iter().all(|op| op.key() == "k" || op.key() == "nope"));
    }

    #[test]
    fn unknown_commands_and_bad_arity_keep_the_connection() {
        let (mut s, mut m) = (session(None), map());
        let args = vec![b"LPUSH".to_vec(), b"l".to_vec(), b"x".to_vec()];
        let (r, after) = dispatch(&args, &mut s, &mut m);
        assert_eq!(
            r,
            Frame::err("unknown command 'LPUSH', with args beginning with: 'l' 'x' ")
        );
        assert_eq!(after, After::Continue);
        assert_eq!(
            say(&mut s, &mut m, "GET"),
            Frame::err("wrong number of arguments for 'get' command")
        );
        assert_eq!(say(&mut s, &mut m, "PING"), Frame::Simple("PONG".into()));
        let (_, after) = dispatch(&vec![b"QUIT".to_vec()], &mut s, &mut m);
        assert_eq!(after, After::Close);
        let bad = vec![b"GET".to_vec(), vec![0xff, 0xfe]];
        assert!(matches!(dispatch(&bad, &mut s, &mut m).0, Frame::Error(e) if e.contains("UTF-8")));
    }

    #[test]
    fn no_quorum_is_tryagain_never_a_hang() {
        let (mut s, mut m) = (session(None), map());
        m.fail = true;
        assert!(
            matches!(say(&mut s, &mut m, "SET k v"), Frame::Error(e) if e.starts_with("TRYAGAIN no quorum"))
        );
        assert!(
            matches!(say(&mut s, &mut m, "GET k"), Frame::Error(e) if e.starts_with("TRYAGAIN"))
        );
    }

    #[test]
    fn a_write_of_unknown_outcome_gets_no_error_reply_the_connection_closes() {
        // An error reply would tell a Redis client "not applied", and it may
        // be: so nothing is written, and the connection is closed.
        let (mut s, mut m) = (session(None), map());
        assert_eq!(say(&mut s, &mut m, "PING"), Frame::Simple("PONG".into()));
        (m.fail, m.unknown) = (true, true);
        for write in ["SET k v", "SET k v NX", "DEL k"] {
            let args = write.split(' ').map(|w| w.as_bytes().to_vec()).collect();
            let mut out = Replies::buffer();
            let after = super::dispatch(&args, &mut s, &mut m, &mut out);
            assert_eq!(after, After::Close, "{write}");
            assert!(out.bytes().is_empty(), "{write}: {:?}", out.bytes());
        }
        // A read changes nothing: its failure is an ordinary TRYAGAIN.
        assert!(
            matches!(say(&mut s, &mut m, "GET k"), Frame::Error(e) if e.starts_with("TRYAGAIN"))
        );
    }

    #[test]
    fn with_a_password_only_auth_opens_the_door() {
        let (mut s, mut m) = (session(Some("sesame")), map());
        assert_eq!(
            say(&mut s, &mut m, "GET k"),
            Frame::Error("NOAUTH Authentication required.".into())
        );
        assert!(m.ops.is_empty());
        assert!(
            matches!(say(&mut s, &mut m, "AUTH wrong"), Frame::Error(e) if e.starts_with("WRONGPASS"))
        );
        assert!(
            matches!(say(&mut s, &mut m, "AUTH alice sesame"), Frame::Error(e) if e.starts_with("WRONGPASS"))
        );
        assert_eq!(say(&mut s, &mut m, "AUTH default sesame"), Frame::ok());
        assert_eq!(say(&mut s, &mut m, "GET k"), Frame::nil());
        let (mut s, mut m) = (session(None), map());
        assert!(
            matches!(say(&mut s, &mut m, "AUTH x"), Frame::Error(e) if e.contains("without any password"))
        );
    }

    #[test]
    fn info_and_config_tell_the_truth() {
        let (mut s, mut m) = (session(None), map());
        let Frame::Bulk(Some(info)) = say(&mut s, &mut m, "INFO") else {
            panic!("INFO is a bulk string")
        };
        let info = String::from_utf8(info).unwrap();
        assert!(
            info.contains("role:slave\r\n") && info.contains("master_node:1\r\n"),
            "{info}"
        );
        assert!(info.contains("paxos_role:follower\r\n") && info.contains("applied:7\r\n"));
        assert_eq!(
            say(&mut s, &mut m, "CONFIG GET appendfsync"),
            Frame::Array(vec![Frame::bulk("appendfsync"), Frame::bulk("always")])
        );
        assert_eq!(say(&mut s, &mut m, "CONFIG GET nope"), Frame::Array(vec![]));
        assert!(matches!(
            say(&mut s, &mut m, "CONFIG SET save x"),
            Frame::Error(_)
        ));
        assert_eq!(say(&mut s, &mut m, "COMMAND DOCS"), Frame::Array(vec![]));
        assert_eq!(say(&mut s, &mut m, "CLIENT ID"), Frame::Int(42));
    }
}
