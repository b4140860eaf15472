//! The real node's log: a file of checksummed frames, numbered by sync.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{Entry, Recovered, Storage, StorageError, MAX_FRAME, VERSION};
use crate::paxos::Record;

const MAGIC: &[u8; 8] = b"SYNODLOG";
const HEADER: usize = 16;
/// How many batches past a bad frame recovery looks for proof of corruption.
const LOOKAHEAD_BATCHES: u64 = 16;
/// len u32 | crc u32 | batch u64 | left u32.
const FRAME_HEAD: usize = 20;

/// A log file. Appends are buffered; [`Storage::sync`] writes them with one
/// `write` and, if the log syncs, one `fdatasync`: group commit comes free when a
/// caller appends many records before it syncs. The frames of one sync form a
/// batch; each frame carries its batch's number and how many frames of the
/// batch follow it, which is how recovery tells a torn tail from corruption.
#[derive(Debug)]
pub struct FileLog {
    path: PathBuf,
    file: File,
    fsync: bool,
    buf: Vec<u8>,
    /// Where each buffered frame starts in `buf`.
    frames: Vec<usize>,
    /// The last batch number used.
    batch: u64,
    /// This file's random salt, in every frame's checksum.
    salt: u32,
    size: u64,
    syncs: u64,
}

impl FileLog {
    /// Open (or create) the log at `path` and recover its records. `fsync`: sync
    /// to stable storage on every [`Storage::sync`], not just write.
    pub fn open(path: &Path, fsync: bool) -> Result<(FileLog, Recovered), StorageError> {
        let io = |source| StorageError::Io {
            path: path.to_path_buf(),
            source,
        };
        if !path.exists() {
            create(path)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let mut recovered = Recovered::default();
        if bytes.len() < HEADER && header_prefix(&bytes) {
            // A crash while an older synod created the file: it never held a
            // record. Start it again.
            let fresh = header(new_salt());
            file.set_len(0).map_err(io)?;
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            file.write_all(&fresh).map_err(io)?;
            file.sync_all().map_err(io)?;
            if !bytes.is_empty() {
                recovered.cut = Some((0, bytes.len() as u64));
            }
            bytes = fresh;
        }
        // Without fsync nothing was promised about what reached the disk, so
        // a bad frame anywhere is a tail to cut, never corruption to refuse.
        let (end, batch, salt) = parse(path, &bytes, fsync, &mut recovered)?;
        if end < bytes.len() as u64 {
            // A torn tail: never synced, so nothing was said about it.
            file.set_len(end).map_err(io)?;
            if fsync {
                file.sync_all().map_err(io)?;
            }
            recovered.cut = Some((end, bytes.len() as u64 - end));
        }
        file.seek(SeekFrom::Start(end)).map_err(io)?;
        let log = FileLog {
            path: path.to_path_buf(),
            file,
            fsync,
            buf: Vec::new(),
            frames: Vec::new(),
            batch,
            salt,
            size: end,
            syncs: 0,
        };
        Ok((log, recovered))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the file (synced frames and header).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// How many times [`Storage::sync`] reached the disk.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }
}

fn header(salt: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&salt.to_le_bytes());
    h
}

/// A random salt for a new file: a frame's checksum covers it, so bytes that
/// merely look like a frame (say, inside a value a client wrote) never check
/// out as one.
fn new_salt() -> u32 {
    let mut b = [0u8; 4];
    crate::net::auth::fill(&mut b);
    u32::from_le_bytes(b)
}

/// The checksum of a frame's sealed part (batch, left, payload) in a file
/// salted with `salt`.
fn checksum(salt: u32, sealed: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&salt.to_le_bytes());
    h.update(sealed);
    h.finalize()
}

/// True if `bytes` (shorter than a header) could be the start of one, or is
/// zeros: what a crash during creation leaves.
fn header_prefix(bytes: &[u8]) -> bool {
    let h = header(0);
    bytes.iter().zip(&h[..12]).all(|(a, b)| a == b) || bytes.iter().all(|&b| b == 0)
}

/// Create the log at `path` whole or not at all: the header goes to a
/// temporary file, which is synced and renamed into place.
fn create(path: &Path) -> Result<(), StorageError> {
    let io = |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("new");
    let mut f = File::create(&tmp).map_err(io)?;
    f.write_all(&header(new_salt())).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    sync_dir(path);
    Ok(())
}

/// A frame's fields, if a whole frame with a good checksum starts at `at`.
struct Frame<'a> {
    len: usize,
    batch: u64,
    left: u32,
    payload: &'a [u8],
}

/// `batches`: only frames whose batch number lies in it are worth a
/// checksum (a cheap filter before the expensive check).
fn frame_at(
    bytes: &[u8],
    at: usize,
    salt: u32,
    batches: impl Fn(u64) -> bool,
) -> Option<Frame<'_>> {
    let rest = bytes.get(at..)?;
    if rest.len() < FRAME_HEAD {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes(rest[i..i + 4].try_into().expect("4 bytes"));
    let len = u32_at(0) as usize;
    if len > MAX_FRAME || rest.len() < FRAME_HEAD + len {
        return None;
    }
    let batch = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes"));
    if !batches(batch) || checksum(salt, &rest[8..FRAME_HEAD + len]) != u32_at(4) {
        return None;
    }
    Some(Frame {
        len,
        batch,
        left: u32_at(16),
        payload: &rest[FRAME_HEAD..FRAME_HEAD + len],
    })
}

