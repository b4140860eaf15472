//! The Redis-protocol front on real processes: a real Redis client library
//! (the `redis` crate), raw bytes for pipelining and garbage, and redis-cli
//! and redis-benchmark when they are installed (`.ci/run` installs them).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::{free_ports, Env};

/// A three-node cluster whose nodes serve RESP on free ports, up.
fn resp_cluster(name: &str) -> (Env, Vec<u16>) {
    let env = Env::new(name, 3);
    let ports = env.with_redis();
    env.up();
    (env, ports)
}

fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/")
}

/// Send raw bytes, read until `replies` CRLF-terminated lines arrived or the
/// connection closed.
fn raw(port: u16, bytes: &[u8], lines: usize) -> (String, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut closed = false;
    while got.windows(2).filter(|w| w == b"\r\n").count() < lines {
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read: {e}; so far {:?}", String::from_utf8_lossy(&got)),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

#[test]
fn a_redis_client_reads_and_writes_through_any_node() {
    let (env, ports) = resp_cluster("resp");
    let leader = env.leader(5.0) as usize;
    let follower = ports[leader % 3]; // a node that is not the leader
    let mut c = redis::Client::open(url(follower))
        .unwrap()
        .get_connection()
        .unwrap();
    let ok: String = redis::cmd("SET")
        .arg("city")
        .arg("Zhengzhou")
        .query(&mut c)
        .unwrap();
    assert_eq!(ok, "OK");
    // Written through the log: synod's own client, and every node's RESP port, see it.
    assert_eq!(env.ok(&["get", "city"]).trim(), "Zhengzhou");
    for &p in &ports {
        let mut other = redis::Client::open(url(p))
            .unwrap()
            .get_connection()
            .unwrap();
        let v: Option<String> = redis::cmd("GET").arg("city").query(&mut other).unwrap();
        assert_eq!(v.as_deref(), Some("Zhengzhou"), "node on port {p}");
    }
    // Conditional sets.
    let nx: Option<String> = redis::cmd("SET")
        .arg("city")
        .arg("x")
        .arg("NX")
        .query(&mut c)
        .unwrap();
    assert_eq!(nx, None);
    let ifeq: Option<String> = redis::cmd("SET")
        .arg("city")
        .arg("Hainan")
        .arg("IFEQ")
        .arg("Zhengzhou")
        .query(&mut c)
        .unwrap();
    assert_eq!(ifeq.as_deref(), Some("OK"));
    let xx: Option<String> = redis::cmd("SET")
        .arg("nope")
        .arg("v")
        .arg("XX")
        .query(&mut c)
        .unwrap();
    assert_eq!(xx, None);
    let mget: Vec<Option<String>> = redis::cmd("MGET")
        .arg("city")
        .arg("nope")
        .query(&mut c)
        .unwrap();
    assert_eq!(mget, vec![Some("Hainan".into()), None]);
    let exists: i64 = redis::cmd("EXISTS")
        .arg("city")
        .arg("nope")
        .query(&mut c)
        .unwrap();
    assert_eq!(exists, 1);
    let del: i64 = redis::cmd("DEL")
        .arg("city")
        .arg("nope")
        .query(&mut c)
        .unwrap();
    assert_eq!(del, 1);
    assert_eq!(env.ok(&["get", "city"]), "");
    // An unknown command is an error, and the connection stays usable.
    let e = redis::cmd("LPUSH")
        .arg("l")
        .arg("x")
        .query::<i64>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("unknown command"), "{e}");
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    // INFO tells the Paxos state in Redis's terms.
    let info: String = redis::cmd("INFO").query(&mut c).unwrap();
    assert!(
        info.contains("role:slave") && info.contains("paxos_role:follower"),
        "{info}"
    );
    // status shows the RESP port.
    let st = env.status();
    assert_eq!(
        st["nodes"][0]["redis_addr"],
        format!("127.0.0.1:{}", ports[0])
    );
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let (_env, ports) = resp_cluster("pipe");
    let mut bytes = Vec::new();
    for i in 0..50 {
        bytes.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\nv{i}\r\n",
                1 + i.to_string().len()
            )
            .as_bytes(),
        );
        bytes.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }
    bytes.extend_from_slice(b"PING\r\n");
    // 50 x (+OK, $n + value) + PONG.
    let (got, _) = raw(ports[0], &bytes, 50 * 3 + 1);
    let mut want = String::new();
    for i in 0..50 {
        let v = format!("v{i}");
        want.push_str(&format!("+OK\r\n${}\r\n{v}\r\n", v.len()));
    }
    want.push_str("+PONG\r\n");
    assert_eq!(got, want);
}

