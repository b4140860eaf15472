//! The commands a node's RESP port understands, over any [`Backend`].
//!
//! Every data command becomes one or more operations of the replicated log,
//! exactly as the CLI's: writes are chosen and applied before `+OK`, reads are
//! linearizable. What Redis has and synod has not (expiry, other types) gets a
//! Redis-style error, and the connection stays usable.

use crate::client::ClientError;
use crate::kv::{Op, OpResult};
use crate::net::NodeStatus;

use super::proto::{Args, Reply};

/// Where commands go: the cluster (a node's client), or a map in tests.
pub trait Backend {
    /// Run one operation through the replicated log.
    fn execute(&mut self, op: Op) -> Result<OpResult, ClientError>;
    /// This node's state, for INFO (None if it did not answer).
    fn status(&mut self) -> Option<NodeStatus>;
    /// A client whose session the cluster forgot starts a new one.
    fn renew(&mut self) {}
    /// The id this connection's operations carry in the log (`CLIENT ID`).
    fn client_id(&mut self) -> u64;
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
pub struct Session {
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

/// The error for a failed operation: TRYAGAIN when the cluster could not
/// commit it in time (the client may retry), ERR otherwise.
fn failed(e: &ClientError) -> Reply {
    match e {
        ClientError::NoQuorum { .. } | ClientError::Busy { .. } | ClientError::NotLeader { .. } => {
            Reply::Error(format!("TRYAGAIN {e}"))
        }
        ClientError::Expired => Reply::err(e),
    }
}

fn text(arg: &[u8], what: &str) -> Result<String, Reply> {
    String::from_utf8(arg.to_vec()).map_err(|_| {
        Reply::err(format!(
            "synod keeps UTF-8 text; this {what} is not valid UTF-8"
        ))
    })
}

fn arity(name: &str) -> Reply {
    Reply::err(format!("wrong number of arguments for '{name}' command"))
}

/// Run one command; the reply, and whether to keep the connection.
pub fn dispatch(args: &Args, session: &mut Session, backend: &mut dyn Backend) -> (Reply, After) {
    let Some(first) = args.first() else {
        return (Reply::err("empty command"), After::Continue);
    };
    let name = String::from_utf8_lossy(first).to_ascii_lowercase();
    let rest = &args[1..];
    match name.as_str() {
        "quit" => return (Reply::ok(), After::Close),
        "auth" => return (auth(rest, session), After::Continue),
        _ => {}
    }
    if session.password.is_some() && !session.authenticated && name != "hello" {
        return (
            Reply::Error("NOAUTH Authentication required.".into()),
            After::Continue,
        );
    }
    let reply = match run(&name, first, rest, session, backend) {
        Ok(r) | Err(r) => r,
    };
    if matches!(&reply, Reply::Error(e) if e.contains("session expired")) {
        backend.renew();
    }
    (reply, After::Continue)
}

fn auth(rest: &[Vec<u8>], session: &mut Session) -> Reply {
    let password = match rest {
        [p] => p,
        [user, p] if user.as_slice() == b"default" => p,
        [_, _] => {
            return Reply::Error(
                "WRONGPASS invalid username-password pair or user is disabled.".into(),
            )
        }
        _ => return arity("auth"),
    };
    match &session.password {
        None => Reply::err(
            "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ),
        Some(check) if check(password) => {
            session.authenticated = true;
            Reply::ok()
        }
        Some(_) => Reply::Error(
            "WRONGPASS invalid username-password pair or user is disabled.".into(),
        ),
    }
}

fn run(
    name: &str,
    first: &[u8],
    rest: &[Vec<u8>],
    session: &mut Session,
    backend: &mut dyn Backend,
) -> Result<Reply, Reply> {
    let exec = |backend: &mut dyn Backend, op: Op| backend.execute(op).map_err(|e| failed(&e));
    Ok(match (name, rest) {
        ("ping", []) => Reply::Simple("PONG".into()),
        ("ping", [msg]) | ("echo", [msg]) => Reply::bulk(msg.clone()),
        ("get", [key]) => {
            let key = text(key, "key")?;
            match exec(backend, Op::Get { key })? {
                OpResult::Value(v) => Reply::Bulk(v.map(String::into_bytes)),
                other => return Err(Reply::err(format!("unexpected result {other}"))),
            }
        }
        ("set", [key, value, opts @ ..]) => set(key, value, opts, backend)?,
        ("del", keys) | ("unlink", keys) if !keys.is_empty() => {
            let mut n = 0;
            for key in keys {
                let key = text(key, "key")?;
                if let OpResult::Value(Some(_)) = exec(backend, Op::Delete { key })? {
                    n += 1;
                }
            }
            Reply::Int(n)
        }
        ("exists", keys) if !keys.is_empty() => {
            let mut n = 0;
            for key in keys {
                let key = text(key, "key")?;
                if let OpResult::Value(Some(_)) = exec(backend, Op::Get { key })? {
                    n += 1;
                }
            }
            Reply::Int(n)
        }
        ("mget", keys) if !keys.is_empty() => {
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                let key = text(key, "key")?;
                values.push(match exec(backend, Op::Get { key })? {
                    OpResult::Value(v) => Reply::Bulk(v.map(String::into_bytes)),
                    _ => Reply::nil(),
                });
            }
            Reply::Array(values)
        }
        ("info", [] | [_]) => Reply::bulk(info(session, backend.status())),
        ("select", [db]) if db.as_slice() == b"0" => Reply::ok(),
        ("select", [_]) => Reply::err("DB index is out of range"),
        ("command", _) => command(rest),
        ("config", [sub, params @ ..])
            if sub.eq_ignore_ascii_case(b"get") && !params.is_empty() =>
        {
            config_get(params, session)
        }
        ("config", [sub, ..]) => Reply::err(format!(
            "CONFIG {} is not supported; synod's settings live in its cluster file",
            String::from_utf8_lossy(sub)
        )),
        ("client", [sub, ..]) => client(sub, backend),
        ("hello", []) => hello(session),
        ("hello", [v, ..]) if v.as_slice() == b"2" => hello(session),
        ("hello", _) => Reply::Error("NOPROTO this protocol version is not supported".into()),
        (
            "ping" | "echo" | "get" | "set" | "del" | "unlink" | "exists" | "mget" | "info"
            | "select" | "config" | "client",
            _,
        ) => arity(name),
        _ => {
            let mut msg = format!(
                "unknown command '{}', with args beginning with: ",
                String::from_utf8_lossy(&first[..first.len().min(128)])
            );
            for a in rest.iter().take(8) {
                msg.push_str(&format!("'{}' ", String::from_utf8_lossy(a)));
            }
            Reply::err(msg)
        }
    })
}

/// SET key value [NX | XX | IFEQ old]: plain, if absent, if present, if equal.
fn set(
    key: &[u8],
    value: &[u8],
    opts: &[Vec<u8>],
    backend: &mut dyn Backend,
) -> Result<Reply, Reply> {
    let key = text(key, "key")?;
    let new = text(value, "value")?;
    enum Cond {
        Always,
        Absent,
        Present,
        Equal(String),
    }
    let mut cond = Cond::Always;
    let mut i = 0;
    while i < opts.len() {
        let opt = String::from_utf8_lossy(&opts[i]).to_ascii_lowercase();
        cond =
            match (opt.as_str(), &cond) {
                ("nx", Cond::Always) => Cond::Absent,
                ("xx", Cond::Always) => Cond::Present,
                ("ifeq", Cond::Always) if i + 1 < opts.len() => {
                    i += 1;
                    Cond::Equal(text(&opts[i], "value")?)
                }
                ("ex" | "px" | "exat" | "pxat" | "keepttl", _) => return Err(Reply::err(
                    "synod keys do not expire (EX, PX, EXAT, PXAT and KEEPTTL are not supported)",
                )),
                ("get", _) => {
                    return Err(Reply::err(
                        "SET ... GET is not supported; use GET, then SET ... IFEQ",
                    ))
                }
                _ => return Err(Reply::err("syntax error")),
            };
        i += 1;
    }
    let swapped = |r: OpResult| match r {
        OpResult::Swapped(true) => Reply::ok(),
        _ => Reply::nil(),
    };
    let exec = |backend: &mut dyn Backend, op: Op| backend.execute(op).map_err(|e| failed(&e));
    Ok(match cond {
        Cond::Always => {
            exec(backend, Op::Put { key, value: new })?;
            Reply::ok()
        }
        Cond::Absent => swapped(exec(
            backend,
            Op::Cas {
                key,
                expect: None,
                new,
            },
        )?),
        Cond::Equal(old) => swapped(exec(
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
        Cond::Present => {
            for _ in 0..100 {
                let OpResult::Value(current) = exec(backend, Op::Get { key: key.clone() })? else {
                    return Err(Reply::err("unexpected result"));
                };
                let Some(current) = current else {
                    return Ok(Reply::nil());
                };
                let op = Op::Cas {
                    key: key.clone(),
                    expect: Some(current),
                    new: new.clone(),
                };
                if exec(backend, op)? == OpResult::Swapped(true) {
                    return Ok(Reply::ok());
                }
            }
            return Err(Reply::Error(
                "TRYAGAIN the key kept changing under SET ... XX".into(),
            ));
        }
    })
}

/// INFO: a server section, replication in Redis's terms, and the node's Paxos state.
fn info(session: &Session, status: Option<NodeStatus>) -> String {
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
fn command(rest: &[Vec<u8>]) -> Reply {
    match rest.first().map(|s| s.to_ascii_lowercase()) {
        Some(s) if s == b"count" => Reply::Int(COMMANDS.len() as i64),
        Some(s) if s == b"docs" || s == b"info" => Reply::Array(Vec::new()),
        None => Reply::Array(COMMANDS.iter().map(|c| Reply::bulk(*c)).collect()),
        Some(_) => Reply::Array(Vec::new()),
    }
}

/// The commands served, for COMMAND.
const COMMANDS: [&str; 15] = [
    "ping", "echo", "get", "set", "del", "unlink", "exists", "mget", "info", "command", "config",
    "client", "select", "auth", "quit",
];

/// CONFIG GET: what redis-benchmark asks at start, answered truthfully.
fn config_get(params: &[Vec<u8>], session: &Session) -> Reply {
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
                out.push(Reply::bulk(*k));
                out.push(Reply::bulk(v.clone()));
            }
        }
    }
    Reply::Array(out)
}

fn client(sub: &[u8], backend: &mut dyn Backend) -> Reply {
    match sub.to_ascii_lowercase().as_slice() {
        b"setinfo" | b"setname" => Reply::ok(),
        b"id" => Reply::Int(backend.client_id() as i64),
        b"getname" => Reply::nil(),
        _ => Reply::err(format!(
            "CLIENT {} is not supported",
            String::from_utf8_lossy(sub)
        )),
    }
}

fn hello(session: &Session) -> Reply {
    Reply::Array(vec![
        Reply::bulk("server"),
        Reply::bulk("synod"),
        Reply::bulk("version"),
        Reply::bulk(env!("CARGO_PKG_VERSION")),
        Reply::bulk("proto"),
        Reply::Int(2),
        Reply::bulk("id"),
        Reply::Int(session.node as i64),
        Reply::bulk("mode"),
        Reply::bulk("standalone"),
        Reply::bulk("role"),
        Reply::bulk("master"),
        Reply::bulk("modules"),
        Reply::Array(Vec::new()),
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
    }

    impl Backend for Map {
        fn execute(&mut self, op: Op) -> Result<OpResult, ClientError> {
            if self.fail {
                return Err(ClientError::NoQuorum {
                    answered: 1,
                    total: 3,
                    majority: 2,
                    secs: 5.0,
                    maybe_applied: false,
                });
            }
            self.ops.push(op.clone());
            Ok(self.kv.apply(&op))
        }
        fn client_id(&mut self) -> u64 {
            42
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

    fn session(password: Option<&'static str>) -> Session {
        Session {
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
        }
    }

    fn say(s: &mut Session, m: &mut Map, line: &str) -> Reply {
        let args = line.split(' ').map(|w| w.as_bytes().to_vec()).collect();
        dispatch(&args, s, m).0
    }

    #[test]
    fn set_get_and_conditional_sets_follow_redis() {
        let (mut s, mut m) = (session(None), map());
        assert_eq!(say(&mut s, &mut m, "GET k"), Reply::nil());
        assert_eq!(say(&mut s, &mut m, "SET k v XX"), Reply::nil());
        assert_eq!(say(&mut s, &mut m, "SET k a NX"), Reply::ok());
        assert_eq!(say(&mut s, &mut m, "SET k b NX"), Reply::nil());
        assert_eq!(say(&mut s, &mut m, "get k"), Reply::bulk("a"));
        assert_eq!(say(&mut s, &mut m, "SET k c IFEQ b"), Reply::nil());
        assert_eq!(say(&mut s, &mut m, "SET k c IFEQ a"), Reply::ok());
        assert_eq!(say(&mut s, &mut m, "SET k d XX"), Reply::ok());
        assert_eq!(say(&mut s, &mut m, "GET k"), Reply::bulk("d"));
        assert_eq!(
            say(&mut s, &mut m, "SET k d NX XX"),
            Reply::err("syntax error")
        );
        assert!(
            matches!(say(&mut s, &mut m, "SET k d EX 10"), Reply::Error(e) if e.contains("expire"))
        );
        assert_eq!(
            say(&mut s, &mut m, "MGET k nope k"),
            Reply::Array(vec![Reply::bulk("d"), Reply::nil(), Reply::bulk("d")])
        );
        assert_eq!(say(&mut s, &mut m, "EXISTS k nope k"), Reply::Int(2));
        assert_eq!(say(&mut s, &mut m, "DEL k nope"), Reply::Int(1));
        assert_eq!(say(&mut s, &mut m, "DEL k"), Reply::Int(0));
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
            Reply::err("unknown command 'LPUSH', with args beginning with: 'l' 'x' ")
        );
        assert_eq!(after, After::Continue);
        assert_eq!(
            say(&mut s, &mut m, "GET"),
            Reply::err("wrong number of arguments for 'get' command")
        );
        assert_eq!(say(&mut s, &mut m, "PING"), Reply::Simple("PONG".into()));
        let (_, after) = dispatch(&vec![b"QUIT".to_vec()], &mut s, &mut m);
        assert_eq!(after, After::Close);
        let bad = vec![b"GET".to_vec(), vec![0xff, 0xfe]];
        assert!(matches!(dispatch(&bad, &mut s, &mut m).0, Reply::Error(e) if e.contains("UTF-8")));
    }

    #[test]
    fn no_quorum_is_tryagain_never_a_hang() {
        let (mut s, mut m) = (session(None), map());
        m.fail = true;
        assert!(
            matches!(say(&mut s, &mut m, "SET k v"), Reply::Error(e) if e.starts_with("TRYAGAIN no quorum"))
        );
        assert!(
            matches!(say(&mut s, &mut m, "GET k"), Reply::Error(e) if e.starts_with("TRYAGAIN"))
        );
    }

    #[test]
    fn with_a_password_only_auth_opens_the_door() {
        let (mut s, mut m) = (session(Some("sesame")), map());
        assert_eq!(
            say(&mut s, &mut m, "GET k"),
            Reply::Error("NOAUTH Authentication required.".into())
        );
        assert!(m.ops.is_empty());
        assert!(
            matches!(say(&mut s, &mut m, "AUTH wrong"), Reply::Error(e) if e.starts_with("WRONGPASS"))
        );
        assert!(
            matches!(say(&mut s, &mut m, "AUTH alice sesame"), Reply::Error(e) if e.starts_with("WRONGPASS"))
        );
        assert_eq!(say(&mut s, &mut m, "AUTH default sesame"), Reply::ok());
        assert_eq!(say(&mut s, &mut m, "GET k"), Reply::nil());
        let (mut s, mut m) = (session(None), map());
        assert!(
            matches!(say(&mut s, &mut m, "AUTH x"), Reply::Error(e) if e.contains("without any password"))
        );
    }

    #[test]
    fn info_and_config_tell_the_truth() {
        let (mut s, mut m) = (session(None), map());
        let Reply::Bulk(Some(info)) = say(&mut s, &mut m, "INFO") else {
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
            Reply::Array(vec![Reply::bulk("appendfsync"), Reply::bulk("always")])
        );
        assert_eq!(say(&mut s, &mut m, "CONFIG GET nope"), Reply::Array(vec![]));
        assert!(matches!(
            say(&mut s, &mut m, "CONFIG SET save x"),
            Reply::Error(_)
        ));
        assert_eq!(say(&mut s, &mut m, "COMMAND DOCS"), Reply::Array(vec![]));
        assert_eq!(say(&mut s, &mut m, "CLIENT ID"), Reply::Int(42));
    }
}
