//! A real node: actix actors around the protocol core, over TCP.
//!
//! One actix System per process (one thread), one actor per role
//! ([`roles`]), a [`router::Router`], one actor per TCP connection ([`conn`]),
//! and one thread per log so that fsync never blocks the actors ([`disk`]).
//! [`start`] wires a node inside the running System (tests start several in one
//! System); [`run`] is the `synod node` process around it.

pub mod conn;
pub mod disk;
pub mod gate;
pub mod inject;
pub mod link;
pub mod members;
pub mod roles;
pub mod router;
pub mod tap;
pub mod waiting;
mod writer;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix::prelude::*;
use thiserror::Error;

use crate::cluster::Cluster;
use crate::net::{NodeKeys, NodeStatus};
use crate::paxos::{Durable, NodeId, NodeSetup, Notice, Rule, Rules, Snapshot, SnapshotFile};
use crate::storage::{FileLog, Recovered, StorageError};
use conn::{Conn, ConnContext};
use disk::DiskOptions;
use link::{LinkConfig, PeerLink};
use roles::RoleActor;
use router::{Roles, Router, SharedStatus};

/// What one node needs to run.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The whole cluster.
    pub cluster: Cluster,
    /// This node.
    pub id: NodeId,
    /// Where its logs live.
    pub data_dir: PathBuf,
    /// Which Paxos rules hold (all, unless a teaching run breaks one).
    pub rules: Rules,
    /// The fast paths, on by default (off only to measure what each buys).
    pub tuning: Tuning,
    /// Its keys: its own identity, the client key for its RESP front, and
    /// the roster it checks callers by. Never the master secret.
    pub keys: NodeKeys,
}

/// The fast paths of a node. Each can be switched off from the environment
/// (`SYNOD_GROUP_COMMIT=0`, `SYNOD_LOG_THREAD=1`, `SYNOD_FULL_BATCHES=0`,
/// `SYNOD_READ_INDEX=0`, `SYNOD_WINDOW=N`,
/// `SYNOD_MAX_BATCH=N`, `SYNOD_FAST_ELECTION=0`), which nodes inherit from `synod up`, `bench` and
/// `chaos`, so `synod bench` can measure each one's before and after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// One sync for every record waiting in the acceptor's log.
    pub group_commit: bool,
    /// While the node follows, its synced logs (acceptor, proposer) are
    /// written and synced on the event loop at the end of each turn rather
    /// than handed to their threads (`SYNOD_LOG_THREAD=1`: always threads).
    pub inline_log: bool,
    /// The leader's fast paths (`SYNOD_READ_INDEX`, `SYNOD_WINDOW`,
    /// `SYNOD_MAX_BATCH`, `SYNOD_FAST_ELECTION=0`: wait for timeouts).
    pub fast: crate::paxos::FastPaths,
    /// Fault injection for tests: the logs fail after this many syncs
    /// (`SYNOD_FAIL_SYNC_AFTER=N`), as a broken disk would.
    pub fail_sync_after: Option<u64>,
}

impl Tuning {
    /// `cfg` with these fast paths.
    pub fn apply(&self, mut cfg: crate::paxos::ProposerConfig) -> crate::paxos::ProposerConfig {
        cfg.fast = self.fast;
        cfg
    }
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            group_commit: true,
            inline_log: true,
            fast: Default::default(),
            fail_sync_after: None,
        }
    }
}

impl Tuning {
    /// The defaults, changed by whatever `SYNOD_*` variables are set.
    pub fn from_env() -> Self {
        let mut t = Tuning::default();
        let flag = |name: &str, default: bool| match std::env::var(name).as_deref() {
            Ok("0") | Ok("off") | Ok("false") => false,
            Ok(_) => true,
            Err(_) => default,
        };
        let num = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|&n| n > 0)
                .unwrap_or(default)
        };
        t.group_commit = flag("SYNOD_GROUP_COMMIT", t.group_commit);
        t.inline_log = !flag("SYNOD_LOG_THREAD", !t.inline_log);
        let f = &mut t.fast;
        f.read_index = flag("SYNOD_READ_INDEX", f.read_index);
        f.fast_election = flag("SYNOD_FAST_ELECTION", f.fast_election);
        f.window = num("SYNOD_WINDOW", f.window);
        f.full_batches = flag("SYNOD_FULL_BATCHES", f.full_batches);
        f.max_batch = num("SYNOD_MAX_BATCH", f.max_batch);
        t.fail_sync_after = std::env::var("SYNOD_FAIL_SYNC_AFTER")
            .ok()
            .and_then(|v| v.parse().ok());
        t
    }
}

