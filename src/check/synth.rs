//! Jepsen-like histories of one compare-and-set register, made up from a seed,
//! for measuring and testing the checker (`synod check --generate SPEC`, hidden).
//!
//! Processes run reads, writes and cas operations (a third each, values from a
//! small domain, as Jepsen's cas-register workload does: repeated values are the
//! hard case) against a real linearizable register: each operation takes effect
//! at a random instant inside its own interval, and latencies are random, so
//! operations overlap. A cas whose compare does not match is `:fail`, as Jepsen
//! records it. A share of the writes end `:info` (a timeout): half of them took
//! effect, half never did, and their process continues under a new id, as a
//! Jepsen process does. With `bad`, one read near the middle returns a value no
//! one ever wrote, so the history is certainly not linearizable.

use std::fmt::Write as _;

use crate::rng::Rng;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct Synth {
    /// Operations.
    pub ops: usize,
    /// Concurrent processes.
    pub processes: usize,
    /// Values are 0 to `values - 1`.
    pub values: u64,
    /// Share of writes that end `:info`.
    pub info: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Plant one read of a value never written.
    pub bad: bool,
}

impl Default for Synth {
    fn default() -> Self {
        Synth {
            ops: 10_000,
            processes: 5,
            values: 5,
            info: 0.05,
            seed: 1,
            bad: false,
        }
    }
}

impl Synth {
    /// Parse `N[,p=P][,v=V][,info=F][,seed=S][,bad]`, e.g. `10000,p=10,seed=3,bad`.
    // `check --synth`'s clap value parser: `Result<_, String>` is clap's idiom.
    pub fn parse(spec: &str) -> Result<Synth, String> {
        let mut s = Synth::default();
        for (i, part) in spec.split(',').map(str::trim).enumerate() {
            let bad =
                || format!("{part:?} in {spec:?}: write N[,p=P][,v=V][,info=F][,seed=S][,bad]");
            match part.split_once('=') {
                None if i == 0 => s.ops = part.parse().map_err(|_| bad())?,
                None if part == "bad" => s.bad = true,
                Some(("p", n)) => s.processes = n.parse().map_err(|_| bad())?,
                Some(("v", n)) => s.values = n.parse().map_err(|_| bad())?,
                Some(("info", n)) => s.info = n.parse().map_err(|_| bad())?,
                Some(("seed", n)) => s.seed = n.parse().map_err(|_| bad())?,
                _ => return Err(bad()),
            }
        }
        if s.processes == 0 || s.values == 0 || !(0.0..=1.0).contains(&s.info) {
            return Err(format!("{spec:?}: p and v must be above 0, info in 0..1"));
        }
        Ok(s)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum F {
    Read,
    Write(u64),
    Cas(u64, u64),
}

struct Call {
    process: u64,
    f: F,
    invoke: u64,
    complete: u64,
    /// When it took effect; `None`: never.
    point: Option<u64>,
    info: bool,
    /// A read's result, or whether a cas swapped.
    read: Option<u64>,
    swapped: bool,
}

/// The history as Jepsen EDN, one event a line, ordered by `:time` (ns).
pub fn edn(s: &Synth) -> String {
    let calls = run(s);
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * calls.len());
    for (i, c) in calls.iter().enumerate() {
        events.push((c.invoke, false, i));
        events.push((c.complete, true, i));
    }
    events.sort();
    let mut out = String::with_capacity(events.len() * 64);
    for (index, &(time, done, i)) in events.iter().enumerate() {
        let c = &calls[i];
        let (kind, value) = match (c.f, done) {
            (F::Read, false) => (":invoke", "nil".to_string()),
            (F::Read, true) => (":ok", c.read.map_or("nil".into(), |v| v.to_string())),
            (F::Write(v), d) => (kind(d, c.info, true), v.to_string()),
            (F::Cas(a, b), d) => (kind(d, false, c.swapped), format!("[{a} {b}]")),
        };
        let f = match c.f {
            F::Read => ":read",
            F::Write(_) => ":write",
            F::Cas(..) => ":cas",
        };
        let _ = writeln!(
            out,
            "{{:type {kind}, :f {f}, :value {value}, :process {}, :time {time}, :index {index}}}",
            c.process
        );
    }
    out
}

fn kind(done: bool, info: bool, ok: bool) -> &'static str {
    match (done, info, ok) {
        (false, _, _) => ":invoke",
        (true, true, _) => ":info",
        (true, false, true) => ":ok",
        (true, false, false) => ":fail",
    }
}

/// The calls, their times and their results.
fn run(s: &Synth) -> Vec<Call> {
    let mut rng = Rng::new(s.seed);
    let p = s.processes as u64;
    // Per process slot: its current id and when it is free again (ns).
    let mut slots: Vec<(u64, u64)> = (0..p).map(|i| (i, rng.range(0, 100_000))).collect();
    let mut calls = Vec::with_capacity(s.ops);
    while calls.len() < s.ops {
        let slot = (0..slots.len())
            .min_by_key(|&i| slots[i].1)
            .expect("at least one process");
        let (process, free) = slots[slot];
        let invoke = free;
        let latency = 50_000 + rng.exp(1_000_000.0) as u64;
        let complete = invoke + latency;
        let f = match rng.below(3) {
            0 => F::Read,
            1 => F::Write(rng.range(0, s.values - 1)),
            _ => F::Cas(rng.range(0, s.values - 1), rng.range(0, s.values - 1)),
        };
        let info = matches!(f, F::Write(_)) && rng.chance(s.info);
        let takes_effect = !info || rng.chance(0.5);
        let point = takes_effect.then(|| rng.range(invoke, complete));
        calls.push(Call {
            process,
            f,
            invoke,
            complete,
            point,
            info,
            read: None,
            swapped: false,
        });
        // A process whose operation ended :info is replaced by a new one.
        let next = if info { process + p } else { process };
        slots[slot] = (next, complete + 1 + rng.range(0, 200_000));
    }
    apply(&mut calls);
    if s.bad {
        let half = calls.len() / 2;
        if let Some(c) = calls[half..].iter_mut().find(|c| c.f == F::Read) {
            c.read = Some(s.values);
        }
    }
    calls
}

/// Replay the calls at their instants against one register.
fn apply(calls: &mut [Call]) {
    let mut order: Vec<(u64, usize)> = calls
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.point.map(|t| (t, i)))
        .collect();
    order.sort();
    let mut register: Option<u64> = None;
    for (_, i) in order {
        let c = &mut calls[i];
        match c.f {
            F::Read => c.read = register,
            F::Write(v) => register = Some(v),
            F::Cas(a, b) => {
                c.swapped = register == Some(a);
                if c.swapped {
                    register = Some(b);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(Synth::parse("200").unwrap().ops, 200);
        let s = Synth::parse("10000, p=10, v=3, info=0.1, seed=7, bad").unwrap();
        assert_eq!(
            s,
            Synth {
                ops: 10_000,
                processes: 10,
                values: 3,
                info: 0.1,
                seed: 7,
                bad: true
            }
        );
        assert!(Synth::parse("x").is_err());
        assert!(Synth::parse("10,p=0").is_err());
        assert!(Synth::parse("10,q=1").is_err());
    }

    #[test]
    fn the_same_seed_gives_the_same_history() {
        let s = Synth {
            ops: 300,
            ..Synth::default()
        };
        assert_eq!(edn(&s), edn(&s));
        let lines = edn(&s);
        assert_eq!(lines.lines().count(), 600);
        assert!(lines.contains(":info"), "some writes end :info");
        assert!(lines.contains(":fail"), "some cas fail to compare");
    }
}
