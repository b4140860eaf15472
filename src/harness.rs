//! What `chaos`, `experiment` and `bench` share: a cluster of real processes
//! brought up for a run and stopped when it ends, threads of clients that run
//! until told to stop, a status poller, progress bars, and waiting for a
//! deadline while Ctrl-C is honoured.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cluster::rundir::RunDir;
use crate::cluster::{Cluster, NodeSpec};
use crate::launcher::{self, LaunchError, UpOptions};
use crate::paxos::{NodeId, Rule};

/// A chart plotters could not draw into its SVG (chaos's report, the
/// experiment's plots).
pub type DrawError = plotters::drawing::DrawingAreaErrorKind<std::io::Error>;

/// `up`'s options for a run: every rule on, ten seconds for a leader, and
/// with `netns` each node a host of its own.
pub fn up_options(netns: bool) -> UpOptions {
    UpOptions {
        broken: None,
        wait: Duration::from_secs(10),
        netns,
    }
}

/// A cluster a run uses. If the run brought it up, it is stopped (and its run
/// directory deleted, if asked) when this is dropped, however the run ends.
pub struct Running {
    /// Its run directory.
    pub dir: RunDir,
    /// The cluster, with its secret.
    pub cluster: Cluster,
    owned: bool,
    wipe: bool,
}

impl Running {
    /// Bring `cluster` up under `base` (nodes running with `broken` off), and
    /// return once a leader serves.
    pub fn up(base: &Path, cluster: Cluster, broken: Option<Rule>) -> Result<Running, LaunchError> {
        Running::up_with(
            base,
            cluster,
            &UpOptions {
                broken,
                ..up_options(false)
            },
        )
    }

    /// [`Running::up`] with every option of `synod up`.
    pub fn up_with(
        base: &Path,
        cluster: Cluster,
        opts: &UpOptions,
    ) -> Result<Running, LaunchError> {
        let up = launcher::up(base, cluster, opts)?;
        launcher::reap(up.children);
        Ok(Running {
            dir: up.dir,
            cluster: up.cluster,
            owned: true,
            wipe: false,
        })
    }

    /// A cluster someone else brought up: left running at the end.
    pub fn adopt(dir: RunDir, cluster: Cluster) -> Running {
        Running {
            dir,
            cluster,
            owned: false,
            wipe: false,
        }
    }

    /// Also delete the run directory when stopping.
    pub fn wiped(mut self) -> Running {
        self.wipe = true;
        self
    }

    /// The process ids of its nodes, as recorded.
    pub fn pids(&self) -> Vec<u32> {
        self.dir
            .state()
            .nodes
            .values()
            .filter_map(|n| n.pid)
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.owned {
            let _ = launcher::down(&self.dir, self.wipe, Duration::from_secs(5));
        }
    }
}

/// `n` loopback ports that were free a moment ago.
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .filter_map(|_| std::net::TcpListener::bind("127.0.0.1:0").ok())
        .collect();
    held.iter()
        .filter_map(|l| l.local_addr().ok())
        .map(|a| a.port())
        .collect()
}

/// A cluster of `n` nodes on free loopback ports, with these timings.
pub fn loopback_cluster(
    name: &str,
    n: usize,
    heartbeat_ms: u64,
    election_timeout_ms: (u64, u64),
) -> Cluster {
    Cluster {
        name: name.to_string(),
        nodes: free_ports(n)
            .into_iter()
            .enumerate()
            .map(|(i, p)| NodeSpec {
                id: i as NodeId + 1,
                addr: ([127, 0, 0, 1], p).into(),
                redis_addr: None,
                joined: false,
                ssh: None,
                ssh_dir: None,
            })
            .collect(),
        heartbeat_ms,
        election_timeout_ms,
        fsync: true,
        snapshot_every: crate::paxos::replica::SNAPSHOT_EVERY,
        redis_auth: false,
        quorums: None,
        keys: None,
    }
}

/// Threads that each run until told to stop, and what each returns.
pub struct Workers<T> {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<T>>,
}

impl<T: Send + 'static> Workers<T> {
    /// Start `n` threads, each running `work(i, stop)`; `stop` turns true when
    /// [`Workers::finish`] is called.
    pub fn spawn(
        n: usize,
        work: impl Fn(usize, &AtomicBool) -> T + Send + Sync + 'static,
    ) -> Workers<T> {
        let stop = Arc::new(AtomicBool::new(false));
        let work = Arc::new(work);
        let handles = (0..n)
            .map(|i| {
                let (stop, work) = (stop.clone(), work.clone());
                std::thread::spawn(move || work(i, &stop))
            })
            .collect();
        Workers { stop, handles }
    }

    /// Tell every thread to stop, and collect what each returned (threads
    /// that panicked give nothing).
    pub fn finish(self) -> Vec<T> {
        self.stop.store(true, Ordering::SeqCst);
        self.handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .collect()
    }
}

/// A thread that calls a function every so often until finished.
pub struct Poller(Workers<()>);

impl Poller {
    /// Call `f` now and then every `every`, until [`Poller::finish`].
    pub fn every(every: Duration, f: impl Fn() + Send + Sync + 'static) -> Poller {
        Poller(Workers::spawn(1, move |_, stop| {
            while !stop.load(Ordering::SeqCst) {
                f();
                std::thread::sleep(every);
            }
        }))
    }

    /// Stop calling and wait for the thread.
    pub fn finish(self) {
        self.0.finish();
    }
}

/// A spinner with the elapsed time and a message (for phases of unknown
/// length), hidden unless `show`.
pub fn spinner(show: bool, message: String) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
            .expect("a valid template"),
    );
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A progress bar of `len` steps with `template` (hidden unless `show`).
pub fn bar(show: bool, len: u64, template: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(len);
    b.set_style(
        indicatif::ProgressStyle::with_template(template)
            .expect("a valid template")
            .progress_chars("=> "),
    );
    b
}

/// Wait until `deadline`, calling `tick` every 50 ms or so. False if Ctrl-C
/// (or SIGTERM) came first.
pub fn sleep_until(deadline: Instant, mut tick: impl FnMut()) -> bool {
    loop {
        if crate::signals::stopped() {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        tick();
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_run_until_finished_and_return_their_results() {
        let w = Workers::spawn(3, |i, stop| {
            let mut n = 0u64;
            loop {
                n += 1;
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::yield_now();
            }
            (i, n > 0)
        });
        let mut done = w.finish();
        done.sort();
        assert_eq!(done, vec![(0, true), (1, true), (2, true)]);
    }

    #[test]
    fn a_loopback_cluster_has_distinct_ports() {
        let c = loopback_cluster("t", 4, 10, (40, 80));
        let mut ports: Vec<u16> = c.nodes.iter().map(|n| n.addr.port()).collect();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 4);
        assert_eq!(c.ids(), vec![1, 2, 3, 4]);
    }
}
