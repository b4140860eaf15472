//! The replica: applies chosen commands in slot order to the key-value map.
//!
//! Slots may be learned out of order; the replica waits for the hole before it.
//! Every command carries `(client, seq)`; the replica remembers the last one per
//! client and its result, so a command proposed twice (a client retried after a
//! leader change) is applied once and answered again with the same result.
//!
//! # Bounded state
//!
//! Every `snapshot_every` applied slots the replica takes a snapshot: the map,
//! the client table and where it stands, encoded ([`SnapshotFile`]). Once the
//! shell made it durable, every role of the node hears `Snapshotted` and may
//! forget what lies below. A node that fell behind a peer's compaction fetches
//! that peer's latest snapshot in chunks (`SnapshotRequest`/`SnapshotChunk`,
//! one chunk in flight at a time, so the sender never holds more than one),
//! checks its CRC, installs it, and goes on from the log.
//!
//! Confirmed reads waiting for this replica to apply up to their index (a
//! replica far behind its leader, or one that never catches up, would gather
//! them for ever) are bounded too: at most [`MAX_READS`] wait; past it a read
//! is answered `Busy` at once and nothing is queued, so its client retries a
//! little later (as it does when the leader's own queue is full).
//!
//! # Client sessions
//!
//! A client opens a session before its first write: `Op::Register`, chosen
//! through the log like any command, and applied by giving the client the
//! next session number (`Outcome::Registered`). Numbers come from the log, so
//! every replica gives the same one, and none is ever given twice. The
//! client's writes then carry `(session, seq)`, and the client table keeps
//! each session's last sequence number and result: a retried write is
//! answered again, not applied again, and an older one gets `Stale`.
//!
//! The table is bounded: past `max_sessions` sessions, the one idle longest is
//! forgotten. A write from a session the table does not know is refused as
//! `Expired`, never applied: since sessions are numbered by the log, an
//! unknown one was forgotten (or never opened), and the write may be a retry
//! of one applied before (the client sessions of the Raft dissertation,
//! §6.3). The client opens a new session and, if no earlier attempt of the
//! write can have been applied, sends it again. Reads need no session: they
//! change nothing, so applying one twice is harmless.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ballot::{NodeId, Slot};
use super::config::Configs;
use super::message::{Command, Message, Notice, Outbox, Outcome, Reply, SnapshotFile, Value};
use super::rules::{Rule, Rules};
use crate::kv::{Kv, Op, OpResult};

/// Applied slots between two snapshots, unless a cluster file says otherwise.
pub const SNAPSHOT_EVERY: u64 = 10_000;

/// Confirmed reads waiting for the slots below their index, at most (as
/// many as a leader lets wait by default); past it, `Busy`.
pub const MAX_READS: usize = 10_000;

/// When to snapshot, and how much to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaConfig {
    /// Take a snapshot every this many applied slots (0: never).
    pub snapshot_every: u64,
    /// Slots below a snapshot kept in the logs, for peers a little behind.
    pub keep: u64,
    /// Clients remembered at most.
    pub max_sessions: usize,
    /// Bytes of a snapshot sent in one chunk.
    pub chunk: usize,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig::every(SNAPSHOT_EVERY)
    }
}

impl ReplicaConfig {
    /// Snapshots every `n` slots, keeping up to 1,000 slots below each (as
    /// many as `n` when it is smaller, but at least 100: a node that just
    /// installed a snapshot under load must still find the slots after it
    /// in the others' logs) in the logs: a peer that lags by less catches up
    /// from the log, and an observer that reads the log every so
    /// often (the chaos checker) sees every slot before it goes.
    pub fn every(n: u64) -> Self {
        ReplicaConfig {
            snapshot_every: n,
            keep: n.clamp(100, 1_000),
            max_sessions: 100_000,
            chunk: 1 << 20,
        }
    }

    /// The compaction point of a snapshot covering the slots below `slot`.
    pub fn floor(&self, slot: Slot) -> Slot {
        slot.saturating_sub(self.keep)
    }
}

/// What a client last had applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Its last sequence number applied.
    pub seq: u64,
    /// What that command returned.
    pub result: OpResult,
    /// The slot it was applied in (for forgetting the idle ones first).
    pub slot: Slot,
}