#[test]
fn garbage_closes_that_connection_and_the_node_serves_on() {
    let (env, ports) = resp_cluster("junk");
    for junk in [
        &b"*1\r\n$999999999\r\n"[..],
        b"*99999999999\r\n",
        b"*1\r\n:5\r\n",
        &[0xffu8; 70_000][..],
    ] {
        // Read to the end: the node answers with an error, then closes.
        let (got, closed) = raw(ports[1], junk, usize::MAX);
        assert!(got.starts_with("-ERR Protocol error"), "{got:?}");
        assert!(closed, "the connection was closed");
    }
    // The node serves on, over RESP and its own port.
    let (got, _) = raw(ports[1], b"PING\r\n", 1);
    assert_eq!(got, "+PONG\r\n");
    let st = env.status();
    assert!(Env::all_nodes(&st, "up"), "{st}");
    assert!(env.node_log(2).contains("Protocol error"));
}

#[test]
fn with_redis_auth_only_the_resp_password_opens_the_door() {
    let env = Env::new("auth", 3);
    let ports = env.with_redis();
    env.edit(|c| c.redis_auth = true);
    env.up();
    let (got, _) = raw(ports[0], b"GET k\r\n", 1);
    assert_eq!(got, "-NOAUTH Authentication required.\r\n");
    let (got, _) = raw(ports[0], b"AUTH nope\r\n", 1);
    assert!(got.starts_with("-WRONGPASS"), "{got}");
    // The master secret is not the RESP password.
    let secret = std::fs::read_to_string(env.run_dir().join("secret")).unwrap();
    let (got, _) = raw(
        ports[0],
        format!("AUTH {}\r\n", secret.trim()).as_bytes(),
        1,
    );
    assert!(got.starts_with("-WRONGPASS"), "{got}");
    let password = std::fs::read_to_string(env.run_dir().join("resp-password")).unwrap();
    let url = format!("redis://:{}@127.0.0.1:{}/", password.trim(), ports[0]);
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    let v: String = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v, "v");
}

#[test]
fn a_resp_port_beyond_loopback_needs_auth() {
    let env = Env::new("wide", 3);
    let port = free_ports(1)[0];
    env.edit(|c| c.nodes[0].redis_addr = Some(([0, 0, 0, 0], port).into()));
    let o = env.synod(&["up", env.file.to_str().unwrap(), "--detach"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("wide.ron:4:") && err.contains("redis_auth: true"),
        "{err}"
    );
    assert!(env.pids().is_empty(), "nothing started");
}

#[test]
fn without_a_quorum_a_write_is_refused_within_the_timeout() {
    let (env, ports) = resp_cluster("lonely");
    env.ok(&["kill", "2"]);
    env.ok(&["kill", "3"]);
    // The answer is the event waited for: `raw` gives up after 10 s without
    // one, so a write that hangs fails here whatever the machine's speed.
    let (got, _) = raw(ports[0], b"SET k v\r\n", 1);
    assert!(got.starts_with("-TRYAGAIN no quorum"), "{got}");
}

#[test]
fn a_write_of_unknown_outcome_gets_no_reply_but_a_closed_connection() {
    // The leader takes the write and the others are paused: it may be chosen
    // yet, so no error reply (which a Redis client reads as "not applied").
    let (env, ports) = resp_cluster("unknown");
    let leader = env.leader(5.0) as usize;
    let mut s = TcpStream::connect(("127.0.0.1", ports[leader - 1])).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"CLIENT ID\r\nSET k before\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"+OK\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b":"), "a session number: {got:?}");
    for other in (1..=3).filter(|&n| n != leader) {
        env.ok(&["pause", &other.to_string()]);
    }
    s.write_all(b"SET k after\r\n").unwrap();
    let mut after = Vec::new();
    match s.read_to_end(&mut after) {
        Ok(_) => assert!(after.is_empty(), "{:?}", String::from_utf8_lossy(&after)),
        Err(e) => panic!("no close within 15 s: {e}"),
    }
    let log = env.node_log(leader as u64);
    assert!(log.contains("outcome is unknown"), "{log}");
}

