//! Reading a history from a file: synod's own `history.jsonl` (one
//! [`Operation`] as JSON a line, as `synod chaos --out` writes it) or a Jepsen
//! history in EDN (one map an event, as Knossos, porcupine's Jepsen adapter and
//! Elle read it).
//!
//! Jepsen events pair up by `:process`: an `:invoke`, then its `:ok`, `:fail` or
//! `:info`. They map onto the key-value model as
//!
//! | Jepsen | synod |
//! |---|---|
//! | `:f :read`, `:ok` with `:value v` | `Get`, result `v` (`nil`: absent) |
//! | `:f :write`, `:value v` | `Put v` (`nil`: `Delete`) |
//! | `:f :cas`, `:value [from to]`, `:ok` | `Cas from→to` that swapped |
//! | `:fail` | did not happen |
//! | `:info`, or no completion | may take effect at any time after its invocation, or never |
//!
//! A value is its EDN text (`3`, `:a`, `"x"`). Independent keys are
//! `:value [k v]` tuples (`[k [from to]]` for a cas, Jepsen's
//! `independent/tuple`) or a `:key` field. Events whose `:process` is not an
//! integer (`:nemesis`) are not client operations and are skipped. Times are
//! `:time` (nanoseconds) when every event has one, else the event's position in
//! the file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::edn::{self, Edn, Node, Pos};
use super::history::{History, Operation, Status};
use crate::kv::{Op, OpResult};

/// The key every operation of a single-register history gets.
pub const REGISTER: &str = "register";

/// A history file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// synod's `history.jsonl`.
    Jsonl,
    /// Jepsen's EDN.
    Edn,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Jsonl => "synod jsonl",
            Format::Edn => "Jepsen EDN",
        })
    }
}

/// Whether a Jepsen history's values are `[key value]` tuples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Independent {
    /// Tuples if any read or write has a two-element vector as its value, or
    /// any cas a `[k [from to]]`.
    Auto,
    /// Every value is a `[key value]` tuple.
    Yes,
    /// One register; a vector is a value like any other.
    No,
}

/// How to read a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    /// The format; `None`: tell by the content (a line that starts `{"` is JSON).
    pub format: Option<Format>,
    /// Jepsen's independent keys.
    pub independent: Independent,
}

/// What the times of a history count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// As recorded in synod's history (µs since the start in chaos runs,
    /// virtual ms in the simulator).
    Recorded,
    /// Jepsen's `:time`, nanoseconds.
    Nanos,
    /// The event's position among the file's events (from 0).
    Events,
}

/// A history read from a file.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The operations, in invocation order (`ops[i].id == i`).
    pub history: History,
    /// The format it was read as.
    pub format: Format,
    /// By operation id, the file line of its invocation.
    pub lines: Vec<usize>,
    /// What the times count.
    pub clock: Clock,
    /// Events skipped as not client operations (`:process :nemesis`).
    pub skipped: usize,
    /// True if keys came from `[k v]` tuples or a `:key` field.
    pub keyed: bool,
}

/// A file that cannot be read: a history, or one of a chaos run's files.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Something at a place in the file.
    #[error("{}:{at}: {message}", path.display())]
    At {
        /// The file.
        path: PathBuf,
        /// Line and column.
        at: Pos,
        /// What is wrong, and what was expected.
        message: String,
    },
    /// The file as a whole is not what it should be.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl InputError {
    /// Line `line` of `path` is not the JSON it should be.
    pub fn json(path: &Path, line: usize, e: &serde_json::Error) -> Self {
        InputError::At {
            path: path.into(),
            at: Pos {
                line,
                col: e.column(),
            },
            message: e.to_string(),
        }
    }
}

/// The text of `path`.
pub fn read(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|source| InputError::Io {
        path: path.into(),
        source,
    })
}

/// Every line of `path` as JSON (`history.jsonl`, `faults.jsonl`).
pub fn json_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, InputError> {
    read(path)?
        .lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| InputError::json(path, i + 1, &e)))
        .collect()
}

/// Read the history in `path`.
pub fn load(path: &Path, opts: &ReadOptions) -> Result<Loaded, InputError> {
    let bytes = std::fs::read(path).map_err(|source| InputError::Io {
        path: path.into(),
        source,
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let at = position(valid);
            return Err(InputError::At {
                path: path.into(),
                at,
                message: "not UTF-8 text".into(),
            });
        }
    };
    parse(&text, opts).map_err(|(at, message)| InputError::At {
        path: path.into(),
        at,
        message,
    })
}

