//! Real processes on loopback: each test in its own temporary directory and
//! ports, every node it started killed by pid at the end.

mod support;

use std::process::Output;
use std::time::Duration;

use support::Env;
use synod::cluster::Cluster;
use synod::paxos::Quorums;

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn five_nodes_survive_leader_loss_and_lose_quorum_at_three_down() {
    let env = Env::new("quorum", 5);
    let up = env.up();
    assert!(up.contains("up in"), "{up}");
    env.ok(&["put", "a", "1"]);
    assert_eq!(env.ok(&["get", "a"]), "1\n");
    assert_eq!(
        env.ok(&["get", "nothing"]),
        "",
        "an absent key prints nothing"
    );

    // Kill the leader: writes go on under a new one.
    let leader = env.leader(5.0);
    env.ok(&["kill", &leader.to_string()]);
    env.ok(&["put", "b", "2"]);
    let next = env.leader(5.0);
    assert_ne!(next, leader);

    // Three of five down: a write fails with exit 1 and says why.
    let others: Vec<u64> = (1..=5).filter(|&i| i != leader && i != next).collect();
    env.ok(&["kill", &next.to_string()]);
    env.ok(&["kill", &others[0].to_string()]);
    let o = env.synod(&["put", "c", "3", "--timeout", "1.5"]);
    assert_eq!(code(&o), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("2 of 5 nodes answered") && stderr(&o).contains("a majority needs 3"),
        "{}",
        stderr(&o)
    );

    // Restart one: a majority again; writes resume, everything acknowledged reads back.
    env.ok(&["restart", &leader.to_string()]);
    env.ok(&["put", "d", "4"]);
    for (k, v) in [("a", "1"), ("b", "2"), ("d", "4")] {
        assert_eq!(env.ok(&["get", k]), format!("{v}\n"), "key {k}");
    }
    let st = env.status();
    let down = st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["state"] == "down")
        .count();
    assert_eq!(down, 2, "{st}");
}

