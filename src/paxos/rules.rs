//! The rules switch: turn one Paxos rule off, to see why it is there.
//!
//! Off by default. The simulator, `synod demo`, `synod sim --break` and (for real
//! nodes) `synod chaos --break` all use this one switch, and every checker in synod
//! is shown to catch each broken rule.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A Paxos rule, or a guard synod adds around the rules, that can be switched
/// off. The first three are the explainer's; the others close holes a careful
/// reader found in real implementations, each with a scripted scenario
/// (`synod sim --scenarios`) that fails without it.
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
    /// A proposer never uses a ballot twice: its highest round is durable
    /// before a Prepare leaves, and a restarted node starts above everything its
    /// acceptor recovered (Paxos Made Simple §2.5). Broken: rounds live in
    /// memory and start again from zero.
    Round,
    /// Only the cluster's members count towards a quorum. Broken: a vote from
    /// any node id counts.
    Members,
    /// A leader answers a read only once a majority confirmed a heartbeat round
    /// sent after the read arrived (read-index), and steps down when no round
    /// of a whole election timeout was confirmed (check-quorum). Broken: it
    /// answers at once from what it knows chosen, and leads until it hears
    /// of a higher ballot.
    Confirm,
    /// Acknowledgements count only for the leader's current ballot, and frames
    /// queued for a process that has since died are dropped, not replayed to
    /// its next incarnation. Broken: acks count by sequence number alone and
    /// old frames are replayed.
    Fresh,
    /// A promise carries at most a frame's worth of accepted values, and the
    /// proposer fetches the rest in chunks. Broken: everything in one message.
    Chunks,
    /// A node asks for a pre-vote before it raises its round. Broken: it raises
    /// its round whenever its election timeout runs out.
    Prevote,
    /// Every phase-1 quorum meets every phase-2 quorum (|Q1| + |Q2| > N; with
    /// majorities, P1's "any two majorities intersect"). Broken: quorums that
    /// do not are allowed (by default N/2 and the rest).
    Intersection,
    /// A write from a client session the replicas do not know is refused:
    /// sessions are opened through the log and numbered by it, so an unknown
    /// one was forgotten, and its command may have been applied before.
    /// Broken: an unknown client is taken as new and its command applied.
    Sessions,
    /// A slot is decided by its own configuration (issue 23): votes count
    /// with the configuration of their slot, the leader proposes only where
    /// it knows the configuration (a window of α slots) and only after
    /// phase 1 among that configuration's voters. Broken: the newest
    /// configuration known counts everywhere at once, and the leader
    /// proposes in a new configuration without its voters' promises.
    Reconfig,
    /// A leader that a change removed steps down where it stops voting and
    /// tells a voter of the new configuration to stand at once (`TakeOver`).
    /// Broken: it stays leader, proposing nothing, until the others' election
    /// timeouts elect a successor.
    Handover,
    /// A change is refused while fewer of its voters are reachable than its
    /// quorums need to choose, unless forced (etcd's strict reconfiguration
    /// check). Broken: any valid change is proposed.
    Strict,
}

impl Rule {
    /// Every rule: the explainer's three, then synod's guards.
    pub const ALL: [Rule; 14] = [
        Rule::Persist,
        Rule::Promise,
        Rule::P2c,
        Rule::Round,
        Rule::Members,
        Rule::Confirm,
        Rule::Fresh,
        Rule::Chunks,
        Rule::Prevote,
        Rule::Intersection,
        Rule::Sessions,
        Rule::Reconfig,
        Rule::Handover,
        Rule::Strict,
    ];

    /// The rule's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Persist => "persist",
            Rule::Promise => "promise",
            Rule::P2c => "p2c",
            Rule::Round => "round",
            Rule::Members => "members",
            Rule::Confirm => "confirm",
            Rule::Fresh => "fresh",
            Rule::Chunks => "chunks",
            Rule::Prevote => "prevote",
            Rule::Intersection => "intersection",
            Rule::Sessions => "sessions",
            Rule::Reconfig => "reconfig",
            Rule::Handover => "handover",
            Rule::Strict => "strict",
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
            Rule::Round => "a proposer that forgets its round after a restart can issue one ballot with two values, and a later leader cannot tell which was chosen",
            Rule::Members => "votes from nodes outside the cluster can make a value look chosen that no majority accepted",
            Rule::Confirm => "a leader cut off in a minority answers reads from a state a new leader has already moved past",
            Rule::Fresh => "acknowledgements replayed from a dead process or an old term can confirm a leader that no longer leads",
            Rule::Chunks => "a promise that carries everything at once outgrows the frame limit, so a lagging candidate's promises never arrive",
            Rule::Prevote => "a node that cannot win keeps raising its round and deposes a healthy leader again and again",
            Rule::Intersection => "a leader elected by a phase-1 quorum that misses a phase-2 quorum cannot see the value it chose, and chooses another",
            Rule::Sessions => "a client forgotten by the bounded client table retries a write, and it is applied a second time",
            Rule::Reconfig => "a leader that proposes in a new configuration without its voters' promises overwrites a value they chose under another leader",
            Rule::Handover => "a leader removed from the configuration that neither steps down nor hands over leaves the cluster without a leader for an election timeout",
            Rule::Strict => "a voter added to a cluster that has lost a member raises the quorum past the voters left, and the cluster stops choosing",
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
        Rule::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
                format!("unknown rule `{s}`; expected one of: {}", names.join(", "))
            })
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
