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

struct TestDisk {
    dir: tempfile::TempDir,
}

impl Harness for TestDisk {
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
    run_suite(&mut TestDisk {
        dir: tempfile::tempdir().unwrap(),
    });
}

mod file_only {
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::storage::file::HEADER;
    use crate::storage::StorageError;

    /// The logs a node opens and the fsync each gets (node start): the
    /// acceptor's and the proposer's with the cluster's setting, the
    /// learner's without; and a cluster with `fsync: false`.
    const NODE_LOGS: [(&str, bool); 5] = [
        ("acceptor.log", true),
        ("proposer.log", true),
        ("learner.log", false),
        ("acceptor.log", false),
        ("proposer.log", false),
    ];

    /// A log of `n` batches of one record each, synced one by one.
    struct Written {
        _dir: tempfile::TempDir,
        path: PathBuf,
        fsync: bool,
        /// Where each batch ends.
        ends: Vec<u64>,
        /// The header after each batch (index 0: before the first).
        heads: Vec<Vec<u8>>,
    }

    impl Written {
        fn new(name: &str, fsync: bool, n: u64, rec: impl Fn(u64) -> Record) -> Written {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(name);
            let (mut log, _) = FileLog::open(&path, fsync).unwrap();
            let head = |p: &Path| std::fs::read(p).unwrap()[..HEADER].to_vec();
            let mut w = Written {
                heads: vec![head(&path)],
                _dir: dir,
                path,
                fsync,
                ends: Vec::new(),
            };
            for i in 0..n {
                log.append(&rec(i)).unwrap();
                log.sync().unwrap();
                w.ends.push(log.size());
                w.heads.push(head(&w.path));
            }
            w
        }

        fn bytes(&self) -> Vec<u8> {
            std::fs::read(&self.path).unwrap()
        }

        fn write(&self, bytes: &[u8]) {
            std::fs::write(&self.path, bytes).unwrap();
        }

        fn open(&self) -> Result<(FileLog, crate::storage::Recovered), StorageError> {
            FileLog::open(&self.path, self.fsync)
        }

        /// A crash after batch `k`'s data was written, before its cover: the
        /// header as it was after batch `k - 1`.
        fn uncover(&self, k: usize) {
            let mut b = self.bytes();
            b[..HEADER].copy_from_slice(&self.heads[k - 1]);
            self.write(&b);
        }

        /// The start of the frame (one a batch) that holds byte `at`.
        fn frame_of(&self, at: u64) -> u64 {
            std::iter::once(HEADER as u64)
                .chain(self.ends.iter().copied())
                .take_while(|&s| s <= at)
                .last()
                .unwrap()
        }

        /// Opening is refused as corrupt at `offset`, naming the file, and
        /// leaves it byte for byte as it was.
        fn assert_refused_at(&self, offset: u64) {
            let before = self.bytes();
            match self.open() {
                Err(e @ StorageError::Corrupt { .. }) => {
                    let StorageError::Corrupt { offset: got, .. } = &e else {
                        unreachable!()
                    };
                    assert_eq!(*got, offset, "{e}");
                    let msg = e.to_string();
                    assert!(
                        msg.contains(&self.path.display().to_string())
                            && msg.contains(&format!("byte {offset}")),
                        "{msg}"
                    );
                }
                other => panic!(
                    "{}: expected corruption, got {other:?}",
                    self.path.display()
                ),
            }
            assert_eq!(self.bytes(), before, "a refused log was changed");
        }
    }

    fn written(n: u64) -> Written {
        Written::new("a.log", true, n, record)
    }

    fn promise(i: u64) -> Record {
        Record::Promise {
            ballot: Ballot::new(i + 1, 2),
        }
    }

    #[test]
    fn a_torn_tail_is_cut_off() {
        let w = written(3);
        // Batch 3 was written, its cover not; then it was cut in half.
        w.uncover(3);
        let f = OpenOptions::new().write(true).open(&w.path).unwrap();
        f.set_len(w.ends[1] + 5).unwrap();
        let (_, rec) = w.open().unwrap();
        assert_eq!(rec.records, vec![record(0), record(1)]);
        assert_eq!(rec.cut, Some((w.ends[1], 5)));
        // The file was truncated: a second open finds nothing to cut.
        let (_, rec) = w.open().unwrap();
        assert_eq!(rec.cut, None);
    }

