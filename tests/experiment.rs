//! The quorum experiment: the simulator reproduces the theory within its
//! interval, and a quick run on real processes writes outputs that parse.

use synod::experiment::{self, simulated, Backend, Options, Timing};

fn options(out: std::path::PathBuf, sizes: Vec<usize>, mode: Backend) -> Options {
    Options {
        sizes,
        p: 0.2,
        seed: 1,
        quick: true,
        out,
        mode,
        progress: false,
        flexible: false,
        netns: false,
    }
}

#[test]
fn the_simulator_reproduces_the_theory_within_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let o = options(dir.path().to_path_buf(), vec![3, 4], Backend::Sim);
    let t = Timing::sim(true);
    for n in [3, 4] {
        let (crash, split, _) = simulated::run_size(n, &o, &t, None);
        assert!(
            crash.ci95[0] <= crash.theory && crash.theory <= crash.ci95[1],
            "N={n}: theory {:.4} outside [{:.4}, {:.4}] (measured {:.4})",
            crash.theory,
            crash.ci95[0],
            crash.ci95[1],
            crash.measured
        );
        // Probes commit when, and only when, a majority is up.
        assert!(
            (crash.measured - crash.majority_up).abs() < 0.02,
            "{crash:?}"
        );
        // Splits: odd sizes always keep a majority side; even ones lose it in
        // C(N, N/2)/2^N of the weight: within the bound of 0.05.
        assert!((split.measured - split.theory).abs() <= 0.05, "{split:?}");
        if n % 2 == 1 {
            assert_eq!(split.available, split.splits, "{split:?}");
            assert!((split.measured - 1.0).abs() < 1e-9, "{split:?}");
        }
    }
}

#[test]
fn with_flexible_quorums_the_simulator_lands_between_the_bounds() {
    // N = 4 with (3, 2): writes go on whenever 3 are up, never with fewer
    // than 2, and with 2 only while the leader is one of them. The bounds come
    // from the binomial sums, the split theory from counting every split.
    let dir = tempfile::tempdir().unwrap();
    let o = options(dir.path().to_path_buf(), vec![4], Backend::Sim);
    let t = Timing::sim(true);
    let q = experiment::FlexResult::quorums(4);
    assert_eq!((q.phase1, q.phase2), (3, 2));
    let (crash, split, downs) = simulated::run_size(4, &o, &t, Some(q));
    let lo = experiment::plan::up_at_least(&downs, t.crash_s, 3);
    let hi = experiment::plan::up_at_least(&downs, t.crash_s, 2);
    assert!(
        crash.ci95[1] >= lo - 0.01 && crash.ci95[0] <= hi + 0.01,
        "measured {:.4} [{:.4}, {:.4}] outside the realized bounds {lo:.4}..{hi:.4}",
        crash.measured,
        crash.ci95[0],
        crash.ci95[1]
    );
    // Strictly better than majorities on the same timelines: 2 up with the
    // leader among them happened, and kept writing.
    let (majority, _, _) = simulated::run_size(4, &o, &t, None);
    assert!(
        crash.measured > majority.measured + 0.02,
        "{crash:?} vs {majority:?}"
    );
    // Every split leaves the leader's side 2 nodes or the other side 3.
    assert!(split.measured >= 0.95, "{split:?}");
}

