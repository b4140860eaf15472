//! `synod check`'s verdict on a history read from a file: the check, the
//! smallest window of a violation, and how both are shown (text or JSON).

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use std::collections::BTreeSet;

use super::history::{History, Operation, Status};
use super::input::{Clock, Format, Loaded};
use super::linear::{self, KeyResult, Start, Verdict};
use super::window::{self, Window};
use crate::kv::{Op, OpResult};

/// Search steps per key unless `--budget` says otherwise: about ten seconds of
/// search on a laptop.
pub const DEFAULT_BUDGET: u64 = 100_000_000;

/// What the check concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every key is linearizable.
    Linearizable,
    /// Some key is not.
    NotLinearizable,
    /// No key is known bad, and some key ran out of budget.
    Undecided,
}

/// The check of one history.
#[derive(Clone, Debug)]
pub struct Report {
    /// Key by key.
    pub verdict: Verdict,
    /// The smallest window of the first key found not linearizable.
    pub window: Option<Window>,
    /// Time the check took.
    pub check_time: Duration,
    /// Time the window search took.
    pub window_time: Duration,
}

/// Check `loaded`, spending at most `budget` search steps per key, and find
/// the smallest window of the first violation.
pub fn check(loaded: &Loaded, budget: u64) -> Report {
    let started = Instant::now();
    let verdict = linear::check(&loaded.history, budget);
    let check_time = started.elapsed();
    let started = Instant::now();
    let window = verdict.violations().next().and_then(|k| {
        let near = match &k.result {
            KeyResult::NotLinearizable { stuck, .. } => stuck.clone(),
            _ => Vec::new(),
        };
        window::smallest(&loaded.history, &k.key, &near, budget)
    });
    Report {
        verdict,
        window,
        check_time,
        window_time: started.elapsed(),
    }
}

impl Report {
    /// Linearizable, not, or undecided.
    pub fn outcome(&self) -> Outcome {
        if self.verdict.violations().next().is_some() {
            Outcome::NotLinearizable
        } else if self.verdict.is_inconclusive() {
            Outcome::Undecided
        } else {
            Outcome::Linearizable
        }
    }

    /// The verdict in one line.
    pub fn headline(&self) -> String {
        match self.outcome() {
            Outcome::Linearizable => "linearizable".to_string(),
            Outcome::NotLinearizable => {
                let keys: Vec<String> = self
                    .verdict
                    .violations()
                    .map(|k| format!("{:?}", k.key))
                    .collect();
                format!("not linearizable: key {}", list(&keys))
            }
            Outcome::Undecided => {
                let keys: Vec<String> = self
                    .verdict
                    .keys
                    .iter()
                    .filter(|k| k.result == KeyResult::Inconclusive)
                    .map(|k| format!("{:?} ({} operations, {} steps)", k.key, k.ops, k.steps))
                    .collect();
                format!(
                    "undecided: no violation found, but the search ran out of budget on key {}; raise --budget",
                    list(&keys)
                )
            }
        }
    }

    /// The summary, the verdict and, for a violation, its window as a table.
    pub fn text(&self, loaded: &Loaded, path: &Path) -> String {
        let h = &loaded.history;
        let (ok, failed, unknown) = h.counts();
        let mut s =
            format!(
            "{}: {} operations ({}), {} key{}: {ok} ok, {failed} failed, {unknown} indeterminate",
            path.display(),
            h.ops.len(),
            loaded.format,
            self.verdict.keys.len(),
            if self.verdict.keys.len() == 1 { "" } else { "s" },
        );
        if loaded.skipped > 0 {
            let _ = write!(s, "; {} non-client events skipped", loaded.skipped);
        }
        let _ = writeln!(
            s,
            "\nchecked in {:.2} s ({} search steps){}",
            self.check_time.as_secs_f64(),
            self.verdict.steps(),
            if self.window.is_some() {
                format!(
                    "; smallest window found in {:.2} s",
                    self.window_time.as_secs_f64()
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(s, "{}", self.headline());
        match (&self.window, self.verdict.violations().next()) {
            (Some(w), _) => s.push_str(&window_text(w, loaded)),
            (None, Some(k)) => {
                let _ = writeln!(
                    s,
                    "(no smaller window was shown to fail within the budget)\nwhy: {}",
                    k.explain(h)
                );
            }
            (None, None) => {}
        }
        s
    }

    /// One JSON object for a machine.
    pub fn json(&self, loaded: &Loaded) -> Value {
        let h = &loaded.history;
        let (ok, failed, unknown) = h.counts();
        let keys: Vec<Value> = self
            .verdict
            .keys
            .iter()
            .map(|k| {
                json!({
                    "key": k.key,
                    "operations": k.ops,
                    "verdict": match k.result {
                        KeyResult::Linearizable => "linearizable",
                        KeyResult::NotLinearizable { .. } => "not linearizable",
                        KeyResult::Inconclusive => "undecided",
                    },
                    "steps": k.steps,
                })
            })
            .collect();
        let mut v = json!({
            "verdict": match self.outcome() {
                Outcome::Linearizable => "linearizable",
                Outcome::NotLinearizable => "not linearizable",
                Outcome::Undecided => "undecided",
            },
            "message": self.headline(),
            "format": match loaded.format {
                Format::Jsonl => "jsonl",
                Format::Edn => "edn",
            },
            "time_unit": clock_name(loaded.clock),
            "operations": h.ops.len(),
            "ok": ok,
            "failed": failed,
            "indeterminate": unknown,
            "skipped": loaded.skipped,
            "keys": keys,
            "check_s": self.check_time.as_secs_f64(),
            "window_s": self.window_time.as_secs_f64(),
        });
        match (&self.window, self.verdict.violations().next()) {
            (Some(w), _) => v["window"] = window_json(w, loaded),
            (None, Some(k)) => v["why"] = json!(k.explain(h)),
            (None, None) => {}
        }
        v
    }
}

fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        _ => format!("{} and {} more", items[0], items.len() - 1),
    }
}

fn clock_name(c: Clock) -> &'static str {
    match c {
        Clock::Recorded => "as recorded",
        Clock::Nanos => "ns",
        Clock::Events => "event index",
    }
}

