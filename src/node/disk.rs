//! A role's log on its own thread, so that fsync never blocks the actors
//! while the node leads; while it follows, its event loop writes and syncs
//! at the end of each turn itself ([`DiskTx::write_here`]): it has nothing
//! else to do meanwhile, and two thread wake-ups per sync are saved (the
//! thread's, and the loop's when the thread reports back).
//! `SYNOD_LOG_THREAD=1` keeps every sync on the thread.
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
    /// Someone (the thread, or the event loop) is writing appends it took
    /// from the queue: the other waits, so batches reach the log in order.
    busy: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// The log (`None`: a queue a test drains).
    writer: Option<Mutex<LogWriter>>,
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

    /// Write and sync `appends` here, on the caller's thread, after
    /// whatever still waits in the queue (older), unless the log thread is
    /// writing right now: then they are queued for it and `None` returned.
    /// With one sync for all of them, or one each without group commit.
    pub fn write_here(&self, appends: Vec<Append>) -> Option<Synced> {
        let writer = self.0.writer.as_ref();
        let mut q = self.0.queue.lock().expect("not poisoned");
        if q.busy || writer.is_none() {
            q.items.extend(appends);
            drop(q);
            self.0.ready.notify_one();
            return None;
        }
        q.busy = true;
        let mut all: Vec<Append> = q.items.drain(..).collect();
        drop(q);
        all.extend(appends);
        // What a compaction forgot is freed off the event loop: freeing ten
        // thousand slots' values stalled heartbeats for 50-90 ms.
        let forgotten: Vec<_> = all
            .iter_mut()
            .filter(|a| !a.forgotten.is_empty())
            .map(|a| std::mem::take(&mut a.forgotten))
            .collect();
        if !forgotten.is_empty() {
            let _ = std::thread::Builder::new()
                .name("free".into())
                .spawn(move || drop(forgotten));
        }
        let mut w = writer.expect("checked").lock().expect("not poisoned");
        let synced = w.write_all(all);
        drop(w);
        // Nothing was queued meanwhile (only the caller queues): no need to
        // wake the thread.
        self.0.queue.lock().expect("not poisoned").busy = false;
        synced
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
    let shared = Arc::new(Shared {
        writer: Some(Mutex::new(LogWriter::new(log, opts))),
        ..Shared::default()
    });
    let rx = shared.clone();
    let thread = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || run(&rx, done))
        .expect("spawn a log thread");
    Disk {
        tx: DiskTx(shared),
        thread,
    }
}

/// The next appends to write, every one that waits (once no one else is
/// writing); the queue is then busy until [`done`].
fn take(shared: &Shared) -> Option<Vec<Append>> {
    let mut q = shared.queue.lock().expect("not poisoned");
    while q.items.is_empty() || q.busy {
        if q.closed && q.items.is_empty() {
            return None;
        }
        q = shared.ready.wait(q).expect("not poisoned");
    }
    q.busy = true;
    Some(q.items.drain(..).collect())
}

fn run(shared: &Shared, done: Option<Recipient<Synced>>) {
    let writer = shared.writer.as_ref().expect("a log thread has a log");
    while let Some(appends) = take(shared) {
        // What a compaction forgot is freed here, on this thread.
        let synced = writer.lock().expect("not poisoned").write_all(appends);
        shared.queue.lock().expect("not poisoned").busy = false;
        if let (Some(s), Some(done)) = (synced, &done) {
            done.do_send(s);
        }
    }
}

/// A role's log and the count of what went into it: the work of a log
/// thread, or of the node's event loop (an [`InlineLog`]).
pub struct LogWriter {
    log: FileLog,
    opts: DiskOptions,
    /// Records written so far.
    records: u64,
    /// Syncs made so far.
    syncs: u64,
    /// The last batch written.
    last: u64,
    /// The last batch synced.
    synced_batch: u64,
}

