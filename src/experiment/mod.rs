//! `synod experiment quorum`: why ensembles have 3, 5 or 7 members, measured.
//!
//! For each cluster size N, real processes (or the simulator, in virtual time)
//! face two fault models while a probe client writes every few milliseconds:
//! - **crash**: each node goes down and comes back on its own timeline, down a
//!   fraction p of the time (the same timelines for the nodes every size shares);
//! - **partition**: the cluster is split again and again into two random sides.
//!
//! Availability (probes committed / probes sent) is put beside the theory
//! A(N, p) of DESIGN.md §5, the fraction of time a majority was really up,
//! messages per commit and commit latency; [`report`] writes the table, the plot
//! and the paragraph that answers the question from the run's own numbers.

pub mod grow;
pub mod plan;
pub mod real;
pub mod report;
pub mod simulated;

use std::path::{Path, PathBuf};

use crate::harness::DrawError;
use crate::launcher::LaunchError;
use crate::paxos::Quorums;
use serde::{Deserialize, Serialize};

/// Where the experiment runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Real processes on loopback.
    Real,
    /// The simulator, in virtual time.
    Sim,
    /// Both, tables side by side.
    Both,
}

/// What `synod experiment quorum` was asked.
#[derive(Clone, Debug)]
pub struct Options {
    /// Cluster sizes.
    pub sizes: Vec<usize>,
    /// Fraction of time each node is down (crash model).
    pub p: f64,
    /// The seed of every timeline and split.
    pub seed: u64,
    /// The short version (CI, a first look).
    pub quick: bool,
    /// Where results go.
    pub out: PathBuf,
    /// Real, simulated or both.
    pub mode: Backend,
    /// Draw progress bars.
    pub progress: bool,
    /// Also run every even size with flexible quorums (N/2 + 1, N/2).
    pub flexible: bool,
    /// Each node a host of its own (`up --netns`; splits made by nftables).
    pub netns: bool,
}

/// How long things take, in seconds (real) or virtual seconds (sim).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Timing {
    /// Mean up + mean down of one node (time compression).
    pub cycle_s: f64,
    /// Length of the crash model phase.
    pub crash_s: f64,
    /// How long each split is held.
    pub split_hold_s: f64,
    /// Pause between splits.
    pub split_gap_s: f64,
    /// Splits held per class of split (see [`plan::split_strata`]).
    pub split_reps: u64,
    /// Length of the all-up phase that measures messages and latency.
    pub steady_s: f64,
    /// A probe every this many ms.
    pub probe_every_ms: u64,
    /// A probe not committed within this many ms failed.
    pub probe_timeout_ms: u64,
}

impl Timing {
    /// Real processes: the default run takes under five minutes for five sizes,
    /// `--quick` under ninety seconds.
    pub fn real(quick: bool) -> Self {
        if quick {
            Timing {
                cycle_s: 3.0,
                crash_s: 10.0,
                split_hold_s: 0.8,
                split_gap_s: 0.2,
                split_reps: 1,
                steady_s: 1.0,
                probe_every_ms: 20,
                probe_timeout_ms: 100,
            }
        } else {
            Timing {
                cycle_s: 6.0,
                crash_s: 36.0,
                split_hold_s: 1.2,
                split_gap_s: 0.3,
                split_reps: 2,
                steady_s: 2.0,
                probe_every_ms: 20,
                probe_timeout_ms: 100,
            }
        }
    }

    /// The simulator: long virtual runs for tight intervals.
    pub fn sim(quick: bool) -> Self {
        Timing {
            cycle_s: 40.0,
            crash_s: if quick { 1_500.0 } else { 4_000.0 },
            split_hold_s: 2.0,
            split_gap_s: 0.5,
            split_reps: if quick { 20 } else { 50 },
            steady_s: 20.0,
            // Fewer probes keep the logs (and so every restart's replay) short;
            // the interval's width depends on the number of up/down cycles.
            probe_every_ms: 250,
            probe_timeout_ms: 100,
        }
    }
}

