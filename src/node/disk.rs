//! A role's log on its own thread, so that fsync never blocks the actors.
//!
//! Group commit: the thread takes every append that is waiting, writes them with
//! one `write` and syncs once, then reports the last batch it made durable.

use std::thread::JoinHandle;

use actix::prelude::*;
use crossbeam_channel::{Receiver, Sender};

use crate::paxos::Record;
use crate::storage::{FileLog, Storage};

/// Records to append, numbered so the owner knows when they are durable.
pub struct Append {
    /// Increasing per log.
    pub batch: u64,
    /// The records.
    pub records: Vec<Record>,
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

/// The sending half of a log thread; dropping it stops the thread once the
/// queue is written.
pub struct Disk {
    /// Where appends go.
    pub tx: Sender<Append>,
    /// The thread, to join on shutdown.
    pub thread: JoinHandle<()>,
}

/// Start the thread that owns `log`; `done` hears of every durable batch.
/// Without `group`, every batch gets a sync of its own (to measure the
/// difference).
pub fn spawn(name: &str, log: FileLog, done: Option<Recipient<Synced>>, group: bool) -> Disk {
    let (tx, rx) = crossbeam_channel::unbounded::<Append>();
    let thread = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || run(log, rx, done, group))
        .expect("spawn a log thread");
    Disk { tx, thread }
}

fn run(mut log: FileLog, rx: Receiver<Append>, done: Option<Recipient<Synced>>, group: bool) {
    let mut records = 0u64;
    while let Ok(first) = rx.recv() {
        let mut last = first.batch;
        let mut append = |a: &Append| {
            for r in &a.records {
                if let Err(e) = log.append(r) {
                    fatal(&e.to_string());
                }
            }
            records += a.records.len() as u64;
        };
        append(&first);
        // Group commit: everything else already waiting goes in the same sync.
        if group {
            while let Ok(more) = rx.try_recv() {
                append(&more);
                last = more.batch;
            }
        }
        if let Err(e) = log.sync() {
            fatal(&e.to_string());
        }
        if let Some(done) = &done {
            done.do_send(Synced {
                batch: last,
                records,
                syncs: log.syncs(),
            });
        }
    }
}

/// A log that cannot be written: the node must not answer as if it had been.
fn fatal(what: &str) -> ! {
    tracing::error!("cannot write the log, stopping: {what}");
    eprintln!("error: cannot write the log, stopping: {what}");
    std::process::exit(1);
}