impl LogWriter {
    /// Write into `log`.
    pub fn new(log: FileLog, opts: DiskOptions) -> Self {
        LogWriter {
            log,
            opts,
            records: 0,
            syncs: 0,
            last: 0,
            synced_batch: 0,
        }
    }

    /// Append `a`'s records (or, a compaction, replace the log with them);
    /// nothing is durable before [`LogWriter::sync`].
    pub fn write(&mut self, a: Append) {
        if a.rewrite {
            if let Err(e) = self.log.rewrite(&a.records) {
                fatal(&e.to_string());
            }
        } else {
            for r in &a.records {
                if let Err(e) = self.log.append(r) {
                    fatal(&e.to_string());
                }
            }
        }
        self.records += a.records.len() as u64;
        self.last = a.batch;
    }

    /// Write `appends` and sync: once for all (group commit) or once each.
    fn write_all(&mut self, appends: Vec<Append>) -> Option<Synced> {
        let mut last = None;
        for a in appends {
            self.write(a);
            if !self.opts.group {
                last = Some(self.sync());
            }
        }
        if self.opts.group && self.last > self.synced_batch {
            last = Some(self.sync());
        }
        last
    }

    /// Make everything written durable: one `write` and one sync.
    pub fn sync(&mut self) -> Synced {
        if self.opts.fail_after.is_some_and(|n| self.syncs >= n) {
            fatal(&format!(
                "{}: injected sync failure after {} syncs (SYNOD_FAIL_SYNC_AFTER)",
                self.log.path().display(),
                self.syncs
            ));
        }
        let started = std::time::Instant::now();
        if let Err(e) = self.log.sync() {
            fatal(&e.to_string());
        }
        let took = started.elapsed();
        if took >= SLOW_SYNC {
            // etcd warns alike ("slow fdatasync"): a sync this slow holds every
            // answer that waits for it, heartbeats' acknowledgements too.
            tracing::warn!(
                "{}: a sync took {} ms (a slow or busy disk delays every answer that waits for it)",
                self.log.path().display(),
                took.as_millis()
            );
        }
        self.syncs += 1;
        self.synced_batch = self.last;
        Synced {
            batch: self.last,
            records: self.records,
            syncs: self.log.syncs(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paxos::{Ballot, Record};

    fn append(batch: u64) -> Append {
        Append {
            batch,
            records: vec![Record::Promise {
                ballot: Ballot::new(batch, 1),
            }],
            rewrite: false,
            forgotten: Default::default(),
        }
    }

    #[test]
    fn the_event_loop_writes_here_unless_the_thread_is_writing_and_keeps_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let (log, _) = FileLog::open(&path, true).unwrap();
        let opts = DiskOptions {
            group: true,
            fail_after: None,
        };
        let shared = Arc::new(Shared {
            writer: Some(Mutex::new(LogWriter::new(log, opts))),
            ..Shared::default()
        });
        let tx = DiskTx(shared.clone());
        // Idle: written and synced here, at once.
        let s = tx.write_here(vec![append(1)]).expect("synced here");
        assert_eq!((s.batch, s.records, s.syncs), (1, 1, 1));
        // The thread busy writing: queued for it, in order.
        shared.queue.lock().unwrap().busy = true;
        assert!(tx.write_here(vec![append(2)]).is_none());
        assert_eq!(shared.queue.lock().unwrap().items.len(), 1);
        // Idle again: what waited in the queue goes first, one sync for both.
        shared.queue.lock().unwrap().busy = false;
        let s = tx.write_here(vec![append(3)]).expect("synced here");
        assert_eq!((s.batch, s.records, s.syncs), (3, 3, 2));
        drop(tx);
        let (_, found) = FileLog::open(&path, false).unwrap();
        let rounds: Vec<u64> = found
            .records
            .iter()
            .map(|r| match r {
                Record::Promise { ballot } => ballot.round,
                _ => 0,
            })
            .collect();
        assert_eq!(rounds, vec![1, 2, 3]);
    }
}
