//! Durable acceptor (and learner) state: an append-only log of [`Record`]s.
//!
//! [`FileLog`] keeps it in a file, each record framed with its length and a CRC32
//! and synced (with `fsync: true`) before the messages that depend on it leave.
//! [`MemLog`] keeps it in memory for the simulator, with the same crash semantics:
//! whatever was appended but not synced vanishes in a crash. One test suite
//! ([`suite`]) runs against both.
//!
//! # File format
//!
//! ```text
//! header  "SYNODLOG" (8 bytes) | version: u32 LE (4) | salt: u32 LE (random per file)
//!         | cover slot 0 | cover slot 1
//! slot    len: u64 LE | batch: u64 LE | crc32(salt, len, batch): u32 LE
//! frame   len: u32 LE | crc32(salt, batch..payload): u32 LE | batch: u64 LE | left: u32 LE | payload: postcard(Entry)
//! frame   ...
//! ```
//!
//! The frames written by one sync form a batch: `batch` numbers it (1, 2, 3,
//! ... in a file), `left` says how many frames of the batch follow. A new file
//! is created whole (its header written to a temporary file, synced, then
//! renamed into place), both slots zero.
//!
//! A sync writes the batch (one `write`), `fdatasync`s it if the log syncs,
//! and only then overwrites the slot of the batch's parity (one `pwrite`, not
//! synced: the next sync takes it along) with the cover: the first `len` bytes,
//! through batch `batch`, are durable. The cover never claims more than what
//! is durable, and a crash mid-`pwrite` tears at most one slot: on open, the
//! slot that checks out with the higher batch wins (none: nothing is covered
//! yet). After a process crash the page cache holds both the batch and its
//! cover, so a log opened without fsync covers exactly what it wrote.
//!
//! Every frame holds an [`Entry`]: a single record. Compaction writes a new
//! file that starts with a `Record::Floor` (the slot below which everything
//! lives in the snapshot) followed by what lies above it, syncs it (cover
//! included) and renames it over the old one ([`Storage::rewrite`]). A
//! version 3 file (the same without cover slots) is read with the rules of
//! version 3 below and rewritten as version 4 the same way; version 2 files,
//! which know no floor, are refused with what to do rather than misread.
//!
//! # Recovery
//!
//! Below the cover every frame must check out: a bad one (a lost sector, a
//! flipped bit, a file cut short of its cover) is corruption, and the node
//! refuses to start, naming the file and byte offset, rather than silently
//! forget what its role said. Nothing is truncated first: a refused file is
//! left as it was. Beyond the cover lies only what was written after the
//! last cover (a crash between a batch's write and its cover's `pwrite`); a
//! torn tail there is cut off with a warning: zeros, garbage, a frame cut
//! short, or a batch only some of whose blocks reached the disk. A bad frame
//! there followed by a good frame of a *later* batch, anywhere in the rest of
//! the file, is corruption too (the writer syncs a batch before it writes the
//! next, so the bad one had been synced); a log opened without fsync promised
//! nothing past its cover, so there it is cut. Good frames past the cover are
//! kept and covered at once. The file's salt is in every checksum, so bytes
//! inside a record that happen to look like a frame never pass for one. A
//! version 3 file has no cover: all of it is read as the tail is. A file
//! shorter than a header (a crash while creating it) is started afresh.
//!
//! A log opened without fsync (the learner's, or every log of a cluster with
//! `fsync: false`) covers what reached the page cache, not the disk: after a
//! power loss (not a process crash) it may be refused.

mod file;
mod mem;
pub mod snapshot;

/// Bytes of the files in `dir`.
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod suite;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::paxos::Record;
pub use file::FileLog;
pub use mem::MemLog;

/// The log format's version in the header.
pub const VERSION: u32 = 4;
/// The largest frame a log accepts (a bound on one record's size).
pub const MAX_FRAME: usize = 64 << 20;

/// One frame's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// A record of the protocol.
    Record(Record),
}

/// An [`Entry`] by reference, for writing: the same bytes on disk, without
/// cloning the record (its value) first.
#[derive(Serialize)]
#[serde(rename = "Entry")]
pub(crate) enum EntryRef<'a> {
    /// A record of the protocol.
    Record(&'a Record),
}

/// Storage errors.
#[derive(Debug, Error)]
pub enum StorageError {
    /// The operating system refused.
    #[error("{path}: {source}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A frame before the tail does not check out: the log is corrupt.
    #[error("{path}: corrupt log at byte {offset}: {reason}; refusing to start rather than forget what this node promised (do not delete the file: an acceptor that forgets its promises can let two values be chosen; to start over, `synod down --wipe` the whole cluster)")]
    Corrupt {
        /// The log file.
        path: PathBuf,
        /// Byte offset of the bad frame.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// [`StorageError::Corrupt`] in the learner's log, which holds only what
    /// the acceptors can teach again.
    #[error("{path}: corrupt log at byte {offset}: {reason}; this is the learner's log, which holds only values already chosen, which its peers teach again: move it aside and restart this node (it catches up from its peers)")]
    CorruptRelearnable {
        /// The log file.
        path: PathBuf,
        /// Byte offset of the bad frame.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A snapshot that does not check out.
    #[error("{path}: snapshot refused: {reason} (move it aside to start this node without it: it then fetches the latest snapshot from a peer)")]
    BadSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file is not a synod log of a version this build reads.
    #[error("{path}: not a synod log of version {VERSION}: {reason}")]
    BadHeader {
        /// The log file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl StorageError {
    /// This error, for a log that holds only what the acceptors can teach
    /// again (the learner's): corruption there is
    /// [`StorageError::CorruptRelearnable`], which says the log may be moved aside.
    pub fn relearnable(self) -> Self {
        match self {
            StorageError::Corrupt {
                path,
                offset,
                reason,
            } => StorageError::CorruptRelearnable {
                path,
                offset,
                reason,
            },
            e => e,
        }
    }
}

/// What opening a log found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Every record, oldest first.
    pub records: Vec<Record>,
    /// `(offset, bytes)` of a torn tail that was cut off, if any.
    pub cut: Option<(u64, u64)>,
}

/// An append-only log of records.
pub trait Storage {
    /// Append `record`; it is durable only after the next [`Storage::sync`].
    fn append(&mut self, record: &Record) -> Result<(), StorageError>;

    /// Make everything appended so far durable (written, and synced to stable
    /// storage if the log was opened to sync).
    fn sync(&mut self) -> Result<(), StorageError>;

    /// Records appended and not yet synced.
    fn pending(&self) -> usize;

    /// Replace the whole log with `records` (a compaction), whole or not at
    /// all, after making every record appended so far durable (which the new
    /// content supersedes). Durable on return.
    fn rewrite(&mut self, records: &[Record]) -> Result<(), StorageError>;
}

#[cfg(test)]
mod entry_tests {
    use super::*;
    use crate::paxos::{Ballot, Value};

    #[test]
    fn an_entry_written_by_reference_reads_back_as_an_entry() {
        let r = Record::Accept {
            slot: 7,
            ballot: Ballot::new(2, 3),
            value: Value::Noop,
        };
        let by_ref = postcard::to_stdvec(&EntryRef::Record(&r)).unwrap();
        assert_eq!(
            by_ref,
            postcard::to_stdvec(&Entry::Record(r.clone())).unwrap()
        );
        assert_eq!(
            postcard::from_bytes::<Entry>(&by_ref).unwrap(),
            Entry::Record(r)
        );
    }
}
