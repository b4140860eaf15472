//! `synod web --replay DIR`: a finished `synod chaos --out DIR` run, to scrub.
//!
//! Read-only: the page gets the run's verdict, faults and per-second series in
//! one answer, and the operations of a window of time on demand (a bounded
//! number at a time: an hour's soak holds millions).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::WebError;
use crate::chaos::report::{per_second, Second};
use crate::check::history::{History, Operation, Status};
use crate::check::input::{self, InputError};

/// The longest run a replay opens: 30 days, in seconds.
const MAX_RUN_S: f64 = 30.0 * 86_400.0;

/// Operations one window answer holds at most.
pub const WINDOW_OPS: usize = 800;

/// A chaos run, loaded.
pub struct Replay {
    /// Where it was read from.
    pub dir: PathBuf,
    verdict: Value,
    faults: Vec<Value>,
    history: History,
    involved: BTreeSet<usize>,
    seconds: Vec<Second>,
}

impl Replay {
    /// Read `dir`'s verdict.json, faults.jsonl and history.jsonl (and
    /// involved.json, if there).
    pub fn load(dir: &Path) -> Result<Replay, WebError> {
        let file = |name: &str| dir.join(name);
        let text = input::read(&file("verdict.json")).map_err(|source| WebError::NotARun {
            dir: dir.to_path_buf(),
            source,
        })?;
        let json = |name: &str, e: serde_json::Error| InputError::json(&file(name), e.line(), &e);
        let verdict: Value = serde_json::from_str(&text).map_err(|e| json("verdict.json", e))?;
        let faults: Vec<Value> = input::json_lines(&file("faults.jsonl"))?;
        let mut ops: Vec<Operation> = input::json_lines(&file("history.jsonl"))?;
        ops.sort_by_key(|o| o.invoke);
        let history = History { ops };
        let involved = match std::fs::read_to_string(file("involved.json")) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| json("involved.json", e))?,
            Err(_) => BTreeSet::new(),
        };
        // The run's length sizes the per-second series: a number no run has
        // (a hand-edited file) is refused rather than allocated.
        let duration = verdict["duration_s"].as_f64().unwrap_or(0.0);
        if !(0.0..=MAX_RUN_S).contains(&duration) {
            return Err(InputError::Invalid {
                path: file("verdict.json"),
                message: format!(
                    "duration_s {duration} is not the length of a run (0 to {MAX_RUN_S} s)"
                ),
            }
            .into());
        }
        let secs = duration.ceil() as usize;
        let seconds = per_second(&history, secs);
        Ok(Replay {
            dir: dir.to_path_buf(),
            verdict,
            faults,
            history,
            involved,
            seconds,
        })
    }

    /// The run at a glance: verdict, faults, the per-second series and the
    /// operations involved in a violation, with their times.
    pub fn summary(&self) -> Value {
        let seconds: Vec<Value> = self
            .seconds
            .iter()
            .map(|s| json!({"done": s.done, "ok": s.ok, "p50": s.p50, "p99": s.p99}))
            .collect();
        let involved: Vec<Value> = self
            .history
            .ops
            .iter()
            .filter(|o| self.involved.contains(&o.id))
            .map(|o| self.op(o))
            .collect();
        json!({
            "dir": self.dir.display().to_string(),
            "verdict": self.verdict,
            "faults": self.faults,
            "seconds": seconds,
            "duration_ms": self.verdict["duration_s"].as_f64().unwrap_or(0.0) * 1000.0,
            "involved": involved,
            "ops": self.history.ops.len(),
        })
    }

    fn op(&self, o: &Operation) -> Value {
        let (status, result) = match &o.status {
            Status::Ok(r) => ("ok", serde_json::to_value(r).unwrap_or(Value::Null)),
            Status::Failed => ("failed", Value::Null),
            Status::Unknown => ("unknown", Value::Null),
        };
        json!({
            "id": o.id,
            // Client ids are random 64-bit numbers: text, so JavaScript
            // keeps every digit.
            "client": o.client.to_string(),
            "op": o.op.to_string(),
            "invoke_ms": o.invoke as f64 / 1000.0,
            "complete_ms": o.complete.map(|c| c as f64 / 1000.0),
            "status": status,
            "result": result,
            "involved": self.involved.contains(&o.id),
        })
    }

    /// The operations running at some time in `[from_ms, to_ms]`: all of
    /// them, or an even sample of [`WINDOW_OPS`] (the rest counted as left
    /// out) so a busy second still shows its whole width.
    pub fn window(&self, from_ms: f64, to_ms: f64) -> Value {
        let (from, to) = ((from_ms * 1000.0) as u64, (to_ms * 1000.0) as u64);
        let ops = &self.history.ops;
        // Sorted by invocation; an operation lasts at most a client's timeout,
        // far below a minute.
        let start = ops.partition_point(|o| o.invoke.saturating_add(60_000_000) < from);
        let running: Vec<&Operation> = ops[start..]
            .iter()
            .take_while(|o| o.invoke <= to)
            .filter(|o| o.complete.is_none_or(|c| c >= from))
            .collect();
        let stride = running.len().div_ceil(WINDOW_OPS).max(1);
        let out: Vec<Value> = running.iter().step_by(stride).map(|o| self.op(o)).collect();
        json!({"left_out": running.len() - out.len(), "ops": out})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_dir(history: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("verdict.json"),
            r#"{"duration_s": 3.0, "violations": []}"#,
        )
        .unwrap();
        std::fs::write(
            d.path().join("faults.jsonl"),
            "{\"at_ms\":500,\"phase\":\"start\",\"fault\":\"kill\",\"nodes\":[2],\"episode\":0}\n",
        )
        .unwrap();
        std::fs::write(d.path().join("history.jsonl"), history).unwrap();
        std::fs::write(d.path().join("involved.json"), "[1]").unwrap();
        d
    }

    const OPS: &str = concat!(
        r#"{"id":0,"client":1,"seq":1,"op":{"Put":{"key":"k","value":"a"}},"invoke":100000,"complete":200000,"status":{"status":"failed"}}"#,
        "\n",
        r#"{"id":1,"client":2,"seq":1,"op":{"Put":{"key":"k","value":"b"}},"invoke":1500000,"complete":2600000,"status":{"status":"unknown"}}"#,
        "\n"
    );

    #[test]
    fn a_window_holds_the_operations_running_in_it() {
        let d = run_dir(OPS);
        let Ok(r) = Replay::load(d.path()) else {
            // The op encoding is the history's own: if this sample does not
            // parse, say so with the error.
            panic!("{}", Replay::load(d.path()).err().unwrap());
        };
        let w = r.window(1000.0, 2000.0);
        let ids: Vec<u64> = w["ops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, vec![1], "{w}");
        assert_eq!(w["ops"][0]["involved"], true);
        assert_eq!(r.window(0.0, 3000.0)["ops"].as_array().unwrap().len(), 2);
        let s = r.summary();
        assert_eq!(s["seconds"].as_array().unwrap().len(), 3);
        assert_eq!(s["involved"][0]["id"], 1);
    }

    #[test]
    fn a_bad_line_is_named_by_file_line_and_column() {
        let d = run_dir("{\"id\": 0}\nnot json\n");
        let e = Replay::load(d.path()).err().unwrap().to_string();
        assert!(e.contains("history.jsonl:1:"), "{e}");
        let d = run_dir(OPS);
        std::fs::write(d.path().join("verdict.json"), r#"{"duration_s": 1e300}"#).unwrap();
        let e = Replay::load(d.path()).err().unwrap().to_string();
        assert!(e.contains("is not the length of a run"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = Replay::load(empty.path()).err().unwrap().to_string();
        assert!(
            e.contains("verdict.json") && e.contains("synod chaos"),
            "{e}"
        );
    }
}