/// The state machine at a slot: what a snapshot holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Every slot below this is applied.
    pub next: Slot,
    /// The map.
    pub kv: Kv,
    /// The client table.
    pub sessions: BTreeMap<u64, Session>,
    /// The digest of the applied sequence so far.
    pub digest: u64,
    /// Commands applied so far.
    pub applied: u64,
    /// Clients forgotten so far.
    pub evicted: u64,
    /// Sessions opened so far (the last session number given).
    pub registered: u64,
    /// The configurations in force at `next` and after (`None`: the
    /// initial one only, as the shell knows it).
    pub configs: Option<Configs>,
}

impl Snapshot {
    /// The snapshot as bytes, with their CRC32.
    pub fn encode(&self) -> SnapshotFile {
        let bytes: Arc<[u8]> = postcard::to_allocvec(self)
            .expect("snapshots always serialise")
            .into();
        SnapshotFile {
            slot: self.next,
            crc: crc32fast::hash(&bytes),
            bytes,
        }
    }

    /// The snapshot in `file`, if its bytes check out.
    pub fn decode(file: &SnapshotFile) -> Result<Snapshot, String> {
        if crc32fast::hash(&file.bytes) != file.crc {
            return Err("checksum mismatch".into());
        }
        let s: Snapshot =
            postcard::from_bytes(&file.bytes).map_err(|e| format!("undecodable: {e}"))?;
        if s.next != file.slot {
            return Err(format!("it says slot {}, its header {}", s.next, file.slot));
        }
        Ok(s)
    }
}

/// A snapshot being received.
#[derive(Clone, Debug)]
struct Incoming {
    from: NodeId,
    slot: Slot,
    total: u64,
    crc: u32,
    bytes: Vec<u8>,
}

/// One replica's state.
#[derive(Clone, Debug)]
pub struct Replica {
    id: NodeId,
    cfg: ReplicaConfig,
    next: Slot,
    pending: BTreeMap<Slot, Value>,
    kv: Kv,
    sessions: BTreeMap<u64, Session>,
    /// `(slot, client)` of every session, to find the idlest.
    idle: BTreeSet<(Slot, u64)>,
    digest: u64,
    applied: u64,
    /// Clients forgotten so far.
    evicted: u64,
    /// Sessions opened so far: the last session number given.
    registered: u64,
    /// The configurations chosen so far (`None`: none but the initial one,
    /// which the shell knows). The learner and proposer keep their own,
    /// from the log; this copy travels in the snapshot.
    configs: Option<Configs>,
    rules: Rules,
    audit: Option<Vec<(Slot, u64, u64)>>,
    /// Confirmed reads waiting for the slots below their index.
    reads: BTreeMap<Slot, Vec<Command>>,
    /// How many reads `reads` holds (at most [`MAX_READS`]).
    reads_waiting: usize,
    /// The latest snapshot taken here or installed, once durable: what peers
    /// that fell behind are sent.
    served: Option<SnapshotFile>,
    /// A snapshot taken or installed and not yet durable.
    unsaved: Option<SnapshotFile>,
    incoming: Option<Incoming>,
    /// The snapshot each peer is being sent, kept until its last chunk
    /// leaves even if newer ones are taken meanwhile: a transfer that spans
    /// several snapshots (taken every few slots under load) would otherwise
    /// start over from byte 0 with each, and never end. One per peer.
    pinned: BTreeMap<NodeId, SnapshotFile>,
}

impl Replica {
    /// An empty replica of node `id`, about to apply slot 0.
    pub fn new(id: NodeId, cfg: ReplicaConfig) -> Self {
        Replica {
            id,
            cfg,
            next: 0,
            pending: BTreeMap::new(),
            kv: Kv::new(),
            sessions: BTreeMap::new(),
            idle: BTreeSet::new(),
            digest: 0,
            applied: 0,
            evicted: 0,
            registered: 0,
            configs: None,
            rules: Rules::ALL,
            audit: None,
            reads: BTreeMap::new(),
            reads_waiting: 0,
            served: None,
            unsaved: None,
            incoming: None,
            pinned: BTreeMap::new(),
        }
    }

    /// The same replica starting from the configurations `configs` (the
    /// initial one, unless a snapshot brings others).
    pub fn with_configs(mut self, configs: Configs) -> Self {
        self.configs.get_or_insert(configs);
        self
    }