/// Where the end of `bytes` is, as line and column.
fn position(bytes: &[u8]) -> Pos {
    let text = String::from_utf8_lossy(bytes);
    let line = text.matches('\n').count() + 1;
    let col = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Pos { line, col }
}

type Failure = (Pos, String);

/// Read a history from `text` (errors carry line and column).
pub fn parse(text: &str, opts: &ReadOptions) -> Result<Loaded, Failure> {
    let format = opts.format.unwrap_or_else(|| sniff(text));
    match format {
        Format::Jsonl => jsonl(text),
        Format::Edn => jepsen(text, opts.independent),
    }
}

/// JSON if the first value opens with `{"`, EDN otherwise.
fn sniff(text: &str) -> Format {
    let t = text.trim_start();
    match t.strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('"') => Format::Jsonl,
        _ => Format::Edn,
    }
}

fn jsonl(text: &str) -> Result<Loaded, Failure> {
    let mut ops: Vec<(Operation, usize)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |col: usize| Pos { line: i + 1, col };
        let op: Operation = serde_json::from_str(line).map_err(|e| {
            (
                at(e.column().max(1)),
                format!("{e} (expected one operation as `synod chaos --out` writes it)"),
            )
        })?;
        if let Some(c) = op.complete {
            if c < op.invoke {
                return Err((
                    at(1),
                    format!("completes at {c}, before its invocation at {}", op.invoke),
                ));
            }
        }
        ops.push((op, i + 1));
    }
    ops.sort_by_key(|(o, line)| (o.invoke, o.client, o.seq, *line));
    let mut history = History::new();
    let mut lines = Vec::with_capacity(ops.len());
    for (i, (mut op, line)) in ops.into_iter().enumerate() {
        op.id = i;
        history.ops.push(op);
        lines.push(line);
    }
    Ok(Loaded {
        history,
        format: Format::Jsonl,
        lines,
        clock: Clock::Recorded,
        skipped: 0,
        keyed: true,
    })
}

/// The kind of a Jepsen event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Type {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// The operation of a Jepsen event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum F {
    Read,
    Write,
    Cas,
}

impl fmt::Display for F {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            F::Read => ":read",
            F::Write => ":write",
            F::Cas => ":cas",
        })
    }
}

/// One client event of a Jepsen history.
struct Event {
    at: Pos,
    process: u64,
    kind: Type,
    f: F,
    value: Option<Node>,
    key: Option<Node>,
    time: Option<u64>,
    /// Position among all events of the file.
    index: u64,
}

fn field<'a>(map: &'a Node, key: &str) -> Option<&'a Node> {
    map.value.get(key)
}

/// The event in `map`, or `None` for a non-client event.
fn event(map: &Node, index: u64) -> Result<Option<Event>, Failure> {
    if !matches!(map.value, Edn::Map(_)) {
        return Err((
            map.at,
            format!(
                "expected an event like {{:process 0, :type :invoke, :f :write, :value 3}}, found {}",
                short(&map.value)
            ),
        ));
    }
    let Some(p) = field(map, "process") else {
        return Err((map.at, "this event has no :process".into()));
    };
    let process = match &p.value {
        Edn::Number(_) => match p.value.integer() {
            Some(n) if n >= 0 => n as u64,
            _ => return Err((p.at, format!(":process {} is not a client number", p.value))),
        },
        // :nemesis and other non-client actors.
        _ => return Ok(None),
    };
    let t = field(map, "type").ok_or((map.at, "this event has no :type".to_string()))?;
    let kind = match t.value.keyword() {
        Some("invoke") => Type::Invoke,
        Some("ok") => Type::Ok,
        Some("fail") => Type::Fail,
        Some("info") => Type::Info,
        _ => {
            return Err((
                t.at,
                format!(":type {} is not :invoke, :ok, :fail or :info", t.value),
            ))
        }
    };
    let f = field(map, "f").ok_or((map.at, "this event has no :f".to_string()))?;
    let f = match f.value.keyword().or(match &f.value {
        Edn::Str(s) => Some(s.as_str()),
        _ => None,
    }) {
        Some("read" | "r") => F::Read,
        Some("write" | "w") => F::Write,
        Some("cas") => F::Cas,
        _ => {
            return Err((
                f.at,
                format!(
                    ":f {} is not :read, :write or :cas (synod checks registers)",
                    f.value
                ),
            ))
        }
    };
    let time = match field(map, "time") {
        None => None,
        Some(n) => match n.value.integer() {
            Some(t) if t >= 0 => Some(t as u64),
            _ => return Err((n.at, format!(":time {} is not nanoseconds", n.value))),
        },
    };
    Ok(Some(Event {
        at: map.at,
        process,
        kind,
        f,
        value: field(map, "value").cloned(),
        key: field(map, "key").cloned(),
        time,
        index,
    }))
}

