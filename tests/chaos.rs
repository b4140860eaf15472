//! `synod chaos` against real processes: a short run with every fault kind comes
//! out clean; each broken rule is caught; the report files exist and parse; the
//! same seed gives the same schedule.

mod support;

use support::Env;

#[test]
fn a_short_run_with_every_fault_is_clean_and_writes_its_report() {
    let env = Env::new("chaosok", 5);
    // Snapshots and compaction happen during the run, so the checkers see
    // writes whose slots are gone from every log by the end.
    env.edit(|c| c.snapshot_every = 200);
    let out = env.path("out");
    let evidence = env.path("evidence.jsonl");
    let (code, text) = env.chaos(&[
        "--duration",
        "10s",
        "--seed",
        "3",
        "--faults",
        "all",
        "--key-ops",
        "400",
        // The clients go on past the 10 s until the event this test
        // needs (compaction of the run's own slots), within a generous
        // bound, whatever the machine's speed.
        "--until-snapshot",
        "400",
        "--out",
        out.to_str().unwrap(),
        "--evidence",
        evidence.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("verdict: OK"), "{text}");
    // The files exist and parse.
    let verdict: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("verdict.json")).unwrap()).unwrap();
    for field in [
        "linearizable",
        "agreement",
        "lost_writes",
        "acknowledged_writes",
        "faults",
        "ops",
        "seed",
    ] {
        assert!(
            verdict.get(field).is_some(),
            "verdict.json lacks {field}: {verdict}"
        );
    }
    assert_eq!(verdict["outcome"], "OK");
    assert_eq!(verdict["linearizable"], true);
    assert_eq!(verdict["lost_writes"], 0);
    // Keys were retired and checked as the run went, every write was found,
    // slots were compared across nodes and digests at equal applied slots.
    assert!(verdict["keys_checked"].as_u64().unwrap() > 5, "{verdict}");
    assert_eq!(
        verdict["writes"]["found"], verdict["acknowledged_writes"],
        "{verdict}"
    );
    assert!(verdict["slots_compared"].as_u64().unwrap() > 0, "{verdict}");
    assert!(
        verdict["digests_compared"].as_u64().unwrap() > 0,
        "{verdict}"
    );
    // Every chosen slot was read before compaction dropped it (a reader per
    // node: one slow or paused node holds no other up), so every
    // acknowledged write was checked, none merely unverified.
    assert_eq!(verdict["unread_slots"], 0, "{verdict}");
    assert_eq!(verdict["unverified_writes"], 0, "{verdict}");
    assert_eq!(verdict["seed"], 3);
    // Some node's snapshot covers 400 slots or more, during the run: its logs
    // were cut at 200 or more (the margin is snapshot_every when that is
    // below 1,000). The run waited for it (--until-snapshot) up to its bound.
    let covered = (1..=5)
        .filter_map(|id| {
            synod::storage::snapshot::load(&env.run_dir().join(format!("node-{id}"))).unwrap()
        })
        .map(|s| s.slot)
        .max();
    assert!(
        covered >= Some(400),
        "no compaction during the run ({covered:?}): {text}"
    );
    assert!(
        verdict["acknowledged_writes"].as_u64().unwrap() > 0,
        "{verdict}"
    );
    // The history file holds exactly the operations the verdict counted.
    let history = std::fs::read_to_string(out.join("history.jsonl")).unwrap();
    assert_eq!(
        history.lines().count() as u64,
        verdict["ops"]["total"].as_u64().unwrap()
    );
    for line in history.lines() {
        let _: serde_json::Value = serde_json::from_str(line).unwrap();
    }
    let faults = std::fs::read_to_string(out.join("faults.jsonl")).unwrap();
    let kinds: Vec<String> = faults
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["fault"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(kinds.iter().any(|k| k.starts_with("kill")), "{kinds:?}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.starts_with("<!doctype html>")
            && html.contains("<svg")
            && html.contains("Fault timeline")
    );
    // The history the run wrote is one `synod check` reads, and agrees on.
    let h = out.join("history.jsonl");
    let o = env.synod(&["check", h.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{said}");
    assert!(said.contains("linearizable"), "{said}");
    planted::every_fault_is_caught(&evidence);
}

/// Mutation tests: the recorded observations of a real clean run, judged
/// again with one fault planted at a time. Each checker must name the fault
/// it exists for (a checker no test has seen fail is not a checker).
mod planted {
    use std::collections::{BTreeMap, HashMap};
    use std::path::Path;

    use synod::chaos::judge::{self, Event, Findings, JudgeConfig};
    use synod::check::history::{Operation, Status};
    use synod::kv::{Op, OpResult};
    use synod::paxos::{Ballot, Value};

    fn ops(events: &[Event]) -> impl Iterator<Item = (usize, &Operation)> {
        events.iter().enumerate().filter_map(|(i, e)| match e {
            Event::Op(o) => Some((i, o)),
            _ => None,
        })
    }

    fn judged(cfg: &JudgeConfig, events: Vec<Event>) -> Findings {
        judge::replay(cfg.clone(), events)
    }

    pub fn every_fault_is_caught(evidence: &Path) {
        let (cfg, events) = judge::load(evidence).unwrap();
        let clean = judged(&cfg, events.clone());
        assert!(
            clean.violations.is_empty() && clean.undecided.is_empty(),
            "the recorded run judged again: {:?} {:?}",
            clean.violations,
            clean.undecided
        );
        different_value(&cfg, &events);
        write_removed(&cfg, &events);
        stale_read(&cfg, &events);
        promise_down(&cfg, &events);
        digest_differs(&cfg, &events);
        slots_unread(&cfg, &events);
        let f = judge::replay(JudgeConfig { budget: 1, ..cfg }, events);
        assert!(
            f.violations.is_empty() && f.keys_undecided > 0,
            "budget 1: {:?}",
            f.undecided
        );
    }

    /// A second node's value for a slot replaced.
    fn different_value(cfg: &JudgeConfig, events: &[Event]) {
        let mut events = events.to_vec();
        let mut first = BTreeMap::new();
        let mut planted = None;
        let half = events.len() / 2;
        'find: for (i, e) in events.iter_mut().enumerate() {
            if let Event::Log { node, entries, .. } = e {
                for (slot, value) in entries.iter_mut() {
                    match first.get(slot) {
                        Some(&other) if other != *node && i > half => {
                            *value = Value::Text("planted".into());
                            planted = Some((*slot, other, *node));
                            break 'find;
                        }
                        Some(_) => {}
                        None => {
                            first.insert(*slot, *node);
                        }
                    }
                }
            }
        }
        let (slot, a, b) = planted.expect("a slot read from two nodes");
        let f = judged(cfg, events);
        let want = format!("agreement: slot {slot}: node {a} learned");
        assert!(
            f.violations
                .iter()
                .any(|v| v.starts_with(&want)
                    && v.contains(&format!("node {b} learned \"planted\""))),
            "{want}: {:?}",
            f.violations
        );
    }

    /// An acknowledged write's command taken out of every slot read.
    fn write_removed(cfg: &JudgeConfig, events: &[Event]) {
        let mut events = events.to_vec();
        let (_, op) = ops(&events)
            .filter(|(_, o)| matches!((&o.op, &o.status), (Op::Put { .. }, Status::Ok(_))))
            .nth(50)
            .expect("acknowledged puts");
        let (ids, what) = ((op.client, op.seq), op.op.to_string());
        let mut removed = 0;
        for e in events.iter_mut() {
            if let Event::Log { entries, .. } = e {
                for (_, v) in entries.iter_mut() {
                    if let Value::Batch(cmds) = v {
                        let n = cmds.len();
                        cmds.retain(|c| (c.client, c.seq) != ids);
                        removed += n - cmds.len();
                    }
                }
            }
        }
        assert!(removed > 0);
        let f = judged(cfg, events);
        assert_eq!(f.writes.lost, 1, "{:?}", f.writes);
        assert!(
            f.violations
                .iter()
                .any(|v| v.starts_with("lost write") && v.contains(&what)),
            "{what}: {:?}",
            f.violations
        );
    }

    /// A read made to return a value overwritten before it began.
    fn stale_read(cfg: &JudgeConfig, events: &[Event]) {
        let mut events = events.to_vec();
        let mut puts: HashMap<String, Vec<&Operation>> = HashMap::new();
        for (_, o) in ops(&events) {
            if let (Op::Put { key, .. }, Status::Ok(_)) = (&o.op, &o.status) {
                puts.entry(key.clone()).or_default().push(o);
            }
        }
        let mut plant = None;
        for (i, g) in ops(&events) {
            let (Op::Get { key }, Status::Ok(OpResult::Value(seen))) = (&g.op, &g.status) else {
                continue;
            };
            let Some(ps) = puts.get(key) else { continue };
            let before = |a: &Operation, b: u64| a.complete.is_some_and(|c| c < b);
            let old = ps.iter().find(|p1| {
                ps.iter()
                    .any(|p2| before(p1, p2.invoke) && before(p2, g.invoke))
            });
            if let Some(Op::Put { value, .. }) = old.map(|p| &p.op) {
                if seen.as_ref() != Some(value) {
                    plant = Some((i, value.clone(), key.clone()));
                    break;
                }
            }
        }
        let (i, value, key) = plant.expect("a read after two puts");
        if let Event::Op(g) = &mut events[i] {
            g.status = Status::Ok(OpResult::Value(Some(value)));
        }
        let f = judged(cfg, events);
        let want = format!("not linearizable: key {key:?}");
        assert!(
            f.violations.iter().any(|v| v.starts_with(&want)),
            "{want}: {:?}",
            f.violations
        );
        assert!(!f.involved.is_empty());
    }

    /// A status answer whose promise is below one the node gave before.
    fn promise_down(cfg: &JudgeConfig, events: &[Event]) {
        let mut events = events.to_vec();
        let (i, node, promised) = events
            .iter()
            .enumerate()
            .find_map(|(i, e)| match e {
                Event::Status { node, promised, .. } if *promised > Ballot::ZERO => {
                    Some((i, *node, *promised))
                }
                _ => None,
            })
            .expect("a promise");
        events.insert(
            i + 1,
            Event::Status {
                node,
                at: 0,
                promised: Ballot {
                    round: promised.round - 1,
                    node: promised.node,
                },
                applied: 0,
                digest: 0,
                conflicts: 0,
                first_conflicts: vec![],
            },
        );
        let f = judged(cfg, events);
        let want = format!("promise went down: node {node}'s acceptor had promised {promised}");
        assert!(
            f.violations.iter().any(|v| v.starts_with(&want)),
            "{want}: {:?}",
            f.violations
        );
    }

    /// A node's state digest changed where another reported the same slot.
    fn digest_differs(cfg: &JudgeConfig, events: &[Event]) {
        let mut events = events.to_vec();
        let mut by_applied = HashMap::new();
        let mut plant = None;
        for (i, e) in events.iter().enumerate() {
            if let Event::Status { node, applied, .. } = e {
                match by_applied.get(applied) {
                    Some(&other) if other != *node && *applied > 0 => {
                        plant = Some((i, other, *node));
                        break;
                    }
                    Some(_) => {}
                    None => {
                        by_applied.insert(*applied, *node);
                    }
                }
            }
        }
        let (i, a, b) = plant.expect("two nodes at one applied slot");
        if let Event::Status { digest, .. } = &mut events[i] {
            *digest ^= 1;
        }
        let f = judged(cfg, events);
        let want = format!("state: nodes {a} and {b} applied");
        assert!(
            f.violations.iter().any(|v| v.starts_with(&want)),
            "{want}: {:?}",
            f.violations
        );
    }

    /// Slots that no reader got before every node compacted them: the writes
    /// there are unverified, and the run is inconclusive, not OK.
    fn slots_unread(cfg: &JudgeConfig, events: &[Event]) {
        let mut events = events.to_vec();
        let (lo, hi) = events
            .iter()
            .skip(events.len() / 2)
            .find_map(|e| match e {
                Event::Log { entries, .. } if entries.len() > 10 => {
                    Some((entries[0].0, entries[entries.len() - 1].0))
                }
                _ => None,
            })
            .expect("a page of slots");
        for e in events.iter_mut() {
            if let Event::Log { entries, .. } = e {
                entries.retain(|(s, _)| *s < lo || *s > hi);
            }
        }
        let f = judged(cfg, events);
        assert!(f.violations.is_empty(), "{:?}", f.violations);
        assert_eq!(f.unread_slots, hi - lo + 1);
        assert!(f.writes.unverified > 0, "{:?}", f.writes);
        assert!(
            f.undecided.iter().any(|u| u.contains("unverified")),
            "{:?}",
            f.undecided
        );
    }
}

/// Run chaos with `rule` off until a seed catches it (at most `tries` seeds);
/// the run that did, and its `--out` directory.
fn caught(rule: &str, secs: u32, tries: u64) -> (Env, std::path::PathBuf) {
    let mut report = String::new();
    for seed in 1..=tries {
        let env = Env::new(&format!("br{rule}{seed}"), 5);
        let out = env.path("out");
        let (code, text) = env.chaos(&[
            "--duration",
            &format!("{secs}s"),
            "--seed",
            &seed.to_string(),
            "--break",
            rule,
            "--out",
            out.to_str().unwrap(),
        ]);
        if code == Some(1) && text.contains("VIOLATION") {
            eprintln!("--break {rule}: caught with seed {seed}");
            // `synod check` reads the history it wrote and agrees with the
            // run's own verdict on linearizability.
            let verdict: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out.join("verdict.json")).unwrap())
                    .unwrap();
            let h = out.join("history.jsonl");
            let o = env.synod(&["check", h.to_str().unwrap()]);
            let lin = verdict["linearizable"].as_bool().unwrap();
            assert_eq!(
                o.status.code(),
                Some(if lin { 0 } else { 1 }),
                "{}",
                String::from_utf8_lossy(&o.stdout)
            );
            return (env, out);
        }
        assert_ne!(code, Some(2), "{text}");
        report = text;
    }
    panic!("--break {rule} was not caught in {tries} seeds of {secs} s; last run:\n{report}");
}