/// One size under the crash model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SizeResult {
    /// Nodes.
    pub n: usize,
    /// Failures it tolerates: ⌊(N−1)/2⌋.
    pub tolerates: usize,
    /// A(N, p).
    pub theory: f64,
    /// Fraction of time a majority was really up (from the applied timeline).
    pub majority_up: f64,
    /// Probes committed / probes sent.
    pub measured: f64,
    /// 95% confidence interval of `measured` (batch means).
    pub ci95: [f64; 2],
    /// Probes sent.
    pub probes: u64,
    /// Peer messages per committed command, all nodes up.
    pub msgs_per_commit: f64,
    /// Commit latency with all nodes up, ms.
    pub p50_ms: f64,
    /// Commit latency with all nodes up, ms.
    pub p99_ms: f64,
    /// Leader SIGKILL → next committed probe, ms, each time the leader died
    /// while a majority stayed up.
    pub failover_ms: Vec<f64>,
}

impl SizeResult {
    /// A size's result from its probe outcomes in time order (`oks`), the
    /// fraction of time a majority was up, and the all-up measurements.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        n: usize,
        p: f64,
        oks: &[bool],
        majority_up: f64,
        msgs_per_commit: f64,
        p50_ms: f64,
        p99_ms: f64,
        failover_ms: Vec<f64>,
    ) -> Self {
        let (measured, ci95) = crate::stats::fraction_batch_means(oks, 20);
        SizeResult {
            n,
            tolerates: crate::paxos::quorum::tolerates(n),
            theory: crate::paxos::quorum::availability(n, p),
            majority_up,
            measured,
            ci95,
            probes: oks.len() as u64,
            msgs_per_commit,
            p50_ms,
            p99_ms,
            failover_ms,
        }
    }
}

/// One size under the partition model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SplitResult {
    /// Nodes.
    pub n: usize,
    /// 1 for odd N; 1 − C(N, N/2)/2^N for even N.
    pub theory: f64,
    /// Probability that writes went on under a random split: the weighted
    /// fraction of the stratified splits during which they did.
    pub measured: f64,
    /// Splits held.
    pub splits: u64,
    /// Of those, splits with a majority side.
    pub with_majority: u64,
    /// Of those, splits during which writes went on.
    pub available: u64,
}

impl SplitResult {
    /// A size's result from its splits: each one's weight, whether it had a
    /// majority side, and whether writes went on.
    pub fn new(n: usize, held: &[(f64, bool, bool)]) -> Self {
        SplitResult {
            n,
            theory: crate::paxos::quorum::split_availability(n),
            measured: held.iter().filter(|h| h.2).map(|h| h.0).sum(),
            splits: held.len() as u64,
            with_majority: held.iter().filter(|h| h.1).count() as u64,
            available: held.iter().filter(|h| h.2).count() as u64,
        }
    }
}

/// One even size run with flexible quorums, on the same timelines and
/// splits as its majority row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FlexResult {
    /// Nodes.
    pub n: usize,
    /// Phase-1 and phase-2 quorums.
    pub quorums: Quorums,
    /// Theory's bounds on availability under the crash model: P(at least Q1
    /// up) ≤ A ≤ P(at least Q2 up).
    pub bounds: [f64; 2],
    /// The same two fractions realized on this run's timelines.
    pub realized: [f64; 2],
    /// The crash model's measurements (its `theory` and `majority_up` are the
    /// majority row's, for comparison).
    pub crash: SizeResult,
    /// The partition model's (its `theory` is for these quorums).
    pub split: SplitResult,
}

impl FlexResult {
    /// The quorums a flexible row of `n` nodes uses: N/2 + 1 to lead, N/2 to
    /// choose (they intersect: N/2 + 1 + N/2 > N).
    pub fn quorums(n: usize) -> Quorums {
        Quorums {
            phase1: n / 2 + 1,
            phase2: n / 2,
        }
    }

    fn new(
        n: usize,
        p: f64,
        downs: &[Vec<(f64, f64)>],
        horizon: f64,
        crash: SizeResult,
        mut split: SplitResult,
    ) -> Self {
        let q = Self::quorums(n);
        split.theory = crate::paxos::quorum::split_availability_with(n, q);
        FlexResult {
            n,
            quorums: q,
            bounds: [
                crate::paxos::quorum::at_least_up(n, q.phase1, p),
                crate::paxos::quorum::at_least_up(n, q.phase2, p),
            ],
            realized: [
                plan::up_at_least(downs, horizon, q.phase1),
                plan::up_at_least(downs, horizon, q.phase2),
            ],
            crash,
            split,
        }
    }
}

