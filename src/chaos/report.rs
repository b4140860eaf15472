//! What a chaos run tells: a short report on the terminal, and in `--out DIR`
//! the history, the fault timeline, the verdict and one self-contained HTML page.

use std::fmt::Write as _;
use std::path::Path;

use super::{ChaosError, ChaosRun, FaultEvent};
use std::collections::BTreeMap;

use crate::check::history::{History, Operation, Status};
use crate::check::linear::describe;
use crate::harness::DrawError;
use crate::stats::Latencies;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// One second of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Second {
    /// Operations that completed in it.
    pub done: usize,
    /// Of those, acknowledged.
    pub ok: usize,
    /// Median latency of the acknowledged ones, ms.
    pub p50: f64,
    /// 99th percentile, ms.
    pub p99: f64,
}

/// Per-second series of a history, by completion time.
pub fn per_second(history: &History, seconds: usize) -> Vec<Second> {
    let mut buckets: Vec<Vec<(bool, u64)>> = vec![Vec::new(); seconds.max(1)];
    for op in &history.ops {
        let Some(done) = op.complete else { continue };
        let s = (done / 1_000_000) as usize;
        if s < buckets.len() {
            buckets[s].push((
                matches!(op.status, Status::Ok(_)),
                done.saturating_sub(op.invoke),
            ));
        }
    }
    buckets
        .into_iter()
        .map(|b| {
            let mut lat = Latencies::new();
            for (_, us) in b.iter().filter(|(ok, _)| *ok) {
                lat.record_us(*us);
            }
            Second {
                done: b.len(),
                ok: lat.len() as usize,
                p50: lat.ms(0.5),
                p99: lat.ms(0.99),
            }
        })
        .collect()
}

/// The per-second series and the overall latency, built one operation at a
/// time (a long run's history is never held whole). Operations complete
/// roughly in order, so a second is closed, its percentiles taken and its
/// samples dropped, once operations three seconds later arrive.
#[derive(Clone, Debug, Default)]
pub struct SeriesBuilder {
    closed: Vec<Second>,
    open: BTreeMap<usize, (usize, Latencies)>,
    all: Latencies,
}

impl SeriesBuilder {
    /// Count a completed operation.
    pub fn add(&mut self, op: &Operation) {
        let Some(done) = op.complete else { return };
        let s = (done / 1_000_000) as usize;
        let ok = matches!(op.status, Status::Ok(_));
        let latency = done.saturating_sub(op.invoke);
        if ok {
            self.all.record_us(latency);
        }
        if s < self.closed.len() {
            // Late for its second: counted, its latency not.
            self.closed[s].done += 1;
            self.closed[s].ok += usize::from(ok);
            return;
        }
        let (n, lat) = self.open.entry(s).or_default();
        *n += 1;
        if ok {
            lat.record_us(latency);
        }
        while let Some((&first, _)) = self.open.first_key_value() {
            if first + 3 > s {
                break;
            }
            self.close_first();
        }
    }

    fn close_first(&mut self) {
        let Some((s, (n, lat))) = self.open.pop_first() else {
            return;
        };
        while self.closed.len() < s {
            self.closed.push(Second::default());
        }
        self.closed.push(Second {
            done: n,
            ok: lat.len() as usize,
            p50: lat.ms(0.5),
            p99: lat.ms(0.99),
        });
    }

    /// The series of the first `seconds` seconds.
    pub fn seconds(&self, seconds: usize) -> Vec<Second> {
        let mut me = self.clone();
        while !me.open.is_empty() {
            me.close_first();
        }
        me.closed.resize(seconds.max(1), Second::default());
        me.closed
    }

    /// Latencies of every acknowledged operation.
    pub fn latencies(&self) -> &Latencies {
        &self.all
    }
}

/// Values in 0..=1 as a sparkline.
pub fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    values
        .iter()
        .map(|v| BARS[((v.clamp(0.0, 1.0) * 7.0).round()) as usize])
        .collect()
}

