//! The experiment's table, plot and answer, written from the run's own numbers.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use super::Results;
use crate::harness::DrawError;

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// The results table (crash and partition models) as Markdown.
pub fn table(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| N | tolerates | theory A(N,{}) | majority up | measured | 95% CI | probes | msgs/commit | p50 ms | p99 ms | failover ms (median) | split theory | split measured | splits |",
        r.p
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (c, p) in r.sizes.iter().zip(&r.partition) {
        let failover = failover_cell(&c.failover_ms);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {}–{} | {} | {:.1} | {:.2} | {:.2} | {} | {} | {} | {} |",
            c.n,
            c.tolerates,
            pct(c.theory),
            pct(c.majority_up),
            pct(c.measured),
            pct(c.ci95[0]),
            pct(c.ci95[1]),
            c.probes,
            c.msgs_per_commit,
            c.p50_ms,
            c.p99_ms,
            failover,
            pct(p.theory),
            pct(p.measured),
            p.splits
        );
    }
    let planned: Vec<String> = r
        .sizes
        .iter()
        .zip(&r.timelines.planned_majority_up)
        .map(|(c, f)| format!("N={} {}", c.n, pct(*f)))
        .collect();
    if !r.flexible.is_empty() {
        s.push_str(&flexible_table(r));
    }
    let _ = writeln!(
        s,
        "\nCrash timelines: of {} seeded candidate schedules, the one whose planned time with a majority up comes closest to A(N, p) for every size at once (seed {}; planned {}); every size replays the same node timelines. The intervals are batch means over the run's own probes.",
        r.timelines.candidates,
        r.timelines.seed,
        planned.join(", ")
    );
    s
}

/// The flexible rows: each even size with (N/2 + 1, N/2) beside its majority row.
fn flexible_table(r: &Results) -> String {
    let mut s = String::from(
        "\nFlexible quorums (phase 1 to lead, phase 2 to choose), on the same timelines and splits:\n\n| N | quorums | theory P(≥Q1 up) – P(≥Q2 up) | realized | measured | 95% CI | with majorities | msgs/commit | p50 ms | p99 ms | failover ms (median) | split theory | split measured | splits |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for f in &r.flexible {
        let c = &f.crash;
        let majority = r
            .sizes
            .iter()
            .find(|m| m.n == f.n)
            .map_or("-".to_string(), |m| pct(m.measured));
        let failover = failover_cell(&c.failover_ms);
        let _ = writeln!(
            s,
            "| {} | ({}, {}) | {} – {} | {} – {} | {} | {}–{} | {} | {:.1} | {:.2} | {:.2} | {} | {} | {} | {} |",
            f.n,
            f.quorums.phase1,
            f.quorums.phase2,
            pct(f.bounds[0]),
            pct(f.bounds[1]),
            pct(f.realized[0]),
            pct(f.realized[1]),
            pct(c.measured),
            pct(c.ci95[0]),
            pct(c.ci95[1]),
            majority,
            c.msgs_per_commit,
            c.p50_ms,
            c.p99_ms,
            failover,
            pct(f.split.theory),
            pct(f.split.measured),
            f.split.splits
        );
    }
    s
}

/// What flexible quorums bought in run `r`, from its numbers (empty without
/// flexible rows).
fn flexible_answer(r: &Results) -> String {
    let mut lines = Vec::new();
    for f in &r.flexible {
        let maj = r.sizes.iter().find(|m| m.n == f.n);
        let odd = r.sizes.iter().find(|m| m.n + 1 == f.n);
        let split_maj = r.partition.iter().find(|m| m.n == f.n);
        let mut line = format!(
            "with flexible quorums ({}, {}) N={} was available {}",
            f.quorums.phase1,
            f.quorums.phase2,
            f.n,
            pct(f.crash.measured)
        );
        if let Some(m) = maj {
            let _ = write!(line, " against {} with majorities", pct(m.measured));
        }
        if let Some(o) = odd {
            let _ = write!(line, " and {} for N={}", pct(o.measured), o.n);
        }
        let _ = write!(
            line,
            " (theory between {} and {}: writes need {} nodes up with the leader among them, and a new leader needs {}; the timelines had at least {} up {} of the time and at least {} up {})",
            pct(f.bounds[0]),
            pct(f.bounds[1]),
            f.quorums.phase2,
            f.quorums.phase1,
            f.quorums.phase1,
            pct(f.realized[0]),
            f.quorums.phase2,
            pct(f.realized[1]),
        );
        if let Some(sm) = split_maj {
            let _ = write!(
                line,
                ", and under random splits it kept writing {} of the time against {} with majorities (theory {}: the leader's side always holds {} nodes, or the other side {} to elect)",
                pct(f.split.measured),
                pct(sm.measured),
                pct(f.split.theory),
                f.quorums.phase2,
                f.quorums.phase1
            );
        }
        lines.push(line);
    }
    if lines.is_empty() {
        return String::new();
    }
    format!(
        " Flexible Paxos changes the even size's account: {}. So the even node is no longer wasted while the leader lives: it lets a half of the cluster keep committing through failures and splits. It does not make the cluster survive more failures in general: once the leader dies with only half the nodes up, no new leader can be elected until enough nodes return, and choosing still waits for a quorum of disks. An odd size with majorities gets the same fault tolerance from one machine fewer and needs no rule about which quorum is which, which is why deployments still choose 3, 5 or 7.",
        lines.join("; ")
    )
}