impl Options {
    /// The rows to run: every size with majorities, then (with `flexible`)
    /// every even size with flexible quorums.
    pub fn rows(&self) -> Vec<(usize, Option<Quorums>)> {
        let flexible = self
            .sizes
            .iter()
            .filter(|&&n| self.flexible && n % 2 == 0)
            .map(|&n| (n, Some(FlexResult::quorums(n))));
        self.sizes
            .iter()
            .map(|&n| (n, None))
            .chain(flexible)
            .collect()
    }
}

/// A whole run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    /// "real" or "sim".
    pub mode: String,
    /// Down fraction.
    pub p: f64,
    /// Seed.
    pub seed: u64,
    /// The crash model's timelines: the candidate seed chosen (see
    /// [`plan::timeline_seed`]) and, per size, the planned fraction of time
    /// a majority is up (the target is each size's `theory`, the realized
    /// fraction its `majority_up`).
    pub timelines: Timelines,
    /// Crash model, per size.
    pub sizes: Vec<SizeResult>,
    /// Partition model, per size.
    pub partition: Vec<SplitResult>,
    /// Even sizes again with flexible quorums (`--flexible`).
    #[serde(default)]
    pub flexible: Vec<FlexResult>,
    /// The timing used.
    pub timing: Timing,
    /// Wall seconds the run took.
    pub wall_s: f64,
}

/// How the crash model's timelines were chosen.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Timelines {
    /// The seed every size's node timelines come from.
    pub seed: u64,
    /// Candidate seeds tried.
    pub candidates: u64,
    /// Planned fraction of time a majority is up, per size (in `sizes` order).
    pub planned_majority_up: Vec<f64>,
}

impl Timelines {
    /// The timelines of a run with options `o` and timing `t`.
    pub fn of(o: &Options, t: &Timing) -> Self {
        let (seed, planned) = plan::timeline_seed(o.seed, &o.sizes, o.p, t.cycle_s, t.crash_s);
        Timelines {
            seed,
            candidates: plan::CANDIDATES,
            planned_majority_up: planned,
        }
    }
}

/// One mode's rows as they come in.
#[derive(Default)]
struct Rows {
    sizes: Vec<SizeResult>,
    partition: Vec<SplitResult>,
    flexible: Vec<FlexResult>,
}

impl Rows {
    /// The row of `n` nodes with quorums `q` (majorities if `None`).
    fn add(&mut self, n: usize, q: Option<Quorums>, p: f64, horizon: f64, row: real::Row) {
        let (crash, split, downs) = row;
        match q {
            None => {
                self.sizes.push(crash);
                self.partition.push(split);
            }
            Some(_) => self
                .flexible
                .push(FlexResult::new(n, p, &downs, horizon, crash, split)),
        }
    }
}

impl Results {
    fn new(
        mode: &str,
        o: &Options,
        rows: Rows,
        timing: Timing,
        started: std::time::Instant,
    ) -> Self {
        Results {
            mode: mode.into(),
            p: o.p,
            seed: o.seed,
            timelines: Timelines::of(o, &timing),
            sizes: rows.sizes,
            partition: rows.partition,
            flexible: rows.flexible,
            timing,
            wall_s: started.elapsed().as_secs_f64(),
        }
    }
}

/// The `q` quantile of latencies in ms.
pub fn latency(ms: &[f64], q: f64) -> f64 {
    let mut l = crate::stats::Latencies::new();
    for &x in ms {
        l.record_ms(x);
    }
    l.ms(q)
}

/// True if most probes issued in the second half of a split held from `start`
/// for `hold` committed (the first half is left to failover). `probes` are
/// `(issued at, committed)`.
pub fn split_available(probes: impl Iterator<Item = (f64, bool)>, start: f64, hold: f64) -> bool {
    let (mut n, mut ok) = (0, 0);
    for (at, committed) in probes {
        if at >= start + hold / 2.0 && at < start + hold {
            n += 1;
            ok += committed as usize;
        }
    }
    n > 0 && ok * 2 >= n
}