#[test]
fn a_quick_real_run_writes_outputs_that_parse() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("exp");
    let o = Env::synod_in(
        dir.path(),
        &[
            "experiment",
            "quorum",
            "--quick",
            "--sizes",
            "3,4",
            "--flexible",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let results: experiment::Results =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(
        results.sizes.iter().map(|s| s.n).collect::<Vec<_>>(),
        vec![3, 4]
    );
    // One probe every probe_every_ms through the crash phase, on schedule
    // however slow the machine (late probes are still issued).
    let t = Timing::real(true);
    let scheduled = (t.crash_s * 1000.0 / t.probe_every_ms as f64) as u64;
    for s in &results.sizes {
        assert!(
            s.probes >= scheduled * 95 / 100 && s.probes <= scheduled + 1,
            "{} probes, {scheduled} scheduled: {s:?}",
            s.probes
        );
        // The theory column is A(N, p), computed here by hand.
        let by_hand = match s.n {
            3 => 0.8f64.powi(3) + 3.0 * 0.2 * 0.8f64.powi(2),
            4 => 0.8f64.powi(4) + 4.0 * 0.2 * 0.8f64.powi(3),
            _ => unreachable!(),
        };
        assert!((s.theory - by_hand).abs() < 1e-12, "{s:?}");
        // Probes commit when a majority is up (from the fault timeline, which
        // the probes do not see), give or take the failovers.
        assert!(
            (s.measured - s.majority_up).abs() < 0.15,
            "measured {:.3}, majority up {:.3}",
            s.measured,
            s.majority_up
        );
        assert!(s.ci95[0] < s.ci95[1], "an interval of some width: {s:?}");
        assert!(s.msgs_per_commit > 0.0 && s.p50_ms > 0.0, "{s:?}");
    }
    assert_eq!(results.partition.len(), 2);
    // One flexible row, N = 4 with (3, 2), its bounds the binomial sums by hand.
    assert_eq!(results.flexible.len(), 1);
    let f = &results.flexible[0];
    assert_eq!((f.n, f.quorums.phase1, f.quorums.phase2), (4, 3, 2));
    let at_least_3 = 0.8f64.powi(4) + 4.0 * 0.2 * 0.8f64.powi(3);
    let at_least_2 = at_least_3 + 6.0 * 0.04 * 0.64;
    assert!((f.bounds[0] - at_least_3).abs() < 1e-12, "{f:?}");
    assert!((f.bounds[1] - at_least_2).abs() < 1e-12, "{f:?}");
    assert_eq!(f.split.theory, 1.0);
    assert!(f.realized[0] <= f.realized[1], "{f:?}");
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    for field in [
        "n",
        "tolerates",
        "theory",
        "majority_up",
        "measured",
        "ci95",
        "probes",
        "msgs_per_commit",
        "p50_ms",
        "p99_ms",
    ] {
        assert!(
            raw["sizes"][0].get(field).is_some(),
            "results.json lacks sizes[].{field}"
        );
    }
    let svg = std::fs::read_to_string(out.join("availability.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("Availability against cluster size"));
    let cost = std::fs::read_to_string(out.join("cost.svg")).unwrap();
    assert!(cost.starts_with("<svg") && cost.contains("Peer messages per commit"));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("| N |")
            && md.contains("availability.svg")
            && md.contains("cost.svg")
            && md.contains("N=4 tolerates 1 failure")
            && md.contains("with flexible quorums (3, 2) N=4 was available"),
        "{md}"
    );
    // Nothing left running or lying around.
    assert!(!out.join(".run").exists());
}

struct Env;

impl Env {
    fn synod_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_synod"))
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap()
    }
}

#[test]
fn growing_to_four_tolerates_no_more_failures_than_three() {
    // One real cluster grown 3 -> 4 -> 5 and shrunk back through the log;
    // at each size followers are killed one more at a time until writes stop.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = Env::synod_in(
        dir.path(),
        &[
            "experiment",
            "grow",
            "--hold",
            "800ms",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{said}");
    assert!(said.contains("Grown to four"), "{said}");
    let steps: Vec<experiment::grow::SizeStep> =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let sizes: Vec<usize> = steps.iter().map(|s| s.voters).collect();
    assert_eq!(sizes, vec![3, 4, 5, 4, 3]);
    let tolerated: Vec<usize> = steps.iter().map(|s| s.tolerated).collect();
    assert_eq!(
        tolerated,
        vec![1, 1, 2, 1, 1],
        "{}",
        experiment::grow::table(&steps)
    );
    for s in &steps {
        assert!(
            s.availability[0] > 0.9,
            "{}",
            experiment::grow::table(&steps)
        );
    }
    let report = std::fs::read_to_string(dir.path().join("out/report.md")).unwrap();
    assert!(report.contains("Grown to four"), "{report}");
    let parsed: Vec<experiment::grow::SizeStep> = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/results.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(parsed.len(), 5);
}