/// A table cell: the median failover and how many kills it is of, or "-".
fn failover_cell(ms: &[f64]) -> String {
    if ms.is_empty() {
        "-".to_string()
    } else {
        format!("{:.0} ({} kills)", crate::stats::median(ms), ms.len())
    }
}

/// The answer to the exercise, in one paragraph drawn from `r`'s numbers.
pub fn answer(r: &Results) -> String {
    let mut parts: Vec<String> = Vec::new();
    let by_n = |n: usize| r.sizes.iter().find(|s| s.n == n);
    for even in r.sizes.iter().filter(|s| s.n % 2 == 0) {
        let Some(odd) = by_n(even.n - 1) else {
            continue;
        };
        let mut line = format!(
            "N={} tolerates {} failure{}, no more than N={}, yet with each node down {} of the time it was available {} of the time against {} for N={} (theory {} vs {}; a majority was up {} vs {} of the time on the same node timelines)",
            even.n,
            even.tolerates,
            if even.tolerates == 1 { "" } else { "s" },
            odd.n,
            pct(r.p),
            pct(even.measured),
            pct(odd.measured),
            odd.n,
            pct(even.theory),
            pct(odd.theory),
            pct(even.majority_up),
            pct(odd.majority_up),
        );
        if even.measured >= odd.measured {
            line.push_str(": in this run the measured gap is inside the noise of the intervals, while the theory and the majority-up fractions put it below");
        } else {
            line.push_str(": it has one more node to lose and nothing to show for it");
        }
        parts.push(line);
        if odd.msgs_per_commit > 0.0 {
            parts.push(format!(
                "each commit cost {:.1} peer messages at N={} against {:.1} at N={}",
                even.msgs_per_commit, even.n, odd.msgs_per_commit, odd.n
            ));
        }
    }
    let mut split_lines = Vec::new();
    for s in &r.partition {
        let no_majority = s.splits - s.with_majority;
        if s.n % 2 == 0 {
            split_lines.push(format!(
                "a random split of N={} has a majority side with probability {}; weighted by that, writes went on {} of the time ({} of {} splits held had no majority side, and writes went on in {} of the {} held)",
                s.n,
                pct(s.theory),
                pct(s.measured),
                no_majority,
                s.splits,
                s.available,
                s.splits
            ));
        }
    }
    let odd_splits: Vec<String> = r
        .partition
        .iter()
        .filter(|s| s.n % 2 == 1)
        .map(|s| format!("N={} {}", s.n, pct(s.measured)))
        .collect();
    if !split_lines.is_empty() {
        let mut line = split_lines.join("; ");
        if !odd_splits.is_empty() {
            let _ = write!(
                line,
                ", while an odd size always has a majority side and kept writing ({})",
                odd_splits.join(", ")
            );
        }
        parts.push(line);
    }
    if parts.is_empty() {
        return "Run with both an even size and the odd size below it (e.g. --sizes 3,4,5) for the comparison.".to_string();
    }
    let luck: Vec<String> = r
        .sizes
        .iter()
        .filter(|s| (s.majority_up - s.theory).abs() > 0.03)
        .map(|s| format!("N={} {} against {}", s.n, pct(s.majority_up), pct(s.theory)))
        .collect();
    if !luck.is_empty() {
        parts.push(format!(
            "the node timelines of this run left a majority up for a fraction of the time that differs from the long-run theory ({}), so compare each measured availability with its own majority-up fraction, and the sizes with each other on the same timelines",
            luck.join(", ")
        ));
    }
    let mut text = String::from("Why odd sizes? In this run, ");
    text.push_str(&parts.join(". Also, "));
    text.push_str(". An even ensemble pays for one more machine and one more round of messages, tolerates no more failures than the odd one below it, is down more often because it has one more node to lose, and can split into two halves where no side can form a majority. That is why ZooKeeper ensembles have 3, 5 or 7 members.");
    text.push_str(&flexible_answer(r));
    text
}

