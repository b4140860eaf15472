//! The chaos workload: clients issuing put, get and cas with unique values on
//! keys that live for a bounded number of operations, and the observers that
//! read the nodes' logs and status as the run goes. Everything they see goes
//! to the judge as an [`Event`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::judge::Event;
use crate::check::history::{Operation, Status};
use crate::client::{self, Client};
use crate::cluster::Cluster;
use crate::kv::{Op, OpResult};
use crate::launcher;
use crate::net::{Request, Response};
use crate::paxos::{NodeId, Slot};
use crate::resp::client::RespKv;
use crate::rng::Rng;

/// What the observers send the judge's thread.
pub enum Msg {
    /// An observation.
    Event(Event),
    /// Nothing more will come: finish.
    Finish,
}

/// The clock and the channel every observer shares.
pub struct Tap {
    /// When the run began.
    pub started: Instant,
    /// To the judge.
    pub tx: Sender<Msg>,
    /// Operations completed so far (for the progress bar).
    pub ops: AtomicU64,
}

impl Tap {
    /// µs since the run began.
    pub fn micros(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Send `e` to the judge (dropped if the judge is gone).
    pub fn send(&self, e: Event) {
        let _ = self.tx.send(Msg::Event(e));
    }
}

/// The keys in use: `slots` of them at a time, each retired after `per_key`
/// operations and replaced by a fresh one (Jepsen's independent keys), so
/// that each key's history stays short enough to check, and is checked and
/// dropped while the run goes on.
pub struct KeyRing {
    run: u64,
    per_key: u64,
    state: Mutex<RingState>,
}

struct RingState {
    slots: Vec<(String, u64)>,
    next: u64,
}

impl KeyRing {
    /// `slots` keys at a time, each for `per_key` operations; names carry
    /// `run`, so data kept from an earlier run cannot confuse the checker.
    pub fn new(run: u64, slots: usize, per_key: u64) -> KeyRing {
        let slots: Vec<(String, u64)> = (0..slots.max(1) as u64)
            .map(|k| (format!("r{run}.k{k}"), 0))
            .collect();
        let next = slots.len() as u64;
        KeyRing {
            run,
            per_key: per_key.max(1),
            state: Mutex::new(RingState { slots, next }),
        }
    }

    /// How many keys are in use at a time.
    pub fn len(&self) -> usize {
        self.state.lock().expect("not poisoned").slots.len()
    }

    /// Always false: a ring holds one key at least.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The key for one more operation in slot `i`: the slot's key, or a fresh
    /// one if that key had its share (then it is retired, with its count).
    pub fn take(&self, i: usize, tap: &Tap) -> String {
        let mut st = self.state.lock().expect("not poisoned");
        let fresh = format!("r{}.k{}", self.run, st.next);
        let i = i % st.slots.len();
        if st.slots[i].1 >= self.per_key {
            st.next += 1;
            let (old, ops) = std::mem::replace(&mut st.slots[i], (fresh, 0));
            // Under the lock: no operation on `old` can be issued after this.
            tap.send(Event::Retire { key: old, ops });
        }
        st.slots[i].1 += 1;
        st.slots[i].0.clone()
    }

    /// The keys in use, each counted for one more operation (the final
    /// reads), without retiring any.
    pub fn take_all(&self) -> Vec<String> {
        let mut st = self.state.lock().expect("not poisoned");
        st.slots
            .iter_mut()
            .map(|(k, n)| {
                *n += 1;
                k.clone()
            })
            .collect()
    }

    /// Retire every key in use (the run is over).
    pub fn retire_all(&self, tap: &Tap) {
        let st = self.state.lock().expect("not poisoned");
        for (key, ops) in &st.slots {
            tap.send(Event::Retire {
                key: key.clone(),
                ops: *ops,
            });
        }
    }
}

/// A client's way to the cluster.
pub enum ChaosClient {
    /// synod's own client.
    Native(Client),
    /// RESP, to one node's Redis port at a time.
    Resp(RespKv),
}

/// How long a RESP client waits for a reply: past the node's own client
/// timeout (5 s), so a reply that is coming is not given up on.
const RESP_TIMEOUT: Duration = Duration::from_secs(6);

impl ChaosClient {
    /// Client `i` of a run: over RESP to `resp`'s ports if given, else
    /// synod's own client with short timeouts (faults are expected).
    pub fn new(cluster: &Cluster, resp: Option<&[SocketAddr]>, i: usize) -> ChaosClient {
        match resp {
            Some(addrs) => ChaosClient::Resp(RespKv::new(addrs.to_vec(), i, RESP_TIMEOUT)),
            None => {
                let mut c = Client::new(cluster.clone());
                c.timeout = Duration::from_millis(1_000);
                c.attempt_timeout = Duration::from_millis(250);
                ChaosClient::Native(c)
            }
        }
    }

