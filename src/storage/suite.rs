//! One storage test suite, run against every implementation (in memory and file).

use super::{FileLog, MemLog, Storage};
use crate::paxos::{Acceptor, Ballot, Message, Outbox, Record, Rules, Value};

/// How a test makes a log and crashes it.
trait Harness {
    type Log: Storage;
    fn fresh(&mut self) -> Self::Log;
    /// Crash (losing everything not synced) and recover: the reopened log and
    /// the records it holds.
    fn crash(&mut self, log: Self::Log) -> (Self::Log, Vec<Record>);
}

struct Mem;

impl Harness for Mem {
    type Log = MemLog;
    fn fresh(&mut self) -> MemLog {
        MemLog::new()
    }
    fn crash(&mut self, mut log: MemLog) -> (MemLog, Vec<Record>) {
        log.crash();
        let records = log.durable().to_vec();
        (log, records)
    }
}

struct Disk {
    dir: tempfile::TempDir,
}

impl Harness for Disk {
    type Log = FileLog;
    fn fresh(&mut self) -> FileLog {
        let path = self.dir.path().join("acceptor.log");
        let _ = std::fs::remove_file(&path);
        FileLog::open(&path, true).expect("open").0
    }
    fn crash(&mut self, log: FileLog) -> (FileLog, Vec<Record>) {
        let path = log.path().to_path_buf();
        drop(log); // its unsynced buffer dies with it, as with a killed process
        let (log, rec) = FileLog::open(&path, true).expect("reopen");
        (log, rec.records)
    }
}

fn record(i: u64) -> Record {
    Record::Accept {
        slot: i,
        ballot: Ballot::new(i + 1, 2),
        value: Value::Text(format!("value {i}")),
    }
}

fn synced_records_survive_in_order(h: &mut impl Harness) {
    let mut log = h.fresh();
    for i in 0..10 {
        log.append(&record(i)).unwrap();
    }
    log.sync().unwrap();
    let (_, got) = h.crash(log);
    assert_eq!(got, (0..10).map(record).collect::<Vec<_>>());
}

fn unsynced_records_vanish(h: &mut impl Harness) {
    let mut log = h.fresh();
    log.append(&record(0)).unwrap();
    log.sync().unwrap();
    log.append(&record(1)).unwrap();
    assert_eq!(log.pending(), 1);
    let (_, got) = h.crash(log);
    assert_eq!(got, vec![record(0)]);
}

fn a_recovered_log_keeps_growing(h: &mut impl Harness) {
    let mut log = h.fresh();
    log.append(&record(0)).unwrap();
    log.sync().unwrap();
    let (mut log, _) = h.crash(log);
    log.append(&record(1)).unwrap();
    log.sync().unwrap();
    let (_, got) = h.crash(log);
    assert_eq!(got, vec![record(0), record(1)]);
}

fn big_values_round_trip(h: &mut impl Harness) {
    let mut log = h.fresh();
    let big = Record::Chosen {
        slot: 9,
        value: Value::Text("x".repeat(3 << 20)),
    };
    log.append(&big).unwrap();
    log.sync().unwrap();
    let (_, got) = h.crash(log);
    assert_eq!(got, vec![big]);
}

/// A restarted acceptor never contradicts what it said: what it promised and
/// accepted before the crash is what it recovers (Paxos Made Simple §2.3).
fn a_recovered_acceptor_keeps_its_word(h: &mut impl Harness) {
    let mut log = h.fresh();
    let mut a = Acceptor::new(1, Rules::ALL);
    let mut said = Vec::new();
    for msg in [
        Message::Prepare {
            ballot: Ballot::new(1, 2),
            from_slot: 0,
        },
        Message::Accept {
            ballot: Ballot::new(1, 2),
            slot: 0,
            value: Value::Text("x".into()),
        },
        Message::Prepare {
            ballot: Ballot::new(5, 3),
            from_slot: 0,
        },
    ] {
        let mut out = Outbox::new();
        a.handle(2, msg, &mut out);
        for r in &out.persist {
            log.append(r).unwrap();
        }
        // Persist before send: only now may the answers leave.
        log.sync().unwrap();
        said.extend(out.send_durable);
    }
    assert_eq!(said.len(), 3);
    let (_, records) = h.crash(log);
    let b = Acceptor::recover(1, Rules::ALL, &records);
    assert_eq!(b.promised(), Ballot::new(5, 3));
    assert_eq!(
        b.accepted(0),
        Some(&(Ballot::new(1, 2), Value::Text("x".into())))
    );
}

