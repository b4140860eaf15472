//! The explainer's two worked examples, replayed message by message.
//!
//! Nothing here is scripted text about outcomes: every promise, refusal, accept and
//! choice is what the real [`Acceptor`], [`Proposer`] and [`Learner`] return. The
//! demo only decides the order in which messages are delivered (the story's order)
//! and says, for each outcome, which rule decided it.

use std::collections::BTreeMap;

use crate::paxos::quorum::majority;
use crate::paxos::{
    Acceptor, Learner, Message, NodeId, Outbox, Proposer, Rule, Rules, Slot, Value,
};
use crate::sim::invariants::{self, Ghost};

/// The demos `synod demo` knows.
pub const NAMES: [&str; 2] = ["three-users", "late-joiner"];

/// Run the demo `name` with `rules` and return what it prints, or `None` if there
/// is no such demo.
pub fn run(name: &str, rules: Rules) -> Option<String> {
    match name {
        "three-users" => Some(three_users(rules)),
        "late-joiner" => Some(late_joiner(rules)),
        _ => None,
    }
}

struct Person {
    name: String,
    acceptor: Acceptor,
    proposer: Proposer,
    learner: Learner,
}

/// A handful of people, each an acceptor, a proposer and a learner.
struct Table {
    people: BTreeMap<NodeId, Person>,
    ghost: Ghost,
    out: String,
    refusals: Vec<(NodeId, NodeId)>,
    agreement_broken: bool,
    /// People whose phone is on: messages to the others are lost.
    online: Vec<NodeId>,
}

impl Table {
    fn new(names: &[&str], proposes_to_self: bool, rules: Rules) -> Self {
        let ids: Vec<NodeId> = (1..=names.len() as NodeId).collect();
        let q = majority(ids.len());
        let people = ids
            .iter()
            .map(|&id| {
                let targets = ids
                    .iter()
                    .copied()
                    .filter(|&t| proposes_to_self || t != id)
                    .collect();
                let person = Person {
                    name: names[id as usize - 1].to_string(),
                    acceptor: Acceptor::new(id, rules),
                    proposer: Proposer::new(id, targets, q, rules),
                    learner: Learner::new(id, ids.clone(), q),
                };
                (id, person)
            })
            .collect();
        Table {
            people,
            ghost: Ghost::new(q),
            out: String::new(),
            refusals: Vec::new(),
            agreement_broken: false,
            online: ids,
        }
    }

    /// "A", "A and B", "A, B and C".
    fn names(&self, ids: &[NodeId]) -> String {
        let names: Vec<&str> = ids.iter().map(|&i| self.name(i)).collect();
        match names.split_last() {
            None => String::new(),
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        }
    }

    fn name(&self, id: NodeId) -> &str {
        &self.people[&id].name
    }

    fn say(&mut self, line: impl AsRef<str>) {
        self.out.push_str(line.as_ref());
        self.out.push('\n');
    }