/// A value in a message, cut short.
fn short(v: &Edn) -> String {
    let s = v.to_string();
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

fn pair(v: &Node) -> Option<(&Node, &Node)> {
    match v.value.sequence() {
        Some([a, b]) => Some((a, b)),
        _ => None,
    }
}

/// Whether the events' values look like `[key value]` tuples.
fn looks_independent(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| match (e.f, e.value.as_ref().and_then(pair)) {
            (F::Read | F::Write, Some(_)) => true,
            (F::Cas, Some((_, inner))) => pair(inner).is_some(),
            _ => false,
        })
}

/// How the events of a file name their key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keys {
    Single,
    Tuples,
    Field,
}

/// The key and the bare value of an event.
fn split(e: &Event, keys: Keys) -> Result<(String, Option<&Node>), Failure> {
    match keys {
        Keys::Single => Ok((REGISTER.to_string(), e.value.as_ref())),
        Keys::Field => match &e.key {
            Some(k) => Ok((k.value.to_string(), e.value.as_ref())),
            None => Err((e.at, "this event has no :key, and others have one".into())),
        },
        Keys::Tuples => match e.value.as_ref().and_then(pair) {
            Some((k, v)) => Ok((k.value.to_string(), Some(v))),
            None => Err((
                e.value.as_ref().map_or(e.at, |v| v.at),
                format!(
                    "expected a [key value] tuple as the :value (independent keys), found {}",
                    e.value
                        .as_ref()
                        .map_or("nothing".into(), |v| short(&v.value))
                ),
            )),
        },
    }
}

/// A value's text; `nil` is `None` (absent).
fn text(v: Option<&Node>) -> Option<String> {
    match v.map(|n| &n.value) {
        None | Some(Edn::Nil) => None,
        Some(v) => Some(v.to_string()),
    }
}

/// The operation an invocation asks for.
fn operation(e: &Event, key: String, value: Option<&Node>) -> Result<Op, Failure> {
    let at = value.map_or(e.at, |v| v.at);
    Ok(match e.f {
        F::Read => Op::Get { key },
        F::Write => match text(value) {
            Some(value) => Op::Put { key, value },
            None => Op::Delete { key },
        },
        F::Cas => {
            let Some((from, to)) = value.and_then(pair) else {
                return Err((at, "a :cas needs :value [from to]".into()));
            };
            let Some(new) = text(Some(to)) else {
                return Err((to.at, "a :cas to nil is not supported".into()));
            };
            Op::Cas {
                key,
                expect: text(Some(from)),
                new,
            }
        }
    })
}

/// An operation being assembled from its events.
struct Pending {
    op: Operation,
    f: F,
    line: usize,
}

