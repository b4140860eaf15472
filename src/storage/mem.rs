//! The simulator's log: in memory, with crash semantics.

use super::{Storage, StorageError};
use crate::paxos::Record;

/// An in-memory log. [`MemLog::crash`] drops whatever was not synced, as a
/// machine crash drops what never reached the disk.
#[derive(Clone, Debug, Default)]
pub struct MemLog {
    durable: Vec<Record>,
    pending: Vec<Pending>,
}

/// A write not yet durable.
#[derive(Clone, Debug)]
enum Pending {
    Append(Record),
    Rewrite(Vec<Record>),
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
    pub fn crash_keeping(&mut self, n: usize) -> Vec<Record> {
        let kept = self.sync_first(n);
        self.pending.clear();
        kept
    }

    /// Make the oldest `n` writes not yet synced durable (a sync that covered
    /// only the batches written before it started); a rewrite counts as one.
    /// Returns the records that became durable.
    pub fn sync_first(&mut self, n: usize) -> Vec<Record> {
        let n = n.min(self.pending.len());
        let mut fresh = Vec::new();
        for p in self.pending.drain(..n) {
            match p {
                Pending::Append(r) => {
                    fresh.push(r.clone());
                    self.durable.push(r);
                }
                Pending::Rewrite(rs) => {
                    fresh.extend(rs.iter().cloned());
                    self.durable = rs;
                }
            }
        }
        fresh
    }

    /// Queue a rewrite of the whole log, durable at a later sync (as one write).
    pub fn rewrite_later(&mut self, records: Vec<Record>) {
        self.pending.push(Pending::Rewrite(records));
    }
}

impl Storage for MemLog {
    fn append(&mut self, record: &Record) -> Result<(), StorageError> {
        self.pending.push(Pending::Append(record.clone()));
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.sync_first(self.pending.len());
        Ok(())
    }

    fn rewrite(&mut self, records: &[Record]) -> Result<(), StorageError> {
        self.pending.clear();
        self.durable = records.to_vec();
        Ok(())
    }

    fn pending(&self) -> usize {
        self.pending.len()
    }
}