#[test]
fn without_persist_the_full_restart_loses_acknowledged_writes() {
    let (env, out) = caught("persist", 5, 2);
    // The replay page's API shows the violation and the operations in it.
    let w = support::web_with(&env, &["--replay", out.to_str().unwrap()]);
    let (code, body) = support::http(w.port, "GET", "/api/replay", &[], "");
    assert_eq!(code, 200, "{body}");
    let run: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        !run["verdict"]["violations"].as_array().unwrap().is_empty(),
        "{body}"
    );
    let involved = run["involved"].as_array().unwrap();
    assert!(!involved.is_empty(), "{body}");
    let first = &involved[0];
    let t = first["invoke_ms"].as_f64().unwrap();
    let (code, body) = support::http(
        w.port,
        "GET",
        &format!("/api/replay/ops?from_ms={}&to_ms={}", t - 1.0, t + 1.0),
        &[],
        "",
    );
    assert_eq!(code, 200, "{body}");
    let window: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        window["ops"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == first["id"] && o["involved"] == true),
        "{body}"
    );
    let (code, _) = support::http(w.port, "GET", "/api/replay/ops?from_ms=5&to_ms=1", &[], "");
    assert_eq!(code, 400);
}

#[test]
fn without_p2c_a_new_leader_overwrites_chosen_values() {
    caught("p2c", 12, 5);
}

