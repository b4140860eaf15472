//! A role's log on its own thread, so that fsync never blocks the actors.
//!
//! Group commit: the thread takes every append that is waiting, writes them with
//! one `write` and syncs once, then reports the last batch it made durable.
//!
//! The queue is a mutex and a condition variable rather than a channel: the
//! thread sleeps as soon as the queue is empty instead of spinning and yielding
//! first, which on two cores under load cost a tenth of a node's CPU (profiled).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use actix::prelude::*;

use crate::paxos::Record;
use crate::storage::{FileLog, Storage};

/// Records to append, numbered so the owner knows when they are durable.
pub struct Append {
    /// Increasing per log.
    pub batch: u64,
    /// The records.
    pub records: Vec<Record>,
    /// The records replace the whole log (a compaction).
    pub rewrite: bool,
    /// What the compaction dropped: freed here, off the event loop.
    pub forgotten: crate::paxos::Forgotten,
}

/// Every batch up to `batch` is durable.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Synced {
    /// The last durable batch.
    pub batch: u64,
    /// Records written so far.
    pub records: u64,
    /// Syncs that reached the disk so far.
    pub syncs: u64,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Append>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// Where a role sends its appends; dropping it lets the thread finish the
/// queue and stop.
pub struct DiskTx(Arc<Shared>);

impl DiskTx {
    /// Queue `a` for the log thread.
    pub fn send(&self, a: Append) {
        self.0
            .queue
            .lock()
            .expect("not poisoned")
            .items
            .push_back(a);
        self.0.ready.notify_one();
    }
}

impl Drop for DiskTx {
    fn drop(&mut self) {
        self.0.queue.lock().expect("not poisoned").closed = true;
        self.0.ready.notify_one();
    }
}

/// A thread that makes snapshots durable, one at a time, the latest first.
pub struct SnapshotWriter {
    tx: crossbeam_channel::Sender<crate::paxos::SnapshotFile>,
}

impl SnapshotWriter {
    /// Start the thread that writes snapshots into `dir`; `done(slot)` is
    /// called once each is durable. The thread ends when the writer is
    /// dropped (join it then).
    ///
    /// # Panics
    /// If the operating system cannot start a thread.
    pub fn spawn(
        name: &str,
        dir: std::path::PathBuf,
        fsync: bool,
        done: impl Fn(u64) + Send + 'static,
    ) -> (SnapshotWriter, JoinHandle<()>) {
        let (tx, rx) = crossbeam_channel::unbounded::<crate::paxos::SnapshotFile>();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                while let Ok(mut snap) = rx.recv() {
                    // Only the newest of those waiting is worth writing.
                    while let Ok(newer) = rx.try_recv() {
                        snap = newer;
                    }
                    if let Err(e) = crate::storage::snapshot::save(&dir, &snap, fsync) {
                        fatal(&e.to_string());
                    }
                    done(snap.slot);
                }
            })
            .expect("spawn a snapshot thread");
        (SnapshotWriter { tx }, thread)
    }

    /// Queue `snap` to be made durable.
    pub fn save(&self, snap: crate::paxos::SnapshotFile) {
        let _ = self.tx.send(snap);
    }
}

/// The other end of a [`DiskTx`] with no thread behind it: whoever holds it
/// decides when appends become durable (tests of the actors' ordering).
pub struct DiskQueue(Arc<Shared>);

impl DiskQueue {
    /// Every append waiting, oldest first.
    pub fn take(&self) -> Vec<Append> {
        self.0
            .queue
            .lock()
            .expect("not poisoned")
            .items
            .drain(..)
            .collect()
    }
}

/// A [`DiskTx`] whose appends wait in a [`DiskQueue`] until taken.
pub fn queue() -> (DiskTx, DiskQueue) {
    let shared = Arc::new(Shared::default());
    (DiskTx(shared.clone()), DiskQueue(shared))
}

/// A log thread.
pub struct Disk {
    /// Where appends go.
    pub tx: DiskTx,
    /// The thread, to join on shutdown.
    pub thread: JoinHandle<()>,
}

/// How a log thread works.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskOptions {
    /// One sync for every append waiting (group commit); without it, every
    /// batch gets a sync of its own (to measure the difference).
    pub group: bool,
    /// Fail as a broken disk would after this many syncs (fault injection for
    /// tests: `SYNOD_FAIL_SYNC_AFTER=N`).
    pub fail_after: Option<u64>,
}

/// A sync at least this slow is logged.
const SLOW_SYNC: std::time::Duration = std::time::Duration::from_millis(100);

/// Start the thread that owns `log`; `done` hears of every durable batch.
///
/// # Panics
/// If the operating system cannot start a thread.
pub fn spawn(name: &str, log: FileLog, done: Option<Recipient<Synced>>, opts: DiskOptions) -> Disk {
    let shared = Arc::new(Shared::default());
    let rx = shared.clone();
    let thread = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || run(log, &rx, done, opts))
        .expect("spawn a log thread");
    Disk {
        tx: DiskTx(shared),
        thread,
    }
}

/// The next appends to write: all that wait (group commit) or just the first.
fn take(shared: &Shared, group: bool) -> Option<Vec<Append>> {
    let mut q = shared.queue.lock().expect("not poisoned");
    while q.items.is_empty() {
        if q.closed {
            return None;
        }
        q = shared.ready.wait(q).expect("not poisoned");
    }
    Some(if group {
        q.items.drain(..).collect()
    } else {
        q.items.pop_front().into_iter().collect()
    })
}

fn run(mut log: FileLog, shared: &Shared, done: Option<Recipient<Synced>>, opts: DiskOptions) {
    let mut records = 0u64;
    let mut syncs = 0u64;
    while let Some(batch) = take(shared, opts.group) {
        let mut last = 0;
        let mut append = |a: &Append| {
            if a.rewrite {
                if let Err(e) = log.rewrite(&a.records) {
                    fatal(&e.to_string());
                }
            } else {
                for r in &a.records {
                    if let Err(e) = log.append(r) {
                        fatal(&e.to_string());
                    }
                }
            }
            records += a.records.len() as u64;
        };
        for a in &batch {
            append(a);
            last = a.batch;
        }
        if opts.fail_after.is_some_and(|n| syncs >= n) {
            fatal(&format!(
                "{}: injected sync failure after {syncs} syncs (SYNOD_FAIL_SYNC_AFTER)",
                log.path().display()
            ));
        }
        let started = std::time::Instant::now();
        if let Err(e) = log.sync() {
            fatal(&e.to_string());
        }
        let took = started.elapsed();
        if took >= SLOW_SYNC {
            // etcd warns alike ("slow fdatasync"): a sync this slow holds every
            // answer that waits for it, heartbeats' acknowledgements too.
            tracing::warn!(
                "{}: a sync took {} ms (a slow or busy disk delays every answer that waits for it)",
                log.path().display(),
                took.as_millis()
            );
        }
        syncs += 1;
        if let Some(done) = &done {
            done.do_send(Synced {
                batch: last,
                records,
                syncs: log.syncs(),
            });
        }
    }
}

/// A log that cannot be written: the node must not answer as if it had been,
/// so the whole process ends (its peers see it down; `synod restart` brings it
/// back from what did reach the disk).
fn fatal(what: &str) -> ! {
    tracing::error!("cannot write the log, stopping: {what}");
    eprintln!("error: cannot write the log, stopping: {what}");
    std::process::exit(1);
}