/// A compaction replaces the log whole; what comes after it is appended to
/// the new content; a crash keeps the new content.
fn a_rewrite_replaces_the_log(h: &mut impl Harness) {
    let mut log = h.fresh();
    for i in 0..5 {
        log.append(&record(i)).unwrap();
    }
    log.sync().unwrap();
    log.append(&record(5)).unwrap();
    let kept = vec![Record::Floor { slot: 3 }, record(3), record(4)];
    log.rewrite(&kept).unwrap();
    log.append(&record(6)).unwrap();
    log.sync().unwrap();
    let (mut log, got) = h.crash(log);
    let mut want = kept.clone();
    want.push(record(6));
    assert_eq!(got, want);
    // And the recovered log goes on growing.
    log.append(&record(7)).unwrap();
    log.sync().unwrap();
    let (_, got) = h.crash(log);
    want.push(record(7));
    assert_eq!(got, want);
}

fn run_suite(h: &mut impl Harness) {
    synced_records_survive_in_order(h);
    unsynced_records_vanish(h);
    a_recovered_log_keeps_growing(h);
    big_values_round_trip(h);
    a_recovered_acceptor_keeps_its_word(h);
    a_rewrite_replaces_the_log(h);
}

#[test]
fn suite_in_memory() {
    run_suite(&mut Mem);
}

#[test]
fn suite_on_disk() {
    run_suite(&mut Disk {
        dir: tempfile::tempdir().unwrap(),
    });
}

mod file_only {
    use std::fs::OpenOptions;
    use std::io::Write;

    use super::*;
    use crate::storage::StorageError;

    fn written(n: u64) -> (tempfile::TempDir, std::path::PathBuf, Vec<u64>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let (mut log, _) = FileLog::open(&path, true).unwrap();
        let mut ends = Vec::new();
        for i in 0..n {
            log.append(&record(i)).unwrap();
            log.sync().unwrap();
            ends.push(log.size());
        }
        (dir, path, ends)
    }

    #[test]
    fn a_torn_tail_is_cut_off() {
        let (_d, path, ends) = written(3);
        // Cut the last frame in half.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(ends[1] + 5).unwrap();
        let (_, rec) = FileLog::open(&path, true).unwrap();
        assert_eq!(rec.records, vec![record(0), record(1)]);
        assert_eq!(rec.cut, Some((ends[1], 5)));
        // The file was truncated: a second open finds nothing to cut.
        let (_, rec) = FileLog::open(&path, true).unwrap();
        assert_eq!(rec.cut, None);
    }