fn jepsen(text: &str, independent: Independent) -> Result<Loaded, Failure> {
    // Event by event, keeping only what the check needs; a whole history
    // may also be one vector (or list) of events.
    let mut reader = edn::Reader::new(text);
    let mut events = Vec::new();
    let mut skipped = 0;
    let mut index = 0u64;
    while let Some(form) = reader.next_form().map_err(|e| (e.at, e.message))? {
        let maps = match form.value {
            Edn::Vector(items) | Edn::List(items) => items,
            _ => vec![form],
        };
        for m in &maps {
            match event(m, index)? {
                Some(e) => events.push(e),
                None => skipped += 1,
            }
            index += 1;
        }
    }
    let keys = if events.iter().any(|e| e.key.is_some()) {
        Keys::Field
    } else {
        match independent {
            Independent::Yes => Keys::Tuples,
            Independent::No => Keys::Single,
            Independent::Auto if looks_independent(&events) => Keys::Tuples,
            Independent::Auto => Keys::Single,
        }
    };
    let timed = !events.is_empty() && events.iter().all(|e| e.time.is_some());
    let when = |e: &Event| if timed { e.time.unwrap_or(0) } else { e.index };

    let mut done: Vec<Pending> = Vec::new();
    let mut open: BTreeMap<u64, Pending> = BTreeMap::new();
    let mut seqs: BTreeMap<u64, u64> = BTreeMap::new();
    for e in &events {
        let t = when(e);
        if e.kind == Type::Invoke {
            if let Some(p) = open.get(&e.process) {
                return Err((
                    e.at,
                    format!(
                        "process {} invokes again before its invocation on line {} completed",
                        e.process, p.line
                    ),
                ));
            }
            let (key, value) = split(e, keys)?;
            let op = operation(e, key, value)?;
            let seq = seqs.entry(e.process).or_default();
            *seq += 1;
            let pending = Pending {
                op: Operation {
                    id: 0,
                    client: e.process,
                    seq: *seq,
                    op,
                    invoke: t,
                    complete: None,
                    status: Status::Unknown,
                },
                f: e.f,
                line: e.at.line,
            };
            open.insert(e.process, pending);
            continue;
        }
        let Some(mut p) = open.remove(&e.process) else {
            return Err((
                e.at,
                format!(
                    "process {} completes an operation it never invoked",
                    e.process
                ),
            ));
        };
        if p.f != e.f {
            return Err((
                e.at,
                format!(
                    "process {} invoked {} (line {}) but this completes {}",
                    e.process, p.f, p.line, e.f
                ),
            ));
        }
        if t < p.op.invoke {
            return Err((
                e.at,
                format!(
                    ":time {t} is before its invocation's (line {}, {})",
                    p.line, p.op.invoke
                ),
            ));
        }
        p.op.complete = Some(t);
        p.op.status = match e.kind {
            Type::Fail => Status::Failed,
            Type::Info => Status::Unknown,
            _ => Status::Ok(result(e, &p, keys)?),
        };
        done.push(p);
    }
    // Never completed: indeterminate, like :info.
    done.extend(open.into_values());
    done.sort_by_key(|p| (p.op.invoke, p.line));
    let mut history = History::new();
    let mut lines = Vec::with_capacity(done.len());
    for (i, mut p) in done.into_iter().enumerate() {
        p.op.id = i;
        history.ops.push(p.op);
        lines.push(p.line);
    }
    Ok(Loaded {
        history,
        format: Format::Edn,
        lines,
        clock: if timed { Clock::Nanos } else { Clock::Events },
        skipped,
        keyed: keys != Keys::Single,
    })
}

