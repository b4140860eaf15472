//! `synod check FILE` as a user of Jepsen or porcupine meets it: histories
//! written to a temporary directory, the binary run on them, exit codes and
//! output checked.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use synod::check::history::{History, Status};
use synod::kv::{Op, OpResult};

mod support;

use support::{stderr, stdout, synod};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write history");
    p
}

fn check(file: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["check", file.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    synod(&args)
}

/// A Jepsen register history: 0 writes 1, 1 reads 1, 2 cas 1->2 (ok), 3
/// cas 5->6 (fails: did not happen), 4 writes 3 and times out, then 1 reads
/// `last` and a nemesis event in between.
fn jepsen(last: &str) -> String {
    format!(
        "{{:process 0, :type :invoke, :f :write, :value 1, :time 10}}\n\
         {{:process 0, :type :ok, :f :write, :value 1, :time 20}}\n\
         {{:process :nemesis, :type :info, :f :start-partition, :value [:isolated {{\"n1\" #{{\"n2\"}}}}], :time 25}}\n\
         {{:process 1, :type :invoke, :f :read, :value nil, :time 30}}\n\
         {{:process 1, :type :ok, :f :read, :value 1, :time 40}}\n\
         {{:process 2, :type :invoke, :f :cas, :value [1 2], :time 50}}\n\
         {{:process 3, :type :invoke, :f :cas, :value [5 6], :time 51}}\n\
         {{:process 2, :type :ok, :f :cas, :value [1 2], :time 60}}\n\
         {{:process 3, :type :fail, :f :cas, :value [5 6], :time 61, :error :mismatch}}\n\
         {{:process 4, :type :invoke, :f :write, :value 3, :time 70}}\n\
         {{:process 4, :type :info, :f :write, :value 3, :time 80, :error #error {{:cause \"timeout\"}}}}\n\
         {{:process 1, :type :invoke, :f :read, :value nil, :time 90}}\n\
         {{:process 1, :type :ok, :f :read, :value {last}, :time 100}}\n"
    )
}

#[test]
fn a_linearizable_jepsen_history_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    // 3: the :info write took effect; 2: it did not.
    for last in ["2", "3"] {
        let f = write(dir.path(), "h.edn", &jepsen(last));
        let o = check(&f, &[]);
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        let out = stdout(&o);
        assert!(
            out.contains("6 operations (Jepsen EDN), 1 key: 4 ok, 1 failed, 1 indeterminate"),
            "{out}"
        );
        assert!(out.contains("1 non-client events skipped"), "{out}");
        assert!(out.contains("\nlinearizable\n"), "{out}");
    }
}

#[test]
fn a_violation_exits_1_with_its_window() {
    let dir = tempfile::tempdir().unwrap();
    // 1 again after the cas to 2 (and 6 was never written: the cas failed).
    for last in ["1", "6"] {
        let f = write(dir.path(), "h.edn", &jepsen(last));
        let o = check(&f, &[]);
        assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
        let out = stdout(&o);
        assert!(out.contains("not linearizable: key \"register\""), "{out}");
        assert!(
            out.contains("smallest window that cannot be ordered"),
            "{out}"
        );
        assert!(
            out.contains("  line process invoked completed operation"),
            "{out}"
        );
        // The final read, invoked on line 12, is what cannot come next.
        assert!(
            out.contains(&format!(
                "none of these can come next: line 12 :read → {last}"
            )),
            "{out}"
        );
        assert_eq!(stderr(&o), "error: not linearizable: key \"register\"\n");
    }
    // The stale read's window: the cas that wrote 2 (line 6), then the read.
    let f = write(dir.path(), "h.edn", &jepsen("1"));
    let out = stdout(&check(&f, &[]));
    assert!(out.contains("key register, 50 to 100 (ns)"), "{out}");
    assert!(
        out.contains("  6    2       50      60        :cas [1 2] :ok\n"),
        "{out}"
    );
    assert!(
        out.contains("why: at most 1 can be ordered (line 6 :cas [1 2]), leaving the value 2;"),
        "{out}"
    );
}

