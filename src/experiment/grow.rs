//! `experiment grow`: the odd-count exercise watched on one cluster as it
//! changes size. Three nodes grow to four and five through the log and
//! shrink back, under a steady probe load; at each size, followers are
//! killed one more at a time (the leader stays, so no election blurs the
//! count) until writes stop, and restarted. The report gives, at each size,
//! the write availability with 1, 2, ... nodes down and the failures the
//! cluster tolerated, and spells out the answer at size 4 from the run's own
//! numbers: a fourth node raises the majority and tolerates nothing more.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::harness::{self, Running};
use crate::kv::Op;
use crate::launcher::{self, members, LaunchError};
use crate::paxos::quorum::majority;
use crate::paxos::NodeId;

/// Sizes the cluster goes through, in order.
pub const SIZES: [usize; 5] = [3, 4, 5, 4, 3];

/// A write with availability at least this counts as served.
const SERVED: f64 = 0.5;

/// What `experiment grow` takes.
#[derive(Clone, Debug)]
pub struct GrowOptions {
    /// Where the cluster's run directory goes (a temporary folder).
    pub base: PathBuf,
    /// How long each number of nodes down is held and measured.
    pub hold: Duration,
    /// Where results.json and report.md go.
    pub out: PathBuf,
    /// Each node a host of its own (`up --netns`).
    pub netns: bool,
}

/// One size of the cluster, measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SizeStep {
    /// Voters.
    pub voters: usize,
    /// The configuration's number.
    pub config: u64,
    /// How long the change to this size took, ms (0 for the first).
    pub change_ms: f64,
    /// Write availability (probes committed / probes sent) with 0, 1, 2, ...
    /// followers down, until writes stopped.
    pub availability: Vec<f64>,
    /// The most followers down with writes still served.
    pub tolerated: usize,
}