/// How the file's operations read: Jepsen's words for EDN, synod's for jsonl.
fn op_text(op: &Op, format: Format, keyed: bool) -> String {
    if format == Format::Jsonl {
        return op.to_string();
    }
    let nil = |v: &Option<String>| v.clone().unwrap_or_else(|| "nil".into());
    let key = if keyed {
        format!("{} ", op.key())
    } else {
        String::new()
    };
    match op {
        Op::Get { .. } => format!(":read {key}").trim_end().to_string(),
        Op::Put { value, .. } => format!(":write {key}{value}"),
        Op::Delete { .. } => format!(":write {key}nil"),
        Op::Cas { expect, new, .. } => format!(":cas {key}[{} {new}]", nil(expect)),
        Op::Register => ":register".into(),
        Op::Reconfig { .. } => ":reconfig".into(),
    }
}

/// How the operation ended, in the file's words.
fn outcome_text(o: &Operation, format: Format) -> String {
    match (&o.status, format) {
        (Status::Ok(OpResult::Value(v)), Format::Edn) => {
            format!(":ok {}", v.as_deref().unwrap_or("nil"))
        }
        (Status::Ok(_), Format::Edn) => ":ok".into(),
        (Status::Failed, Format::Edn) => ":fail".into(),
        (Status::Unknown, Format::Edn) if o.complete.is_some() => ":info".into(),
        (Status::Ok(OpResult::Done), Format::Jsonl) => "ok".into(),
        (Status::Ok(r), Format::Jsonl) => format!("ok: {r}"),
        (Status::Failed, Format::Jsonl) => "failed".into(),
        (Status::Unknown, Format::Jsonl) if o.complete.is_some() => "unknown".into(),
        (Status::Unknown, _) => "no completion".into(),
    }
}

/// What the window made of an operation.
fn role(w: &Window, o: &Operation) -> &'static str {
    let whole = matches!(o.status, Status::Ok(_));
    let inside = o.invoke >= w.from && o.complete.is_some_and(|c| c <= w.to);
    match (whole, inside) {
        (true, true) => "",
        (true, false) if o.invoke < w.from && o.complete.is_some_and(|c| c <= w.to) => {
            "optional: began before the window, may have taken effect before it"
        }
        (true, false) => "unknown: still running at the window's end",
        (false, _) if o.invoke < w.from => "unknown: invoked before the window",
        (false, _) => "unknown outcome: may take effect, or not",
    }
}

/// The operations of `w` worth a row: those it keeps whole, the writes it
/// weakened or holds unknown that were invoked in it, and any the explanation
/// names; the rest (reads it weakened, which constrain nothing, and unknown
/// writes from before the window) are counted.
fn shown(w: &Window, h: &History) -> (Vec<usize>, usize) {
    let named: BTreeSet<usize> = match &w.verdict.result {
        KeyResult::NotLinearizable { prefix, stuck, .. } => {
            prefix.iter().chain(stuck).copied().collect()
        }
        _ => BTreeSet::new(),
    };
    let mut rows = Vec::new();
    let mut hidden = 0;
    for o in &w.ops {
        let orig = &h.ops[o.id];
        let whole = matches!(o.status, Status::Ok(_));
        let write_inside = !orig.op.is_read() && orig.invoke >= w.from;
        let optional = w.cut.contains(&o.id) && !orig.op.is_read() && orig.invoke < w.from;
        if whole || write_inside || optional || named.contains(&o.id) {
            rows.push(o.id);
        } else {
            hidden += 1;
        }
    }
    (rows, hidden)
}

