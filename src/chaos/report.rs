//! What a chaos run tells: a short report on the terminal, and in `--out DIR`
//! the history, the fault timeline, the verdict and one self-contained HTML page.

use std::fmt::Write as _;
use std::path::Path;

use super::{ChaosRun, FaultEvent};
use crate::check::history::{History, Status};
use crate::check::linear::describe;

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
            buckets[s].push((matches!(op.status, Status::Ok(_)), done - op.invoke));
        }
    }
    buckets
        .into_iter()
        .map(|b| {
            let mut lat: Vec<u64> = b.iter().filter(|(ok, _)| *ok).map(|(_, l)| *l).collect();
            lat.sort_unstable();
            Second {
                done: b.len(),
                ok: lat.len(),
                p50: quantile(&lat, 0.5) / 1e3,
                p99: quantile(&lat, 0.99) / 1e3,
            }
        })
        .collect()
}

/// The `q` quantile of sorted values (0 if empty).
pub fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i] as f64
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
    let series = per_second(&run.history, secs);
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
    let mut lat: Vec<u64> = run
        .history
        .ops
        .iter()
        .filter(|o| matches!(o.status, Status::Ok(_)))
        .filter_map(|o| o.complete.map(|c| c - o.invoke))
        .collect();
    lat.sort_unstable();
    let _ = writeln!(
        s,
        "\noperations: {} ok, {} failed, {} unknown ({} in all; {} acknowledged writes)",
        v.ops.ok, v.ops.failed, v.ops.unknown, v.ops.total, v.acknowledged_writes
    );
    let _ = writeln!(s, "availability per second: {}", sparkline(&avail));
    let _ = writeln!(
        s,
        "latency of acknowledged operations: p50 {:.1} ms, p99 {:.1} ms",
        quantile(&lat, 0.5) / 1e3,
        quantile(&lat, 0.99) / 1e3
    );
    let _ = writeln!(
        s,
        "checked in {:.0} ms: linearizable {}, logs agree on {} slots: {}, lost writes {} of {}, promises monotonic: {}",
        v.checker_ms,
        if v.inconclusive { "UNDECIDED".to_string() } else { yes(v.linearizable) },
        v.slots,
        yes(v.agreement),
        v.lost_writes,
        v.acknowledged_writes,
        yes(v.promises_monotonic)
    );
    if v.is_clean() {
        let _ = writeln!(s, "\nverdict: OK");
    } else {
        let _ = writeln!(s, "\nverdict: {} VIOLATION(S)", v.violations.len());
        for line in v.violations.iter().take(6) {
            let _ = writeln!(s, "  {line}");
        }
        if !run.involved.is_empty() {
            let _ = writeln!(s, "operations involved:");
            for &id in run.involved.iter().take(10) {
                let _ = writeln!(s, "  {}", describe(&run.history.ops[id]));
            }
        }
    }
    s
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "NO" }.to_string()
}

