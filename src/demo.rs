//! The explainer's two worked examples, replayed message by message.
//!
//! Nothing here is scripted about outcomes: every promise, refusal, accept and
//! choice is what the real [`Acceptor`], [`Campaign`] and [`Learner`] return. The
//! demo only decides the order in which messages are delivered (the story's order)
//! and says, for each outcome, which rule decided it. [`Story`] carries the
//! computed outcomes as data, so tests assert them rather than the printed text.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::paxos::campaign::Chunk;
use crate::paxos::quorum::majority;
use crate::paxos::{
    Acceptor, Campaign, Learner, Message, NodeId, Outbox, Rule, Rules, Slot, Value,
};
use crate::sim::invariants::{self, Ghost};

/// The demos `synod demo` knows.
pub const NAMES: [&str; 2] = ["three-users", "late-joiner"];

/// The language a story is told in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    /// English (the default).
    #[default]
    En,
    /// Chinese, with the explainer's names and words.
    Zh,
}

impl FromStr for Lang {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "en" => Ok(Lang::En),
            "zh" => Ok(Lang::Zh),
            other => Err(format!("unknown language `{other}`; expected en or zh")),
        }
    }
}

/// What happened in a story, computed by the protocol code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Story {
    /// The story as told.
    pub text: String,
    /// Every value chosen (a majority accepted the same ballot), in order. More
    /// than one only when a rule is broken.
    pub chosen: Vec<Value>,
    /// `(proposer, acceptor)` for every accept an acceptor refused.
    pub refusals: Vec<(NodeId, NodeId)>,
    /// `(proposer, round, value)` for every Accept sent.
    pub proposals: Vec<(NodeId, u64, Value)>,
    /// Each acceptor's first accepted value.
    pub first_accepted: BTreeMap<NodeId, Value>,
    /// What each learner knows at the end.
    pub learned: BTreeMap<NodeId, Option<Value>>,
    /// Every message delivered, in the story's order, for a diagram.
    pub steps: Vec<Step>,
    /// Each person's id and name (the diagram's lanes).
    pub people: Vec<(NodeId, String)>,
}

/// One message of a story (or, with `from == to` and kind "Chosen", a learner
/// seeing a value chosen), and the line of the text that tells it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    /// Who sent it.
    pub from: NodeId,
    /// Who received it.
    pub to: NodeId,
    /// Prepare, Promise, Nack, Accept, Accepted, Learn or Chosen.
    pub kind: &'static str,
    /// The message in brief.
    pub label: String,
    /// The index of the line of [`Story::text`] that tells it.
    pub line: usize,
}

/// Run the demo `name` with `rules` in `lang`, or `None` if there is no such demo.
pub fn run(name: &str, rules: Rules, lang: Lang) -> Option<Story> {
    match name {
        "three-users" => Some(three_users(rules, lang)),
        "late-joiner" => Some(late_joiner(rules, lang)),
        _ => None,
    }
}

/// The rule each demo shows best when broken, for the closing hint.
pub fn suggested_break(name: &str) -> Option<Rule> {
    match name {
        "three-users" => Some(Rule::Promise),
        "late-joiner" => Some(Rule::P2c),
        _ => None,
    }
}

/// The closing hint: try the story with its rule broken.
pub fn hint(name: &str, lang: Lang) -> Option<String> {
    let rule = suggested_break(name)?;
    Some(match lang {
        Lang::En => {
            format!("Try `synod demo {name} --break {rule}` to see what that rule prevents.")
        }
        Lang::Zh => {
            format!("试试 `synod demo {name} --break {rule} --lang zh`,看看这条规则防止了什么。")
        }
    })
}

struct Person {
    name: String,
    acceptor: Acceptor,
    proposer: Campaign,
    learner: Learner,
}

/// A handful of people, each an acceptor, a proposer and a learner.
struct Table {
    lang: Lang,
    people: BTreeMap<NodeId, Person>,
    ghost: Ghost,
    story: Story,
    agreement_broken: bool,
    /// People whose phone is on: messages to the others are lost.
    online: Vec<NodeId>,
}