fn start_text(start: &Start) -> String {
    match start {
        Start::Absent => "absent (the key's first operation)".into(),
        Start::OneOf(values) => {
            let v: Vec<String> = values
                .iter()
                .map(|v| v.clone().unwrap_or_else(|| "absent".into()))
                .collect();
            let more = v.len().saturating_sub(8);
            let mut s = v.into_iter().take(8).collect::<Vec<_>>().join(", ");
            if more > 0 {
                let _ = write!(s, " and {more} more");
            }
            format!("any the writes before it may have left: {s}")
        }
    }
}

/// A list of operations as `line N (:write 3)`, the last `max` of them.
fn refs(ids: &[usize], loaded: &Loaded, max: usize) -> String {
    let h = &loaded.history;
    let skip = ids.len().saturating_sub(max);
    let mut s: Vec<String> = ids[skip..]
        .iter()
        .map(|&id| {
            let o = &h.ops[id];
            let result = match &o.status {
                Status::Ok(OpResult::Value(v)) => {
                    format!(" → {}", v.as_deref().unwrap_or("nil"))
                }
                Status::Ok(OpResult::Swapped(false)) => " → unchanged".into(),
                Status::Unknown => " → ?".into(),
                _ => String::new(),
            };
            format!(
                "line {} {}{result}",
                loaded.lines[id],
                op_text(&o.op, loaded.format, false)
            )
        })
        .collect();
    if skip > 0 {
        s.insert(0, format!("{skip} more"));
    }
    s.join(", ")
}

/// Why the window fails, in one line.
pub fn why(w: &Window, loaded: &Loaded) -> String {
    match &w.verdict.result {
        KeyResult::NotLinearizable {
            prefix,
            stuck,
            value,
        } => {
            let placed = if prefix.is_empty() {
                "no operation can be ordered first".to_string()
            } else {
                format!(
                    "at most {} can be ordered ({}), leaving the value {}",
                    prefix.len(),
                    refs(prefix, loaded, 4),
                    value.as_deref().unwrap_or("absent")
                )
            };
            format!(
                "{placed}; none of these can come next: {}",
                refs(stuck, loaded, 6)
            )
        }
        _ => String::new(),
    }
}

fn window_text(w: &Window, loaded: &Loaded) -> String {
    let h = &loaded.history;
    let (rows, hidden) = shown(w, h);
    let mut s = format!(
        "\nsmallest window that cannot be ordered: key {}, {} to {} ({}), {} operations\n",
        w.key,
        w.from,
        w.to,
        clock_name(loaded.clock),
        rows.len()
    );
    let _ = writeln!(s, "value at its start: {}", start_text(&w.start));
    let mut table: Vec<[String; 7]> = vec![[
        "line".into(),
        "process".into(),
        "invoked".into(),
        "completed".into(),
        "operation".into(),
        "outcome".into(),
        "in the window".into(),
    ]];
    for &id in &rows {
        let o = &h.ops[id];
        table.push([
            loaded.lines[id].to_string(),
            o.client.to_string(),
            o.invoke.to_string(),
            o.complete.map_or("-".into(), |c| c.to_string()),
            op_text(&o.op, loaded.format, false),
            outcome_text(o, loaded.format),
            role(w, o).to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in &table {
        let mut line = String::from(" ");
        for (c, cell) in r.iter().enumerate() {
            let _ = write!(line, " {cell:<w$}", w = widths[c]);
        }
        let _ = writeln!(s, "{}", line.trim_end());
    }
    if hidden > 0 {
        let _ = writeln!(
            s,
            "  (and {hidden} more that may take effect in it or constrain nothing: unknown writes from before it, reads it cuts; --json lists them)"
        );
    }
    let _ = writeln!(s, "why: {}", why(w, loaded));
    s
}

fn window_json(w: &Window, loaded: &Loaded) -> Value {
    let h = &loaded.history;
    let ops: Vec<Value> = w
        .ops
        .iter()
        .map(|o| {
            let orig = &h.ops[o.id];
            json!({
                "line": loaded.lines[o.id],
                "process": orig.client,
                "invoke": orig.invoke,
                "complete": orig.complete,
                "op": op_text(&orig.op, loaded.format, loaded.keyed),
                "outcome": outcome_text(orig, loaded.format),
                "in_window": match role(w, orig) {
                    "" => "whole",
                    r if r.starts_with("optional") => "optional",
                    _ => "unknown",
                },
            })
        })
        .collect();
    let lines = |ids: &[usize]| -> Vec<usize> { ids.iter().map(|&id| loaded.lines[id]).collect() };
    let (ordered, stuck, value) = match &w.verdict.result {
        KeyResult::NotLinearizable {
            prefix,
            stuck,
            value,
        } => (lines(prefix), lines(stuck), value.clone()),
        _ => (Vec::new(), Vec::new(), None),
    };
    json!({
        "key": w.key,
        "from": w.from,
        "to": w.to,
        "start": match &w.start {
            Start::Absent => json!([null]),
            Start::OneOf(v) => json!(v),
        },
        "operations": ops,
        "ordered": ordered,
        "value": value,
        "stuck": stuck,
        "why": why(w, loaded),
        "windows_checked": w.checks,
    })
}