    /// With `Some(i)`, a native client starts each operation at node
    /// `i mod n` of the cluster (see [`Client::home`]); RESP clients are
    /// bound to a node already.
    pub fn homed(mut self, i: Option<usize>) -> ChaosClient {
        if let (ChaosClient::Native(c), Some(i)) = (&mut self, i) {
            let ids = c.cluster().ids();
            c.home = Some(ids[i % ids.len()]);
        }
        self
    }

    /// Run `op`: its result, or whether it may have been applied.
    fn execute(&mut self, op: &Op) -> Result<OpResult, bool> {
        match self {
            ChaosClient::Native(c) => c.execute(op.clone()).map_err(|e| e.maybe_applied()),
            ChaosClient::Resp(r) => r.execute(op).map_err(|e| e.maybe_applied),
        }
    }

    /// The (client, seq) the log holds for the last operation.
    fn ids(&self) -> (u64, u64) {
        match self {
            ChaosClient::Native(c) => (c.id(), c.seq()),
            ChaosClient::Resp(r) => (r.id(), r.seq()),
        }
    }

    /// Run `op` and tell the judge how it went.
    pub fn run(&mut self, op: Op, tap: &Tap) -> Status {
        let invoke = tap.micros();
        let result = self.execute(&op);
        let complete = tap.micros();
        let (client, seq) = self.ids();
        let status = match result {
            Ok(r) => Status::Ok(r),
            Err(true) => Status::Unknown,
            Err(false) => Status::Failed,
        };
        tap.send(Event::Op(Operation {
            id: 0,
            client,
            seq,
            op,
            invoke,
            complete: Some(complete),
            status: status.clone(),
        }));
        tap.ops.fetch_add(1, Ordering::Relaxed);
        status
    }
}

/// Client `i`: operations until told to stop, each on a key of the ring.
pub fn client_loop(
    i: usize,
    mut kv: ChaosClient,
    ring: &KeyRing,
    tap: &Tap,
    seed: u64,
    stop: &AtomicBool,
) {
    let mut rng = Rng::derive(seed, 10_000 + i as u64);
    // The last value this client saw for each key, for its cas.
    let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let key = ring.take(rng.below(ring.len()), tap);
        let unique = format!("c{i}.{n}");
        let op = match rng.below(10) {
            0..=3 => Op::Put { key, value: unique },
            4..=6 => Op::Get { key },
            _ => {
                let expect = seen.get(&key).cloned().flatten();
                Op::Cas {
                    key,
                    expect,
                    new: unique,
                }
            }
        };
        let asked = op.clone();
        match kv.run(op, tap) {
            Status::Ok(r) => match (asked, r) {
                (Op::Put { key, value }, _)
                | (
                    Op::Cas {
                        key, new: value, ..
                    },
                    OpResult::Swapped(true),
                ) => {
                    seen.insert(key, Some(value));
                }
                (Op::Get { key }, OpResult::Value(v)) => {
                    seen.insert(key, v);
                }
                _ => {}
            },
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
        if seen.len() > 4 * ring.len() {
            seen.clear(); // retired keys: forget them
        }
    }
}

/// One pass of node `id`'s log reader: read its chosen slots from `cursor`
/// on, page by page, and send each page to the judge; the cursor moves past
/// what was read and what the node had compacted. Only slots below the
/// node's first unchosen slot count (a learner may know later ones across a
/// hole). False if the node did not answer.
pub fn read_log(cluster: &Cluster, id: NodeId, cursor: &mut Slot, tap: &Tap) -> bool {
    let Some(addr) = cluster.node(id).map(|n| n.addr) else {
        return false;
    };
    let mut answered = false;
    loop {
        let from = *cursor;
        let req = Request::Log { from, limit: 4096 };
        let Ok(Response::Log {
            entries,
            first_unchosen,
            floor,
        }) = client::query(addr, cluster, &req, Duration::from_millis(500))
        else {
            return answered;
        };
        answered = true;
        let start = from.max(floor);
        let entries: Vec<_> = entries
            .into_iter()
            .filter(|(s, _)| *s >= start && *s < first_unchosen)
            .collect();
        let next = entries.last().map_or(start, |(s, _)| s + 1);
        let more = !entries.is_empty();
        if next > from || more {
            tap.send(Event::Log {
                node: id,
                at: tap.micros(),
                from,
                floor,
                entries,
                next,
            });
        }
        *cursor = next;
        if !more {
            return true;
        }
    }
}

/// Ask every node's status and send each answer to the judge.
pub fn poll_status(cluster: &Cluster, tap: &Tap) {
    for (id, st) in launcher::query_all(cluster, Duration::from_millis(150)) {
        tap.send(Event::Status {
            node: id,
            at: tap.micros(),
            promised: st.promised,
            applied: st.applied,
            digest: st.digest,
            conflicts: st.conflicts,
            first_conflicts: st.first_conflicts,
        });
    }
}
