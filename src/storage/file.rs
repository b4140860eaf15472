//! The real node's log: a file of checksummed frames, numbered by sync.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{Entry, Recovered, Storage, StorageError, MAX_FRAME, VERSION};
use crate::paxos::Record;

const MAGIC: &[u8; 8] = b"SYNODLOG";
/// magic | version u32 | salt u32: the part every version shares.
const PREFIX: usize = 16;
/// len u64 | batch u64 | crc32(salt, len, batch) u32: one cover slot.
const SLOT: usize = 20;
/// The header of version 4: the prefix and two cover slots.
pub(super) const HEADER: usize = PREFIX + 2 * SLOT;
/// The header of version 3, which had no cover slots.
const HEADER_V3: usize = PREFIX;
/// len u32 | crc u32 | batch u64 | left u32.
const FRAME_HEAD: usize = 20;

/// A log file. Appends are buffered; [`Storage::sync`] writes them with one
/// `write` and, if the log syncs, one `fdatasync`: group commit comes free when a
/// caller appends many records before it syncs. The frames of one sync form a
/// batch; each frame carries its batch's number and how many frames of the
/// batch follow it. After each sync the header's cover slot of the batch's
/// parity is rewritten to say how many bytes (through which batch) the syncs
/// have covered: recovery refuses a bad frame below that length and cuts only
/// what lies beyond it.
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
    /// Measurement only: sync as version 3 did, without the cover slot.
    #[cfg(test)]
    pub(super) no_cover: bool,
}

/// What the header says the syncs covered: the first `len` bytes of the file,
/// which end with the last frame of batch `batch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cover {
    len: u64,
    batch: u64,
}

/// What parsing a log found.
struct Parsed {
    version: u32,
    salt: u32,
    cover: Cover,
    /// Where the good frames end.
    end: u64,
    /// The last batch number in the file (or its cover).
    batch: u64,
}

