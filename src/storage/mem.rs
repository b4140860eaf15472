//! The simulator's log: in memory, with crash semantics.

use super::{Storage, StorageError};
use crate::paxos::Record;

/// An in-memory log. [`MemLog::crash`] drops whatever was not synced, as a
/// machine crash drops what never reached the disk.
#[derive(Clone, Debug, Default)]
pub struct MemLog {
    durable: Vec<Record>,
    pending: Vec<Record>,
}

impl MemLog {
    /// An empty log.
    pub fn new() -> Self {
        MemLog::default()
    }

    /// The records a restart recovers: the synced ones.
    pub fn durable(&self) -> &[Record] {
        &self.durable
    }

    /// A crash: everything not synced is gone.
    pub fn crash(&mut self) {
        self.pending.clear();
    }

    /// A crash that kept the oldest `n` unsynced records (a process killed
    /// after its `write` reached the page cache, before its sync): they
    /// survive, the rest is gone.
    pub fn crash_keeping(&mut self, n: usize) {
        self.sync_first(n);
        self.pending.clear();
    }

    /// Make the oldest `n` records appended and not yet synced durable (a
    /// sync that covered only the batches written before it started).
    pub fn sync_first(&mut self, n: usize) {
        let n = n.min(self.pending.len());
        self.durable.extend(self.pending.drain(..n));
    }
}

impl Storage for MemLog {
    fn append(&mut self, record: &Record) -> Result<(), StorageError> {
        self.pending.push(record.clone());
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.durable.append(&mut self.pending);
        Ok(())
    }

    fn pending(&self) -> usize {
        self.pending.len()
    }
}
