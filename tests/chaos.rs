//! `synod chaos` against real processes: a short run with every fault kind comes
//! out clean; each broken rule is caught; the report files exist and parse; the
//! same seed gives the same schedule.

mod support;

use support::Env;

fn chaos(env: &Env, args: &[&str]) -> (Option<i32>, String) {
    let file = env.file.to_string_lossy().into_owned();
    let mut all = vec!["chaos", file.as_str()];
    all.extend_from_slice(args);
    let o = env.synod(&all);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code(), text)
}

#[test]
fn a_short_run_with_every_fault_is_clean_and_writes_its_report() {
    let env = Env::new("chaosok", 5);
    // Snapshots and compaction happen during the run, so the checkers see
    // writes whose slots are gone from every log by the end.
    env.set("snapshot_every: 200,");
    let out = env.path("out");
    let (code, text) = chaos(
        &env,
        &[
            "--duration",
            "10s",
            "--seed",
            "3",
            "--faults",
            "all",
            "--out",
            out.to_str().unwrap(),
        ],
    );
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
    assert_eq!(verdict["linearizable"], true);
    assert_eq!(verdict["lost_writes"], 0);
    // Every chosen slot was read before compaction dropped it (a reader per
    // node: one slow or paused node holds no other up), so every
    // acknowledged write was checked, none merely unverified.
    assert_eq!(verdict["unread_slots"], 0, "{verdict}");
    assert_eq!(verdict["unverified_writes"], 0, "{verdict}");
    assert_eq!(verdict["seed"], 3);
    // Some node's snapshot covers 400 slots or more: its logs were cut at
    // 200 or more (the margin is snapshot_every when that is below 1,000).
    let covered = (1..=5)
        .filter_map(|id| std::fs::read(env.run_dir().join(format!("node-{id}/snapshot.bin"))).ok())
        .map(|b| u64::from_le_bytes(b[12..20].try_into().unwrap()))
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
}

/// Run chaos with `rule` off until a seed catches it (at most `tries` seeds);
/// the run that did, and its `--out` directory.
fn caught(rule: &str, secs: u32, tries: u64) -> (Env, std::path::PathBuf) {
    let mut report = String::new();
    for seed in 1..=tries {
        let env = Env::new(&format!("br{rule}{seed}"), 5);
        let out = env.path("out");
        let (code, text) = chaos(
            &env,
            &[
                "--duration",
                &format!("{secs}s"),
                "--seed",
                &seed.to_string(),
                "--break",
                rule,
                "--out",
                out.to_str().unwrap(),
            ],
        );
        if code == Some(1) && text.contains("VIOLATION") {
            eprintln!("--break {rule}: caught with seed {seed}");
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

#[test]
fn the_same_seed_gives_the_same_schedule() {
    let env = Env::new("plan", 5);
    let (_, a) = chaos(&env, &["--plan", "--seed", "9", "--duration", "60s"]);
    let (_, b) = chaos(&env, &["--plan", "--seed", "9", "--duration", "60s"]);
    let (_, c) = chaos(&env, &["--plan", "--seed", "10", "--duration", "60s"]);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.lines().count() > 20, "{a}");
}

#[test]
fn a_run_over_resp_is_clean_too() {
    let env = Env::new("chaosresp", 3);
    env.with_redis("snapshot_every: 200,");
    let (code, text) = chaos(
        &env,
        &[
            "--duration",
            "8s",
            "--seed",
            "5",
            "--faults",
            "kill,pause,partition,loss",
            "--client",
            "redis",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("verdict: OK"), "{text}");
    assert!(text.contains("lost writes 0 of"), "{text}");
    assert!(!text.contains("UNVERIFIED"), "{text}");
}