/// The random schedule almost never lets two leaders propose in one slot
/// (pre-vote and check-quorum keep a second leader from rising beside the
/// first); `--break promise` gets the schedule that does: the leader's
/// Accepts held back across a pause past an election. The old ballot's
/// Accepts then win a majority in slots the new leader already chose, and
/// the old leader's learner reports the slot chosen twice.
#[test]
fn without_promise_a_stale_leaders_accepts_choose_a_second_value() {
    let (_env, out) = caught("promise", 8, 3);
    let verdict = std::fs::read_to_string(out.join("verdict.json")).unwrap();
    assert!(verdict.contains("chosen twice"), "{verdict}");
    assert!(verdict.contains("stale leader"), "{verdict}");
}

#[test]
fn the_same_seed_gives_the_same_schedule() {
    let env = Env::new("plan", 5);
    let (_, a) = env.chaos(&["--plan", "--seed", "9", "--duration", "60s"]);
    let (_, b) = env.chaos(&["--plan", "--seed", "9", "--duration", "60s"]);
    let (_, c) = env.chaos(&["--plan", "--seed", "10", "--duration", "60s"]);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.lines().count() > 20, "{a}");
}

/// A check that cannot be decided is never called OK: with a search budget
/// of one step no key can be decided, and the run ends INCONCLUSIVE, exit 3.
#[test]
fn an_undecided_check_makes_the_run_inconclusive() {
    let env = Env::new("chaosundec", 3);
    let (code, text) = env.chaos(&[
        "--duration",
        "3s",
        "--faults",
        "pause",
        "--check-budget",
        "1",
    ]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("verdict: INCONCLUSIVE"), "{text}");
    assert!(
        text.contains("could not decide linearizability of key"),
        "{text}"
    );
}