    #[test]
    fn a_zeroed_or_half_written_tail_is_cut_off() {
        let w = written(2);
        let mut f = OpenOptions::new().append(true).open(&w.path).unwrap();
        f.write_all(&[0; 300]).unwrap();
        let (_, rec) = w.open().unwrap();
        assert_eq!(rec.records.len(), 2);
        assert_eq!(rec.cut.map(|c| c.1), Some(300));

        // A whole last frame whose payload did not all land (bad checksum),
        // its cover not written.
        let w = written(2);
        w.uncover(2);
        let mut bytes = w.bytes();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        w.write(&bytes);
        let (_, rec) = w.open().unwrap();
        assert_eq!(rec.records, vec![record(0)]);
        assert_eq!(rec.cut, Some((w.ends[0], w.ends[1] - w.ends[0])));
    }

    #[test]
    fn a_bad_checksum_before_the_tail_stops_the_node() {
        let w = written(3);
        let mut bytes = w.bytes();
        let inside_second = w.ends[0] as usize + 12;
        bytes[inside_second] ^= 0x01;
        w.write(&bytes);
        match w.open() {
            Err(StorageError::Corrupt { offset, reason, .. }) => {
                assert_eq!(offset, w.ends[0]);
                assert!(reason.contains("checksum"), "{reason}");
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        // Nothing was cut: the file is left as it was for a human to look at.
        assert_eq!(w.bytes(), bytes);
    }

    #[test]
    fn a_log_without_fsync_is_refused_below_its_cover_and_cut_past_it() {
        // Below the cover: what it wrote before the crash, refused as with fsync.
        let w = Written::new("learner.log", false, 3, record);
        let mut bytes = w.bytes();
        bytes[w.ends[0] as usize + 12] ^= 0x01;
        w.write(&bytes);
        w.assert_refused_at(w.ends[0]);
        // Past the cover (header as after batch 1), a bad frame followed by a
        // good one of a later batch: nothing was promised there, so it is cut.
        w.uncover(2);
        let (_, rec) = w.open().unwrap();
        assert_eq!(rec.records, vec![record(0)]);
        assert_eq!(rec.cut, Some((w.ends[0], w.ends[2] - w.ends[0])));
    }

    #[test]
    fn past_the_cover_a_bad_frame_before_a_later_batch_is_refused_with_fsync() {
        let w = written(3);
        w.uncover(2);
        let mut bytes = w.bytes();
        bytes[w.ends[0] as usize + 12] ^= 0x01;
        w.write(&bytes);
        w.assert_refused_at(w.ends[0]);
    }

    #[test]
    fn bytes_that_look_like_a_later_frame_are_not_taken_for_one() {
        // A torn tail whose garbage holds a frame of the next batch, forged as
        // one would forge it without the file's salt (say, bytes of a value a
        // client wrote): it must not pass for proof of corruption.
        let w = written(1);
        let bytes = w.bytes();
        let payload = bytes[HEADER + 20..].to_vec();
        let mut sealed = 3u64.to_le_bytes().to_vec();
        sealed.extend_from_slice(&0u32.to_le_bytes());
        sealed.extend_from_slice(&payload);
        let mut fake = (payload.len() as u32).to_le_bytes().to_vec();
        fake.extend_from_slice(&crc32fast::hash(&sealed).to_le_bytes());
        fake.extend_from_slice(&sealed);
        let mut f = OpenOptions::new().append(true).open(&w.path).unwrap();
        f.write_all(&[0xEE; 30]).unwrap();
        f.write_all(&fake).unwrap();
        drop(f);
        let (_, rec) = w.open().unwrap();
        assert_eq!(rec.records, vec![record(0)]);
        assert_eq!(rec.cut.map(|c| c.1), Some(30 + fake.len() as u64));
    }

    #[test]
    fn a_garbage_length_before_good_frames_is_corruption() {
        let w = written(3);
        let mut bytes = w.bytes();
        let at = w.ends[0] as usize;
        bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        w.write(&bytes);
        w.assert_refused_at(w.ends[0]);
    }

    #[test]
    fn garbage_after_the_last_sync_is_cut_not_refused() {
        let w = written(3);
        let mut f = OpenOptions::new().append(true).open(&w.path).unwrap();
        // Bytes that look like a frame head with a plausible length, then junk.
        let mut junk = 40u32.to_le_bytes().to_vec();
        junk.extend((0..200u32).map(|i| (i * 37 % 251) as u8));
        f.write_all(&junk).unwrap();
        let (_, rec) = w.open().unwrap();
        assert_eq!(rec.records.len(), 3);
        assert_eq!(rec.cut, Some((w.ends[2], junk.len() as u64)));
    }

    #[test]
    fn a_batch_torn_in_the_middle_is_cut_whole_from_the_tear() {
        // One batch of three frames whose middle frame never reached the disk
        // while the third did (blocks land in any order before a sync), its
        // cover not written.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let (mut log, _) = FileLog::open(&path, true).unwrap();
        log.append(&record(0)).unwrap();
        log.sync().unwrap();
        let first = log.size() as usize;
        let head = std::fs::read(&path).unwrap()[..HEADER].to_vec();
        for i in 1..4 {
            log.append(&record(i)).unwrap();
        }
        log.sync().unwrap();
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[..HEADER].copy_from_slice(&head);
        let second = first + (first - HEADER) + 3;
        for b in &mut bytes[second..second + 10] {
            *b = 0;
        }
        std::fs::write(&path, &bytes).unwrap();
        let (_, rec) = FileLog::open(&path, true).unwrap();
        assert_eq!(rec.records, vec![record(0), record(1)]);
        assert!(rec.cut.is_some());
    }

    /// The case and its kin: one lost (zeroed) 512-byte sector, or a
    /// run of zeros over many small batches, anywhere below the cover of a
    /// log of many synced batches is refused, for every log a node opens.
    #[test]
    fn a_lost_sector_anywhere_in_many_small_synced_batches_is_refused() {
        for (name, fsync) in NODE_LOGS {
            let w = Written::new(name, fsync, 120, promise);
            let len = w.bytes().len();
            assert!(len > 4 * 512, "{len}");
            let last_sector = (len - 1) / 512 * 512;
            let cases = [
                (512, 1024),                                // the first sector of frames
                (len / 1024 * 512, len / 1024 * 512 + 512), // one in the middle
                (w.ends[4] as usize, w.ends[29] as usize),  // batches 6 to 30, exactly
                (last_sector, len),                         // the very last batch in it
                (w.ends[118] as usize, len),                // only the very last batch
            ];
            for (from, to) in cases {
                let good = w.bytes();
                let mut bad = good.clone();
                bad[from..to].fill(0);
                w.write(&bad);
                w.assert_refused_at(w.frame_of(from as u64));
                w.write(&good);
            }
            // The header's sector lost: refused too, the file left as it was.
            let good = w.bytes();
            let mut bad = good.clone();
            bad[..512].fill(0);
            w.write(&bad);
            let err = w.open().unwrap_err();
            assert!(matches!(err, StorageError::BadHeader { .. }), "{err}");
            assert_eq!(w.bytes(), bad);
            w.write(&good);
            assert_eq!(
                w.open().unwrap().1.records,
                (0..120).map(promise).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn zeros_and_garbage_past_the_last_sync_are_cut() {
        for (name, fsync) in NODE_LOGS {
            let w = Written::new(name, fsync, 40, promise);
            let size = *w.ends.last().unwrap();
            for tail in [
                vec![0u8; 4096],
                (0..3000u32).map(|i| (i * 37 % 251) as u8).collect(),
            ] {
                let mut f = OpenOptions::new().append(true).open(&w.path).unwrap();
                f.write_all(&tail).unwrap();
                drop(f);
                let (_, rec) = w.open().unwrap();
                assert_eq!(rec.records.len(), 40, "{name}");
                assert_eq!(rec.cut, Some((size, tail.len() as u64)), "{name}");
                // The cover is untouched: the last batch is still covered.
                assert_eq!(w.bytes().len() as u64, size);
                assert_eq!(w.bytes()[..HEADER], w.heads[40]);
            }
            // And the log grows on.
            let (mut log, _) = w.open().unwrap();
            log.append(&promise(40)).unwrap();
            log.sync().unwrap();
            drop(log);
            assert_eq!(w.open().unwrap().1.records.len(), 41);
        }
    }

    #[test]
    fn a_crash_between_a_batch_and_its_cover() {
        for (name, fsync) in NODE_LOGS {
            // The batch whole: kept, and covered at once.
            let w = Written::new(name, fsync, 40, promise);
            w.uncover(40);
            let (_, rec) = w.open().unwrap();
            assert_eq!((rec.records.len(), rec.cut), (40, None), "{name}");
            assert_eq!(w.bytes()[..HEADER], w.heads[40]);
            // The batch torn: cut; nothing below refused.
            let w = Written::new(name, fsync, 40, promise);
            w.uncover(40);
            let mut bytes = w.bytes();
            let last = bytes.len() - 2;
            bytes[last] ^= 0x55;
            w.write(&bytes);
            let (_, rec) = w.open().unwrap();
            assert_eq!(
                rec.records,
                (0..39).map(promise).collect::<Vec<_>>(),
                "{name}"
            );
            assert_eq!(rec.cut, Some((w.ends[38], w.ends[39] - w.ends[38])));
        }
    }

    #[test]
    fn a_torn_cover_slot_leaves_the_other() {
        for (name, fsync) in NODE_LOGS {
            let w = Written::new(name, fsync, 40, promise);
            // Batch 40 is even: its cover is slot 0, at byte 16.
            let mut bytes = w.bytes();
            bytes[16..26].fill(0xA5);
            w.write(&bytes);
            // Batch 39's cover wins; batch 40 beyond it checks out and is kept.
            let (_, rec) = w.open().unwrap();
            assert_eq!((rec.records.len(), rec.cut), (40, None), "{name}");
            // The same torn slot with batch 40 torn: cut, as beyond the cover.
            bytes[w.ends[39] as usize - 1] ^= 1;
            w.write(&bytes);
            let (_, rec) = w.open().unwrap();
            assert_eq!(rec.records.len(), 39, "{name}");
            // With batch 38 damaged instead: below batch 39's cover, refused.
            let w = Written::new(name, fsync, 40, promise);
            let mut bytes = w.bytes();
            bytes[16..26].fill(0xA5);
            bytes[w.ends[37] as usize - 1] ^= 1;
            w.write(&bytes);
            w.assert_refused_at(w.ends[36]);
        }
    }

    #[test]
    fn a_file_cut_short_of_its_cover_is_refused() {
        for (name, fsync) in NODE_LOGS {
            let w = Written::new(name, fsync, 10, promise);
            let f = OpenOptions::new().write(true).open(&w.path).unwrap();
            f.set_len(w.ends[6]).unwrap();
            w.assert_refused_at(w.ends[6]);
        }
    }

    /// A version 3 log built by hand: batches of records, frames as round 2
    /// wrote them, no cover.
    fn v3_file(path: &Path, batches: &[Vec<Record>]) -> Vec<u64> {
        let salt = 0x5eed_u32;
        let mut b = b"SYNODLOG".to_vec();
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&salt.to_le_bytes());
        let mut ends = Vec::new();
        for (i, batch) in batches.iter().enumerate() {
            for (j, r) in batch.iter().enumerate() {
                let payload =
                    postcard::to_stdvec(&crate::storage::Entry::Record(r.clone())).unwrap();
                let mut sealed = (i as u64 + 1).to_le_bytes().to_vec();
                sealed.extend_from_slice(&((batch.len() - 1 - j) as u32).to_le_bytes());
                sealed.extend_from_slice(&payload);
                let mut h = crc32fast::Hasher::new();
                h.update(&salt.to_le_bytes());
                h.update(&sealed);
                b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                b.extend_from_slice(&h.finalize().to_le_bytes());
                b.extend_from_slice(&sealed);
            }
            ends.push(b.len() as u64);
        }
        std::fs::write(path, &b).unwrap();
        ends
    }

    #[test]
    fn a_version_3_log_is_read_and_converted_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acceptor.log");
        let batches: Vec<Vec<Record>> = (0..5)
            .map(|i| vec![record(2 * i), record(2 * i + 1)])
            .collect();
        let want: Vec<Record> = batches.concat();
        let ends = v3_file(&path, &batches);
        // With a torn tail, which the old rules cut.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0; 100]).unwrap();
        drop(f);
        let (mut log, rec) = FileLog::open(&path, true).unwrap();
        assert_eq!(rec.records, want);
        assert_eq!(rec.cut, Some((ends[4], 100)));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes[8..12], 4u32.to_le_bytes());
        assert_eq!(log.size(), bytes.len() as u64);
        log.append(&record(10)).unwrap();
        log.sync().unwrap();
        drop(log);
        let (_, rec) = FileLog::open(&path, true).unwrap();
        assert_eq!(rec.records, [want, vec![record(10)]].concat());
        assert_eq!(rec.cut, None);
        // Now version 4, all covered: a flipped byte anywhere is refused.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER + 3] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            FileLog::open(&path, true),
            Err(StorageError::Corrupt { offset, .. }) if offset == HEADER as u64
        ));
    }

