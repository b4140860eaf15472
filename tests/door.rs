//! The door: only a process that holds a key the roster knows gets a word in,
//! and only as whom that key makes it (a member for peer traffic, the
//! administrator for faults); numbers from the wire are range-checked;
//! and a node that cannot keep its word (a failing disk) stops rather than lie.
//! Real processes, each test in its own directory and ports.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use support::Env;
use synod::cluster::Cluster;
use synod::net::auth::{Identity, Roster};
use synod::net::{
    self, Caller, Challenge, FrameStream, Hello, Keys, NetFaults, Request, Response, Secret,
};

/// Open a connection to `addr` and answer its challenge of `cluster` signed
/// with `keys`; the stream, and whether the node welcomed us.
fn knock(addr: &str, cluster: &str, keys: &Keys) -> (FrameStream<TcpStream>, bool) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut s = FrameStream::new(s);
    let challenge: Challenge = net::decode(&s.recv().unwrap()).unwrap();
    let hello = Hello::new(cluster, keys, &challenge);
    s.send(&net::encode(&hello)).unwrap();
    let welcomed = s.recv().is_ok();
    (s, welcomed)
}

fn first_addr(c: &Cluster) -> String {
    c.nodes[0].addr.to_string()
}

/// The master secret `synod up` made.
fn master(env: &Env) -> Secret {
    Secret::load(&env.run_dir().join("secret")).unwrap()
}

/// Node `id`'s keys as `who`: what a process holding `id`'s key and the
/// roster would sign with.
fn keys_of(env: &Env, cluster: &Cluster, id: u64, who: Caller) -> Keys {
    let secret = master(env);
    secret
        .node_keys(&cluster.name, &cluster.ids(), id)
        .node
        .as_caller(who)
}

#[test]
fn a_stranger_who_knows_only_the_name_and_ports_changes_nothing() {
    let env = Env::new("door", 3);
    env.up();
    let cluster = env.cluster();
    let addr = first_addr(&cluster);
    let wrong = Secret::from_bytes([0x5a; 32]);

    // As a client: no welcome, so no SetFaults, no writes.
    let ids = cluster.ids();
    let (_, welcomed) = knock(&addr, &cluster.name, &wrong.admin_keys(&cluster.name, &ids));
    assert!(!welcomed, "a wrong secret must not be welcomed");
    let stranger = cluster.clone().with_secret(wrong.clone());
    let blocked = NetFaults {
        blocked: [2, 3].into(),
        ..NetFaults::none()
    };
    let r = synod::client::query(
        cluster.nodes[0].addr,
        &stranger,
        &Request::SetFaults(blocked),
        Duration::from_secs(1),
    );
    assert!(r.is_err(), "{r:?}");
    // As a peer (voting, feeding chosen values): dropped at the hello.
    let (_, welcomed) = knock(
        &addr,
        &cluster.name,
        &wrong.node_keys(&cluster.name, &ids, 2).node,
    );
    assert!(!welcomed);
    // Raw bytes that claim to be a frame of envelopes, before any hello.
    let mut s = TcpStream::connect(&addr).unwrap();
    let _ = s.write_all(&[0, 0, 0, 8, 1, 0, 0, 0, 0, 0, 0, 0]);

    // The cluster serves through it all, with no faults set.
    env.ok(&["put", "k", "v"]);
    assert_eq!(env.ok(&["get", "k"]), "v\n");
    let st = env.status();
    assert!(Env::all_nodes(&st, "up"), "{st}");
    let log = env.node_log(1);
    assert!(
        log.contains("wrong proof of the administrator's key"),
        "{log}"
    );
    assert!(log.contains("wrong proof of node 2's key"), "{log}");
    assert!(!log.contains("message faults now"), "{log}");
}

#[test]
fn a_node_not_in_the_cluster_file_is_refused_even_with_the_secret() {
    let env = Env::new("members", 3);
    env.up();
    let cluster = env.cluster();
    let secret = master(&env);
    let ids = cluster.ids();
    let (_, welcomed) = knock(
        &first_addr(&cluster),
        &cluster.name,
        &secret.node_keys(&cluster.name, &ids, 9).node,
    );
    assert!(!welcomed);
    let (_, welcomed) = knock(
        &first_addr(&cluster),
        &cluster.name,
        &secret.node_keys(&cluster.name, &ids, 1).node,
    );
    assert!(!welcomed, "a node cannot be its own peer");
    assert!(
        env.node_log(1)
            .contains("node 9 is not a member of this cluster"),
        "{}",
        env.node_log(1)
    );
    env.ok(&["put", "still", "serving"]);
}