/// The probe: a put every 20 ms on a thread of its own, each recorded.
struct Probe {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(Instant, bool)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Probe {
    fn start(dir: &crate::cluster::rundir::RunDir) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<Vec<(Instant, bool)>>> = Arc::default();
        let (s, v, dir) = (stop.clone(), seen.clone(), dir.clone());
        let thread = std::thread::spawn(move || {
            let mut i = 0u64;
            while !s.load(Ordering::SeqCst) {
                // The cluster grows: the client is made again from the run
                // directory now and then, so it knows the nodes added.
                let Ok(cluster) = dir.cluster() else { return };
                let mut c = Client::new(cluster);
                c.timeout = Duration::from_millis(300);
                for _ in 0..25 {
                    if s.load(Ordering::SeqCst) {
                        return;
                    }
                    let t = Instant::now();
                    i += 1;
                    let op = Op::Put {
                        key: format!("grow{}", i % 100),
                        value: i.to_string(),
                    };
                    let ok = c.execute(op).is_ok();
                    v.lock().expect("probes").push((t, ok));
                    if let Some(rest) = Duration::from_millis(20).checked_sub(t.elapsed()) {
                        std::thread::sleep(rest);
                    }
                }
            }
        });
        Probe {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Committed / sent among the probes issued in `[from, to)`.
    fn availability(&self, from: Instant, to: Instant) -> f64 {
        let seen = self.seen.lock().expect("probes");
        let window: Vec<bool> = seen
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, ok)| *ok)
            .collect();
        if window.is_empty() {
            return 0.0;
        }
        window.iter().filter(|&&ok| ok).count() as f64 / window.len() as f64
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Run the experiment: a fresh three-node cluster under `o.base`.
pub fn run(o: &GrowOptions) -> Result<Vec<SizeStep>, LaunchError> {
    let cluster = harness::loopback_cluster("grow", 3, 50, (150, 300));
    let running = Running::up_with(&o.base, cluster, &harness::up_options(o.netns))?.wiped();
    let dir = running.dir.clone();
    let probe = Probe::start(&dir);
    std::thread::sleep(Duration::from_millis(300));
    let mut steps = Vec::new();
    let mut added: Vec<NodeId> = Vec::new();
    for (i, &size) in SIZES.iter().enumerate() {
        let started = Instant::now();
        let mut s = members::Session::open(&dir, false, Duration::from_secs(30))?;
        s.verbose = false;
        let now = members::view(&s.cluster)?.best.voters.len();
        if size > now {
            let port = harness::free_ports(1)[0];
            let id = members::add(&mut s, &format!("127.0.0.1:{port}"), None, true)?;
            added.push(id);
        } else if size < now {
            let id = added.pop().expect("the sizes shrink only what they grew");
            s.remove(id, false)?;
        }
        let change_ms = if i == 0 {
            0.0
        } else {
            started.elapsed().as_secs_f64() * 1e3
        };
        let v = s.settled_view()?;
        steps.push(measure(&dir, &probe, o.hold, v.best.config)?);
        steps.last_mut().expect("just pushed").change_ms = change_ms;
    }
    drop(probe);
    drop(running);
    write(&steps, &o.out)?;
    Ok(steps)
}

/// At the size the cluster has now: 0, 1, 2, ... followers down, each held
/// for `hold`, until writes stop; every node restarted after each.
fn measure(
    dir: &crate::cluster::rundir::RunDir,
    probe: &Probe,
    hold: Duration,
    config: u64,
) -> Result<SizeStep, LaunchError> {
    let s = members::Session::open(dir, false, Duration::from_secs(10))?;
    let v = s.settled_view()?;
    let voters = v.best.voters.clone();
    let leader = v
        .answers
        .values()
        .find(|st| st.role == "leader")
        .map_or(v.best.id, |st| st.id);
    let followers: Vec<NodeId> = voters.iter().copied().filter(|&n| n != leader).collect();
    let mut availability = Vec::new();
    let mut tolerated = 0;
    for down in 0..=followers.len() {
        for &f in &followers[..down] {
            launcher::kill(dir, f)?;
        }
        // The first moments after a kill are the cluster noticing: measure
        // the rest of the hold.
        let from = Instant::now() + hold / 4;
        std::thread::sleep(hold);
        let a = probe.availability(from, Instant::now());
        for &f in &followers[..down] {
            launcher::restart(dir, f, Duration::from_secs(10))?;
        }
        availability.push(a);
        if a < SERVED {
            break;
        }
        tolerated = down;
        // Let the restarted nodes catch up before the next count.
        std::thread::sleep(Duration::from_millis(300));
    }
    Ok(SizeStep {
        voters: voters.len(),
        config,
        change_ms: 0.0,
        availability,
        tolerated,
    })
}

/// The table: one row a size, in the order the cluster went through them.
pub fn table(steps: &[SizeStep]) -> String {
    let most = steps
        .iter()
        .map(|s| s.availability.len())
        .max()
        .unwrap_or(1);
    let mut t = String::from("| voters | configuration | change ms | majority | tolerated |");
    for d in 0..most {
        let _ = write!(t, " writes, {d} down |");
    }
    t.push('\n');
    t.push_str(&"|---".repeat(5 + most));
    t.push_str("|\n");
    for s in steps {
        let _ = write!(
            t,
            "| {} | {} | {:.0} | {} | {} |",
            s.voters,
            s.config,
            s.change_ms,
            majority(s.voters),
            s.tolerated
        );
        for d in 0..most {
            match s.availability.get(d) {
                Some(a) => {
                    let _ = write!(t, " {:.0}% |", a * 100.0);
                }
                None => t.push_str(" - |"),
            }
        }
        t.push('\n');
    }
    t
}

/// The answer at size 4, from the run's own numbers.
pub fn answer(steps: &[SizeStep]) -> String {
    let at = |n: usize| steps.iter().find(|s| s.voters == n);
    let pct = |s: &SizeStep, d: usize| {
        s.availability
            .get(d)
            .map_or("-".to_string(), |a| format!("{:.0}%", a * 100.0))
    };
    let (Some(three), Some(four), Some(five)) = (at(3), at(4), at(5)) else {
        return "The run did not reach sizes 3, 4 and 5.".into();
    };
    format!(
        "Three voters kept writing with 1 node down ({}) and stopped with 2 down ({}): they tolerate {}. \
         Grown to four through the log, the cluster needed 3 of 4 to choose: with 1 down writes went on ({}), \
         with 2 down they stopped ({}), so it tolerated {}, no more than three did, with one more node to run, \
         sync and keep in step. Five voters tolerated {} (2 down: {}). An even member buys nothing: \
         this is why ZooKeeper ensembles have 3, 5 or 7 members.",
        pct(three, 1),
        pct(three, 2),
        three.tolerated,
        pct(four, 1),
        pct(four, 2),
        four.tolerated,
        five.tolerated,
        pct(five, 2),
    )
}

fn write(steps: &[SizeStep], out: &Path) -> Result<(), LaunchError> {
    let fail =
        |e: std::io::Error| LaunchError::Failed(format!("cannot write {}: {e}", out.display()));
    std::fs::create_dir_all(out).map_err(fail)?;
    let json = serde_json::to_string_pretty(steps).expect("steps serialise");
    std::fs::write(out.join("results.json"), json + "\n").map_err(fail)?;
    let report = format!(
        "# experiment grow\n\nOne cluster, under a probe write every 20 ms, grown 3 → 4 → 5 and shrunk \
         back through the log; at each size, followers killed one more at a time until writes stopped.\n\n{}\n{}\n\n\
         Reproduce: `synod experiment grow`.\n",
        table(steps),
        answer(steps)
    );
    std::fs::write(out.join("report.md"), report).map_err(fail)
}