    #[test]
    fn a_version_3_log_damaged_over_many_batches_is_refused_not_cut() {
        // The case in the old format: 40 synced promise batches, the
        // bytes of batches 5 to 30 zeroed. The old 16-batch lookahead took it
        // for a torn tail; the whole rest of the file is searched now.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acceptor.log");
        let batches: Vec<Vec<Record>> = (0..40).map(|i| vec![promise(i)]).collect();
        let ends = v3_file(&path, &batches);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[ends[3] as usize..ends[29] as usize].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        match FileLog::open(&path, true) {
            Err(StorageError::Corrupt { offset, .. }) => assert_eq!(offset, ends[3]),
            other => panic!("expected corruption, got {other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn a_rewrite_is_covered_whole() {
        let w = written(3);
        let (mut log, _) = w.open().unwrap();
        log.rewrite(&[Record::Floor { slot: 1 }, record(1), record(2)])
            .unwrap();
        drop(log);
        // Damage to the last frame of the new file: below its cover, refused.
        let mut bytes = w.bytes();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        w.write(&bytes);
        assert!(matches!(w.open(), Err(StorageError::Corrupt { .. })));
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
        let w = written(1);
        let mut bytes = w.bytes();
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        w.write(&bytes);
        let err = w.open().unwrap_err().to_string();
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

    /// The cost of the cover: latency of `sync()` for one record of about
    /// 100 bytes, fsync on, version 3 style (no cover) against version 4 (the
    /// cover `pwrite` in the header), and against a cover `pwrite` to a side
    /// file instead (the alternative: not flushed with the log). Three logs
    /// side by side, synced in turn (the order rotates), so all meet the same
    /// disk; medians per run of `SYNOD_SYNCS` (2,000) syncs each, `SYNOD_RUNS`
    /// (5) runs. Run with
    /// `cargo test --release --lib sync_cost_of_the_cover -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn sync_cost_of_the_cover() {
        use std::os::unix::fs::FileExt;
        let env = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let (syncs, runs) = (env("SYNOD_SYNCS", 2000), env("SYNOD_RUNS", 5));
        let dir = tempfile::tempdir().unwrap();
        let rec = Record::Accept {
            slot: 1,
            ballot: Ballot::new(1, 1),
            value: Value::Text("x".repeat(78)),
        };
        let pct = |v: &mut Vec<f64>, p: usize| {
            v.sort_by(f64::total_cmp);
            v[v.len() * p / 100]
        };
        const MODES: [&str; 3] = ["v3 (no cover)", "v4 (header)", "side file"];
        let mut all: [Vec<f64>; 3] = Default::default();
        for run in 0..runs {
            let mut logs: [FileLog; 3] = std::array::from_fn(|m| {
                let path = dir.path().join(format!("m{run}-{m}.log"));
                let (mut log, _) = FileLog::open(&path, true).unwrap();
                log.no_cover = m != 1;
                log
            });
            let side = std::fs::File::create(dir.path().join(format!("m{run}.cover"))).unwrap();
            let mut lat: [Vec<f64>; 3] = Default::default();
            for i in 0..syncs {
                for m in (0..3).map(|k| (i + k) % 3) {
                    logs[m].append(&rec).unwrap();
                    let t = std::time::Instant::now();
                    logs[m].sync().unwrap();
                    if m == 2 {
                        side.write_all_at(&[i as u8; 20], 0).unwrap();
                    }
                    lat[m].push(t.elapsed().as_secs_f64() * 1e6);
                }
            }
            let frame = (logs[0].size() - HEADER as u64) / syncs as u64;
            let med = lat.each_mut().map(|l| pct(l, 50));
            println!(
                "run {run}: median {} {:.1} us, {} {:.1} us ({:.3}x), {} {:.1} us ({:.3}x); {frame}-byte frames",
                MODES[0], med[0], MODES[1], med[1], med[1] / med[0], MODES[2], med[2], med[2] / med[0]
            );
            for (a, l) in all.iter_mut().zip(lat) {
                a.extend(l);
            }
        }
        for (m, l) in all.iter_mut().enumerate() {
            let (p50, p90) = (pct(l, 50), pct(l, 90));
            println!("all {}: median {p50:.1} us, p90 {p90:.1} us", MODES[m]);
        }
    }
}