    /// The configurations chosen so far, if the shell gave the first.
    pub fn configs(&self) -> Option<&Configs> {
        self.configs.as_ref()
    }

    /// The same replica with `rules` (only [`Rule::Sessions`] concerns it).
    pub fn with_rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }

    /// The same replica recording every command it applies, `(slot, client,
    /// seq)`, for the simulator's checks.
    pub fn with_audit(mut self) -> Self {
        self.audit = Some(Vec::new());
        self
    }

    /// A replica restarted from the durable snapshot `file` (already
    /// checked): it goes on from there.
    pub fn restore(
        id: NodeId,
        cfg: ReplicaConfig,
        file: &SnapshotFile,
        snapshot: Snapshot,
    ) -> Self {
        let mut r = Replica::new(id, cfg);
        r.load(snapshot);
        r.served = Some(file.clone());
        r
    }

    fn load(&mut self, s: Snapshot) {
        self.next = s.next;
        self.kv = s.kv;
        self.idle = s.sessions.iter().map(|(c, x)| (x.slot, *c)).collect();
        self.sessions = s.sessions;
        self.digest = s.digest;
        self.applied = s.applied;
        self.evicted = s.evicted;
        self.registered = s.registered;
        if s.configs.is_some() {
            self.configs = s.configs;
        }
        self.pending = self.pending.split_off(&s.next);
    }

    /// The next slot to apply: every slot below it is applied.
    pub fn next_slot(&self) -> Slot {
        self.next
    }

    /// A digest of the whole applied sequence (equal digests: equal sequences).
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// How many commands took effect (duplicates not counted).
    pub fn applied_commands(&self) -> u64 {
        self.applied
    }

    /// The map as applied so far.
    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    /// Clients remembered.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The slot of the latest durable snapshot (0: none yet).
    pub fn snapshot_slot(&self) -> Slot {
        self.served.as_ref().map_or(0, |f| f.slot)
    }

    /// `(slot, client, seq)` of every command applied, if recorded.
    pub fn audit(&self) -> Option<&[(Slot, u64, u64)]> {
        self.audit.as_deref()
    }

    /// Handle a notice for the replica role.
    pub fn notice(&mut self, notice: Notice, out: &mut Outbox) {
        match notice {
            Notice::Chosen { slot, value } => {
                if slot >= self.next {
                    self.pending.insert(slot, value);
                }
                while let Some(value) = self.pending.remove(&self.next) {
                    self.apply(self.next, value, out);
                    self.next += 1;
                    if self.cfg.snapshot_every > 0 && self.next % self.cfg.snapshot_every == 0 {
                        self.take_snapshot(out);
                    }
                }
            }
            // Too many reads wait for this replica to catch up: this one is
            // refused, not queued, and its client retries.
            Notice::Read { cmd, index } if index > self.next && self.reads_waiting >= MAX_READS => {
                out.replies.push(Reply {
                    client: cmd.client,
                    seq: cmd.seq,
                    outcome: Outcome::Busy,
                });
            }
            Notice::Read { cmd, index } => {
                self.reads.entry(index).or_default().push(cmd);
                self.reads_waiting += 1;
            }
            // The shell made a snapshot durable: it may now be served.
            Notice::Snapshotted { slot }
                if self.unsaved.as_ref().is_some_and(|f| f.slot == slot) =>
            {
                self.served = self.unsaved.take();
            }
            _ => {}
        }
        self.answer_reads(out);
    }

    /// Handle a message about snapshots from node `from`.
    pub fn handle(&mut self, from: NodeId, msg: Message, out: &mut Outbox) {
        match msg {
            // A peer compacted below what this node needs: fetch its snapshot
            // (or ask again where a transfer stalled).
            Message::Compacted { floor } if floor > self.next => {
                let offset = match &self.incoming {
                    Some(i) if i.from == from => i.bytes.len() as u64,
                    _ => {
                        self.incoming = None;
                        0
                    }
                };
                let slot = self.incoming.as_ref().map_or(0, |i| i.slot);
                out.send(self.id, from, Message::SnapshotRequest { slot, offset });
            }
            Message::SnapshotRequest { slot, offset } => self.serve(from, slot, offset, out),
            Message::SnapshotChunk {
                slot,
                offset,
                total,
                crc,
                data,
            } => self.receive(from, slot, offset, total, crc, data, out),
            _ => {}
        }
        self.answer_reads(out);
    }

    fn serve(&mut self, to: NodeId, slot: Slot, offset: u64, out: &mut Outbox) {
        // Go on with the snapshot this peer's transfer started on, however
        // many were taken since; else start it on the latest (from byte 0,
        // unless the latest is the one it asks for).
        let file = match self.pinned.get(&to) {
            Some(f) if slot != 0 && f.slot == slot => f.clone(),
            _ => {
                let Some(latest) = &self.served else { return };
                self.pinned.insert(to, latest.clone());
                latest.clone()
            }
        };
        let offset = if slot != 0 && slot != file.slot {
            0
        } else {
            offset
        };
        let start = (offset as usize).min(file.bytes.len());
        let end = (start + self.cfg.chunk).min(file.bytes.len());
        if end == file.bytes.len() {
            // The last chunk: nothing more of it will be asked for.
            self.pinned.remove(&to);
        }
        out.send(
            self.id,
            to,
            Message::SnapshotChunk {
                slot: file.slot,
                offset: start as u64,
                total: file.bytes.len() as u64,
                crc: file.crc,
                data: file.bytes[start..end].to_vec(),
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn receive(
        &mut self,
        from: NodeId,
        slot: Slot,
        offset: u64,
        total: u64,
        crc: u32,
        data: Vec<u8>,
        out: &mut Outbox,
    ) {
        if slot <= self.next {
            // Nothing this snapshot would add.
            self.incoming = None;
            return;
        }
        let fresh = || Incoming {
            from,
            slot,
            total,
            crc,
            bytes: Vec::new(),
        };
        let inc = self.incoming.get_or_insert_with(fresh);
        if inc.from != from || inc.slot != slot || inc.total != total || inc.crc != crc {
            if offset != 0 {
                return; // a chunk of another transfer: ignore it
            }
            *inc = fresh();
        }
        if offset != inc.bytes.len() as u64 || offset + data.len() as u64 > total {
            return; // a duplicate or out of order: the next request fixes it
        }
        inc.bytes.extend_from_slice(&data);
        if (inc.bytes.len() as u64) < total {
            let offset = inc.bytes.len() as u64;
            out.send(self.id, from, Message::SnapshotRequest { slot, offset });
            return;
        }
        let inc = self.incoming.take().expect("present");
        let file = SnapshotFile {
            slot,
            crc,
            bytes: inc.bytes.into(),
        };
        // A snapshot that does not check out is dropped whole; the learner
        // will ask again.
        if let Ok(snapshot) = Snapshot::decode(&file) {
            self.load(snapshot);
            if let Some(c) = &self.configs {
                // The learner and proposer jump to the snapshot's slot once
                // it is durable: they need the configurations it holds first.
                out.notify(Notice::Configured(Box::new(c.clone())));
            }
            while let Some(value) = self.pending.remove(&self.next) {
                self.apply(self.next, value, out);
                self.next += 1;
            }
            self.unsaved = Some(file.clone());
            out.snapshot = Some(file);
        }
    }

    fn take_snapshot(&mut self, out: &mut Outbox) {
        // What governs no slot from here on goes, here and in the snapshot.
        if let Some(c) = &mut self.configs {
            c.forget_below(self.next);
        }
        let snapshot = Snapshot {
            next: self.next,
            kv: self.kv.clone(),
            sessions: self.sessions.clone(),
            digest: self.digest,
            applied: self.applied,
            evicted: self.evicted,
            registered: self.registered,
            configs: self.configs.clone(),
        };
        let file = snapshot.encode();
        self.unsaved = Some(file.clone());
        out.snapshot = Some(file);
    }

    /// Reads whose index is applied: answer from the map as it stands.
    fn answer_reads(&mut self, out: &mut Outbox) {
        while let Some(entry) = self.reads.first_entry() {
            if *entry.key() > self.next {
                break;
            }
            let cmds = entry.remove();
            self.reads_waiting -= cmds.len();
            for cmd in cmds {
                let result = self.kv.apply(&cmd.op);
                out.replies.push(Reply {
                    client: cmd.client,
                    seq: cmd.seq,
                    outcome: Outcome::Done(result),
                });
            }
        }
    }

    fn apply(&mut self, slot: Slot, value: Value, out: &mut Outbox) {
        let mut h = DefaultHasher::new();
        self.digest.hash(&mut h);
        slot.hash(&mut h);
        value.hash(&mut h);
        self.digest = h.finish();
        let cmds = match value {
            Value::Batch(cmds) => cmds,
            // Every replica refuses the same changes (one pending, or an
            // invalid one): the log decides.
            Value::Reconfig(next) => {
                if let Some(c) = &mut self.configs {
                    let _ = c.chosen(slot, *next);
                }
                return;
            }
            Value::Noop | Value::Text(_) => return,
        };
        for cmd in cmds {
            let outcome = self.apply_command(slot, &cmd);
            out.replies.push(Reply {
                client: cmd.client,
                seq: cmd.seq,
                outcome,
            });
        }
    }

    /// Apply one command of slot `slot`, at most once per `(client, seq)`.
    fn apply_command(&mut self, slot: Slot, cmd: &Command) -> Outcome {
        if cmd.op == Op::Register {
            // Numbered by the log: the same on every replica, never reused.
            self.registered += 1;
            let session = self.registered;
            self.remember(session, 0, OpResult::Done, slot);
            return Outcome::Registered { session };
        }
        if cmd.op.is_read() {
            // Changes nothing: no session needed, and twice is harmless.
            self.applied += 1;
            return Outcome::Done(self.kv.apply(&cmd.op));
        }
        match self.sessions.get(&cmd.client) {
            // The same command again: answer as before, apply nothing.
            Some(s) if s.seq == cmd.seq => return Outcome::Done(s.result.clone()),
            // Older than what this client has already seen done: it moved on.
            Some(s) if s.seq > cmd.seq => return Outcome::Stale { last: s.seq },
            Some(_) => {}
            // Forgotten (or never opened): it may have been applied before.
            None if self.rules.holds(Rule::Sessions) => return Outcome::Expired,
            None => {}
        }
        let result = self.kv.apply(&cmd.op);
        self.remember(cmd.client, cmd.seq, result.clone(), slot);
        self.applied += 1;
        if let Some(audit) = &mut self.audit {
            audit.push((slot, cmd.client, cmd.seq));
        }
        Outcome::Done(result)
    }

    /// Remember what client `client` last had applied, forgetting the idlest
    /// client if the table is full.
    fn remember(&mut self, client: u64, seq: u64, result: OpResult, slot: Slot) {
        if let Some(old) = self.sessions.insert(client, Session { seq, result, slot }) {
            self.idle.remove(&(old.slot, client));
        }
        self.idle.insert((slot, client));
        while self.sessions.len() > self.cfg.max_sessions {
            let Some((_, idlest)) = self.idle.pop_first() else {
                break;
            };
            self.sessions.remove(&idlest);
            self.evicted += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::Op;

    fn put(client: u64, seq: u64, v: &str) -> Command {
        Command {
            client,
            seq,
            op: Op::Put {
                key: "k".into(),
                value: v.into(),
            },
        }
    }

    fn chosen(r: &mut Replica, slot: Slot, cmds: Vec<Command>, out: &mut Outbox) {
        let value = Value::Batch(cmds);
        r.notice(Notice::Chosen { slot, value }, out);
    }

    fn register(nonce: u64) -> Command {
        Command {
            client: nonce,
            seq: 0,
            op: Op::Register,
        }
    }

    /// Open a session in slot `slot`: its number.
    fn open(r: &mut Replica, slot: Slot) -> u64 {
        let mut out = Outbox::new();
        chosen(r, slot, vec![register(1 << 63)], &mut out);
        match out.replies[..] {
            [Reply {
                outcome: Outcome::Registered { session },
                ..
            }] => session,
            ref other => panic!("{other:?}"),
        }
    }

    fn cfg(every: u64) -> ReplicaConfig {
        ReplicaConfig {
            snapshot_every: every,
            keep: 1,
            max_sessions: 3,
            chunk: 8,
        }
    }

    #[test]
    fn applies_in_slot_order_once_per_command() {
        let mut r = Replica::new(1, cfg(0)).with_audit();
        let mut out = Outbox::new();
        chosen(&mut r, 2, vec![put(1, 2, "b")], &mut out);
        assert!(out.replies.is_empty(), "slot 0 is still a hole");
        assert_eq!(open(&mut r, 0), 1, "sessions are numbered from 1");
        chosen(&mut r, 1, vec![put(1, 1, "a")], &mut out);
        chosen(&mut r, 3, vec![put(1, 2, "b"), put(1, 1, "a")], &mut out);
        assert_eq!(r.kv().get("k").map(String::as_str), Some("b"));
        assert_eq!(r.applied_commands(), 2);
        assert_eq!(r.audit().unwrap(), &[(1, 1, 1), (2, 1, 2)]);
        // The duplicate of seq 2 is answered again; the older seq 1 is told
        // that the client moved on.
        let answered: Vec<(u64, &Outcome)> =
            out.replies.iter().map(|r| (r.seq, &r.outcome)).collect();
        let done = Outcome::Done(OpResult::Done);
        assert_eq!(
            answered,
            vec![
                (1, &done),
                (2, &done),
                (2, &done),
                (1, &Outcome::Stale { last: 2 })
            ]
        );
        assert_eq!(r.next_slot(), 4);
    }

    #[test]
    fn a_write_from_an_unknown_session_is_refused_and_reads_need_none() {
        let mut r = Replica::new(1, cfg(0));
        let mut out = Outbox::new();
        let get = Command {
            client: 99,
            seq: 1,
            op: Op::Get { key: "k".into() },
        };
        chosen(&mut r, 0, vec![put(99, 1, "v"), get], &mut out);
        assert_eq!(out.replies[0].outcome, Outcome::Expired);
        assert_eq!(out.replies[1].outcome, Outcome::Done(OpResult::Value(None)));
        assert_eq!(r.sessions(), 0, "neither opened a session");
        // Registering twice (a retried Register) gives two sessions.
        assert_eq!(open(&mut r, 1), 1);
        assert_eq!(open(&mut r, 2), 2);
    }

    #[test]
    fn equal_sequences_equal_digests() {
        let mut a = Replica::new(1, cfg(0));
        let mut b = Replica::new(2, cfg(0));
        for r in [&mut a, &mut b] {
            let noop = Notice::Chosen {
                slot: 0,
                value: Value::Noop,
            };
            r.notice(noop, &mut Outbox::new());
        }
        assert_eq!(a.digest(), b.digest());
        a.notice(
            Notice::Chosen {
                slot: 1,
                value: Value::Noop,
            },
            &mut Outbox::new(),
        );
        b.notice(
            Notice::Chosen {
                slot: 1,
                value: Value::Text("x".into()),
            },
            &mut Outbox::new(),
        );
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn a_snapshot_every_n_slots_is_served_once_durable_and_installs_elsewhere() {
        let mut a = Replica::new(1, cfg(2));
        let mut out = Outbox::new();
        chosen(&mut a, 0, vec![register(7), put(1, 1, "a")], &mut out);
        assert!(out.snapshot.is_none());
        chosen(&mut a, 1, vec![put(1, 2, "b")], &mut out);
        let file = out.snapshot.take().expect("a snapshot at slot 2");
        assert_eq!(file.slot, 2);
        assert_eq!(Snapshot::decode(&file).unwrap().next, 2);
        // Not durable yet: a peer that asks gets nothing.
        let mut served = Outbox::new();
        a.handle(
            2,
            Message::SnapshotRequest { slot: 0, offset: 0 },
            &mut served,
        );
        assert!(served.send.is_empty());
        a.notice(Notice::Snapshotted { slot: 2 }, &mut Outbox::new());
        assert_eq!(a.snapshot_slot(), 2);

        // Node 2 is behind: a compacted peer tells it, it pulls the snapshot
        // a chunk (8 bytes) at a time, and installs it.
        let mut b = Replica::new(2, cfg(2));
        let mut msgs: Vec<(NodeId, NodeId, Message)> =
            vec![(1, 2, Message::Compacted { floor: 2 })];
        let mut chunks = 0;
        while let Some((from, to, msg)) = msgs.pop() {
            let mut out = Outbox::new();
            if msg.kind() == "SnapshotChunk" {
                chunks += 1;
            }
            match to {
                1 => a.handle(from, msg, &mut out),
                _ => b.handle(from, msg, &mut out),
            }
            msgs.extend(out.send.into_iter().map(|e| (e.from, e.to, e.msg)));
            if let Some(f) = out.snapshot {
                assert_eq!(f, file, "the bytes installed are the bytes taken");
            }
        }
        assert!(chunks > 2, "{chunks} chunks");
        assert_eq!(b.next_slot(), 2);
        assert_eq!(b.kv(), a.kv());
        assert_eq!(b.digest(), a.digest());
        // A chunk from a corrupted transfer installs nothing.
        let mut c = Replica::new(3, cfg(2));
        let mut bad = file.bytes.to_vec();
        bad[0] ^= 1;
        let mut out = Outbox::new();
        let total = bad.len() as u64;
        c.handle(
            1,
            Message::SnapshotChunk {
                slot: 2,
                offset: 0,
                total,
                crc: file.crc,
                data: bad,
            },
            &mut out,
        );
        assert!(out.snapshot.is_none());
        assert_eq!(c.next_slot(), 0);
    }

    #[test]
    fn the_client_table_is_bounded_and_a_forgotten_clients_retry_is_refused() {
        // The case: a client's first write is applied, the client is
        // forgotten, and the write comes again (a retry, or a duplicate).
        let run = |rules: Rules| {
            let mut r = Replica::new(1, cfg(0)).with_rules(rules).with_audit();
            let mut out = Outbox::new();
            let first = open(&mut r, 0);
            chosen(&mut r, 1, vec![put(first, 1, "old")], &mut out);
            let others: Vec<u64> = (2..5).map(|slot| open(&mut r, slot)).collect();
            for (s, slot) in others.into_iter().zip(5..) {
                chosen(&mut r, slot, vec![put(s, 1, "new")], &mut out);
            }
            assert_eq!(
                r.sessions(),
                3,
                "the first client, the idlest, was forgotten"
            );
            let mut out = Outbox::new();
            chosen(&mut r, 8, vec![put(first, 1, "old")], &mut out);
            (r, out.replies[0].outcome.clone())
        };
        let (r, outcome) = run(Rules::ALL);
        assert_eq!(outcome, Outcome::Expired);
        assert_eq!(r.kv().get("k").map(String::as_str), Some("new"));
        // With the guard off, the retry is applied a second time: the key
        // goes back to its old value.
        let (broken, outcome) = run(Rules::breaking(Some(Rule::Sessions)));
        assert!(matches!(outcome, Outcome::Done(_)));
        assert_eq!(broken.kv().get("k").map(String::as_str), Some("old"));
        let twice = broken
            .audit()
            .unwrap()
            .iter()
            .filter(|a| a.1 == 1 && a.2 == 1);
        assert_eq!(twice.count(), 2);

        // The table, and the session count, travel in the snapshot.
        let s = Snapshot {
            next: r.next_slot(),
            kv: r.kv().clone(),
            sessions: r.sessions.clone(),
            digest: r.digest(),
            applied: r.applied_commands(),
            evicted: r.evicted,
            registered: r.registered,
            configs: None,
        };
        let file = s.encode();
        let mut restored = Replica::restore(2, cfg(0), &file, Snapshot::decode(&file).unwrap());
        assert_eq!(restored.sessions(), 3);
        assert_eq!(restored.evicted, r.evicted);
        assert_eq!(
            open(&mut restored, 9),
            5,
            "no session number is given twice"
        );
    }

    #[test]
    fn reads_waiting_for_a_lagging_replica_are_bounded_and_the_rest_are_answered_busy() {
        // Slot 0 is a hole: every read confirmed at an index above it waits.
        let get = |seq: u64| Command {
            client: 5,
            seq,
            op: Op::Get { key: "k".into() },
        };
        let read = |r: &mut Replica, seq: u64, index: Slot, out: &mut Outbox| {
            r.notice(
                Notice::Read {
                    cmd: get(seq),
                    index,
                },
                out,
            )
        };
        let mut r = Replica::new(1, cfg(0));
        let mut out = Outbox::new();
        let extra = 5;
        for seq in 0..(MAX_READS + extra) as u64 {
            read(&mut r, seq, 1 + seq % 7, &mut out);
        }
        let queued: usize = r.reads.values().map(Vec::len).sum();
        assert_eq!((queued, r.reads_waiting), (MAX_READS, MAX_READS));
        // Those past the bound were answered at once, Busy, and only they.
        let busy: Vec<Reply> = (MAX_READS..MAX_READS + extra)
            .map(|seq| Reply {
                client: 5,
                seq: seq as u64,
                outcome: Outcome::Busy,
            })
            .collect();
        assert_eq!(out.replies, busy);
        // A read this replica can answer now is answered, full or not.
        let mut out = Outbox::new();
        read(&mut r, 99_999, 0, &mut out);
        assert_eq!(out.replies.len(), 1);
        assert_eq!(out.replies[0].outcome, Outcome::Done(OpResult::Value(None)));
        // Once it catches up, every waiting read is answered, and room is made.
        let mut out = Outbox::new();
        chosen(&mut r, 0, vec![register(9), put(1, 1, "v")], &mut out);
        for slot in 1..7 {
            r.notice(
                Notice::Chosen {
                    slot,
                    value: Value::Noop,
                },
                &mut out,
            );
        }
        let done = out
            .replies
            .iter()
            .filter(|x| x.outcome == Outcome::Done(OpResult::Value(Some("v".into()))))
            .count();
        assert_eq!(done, MAX_READS);
        assert!(r.reads.is_empty());
        assert_eq!(r.reads_waiting, 0);
        let mut out = Outbox::new();
        read(&mut r, 1, 100, &mut out);
        assert!(out.replies.is_empty(), "queued again");
    }

    #[test]
    fn a_chosen_change_is_tracked_by_slot_and_travels_in_the_snapshot() {
        use crate::paxos::config::{Config, ALPHA};
        let config = |number: u64, voters: &[NodeId]| Config {
            number,
            voters: voters.iter().copied().collect(),
            learners: BTreeSet::new(),
            quorums: None,
            contacts: Default::default(),
        };
        let mut r =
            Replica::new(1, cfg(2)).with_configs(Configs::new(config(0, &[1, 2, 3]), ALPHA));
        let mut out = Outbox::new();
        let grow = Value::Reconfig(Box::new(config(1, &[1, 2, 3, 4, 5])));
        r.notice(
            Notice::Chosen {
                slot: 0,
                value: grow,
            },
            &mut out,
        );
        // A second change while the first is pending is refused, here as
        // at every replica.
        let again = Value::Reconfig(Box::new(config(2, &[1, 2, 3])));
        r.notice(
            Notice::Chosen {
                slot: 1,
                value: again,
            },
            &mut out,
        );
        let c = r.configs().unwrap();
        assert_eq!((c.at(ALPHA - 1).number, c.at(ALPHA).number), (0, 1));
        assert_eq!(c.at(1 + ALPHA).number, 1, "the second change was refused");
        // Slot 2 ends with a snapshot (every 2 slots): it carries them.
        let file = out.snapshot.take().expect("a snapshot at slot 2");
        let s = Snapshot::decode(&file).unwrap();
        let restored = Replica::restore(2, cfg(2), &file, s)
            .with_configs(Configs::new(config(0, &[1, 2, 3]), ALPHA));
        assert_eq!(restored.configs().unwrap().at(ALPHA).voters.len(), 5);
    }

    #[test]
    fn a_transfer_ends_on_the_snapshot_it_started_on_however_many_are_taken_meanwhile() {
        let file = |slot: Slot, fill: u8| SnapshotFile {
            slot,
            crc: u32::from(fill),
            bytes: vec![fill; 10].into(),
        };
        let mut r = Replica::new(1, ReplicaConfig { chunk: 4, ..cfg(0) });
        r.served = Some(file(100, 1));
        let chunk = |r: &mut Replica, slot: Slot, offset: u64| {
            let mut out = Outbox::default();
            r.handle(2, Message::SnapshotRequest { slot, offset }, &mut out);
            match &out.send[0].msg {
                Message::SnapshotChunk {
                    slot, offset, data, ..
                } => (*slot, *offset, data[0]),
                m => panic!("{m:?}"),
            }
        };
        assert_eq!(chunk(&mut r, 0, 0), (100, 0, 1));
        // Two newer snapshots are taken while the peer fetches the rest.
        r.served = Some(file(110, 2));
        assert_eq!(chunk(&mut r, 100, 4), (100, 4, 1));
        r.served = Some(file(120, 3));
        assert_eq!(
            chunk(&mut r, 100, 8),
            (100, 8, 1),
            "the last chunk of the first"
        );
        // Done: the next transfer starts on the latest.
        assert!(r.pinned.is_empty());
        assert_eq!(chunk(&mut r, 100, 8), (120, 0, 3));
    }
}