/// Why a node could not start.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The node id is not in the cluster file.
    #[error("node {0} is not in the cluster file")]
    UnknownNode(NodeId),
    /// Its data directory cannot be made.
    #[error("cannot create {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A log is unreadable or corrupt.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The address is taken or not ours.
    #[error("node {id}: cannot listen on {addr}: {source}")]
    Listen {
        /// The node.
        id: NodeId,
        /// Its address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A key file cannot be read.
    #[error(transparent)]
    KeyFile(#[from] crate::net::auth::SecretError),
    /// The keys do not belong to this node of this cluster.
    #[error("{0}")]
    Keys(String),
}

/// Node `id`'s keys from its files: its own key, the client key and the
/// roster, each checked against the others and the cluster.
pub fn load_keys(
    cluster: &Cluster,
    id: NodeId,
    identity: &std::path::Path,
    client_key: &std::path::Path,
    roster: &std::path::Path,
) -> Result<NodeKeys, NodeError> {
    use crate::net::auth::{Identity, Roster};
    use crate::net::{Caller, Keys};
    let me = Identity::load(identity)?;
    let client = Identity::load(client_key)?;
    let r = Roster::load(roster)?;
    let wrong = |what: String| Err(NodeError::Keys(format!("{}: {what}", roster.display())));
    if r.cluster != cluster.name {
        return wrong(format!(
            "the keys of cluster {:?}, not {:?}",
            r.cluster, cluster.name
        ));
    }
    if let Some(n) = cluster.ids().into_iter().find(|n| !r.nodes.contains_key(n)) {
        return wrong(format!("no key for node {n}"));
    }
    if r.nodes.get(&id) != Some(&me.public()) {
        return wrong(format!(
            "node {id}'s key is not the one in {}",
            identity.display()
        ));
    }
    if r.client != client.public() {
        return wrong(format!(
            "the client key is not the one in {}",
            client_key.display()
        ));
    }
    let r = std::sync::Arc::new(r);
    Ok(NodeKeys {
        node: Keys::new(Caller::Node(id), me, r.clone()),
        client: Keys::new(Caller::Client, client, r),
    })
}

/// A node running inside the current System.
pub struct NodeHandle {
    /// Its router (tests use it to inject faults).
    pub router: Addr<Router>,
    /// Its status, as `synod status` sees it.
    pub status: SharedStatus,
    disks: Vec<JoinHandle<()>>,
}

impl NodeHandle {
    /// Wait for the log threads to finish once the System has stopped.
    pub fn join(self) {
        drop(self.router);
        for d in self.disks {
            let _ = d.join();
        }
    }
}

/// The node's three logs in `dir`: the acceptor's and the proposer's synced
/// as the cluster's `fsync` says, the learner's never (what it holds, values
/// already chosen, its peers teach again, so corruption there says so).
fn open_logs(dir: &Path, fsync: bool) -> Result<[(FileLog, Recovered); 3], StorageError> {
    Ok([
        FileLog::open(&dir.join("acceptor.log"), fsync)?,
        FileLog::open(&dir.join("proposer.log"), fsync)?,
        FileLog::open(&dir.join("learner.log"), false).map_err(StorageError::relearnable)?,
    ])
}

/// A role's actor whose records are synced before what depends on them
/// leaves, and its log thread, which reports each sync back to it (with
/// `inline`, the event loop syncs itself while the node follows).
fn synced_role<M: roles::Shown>(
    (name, router, status): (String, Addr<Router>, SharedStatus),
    log: FileLog,
    core: M,
    tick: Option<Duration>,
    (opts, inline): (DiskOptions, bool),
) -> (Addr<RoleActor<M>>, JoinHandle<()>) {
    let ctx: Context<RoleActor<M>> = Context::new();
    let disk = disk::spawn(&name, log, Some(ctx.address().recipient()), opts);
    let mut actor = RoleActor::new(core, router, Some(disk.tx), tick, status);
    if inline {
        actor = actor.inline_while_following();
    }
    (ctx.run(actor), disk.thread)
}

/// The snapshot in `dir`, decoded, if there is one.
fn load_snapshot(dir: &Path) -> Result<Option<(SnapshotFile, Snapshot)>, StorageError> {
    let Some(file) = crate::storage::snapshot::load(dir)? else {
        return Ok(None);
    };
    let s = Snapshot::decode(&file).map_err(|reason| StorageError::BadSnapshot {
        path: crate::storage::snapshot::path(dir),
        reason,
    })?;
    Ok(Some((file, s)))
}

/// Start node `cfg.id` in the running System, serving on `listener`.
pub fn start(cfg: NodeConfig, listener: std::net::TcpListener) -> Result<NodeHandle, NodeError> {
    let id = cfg.id;
    let cluster = &cfg.cluster;
    let Some(me) = cluster.node(id) else {
        return Err(NodeError::UnknownNode(id));
    };
    let addr = me.addr;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| NodeError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;
    let [(alog, arec), (plog, prec), (llog, lrec)] = open_logs(&cfg.data_dir, cluster.fsync)?;
    for (log, rec) in [(&alog, &arec), (&plog, &prec), (&llog, &lrec)] {
        if let Some((at, bytes)) = rec.cut {
            tracing::warn!(
                "{}: cut off a torn tail of {bytes} bytes at byte {at} (a write the crash interrupted, never synced)",
                log.path().display()
            );
        }
    }
    let (snap_file, snap) = match load_snapshot(&cfg.data_dir)? {
        Some((f, s)) => (Some(f), Some(s)),
        None => (None, None),
    };
    let base = snap_file.as_ref().map_or(0, |f| f.slot);
    let incarnation = crate::rng::os_u64();
    let roles = crate::paxos::recover(
        &NodeSetup::new(
            id,
            cluster.initial_ids(),
            cfg.rules,
            cfg.tuning.apply(cluster.proposer_config()),
            cluster.replica_config(),
            incarnation ^ id,
        ),
        Durable {
            acceptor: &arec.records,
            proposer: &prec.records,
            learner: &lrec.records,
            snapshot: snap_file.as_ref().zip(snap),
        },
    );
    let learned_configs = roles.learner.configs().clone();
    tracing::info!(
        "recovered: promised {}, next round {}, snapshot below slot {base}",
        roles.acceptor.promised(),
        roles.proposer.next_round()
    );
    let status: SharedStatus = Rc::new(RefCell::new(NodeStatus {
        id,
        incarnation,
        role: "follower".into(),
        ..NodeStatus::default()
    }));
    let tick = Some(Duration::from_millis(cluster.tick_ms()));
    let router_ctx: Context<Router> = Context::new();
    let router = router_ctx.address();
    let opts = DiskOptions {
        group: cfg.tuning.group_commit,
        fail_after: cfg.tuning.fail_sync_after,
    };
    let synced = |name: &str| {
        (
            format!("node{id}-{name}-log"),
            router.clone(),
            status.clone(),
        )
    };
    let inline = cfg.tuning.inline_log;
    let (acceptor, athread) = synced_role(
        synced("acceptor"),
        alog,
        roles.acceptor,
        None,
        (opts, inline),
    );
    let (proposer, pthread) = synced_role(
        synced("proposer"),
        plog,
        roles.proposer,
        tick,
        (opts, inline),
    );
    let ldisk = disk::spawn(&format!("node{id}-learner-log"), llog, None, opts);
    let learner = RoleActor::new(
        roles.learner,
        router.clone(),
        Some(ldisk.tx),
        tick,
        status.clone(),
    )
    .start();
    let snap_router = router.clone();
    let (writer, snapshot_thread) = disk::SnapshotWriter::spawn(
        &format!("node{id}-snapshots"),
        cfg.data_dir.clone(),
        cluster.fsync,
        move |slot| {
            // Durable: every role may now forget what lies below.
            snap_router.do_send(router::Effects {
                notices: vec![Notice::Snapshotted { slot }],
                ..router::Effects::default()
            });
        },
    );
    let replica = RoleActor::new(roles.replica, router.clone(), None, None, status.clone())
        .with_snapshots(writer)
        .start();
    let (name, fresh) = (cluster.name.clone(), cfg.rules.holds(Rule::Fresh));
    let make_link = move |peer, addr, keys, router| {
        let link = PeerLink::new(LinkConfig {
            me: id,
            peer,
            addr,
            cluster: name.clone(),
            keys,
            fresh,
            router,
        });
        link.start().recipient()
    };
    let peers: BTreeMap<NodeId, Recipient<router::Outbound>> = cluster
        .nodes
        .iter()
        .filter(|n| n.id != id)
        .map(|n| {
            (
                n.id,
                make_link(n.id, n.addr, cfg.keys.node.clone(), router.clone()),
            )
        })
        .collect();
    let members = Rc::new(RefCell::new(members::Members::new(
        id,
        cfg.keys.node.clone(),
        &learned_configs,
    )));
    let router = router_ctx.run(
        Router::new(
            id,
            Roles {
                acceptor: acceptor.recipient(),
                proposer: proposer.recipient(),
                learner: learner.clone().recipient(),
                replica: replica.recipient(),
            },
            peers,
            status.clone(),
        )
        .with_members(members.clone(), Box::new(make_link)),
    );
    if base > 0 {
        // What the snapshot covers is chosen: the proposer and the learner
        // start above it.
        router.do_send(router::Effects {
            notices: vec![Notice::Snapshotted { slot: base }],
            ..router::Effects::default()
        });
    }

    let listen_err = |source| NodeError::Listen { id, addr, source };
    listener.set_nonblocking(true).map_err(listen_err)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(listen_err)?;
    let conn_ctx = Rc::new(ConnContext {
        me: id,
        incarnation,
        cluster: cluster.name.clone(),
        members,
        router: router.clone(),
        log: learner.recipient(),
        status: status.clone(),
        data_dir: cfg.data_dir.clone(),
        gate: Default::default(),
        quiet: std::cell::RefCell::new(gate::Quiet::new(std::time::Instant::now())),
        clients: Default::default(),
    });
    actix_rt::spawn(async move {
        let mut session = 0u64;
        loop {
            match listener.accept().await {
                Ok((stream, addr)) => {
                    session += 1;
                    Conn::serve(stream, addr, conn_ctx.clone(), session);
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
    if cfg.tuning != Tuning::default() {
        tracing::info!("fast paths changed from the environment: {:?}", cfg.tuning);
    }
    tracing::info!(
        "node {id} of cluster {:?} serving on {addr} ({} records recovered)",
        cluster.name,
        arec.records.len()
    );
    Ok(NodeHandle {
        router,
        status,
        disks: vec![athread, pthread, ldisk.thread, snapshot_thread],
    })
}

/// The `synod node` process: bind, start, serve until SIGTERM or SIGINT.
pub fn run(cfg: NodeConfig) -> Result<(), NodeError> {
    let addr = cfg
        .cluster
        .node(cfg.id)
        .ok_or(NodeError::UnknownNode(cfg.id))?
        .addr;
    let listener = std::net::TcpListener::bind(addr).map_err(|source| NodeError::Listen {
        id: cfg.id,
        addr,
        source,
    })?;
    // The RESP port, if the node has one: bound now, so a port in use stops
    // the node before it serves anything.
    let resp = match cfg.cluster.node(cfg.id).and_then(|n| n.redis_addr) {
        Some(raddr) => Some((
            std::net::TcpListener::bind(raddr).map_err(|source| NodeError::Listen {
                id: cfg.id,
                addr: raddr,
                source,
            })?,
            raddr,
        )),
        None => None,
    };
    let resp_id = cfg.id;
    let resp_cfg = crate::resp::RespConfig {
        cluster: cfg.cluster.clone().with_keys(cfg.keys.client.clone()),
        node: cfg.id,
    };
    // A panic in any actor or thread ends the process: a node is never alive
    // outside (its port open) and dead inside.
    std::panic::set_hook(Box::new(|info| {
        tracing::error!("internal error, stopping the node: {info}");
        eprintln!("error: internal error, stopping the node: {info}");
        std::process::exit(70);
    }));
    let system = actix_rt::System::new();
    let handle = system.block_on(async move {
        let handle = start(cfg, listener)?;
        if let Some((l, raddr)) = resp {
            crate::resp::spawn(l, resp_cfg).map_err(|source| NodeError::Listen {
                id: resp_id,
                addr: raddr,
                source,
            })?;
            tracing::info!("serving RESP on {raddr}");
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install a SIGTERM handler");
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .expect("install a SIGINT handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down");
        Ok::<_, NodeError>(handle)
    })?;
    System::current().stop();
    drop(system);
    handle.join();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paxos::{Ballot, Record};
    use crate::storage::Storage;

    /// A lost sector in any of a node's logs stops its start, naming the
    /// file and offset; the learner's says it may be moved aside.
    #[test]
    fn a_lost_sector_in_any_log_stops_the_start() {
        for (i, name) in ["acceptor.log", "proposer.log", "learner.log"]
            .into_iter()
            .enumerate()
        {
            let dir = tempfile::tempdir().unwrap();
            let mut logs = open_logs(dir.path(), true).unwrap();
            let log = &mut logs[i].0;
            for round in 1..=60 {
                let ballot = Ballot::new(round, 1);
                log.append(&Record::Promise { ballot }).unwrap();
                log.sync().unwrap();
            }
            drop(logs);
            let path = dir.path().join(name);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[512..1024].fill(0);
            std::fs::write(&path, &bytes).unwrap();
            let err = open_logs(dir.path(), true).expect_err("refused");
            let msg = err.to_string();
            assert!(
                msg.contains(name) && msg.contains("corrupt log at byte"),
                "{msg}"
            );
            match (name, err) {
                ("learner.log", StorageError::CorruptRelearnable { .. }) => {
                    assert!(msg.contains("move it aside"), "{msg}")
                }
                (_, StorageError::Corrupt { .. }) => {
                    assert!(msg.contains("do not delete"), "{msg}")
                }
                (_, e) => panic!("{name}: {e}"),
            }
            assert_eq!(std::fs::read(&path).unwrap(), bytes);
        }
    }
}