impl FileLog {
    /// Open (or create) the log at `path` and recover its records. `fsync`: sync
    /// to stable storage on every [`Storage::sync`], not just write.
    ///
    /// A bad frame below the length the header says was synced is
    /// [`StorageError::Corrupt`], and the file is left as it was; only what
    /// lies beyond it may be cut, as a torn tail. A version 3 log is read
    /// with the rules of version 3 and rewritten as version 4.
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
        if header_prefix(&bytes) {
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
        // Nothing is cut before parsing has told corruption from a torn tail.
        let p = parse(path, &bytes, fsync, &mut recovered)?;
        if p.end < bytes.len() as u64 {
            // A torn tail: beyond what any sync covered.
            file.set_len(p.end).map_err(io)?;
            if fsync {
                file.sync_all().map_err(io)?;
            }
            recovered.cut = Some((p.end, bytes.len() as u64 - p.end));
        }
        file.seek(SeekFrom::Start(p.end)).map_err(io)?;
        let mut log = FileLog {
            path: path.to_path_buf(),
            file,
            fsync,
            buf: Vec::new(),
            frames: Vec::new(),
            batch: p.batch,
            salt: p.salt,
            size: p.end,
            syncs: 0,
            #[cfg(test)]
            no_cover: false,
        };
        if p.version != VERSION {
            // Version 3: the same records, rewritten whole as version 4.
            log.rewrite(&recovered.records)?;
            tracing::info!("{}: converted to log version {VERSION}", path.display());
        } else if p.end > p.cover.len {
            // Good frames past the cover: a crash between a batch's write and
            // its cover. They are kept, so cover them now.
            if fsync {
                log.file.sync_data().map_err(io)?;
            }
            log.cover()?;
        }
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

    /// Say in the header that the whole file, through the last batch, is
    /// covered: one `pwrite` of the slot of the batch's parity, not synced
    /// (the next sync takes it along). Call only once the batch is durable.
    fn cover(&mut self) -> Result<(), StorageError> {
        let c = Cover {
            len: self.size,
            batch: self.batch,
        };
        self.file
            .write_all_at(&slot(self.salt, c), slot_at(c.batch) as u64)
            .map_err(|source| StorageError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

/// A new header of version 4: both cover slots empty (zeros never check out).
fn header(salt: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&salt.to_le_bytes());
    h.resize(HEADER, 0);
    h
}

/// Where the cover slot of `batch` lies: the two slots take turns, so a write
/// torn in one leaves the other.
fn slot_at(batch: u64) -> usize {
    PREFIX + (batch % 2) as usize * SLOT
}

/// A cover slot's bytes.
fn slot(salt: u32, c: Cover) -> [u8; SLOT] {
    let mut s = [0u8; SLOT];
    s[..8].copy_from_slice(&c.len.to_le_bytes());
    s[8..16].copy_from_slice(&c.batch.to_le_bytes());
    let crc = checksum(salt, &s[..16]);
    s[16..].copy_from_slice(&crc.to_le_bytes());
    s
}

/// The cover of a version 4 header: the slot that checks out with the
/// higher batch; none (a file no sync has covered yet) is the header alone.
fn read_cover(h: &[u8], salt: u32) -> Cover {
    let u64_at = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    [PREFIX, PREFIX + SLOT]
        .iter()
        .map(|&at| &h[at..at + SLOT])
        .filter(|s| checksum(salt, &s[..16]).to_le_bytes() == s[16..])
        .map(|s| Cover {
            len: u64_at(s, 0),
            batch: u64_at(s, 8),
        })
        .filter(|c| c.len >= HEADER as u64)
        .max_by_key(|c| c.batch)
        .unwrap_or(Cover {
            len: HEADER as u64,
            batch: 0,
        })
}

/// A random salt for a new file: a frame's checksum covers it, so bytes that
/// merely look like a frame (say, inside a value a client wrote) never check
/// out as one.
fn new_salt() -> u32 {
    let mut b = [0u8; 4];
    crate::rng::os_fill(&mut b);
    u32::from_le_bytes(b)
}

/// The checksum of a frame's sealed part (batch, left, payload), or of a
/// cover slot, in a file salted with `salt`.
fn checksum(salt: u32, sealed: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&salt.to_le_bytes());
    h.update(sealed);
    h.finalize()
}

/// True if `bytes` is shorter than the header of its version (3 or 4) and
/// could be the start of one, or is short and all zeros: what a crash during
/// creation leaves.
fn header_prefix(bytes: &[u8]) -> bool {
    let starts = |version: u32, len: usize| {
        let mut h = MAGIC.to_vec();
        h.extend_from_slice(&version.to_le_bytes());
        bytes.len() < len && bytes.iter().zip(&h).all(|(a, b)| a == b)
    };
    starts(VERSION, HEADER)
        || starts(3, HEADER_V3)
        || (bytes.len() < HEADER && bytes.iter().all(|&b| b == 0))
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

/// Parse the header and frames of `bytes`: where the good frames end, and the
/// last batch number.
///
/// Below the cover (the length the header says the syncs covered) every frame
/// must check out: one that does not is corruption, and the node must not
/// start on a log that forgot what its role said. Beyond the cover lies at
/// most what was written after the last sync's cover reached the header; at
/// its first bad frame recovery decides between a torn tail and corruption.
/// The writer syncs one batch before it writes the next, so if any good frame
/// of a *later* batch follows the bad one anywhere in the rest of the file,
/// the bad frame's batch was synced (`strict` logs only: without fsync nothing
/// was promised past the cover). Otherwise the bad frame lies in the last
/// batch written, which may never have been synced (a crash mid-write leaves
/// zeros, garbage, or some blocks of the batch but not others): it is cut off,
/// with everything after it. Version 3 has no cover: all of it is "beyond".
fn parse(
    path: &Path,
    bytes: &[u8],
    strict: bool,
    out: &mut Recovered,
) -> Result<Parsed, StorageError> {
    let bad = |reason: String| StorageError::BadHeader {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(bad("the file does not start with SYNODLOG".into()));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    let head = match version {
        VERSION => HEADER,
        3 => HEADER_V3,
        _ => {
            return Err(bad(format!(
                "it is version {version}; move it aside (or `synod down --wipe`) to start afresh"
            )))
        }
    };
    if bytes.len() < head {
        return Err(bad(format!(
            "its header is cut short ({} of {head} bytes)",
            bytes.len()
        )));
    }
    let salt = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    let cover = match version {
        VERSION => read_cover(&bytes[..HEADER], salt),
        _ => Cover {
            len: HEADER_V3 as u64,
            batch: 0,
        },
    };
    if cover.len > bytes.len() as u64 {
        return Err(corrupt(
            path,
            bytes.len(),
            format!(
                "the file ends here, yet its header says the syncs through batch {} covered its first {} bytes",
                cover.batch, cover.len
            ),
        ));
    }
    let (end, batch) = frames(path, bytes, head, salt, cover, strict, out)?;
    Ok(Parsed {
        version,
        salt,
        cover,
        end,
        batch: batch.max(cover.batch),
    })
}

/// The frames from byte `head` on, into `out`: where the good ones end and
/// the last batch number they hold. See [`parse`].
fn frames(
    path: &Path,
    bytes: &[u8],
    head: usize,
    salt: u32,
    cover: Cover,
    strict: bool,
    out: &mut Recovered,
) -> Result<(u64, u64), StorageError> {
    let covered = cover.len as usize;
    let mut at = head;
    let (mut batch, mut left) = (0u64, 0u32);
    while at < bytes.len() {
        let frame = frame_at(bytes, at, salt, |_| true)
            .filter(|f| at >= covered || at + FRAME_HEAD + f.len <= covered);
        let Some(f) = frame else {
            if at < covered {
                return Err(corrupt(
                    path,
                    at,
                    format!(
                        "a frame that does not check out (checksum or length) below byte {covered}, which the syncs through batch {} covered",
                        cover.batch
                    ),
                ));
            }
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
        if at == covered && (batch, left) != (cover.batch, 0) {
            return Err(corrupt(
                path,
                at,
                format!(
                    "the header says batch {} ends here, yet the frame before is of batch {batch} with {left} more to come",
                    cover.batch
                ),
            ));
        }
    }
    Ok((at as u64, batch))
}

/// The first good frame at or after `from` of a batch after `batch`, if any:
/// `(offset, its batch)`. The whole rest of the file is searched. Batches are
/// numbered one after another and hold at least one frame of more than
/// `FRAME_HEAD` bytes, so no real frame there carries a number beyond the
/// bound below: a cheap filter before each checksum.
fn later_batch_after(bytes: &[u8], from: usize, salt: u32, batch: u64) -> Option<(usize, u64)> {
    let most = (bytes.len().saturating_sub(from) / (FRAME_HEAD + 1)) as u64 + 1;
    let window = |b: u64| b > batch && b <= batch.saturating_add(most);
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
        let entry = super::EntryRef::Record(record);
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
        // Only now, with the batch durable, may the header say so.
        #[cfg(test)]
        if self.no_cover {
            return Ok(());
        }
        self.cover()
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
        // The cover the sync wrote must be durable before the rename, so the
        // new file's header covers all of it.
        staged.file.sync_data().map_err(|source| StorageError::Io {
            path: tmp.clone(),
            source,
        })?;
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