/// `availability.svg`: availability against N, theory lines and measured points
/// with their intervals, for both fault models (and the simulator's, if any).
pub fn plot(runs: &[&Results], path: &Path) -> Result<(), DrawError> {
    let ns: Vec<usize> = runs
        .iter()
        .flat_map(|r| r.sizes.iter().map(|s| s.n))
        .collect();
    let (lo, hi) = (
        *ns.iter().min().unwrap_or(&3) as f64 - 0.5,
        *ns.iter().max().unwrap_or(&7) as f64 + 0.5,
    );
    let ymin = runs
        .iter()
        .flat_map(|r| {
            r.sizes
                .iter()
                .map(|s| s.ci95[0].min(s.theory))
                .chain(r.partition.iter().map(|s| s.measured.min(s.theory)))
                .chain(r.flexible.iter().map(|f| f.bounds[0].min(f.crash.ci95[0])))
        })
        .fold(1.0f64, f64::min);
    let ymin = ((ymin - 0.05).max(0.0) * 10.0).floor() / 10.0;
    let root = SVGBackend::new(path, (1060, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    // The legend gets a panel of its own, clear of the data.
    let (plot_area, legend_area) = root.split_horizontally(740);
    let mut legend: Vec<(Mark, String)> = Vec::new();
    let p = runs.first().map_or(0.2, |r| r.p);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(
            format!("Availability against cluster size (p = {p})"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(lo..hi, ymin..1.02f64)?;
    chart
        .configure_mesh()
        .x_desc("nodes N")
        .y_desc("availability")
        .x_labels(ns.len().max(2) * 2)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-6 {
                format!("{}", x.round() as i64)
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
        .draw()?;
    let all_n: Vec<usize> = (lo.ceil() as usize..=hi.floor() as usize).collect();
    let theory: Vec<(f64, f64)> = all_n
        .iter()
        .map(|&n| (n as f64, crate::paxos::quorum::availability(n, p)))
        .collect();
    let split_theory: Vec<(f64, f64)> = all_n
        .iter()
        .map(|&n| (n as f64, crate::paxos::quorum::split_availability(n)))
        .collect();
    let blue = RGBColor(40, 90, 200);
    let orange = RGBColor(220, 120, 30);
    chart.draw_series(LineSeries::new(theory, blue.stroke_width(2)))?;
    legend.push((Mark::Line(blue, 2), "crash model: theory A(N, p)".into()));
    chart.draw_series(LineSeries::new(split_theory, orange.stroke_width(2)))?;
    legend.push((Mark::Line(orange, 2), "partition model: theory".into()));
    for (i, r) in runs.iter().enumerate() {
        let dx = if runs.len() > 1 {
            i as f64 * 0.12 - 0.06
        } else {
            0.0
        };
        let (dot, name) = if r.mode == "sim" {
            (RGBColor(30, 150, 70), "simulator")
        } else {
            (BLACK, "real processes")
        };
        for s in &r.sizes {
            let x = s.n as f64 + dx;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x, s.ci95[0]), (x, s.ci95[1])],
                dot.stroke_width(2),
            )))?;
        }
        chart.draw_series(
            r.sizes
                .iter()
                .map(|s| Circle::new((s.n as f64 + dx, s.measured), 5, dot.filled())),
        )?;
        legend.push((
            Mark::Dot(dot),
            format!("crash model: measured ({name}), 95% CI"),
        ));
        if i == 0 {
            // The answer's numbers beside the first run's points.
            chart.draw_series(r.sizes.iter().map(|s| {
                Text::new(
                    format!("{:.1}%", s.measured * 100.0),
                    (s.n as f64 + dx - 0.42, s.measured),
                    ("sans-serif", 12).into_font(),
                )
            }))?;
        }
        chart.draw_series(
            r.sizes
                .iter()
                .map(|s| Cross::new((s.n as f64 + dx, s.majority_up), 5, dot.stroke_width(1))),
        )?;
        legend.push((
            Mark::Cross(dot),
            format!("crash model: time a majority was up ({name})"),
        ));
        chart.draw_series(
            r.partition
                .iter()
                .map(|s| TriangleMarker::new((s.n as f64 + dx, s.measured), 6, dot.filled())),
        )?;
        legend.push((
            Mark::Triangle(dot),
            format!("partition model: measured ({name})"),
        ));
    }
    let purple = RGBColor(150, 60, 170);
    if let Some(r) = runs.iter().find(|r| !r.flexible.is_empty()) {
        chart.draw_series(r.flexible.iter().map(|f| {
            let x = f.n as f64 + 0.3;
            PathElement::new(
                vec![(x, f.bounds[0]), (x, f.bounds[1])],
                purple.stroke_width(6),
            )
        }))?;
        legend.push((
            Mark::Line(purple, 6),
            "flexible quorums (N/2+1, N/2): theory bounds".into(),
        ));
    }
    for (i, r) in runs.iter().enumerate() {
        if r.flexible.is_empty() {
            continue;
        }
        let dx = 0.3
            + if runs.len() > 1 {
                i as f64 * 0.12 - 0.06
            } else {
                0.0
            };
        let fill = if r.mode == "sim" {
            RGBColor(30, 150, 70)
        } else {
            BLACK
        };
        let name = if r.mode == "sim" {
            "simulator"
        } else {
            "real processes"
        };
        chart.draw_series(r.flexible.iter().map(|f| {
            let x = f.n as f64 + dx;
            PathElement::new(
                vec![(x, f.crash.ci95[0]), (x, f.crash.ci95[1])],
                fill.stroke_width(2),
            )
        }))?;
        chart.draw_series(r.flexible.iter().map(|f| {
            Rectangle::new(
                [
                    (f.n as f64 + dx - 0.04, f.crash.measured + 0.006),
                    (f.n as f64 + dx + 0.04, f.crash.measured - 0.006),
                ],
                fill.filled(),
            )
        }))?;
        legend.push((
            Mark::Square(fill),
            format!("flexible quorums: measured ({name})"),
        ));
    }
    draw_legend(&legend_area, &legend)?;
    root.present()?;
    Ok(())
}