    /// `from` sends Prepare(round) to each of `to`; deliver them in that order and
    /// hand each answer back. Returns what P2c forces, once a majority promised.
    fn prepare(
        &mut self,
        from: NodeId,
        round: u64,
        to: &[NodeId],
    ) -> Option<BTreeMap<Slot, Value>> {
        let mut out = Outbox::new();
        let p = self.people.get_mut(&from).expect("known person");
        p.proposer.prepare(round, 0, &mut out);
        let ballot = p.proposer.ballot();
        let line = format!(
            "{} sends Prepare(ballot {}) to {}",
            self.name(from),
            ballot.round,
            self.names(to)
        );
        self.say(line);
        let mut must = None;
        for env in out.send.into_iter().filter(|e| to.contains(&e.to)) {
            let to = env.to;
            let before = self.people[&to].acceptor.promised();
            let mut reply = Outbox::new();
            let acc = &mut self.people.get_mut(&to).expect("known").acceptor;
            acc.handle(from, env.msg, &mut reply);
            for r in reply.send_durable.into_iter().chain(reply.send) {
                match r.msg {
                    Message::Promise { ballot, accepted } => {
                        let report = match accepted.first() {
                            None => "has accepted nothing to report".to_string(),
                            Some(pv) => format!(
                                "reports what it accepted: ballot {} with {}",
                                pv.ballot.round,
                                pv.value.brief()
                            ),
                        };
                        let why = if before.is_zero() {
                            "it had promised nothing yet".to_string()
                        } else if before == ballot {
                            format!("it had already promised {}", ballot.round)
                        } else {
                            format!(
                                "{} > {}, the highest ballot it had promised",
                                ballot.round, before.round
                            )
                        };
                        let line = format!(
                            "    {} promises ballot {} and never to accept a lower one ({why}); it {report}.   [phase 1b]",
                            self.name(to),
                            ballot.round
                        );
                        self.say(line);
                        let p = self.people.get_mut(&from).expect("known");
                        if let Some(m) = p.proposer.on_promise(to, ballot, accepted) {
                            must = Some(m);
                            let line = format!(
                                "    {} now has promises from a majority ({} of {}): on to phase 2.",
                                self.name(from),
                                majority(self.people.len()),
                                self.people.len()
                            );
                            self.say(line);
                        }
                    }
                    Message::Nack { ballot, promised } => {
                        let line = format!(
                            "    {} refuses ballot {}: it promised {}, which is higher.   [phase 1b]",
                            self.name(to),
                            ballot.round,
                            promised.round
                        );
                        self.say(line);
                        let p = self.people.get_mut(&from).expect("known");
                        p.proposer.on_nack(ballot, promised);
                    }
                    // The acceptor's local notice to its own proposer.
                    _ => {}
                }
            }
        }
        must
    }

