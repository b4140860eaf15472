//! The actor wiring, in process: three nodes in one actix System, talking TCP on
//! loopback, driven by the blocking client from a blocking task.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use synod::client::Client;
use synod::cluster::{Cluster, NodeSpec};
use synod::kv::{Op, OpResult};
use synod::net::{NetFaults, Secret};
use synod::node::router::SetFaults;
use synod::node::{self, NodeConfig, NodeHandle};
use synod::paxos::Rules;

fn put(k: &str, v: &str) -> Op {
    Op::Put {
        key: k.into(),
        value: v.into(),
    }
}

#[actix_rt::test]
async fn three_nodes_in_one_system_elect_commit_and_survive_a_cut_off_node() {
    let data = tempfile::tempdir().unwrap();
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let cluster = Cluster {
        name: "inproc".into(),
        nodes: listeners
            .iter()
            .enumerate()
            .map(|(i, l)| NodeSpec {
                id: i as u64 + 1,
                addr: l.local_addr().unwrap(),
                redis_addr: None,
                joined: false,
                ssh: None,
                ssh_dir: None,
            })
            .collect(),
        heartbeat_ms: 10,
        election_timeout_ms: (50, 100),
        fsync: false,
        snapshot_every: 10_000,
        redis_auth: false,
        quorums: None,
        keys: None,
    };
    let secret = Secret::from_bytes([7; 32]);
    let cluster = cluster.clone().with_secret(secret.clone());
    let nodes: Vec<NodeHandle> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let cfg = NodeConfig {
                cluster: cluster.clone(),
                id: i as u64 + 1,
                data_dir: data.path().join(format!("n{}", i + 1)),
                rules: Rules::ALL,
                tuning: node::Tuning::default(),
                keys: secret.node_keys(&cluster.name, &cluster.ids(), i as u64 + 1),
            };
            node::start(cfg, l).unwrap()
        })
        .collect();

    // A leader emerges.
    let deadline = Instant::now() + Duration::from_secs(5);
    let leader = loop {
        if let Some(i) = nodes
            .iter()
            .position(|n| n.status.borrow().role == "leader")
        {
            break i;
        }
        assert!(Instant::now() < deadline, "no leader elected");
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    };

    let c = cluster.clone();
    let got = tokio::task::spawn_blocking(move || {
        let mut client = Client::new(c);
        client.execute(put("x", "1")).unwrap();
        client.execute(Op::Get { key: "x".into() }).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(got, OpResult::Value(Some("1".into())));

    // Cut the leader off from both peers: the other two elect a new leader and
    // keep committing.
    let others: Vec<u64> = (1..=3).filter(|&i| i != leader as u64 + 1).collect();
    nodes[leader].router.do_send(SetFaults(NetFaults {
        blocked: others.iter().copied().collect(),
        ..NetFaults::none()
    }));
    for &o in &others {
        nodes[o as usize - 1].router.do_send(SetFaults(NetFaults {
            blocked: [leader as u64 + 1].into(),
            ..NetFaults::none()
        }));
    }
    let c = cluster.clone();
    let got = tokio::task::spawn_blocking(move || {
        let mut client = Client::new(c);
        client.timeout = Duration::from_secs(5);
        client.execute(put("y", "2")).unwrap();
        client.execute(Op::Get { key: "y".into() }).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(got, OpResult::Value(Some("2".into())));
    let new_leader = (0..3).any(|i| i != leader && nodes[i].status.borrow().role == "leader");
    assert!(new_leader, "a new leader on the majority side");
}

/// Records what the router hands a peer's link.
struct Wire(std::sync::Arc<std::sync::Mutex<Vec<synod::paxos::Message>>>);

impl actix::Actor for Wire {
    type Context = actix::Context<Self>;
}

impl actix::Handler<synod::node::router::Outbound> for Wire {
    type Result = ();
    fn handle(&mut self, o: synod::node::router::Outbound, _: &mut Self::Context) {
        self.0.lock().unwrap().push(o.0.msg);
    }
}

/// Answered by the wire once everything sent to it before was recorded.
#[derive(actix::Message)]
#[rtype(result = "()")]
struct Barrier;

impl actix::Handler<Barrier> for Wire {
    type Result = ();
    fn handle(&mut self, _: Barrier, _: &mut Self::Context) {}
}

/// Takes inputs meant for a role and does nothing with them.
struct Sink;

impl actix::Actor for Sink {
    type Context = actix::Context<Self>;
}

impl actix::Handler<synod::node::router::Deliver> for Sink {
    type Result = ();
    fn handle(&mut self, _: synod::node::router::Deliver, _: &mut Self::Context) {}
}

type Sent = std::sync::Arc<std::sync::Mutex<Vec<synod::paxos::Message>>>;

/// Run node 1's router on `ctx` with `acceptor` as its acceptor and sinks
/// for the other roles; what it sends node 2 is recorded by the wire.
fn route(
    ctx: actix::Context<synod::node::router::Router>,
    acceptor: actix::Recipient<synod::node::router::Deliver>,
    status: &synod::node::router::SharedStatus,
) -> (
    Sent,
    actix::Addr<Wire>,
    actix::Addr<synod::node::router::Router>,
) {
    use actix::{Actor, AsyncContext};
    let sink = Sink.start();
    let roles = synod::node::router::Roles {
        acceptor,
        proposer: sink.clone().recipient(),
        learner: sink.clone().recipient(),
        replica: sink.recipient(),
    };
    let wire = Sent::default();
    let wire_addr = Wire(wire.clone()).start();
    let peers = [(2, wire_addr.clone().recipient())].into();
    let router = ctx.address();
    ctx.run(synod::node::router::Router::new(
        1,
        roles,
        peers,
        status.clone(),
    ));
    (wire, wire_addr, router)
}

#[actix_rt::test]
async fn the_acceptor_actor_holds_its_promise_until_the_disk_says_synced() {
    // Persist before send, in the real actor: the Promise to node 2 leaves
    // only once its record is durable, and `status` shows the promise only then.
    use actix::prelude::*;
    use synod::node::disk::{self, Synced};
    use synod::node::roles::RoleActor;
    use synod::node::router::{Deliver, Input, Router};
    use synod::paxos::{Acceptor, Ballot, Message, Record};

    let status = std::rc::Rc::new(std::cell::RefCell::new(synod::net::NodeStatus::default()));
    let (tx, queue) = disk::queue();
    let router_ctx: Context<Router> = Context::new();
    let acceptor = RoleActor::new(
        Acceptor::new(1, Rules::ALL),
        router_ctx.address(),
        Some(tx),
        None,
        status.clone(),
    )
    .start();
    let (wire, wire_addr, router) = route(router_ctx, acceptor.clone().recipient(), &status);

    let ballot = Ballot::new(3, 2);
    let prepare = Message::Prepare {
        ballot,
        from_slot: 0,
    };
    acceptor
        .send(Deliver(Input::Message {
            from: 2,
            msg: prepare,
        }))
        .await
        .unwrap();
    // Whatever the acceptor handed the router before this, and the router
    // the wire, has arrived once each answers a message sent after it
    // (one mailbox each, in order).
    router
        .send(synod::node::router::GetMessages { after: 0 })
        .await
        .unwrap();
    wire_addr.send(Barrier).await.unwrap();
    assert!(
        wire.lock().unwrap().is_empty(),
        "nothing leaves before the sync"
    );
    assert_eq!(
        status.borrow().promised,
        Ballot::ZERO,
        "nor shows in status"
    );
    let appends = queue.take();
    assert_eq!(appends.len(), 1);
    assert_eq!(appends[0].records, vec![Record::Promise { ballot }]);
    acceptor
        .send(Synced {
            batch: appends[0].batch,
            records: 1,
            syncs: 1,
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while wire.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sent = wire.lock().unwrap().clone();
    assert!(
        matches!(sent.as_slice(), [Message::Promise { ballot: b, .. }] if *b == ballot),
        "{sent:?}"
    );
    assert_eq!(status.borrow().promised, ballot);
}

#[actix_rt::test]
async fn a_following_acceptor_syncs_on_its_event_loop_before_its_promise_leaves() {
    // The inline path (the default while a node follows): the event loop
    // writes and syncs the record itself at the end of the turn, and the
    // Promise leaves only then, with the record in the file.
    use actix::prelude::*;
    use synod::node::disk::{self, DiskOptions};
    use synod::node::roles::RoleActor;
    use synod::node::router::{Deliver, Input, Router};
    use synod::paxos::{Acceptor, Ballot, Message, Record};
    use synod::storage::FileLog;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acceptor.log");
    let (log, _) = FileLog::open(&path, true).unwrap();
    let status = std::rc::Rc::new(std::cell::RefCell::new(synod::net::NodeStatus {
        role: "follower".into(),
        ..Default::default()
    }));
    let router_ctx: Context<Router> = Context::new();
    let ctx: Context<RoleActor<Acceptor>> = Context::new();
    let opts = DiskOptions {
        group: true,
        fail_after: None,
    };
    let log = disk::spawn(
        "test-acceptor-log",
        log,
        Some(ctx.address().recipient()),
        opts,
    );
    let acceptor = ctx.run(
        RoleActor::new(
            Acceptor::new(1, Rules::ALL),
            router_ctx.address(),
            Some(log.tx),
            None,
            status.clone(),
        )
        .inline_while_following(),
    );
    let (wire, _, _) = route(router_ctx, acceptor.clone().recipient(), &status);
    let ballot = Ballot::new(3, 2);
    acceptor
        .send(Deliver(Input::Message {
            from: 2,
            msg: Message::Prepare {
                ballot,
                from_slot: 0,
            },
        }))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while wire.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let sent = wire.lock().unwrap().clone();
    assert!(
        matches!(sent.as_slice(), [Message::Promise { ballot: b, .. }] if *b == ballot),
        "{sent:?}"
    );
    // Synced when it left: a second reader finds the record in the file.
    let (_, found) = FileLog::open(&path, false).unwrap();
    assert_eq!(found.records, vec![Record::Promise { ballot }]);
    assert_eq!(
        (status.borrow().promised, status.borrow().syncs),
        (ballot, 1)
    );
}