/// Write `history.jsonl`, `faults.jsonl`, `verdict.json` and `report.html`.
pub fn write(run: &ChaosRun, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut h = String::new();
    for op in &run.history.ops {
        h.push_str(&serde_json::to_string(op).expect("ops serialise"));
        h.push('\n');
    }
    std::fs::write(dir.join("history.jsonl"), h)?;
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
    std::fs::write(dir.join("report.html"), html(run))?;
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One self-contained page: fault timeline, throughput and latency over time,
/// and the operations involved in a violation.
pub fn html(run: &ChaosRun) -> String {
    let v = &run.verdict;
    let secs = v.duration_s.ceil().max(1.0) as usize;
    let series = per_second(&run.history, secs);
    let (w, left) = (900.0, 40.0);
    let x = |t_s: f64| left + (w - left - 10.0) * t_s / secs as f64;

    // Fault timeline: one lane per episode kind.
    let lanes = ["kill", "pause", "partition", "messages"];
    let mut timeline = String::new();
    let mut open: std::collections::BTreeMap<usize, &FaultEvent> = Default::default();
    for e in &v.faults {
        if e.phase == "start" {
            open.insert(e.episode, e);
            continue;
        }
        let Some(st) = open.remove(&e.episode) else {
            continue;
        };
        let lane = lanes
            .iter()
            .position(|l| st.fault.starts_with(l))
            .unwrap_or(3);
        let (x0, x1) = (x(st.at_ms as f64 / 1e3), x(e.at_ms as f64 / 1e3));
        let _ = write!(
            timeline,
            r#"<rect x="{x0:.1}" y="{}" width="{:.1}" height="14" fill="{}" opacity="0.75"><title>{}</title></rect>"#,
            8 + lane * 20,
            (x1 - x0).max(1.5),
            ["#d9534f", "#f0ad4e", "#5bc0de", "#9b59b6"][lane],
            esc(&format!(
                "{:.1}–{:.1} s: {} {:?}",
                st.at_ms as f64 / 1e3,
                e.at_ms as f64 / 1e3,
                st.fault,
                st.nodes
            ))
        );
    }
    for (i, l) in lanes.iter().enumerate() {
        let _ = write!(
            timeline,
            r#"<text x="2" y="{}" font-size="10">{l}</text>"#,
            19 + i * 20
        );
    }

    let max_ops = series.iter().map(|s| s.done).max().unwrap_or(1).max(1) as f64;
    let max_lat = series.iter().map(|s| s.p99).fold(1.0f64, f64::max);
    let path = |f: &dyn Fn(&Second) -> f64, scale: f64, h: f64| -> String {
        series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "{:.1},{:.1}",
                    x(i as f64 + 0.5),
                    h - 5.0 - (h - 15.0) * f(s) / scale
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let thr = format!(
        r##"<polyline fill="none" stroke="#2c7" stroke-width="1.5" points="{}"/><polyline fill="none" stroke="#c33" stroke-width="1" points="{}"/>"##,
        path(&|s| s.ok as f64, max_ops, 120.0),
        path(&|s| (s.done - s.ok) as f64, max_ops, 120.0)
    );
    let lat = format!(
        r##"<polyline fill="none" stroke="#37c" stroke-width="1.5" points="{}"/><polyline fill="none" stroke="#c73" stroke-width="1" points="{}"/>"##,
        path(&|s| s.p50, max_lat, 120.0),
        path(&|s| s.p99, max_lat, 120.0)
    );
    let mut violations = String::new();
    for line in &v.violations {
        let _ = write!(violations, "<li>{}</li>", esc(line));
    }
    let mut involved = String::new();
    for &id in &run.involved {
        let _ = write!(
            involved,
            "<li><code>{}</code></li>",
            esc(&describe(&run.history.ops[id]))
        );
    }
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>synod chaos, seed {seed}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}}svg{{background:#fafafa;border:1px solid #ddd}}code{{font-size:12px}}.ok{{color:#2a2}}.bad{{color:#c22}}</style></head><body>
<h1>synod chaos: <span class="{cls}">{word}</span></h1>
<p>Cluster <b>{cluster}</b> ({nodes} nodes), {dur:.0} s, seed {seed}, {clients} clients{broken}.
Operations: {ok} ok, {failed} failed, {unknown} unknown; {acked} acknowledged writes, {lost} lost.
Linearizable: {lin}. Logs agree on {slots} slots: {agree}. Promises monotonic: {mono}. Checker: {ms:.0} ms.</p>
<h2>Fault timeline</h2><svg width="{w}" height="92">{timeline}</svg>
<h2>Throughput per second</h2><p><span style="color:#2c7">ok</span> / <span style="color:#c33">failed or unknown</span> (max {max_ops:.0} ops/s)</p><svg width="{w}" height="120">{thr}</svg>
<h2>Latency per second</h2><p><span style="color:#37c">p50</span> / <span style="color:#c73">p99</span> of acknowledged operations (max {max_lat:.1} ms)</p><svg width="{w}" height="120">{lat}</svg>
<h2>Violations</h2><ul>{violations}</ul>{inv}
</body></html>
"#,
        seed = v.seed,
        cls = if v.is_clean() { "ok" } else { "bad" },
        word = if v.is_clean() { "OK" } else { "VIOLATION" },
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
