//! `synod bench` against a real cluster: rows that parse, and failover timing.
//! (Speed itself is measured, never asserted: these machines are shared.)

mod support;

use support::Env;

#[test]
fn bench_reports_rows_as_json() {
    let env = Env::new("bench", 3);
    env.up();
    let out = env.ok(&[
        "bench",
        "--clients",
        "1,4",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--reads",
        "0.5",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, clients) in rows.iter().zip([1, 4]) {
        assert_eq!(row["system"], "synod");
        assert_eq!(row["clients"], clients);
        assert_eq!(row["value_size"], 100);
        let f = |k: &str| row[k].as_f64().unwrap();
        // Throughput is the operations counted over the 1 s measured.
        let ops = row["ops"].as_u64().unwrap() as f64;
        assert!(
            ops > 0.0 && (f("ops_per_s") - ops).abs() <= 0.05 * ops,
            "{row}"
        );
        // Quantiles in order, and errors counted (none on a healthy cluster).
        assert!(
            f("p50_ms") <= f("p95_ms") && f("p95_ms") <= f("p99_ms"),
            "{row}"
        );
        assert!(f("p99_ms") <= f("p999_ms"), "{row}");
        assert_eq!(row["errors"], 0, "{row}");
        assert!(f("cpu_s") >= 0.0, "{row}");
    }
    // The writes happened, with values of the size asked, where the bench
    // said: bench0..bench999 in the replicated map.
    let value = (0..1000)
        .map(|k| env.ok(&["get", &format!("bench{k}")]))
        .find(|v| !v.is_empty())
        .expect("some bench key was written");
    assert_eq!(value, format!("{}\n", "v".repeat(100)));
    let text = env.ok(&[
        "bench",
        "--clients",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "0s",
    ]);
    assert!(text.contains("ops/s") && text.contains("synod"), "{text}");
}

#[test]
fn failover_and_bring_up_are_timed() {
    let env = Env::new("unused", 1);
    let out = env.ok(&["bench", "--failover", "--kills", "2", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["bringup_s"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["failover_s"].as_array().unwrap().len(), 2, "{v}");
    assert!(v["failover_s"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x.as_f64().unwrap() > 0.0));
}

#[test]
fn against_etcd_says_how_to_install_it_when_missing() {
    let env = Env::new("noetcd", 1);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["bench", "--against", "etcd", "--duration", "1s"])
        .current_dir(env.root())
        .env("SYNOD_SEARCH_PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("apt-get install etcd-server"));
}

/// Race synod with `rival` on a short mixed workload, when the rival is
/// installed; required when SYNOD_REQUIRE_TOOLS=1, as `.ci/run` sets.
fn race(rival: &str, installed: bool, package: &str) {
    if !installed {
        assert!(
            std::env::var("SYNOD_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{rival} is required here but missing"
        );
        eprintln!("skipped: {rival} not installed (apt-get install -y {package})");
        return;
    }
    let env = Env::new(&format!("with{rival}"), 1);
    let out = env.ok(&[
        "bench",
        "--against",
        rival,
        "--clients",
        "2",
        "--duration",
        "2s",
        "--warmup",
        "0",
        "--reads",
        "0.5",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v["rows"].as_array().unwrap();
    for system in ["synod", rival] {
        let row = rows.iter().find(|r| r["system"] == system).unwrap();
        assert!(row["ops"].as_u64().unwrap() > 10, "{row}");
        assert_eq!(row["errors"], 0, "{row}");
        assert_eq!(row["reads"], 0.5, "{row}");
        // The servers did the work: CPU was spent per operation.
        assert!(row["cpu_s_per_kop"].as_f64().unwrap() > 0.0, "{row}");
    }
}

/// Against a real 3-node etcd over its gRPC API (Debian's etcd-server).
#[test]
fn against_etcd_over_grpc_both_rows_measure_real_work() {
    race("etcd", synod::bench::etcd::find().is_ok(), "etcd-server");
}

/// Against one redis-server with appendfsync always (Debian's redis-server).
#[test]
fn against_redis_both_rows_measure_real_work() {
    race("redis", synod::bench::redis::find().is_ok(), "redis-server");
}

/// `--crossings`: perf counts each process's calls per operation (Debian's
/// linux-perf, as root); required when SYNOD_REQUIRE_TOOLS=1.
#[test]
fn crossings_count_each_process_per_operation() {
    if let Err(why) = synod::bench::crossings::check() {
        assert!(
            std::env::var("SYNOD_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "perf is required here: {why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    let env = Env::new("crossings", 3);
    env.up();
    let args = [
        "bench",
        "--clients",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "0s",
    ];
    let out = env.ok(&[&args[..], &["--crossings", "--json"]].concat());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let row = &v["rows"][0];
    let crossings = row["crossings"].as_array().unwrap();
    let names: Vec<&str> = crossings
        .iter()
        .map(|c| c["process"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["synod 1", "synod 2", "synod 3", "clients"], "{row}");
    let per_op = |i: usize, k: &str| crossings[i]["per_op"][k].as_f64().unwrap();
    for node in 0..3 {
        // Every node's acceptor syncs its votes, however batched.
        assert!(per_op(node, "fsync") > 0.0, "{row}");
        assert!(per_op(node, "syscalls") >= per_op(node, "fsync"), "{row}");
    }
    // A client sends each request and reads each answer, and syncs nothing.
    assert!(
        per_op(3, "write") >= 0.9 && per_op(3, "read") >= 0.9,
        "{row}"
    );
    assert_eq!(per_op(3, "fsync"), 0.0, "{row}");
    let text = env.ok(&[&args[..], &["--crossings"]].concat());
    assert!(text.contains("(per operation)"), "{text}");
}
