//! The rules switch: turn one Paxos rule off, to see why it is there.
//!
//! Off by default. The simulator, `synod demo`, `synod sim --break` and (for real
//! nodes) `synod chaos --break` all use this one switch, and every checker in synod
//! is shown to catch each broken rule.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A Paxos rule that can be switched off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rule {
    /// An acceptor makes its promise or accept durable before it answers.
    /// Broken: acceptor state (and, in the shells, what learners learned) lives
    /// only in memory and is lost on a crash.
    Persist,
    /// An acceptor refuses ballots below the one it promised (phase 1b's promise).
    /// Broken: acceptors answer prepares and accept proposals below their promise.
    Promise,
    /// A proposer proposes the value of the highest-ballot proposal reported in the
    /// promises (P2c). Broken: it ignores them and proposes its own value.
    P2c,
}

impl Rule {
    /// Every rule, in the order the explainer introduces them.
    pub const ALL: [Rule; 3] = [Rule::Persist, Rule::Promise, Rule::P2c];

    /// The rule's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Persist => "persist",
            Rule::Promise => "promise",
            Rule::P2c => "p2c",
        }
    }

    /// What goes wrong without it, in one line.
    pub fn lesson(self) -> &'static str {
        match self {
            Rule::Persist => {
                "an acceptor that forgets its promises after a crash can vote for two values"
            }
            Rule::Promise => "an acceptor that accepts below its promise lets an old proposal win after a newer one was chosen",
            Rule::P2c => "a proposer that ignores earlier accepted values can overwrite a chosen one",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Rule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "persist" => Ok(Rule::Persist),
            "promise" => Ok(Rule::Promise),
            "p2c" => Ok(Rule::P2c),
            other => Err(format!(
                "unknown rule `{other}`; expected one of: persist, promise, p2c"
            )),
        }
    }
}

/// Which rules hold. The default: all of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    broken: Option<Rule>,
}

impl Rules {
    /// Every rule holds.
    pub const ALL: Rules = Rules { broken: None };

    /// Every rule holds but `rule` (none broken if `None`).
    pub fn breaking(rule: Option<Rule>) -> Self {
        Rules { broken: rule }
    }

    /// True if `rule` is on.
    pub fn holds(&self, rule: Rule) -> bool {
        self.broken != Some(rule)
    }

    /// The rule switched off, if any.
    pub fn broken(&self) -> Option<Rule> {
        self.broken
    }
}
