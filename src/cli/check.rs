//! `check`: is anyone's history linearizable? synod's jsonl or Jepsen's EDN.

use std::path::PathBuf;

use clap::Args;

use super::Exit;
use crate::check::input::{self, Format, Independent, ReadOptions};
use crate::check::report::{self, Outcome};
use crate::check::synth::Synth;

/// What the semantics are, shown by `synod check --help`.
const SEMANTICS: &str = "\
A history is linearizable if some order of its operations, each taking effect at
one instant between its invocation and its completion, explains every result.
Each key is a register of its own and is checked apart.

Formats (chosen by content, or --format):
  jsonl   synod's history.jsonl, one operation a line, as `synod chaos --out`
          writes it
  edn     Jepsen's history: one map an event, e.g.
          {:process 0, :type :invoke, :f :write, :value 3, :time 1234}
          :type :invoke, :ok, :fail or :info; :f :read, :write or :cas, with
          :value [from to] for a cas; independent keys as [k v] tuples
          ([k [from to]] for a cas) or a :key field. Events pair by :process;
          events whose :process is not a number (:nemesis) are skipped; :time
          (ns) orders them when every event has one, else the file order.
          Values compare as their EDN text.

Semantics:
  ok            took effect once, between its invocation and its completion,
                with the result it returned
  :fail         did not happen
  :info, or no completion
                may take effect at any time after its invocation, or never;
                its result is not checked (a read that timed out constrains
                nothing)
  read of nil   the key was absent (a :write of nil removes it)
  cas           :ok means it swapped; a cas that answered false (synod's
                jsonl) observed a value other than the one it expected
                (Jepsen records that as :fail: it did not happen)

Exit codes: 0 linearizable; 1 not, with the smallest window of operations that
cannot be ordered; 2 bad usage or input (file:line:col); 3 undecided within
--budget (no violation found, but the search did not finish).";

#[derive(Debug, Args)]
#[command(after_long_help = SEMANTICS)]
pub struct CheckArgs {
    /// The history: synod's history.jsonl or a Jepsen EDN history
    #[arg(required_unless_present = "generate")]
    file: Option<PathBuf>,
    /// auto (by content: a line that starts with {" is jsonl), jsonl or edn
    #[arg(long, default_value = "auto", value_name = "FORMAT", value_parser = ["auto", "jsonl", "edn"])]
    format: String,
    /// EDN values are [key value] tuples (Jepsen's independent keys): auto
    /// (yes if any read or write value is a pair, or a cas is [k [from to]]), yes, no
    #[arg(long, default_value = "auto", value_name = "WHEN", value_parser = ["auto", "yes", "no"])]
    independent: String,
    /// Search steps per key (and per window tried) before giving up as
    /// undecided, exit 3 (10^8 steps: about ten seconds)
    #[arg(long, default_value_t = report::DEFAULT_BUDGET, value_name = "STEPS")]
    budget: u64,
    /// One JSON object on stdout instead of text
    #[arg(long)]
    json: bool,
    /// (hidden) Print a made-up Jepsen register history instead:
    /// N[,p=P][,v=V][,info=F][,seed=S][,bad]
    #[arg(long, hide = true, value_name = "SPEC", value_parser = Synth::parse)]
    generate: Option<Synth>,
}

pub fn run(a: CheckArgs) -> Result<(), Exit> {
    if let Some(s) = &a.generate {
        print!("{}", crate::check::synth::edn(s));
        return Ok(());
    }
    let file = a.file.expect("clap requires FILE without --generate");
    let opts = ReadOptions {
        format: match a.format.as_str() {
            "jsonl" => Some(Format::Jsonl),
            "edn" => Some(Format::Edn),
            _ => None,
        },
        independent: match a.independent.as_str() {
            "yes" => Independent::Yes,
            "no" => Independent::No,
            _ => Independent::Auto,
        },
    };
    let loaded = input::load(&file, &opts)?;
    let r = report::check(&loaded, a.budget);
    if a.json {
        println!("{}", r.json(&loaded));
    } else {
        print!("{}", r.text(&loaded, &file));
    }
    match r.outcome() {
        Outcome::Linearizable => Ok(()),
        Outcome::NotLinearizable => Err(Exit::failed(r.headline())),
        Outcome::Undecided => Err(Exit::undecided(r.headline())),
    }
}