#[test]
fn a_peer_cannot_send_what_is_not_a_protocol_message() {
    // Notices (Chosen, Read, Request...) have no wire form at all: a frame
    // whose envelope names a variant past the protocol's messages does not
    // decode, and the connection is dropped.
    let env = Env::new("notices", 3);
    env.up();
    let cluster = env.cluster();
    let (mut s, welcomed) = knock(
        &first_addr(&cluster),
        &cluster.name,
        &keys_of(&env, &cluster, 2, Caller::Node(2)),
    );
    assert!(welcomed);
    // PeerFrame([Envelope { from: 2, to: 1, msg: variant 11 }]) in postcard.
    let payload = [1u8, 2, 1, 11, 0, 0];
    s.send(&payload).unwrap();
    let closed = s.recv().is_err();
    assert!(
        closed,
        "the node must close a connection that sends a non-message"
    );
    assert!(env.wait_for(2.0, || env.node_log(1).contains("undecodable frame")));
    env.ok(&["put", "still", "serving"]);
}

#[test]
fn what_one_node_holds_poses_as_no_other_and_sets_no_faults() {
    let env = Env::new("identity", 3);
    env.up();
    let cluster = env.cluster();
    let run = env.run_dir();
    // Exactly what node 1 holds: its key file, the client key, the roster.
    let roster = std::sync::Arc::new(Roster::load(&run.join("keys.ron")).unwrap());
    let own = Identity::load(&run.join("node-1").join("identity")).unwrap();
    let client = Identity::load(&run.join("client.key")).unwrap();
    let addr = cluster.nodes[2].addr.to_string();
    let as_ = |who: Caller, id: &Identity| Keys::new(who, id.clone(), roster.clone());
    // As itself it is welcomed at node 3; as node 2 or the administrator, not.
    assert!(knock(&addr, &cluster.name, &as_(Caller::Node(1), &own)).1);
    for (who, key) in [
        (Caller::Node(2), &own),
        (Caller::Admin, &own),
        (Caller::Admin, &client),
        (Caller::Node(2), &client),
    ] {
        let (_, welcomed) = knock(&addr, &cluster.name, &as_(who.clone(), key));
        assert!(!welcomed, "{who:?} with another's key was welcomed");
    }
    // With the client key it may ask, but not set faults.
    let as_client = cluster.clone().with_keys(as_(Caller::Client, &client));
    let blocked = NetFaults {
        blocked: [1, 2].into(),
        ..NetFaults::none()
    };
    let r = synod::client::query(
        cluster.nodes[2].addr,
        &as_client,
        &Request::SetFaults(blocked),
        Duration::from_secs(2),
    )
    .unwrap();
    assert!(
        matches!(&r, Response::Error(e) if e.contains("administrator")),
        "{r:?}"
    );
    // Nor change the members.
    let change = Request::Op {
        client: 77,
        seq: 1,
        op: synod::kv::Op::Reconfig {
            voters: vec![1, 2],
            learners: vec![],
            contacts: Default::default(),
            force: true,
        },
    };
    let r = synod::client::query(
        cluster.nodes[2].addr,
        &as_client,
        &change,
        Duration::from_secs(2),
    )
    .unwrap();
    assert!(
        matches!(&r, Response::Error(e) if e.contains("administrator")),
        "{r:?}"
    );
    let r = synod::client::query(
        cluster.nodes[2].addr,
        &as_client,
        &Request::Status,
        Duration::from_secs(2),
    )
    .unwrap();
    assert!(matches!(r, Response::Status(_)), "{r:?}");
    let log = env.node_log(3);
    assert!(log.contains("wrong proof of node 2's key"), "{log}");
    assert!(log.contains("is not the administrator"), "{log}");
    assert!(!log.contains("message faults now"), "{log}");
    env.ok(&["put", "k", "v"]);
    assert_eq!(env.ok(&["get", "k"]), "v\n");
}