    #[test]
    fn a_zeroed_or_half_written_tail_is_cut_off() {
        let (_d, path, _) = written(2);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0; 300]).unwrap();
        let (_, rec) = FileLog::open(&path, true).unwrap();
        assert_eq!(rec.records.len(), 2);
        assert_eq!(rec.cut.map(|c| c.1), Some(300));

        // A whole last frame whose payload did not all land: bad checksum.
        let (_d, path, ends) = written(2);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, rec) = FileLog::open(&path, true).unwrap();
        assert_eq!(rec.records, vec![record(0)]);
        assert_eq!(rec.cut, Some((ends[0], ends[1] - ends[0])));
    }

    #[test]
    fn a_bad_checksum_before_the_tail_stops_the_node() {
        let (_d, path, ends) = written(3);
        let mut bytes = std::fs::read(&path).unwrap();
        let inside_second = ends[0] as usize + 12;
        bytes[inside_second] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        match FileLog::open(&path, true) {
            Err(StorageError::Corrupt { offset, reason, .. }) => {
                assert_eq!(offset, ends[0]);
                assert!(reason.contains("checksum"), "{reason}");
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        // Nothing was cut: the file is left as it was for a human to look at.
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn a_log_without_fsync_cuts_a_bad_frame_instead_of_refusing() {
        // Nothing was promised about what reached the disk (the learner's log,
        // or `fsync: false`): the same damage is a tail to cut.
        let (_d, path, ends) = written(3);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[ends[0] as usize + 12] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let (_, rec) = FileLog::open(&path, false).unwrap();
        assert_eq!(rec.records, vec![record(0)]);
    }

    #[test]
    fn bytes_that_look_like_a_later_frame_are_not_taken_for_one() {
        // A torn tail whose garbage holds a frame of the next batch, forged as
        // one would forge it without the file's salt (say, bytes of a value a
        // client wrote): it must not pass for proof of corruption.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.log");
        let (mut log, _) = FileLog::open(&path, true).unwrap();
        log.append(&record(0)).unwrap();
        log.sync().unwrap();
        drop(log);
        let bytes = std::fs::read(&path).unwrap();
        let payload = bytes[16 + 20..].to_vec();
        let mut sealed = 3u64.to_le_bytes().to_vec();
        sealed.extend_from_slice(&0u32.to_le_bytes());
        sealed.extend_from_slice(&payload);
        let mut fake = (payload.len() as u32).to_le_bytes().to_vec();
        fake.extend_from_slice(&crc32fast::hash(&sealed).to_le_bytes());
        fake.extend_from_slice(&sealed);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0xEE; 30]).unwrap();
        f.write_all(&fake).unwrap();
        drop(f);
        let (_, rec) = FileLog::open(&path, true).unwrap();
        assert_eq!(rec.records, vec![record(0)]);
        assert_eq!(rec.cut.map(|c| c.1), Some(30 + fake.len() as u64));
    }

    #[test]
    fn a_garbage_length_before_good_frames_is_corruption() {
        let (_d, path, ends) = written(3);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = ends[0] as usize;
        bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = FileLog::open(&path, true).unwrap_err();
        assert!(
            err.to_string().contains(&format!("byte {}", ends[0])),
            "{err}"
        );
    }

    #[test]
    fn garbage_after_the_last_sync_is_cut_not_refused() {
        let (_d, path, ends) = written(3);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        // Bytes that look like a frame head with a plausible length, then junk.
        let mut junk = 40u32.to_le_bytes().to_vec();
        junk.extend((0..200u32).map(|i| (i * 37 % 251) as u8));
        f.write_all(&junk).unwrap();
        let (_, rec) = FileLog::open(&path, true).unwrap();
        assert_eq!(rec.records.len(), 3);
        assert_eq!(rec.cut, Some((ends[2], junk.len() as u64)));
    }

    #[test]
    fn a_batch_torn_in_the_middle_is_cut_whole_from_the_tear() {
        // One batch of three frames whose middle frame never reached the disk
        // while the third did (blocks land in any order before a sync).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let (mut log, _) = FileLog::open(&path, true).unwrap();
        log.append(&record(0)).unwrap();
        log.sync().unwrap();
        let first = log.size();
        for i in 1..4 {
            log.append(&record(i)).unwrap();
        }
        log.sync().unwrap();
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        let second = first as usize + (first as usize - 16) + 3;
        for b in &mut bytes[second..second + 10] {
            *b = 0;
        }
        std::fs::write(&path, &bytes).unwrap();
        let (_, rec) = FileLog::open(&path, true).unwrap();
        assert_eq!(rec.records, vec![record(0), record(1)]);
        assert!(rec.cut.is_some());
    }

    #[test]
    fn a_file_shorter_than_its_header_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        std::fs::write(&path, b"SYNOD").unwrap();
        let (mut log, rec) = FileLog::open(&path, true).unwrap();
        assert!(rec.records.is_empty());
        assert_eq!(rec.cut, Some((0, 5)));
        log.append(&record(0)).unwrap();
        log.sync().unwrap();
        let (_, rec) = FileLog::open(&path, true).unwrap();
        assert_eq!(rec.records, vec![record(0)]);
    }

    #[test]
    fn another_version_is_refused_with_what_to_do() {
        let (_d, path, _) = written(1);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = FileLog::open(&path, true).unwrap_err().to_string();
        assert!(
            err.contains("version 1") && err.contains("move it aside"),
            "{err}"
        );
    }

    #[test]
    fn not_a_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, b"hello, I am a text file").unwrap();
        let err = FileLog::open(&path, true).unwrap_err();
        assert!(matches!(err, StorageError::BadHeader { .. }), "{err}");
    }

    #[test]
    fn many_appends_one_sync_is_one_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = FileLog::open(&dir.path().join("g.log"), true).unwrap();
        for i in 0..100 {
            log.append(&record(i)).unwrap();
        }
        log.sync().unwrap();
        assert_eq!(log.syncs(), 1);
    }
}