#[test]
fn partition_majority_serves_minority_refuses_heal_converges() {
    let env = Env::new("split", 5);
    env.up();
    env.ok(&["put", "before", "x"]);
    env.ok(&["partition", "1,2|3,4,5"]);
    // The majority side elects (or keeps) a leader and serves.
    env.ok(&["put", "during", "y", "--timeout", "5"]);
    // The minority side cannot commit anything.
    let o = env.synod(&["put", "minority", "z", "--node", "1", "--timeout", "1.5"]);
    assert_eq!(code(&o), Some(1), "{}", stderr(&o));
    let o = env.synod(&["get", "during", "--node", "2", "--timeout", "1.5"]);
    assert_eq!(code(&o), Some(1), "{}", stderr(&o));

    env.ok(&["heal"]);
    env.ok(&["put", "after", "w"]);
    // Every node converges on the same log.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let o = env.synod(&["log", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let slots = v["slots"].as_array().unwrap();
        let everywhere = slots
            .iter()
            .all(|s| s["nodes"].as_array().unwrap().len() == 5);
        assert_eq!(v["agree"], true, "{v}");
        if everywhere && !slots.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no convergence: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_node_killed_during_a_write_burst_keeps_its_word() {
    let env = Env::new("burst", 3);
    env.up();
    let cluster = env.cluster();
    // A writer that goes on until 300 writes are acknowledged (a slow machine
    // takes longer, it does not fail), counting as it goes.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let (cluster, done) = (cluster.clone(), done.clone());
        std::thread::spawn(move || {
            let mut c = synod::client::Client::new(cluster);
            c.timeout = Duration::from_secs(5);
            let mut acked = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            let mut i = 0;
            while acked.len() < 300 && std::time::Instant::now() < deadline {
                let op = synod::kv::Op::Put {
                    key: format!("k{}", i % 7),
                    value: format!("v{i}"),
                };
                if c.execute(op).is_ok() {
                    acked.push(i);
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                i += 1;
            }
            acked
        })
    };
    let acks = || done.load(std::sync::atomic::Ordering::SeqCst);
    assert!(env.wait_for(30.0, || acks() >= 50), "the writer got going");
    let victim = (env.leader(5.0) % 3) + 1; // a follower
    let before = env.status();
    let promised_before = before["nodes"][victim as usize - 1]["promised"]
        .as_str()
        .unwrap()
        .to_string();
    env.ok(&["kill", &victim.to_string()]);
    // Writes go on while it is down.
    let at_kill = acks();
    assert!(
        env.wait_for(30.0, || acks() >= at_kill + 30),
        "writes go on"
    );
    env.ok(&["restart", &victim.to_string()]);
    let acked = writer.join().unwrap();
    assert_eq!(
        acked.len(),
        300,
        "only {} writes acknowledged in 60 s",
        acked.len()
    );

    // It recovered at least the promise it had made before it died.
    let after = env.status();
    let promised_after = after["nodes"][victim as usize - 1]["promised"]
        .as_str()
        .unwrap()
        .to_string();
    let parse = |s: &str| {
        let (r, n) = s.split_once('.').unwrap_or(("0", "0"));
        (r.parse::<u64>().unwrap(), n.parse::<u64>().unwrap())
    };
    assert!(
        parse(&promised_after) >= parse(&promised_before),
        "{promised_before} -> {promised_after}"
    );
    // And the nodes agree on every slot; the last acknowledged write per key reads back.
    let o = env.synod(&["log", "--limit", "10000"]);
    assert_eq!(code(&o), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    let mut last = std::collections::BTreeMap::new();
    for i in &acked {
        last.insert(i % 7, *i);
    }
    let mut c = synod::client::Client::new(cluster);
    for (k, i) in last {
        // A later unacknowledged write may have won; an older value may not.
        let got = c
            .execute(synod::kv::Op::Get {
                key: format!("k{k}"),
            })
            .unwrap();
        let synod::kv::OpResult::Value(Some(v)) = got else {
            panic!("k{k} lost")
        };
        let n: usize = v[1..].parse().unwrap();
        assert!(n >= i, "k{k}: read v{n}, but v{i} was acknowledged");
    }
}

#[test]
fn garbage_and_strangers_do_not_stop_a_node() {
    use std::io::Write;
    let env = Env::new("sturdy", 3);
    env.up();
    let text = std::fs::read_to_string(&env.file).unwrap();
    let port: u16 = text.split("127.0.0.1:").nth(1).unwrap()[..5]
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    // Random bytes, an oversized frame, an HTTP request.
    for junk in [
        (0..2000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<u8>>(),
        [u32::MAX.to_be_bytes().to_vec(), vec![1, 2, 3]].concat(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    ] {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        let _ = s.write_all(&junk);
    }
    // A well-formed hello from another cluster.
    let mut other = env.cluster();
    other.name = "another-cluster".into();
    let err = synod::client::connect(addr.parse().unwrap(), &other, Duration::from_secs(1));
    assert!(err.is_err(), "a stranger must not be welcomed");
    assert!(env.wait_for(5.0, || env
        .node_log(1)
        .matches("dropping connection")
        .count()
        >= 3));
    env.ok(&["put", "still", "here"]);
    assert_eq!(env.ok(&["get", "still"]), "here\n");
    let st = env.status();
    assert!(Env::all_nodes(&st, "up"), "{st}");
    let log = std::fs::read_to_string(env.run_dir().join("node-1.log")).unwrap();
    assert!(log.contains("dropping connection"), "{log}");
}

#[test]
fn bad_cluster_files_are_refused_with_a_position_and_exit_2() {
    let env = Env::new("bad", 3);
    let good = std::fs::read_to_string(&env.file).unwrap();
    // A Cluster value that validation refuses, as its file; the first three
    // cases are text that no Cluster value could write.
    let refused = |change: fn(&mut Cluster)| {
        let mut c = env.planned();
        change(&mut c);
        c.to_ron()
    };
    let cases = [
        ("syntax", good.replace("nodes: [", "nodes: [[")),
        (
            "unknown",
            good.replace("fsync: true,", "fsync: true,\n    colour: 3,"),
        ),
        ("addr", good.replace("127.0.0.1:", "127.0.0.1;")),
        ("dupid", refused(|c| c.nodes[1].id = 1)),
        ("dupaddr", refused(|c| c.nodes[1].addr = c.nodes[0].addr)),
        ("empty", refused(|c| c.nodes.clear())),
        ("range", refused(|c| c.election_timeout_ms = (200, 100))),
        (
            "disjoint",
            refused(|c| {
                c.quorums = Some(Quorums {
                    phase1: 1,
                    phase2: 2,
                })
            }),
        ),
        (
            "quorum",
            refused(|c| {
                c.quorums = Some(Quorums {
                    phase1: 4,
                    phase2: 2,
                })
            }),
        ),
    ];
    for (what, text) in cases {
        let path = env.path(&format!("{what}.ron"));
        std::fs::write(&path, text).unwrap();
        let o = env.synod(&["up", path.to_str().unwrap(), "--detach"]);
        assert_eq!(code(&o), Some(2), "{what}: {}", stderr(&o));
        let e = stderr(&o);
        let prefix = format!("error: {}:", path.display());
        assert!(e.starts_with(&prefix), "{what}: {e}");
        let pos = &e[prefix.len()..];
        assert!(
            pos.chars().next().unwrap().is_ascii_digit(),
            "{what}: no line:col in {e}"
        );
        assert_eq!(e.lines().count(), 1, "{what}: {e}");
        assert!(!env.run_dir().exists(), "{what}: nothing may start");
    }
    // A port already in use names the node and the port.
    let port = env.planned().nodes[1].addr.port();
    let _hold = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let o = env.synod(&["up", env.file.to_str().unwrap(), "--detach"]);
    assert_eq!(code(&o), Some(2));
    assert!(
        stderr(&o).contains(&format!("node 2: port {port}")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn foreground_up_stops_every_node_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let env = Env::new("fore", 3);
    let mut launcher = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["up", env.file.to_str().unwrap()])
        .current_dir(env.root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(launcher.stdout.take().unwrap());
    let mut line = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !line.contains("up in") {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 || std::time::Instant::now() > deadline {
            let _ = launcher.kill();
            panic!("the launcher never reported the cluster up");
        }
    }
    let pids = env.pids();
    assert_eq!(pids.len(), 3);
    env.ok(&["put", "k", "v"]);
    // Ctrl-C: SIGINT to the launcher alone (the nodes are in their own sessions).
    unsafe {
        libc::kill(launcher.id() as i32, libc::SIGINT);
    }
    let status = launcher.wait().unwrap();
    assert!(status.success(), "{status}");
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z")),
            "node pid {pid} still runs"
        );
    }
    let st = env.status();
    assert!(Env::all_nodes(&st, "down"), "{st}");
    // The data stays: a second `up` finds what was written.
    env.up();
    assert_eq!(env.ok(&["get", "k"]), "v\n");
    assert!(env.ok(&["logs", "1"]).contains("serving on"));
}

#[test]
fn with_timeouts_of_twenty_seconds_a_cluster_still_elects_at_start_and_after_a_kill() {
    // Only the fast paths can elect here within the test's bounds: the first
    // start (the lowest id asks once a majority is reachable) and a leader
    // whose process is gone (its successor asks as soon as the link closes).
    // A pause or a partition still waits for the timeout; a kill need not.
    let env = Env::new("fast", 3);
    env.edit(|c| c.election_timeout_ms = (20000, 30000));
    env.up();
    let first = env.leader(5.0);
    assert_eq!(first, 1, "the lowest id starts the first election");
    env.ok(&["put", "a", "1"]);
    env.ok(&["kill", &first.to_string()]);
    env.ok(&["put", "b", "2", "--timeout", "5"]);
    let next = env.leader(5.0);
    assert_eq!(next, 2, "the next id after the dead leader takes over");
    assert_eq!(env.ok(&["get", "a"]), "1\n");
    // Back again, node 1 finds a leader and follows it: no new election.
    env.ok(&["restart", "1"]);
    env.ok(&["put", "c", "3"]);
    assert_eq!(env.leader(5.0), 2);
}

#[test]
fn with_flexible_quorums_writes_go_on_with_half_the_nodes_down() {
    // Four nodes, phase 1 needs 3 and phase 2 needs 2 (3 + 2 > 4): while the
    // leader lives, one follower is enough to choose; majorities would need 3.
    let env = Env::new("flex", 4);
    env.edit(|c| {
        c.quorums = Some(Quorums {
            phase1: 3,
            phase2: 2,
        })
    });
    env.up();
    let st = env.status();
    assert_eq!(st["quorums"]["phase1"], 3, "{st}");
    assert_eq!(st["quorums"]["phase2"], 2, "{st}");
    assert_eq!(st["quorums"]["flexible"], true, "{st}");
    let leader = env.leader(5.0);
    env.ok(&["put", "a", "1"]);
    let followers: Vec<u64> = (1..=4).filter(|&i| i != leader).collect();
    env.ok(&["kill", &followers[0].to_string()]);
    env.ok(&["kill", &followers[1].to_string()]);
    env.ok(&["put", "b", "2", "--timeout", "5"]);
    assert_eq!(env.ok(&["get", "b"]), "2\n");
    // A new leader needs 3 promises: with the leader gone too, nobody can lead.
    env.ok(&["kill", &leader.to_string()]);
    let o = env.synod(&["put", "c", "3", "--timeout", "1.5"]);
    assert_eq!(code(&o), Some(1), "{}", stderr(&o));
    env.ok(&["restart", &followers[0].to_string()]);
    env.ok(&["restart", &leader.to_string()]);
    env.ok(&["put", "d", "4", "--timeout", "5"]);
    for (k, v) in [("a", "1"), ("b", "2"), ("d", "4")] {
        assert_eq!(env.ok(&["get", k]), format!("{v}\n"), "key {k}");
    }
}

#[test]
fn sessions_come_from_the_log_and_every_write_gets_an_answer() {
    use synod::kv::{Op, OpResult};
    use synod::net::{Request, Response};
    use synod::paxos::Outcome;
    let env = Env::new("sessions", 3);
    env.up();
    let cluster = env.cluster();
    let leader = env.leader(5.0);
    let addr = cluster.node(leader).unwrap().addr;
    let put = |client: u64, seq: u64, value: &str| {
        let req = Request::Op {
            client,
            seq,
            op: Op::Put {
                key: "k".into(),
                value: value.into(),
            },
        };
        match synod::client::query(addr, &cluster, &req, Duration::from_secs(5)).unwrap() {
            Response::Op { outcome, .. } => outcome,
            other => panic!("{other:?}"),
        }
    };
    // A session nobody opened: refused, not applied (it could be a
    // forgotten client's retry).
    assert_eq!(put(123_456, 1, "stranger"), Outcome::Expired);
    let mut c = synod::client::Client::new(cluster.clone());
    let session = c.session().unwrap();
    assert!(session >= 1);
    for v in ["one", "two"] {
        c.execute(Op::Put {
            key: "k".into(),
            value: v.into(),
        })
        .unwrap();
    }
    // The same write again is answered as before; an older one is told the
    // client moved on. Neither is applied again.
    assert_eq!(put(session, 2, "two"), Outcome::Done(OpResult::Done));
    assert_eq!(put(session, 1, "one"), Outcome::Stale { last: 2 });
    let got = c.execute(Op::Get { key: "k".into() }).unwrap();
    assert_eq!(got, OpResult::Value(Some("two".into())));
}

/// `member list --json`.
fn members(env: &Env) -> serde_json::Value {
    serde_json::from_str(&env.ok(&["member", "list", "--json"])).expect("member list --json")
}

/// Write until configuration `number` governs the log (a change takes
/// effect α = 64 slots after it is chosen; every CLI put commits twice).
fn write_until_config(env: &Env, number: u64, tag: &str) {
    for i in 0..200 {
        if members(env)["config"] == number {
            return;
        }
        env.ok(&["put", &format!("{tag}{i}"), "x"]);
    }
    panic!("configuration {number} never took effect: {}", members(env));
}

#[test]
fn members_are_removed_added_and_promoted_through_the_log() {
    let env = Env::new("members", 4);
    env.up();
    env.ok(&["put", "a", "1"]);
    let m = members(&env);
    assert_eq!(m["config"], 0, "{m}");
    assert_eq!(m["voters"], serde_json::json!([1, 2, 3, 4]), "{m}");

    // Only a learner is promoted.
    let o = env.synod(&["member", "promote", "4"]);
    assert_eq!(code(&o), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("only a learner is promoted"),
        "{}",
        stderr(&o)
    );

    // Remove 4: chosen now, in force 64 slots later (an idle leader fills
    // them with no-ops), and then node 4 is stopped. One change at a time is
    // the proposer's guard (its unit test); the CLI waits for the last one.
    let o = env.synod(&["member", "remove", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let said = stderr(&o);
    assert!(
        said.contains("configuration 1") && said.contains("node 4 stopped"),
        "{said}"
    );
    write_until_config(&env, 1, "r");

    // Three voters now: with 4 and one more node down, two of three still
    // choose (under the cluster file's four, two of four could not).
    let leader = env.leader(5.0);
    let other = (1..=3).find(|&n| n != leader).unwrap();
    env.ok(&["kill", &other.to_string()]);
    env.ok(&["put", "b", "2"]);

    // Every node stopped and started again: the configuration comes from
    // their own logs, not from the cluster file.
    env.ok(&["down"]);
    env.up();
    let m = members(&env);
    assert_eq!(m["config"], 1, "{m}");
    assert_eq!(m["voters"], serde_json::json!([1, 2, 3]), "{m}");
    assert_eq!(env.ok(&["get", "b"]), "2\n");

    // Add 4 back as a learner (`up` started every node of the run
    // directory), then promote it once in force and in sync.
    env.ok(&["member", "add", "4"]);
    write_until_config(&env, 2, "l");
    assert_eq!(members(&env)["learners"], serde_json::json!([4]));

    // A learner cut off while the others write falls behind, and its
    // promotion is refused with the distance; healed, it catches up.
    env.ok(&["partition", "1,2,3|4"]);
    for i in 0..70 {
        env.ok(&["put", &format!("behind{i}"), "x"]);
    }
    let o = env.synod(&["member", "promote", "4"]);
    assert_eq!(code(&o), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("slots behind the leader; it can be promoted within 64"),
        "{}",
        stderr(&o)
    );
    env.ok(&["heal"]);
    assert!(env.wait_for(10.0, || {
        members(&env)["nodes"][3]["behind"]
            .as_u64()
            .is_some_and(|b| b <= 64)
    }));
    env.ok(&["member", "promote", "4"]);
    write_until_config(&env, 3, "p");
    assert_eq!(members(&env)["voters"], serde_json::json!([1, 2, 3, 4]));

    // Remove the leader: it hands over where it stops voting.
    let leader = env.leader(5.0);
    env.ok(&["member", "remove", &leader.to_string()]);
    write_until_config(&env, 4, "x");
    let next = env.leader(10.0);
    assert_ne!(next, leader);
    let m = members(&env);
    assert_eq!(m["nodes"][leader as usize - 1]["member"], "removed", "{m}");
    env.ok(&["put", "c", "3"]);
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
        assert_eq!(env.ok(&["get", k]), format!("{v}\n"), "key {k}");
    }
}

/// A free address on loopback for a node added at run time.
fn free_addr() -> String {
    format!("127.0.0.1:{}", synod::harness::free_ports(1)[0])
}

#[test]
fn a_node_joins_by_its_address_and_a_dead_one_is_replaced() {
    let env = Env::new("joins", 3);
    env.up();
    for i in 0..20 {
        env.ok(&["put", &format!("k{i}"), &i.to_string()]);
    }
    // A node the cluster file never named: started as a learner, caught up,
    // promoted; its address and key travel in the configuration.
    let said = env.ok_err(&["member", "add", &free_addr(), "--promote"]);
    assert!(said.contains("node 4 started"), "{said}");
    assert!(said.contains("added and promoted"), "{said}");
    write_until_config(&env, 2, "a");
    assert_eq!(members(&env)["voters"], serde_json::json!([1, 2, 3, 4]));
    env.ok(&["put", "four", "voters"]);

    // Removed and left running: the others refuse it, and it says so.
    env.ok(&["member", "remove", "4", "--keep-running"]);
    write_until_config(&env, 3, "b");
    assert!(
        env.wait_for(10.0, || {
            let st = env.status();
            st["nodes"][3]["role"] == "removed" && st["nodes"][3]["state"] == "up"
        }),
        "{}",
        env.status()
    );
    env.ok(&["put", "k", "poke"]);
    assert!(env.wait_for(10.0, || (1..=3).any(|n| env
        .node_log(n)
        .contains("node 4 is not a member of configuration"))));

    // A dead voter replaced: a new node added, caught up and promoted, then
    // the dead one removed; writes go on throughout.
    env.ok(&["kill", "3"]);
    let said = env.ok_err(&["member", "replace", "3", &free_addr()]);
    assert!(said.contains("node 3 replaced by node 5"), "{said}");
    write_until_config(&env, 6, "c");
    assert_eq!(members(&env)["voters"], serde_json::json!([1, 2, 5]));
    env.ok(&["put", "after", "replace"]);

    // Down and up: the nodes added come back from the run directory, the
    // configuration from the nodes' own logs.
    env.ok(&["down"]);
    env.up();
    let m = members(&env);
    assert_eq!(m["config"], 6, "{m}");
    assert_eq!(m["voters"], serde_json::json!([1, 2, 5]), "{m}");
    assert_eq!(env.ok(&["get", "after"]), "replace\n");
    assert_eq!(env.ok(&["get", "k7"]), "7\n");
}