/// The terminal report.
pub fn text(run: &ChaosRun) -> String {
    let v = &run.verdict;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "chaos on cluster {:?} ({} nodes), {:.0} s, seed {}, {} clients{}",
        v.cluster,
        v.nodes,
        v.duration_s,
        v.seed,
        v.clients,
        v.broken
            .as_ref()
            .map(|r| format!(", rule `{r}` OFF"))
            .unwrap_or_default()
    );
    let _ = writeln!(s, "\nfault timeline:");
    for e in &v.faults {
        let nodes: Vec<String> = e.nodes.iter().map(|n| n.to_string()).collect();
        let _ = writeln!(
            s,
            "  {:>6.1}s  {:<5}  {}{}",
            e.at_ms as f64 / 1e3,
            e.phase,
            e.fault,
            if nodes.is_empty() || e.fault.starts_with("messages") {
                String::new()
            } else {
                format!(" [{}]", nodes.join(","))
            }
        );
    }
    let secs = v.duration_s.ceil() as usize;
    let series = run.series.seconds(secs);
    let avail: Vec<f64> = series
        .iter()
        .map(|s| {
            if s.done == 0 {
                0.0
            } else {
                s.ok as f64 / s.done as f64
            }
        })
        .collect();
    let lat = run.series.latencies();
    let _ = writeln!(
        s,
        "\noperations: {} ok, {} failed, {} unknown ({} in all; {} acknowledged writes)",
        v.ops.ok, v.ops.failed, v.ops.unknown, v.ops.total, v.acknowledged_writes
    );
    let _ = writeln!(s, "availability per second: {}", sparkline(&avail));
    let _ = writeln!(
        s,
        "latency of acknowledged operations: p50 {:.1} ms, p99 {:.1} ms",
        lat.ms(0.5),
        lat.ms(0.99)
    );
    let restarts: Vec<f64> = v.faults.iter().filter_map(|e| e.restart_ms).collect();
    if !restarts.is_empty() {
        // First and last third apart: a restart that slows down as the run
        // goes on is state that grows.
        let third = restarts.len().div_ceil(3);
        let median = |xs: &[f64]| crate::stats::median(xs) / 1e3;
        let _ = writeln!(
            s,
            "restarts after kills: {}, until serving: median {:.2} s; first third {:.2} s, last third {:.2} s",
            restarts.len(),
            median(&restarts),
            median(&restarts[..third]),
            median(&restarts[restarts.len() - third..])
        );
    }
    let _ = writeln!(
        s,
        "checks: {} keys of at most {} operations: linearizable {}; {} slots compared across nodes: agree {}; {} state digests compared; acknowledged writes: {} found, {} lost, {} unverified of {}; promises monotonic: {}",
        v.keys_checked,
        v.key_ops,
        if v.inconclusive { "UNDECIDED".to_string() } else { yes(v.linearizable) },
        v.slots_compared,
        yes(v.agreement),
        v.digests_compared,
        v.writes.found,
        v.lost_writes,
        v.unverified_writes,
        v.acknowledged_writes,
        yes(v.promises_monotonic)
    );
    if let Some(m) = &v.membership {
        let _ = writeln!(s, "{m}");
    }
    let _ = writeln!(
        s,
        "verdict {:.1} s after the workload ended (full restart, final reads, last checks {:.0} ms); controller peak memory {:.0} MB",
        v.verdict_after_ms / 1e3,
        v.checker_ms,
        v.controller_peak_mb
    );
    match v.outcome {
        super::Outcome::Ok => {
            let _ = writeln!(s, "\nverdict: OK");
        }
        super::Outcome::Inconclusive => {
            let _ = writeln!(
                s,
                "\nverdict: INCONCLUSIVE (nothing was found, but not everything could be checked)"
            );
            for line in v.undecided.iter().take(6) {
                let _ = writeln!(s, "  {line}");
            }
        }
        super::Outcome::Violation => {
            let _ = writeln!(s, "\nverdict: {} VIOLATION(S)", v.violations.len());
            for line in v.violations.iter().take(6) {
                let _ = writeln!(s, "  {line}");
            }
            for line in v.undecided.iter().take(3) {
                let _ = writeln!(s, "  (also undecided: {line})");
            }
            if !run.involved.is_empty() {
                let _ = writeln!(s, "operations involved:");
                for op in run.involved.iter().take(10) {
                    let _ = writeln!(s, "  {}", describe(op));
                }
            }
        }
    }
    s
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "NO" }.to_string()
}

/// Write `faults.jsonl`, `verdict.json`, `involved.json` (the ids of the
/// operations in the first violation) and `report.html` beside the
/// `history.jsonl` the run wrote as it went.
pub fn write(run: &ChaosRun, dir: &Path) -> Result<(), ChaosError> {
    write_files(run, dir).map_err(|source| ChaosError::Report {
        dir: dir.to_path_buf(),
        source,
    })
}

