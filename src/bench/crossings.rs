//! Crossings per operation: the system calls, context switches, syncs,
//! socket reads and writes and futex calls each process makes, counted by
//! `perf stat` (kernel tracepoints, counted, not sampled) over a row's
//! measured window and divided by the operations the clients completed in it
//! (`synod bench --crossings`).
//!
//! A put's cost on this machine is mostly the kernel's (loopback sends that
//! wake the receiver, scheduler switches, block I/O for the syncs): these
//! counts say where it is spent, process by process, the client's own
//! included.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde::Serialize;

/// What is counted: a name, and the perf events that add up to it.
const KINDS: &[(&str, &[&str])] = &[
    ("syscalls", &["raw_syscalls:sys_enter"]),
    ("switches", &["context-switches"]),
    (
        "fsync",
        &["syscalls:sys_enter_fdatasync", "syscalls:sys_enter_fsync"],
    ),
    (
        "write",
        &[
            "syscalls:sys_enter_write",
            "syscalls:sys_enter_writev",
            "syscalls:sys_enter_sendto",
            "syscalls:sys_enter_sendmsg",
        ],
    ),
    (
        "read",
        &[
            "syscalls:sys_enter_read",
            "syscalls:sys_enter_readv",
            "syscalls:sys_enter_recvfrom",
            "syscalls:sys_enter_recvmsg",
        ],
    ),
    ("futex", &["syscalls:sys_enter_futex"]),
    (
        "epoll",
        &[
            "syscalls:sys_enter_epoll_wait",
            "syscalls:sys_enter_epoll_pwait",
        ],
    ),
];

/// The counts' names, in the order the table prints them.
pub fn kinds() -> impl Iterator<Item = &'static str> {
    KINDS.iter().map(|(k, _)| *k)
}

/// One process's counts per operation.
#[derive(Clone, Debug, Serialize)]
pub struct Crossing {
    /// Which process: "node 1", "etcd 2", "redis", "clients".
    pub process: String,
    /// Each kind of [`kinds`], per completed operation.
    pub per_op: BTreeMap<String, f64>,
}

/// `perf stat` attached to some processes.
pub struct Counting {
    runs: Vec<(String, Child, PathBuf)>,
}

/// Why counting could not start.
#[derive(Debug, thiserror::Error)]
pub enum CountError {
    /// perf is not installed.
    #[error("--crossings needs perf (apt-get install linux-perf)")]
    NoPerf,
    /// perf would not count.
    #[error("perf stat cannot count system calls here (run as root, or lower kernel.perf_event_paranoid): {0}")]
    Refused(String),
}

/// Check that perf can count tracepoints here, so a run fails before it
/// starts rather than after.
pub fn check() -> Result<(), CountError> {
    let out = Command::new("perf")
        .args([
            "stat",
            "-x",
            ",",
            "-e",
            "raw_syscalls:sys_enter",
            "--",
            "true",
        ])
        .stdout(Stdio::null())
        .output()
        .map_err(|_| CountError::NoPerf)?;
    if out.status.success() {
        Ok(())
    } else {
        let why = String::from_utf8_lossy(&out.stderr);
        Err(CountError::Refused(
            why.lines().next().unwrap_or("").trim().to_string(),
        ))
    }
}

impl Counting {
    /// Start counting for each `(name, pid)`; results go to files in `dir`.
    pub fn start(dir: &std::path::Path, procs: &[(String, u32)]) -> Counting {
        let events: Vec<&str> = KINDS.iter().flat_map(|(_, e)| e.iter().copied()).collect();
        let events = events.join(",");
        let runs: Vec<(String, Child, PathBuf)> = procs
            .iter()
            .enumerate()
            .filter_map(|(i, (name, pid))| {
                let file = dir.join(format!("perf-{}-{i}.csv", std::process::id()));
                let child = Command::new("perf")
                    .args([
                        "stat",
                        "-x",
                        ",",
                        "-e",
                        &events,
                        "-p",
                        &pid.to_string(),
                        "-o",
                    ])
                    .arg(&file)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .ok()?;
                Some((name.clone(), child, file))
            })
            .collect();
        // perf writes its header once it has attached: count from then on.
        let t0 = std::time::Instant::now();
        while t0.elapsed() < std::time::Duration::from_secs(3)
            && !runs.iter().all(|(_, _, f): &(String, Child, PathBuf)| {
                std::fs::metadata(f).is_ok_and(|m| m.len() > 0)
            })
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Counting { runs }
    }