impl Table {
    fn new(names: &[&str], proposes_to_self: bool, rules: Rules, lang: Lang) -> Self {
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
                    proposer: Campaign::new(id, targets, q, rules),
                    learner: Learner::new(id, ids.clone(), q, rules),
                };
                (id, person)
            })
            .collect();
        let mut t = Table {
            lang,
            people,
            ghost: Ghost::of(&ids, q),
            story: Story::default(),
            agreement_broken: false,
            online: ids,
        };
        if let Some(rule) = rules.broken() {
            let line = t.tr(
                format!("With the `{rule}` rule switched OFF: {}.", rule.lesson()),
                format!("规则 `{rule}` 已关闭:{}。", lesson_zh(rule)),
            );
            t.say(line);
            t.say("");
        }
        t
    }

    fn tr(&self, en: String, zh: String) -> String {
        match self.lang {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }

    fn name(&self, id: NodeId) -> &str {
        &self.people[&id].name
    }

    /// "A", "A and B", "A, B and C" (or "A、B 和 C").
    fn names(&self, ids: &[NodeId]) -> String {
        let names: Vec<&str> = ids.iter().map(|&i| self.name(i)).collect();
        let (sep, and) = match self.lang {
            Lang::En => (", ", " and "),
            Lang::Zh => ("、", " 和 "),
        };
        match names.split_last() {
            None => String::new(),
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{}{and}{last}", rest.join(sep)),
        }
    }

    /// Record a message told by the line said last.
    fn step(&mut self, from: NodeId, to: NodeId, kind: &'static str, label: String) {
        let line = self.story.text.lines().count().saturating_sub(1);
        self.story.steps.push(Step {
            from,
            to,
            kind,
            label,
            line,
        });
    }

    fn say(&mut self, line: impl AsRef<str>) {
        self.story.text.push_str(line.as_ref());
        self.story.text.push('\n');
    }

    fn say2(&mut self, en: &str, zh: &str) {
        let line = self.tr(en.to_string(), zh.to_string());
        self.say(line);
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
        let (who, whom) = (self.name(from).to_string(), self.names(to));
        let line = self.tr(
            format!("{who} sends Prepare(ballot {}) to {whom}", ballot.round),
            format!("{who} 向 {whom} 发送准备请求(编号 {})", ballot.round),
        );
        self.say(line);
        let mut must = None;
        // The story does not model disks: a Prepare waiting for its round to be
        // durable leaves in the same breath.
        let prepares = out.send_durable.into_iter().chain(out.send);
        for env in prepares.filter(|e| to.contains(&e.to)) {
            let to = env.to;
            self.step(from, to, "Prepare", env.msg.brief());
            let before = self.people[&to].acceptor.promised();
            let mut reply = Outbox::new();
            let acc = &mut self.people.get_mut(&to).expect("known").acceptor;
            acc.handle(from, env.msg, &mut reply);
            let name = self.name(to).to_string();
            for r in reply.send_durable.into_iter().chain(reply.send) {
                match r.msg {
                    Message::Promise {
                        ballot,
                        from_slot,
                        accepted,
                        next,
                        floor,
                    } => {
                        let b = ballot.round;
                        let report = match accepted.first() {
                            None => self.tr(
                                "has accepted nothing to report".into(),
                                "没有已接受的提案可反馈".into(),
                            ),
                            Some(pv) => self.tr(
                                format!(
                                    "reports what it accepted: ballot {} with {}",
                                    pv.ballot.round,
                                    pv.value.brief()
                                ),
                                format!(
                                    "反馈它已接受的提案:编号 {},内容 {}",
                                    pv.ballot.round,
                                    pv.value.brief()
                                ),
                            ),
                        };
                        let why = if before.is_zero() {
                            self.tr(
                                "it had promised nothing yet".into(),
                                "此前未承诺过任何提案".into(),
                            )
                        } else if before == ballot {
                            self.tr(
                                format!("it had already promised {b}"),
                                format!("它已承诺过 {b}"),
                            )
                        } else if ballot > before {
                            self.tr(
                                format!(
                                    "{b} > {}, the highest ballot it had promised",
                                    before.round
                                ),
                                format!("{b} > 它已承诺的最大编号 {}", before.round),
                            )
                        } else {
                            self.tr(
                                format!(
                                    "{b} < its promise {}, but the `promise` rule is off",
                                    before.round
                                ),
                                format!("{b} 小于它的承诺 {},但 promise 规则已关闭", before.round),
                            )
                        };
                        let line = self.tr(
                            format!("    {name} promises ballot {b} and never to accept a lower one ({why}); it {report}.   [phase 1b]"),
                            format!("    {name} 承诺编号 {b},不再接受小于 {b} 的提案({why});{report}。   [阶段1b]"),
                        );
                        self.say(line);
                        let reported = match accepted.first() {
                            Some(pv) => format!(
                                "Promise({b}, accepted {} {})",
                                pv.ballot.round,
                                pv.value.brief()
                            ),
                            None => format!("Promise({b})"),
                        };
                        self.step(to, from, "Promise", reported);
                        let p = self.people.get_mut(&from).expect("known");
                        let chunk = Chunk {
                            from_slot,
                            accepted,
                            next,
                            floor,
                        };
                        if let Some(m) =
                            p.proposer.on_promise(to, ballot, chunk, &mut Outbox::new())
                        {
                            must = Some(m);
                            let (q, n) = (majority(self.people.len()), self.people.len());
                            let line = self.tr(
                                format!("    {who} now has promises from a majority ({q} of {n}): on to phase 2."),
                                format!("    {who} 已收到多数人({q}/{n})的承诺,进入第二阶段。"),
                            );
                            self.say(line);
                        }
                    }
                    Message::Nack { ballot, promised } => {
                        let (b, p) = (ballot.round, promised.round);
                        let line = self.tr(
                            format!("    {name} refuses ballot {b}: it promised {p}, which is higher.   [phase 1b]"),
                            format!("    {name} 拒绝编号 {b}:它已承诺了更高的编号 {p}。   [阶段1b]"),
                        );
                        self.say(line);
                        self.step(to, from, "Nack", format!("Nack({b}, promised {p})"));
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
        let who = self.name(from).to_string();
        let value = match must.get(&0) {
            Some(v) => {
                let line = self.tr(
                    format!("{who} wanted {wish:?}, but a promise reported an accepted value: by P2c it must propose {} instead.", v.brief()),
                    format!("{who} 想提议 {wish:?},但有承诺反馈了已接受的内容:根据 P2c,它必须改为提议 {}。", v.brief()),
                );
                self.say(line);
                v.clone()
            }
            None => {
                let line = self.tr(
                    format!("{who}'s promises report no accepted value, so P2c leaves it free to propose its own: {wish:?}."),
                    format!("{who} 收到的承诺中没有已接受的内容,P2c 允许它提议自己的内容:{wish:?}。"),
                );
                self.say(line);
                Value::Text(wish.to_string())
            }
        };
        let mut out = Outbox::new();
        let p = &self.people[&from];
        let ballot = p.proposer.ballot();
        p.proposer.accept(0, value.clone(), &mut out);
        self.story
            .proposals
            .push((from, ballot.round, value.clone()));
        let whom = self.names(to);
        let line = self.tr(
            format!(
                "{who} sends Accept(ballot {}, {}) to {whom}",
                ballot.round,
                value.brief()
            ),
            format!(
                "{who} 向 {whom} 发送同意请求(编号 {},{})",
                ballot.round,
                value.brief()
            ),
        );
        self.say(line);
        // The proposer's learner hears what was proposed.
        for notice in out.notices {
            let l = &mut self.people.get_mut(&from).expect("known").learner;
            l.notice(notice, &mut Outbox::new());
        }
        let mut learner_mail: Vec<(NodeId, NodeId, Message)> = Vec::new();
        for env in out.send {
            match env.msg {
                m @ Message::Accept { .. } if to.contains(&env.to) => {
                    let to = env.to;
                    self.step(
                        from,
                        to,
                        "Accept",
                        format!("Accept({}, {})", ballot.round, value.brief()),
                    );
                    let name = self.name(to).to_string();
                    let before = self.people[&to].acceptor.promised();
                    let mut reply = Outbox::new();
                    let acc = &mut self.people.get_mut(&to).expect("known").acceptor;
                    acc.handle(from, m, &mut reply);
                    for r in reply.send_durable.into_iter().chain(reply.send) {
                        match r.msg {
                            Message::Accepted {
                                ballot,
                                slot,
                                digest,
                            } => {
                                let (b, p) = (ballot.round, before.round);
                                let why = if before.is_zero() {
                                    self.tr(
                                        "it had promised nothing".into(),
                                        "此前未承诺过任何提案".into(),
                                    )
                                } else if ballot >= before {
                                    self.tr(
                                        format!("ballot {b} is not below its promise {p}"),
                                        format!("编号 {b} 不小于它的承诺 {p}"),
                                    )
                                } else {
                                    self.tr(
                                        format!("ballot {b} is below its promise {p}, but the `promise` rule is off"),
                                        format!("编号 {b} 小于它的承诺 {p},但 promise 规则已关闭"),
                                    )
                                };
                                let v = value.brief();
                                let line = self.tr(
                                    format!("    {name} accepts {v} ({why}).   [phase 2b]"),
                                    format!("    {name} 同意 {v}({why})。   [阶段2b]"),
                                );
                                self.say(line);
                                self.step(to, r.to, "Accepted", format!("Accepted({b})"));
                                self.story
                                    .first_accepted
                                    .entry(to)
                                    .or_insert_with(|| value.clone());
                                if let Some(v) = self.ghost.accepted(to, slot, ballot, &value) {
                                    self.story.chosen.push(v.clone());
                                    if let Some(bad) =
                                        invariants::agreement(&mut self.ghost, slot, ballot, v)
                                    {
                                        self.agreement_broken = true;
                                        self.say(format!("    !!! {bad}"));
                                    }
                                }
                                let vote = Message::Accepted {
                                    ballot,
                                    slot,
                                    digest,
                                };
                                learner_mail.push((to, r.to, vote));
                            }
                            Message::Nack { ballot, promised } => {
                                self.story.refusals.push((from, to));
                                let (b, p) = (ballot.round, promised.round);
                                let line = self.tr(
                                    format!("    {name} refuses: it promised not to accept anything below {p}, and {b} < {p}.   [phase 2b]"),
                                    format!("    {name} 拒绝:它已声明不再接受小于 {p} 的提案,而 {b} < {p}。   [阶段2b]"),
                                );
                                self.say(line);
                                self.step(to, from, "Nack", format!("Nack({b}, promised {p})"));
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
                    let (q, n, name) = (
                        majority(self.people.len()),
                        self.people.len(),
                        self.name(learner).to_string(),
                    );
                    let (b, v) = (ballot.round, v.brief());
                    let line = self.tr(
                        format!("    {name}'s learner: a majority ({q} of {n}) accepted ballot {b} → {v} is CHOSEN."),
                        format!("    {name} 的学习者:多数人({q}/{n})同意了编号 {b} → {v} 被选定。"),
                    );
                    self.say(line);
                    self.step(learner, learner, "Chosen", format!("chosen: {v}"));
                }
            }
            // A learner tells the others what it counted at its next tick.
            self.people
                .get_mut(&learner)
                .expect("known")
                .learner
                .tick(&mut o);
            for e in o.send {
                if let m @ Message::Learn { .. } = e.msg {
                    if self.online.contains(&e.to) {
                        spread.push((e.from, e.to, m));
                    }
                }
            }
        }
        for (sender, to, msg) in spread {
            self.step(sender, to, "Learn", msg.brief());
            let l = &mut self.people.get_mut(&to).expect("known").learner;
            l.handle(sender, msg, &mut Outbox::new());
        }
        if self.people[&from].learner.chosen().get(&0).is_none() {
            let line = self.tr(
                format!("    {who}'s proposal did not reach a majority; it would have to start again at phase 1 with a higher ballot."),
                format!("    {who} 的提议没有获得多数人同意,需要用更高的编号重新进入阶段1。"),
            );
            self.say(line);
        }
    }

    fn finish(mut self) -> Story {
        let learned: Vec<String> = self
            .people
            .values()
            .map(|p| {
                let v = p
                    .learner
                    .chosen()
                    .get(&0)
                    .map_or("-".to_string(), Value::brief);
                format!("{}: {v}", p.name)
            })
            .collect();
        self.story.people = self
            .people
            .iter()
            .map(|(&id, p)| (id, p.name.clone()))
            .collect();
        self.story.learned = self
            .people
            .iter()
            .map(|(&id, p)| (id, p.learner.chosen().get(&0).cloned()))
            .collect();
        self.say("");
        let sep = self.tr(", ".into(), ",".into());
        let line = self.tr(
            format!("What each learner knows: {}", learned.join(&sep)),
            format!("各学习者所知:{}", learned.join(&sep)),
        );
        self.say(line);
        if self.agreement_broken {
            self.say2(
                "Verdict: AGREEMENT BROKEN: two different values were chosen for the same decision.",
                "结论:一致性被破坏:同一个决议选定了两个不同的值。",
            );
        } else {
            let chosen: Vec<String> = self.ghost.chosen().values().map(Value::brief).collect();
            let line = self.tr(
                format!("Verdict: chosen {}", chosen.join(", ")),
                format!("结论:选定 {}", chosen.join(",")),
            );
            self.say(line);
        }
        self.story
    }
}

fn lesson_zh(rule: Rule) -> &'static str {
    match rule {
        Rule::Persist => "接受者崩溃后忘记了自己的承诺,可能为两个不同的值投票",
        Rule::Promise => "接受者接受低于其承诺编号的提案,使旧提案在新值被选定后仍能胜出",
        Rule::P2c => "提议者忽略承诺中反馈的已接受内容,可能覆盖已被选定的值",
        Rule::Round => "提议者重启后忘记了自己用过的编号,同一个编号可能带上两个不同的值",
        Rule::Members => "集群之外的节点投的票也被计数,没有多数人接受的值看起来像被选定了",
        Rule::Confirm => "被隔离在少数派中的领导者不经多数确认就回答读请求,读到过时的值",
        Rule::Fresh => "已死进程或旧任期的确认被重放,确认了一个已不再领导的领导者",
        Rule::Chunks => "承诺一次携带全部已接受的值,超过帧大小上限,落后的候选者永远收不到",
        Rule::Prevote => "无法获胜的节点不断提高编号,一次又一次地赶下健康的领导者",
        Rule::Intersection => {
            "阶段1的法定人数与阶段2的不相交,新领导者看不到已选定的值,又选定了另一个"
        }
        Rule::Sessions => "有界的客户端表忘记了一个客户端,它重试的写入被再次执行",
        Rule::Reconfig => "领导者不先取得新配置中投票者的承诺就在新配置里提议,覆盖了它们在另一个领导者下已选定的值",
        Rule::Handover => "被移出配置的领导者既不退位也不交接,集群在一个选举超时内没有领导者",
        Rule::Strict => "在已失去一个成员的集群中加入投票者,法定人数超过了剩下的投票者,集群再也无法选定",
    }
}

/// "Three users decide what 1+1 is": ballots 1, 2, 3, each sent to the other two,
/// then the three accepts in that order.
fn three_users(rules: Rules, lang: Lang) -> Story {
    let mut t = Table::new(&["User1", "User2", "User3"], false, rules, lang);
    t.say2(
        "Three users decide what 1+1 is. A ballot is (round, user); user k uses round k,\nso the explainer's ballots 1, 2 and 3 belong to User1, User2 and User3.\nEach sends its messages to the other two; a majority is 2 of 3.",
        "三个用户决定 1+1 等于几。编号是 (轮次, 用户);用户 k 使用轮次 k,\n所以讲解中的编号 1、2、3 分别属于 User1、User2、User3。\n每人都把消息发给另外两人;多数为 3 人中的 2 人。",
    );
    t.say("");
    t.say2("Phase 1: prepare / promise", "阶段1:准备");
    let mut must = BTreeMap::new();
    for (user, others) in [(1, [2, 3]), (2, [1, 3]), (3, [1, 2])] {
        if let Some(m) = t.prepare(user, user, &others) {
            must.insert(user, m);
        }
    }
    t.say("");
    t.say2("Phase 2: accept / accepted", "阶段2:同意");
    for (user, others, wish) in [
        (1, [2, 3], "1+1=1"),
        (2, [1, 3], "1+1=2"),
        (3, [1, 2], "1+1=3"),
    ] {
        let m = must.get(&user).cloned().unwrap_or_default();
        t.accept(user, &m, wish, &others);
    }
    // Who refused whom, from what the acceptors actually answered.
    let mut by_proposer: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
    for &(p, a) in &t.story.refusals {
        by_proposer.entry(p).or_default().push(a);
    }
    let lines: Vec<String> = by_proposer
        .iter()
        .map(|(&p, who)| {
            let (p, who) = (t.name(p).to_string(), t.names(who));
            t.tr(
                format!("{p}'s accept was refused by {who}."),
                format!("{p} 的同意请求被 {who} 拒绝。"),
            )
        })
        .collect();
    let mut story = t.finish();
    for l in lines {
        story.text.push_str(&l);
        story.text.push('\n');
    }
    story
}

/// "The late joiner": Zhang San, Li Si and Wang Wu chose Zhengzhou while Zhao Liu
/// and Sun Qi had their phones off. Switched on, Zhao Liu wants Hainan, but P2c
/// makes him propose Zhengzhou, and Sun Qi's first accept is Zhengzhou.
fn late_joiner(rules: Rules, lang: Lang) -> Story {
    let (names, zhengzhou, hainan) = match lang {
        Lang::En => (
            ["Zhang San", "Li Si", "Wang Wu", "Zhao Liu", "Sun Qi"],
            "Zhengzhou",
            "Hainan",
        ),
        Lang::Zh => (["张三", "李四", "王五", "赵六", "孙七"], "郑州", "海南"),
    };
    let mut t = Table::new(&names, true, rules, lang);
    t.say2(
        "Five colleagues choose where to hold the annual meeting; a majority is 3 of 5.\nZhao Liu and Sun Qi have their phones switched off.",
        "五位同事商定年会举办地点;多数为 5 人中的 3 人。\n赵六和孙七的手机没电了。",
    );
    t.online = vec![1, 2, 3];
    t.say("");
    t.say2(
        "Round 1: Zhang San proposes Zhengzhou to those he can reach (himself included).",
        "第一轮:张三向他能联系上的人(包括他自己)提议去郑州。",
    );
    let m = t.prepare(1, 1, &[1, 2, 3]).unwrap_or_default();
    t.accept(1, &m, zhengzhou, &[1, 2, 3]);
    t.say("");
    t.say2(
        "Zhao Liu and Sun Qi switch their phones on. They missed everything.\nBy P1 Sun Qi must accept the first proposal he receives; P2c makes sure it is Zhengzhou.",
        "赵六和孙七开机了,他们错过了一切。\n根据 P1,孙七必须同意他收到的第一个提议;P2c 保证这个提议是郑州。",
    );
    t.online = vec![1, 2, 3, 4, 5];
    t.say("");
    t.say2(
        "Round 2: Zhao Liu wants Hainan. He prepares ballot 2 with himself, Sun Qi and Li Si,\nthen asks everyone to accept.\n(Any majority of 5 includes at least one of the three who accepted Zhengzhou.)",
        "第二轮:赵六想去海南。他与自己、孙七和李四完成准备阶段,然后请所有人同意。\n(5 人中的任何多数都至少包含一位同意过郑州的人。)",
    );
    let m = t.prepare(4, 2, &[2, 4, 5]).unwrap_or_default();
    t.accept(4, &m, hainan, &[1, 2, 3, 4, 5]);
    let first = t
        .story
        .first_accepted
        .get(&5)
        .map_or("-".to_string(), Value::brief);
    let mut story = t.finish();
    let line = match lang {
        Lang::En => format!("Sun Qi's first and only accepted proposal: {first}."),
        Lang::Zh => format!("孙七第一个也是唯一同意的提议:{first}。"),
    };
    story.text.push_str(&line);
    story.text.push('\n');
    story
}