fn write_files(run: &ChaosRun, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut f = String::new();
    for e in &run.verdict.faults {
        f.push_str(&serde_json::to_string(e).expect("events serialise"));
        f.push('\n');
    }
    std::fs::write(dir.join("faults.jsonl"), f)?;
    std::fs::write(
        dir.join("verdict.json"),
        serde_json::to_string_pretty(&run.verdict).expect("verdict serialises"),
    )?;
    std::fs::write(
        dir.join("involved.json"),
        serde_json::to_string(&run.involved.iter().map(|o| o.id).collect::<Vec<_>>())
            .expect("ids serialise"),
    )?;
    std::fs::write(dir.join("report.html"), html(run))?;
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A fault's span, for the charts: (lane, start s, end s, what).
fn fault_spans(v: &super::RunVerdict) -> Vec<(usize, f64, f64, String)> {
    let mut open: std::collections::BTreeMap<usize, &FaultEvent> = Default::default();
    let mut spans = Vec::new();
    for e in &v.faults {
        if e.phase == "start" {
            open.insert(e.episode, e);
            continue;
        }
        let Some(st) = open.remove(&e.episode) else {
            continue;
        };
        let lane = LANES
            .iter()
            .position(|l| st.fault.starts_with(l))
            .unwrap_or(3);
        let what = format!("{} {:?}", st.fault, st.nodes);
        spans.push((lane, st.at_ms as f64 / 1e3, e.at_ms as f64 / 1e3, what));
    }
    spans
}

/// The fault lanes of the timeline, and their colours.
const LANES: [&str; 4] = ["kill", "pause", "partition", "messages"];
const LANE_COLOURS: [RGBColor; 4] = [
    RGBColor(217, 83, 79),
    RGBColor(240, 173, 78),
    RGBColor(91, 192, 222),
    RGBColor(155, 89, 182),
];

/// An SVG chart (as text) of `secs` seconds with a time axis; `draw` adds the
/// content to a chart whose y range is `0..y_max`, and says whether its series
/// have labels for a legend.
fn chart(
    secs: f64,
    y_max: f64,
    y_desc: &str,
    height: u32,
    draw: impl FnOnce(
        &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    ) -> Result<bool, DrawError>,
) -> Result<String, DrawError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut c = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..secs, 0.0..y_max)?;
        c.configure_mesh()
            .x_desc("time since the run began (s)")
            .y_desc(y_desc)
            .draw()?;
        if draw(&mut c)? {
            c.configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// Shade every fault's span behind a chart's data, in its lane's colour.
fn shade(
    c: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    spans: &[(usize, f64, f64, String)],
    y_max: f64,
) -> Result<(), DrawError> {
    c.draw_series(spans.iter().map(|(lane, a, b, _)| {
        Rectangle::new(
            [(*a, 0.0), (*b, y_max)],
            LANE_COLOURS[*lane].mix(0.12).filled(),
        )
    }))?;
    Ok(())
}

/// The three charts of the report: the fault timeline, throughput and
/// latency per second (faults shaded behind both).
fn charts(run: &ChaosRun) -> Result<[String; 3], DrawError> {
    let v = &run.verdict;
    let secs = v.duration_s.ceil().max(1.0);
    let series = run.series.seconds(secs as usize);
    let spans = fault_spans(v);
    let timeline = chart(secs, LANES.len() as f64, "fault", 170, |c| {
        c.draw_series(spans.iter().map(|(lane, a, b, _)| {
            let y = (LANES.len() - 1 - lane) as f64;
            Rectangle::new(
                [(*a, y + 0.15), ((*b).max(a + 0.05), y + 0.85)],
                LANE_COLOURS[*lane].mix(0.8).filled(),
            )
        }))?;
        for (i, l) in LANES.iter().enumerate() {
            let y = (LANES.len() - 1 - i) as f64 + 0.5;
            c.draw_series(std::iter::once(Text::new(
                l.to_string(),
                (0.2, y),
                ("sans-serif", 12),
            )))?;
        }
        Ok(false)
    })?;
    let max_ops = series.iter().map(|s| s.done).max().unwrap_or(1).max(1) as f64 * 1.1;
    let throughput = chart(secs, max_ops, "operations per second", 220, |c| {
        shade(c, &spans, max_ops)?;
        let at = |i: usize| i as f64 + 0.5;
        c.draw_series(LineSeries::new(
            series.iter().enumerate().map(|(i, s)| (at(i), s.ok as f64)),
            RGBColor(34, 170, 85).stroke_width(2),
        ))?
        .label("acknowledged")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RGBColor(34, 170, 85)));
        c.draw_series(LineSeries::new(
            series
                .iter()
                .enumerate()
                .map(|(i, s)| (at(i), (s.done - s.ok) as f64)),
            RGBColor(204, 51, 51).stroke_width(1),
        ))?
        .label("failed or unknown")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RGBColor(204, 51, 51)));
        Ok(true)
    })?;
    let max_lat = series.iter().map(|s| s.p99).fold(1.0f64, f64::max) * 1.1;
    let latency = chart(secs, max_lat, "latency (ms)", 220, |c| {
        shade(c, &spans, max_lat)?;
        let at = |i: usize| i as f64 + 0.5;
        for (name, colour, f) in [
            (
                "p50",
                RGBColor(51, 119, 204),
                (|s: &Second| s.p50) as fn(&Second) -> f64,
            ),
            ("p99", RGBColor(204, 119, 51), |s: &Second| s.p99),
        ] {
            c.draw_series(LineSeries::new(
                series.iter().enumerate().map(|(i, s)| (at(i), f(s))),
                colour.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
        }
        Ok(true)
    })?;
    Ok([timeline, throughput, latency])
}

/// One self-contained page: fault timeline, throughput and latency over time
/// (charts drawn with plotters, faults shaded behind), the violations (or
/// "none") and the operations involved in one.
pub fn html(run: &ChaosRun) -> String {
    let v = &run.verdict;
    let [timeline, thr, lat] = charts(run).unwrap_or_else(|e| {
        let msg = format!("<p>(chart not drawn: {})</p>", esc(&e.to_string()));
        [msg.clone(), msg.clone(), msg]
    });
    let mut legend = String::new();
    for (l, c) in LANES.iter().zip(LANE_COLOURS) {
        let _ = write!(
            legend,
            r#"<span style="background:rgb({},{},{});padding:0 6px;margin-right:8px;opacity:.8">{l}</span>"#,
            c.0, c.1, c.2
        );
    }
    let mut violations = String::new();
    for line in &v.violations {
        let _ = write!(violations, "<li>{}</li>", esc(line));
    }
    for line in &v.undecided {
        let _ = write!(violations, "<li>undecided: {}</li>", esc(line));
    }
    if violations.is_empty() {
        violations.push_str("<li>none: every check passed</li>");
    }
    let mut involved = String::new();
    for op in &run.involved {
        let _ = write!(involved, "<li><code>{}</code></li>", esc(&describe(op)));
    }
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>synod chaos, seed {seed}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}}svg{{border:1px solid #ddd}}code{{font-size:12px}}.ok{{color:#2a2}}.bad{{color:#c22}}</style></head><body>
<h1>synod chaos: <span class="{cls}">{word}</span></h1>
<p>Cluster <b>{cluster}</b> ({nodes} nodes), {dur:.0} s, seed {seed}, {clients} clients{broken}.
Operations: {ok} ok, {failed} failed, {unknown} unknown; {acked} acknowledged writes, {lost} lost.
Linearizable: {lin}. Logs agree on {slots} slots: {agree}. Promises monotonic: {mono}. Checker: {ms:.0} ms.</p>
<h2>Fault timeline</h2><p>{legend}</p>{timeline}
<h2>Throughput per second</h2><p>Operations completed each second; fault periods shaded behind.</p>{thr}
<h2>Latency per second</h2><p>p50 and p99 of the operations acknowledged each second; fault periods shaded behind.</p>{lat}
<h2>Violations</h2><ul>{violations}</ul>{inv}
</body></html>
"#,
        seed = v.seed,
        cls = if v.is_clean() { "ok" } else { "bad" },
        word = match v.outcome {
            super::Outcome::Ok => "OK",
            super::Outcome::Violation => "VIOLATION",
            super::Outcome::Inconclusive => "INCONCLUSIVE",
        },
        cluster = esc(&v.cluster),
        nodes = v.nodes,
        dur = v.duration_s,
        clients = v.clients,
        broken = v
            .broken
            .as_ref()
            .map(|r| format!(", rule <b>{r}</b> off"))
            .unwrap_or_default(),
        ok = v.ops.ok,
        failed = v.ops.failed,
        unknown = v.ops.unknown,
        acked = v.acknowledged_writes,
        lost = v.lost_writes,
        lin = v.linearizable,
        slots = v.slots,
        agree = v.agreement,
        mono = v.promises_monotonic,
        ms = v.checker_ms,
        inv = if involved.is_empty() {
            String::new()
        } else {
            format!("<h2>Operations involved</h2><ul>{involved}</ul>")
        },
    )
}