    /// Stop counting; each process's counts divided by `ops`.
    pub fn finish(self, ops: u64) -> Vec<Crossing> {
        // Every counter stops at once (waiting for each perf in turn would
        // let the later ones count past the window).
        for (_, child, _) in &self.runs {
            // SAFETY: kill has no memory preconditions; the pid is our child's.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        }
        let mut all = Vec::new();
        for (process, mut child, file) in self.runs {
            let _ = child.wait();
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let _ = std::fs::remove_file(&file);
            all.push(Crossing {
                process,
                per_op: per_op(&parse(&text), ops),
            });
        }
        all
    }
}

/// `perf stat -x ,` output: event name → count (events perf could not
/// count are left out).
fn parse(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let count = f.first()?.trim().parse::<u64>().ok()?;
            Some((f.get(2)?.trim().to_string(), count))
        })
        .collect()
}

fn per_op(counts: &BTreeMap<String, u64>, ops: u64) -> BTreeMap<String, f64> {
    KINDS
        .iter()
        .map(|(kind, events)| {
            let n: u64 = events.iter().filter_map(|e| counts.get(*e)).sum();
            (kind.to_string(), n as f64 / ops.max(1) as f64)
        })
        .collect()
}

/// The median of each count, process by process, over repetitions of one
/// row (the processes of the first repetition).
pub fn median<'a>(reps: impl Iterator<Item = &'a [Crossing]>) -> Vec<Crossing> {
    let reps: Vec<&[Crossing]> = reps.filter(|r| !r.is_empty()).collect();
    let Some(first) = reps.first() else {
        return Vec::new();
    };
    first
        .iter()
        .map(|c| Crossing {
            process: c.process.clone(),
            per_op: kinds()
                .map(|k| {
                    let v: Vec<f64> = reps
                        .iter()
                        .filter_map(|r| r.iter().find(|x| x.process == c.process))
                        .filter_map(|x| x.per_op.get(k).copied())
                        .collect();
                    (k.to_string(), crate::stats::median(&v))
                })
                .collect(),
        })
        .collect()
}

/// The counts of `rows`' crossings as a table: one line per row and process.
pub fn table(rows: &[(String, usize, &[Crossing])]) -> String {
    let mut s = format!("{:<7} {:>7} {:<10}", "system", "clients", "process");
    for k in kinds() {
        s.push_str(&format!(" {k:>9}"));
    }
    s.push_str("   (per operation)\n");
    for (system, clients, crossings) in rows {
        for c in crossings.iter() {
            s.push_str(&format!("{system:<7} {clients:>7} {:<10}", c.process));
            for k in kinds() {
                s.push_str(&format!(
                    " {:>9.2}",
                    c.per_op.get(k).copied().unwrap_or(0.0)
                ));
            }
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_csv_is_summed_by_kind_and_divided_by_operations() {
        let text = "# started on Sun Dec  6 04:00:00 2026\n\n\
                    4000,,raw_syscalls:sys_enter,1000,100.00,,\n\
                    300,,syscalls:sys_enter_fdatasync,1000,100.00,,\n\
                    100,,syscalls:sys_enter_fsync,1000,100.00,,\n\
                    <not counted>,,syscalls:sys_enter_sendmsg,0,0.00,,\n\
                    500,,syscalls:sys_enter_sendto,1000,100.00,,\n";
        let p = per_op(&parse(text), 1000);
        assert_eq!(p["syscalls"], 4.0);
        assert_eq!(p["fsync"], 0.4);
        assert_eq!(p["write"], 0.5);
        assert_eq!(p["futex"], 0.0);
    }
}
