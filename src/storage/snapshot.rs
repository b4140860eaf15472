//! The state machine's snapshot on disk: `snapshot.bin` in a node's data
//! directory, the latest only, written whole or not at all.
//!
//! ```text
//! "SYNODSNP" (8 bytes) | version: u32 LE (1) | slot: u64 LE | crc32(payload): u32 LE | len: u64 LE | payload
//! ```
//!
//! It is written to `snapshot.tmp`, synced, renamed over `snapshot.bin`, and the
//! directory synced: a crash leaves the old snapshot or the new one. A
//! leftover `snapshot.tmp` (a crash mid-write) is deleted at start. A
//! `snapshot.bin` that does not check out (header, length, checksum) is
//! refused with the file and the reason, never loaded.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::StorageError;
use crate::paxos::SnapshotFile;

const MAGIC: &[u8; 8] = b"SYNODSNP";
/// The snapshot format's version.
pub const VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 8 + 4 + 8;

/// The snapshot's path in data directory `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("snapshot.bin")
}

/// Write `snap` as the snapshot of `dir`, crash-safely. With `fsync`, it is on
/// stable storage when this returns.
pub fn save(dir: &Path, snap: &SnapshotFile, fsync: bool) -> Result<(), StorageError> {
    let target = path(dir);
    let tmp = dir.join("snapshot.tmp");
    let io = |source| StorageError::Io {
        path: tmp.clone(),
        source,
    };
    let mut f = File::create(&tmp).map_err(io)?;
    let mut head = Vec::with_capacity(HEADER);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&VERSION.to_le_bytes());
    head.extend_from_slice(&snap.slot.to_le_bytes());
    head.extend_from_slice(&snap.crc.to_le_bytes());
    head.extend_from_slice(&(snap.bytes.len() as u64).to_le_bytes());
    f.write_all(&head).map_err(io)?;
    f.write_all(&snap.bytes).map_err(io)?;
    if fsync {
        f.sync_all().map_err(io)?;
    }
    drop(f);
    std::fs::rename(&tmp, &target).map_err(|source| StorageError::Io {
        path: target.clone(),
        source,
    })?;
    if fsync {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// The snapshot of `dir`, if there is one; an error if it does not check out.
pub fn load(dir: &Path) -> Result<Option<SnapshotFile>, StorageError> {
    let _ = std::fs::remove_file(dir.join("snapshot.tmp"));
    let p = path(dir);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StorageError::Io { path: p, source }),
    };
    let bad = |reason: String| StorageError::BadSnapshot {
        path: p.clone(),
        reason,
    };
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err(bad("not a synod snapshot (no SYNODSNP header)".into()));
    }
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let version = u32_at(8);
    if version != VERSION {
        return Err(bad(format!(
            "snapshot version {version}, this build reads {VERSION}"
        )));
    }
    let (slot, crc, len) = (u64_at(12), u32_at(20), u64_at(24));
    let payload = &bytes[HEADER..];
    if payload.len() as u64 != len {
        return Err(bad(format!(
            "{} bytes of payload, its header says {len}",
            payload.len()
        )));
    }
    if crc32fast::hash(payload) != crc {
        return Err(bad("checksum mismatch".into()));
    }
    Ok(Some(SnapshotFile {
        slot,
        crc,
        bytes: payload.into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(slot: u64, bytes: &[u8]) -> SnapshotFile {
        SnapshotFile {
            slot,
            crc: crc32fast::hash(bytes),
            bytes: bytes.into(),
        }
    }

    #[test]
    fn a_snapshot_round_trips_and_the_latest_wins() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load(d.path()).unwrap(), None);
        save(d.path(), &snap(20, b"twenty"), true).unwrap();
        save(d.path(), &snap(40, b"forty"), true).unwrap();
        assert_eq!(load(d.path()).unwrap(), Some(snap(40, b"forty")));
    }

    #[test]
    fn a_torn_write_leaves_the_old_one_and_corruption_is_refused() {
        let d = tempfile::tempdir().unwrap();
        save(d.path(), &snap(20, b"twenty"), true).unwrap();
        // A crash mid-write: only the temporary file is torn.
        std::fs::write(d.path().join("snapshot.tmp"), b"SYNODSNP\x01").unwrap();
        assert_eq!(load(d.path()).unwrap(), Some(snap(20, b"twenty")));
        assert!(!d.path().join("snapshot.tmp").exists());
        // A flipped byte in the real one: refused, naming the file and why.
        let mut bytes = std::fs::read(path(d.path())).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(path(d.path()), &bytes).unwrap();
        let err = load(d.path()).unwrap_err().to_string();
        assert!(
            err.contains("snapshot.bin") && err.contains("checksum"),
            "{err}"
        );
        // Cut short: refused too.
        std::fs::write(path(d.path()), &bytes[..bytes.len() - 3]).unwrap();
        let err = load(d.path()).unwrap_err().to_string();
        assert!(err.contains("its header says"), "{err}");
    }

    /// A multi-sector snapshot.
    fn big() -> SnapshotFile {
        let bytes: Vec<u8> = (0..8192u32).map(|i| (i * 31 % 253) as u8).collect();
        snap(70, &bytes)
    }

    #[test]
    fn a_lost_sector_inside_the_snapshot_is_refused() {
        let d = tempfile::tempdir().unwrap();
        save(d.path(), &big(), true).unwrap();
        let good = std::fs::read(path(d.path())).unwrap();
        for sector in [1, 8, good.len() / 512] {
            let mut bytes = good.clone();
            let end = (sector * 512 + 512).min(bytes.len());
            bytes[sector * 512..end].fill(0);
            std::fs::write(path(d.path()), &bytes).unwrap();
            let err = load(d.path()).unwrap_err().to_string();
            assert!(
                err.contains("snapshot.bin") && err.contains("checksum"),
                "{err}"
            );
            assert_eq!(std::fs::read(path(d.path())).unwrap(), bytes);
        }
        // Its header's sector lost: refused too.
        let mut bytes = good.clone();
        bytes[..512].fill(0);
        std::fs::write(path(d.path()), &bytes).unwrap();
        let err = load(d.path()).unwrap_err().to_string();
        assert!(err.contains("snapshot.bin"), "{err}");
    }

    #[test]
    fn a_torn_new_snapshot_leaves_the_old_one() {
        let d = tempfile::tempdir().unwrap();
        save(d.path(), &snap(20, b"twenty"), true).unwrap();
        // The new one written halfway when the crash came, never renamed.
        let other = tempfile::tempdir().unwrap();
        save(other.path(), &big(), true).unwrap();
        let new = std::fs::read(path(other.path())).unwrap();
        std::fs::write(d.path().join("snapshot.tmp"), &new[..new.len() / 2]).unwrap();
        assert_eq!(load(d.path()).unwrap(), Some(snap(20, b"twenty")));
        assert!(!d.path().join("snapshot.tmp").exists());
    }

    #[test]
    fn bytes_past_the_payload_are_refused() {
        // A snapshot is renamed into place whole: it has no torn tail to cut,
        // so zeros or garbage after the payload are damage.
        let d = tempfile::tempdir().unwrap();
        save(d.path(), &big(), true).unwrap();
        let good = std::fs::read(path(d.path())).unwrap();
        for tail in [vec![0u8; 512], b"garbage".to_vec()] {
            std::fs::write(path(d.path()), [good.clone(), tail].concat()).unwrap();
            let err = load(d.path()).unwrap_err().to_string();
            assert!(
                err.contains("snapshot.bin") && err.contains("its header says"),
                "{err}"
            );
        }
    }
}