#[test]
fn a_run_over_resp_is_clean_too() {
    let env = Env::new("chaosresp", 3);
    env.with_redis();
    env.edit(|c| c.snapshot_every = 200);
    let (code, text) = env.chaos(&[
        "--duration",
        "8s",
        "--seed",
        "5",
        "--faults",
        "kill,pause,partition,loss",
        "--client",
        "redis",
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("verdict: OK"), "{text}");
    assert!(text.contains(" 0 lost, 0 unverified of"), "{text}");
}

#[test]
fn membership_changes_mixed_with_every_fault_are_judged_clean() {
    // Jepsen's etcd nemesis: grow adds an empty node (caught up, promoted),
    // shrink removes a voter through the leader, stops it and wipes its data;
    // the final configuration must be the one the nemesis intended. Small
    // snapshots, so a node added late catches up by snapshot.
    let env = Env::new("chaosmembers", 3);
    env.edit(|c| c.snapshot_every = 200);
    let out = env.path("out");
    let (code, text) = env.chaos(&[
        "--duration",
        "14s",
        "--seed",
        "2",
        "--faults",
        "all,membership",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("verdict: OK"), "{text}");
    assert!(text.contains("as the nemesis intended"), "{text}");
    let verdict: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("verdict.json")).unwrap()).unwrap();
    let line = verdict["membership"].as_str().expect("a membership line");
    let changes: u64 = line
        .strip_prefix("membership: ")
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("changes counted");
    assert!(
        changes >= 3,
        "a grow (two changes) and a shrink at least: {line}"
    );
    let faults = std::fs::read_to_string(out.join("faults.jsonl")).unwrap();
    assert!(
        faults.contains("grow: add node 4") && faults.contains("shrink"),
        "{faults}"
    );
}
