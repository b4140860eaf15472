//! The command line as a user meets it: output, exit codes, errors.

use std::process::Command;

mod support;

use support::{stderr, stdout, synod};

#[test]
fn demo_three_users_tells_the_story() {
    let o = synod(&["demo", "three-users"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("Verdict: chosen \"1+1=3\""), "{out}");
    assert!(out.contains("User1's accept was refused by User2 and User3."));
}

#[test]
fn demo_late_joiner_tells_the_story() {
    let o = synod(&["demo", "late-joiner"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("by P2c it must propose \"Zhengzhou\""));
}

#[test]
fn sim_exit_codes() {
    let ok = synod(&["sim", "--seed", "3"]);
    assert_eq!(ok.status.code(), Some(0), "{}{}", stdout(&ok), stderr(&ok));
    assert!(stdout(&ok).contains("verdict: ok"));

    let broken = synod(&[
        "sim",
        "--acceptors",
        "3",
        "--proposers",
        "3",
        "--seeds",
        "40",
        "--break",
        "p2c",
    ]);
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        stdout(&broken).contains("replay: synod sim"),
        "{}",
        stdout(&broken)
    );

    let bad = synod(&["sim", "--break", "everything"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("unknown rule"), "{}", stderr(&bad));

    let bad = synod(&["sim", "--faults", "meteor"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("unknown fault `meteor`"));
}

#[test]
fn sim_trace_shows_messages() {
    let o = synod(&[
        "sim",
        "--acceptors",
        "3",
        "--proposers",
        "2",
        "--trace",
        "--faults",
        "none",
    ]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.contains("Prepare(") && out.contains("CHOSEN"), "{out}");
}

#[test]
fn commands_without_a_cluster_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["status"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("synod up"), "{}", stderr(&o));
    let o = synod(&["net", "--loss", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a probability"), "{}", stderr(&o));
}