/// What a legend entry shows.
#[derive(Clone, Copy)]
enum Mark {
    Line(RGBColor, u32),
    Dot(RGBColor),
    Cross(RGBColor),
    Triangle(RGBColor),
    Square(RGBColor),
}

/// A legend in a panel of its own, one entry per line from the top left.
fn draw_legend(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    entries: &[(Mark, String)],
) -> Result<(), DrawError> {
    for (i, (mark, text)) in entries.iter().enumerate() {
        let y = 60 + i as i32 * 24;
        let x = 8;
        match *mark {
            Mark::Line(c, w) => area.draw(&PathElement::new(
                vec![(x, y), (x + 22, y)],
                c.stroke_width(w),
            ))?,
            Mark::Dot(c) => area.draw(&Circle::new((x + 11, y), 5, c.filled()))?,
            Mark::Cross(c) => area.draw(&Cross::new((x + 11, y), 5, c.stroke_width(1)))?,
            Mark::Triangle(c) => area.draw(&TriangleMarker::new((x + 11, y), 6, c.filled()))?,
            Mark::Square(c) => area.draw(&Rectangle::new(
                [(x + 6, y - 5), (x + 16, y + 5)],
                c.filled(),
            ))?,
        }
        area.draw(&Text::new(
            text.clone(),
            (x + 30, y - 7),
            ("sans-serif", 13).into_font(),
        ))?;
    }
    Ok(())
}

