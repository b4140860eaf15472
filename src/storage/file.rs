//! The real node's log: a file of checksummed frames.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{Entry, Recovered, Storage, StorageError, MAX_FRAME, VERSION};
use crate::paxos::Record;

const MAGIC: &[u8; 8] = b"SYNODLOG";
const HEADER: usize = 16;
const FRAME_HEAD: usize = 8;

/// A log file. Appends are buffered; [`Storage::sync`] writes them with one
/// `write` and, if the log syncs, one `fdatasync`: group commit comes free when a
/// caller appends many records before it syncs.
#[derive(Debug)]
pub struct FileLog {
    path: PathBuf,
    file: File,
    fsync: bool,
    buf: Vec<u8>,
    pending: usize,
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
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let mut recovered = Recovered::default();
        let size = if bytes.is_empty() {
            let mut header = Vec::with_capacity(HEADER);
            header.extend_from_slice(MAGIC);
            header.extend_from_slice(&VERSION.to_le_bytes());
            header.extend_from_slice(&0u32.to_le_bytes());
            file.write_all(&header).map_err(io)?;
            if fsync {
                file.sync_all().map_err(io)?;
                sync_dir(path);
            }
            HEADER as u64
        } else {
            let end = parse(path, &bytes, &mut recovered)?;
            if end < bytes.len() as u64 {
                // A torn tail: never synced, so nothing was said about it.
                file.set_len(end).map_err(io)?;
                if fsync {
                    file.sync_all().map_err(io)?;
                }
                recovered.cut = Some((end, bytes.len() as u64 - end));
            }
            end
        };
        file.seek(SeekFrom::Start(size)).map_err(io)?;
        let log = FileLog {
            path: path.to_path_buf(),
            file,
            fsync,
            buf: Vec::new(),
            pending: 0,
            size,
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

/// Parse the header and frames of `bytes`; return where the good frames end.
fn parse(path: &Path, bytes: &[u8], out: &mut Recovered) -> Result<u64, StorageError> {
    let bad = |reason: String| StorageError::BadHeader {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err(bad("the file does not start with SYNODLOG".into()));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(bad(format!("it is version {version}")));
    }
    let mut at = HEADER;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.iter().all(|&b| b == 0) {
            break; // torn: the file grew but the data never landed
        }
        if rest.len() < FRAME_HEAD {
            break; // torn: not even a whole frame header
        }
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if len > MAX_FRAME || rest.len() < FRAME_HEAD + len {
            // The frame runs past the end: a write cut short, unless good frames
            // follow, in which case its length is garbage.
            if let Some(next) = valid_frame_after(bytes, at + 1) {
                return Err(corrupt(
                    path,
                    at,
                    format!("frame length {len} runs past the end, yet a valid frame starts at byte {next}"),
                ));
            }
            break;
        }
        let payload = &rest[FRAME_HEAD..FRAME_HEAD + len];
        let last = at + FRAME_HEAD + len == bytes.len();
        if crc32fast::hash(payload) != crc {
            if last {
                break; // the last frame, half written when the process died
            }
            return Err(corrupt(path, at, "checksum mismatch".into()));
        }
        match postcard::from_bytes::<Entry>(payload) {
            Ok(Entry::Record(r)) => out.records.push(r),
            Err(e) => return Err(corrupt(path, at, format!("undecodable frame: {e}"))),
        }
        at += FRAME_HEAD + len;
    }
    Ok(at as u64)
}

/// The first offset at or after `from` where a whole frame with a good checksum
/// starts, if any.
fn valid_frame_after(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(FRAME_HEAD)).find(|&at| {
        let rest = &bytes[at..];
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        len > 0
            && rest.len() >= FRAME_HEAD + len
            && crc32fast::hash(&rest[FRAME_HEAD..FRAME_HEAD + len]) == crc
            && postcard::from_bytes::<Entry>(&rest[FRAME_HEAD..FRAME_HEAD + len]).is_ok()
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
        self.buf.extend_from_slice(&[0; FRAME_HEAD]);
        let entry = Entry::Record(record.clone());
        self.buf = postcard::to_extend(&entry, std::mem::take(&mut self.buf))
            .expect("records always serialise");
        let len = (self.buf.len() - start - FRAME_HEAD) as u32;
        let crc = crc32fast::hash(&self.buf[start + FRAME_HEAD..]);
        self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
        self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        self.pending += 1;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
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
        self.pending = 0;
        Ok(())
    }

    fn pending(&self) -> usize {
        self.pending
    }
}