/// Parse the header and frames of `bytes`; return where the good frames end
/// and the last batch number they hold.
///
/// At the first frame that does not check out, recovery decides between a
/// torn tail and corruption. The writer syncs one batch before it writes the
/// next, so if any good frame of a *later* batch follows the bad one, the bad
/// frame's batch was synced: that is corruption, and the node must not start
/// on a log that forgot what its acceptor said. Otherwise the bad frame lies in
/// the last batch written, which may never have been synced (a crash mid-write
/// leaves zeros, garbage, or some blocks of the batch but not others): it is
/// cut off, with everything after it.
fn parse(
    path: &Path,
    bytes: &[u8],
    strict: bool,
    out: &mut Recovered,
) -> Result<(u64, u64, u32), StorageError> {
    let bad = |reason: String| StorageError::BadHeader {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err(bad("the file does not start with SYNODLOG".into()));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(bad(format!(
            "it is version {version}; move it aside (or `synod down --wipe`) to start afresh"
        )));
    }
    let salt = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    let mut at = HEADER;
    let (mut batch, mut left) = (0u64, 0u32);
    while at < bytes.len() {
        let Some(f) = frame_at(bytes, at, salt, |_| true) else {
            // The batch the bad frame belongs to: the last good frame's, if
            // that batch had frames to come; else the next.
            let torn_batch = if left > 0 { batch } else { batch + 1 };
            let later = later_batch_after(bytes, at + 1, salt, torn_batch);
            if let (true, Some((next, later))) = (strict, later) {
                return Err(corrupt(
                    path,
                    at,
                    format!(
                        "a frame that does not check out (checksum or length), yet a good frame of a later batch ({later}) starts at byte {next}"
                    ),
                ));
            }
            break;
        };
        match postcard::from_bytes::<Entry>(f.payload) {
            Ok(Entry::Record(r)) => out.records.push(r),
            Err(e) => return Err(corrupt(path, at, format!("undecodable frame: {e}"))),
        }
        (batch, left) = (f.batch, f.left);
        at += FRAME_HEAD + f.len;
    }
    Ok((at as u64, batch, salt))
}

/// The first good frame at or after `from` of one of the few batches after
/// `batch`, if any: `(offset, its batch)`. Batches follow each other in the
/// file, so a later batch that survived starts soon after; the window keeps
/// the scan linear in the file's size.
fn later_batch_after(bytes: &[u8], from: usize, salt: u32, batch: u64) -> Option<(usize, u64)> {
    let window = |b: u64| b > batch && b <= batch.saturating_add(LOOKAHEAD_BATCHES);
    (from..bytes.len().saturating_sub(FRAME_HEAD)).find_map(|at| {
        let f = frame_at(bytes, at, salt, window)?;
        postcard::from_bytes::<Entry>(f.payload)
            .is_ok()
            .then_some((at, f.batch))
    })
}

fn corrupt(path: &Path, offset: usize, reason: String) -> StorageError {
    StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    }
}

/// Sync the directory holding `path`, so a newly created file survives a crash.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

impl Storage for FileLog {
    fn append(&mut self, record: &Record) -> Result<(), StorageError> {
        let start = self.buf.len();
        self.frames.push(start);
        self.buf.extend_from_slice(&[0; FRAME_HEAD]);
        let entry = Entry::Record(record.clone());
        self.buf = postcard::to_extend(&entry, std::mem::take(&mut self.buf))
            .expect("records always serialise");
        let len = (self.buf.len() - start - FRAME_HEAD) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        // Number the batch and seal each frame: batch, frames left, checksum.
        self.batch += 1;
        let n = self.frames.len();
        for (i, &start) in self.frames.iter().enumerate() {
            let len = u32::from_le_bytes(self.buf[start..start + 4].try_into().expect("4"));
            let end = start + FRAME_HEAD + len as usize;
            self.buf[start + 8..start + 16].copy_from_slice(&self.batch.to_le_bytes());
            let left = (n - 1 - i) as u32;
            self.buf[start + 16..start + 20].copy_from_slice(&left.to_le_bytes());
            let crc = checksum(self.salt, &self.buf[start + 8..end]);
            self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        }
        let io = |source| StorageError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&self.buf).map_err(io)?;
        if self.fsync {
            self.file.sync_data().map_err(io)?;
            self.syncs += 1;
        }
        self.size += self.buf.len() as u64;
        self.buf.clear();
        self.frames.clear();
        Ok(())
    }

    fn pending(&self) -> usize {
        self.frames.len()
    }

    fn rewrite(&mut self, records: &[Record]) -> Result<(), StorageError> {
        let io = |source| StorageError::Io {
            path: self.path.clone(),
            source,
        };
        // What was appended and not synced is superseded by the new content.
        self.buf.clear();
        self.frames.clear();
        // The new log is written beside the old one, synced, then renamed
        // over it: a crash leaves one or the other, whole.
        let tmp = self.path.with_extension("compact");
        let _ = std::fs::remove_file(&tmp);
        let (mut staged, _) = FileLog::open(&tmp, true)?;
        for r in records {
            staged.append(r)?;
        }
        staged.sync()?;
        let (salt, batch, size) = (staged.salt, staged.batch, staged.size);
        drop(staged);
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        sync_dir(&self.path);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(io)?;
        file.seek(SeekFrom::Start(size)).map_err(io)?;
        self.file = file;
        self.salt = salt;
        self.batch = batch;
        self.size = size;
        Ok(())
    }
}