/// `cost.svg`: what each size costs with every node up: peer messages per
/// commit (left) and commit latency p50 and p99 (right), against N, for
/// majority rows (circles) and flexible rows (squares).
pub fn plot_cost(r: &Results, path: &Path) -> Result<(), DrawError> {
    let root = SVGBackend::new(path, (900, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(450);
    let ns: Vec<usize> = r.sizes.iter().map(|s| s.n).collect();
    let x = (
        *ns.iter().min().unwrap_or(&3) as f64 - 0.5,
        *ns.iter().max().unwrap_or(&7) as f64 + 0.5,
    );
    let series = |name: &str, color: RGBColor, f: fn(&super::SizeResult) -> f64| CostSeries {
        name: name.to_string(),
        color,
        line: r.sizes.iter().map(|s| (s.n as f64, f(s))).collect(),
        squares: r
            .flexible
            .iter()
            .map(|fl| (fl.n as f64, f(&fl.crash)))
            .collect(),
    };
    cost_panel(
        &left,
        "Peer messages per commit (all up)",
        "messages / commit",
        x,
        &[series(
            "majorities; squares: flexible (N/2+1, N/2)",
            RGBColor(40, 90, 200),
            |s| s.msgs_per_commit,
        )],
    )?;
    cost_panel(
        &right,
        "Commit latency (all up)",
        "latency (ms)",
        x,
        &[
            series("p50; squares: flexible", RGBColor(40, 90, 200), |s| {
                s.p50_ms
            }),
            series("p99; squares: flexible", RGBColor(200, 50, 50), |s| {
                s.p99_ms
            }),
        ],
    )?;
    root.present()?;
    Ok(())
}

/// One series of a cost panel: the majority rows as a line with dots, the
/// flexible rows as squares, in one colour.
struct CostSeries {
    name: String,
    color: RGBColor,
    line: Vec<(f64, f64)>,
    squares: Vec<(f64, f64)>,
}

/// One panel of `cost.svg`: `series` against N over `x`, from zero up.
fn cost_panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    caption: &str,
    y_desc: &str,
    x: (f64, f64),
    series: &[CostSeries],
) -> Result<(), DrawError> {
    let ymax = series
        .iter()
        .flat_map(|s| s.line.iter().chain(&s.squares))
        .map(|p| p.1)
        .fold(0.1f64, f64::max)
        * 1.3;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(x.0..x.1, 0.0..ymax)?;
    chart
        .configure_mesh()
        .x_desc("nodes N")
        .y_desc(y_desc)
        .x_labels(((x.1 - x.0) as usize).max(2) * 2)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-6 {
                format!("{}", x.round() as i64)
            } else {
                String::new()
            }
        })
        .draw()?;
    for s in series {
        let color = s.color;
        chart
            .draw_series(LineSeries::new(s.line.clone(), color.stroke_width(2)))?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(s.line.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        let h = ymax * 0.012;
        chart.draw_series(s.squares.iter().map(|&(x, y)| {
            Rectangle::new([(x - 0.06, y + h), (x + 0.06, y - h)], color.filled())
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// `report.md`: settings, table(s), the plot and the answer.
pub fn markdown(runs: &[&Results]) -> String {
    let mut s = String::from("# Why do ZooKeeper ensembles have 3, 5 or 7 members?\n\n");
    let Some(main) = runs.first() else {
        return s;
    };
    let t = &main.timing;
    let _ = writeln!(
        s,
        "Each node goes down (SIGKILL) and comes back (restart from its own log) on its own random timeline, down a fraction p = {} of the time; a probe write every {} ms, each with a {} ms timeout, measures availability (probes committed / probes sent). Time is compressed: a node's mean down time is {:.1} s and its mean up time {:.1} s. Node k's timeline comes from the seed ({}) and k alone, so every size replays the same timelines for the nodes it shares with the others (common random numbers): two sizes differ only by the nodes added, and the comparison is paired rather than left to noise. The 95% intervals are batch means over 20 consecutive batches (probes are correlated in time). In the partition model each split is held {:.1} s and counts as available if most probes in its second half commit; the splits are stratified by the size k of the smaller side (k = 0..N/2, {} seeded splits each), each weighted by its class's probability under random sides (2·C(N,k)/2^N, or C(N,N/2)/2^N for an even half), so the measured fraction estimates a random split's availability without the noise of drawing the classes.\n",
        main.p,
        t.probe_every_ms,
        t.probe_timeout_ms,
        main.p * t.cycle_s,
        (1.0 - main.p) * t.cycle_s,
        main.seed,
        t.split_hold_s,
        t.split_reps
    );
    for r in runs {
        let _ = writeln!(
            s,
            "## {} ({:.0} s of wall time)\n\n{}",
            if r.mode == "sim" {
                "Simulator, virtual time"
            } else {
                "Real processes on loopback"
            },
            r.wall_s,
            table(r)
        );
    }
    let _ = writeln!(s, "![availability against N](availability.svg)\n");
    let _ = writeln!(
        s,
        "![messages per commit and commit latency against N](cost.svg)\n"
    );
    let _ = writeln!(s, "## The answer\n\n{}\n", answer(main));
    s
}