/// The result an `:ok` completion reports.
fn result(e: &Event, p: &Pending, keys: Keys) -> Result<OpResult, Failure> {
    Ok(match e.f {
        F::Write => OpResult::Done,
        F::Cas => OpResult::Swapped(true),
        F::Read => {
            let (key, value) = split(e, keys)?;
            if key != p.op.op.key() {
                return Err((
                    e.value.as_ref().map_or(e.at, |v| v.at),
                    format!(
                        "reads key {key} but its invocation (line {}) read {}",
                        p.line,
                        p.op.op.key()
                    ),
                ));
            }
            OpResult::Value(text(value))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTO: ReadOptions = ReadOptions {
        format: None,
        independent: Independent::Auto,
    };

    fn read(text: &str) -> Loaded {
        parse(text, &AUTO).unwrap_or_else(|(at, e)| panic!("{at}: {e}"))
    }

    fn error(text: &str) -> String {
        let (at, e) = parse(text, &AUTO).expect_err("an error");
        format!("{at}: {e}")
    }

    #[test]
    fn a_register_history_reads() {
        let l = read(
            "{:process 0, :type :invoke, :f :write, :value 3, :time 10}\n\
             {:process 1, :type :invoke, :f :read, :value nil, :time 11}\n\
             {:process :nemesis, :type :info, :f :start, :value nil, :time 12}\n\
             {:process 0, :type :ok, :f :write, :value 3, :time 20}\n\
             {:process 1, :type :ok, :f :read, :value 3, :time 21}\n\
             {:process 2, :type :invoke, :f :cas, :value [3 4], :time 30}\n\
             {:process 3, :type :invoke, :f :cas, :value [1 2], :time 31}\n\
             {:process 4, :type :invoke, :f :write, :value :x, :time 32}\n\
             {:process 2, :type :ok, :f :cas, :value [3 4], :time 40}\n\
             {:process 3, :type :fail, :f :cas, :value [1 2], :time 41}\n\
             {:process 4, :type :info, :f :write, :value :x, :time 42, :error :timeout}\n\
             {:process 5, :type :invoke, :f :read, :value nil, :time 50}\n\
             {:process 5, :type :ok, :f :read, :value nil, :time 51}\n\
             {:process 6, :type :invoke, :f :write, :value \"s\", :time 60}\n",
        );
        assert_eq!(l.format, Format::Edn);
        assert_eq!(l.clock, Clock::Nanos);
        assert_eq!(l.skipped, 1);
        assert!(!l.keyed);
        let h = &l.history;
        assert_eq!(h.ops.len(), 7);
        let k = || REGISTER.to_string();
        assert_eq!(
            h.ops[0].op,
            Op::Put {
                key: k(),
                value: "3".into()
            }
        );
        assert_eq!(h.ops[0].status, Status::Ok(OpResult::Done));
        assert_eq!((h.ops[0].invoke, h.ops[0].complete), (10, Some(20)));
        assert_eq!(
            h.ops[1].status,
            Status::Ok(OpResult::Value(Some("3".into())))
        );
        assert_eq!(
            h.ops[2].op,
            Op::Cas {
                key: k(),
                expect: Some("3".into()),
                new: "4".into()
            }
        );
        assert_eq!(h.ops[2].status, Status::Ok(OpResult::Swapped(true)));
        assert_eq!(h.ops[3].status, Status::Failed);
        assert_eq!(
            h.ops[4].op,
            Op::Put {
                key: k(),
                value: ":x".into()
            }
        );
        assert_eq!(h.ops[4].status, Status::Unknown);
        assert_eq!(h.ops[5].status, Status::Ok(OpResult::Value(None)));
        assert_eq!(
            h.ops[6].op,
            Op::Put {
                key: k(),
                value: "\"s\"".into()
            }
        );
        assert_eq!(
            (h.ops[6].status.clone(), h.ops[6].complete),
            (Status::Unknown, None)
        );
        assert_eq!(l.lines, vec![1, 2, 6, 7, 8, 12, 14]);
        assert!(h.ops.iter().enumerate().all(|(i, o)| o.id == i));
    }

    #[test]
    fn without_time_the_event_order_is_the_clock() {
        let l = read(
            "[{:process 0, :type :invoke, :f :write, :value 1}\n\
              {:process 0, :type :ok, :f :write, :value 1}\n\
              {:process 0, :type :invoke, :f :write, :value nil}\n\
              {:process 0, :type :ok, :f :write, :value nil}]",
        );
        assert_eq!(l.clock, Clock::Events);
        assert_eq!(
            (l.history.ops[1].invoke, l.history.ops[1].complete),
            (2, Some(3))
        );
        assert_eq!(
            l.history.ops[1].op,
            Op::Delete {
                key: REGISTER.into()
            }
        );
    }

    #[test]
    fn independent_keys_as_tuples_or_a_key_field() {
        let text = "{:process 0, :type :invoke, :f :write, :value [:a 1]}\n\
                    {:process 0, :type :ok, :f :write, :value [:a 1]}\n\
                    {:process 1, :type :invoke, :f :cas, :value [:b [1 2]]}\n\
                    {:process 1, :type :fail, :f :cas, :value [:b [1 2]]}\n\
                    {:process 2, :type :invoke, :f :read, :value [:a nil]}\n\
                    {:process 2, :type :ok, :f :read, :value [:a 1]}\n";
        let l = read(text);
        assert!(l.keyed);
        let h = &l.history;
        assert_eq!(
            h.ops[0].op,
            Op::Put {
                key: ":a".into(),
                value: "1".into()
            }
        );
        assert_eq!(
            h.ops[1].op,
            Op::Cas {
                key: ":b".into(),
                expect: Some("1".into()),
                new: "2".into()
            }
        );
        assert_eq!(
            h.ops[2].status,
            Status::Ok(OpResult::Value(Some("1".into())))
        );
        // Forced off, the tuples are values of one register (and the cas
        // [:b [1 2]] swaps :b for [1 2]).
        let l = parse(
            text,
            &ReadOptions {
                format: Some(Format::Edn),
                independent: Independent::No,
            },
        )
        .unwrap();
        assert!(!l.keyed);
        assert_eq!(
            l.history.ops[0].op,
            Op::Put {
                key: REGISTER.into(),
                value: "[:a 1]".into()
            }
        );
        // A :key field.
        let l = read(
            "{:process 0, :type :invoke, :f :write, :key \"x\", :value 1}\n\
             {:process 0, :type :ok, :f :write, :key \"x\", :value 1}\n",
        );
        assert_eq!(
            l.history.ops[0].op,
            Op::Put {
                key: "\"x\"".into(),
                value: "1".into()
            }
        );
        // Forced on, a bare value is an error at its place.
        let e = parse(
            "{:process 0, :type :invoke, :f :write, :value 1}",
            &ReadOptions {
                format: None,
                independent: Independent::Yes,
            },
        )
        .err()
        .unwrap();
        assert_eq!(e.0, Pos { line: 1, col: 47 });
        assert!(e.1.contains("[key value] tuple"), "{}", e.1);
    }

    #[test]
    fn synod_jsonl_reads_and_sorts() {
        let a = r#"{"id":5,"client":1,"seq":2,"op":{"Get":{"key":"k"}},"invoke":30,"complete":40,"status":{"status":"ok","result":{"Value":"a"}}}"#;
        let b = r#"{"id":9,"client":2,"seq":1,"op":{"Put":{"key":"k","value":"a"}},"invoke":10,"complete":20,"status":{"status":"ok","result":"Done"}}"#;
        let l = read(&format!("{a}\n\n{b}\n"));
        assert_eq!(l.format, Format::Jsonl);
        assert_eq!(l.lines, vec![3, 1]);
        assert_eq!(l.history.ops[0].id, 0);
        assert_eq!(l.history.ops[0].invoke, 10);
        assert!(error(&format!("{a}\n{{\"id\": 1,}}")).starts_with("2:"));
        let back = a.replace("\"complete\":40", "\"complete\":3");
        assert_eq!(
            error(&back),
            "1:1: completes at 3, before its invocation at 30"
        );
    }

    #[test]
    fn mistakes_name_their_place() {
        let inv = "{:process 0, :type :invoke, :f :write, :value 1}\n";
        assert_eq!(
            error(&format!(
                "{inv}{{:process 0, :type :okay, :f :write, :value 1}}"
            )),
            "2:20: :type :okay is not :invoke, :ok, :fail or :info"
        );
        assert_eq!(
            error("{:process 0, :type :invoke, :f :add, :value 1}"),
            "1:32: :f :add is not :read, :write or :cas (synod checks registers)"
        );
        assert_eq!(
            error(&format!("{inv}{inv}")),
            "2:1: process 0 invokes again before its invocation on line 1 completed"
        );
        assert_eq!(
            error("{:process 3, :type :ok, :f :write, :value 1}"),
            "1:1: process 3 completes an operation it never invoked"
        );
        assert_eq!(
            error(&format!(
                "{inv}{{:process 0, :type :ok, :f :read, :value 1}}"
            )),
            "2:1: process 0 invoked :write (line 1) but this completes :read"
        );
        assert_eq!(error("{:type :ok}"), "1:1: this event has no :process");
        assert_eq!(
            error("[1 2]"),
            "1:2: expected an event like {:process 0, :type :invoke, :f :write, :value 3}, found 1"
        );
        assert_eq!(
            error("{:process 0, :type :invoke, :f :cas, :value 3}"),
            "1:45: a :cas needs :value [from to]"
        );
        assert_eq!(
            error("{:process -1, :type :invoke, :f :read}"),
            "1:11: :process -1 is not a client number"
        );
        assert_eq!(
            error("{:process 0, :type :invoke, :f :read, :time 5}\n{:process 0, :type :ok, :f :read, :value 1, :time 4}"),
            "2:1: :time 4 is before its invocation's (line 1, 5)"
        );
        assert_eq!(
            error("{:process 0\n  :type [}"),
            "2:10: } where ] (opened at 2:9) should close"
        );
    }
}