/// Why the experiment did not run, or its report was not written.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// A cluster of real processes could not be brought up or measured.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// Ctrl-C.
    #[error("interrupted: every node this experiment started is stopped")]
    Interrupted,
    /// The output directory cannot be made.
    #[error("cannot create {}: {source}", path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file of the output cannot be written.
    #[error("cannot write {name}: {source}")]
    Write {
        /// The file's name.
        name: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A plot cannot be drawn.
    #[error("cannot draw the {what}: {source}")]
    Draw {
        /// Which plot.
        what: &'static str,
        /// Why.
        source: DrawError,
    },
    /// A saved run to redraw cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a saved run.
    #[error("{}: not a saved run: {source}", path.display())]
    NotARun {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// Run the experiment; returns one [`Results`] per mode run (real first), and
/// writes `results.json` (and `results-sim.json`), `availability.svg`,
/// `cost.svg` and `report.md` into `o.out`.
pub fn run(o: &Options) -> Result<Vec<Results>, ExperimentError> {
    std::fs::create_dir_all(&o.out).map_err(|source| ExperimentError::Create {
        path: o.out.clone(),
        source,
    })?;
    let mut all = Vec::new();
    if matches!(o.mode, Backend::Real | Backend::Both) {
        let t = Timing::real(o.quick);
        let base = o.out.join(".run");
        let started = std::time::Instant::now();
        let mut rows = Rows::default();
        for (n, q) in o.rows() {
            let bar = size_bar(
                o,
                n,
                t.steady_s
                    + t.crash_s
                    + plan::split_strata(o.seed, n, t.split_reps).len() as f64
                        * (t.split_hold_s + t.split_gap_s),
            );
            let row = real::run_size(n, o, &t, &base, &bar, q)?;
            bar.finish_and_clear();
            rows.add(n, q, o.p, t.crash_s, row);
        }
        let _ = std::fs::remove_dir_all(&base);
        all.push(Results::new("real", o, rows, t, started));
    }
    if matches!(o.mode, Backend::Sim | Backend::Both) {
        let t = Timing::sim(o.quick);
        let started = std::time::Instant::now();
        let mut rows = Rows::default();
        for (n, q) in o.rows() {
            let bar = size_bar(o, n, 0.0);
            bar.set_message(format!("N={n}: simulating {:.0} virtual s", t.crash_s));
            let row = simulated::run_size(n, o, &t, q);
            bar.finish_and_clear();
            rows.add(n, q, o.p, t.crash_s, row);
        }
        all.push(Results::new("sim", o, rows, t, started));
    }
    for r in &all {
        let name = if r.mode == "sim" && all.len() > 1 {
            "results-sim.json"
        } else {
            "results.json"
        };
        std::fs::write(
            o.out.join(name),
            serde_json::to_string_pretty(r).expect("results serialise"),
        )
        .map_err(|source| ExperimentError::Write { name, source })?;
    }
    write_report(&all, &o.out)?;
    Ok(all)
}

/// Write `availability.svg`, `cost.svg` and `report.md` for `runs` (real
/// first) into `out`.
pub fn write_report(runs: &[Results], out: &Path) -> Result<(), ExperimentError> {
    let refs: Vec<&Results> = runs.iter().collect();
    report::plot(&refs, &out.join("availability.svg")).map_err(|source| ExperimentError::Draw {
        what: "plot",
        source,
    })?;
    if let Some(main) = refs.first() {
        report::plot_cost(main, &out.join("cost.svg")).map_err(|source| ExperimentError::Draw {
            what: "cost plot",
            source,
        })?;
    }
    std::fs::write(out.join("report.md"), report::markdown(&refs)).map_err(|source| {
        ExperimentError::Write {
            name: "report.md",
            source,
        }
    })
}

/// The runs saved in `dir` (`results.json`, and `results-sim.json` beside it
/// when both modes ran), to draw their report again.
pub fn load(dir: &Path) -> Result<Vec<Results>, ExperimentError> {
    let mut runs = Vec::new();
    for name in ["results.json", "results-sim.json"] {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => match serde_json::from_str(&text) {
                Ok(run) => runs.push(run),
                Err(source) => return Err(ExperimentError::NotARun { path, source }),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && name != "results.json" => {}
            Err(source) => return Err(ExperimentError::Read { path, source }),
        }
    }
    Ok(runs)
}

fn size_bar(o: &Options, n: usize, secs: f64) -> indicatif::ProgressBar {
    crate::harness::spinner(o.progress, format!("N={n} ({secs:.0} s)"))
}