#[test]
fn the_resp_password_opens_no_node_port() {
    let env = Env::new("resppw", 3);
    env.up();
    let cluster = env.cluster();
    let pw = std::fs::read_to_string(env.run_dir().join("resp-password")).unwrap();
    // Whoever sniffs it and tries it as the master secret, for every caller.
    let bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&pw.trim()[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let posing = Secret::from_bytes(bytes.try_into().unwrap());
    let ids = cluster.ids();
    let addr = first_addr(&cluster);
    let admin = posing.admin_keys(&cluster.name, &ids);
    assert!(!knock(&addr, &cluster.name, &admin).1);
    let n2 = posing.node_keys(&cluster.name, &ids, 2);
    assert!(!knock(&addr, &cluster.name, &n2.node).1);
    assert!(!knock(&addr, &cluster.name, &n2.client).1);
    env.ok(&["put", "k", "v"]);
}

#[test]
fn a_credential_others_may_read_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new("modes", 3);
    env.up();
    let secret = env.run_dir().join("secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = env.synod(&["get", "k"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("readable by others") && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A node's own key likewise: it refuses to start, and says why.
    env.ok(&["kill", "2"]);
    let key = env.run_dir().join("node-2").join("identity");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["node", "--id", "2", "--cluster"])
        .arg(env.run_dir().join("cluster.ron"))
        .arg("--data")
        .arg(env.run_dir().join("node-2"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("identity: readable by others"), "{err}");
    // `synod restart` issues the key again, private.
    env.ok(&["restart", "2"]);
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    env.ok(&["put", "k", "v"]);
}

#[test]
fn faults_out_of_range_are_refused_by_the_cli_and_by_the_node() {
    let env = Env::new("ranges", 3);
    env.up();
    let o = env.synod(&["net", "--delay", "0..18446744073709551615"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = env.synod(&["net", "--loss", "1.5"]);
    assert_eq!(o.status.code(), Some(2));
    // The same numbers sent to a node directly, past the CLI, with the secret.
    let cluster = env.cluster();
    for bad in [
        NetFaults {
            delay_ms: (0, u64::MAX),
            ..NetFaults::none()
        },
        NetFaults {
            loss_ppm: u32::MAX,
            ..NetFaults::none()
        },
        NetFaults {
            blocked: [42].into(),
            ..NetFaults::none()
        },
    ] {
        let r = synod::client::query(
            cluster.nodes[0].addr,
            &cluster,
            &Request::SetFaults(bad),
            Duration::from_secs(2),
        )
        .unwrap();
        assert!(matches!(r, Response::Error(_)), "{r:?}");
    }
    env.ok(&["put", "k", "still-committing"]);
    assert_eq!(env.ok(&["get", "k"]), "still-committing\n");
}

#[test]
fn a_restarted_leader_starts_above_the_round_it_used() {
    let env = Env::new("rounds", 3);
    env.up();
    env.ok(&["put", "k", "1"]);
    let leader = env.leader(5.0);
    let before = env.status()["nodes"][(leader - 1) as usize]["ballot"]
        .as_str()
        .unwrap()
        .to_string();
    let round: u64 = before.split('.').next().unwrap().parse().unwrap();
    env.ok(&["kill", &leader.to_string()]);
    env.ok(&["restart", &leader.to_string()]);
    let log = env.node_log(leader);
    let next: u64 = log
        .lines()
        .rev()
        .find_map(|l| l.split("next round ").nth(1))
        .and_then(|r| {
            let digits: String = r.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .unwrap_or_else(|| panic!("no recovery line in {log}"));
    assert!(next > round, "used round {round}, restarts at {next}");
}

#[test]
fn a_node_whose_disk_fails_stops_and_comes_back_with_what_it_synced() {
    let env = Env::new("disk", 3);
    let file = env.file.to_string_lossy().into_owned();
    let o = env.synod_with(
        &["up", &file, "--detach"],
        &[("SYNOD_FAIL_SYNC_AFTER", "40")],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut acked = Vec::new();
    for i in 0..200 {
        let o = env.synod(&["put", &format!("k{i}"), "v", "--timeout", "1"]);
        if !o.status.success() {
            break;
        }
        acked.push(i);
    }
    assert!(!acked.is_empty());
    assert!(env.wait_for(10.0, || {
        env.status()["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["state"] == "down")
    }));
    let logs: String = (1..=3).map(|i| env.node_log(i)).collect();
    assert!(logs.contains("cannot write the log, stopping"), "{logs}");
    // Restarted without the fault, every node serves again and every
    // acknowledged write is there.
    for id in 1..=3 {
        env.ok(&["restart", &id.to_string()]);
    }
    for i in acked {
        assert_eq!(env.ok(&["get", &format!("k{i}")]), "v\n", "k{i}");
    }
}

#[test]
fn garbage_in_the_unsynced_tail_does_not_stop_a_restart() {
    let env = Env::new("tail", 3);
    env.up();
    env.ok(&["put", "k", "v"]);
    env.ok(&["kill", "2"]);
    let log = env.run_dir().join("node-2").join("acceptor.log");
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&[7u8; 100]).unwrap();
    f.write_all(&[0u8; 4096]).unwrap();
    drop(f);
    env.ok(&["restart", "2"]);
    assert!(
        env.node_log(2).contains("cut off a torn tail"),
        "{}",
        env.node_log(2)
    );
    assert_eq!(
        env.ok(&["get", "k", "--node", &env.leader(5.0).to_string()]),
        "v\n"
    );
}

/// Hold `n` idle connections to `addr` (never saying hello), opening new ones
/// as the node closes them, until `stop`; how many were opened in all.
fn hold_idle(
    addr: std::net::SocketAddr,
    n: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        use std::io::Read;
        let mut held: Vec<TcpStream> = Vec::new();
        let mut opened = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            held.retain_mut(|s| {
                let mut b = [0u8; 256];
                match s.read(&mut b) {
                    Ok(0) => false,
                    Ok(_) => true,
                    Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                }
            });
            while held.len() < n {
                match TcpStream::connect(addr) {
                    Ok(s) => {
                        s.set_nonblocking(true).unwrap();
                        held.push(s);
                        opened += 1;
                    }
                    Err(_) => break,
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        opened
    })
}

#[test]
fn strangers_holding_idle_connections_keep_out_neither_peers_nor_the_cli() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let env = Env::new("slots", 3);
    env.up();
    let cluster = env.cluster();
    let leader = env.leader(5.0);
    let follower = cluster.ids().into_iter().find(|&i| i != leader).unwrap();
    // 300 idle connections on the leader's port, topped up as they are shed.
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let addr = cluster.node(leader).unwrap().addr;
    let strangers = hold_idle(addr, 300, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    // The CLI gets in, at the leader itself, again and again.
    let mut took = Vec::new();
    for i in 0..10 {
        let t = std::time::Instant::now();
        env.ok(&["put", "k", &i.to_string(), "--node", &leader.to_string()]);
        took.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    eprintln!(
        "put --node LEADER under 300 idle connections: median {:.1} ms, max {:.1} ms",
        took[5], took[9]
    );
    // A restarted peer gets its links to the leader back and catches up.
    env.ok(&["kill", &follower.to_string()]);
    env.ok(&["put", "while-down", "1"]);
    env.ok(&["restart", &follower.to_string()]);
    env.ok(&["put", "after", "1"]);
    assert!(env.wait_for(10.0, || {
        let st = env.status();
        Env::all_nodes(&st, "up")
    }));
    let learned = || match synod::client::query(
        cluster.node(follower).unwrap().addr,
        &cluster,
        &Request::Log {
            from: 0,
            limit: 1000,
        },
        Duration::from_secs(2),
    ) {
        Ok(Response::Log { first_unchosen, .. }) => first_unchosen,
        _ => 0,
    };
    // Catching up is an event, waited for with a generous bound.
    assert!(
        env.wait_for(20.0, || learned() >= 12),
        "the restarted peer learned {} slots",
        learned()
    );
    stop.store(true, Ordering::Relaxed);
    let opened = strangers.join().unwrap();
    assert!(opened >= 300, "{opened}");
    // The leader's log names the shedding, counted, not one line each.
    let log = env.node_log(leader);
    let lines = log
        .lines()
        .filter(|l| l.contains("dropping connection") || l.contains("made room"))
        .count();
    assert!(
        log.contains("older handshake(s) without a hello dropped"),
        "{log}"
    );
    assert!(lines < opened, "{lines} log lines for {opened} connections");
}

#[test]
fn a_caller_that_reads_none_of_its_answers_is_cut_off() {
    // Requests piped in without reading a reply: the node's writer gives up
    // after 1 s without progress, and the connection is dropped at the next
    // request, instead of the node queueing replies nobody reads.
    let env = Env::new("deaf", 3);
    env.up();
    let cluster = env.cluster();
    let addr = cluster.nodes[0].addr;
    let mut conn = synod::client::connect(addr, &cluster, Duration::from_secs(2)).unwrap();
    conn.get_ref()
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let frame = net::encode(&Request::Status);
    let started = std::time::Instant::now();
    let mut sent = 0u64;
    let cut = loop {
        if started.elapsed() > Duration::from_secs(20) {
            break None;
        }
        match conn.send(&frame) {
            Ok(()) => sent += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => break Some(e),
        }
    };
    let cut = cut.unwrap_or_else(|| panic!("still connected after 20 s and {sent} requests"));
    eprintln!(
        "cut off after {:.1} s and {sent} requests: {cut}",
        started.elapsed().as_secs_f64()
    );
    assert!(env.node_log(1).contains("read none of its answers"));
    // The node serves on.
    env.ok(&["put", "k", "v"]);
}