/// redis-cli and redis-benchmark, when installed (Debian's redis-tools);
/// required when SYNOD_REQUIRE_TOOLS=1 (as `.ci/run` sets after installing).
#[test]
fn redis_cli_and_redis_benchmark_run_out_of_the_box() {
    let have = |p: &str| {
        std::process::Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("redis-cli") || !have("redis-benchmark") {
        assert!(
            std::env::var("SYNOD_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "redis-cli/redis-benchmark are required here but missing"
        );
        eprintln!(
            "skipped: redis-cli/redis-benchmark not installed (apt-get install -y redis-tools)"
        );
        return;
    }
    let (env, ports) = resp_cluster("tools");
    let port = ports[2].to_string();
    let cli = |args: &[&str]| {
        let o = std::process::Command::new("redis-cli")
            .args(["-p", &port])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "redis-cli {args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(cli(&["SET", "city", "Zhengzhou"]), "OK");
    assert_eq!(cli(&["GET", "city"]), "Zhengzhou");
    assert!(cli(&["INFO", "replication"]).contains("role:"));
    assert_eq!(env.ok(&["get", "city"]).trim(), "Zhengzhou");
    let o = std::process::Command::new("redis-benchmark")
        .args(["-p", &port, "-t", "set,get", "-n", "2000", "-c", "4", "-q"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("SET:") && out.contains("GET:"), "{out}{err}");
    assert!(!err.contains("ERR"), "{err}");
    // Its key went through the log: synod's own client reads what it set.
    let v = env.ok(&["get", "key:__rand_int__"]);
    assert_eq!(v.trim().len(), 3, "{v:?}");
}

#[test]
fn an_operation_above_the_limit_is_refused_at_once_by_every_front() {
    use synod::client::{Client, ClientError};
    use synod::kv::Op;
    use synod::net::{Request, Response, MAX_OP_BYTES};
    let (env, ports) = resp_cluster("sizes");
    // A value of exactly the limit: with its one-byte key, one byte over.
    let value = "x".repeat(MAX_OP_BYTES);
    let limit_said = format!(
        "the operation's key and value are {} bytes; the limit is {MAX_OP_BYTES} bytes",
        MAX_OP_BYTES + 1
    );
    let set = |v: &str| format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n{v}\r\n", v.len());
    // RESP: an error naming the limit, not a wait for a quorum; the
    // connection stays open.
    let (got, closed) = raw(ports[0], set(&value).as_bytes(), 1);
    assert!(
        got.starts_with(&format!("-ERR {limit_said}")),
        "{}",
        &got[..got.len().min(200)]
    );
    assert!(!closed);
    // The client library, before sending anything.
    let mut c = Client::new(env.cluster());
    let e = c
        .execute(Op::Put {
            key: "k".into(),
            value: value.clone(),
        })
        .unwrap_err();
    assert_eq!(
        e,
        ClientError::TooLarge {
            size: MAX_OP_BYTES + 1,
            limit: MAX_OP_BYTES
        }
    );
    // The CLI, the value on standard input: bad input, exit 2.
    let o = env.synod_stdin(&["put", "k"], value.as_bytes());
    let err = support::stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&limit_said), "{err}");
    // A node asked directly, past every front.
    let r = synod::client::query(
        env.cluster().nodes[0].addr,
        &env.cluster(),
        &Request::Op {
            client: 1,
            seq: 1,
            op: Op::Put {
                key: "k".into(),
                value,
            },
        },
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(
        matches!(&r, Response::Error(e) if e.contains("the limit is 1048576 bytes")),
        "{r:?}"
    );
    // Below the limit, every front commits.
    let fits = "y".repeat(1_000_000);
    let (got, _) = raw(ports[1], set(&fits).as_bytes(), 1);
    assert_eq!(got, "+OK\r\n");
    let o = env.synod_stdin(&["put", "k2"], fits.as_bytes());
    assert!(o.status.success(), "{}", support::stderr(&o));
    assert_eq!(env.ok(&["get", "k2"]).len(), 1_000_001);
}

/// Node `id`'s peak resident memory so far, in MB (VmHWM).
fn peak_mb(env: &Env, id: u64) -> f64 {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.run_dir().join("state.json")).unwrap())
            .unwrap();
    let pid = state["nodes"][id.to_string()]["pid"].as_u64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024.0
}

/// Read from `s` until `bytes` arrived or it closed; how many did.
fn drain(s: &mut TcpStream, bytes: usize) -> usize {
    let mut got = 0;
    let mut buf = vec![0u8; 1 << 16];
    while got < bytes {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}

#[test]
fn one_connection_cannot_make_a_node_hold_a_huge_reply() {
    let (env, ports) = resp_cluster("replies");
    let value = "v".repeat(1_000_000);
    let (got, _) = raw(
        ports[0],
        format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$1000000\r\n{value}\r\n").as_bytes(),
        1,
    );
    assert_eq!(got, "+OK\r\n");
    let before = peak_mb(&env, 1);
    let element = "$1000000\r\n".len() + 1_000_000 + 2;
    // One MGET naming the big key 400 times: a 400 MB reply, read slowly.
    let n = 400;
    let mut cmd = format!("*{}\r\n$4\r\nMGET\r\n", n + 1);
    for _ in 0..n {
        cmd.push_str("$3\r\nbig\r\n");
    }
    let mut s = TcpStream::connect(("127.0.0.1", ports[0])).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(cmd.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let want = format!("*{n}\r\n").len() + n * element;
    assert_eq!(drain(&mut s, want), want);
    // The same as a pipeline of 400 GETs.
    let pipeline = "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(n);
    s.write_all(pipeline.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(drain(&mut s, n * element), n * element);
    let after = peak_mb(&env, 1);
    eprintln!(
        "node 1 peak resident: {before:.0} MB before, {after:.0} MB after 2 x 400 MB of replies"
    );
    // The reply was never whole in the node: far below its 400 MB.
    assert!(
        after < before + 100.0,
        "peak {before:.0} MB -> {after:.0} MB"
    );
    env.ok(&["put", "still", "serving"]);
}