#[test]
fn json_is_one_object_for_a_machine() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "h.edn", &jepsen("1"));
    let o = check(&f, &["--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    assert_eq!(v["verdict"], "not linearizable");
    assert_eq!(v["operations"], 6);
    assert_eq!(v["indeterminate"], 1);
    assert_eq!(v["time_unit"], "ns");
    assert_eq!(v["keys"][0]["key"], "register");
    assert_eq!(v["keys"][0]["verdict"], "not linearizable");
    let w = &v["window"];
    assert_eq!(
        (w["from"].as_u64(), w["to"].as_u64()),
        (Some(50), Some(100))
    );
    assert_eq!(w["stuck"], serde_json::json!([12]));
    let lines: Vec<u64> = w["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["line"].as_u64().unwrap())
        .collect();
    assert!(lines.contains(&6) && lines.contains(&12), "{lines:?}");
    let ok = check(&write(dir.path(), "g.edn", &jepsen("2")), &["--json"]);
    let v: Value = serde_json::from_str(&stdout(&ok)).unwrap();
    assert_eq!(v["verdict"], "linearizable");
    assert!(v.get("window").is_none());
}

#[test]
fn independent_keys_are_checked_apart() {
    let dir = tempfile::tempdir().unwrap();
    let text = "{:process 0, :type :invoke, :f :write, :value [:x 1]}\n\
                {:process 0, :type :ok, :f :write, :value [:x 1]}\n\
                {:process 1, :type :invoke, :f :read, :value [:y nil]}\n\
                {:process 1, :type :ok, :f :read, :value [:y 1]}\n\
                {:process 2, :type :invoke, :f :cas, :value [:x [1 2]]}\n\
                {:process 2, :type :ok, :f :cas, :value [:x [1 2]]}\n";
    let f = write(dir.path(), "k.edn", text);
    let o = check(&f, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    // :y was read as 1 but only :x was ever written.
    assert!(stdout(&o).contains("2 keys"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("not linearizable: key \":y\""),
        "{}",
        stdout(&o)
    );
    // Forced to one register, [:y 1] is a value nobody wrote either.
    let o = check(&f, &["--independent", "no"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("1 key"), "{}", stdout(&o));
    // A :key field works too.
    let text = "{:process 0, :type :invoke, :f :write, :key 7, :value 1}\n\
                {:process 0, :type :ok, :f :write, :key 7, :value 1}\n\
                {:process 1, :type :invoke, :f :read, :key 8, :value nil}\n\
                {:process 1, :type :ok, :f :read, :key 8, :value nil}\n";
    let o = check(&write(dir.path(), "f.edn", text), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("2 keys"));
}

#[test]
fn a_synod_history_is_read_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = History::new();
    let put = h.invoke(
        1,
        1,
        Op::Put {
            key: "k".into(),
            value: "a".into(),
        },
        0,
    );
    h.complete(put, 10, Status::Ok(OpResult::Done));
    let cas = h.invoke(
        2,
        1,
        Op::Cas {
            key: "k".into(),
            expect: Some("a".into()),
            new: "b".into(),
        },
        20,
    );
    // A cas that answered false observed a different value: but only a is
    // there.
    h.complete(cas, 30, Status::Ok(OpResult::Swapped(false)));
    let jsonl = |h: &History| -> String {
        h.ops
            .iter()
            .map(|o| serde_json::to_string(o).unwrap() + "\n")
            .collect()
    };
    let f = write(dir.path(), "history.jsonl", &jsonl(&h));
    let o = check(&f, &[]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("2 operations (synod jsonl)"), "{out}");
    assert!(out.contains("cas k a->b → unchanged"), "{out}");
    // With a write of c that may have happened in between, it is fine.
    let c = h.invoke(
        3,
        1,
        Op::Put {
            key: "k".into(),
            value: "c".into(),
        },
        15,
    );
    h.complete(c, 40, Status::Unknown);
    let f = write(dir.path(), "history.jsonl", &jsonl(&h));
    let o = check(&f, &["--format", "jsonl"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    // Read as EDN it is not a history.
    let o = check(&f, &["--format", "edn"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("history.jsonl:1:"), "{}", stderr(&o));
}

#[test]
fn bad_input_exits_2_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0 :type [}",
            "2:20: } where ] (opened at 2:19) should close",
        ),
        (
            "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :okay, :f :write}",
            "2:20: :type :okay is not :invoke, :ok, :fail or :info",
        ),
        (
            "{:process 0, :type :invoke, :f :txn, :value [[:r 1 nil]]}",
            "1:32: :f :txn is not :read, :write or :cas (synod checks registers)",
        ),
        (
            "{\"id\":0,\"client\":1}\n",
            "1:19: missing field",
        ),
    ];
    for (text, expected) in cases {
        let f = write(dir.path(), "bad.edn", text);
        let o = check(&f, &[]);
        assert_eq!(o.status.code(), Some(2), "{text}: {}", stdout(&o));
        let err = stderr(&o);
        assert!(
            err.starts_with(&format!("error: {}:{expected}", f.display())),
            "{text}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!err.contains("panicked"));
    }
    let o = synod(&["check", "/nonexistent/history.edn"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/nonexistent/history.edn"),
        "{}",
        stderr(&o)
    );
    let o = synod(&["check"]);
    assert_eq!(o.status.code(), Some(2), "FILE is required");
    let o = synod(&["check", "x", "--format", "yaml"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn out_of_budget_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "h.edn", &jepsen("2"));
    let o = check(&f, &["--budget", "3"]);
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains(
            "undecided: no violation found, but the search ran out of budget on key \"register\""
        ),
        "{}",
        stderr(&o)
    );
    let v: Value = serde_json::from_str(&stdout(&check(&f, &["--budget", "3", "--json"]))).unwrap();
    assert_eq!(v["verdict"], "undecided");
}

#[test]
fn generated_histories_decide_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    for (spec, code) in [("3000,seed=4", 0), ("3000,seed=4,bad", 1)] {
        let g = synod(&["check", "--generate", spec]);
        assert!(g.status.success());
        let f = write(dir.path(), "g.edn", &stdout(&g));
        let o = check(&f, &[]);
        assert_eq!(o.status.code(), Some(code), "{spec}: {}", stdout(&o));
        assert!(stdout(&o).contains("3000 operations (Jepsen EDN)"));
    }
}

#[test]
fn help_states_the_semantics() {
    let o = synod(&["check", "--help"]);
    let out = stdout(&o);
    for s in [
        ":fail         did not happen",
        "may take effect at any time after its invocation, or never;",
        "read of nil   the key was absent",
        "Exit codes: 0 linearizable; 1 not",
    ] {
        assert!(out.contains(s), "{s}: {out}");
    }
}