    /// `from`, prepared, proposes for slot 0 by P2c (`must`) or its own `wish`,
    /// sends Accept to each of `to` in order; answers go to the learners.
    fn accept(&mut self, from: NodeId, must: &BTreeMap<Slot, Value>, wish: &str, to: &[NodeId]) {
        let value = match must.get(&0) {
            Some(v) => {
                let line = format!(
                    "{} wanted {wish:?}, but a promise reported an accepted value: by P2c it must propose {} instead.",
                    self.name(from),
                    v.brief()
                );
                self.say(line);
                v.clone()
            }
            None => {
                let line = format!(
                    "{}'s promises report no accepted value, so P2c leaves it free to propose its own: {wish:?}.",
                    self.name(from)
                );
                self.say(line);
                Value::Text(wish.to_string())
            }
        };
        let mut out = Outbox::new();
        let p = &self.people[&from];
        let ballot = p.proposer.ballot();
        p.proposer.accept(0, value.clone(), &mut out);
        let line = format!(
            "{} sends Accept(ballot {}, {}) to {}",
            self.name(from),
            ballot.round,
            value.brief(),
            self.names(to)
        );
        self.say(line);
        let mut learner_mail: Vec<(NodeId, NodeId, Message)> = Vec::new();
        for env in out.send {
            match env.msg {
                m @ Message::Proposed { .. } => learner_mail.push((from, from, m)),
                m @ Message::Accept { .. } if to.contains(&env.to) => {
                    let to = env.to;
                    let before = self.people[&to].acceptor.promised();
                    let mut reply = Outbox::new();
                    let acc = &mut self.people.get_mut(&to).expect("known").acceptor;
                    acc.handle(from, m, &mut reply);
                    for r in reply.send_durable.into_iter().chain(reply.send) {
                        match r.msg {
                            Message::Accepted { ballot, slot } => {
                                let why = if before.is_zero() {
                                    "it had promised nothing".to_string()
                                } else if ballot >= before {
                                    format!(
                                        "ballot {} is not below its promise {}",
                                        ballot.round, before.round
                                    )
                                } else {
                                    format!(
                                        "ballot {} is below its promise {}, but the `promise` rule is off",
                                        ballot.round, before.round
                                    )
                                };
                                let line = format!(
                                    "    {} accepts {} ({why}).   [phase 2b]",
                                    self.name(to),
                                    value.brief()
                                );
                                self.say(line);
                                if let Some(v) = self.ghost.accepted(to, slot, ballot, &value) {
                                    if let Some(bad) =
                                        invariants::agreement(&mut self.ghost, slot, ballot, v)
                                    {
                                        self.agreement_broken = true;
                                        let line = format!("    !!! {bad}");
                                        self.say(line);
                                    }
                                }
                                learner_mail.push((to, r.to, Message::Accepted { ballot, slot }));
                            }
                            Message::Nack { ballot, promised } => {
                                self.refusals.push((from, to));
                                let line = format!(
                                    "    {} refuses: it promised not to accept anything below {}, and {} < {}.   [phase 2b]",
                                    self.name(to),
                                    promised.round,
                                    ballot.round,
                                    promised.round
                                );
                                self.say(line);
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        // The learners count: accepts go to the proposer's learner, which tells
        // the others once a majority accepted.
        let mut spread: Vec<(NodeId, NodeId, Message)> = Vec::new();
        for (sender, learner, msg) in learner_mail {
            let mut o = Outbox::new();
            let l = &mut self.people.get_mut(&learner).expect("known").learner;
            let knew = l.chosen().contains_key(&0);
            l.handle(sender, msg, &mut o);
            if !knew {
                if let Some(v) = self.people[&learner].learner.chosen().get(&0).cloned() {
                    let line = format!(
                        "    {}'s learner: a majority ({} of {}) accepted ballot {} → {} is CHOSEN.",
                        self.name(learner),
                        majority(self.people.len()),
                        self.people.len(),
                        ballot.round,
                        v.brief()
                    );
                    self.say(line);
                }
            }
            for e in o.send {
                if let m @ Message::Learn { .. } = e.msg {
                    if self.online.contains(&e.to) {
                        spread.push((e.from, e.to, m));
                    }
                }
            }
        }
        for (sender, to, msg) in spread {
            let l = &mut self.people.get_mut(&to).expect("known").learner;
            l.handle(sender, msg, &mut Outbox::new());
        }
        if self.people[&from].learner.chosen().get(&0).is_none() {
            let line = format!(
                "    {}'s proposal did not reach a majority; it would have to start again at phase 1 with a higher ballot.",
                self.name(from)
            );
            self.say(line);
        }
    }

    fn verdict(&mut self) {
        let chosen: Vec<String> = self.ghost.chosen().values().map(Value::brief).collect();
        let learned: Vec<String> = self
            .people
            .values()
            .map(|p| {
                format!(
                    "{}: {}",
                    p.name,
                    p.learner
                        .chosen()
                        .get(&0)
                        .map_or("-".to_string(), Value::brief)
                )
            })
            .collect();
        self.say("");
        self.say(format!("What each learner knows: {}", learned.join(", ")));
        if self.agreement_broken {
            self.say("Verdict: AGREEMENT BROKEN: two different values were chosen for the same decision.");
        } else {
            self.say(format!("Verdict: chosen {}", chosen.join(", ")));
        }
    }
}

fn rule_note(rules: Rules) -> String {
    match rules.broken() {
        Some(rule) => format!(
            "With the `{rule}` rule switched OFF: {}.\n\n",
            rule.lesson()
        ),
        None => String::new(),
    }
}

/// "Three users decide what 1+1 is": ballots 1, 2, 3, each sent to the other two,
/// then the three accepts in that order.
fn three_users(rules: Rules) -> String {
    let mut t = Table::new(&["User1", "User2", "User3"], false, rules);
    t.out.push_str(&rule_note(rules));
    t.say("Three users decide what 1+1 is. A ballot is (round, user); user k uses round k,");
    t.say("so the explainer's ballots 1, 2 and 3 belong to User1, User2 and User3.");
    t.say("Each sends its messages to the other two; a majority is 2 of 3.");
    t.say("");
    t.say("Phase 1: prepare / promise");
    let mut must = BTreeMap::new();
    for (user, others) in [(1, [2, 3]), (2, [1, 3]), (3, [1, 2])] {
        if let Some(m) = t.prepare(user, user, &others) {
            must.insert(user, m);
        }
    }
    t.say("");
    t.say("Phase 2: accept / accepted");
    for (user, others, wish) in [
        (1, [2, 3], "1+1=1"),
        (2, [1, 3], "1+1=2"),
        (3, [1, 2], "1+1=3"),
    ] {
        let m = must.get(&user).cloned().unwrap_or_default();
        t.accept(user, &m, wish, &others);
    }
    // Who refused whom, from what the acceptors actually answered.
    let mut by_proposer: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
    for &(p, a) in &t.refusals {
        by_proposer
            .entry(p)
            .or_default()
            .push(t.name(a).to_string());
    }
    t.verdict();
    for (p, who) in by_proposer {
        let line = format!(
            "{}'s accept was refused by {}.",
            t.name(p),
            who.join(" and ")
        );
        t.say(line);
    }
    t.out
}

/// "The late joiner": Zhang San, Li Si and Wang Wu chose Zhengzhou while Zhao Liu
/// and Sun Qi had their phones off. Switched on, Zhao Liu wants Hainan, but P2c
/// makes him propose Zhengzhou, and Sun Qi's first accept is Zhengzhou.
fn late_joiner(rules: Rules) -> String {
    let names = [
        "Zhang San (张三)",
        "Li Si (李四)",
        "Wang Wu (王五)",
        "Zhao Liu (赵六)",
        "Sun Qi (孙七)",
    ];
    let mut t = Table::new(&names, true, rules);
    t.out.push_str(&rule_note(rules));
    t.say("Five colleagues choose where to hold the annual meeting; a majority is 3 of 5.");
    t.say("Zhao Liu and Sun Qi have their phones switched off.");
    t.online = vec![1, 2, 3];
    t.say("");
    t.say("Round 1: Zhang San proposes Zhengzhou to those he can reach (himself included).");
    let m = t.prepare(1, 1, &[1, 2, 3]).unwrap_or_default();
    t.accept(1, &m, "Zhengzhou", &[1, 2, 3]);
    t.say("");
    t.say("Zhao Liu and Sun Qi switch their phones on. They missed everything.");
    t.online = vec![1, 2, 3, 4, 5];
    t.say(
        "By P1 Sun Qi must accept the first proposal he receives; P2c makes sure it is Zhengzhou.",
    );
    t.say("");
    t.say("Round 2: Zhao Liu wants Hainan. He prepares ballot 2 with himself, Sun Qi and Li Si,");
    t.say("then asks everyone to accept.");
    t.say("(Any majority of 5 includes at least one of the three who accepted Zhengzhou.)");
    let m = t.prepare(4, 2, &[2, 4, 5]).unwrap_or_default();
    t.accept(4, &m, "Hainan", &[1, 2, 3, 4, 5]);
    t.verdict();
    let sun_qi = t.people[&5].acceptor.accepted(0).map(|(_, v)| v.brief());
    let line = format!(
        "Sun Qi's first and only accepted proposal: {}.",
        sun_qi.unwrap_or_else(|| "none".into())
    );
    t.say(line);
    t.out
}

/// The rule each demo shows best when broken, for the help text.
pub fn suggested_break(name: &str) -> Option<Rule> {
    match name {
        "three-users" => Some(Rule::Promise),
        "late-joiner" => Some(Rule::P2c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_users_chooses_1_plus_1_equals_3() {
        let out = three_users(Rules::ALL);
        assert!(out.contains("Verdict: chosen \"1+1=3\""), "{out}");
        assert!(
            out.contains("User1's accept was refused by User2 and User3."),
            "{out}"
        );
        assert!(
            out.contains("User2's accept was refused by User1."),
            "{out}"
        );
        assert!(!out.contains("User3's accept was refused"), "{out}");
        // User3 accepts User2's proposal (its promise was 2), as the explainer says.
        assert!(out.contains("User3 accepts \"1+1=2\""), "{out}");
    }

    #[test]
    fn late_joiner_reproposes_zhengzhou() {
        let out = late_joiner(Rules::ALL);
        assert!(
            out.contains("by P2c it must propose \"Zhengzhou\""),
            "{out}"
        );
        assert!(out.contains("Verdict: chosen \"Zhengzhou\""), "{out}");
        assert!(
            out.contains("Sun Qi's first and only accepted proposal: \"Zhengzhou\""),
            "{out}"
        );
    }

    #[test]
    fn broken_rules_break_the_stories() {
        let out = late_joiner(Rules::breaking(Some(Rule::P2c)));
        assert!(out.contains("AGREEMENT BROKEN"), "{out}");
        let out = three_users(Rules::breaking(Some(Rule::Promise)));
        assert!(out.contains("AGREEMENT BROKEN"), "{out}");
    }
}
