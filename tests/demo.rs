//! The explainer's two worked examples: the outcomes the protocol code computes.

use synod::demo::{self, Lang};
use synod::paxos::{Rule, Rules, Value};

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn three_users_choose_1_plus_1_equals_3() {
    for lang in [Lang::En, Lang::Zh] {
        let s = demo::run("three-users", Rules::ALL, lang).unwrap();
        assert_eq!(s.chosen, vec![text("1+1=3")]);
        // User1's accept refused by User2 and User3; User2's refused by User1.
        assert_eq!(s.refusals, vec![(1, 2), (1, 3), (2, 1)]);
        // Each user proposed its own value: no promise reported an accepted one.
        let proposed: Vec<(u64, u64, Value)> = s.proposals.clone();
        assert_eq!(
            proposed,
            vec![
                (1, 1, text("1+1=1")),
                (2, 2, text("1+1=2")),
                (3, 3, text("1+1=3"))
            ]
        );
        // User3 accepted User2's "1+1=2" first (it had promised only 2).
        assert_eq!(s.first_accepted.get(&3), Some(&text("1+1=2")));
        assert!(s
            .learned
            .values()
            .all(|v| v.as_ref() == Some(&text("1+1=3"))));
    }
}

#[test]
fn the_late_joiner_reproposes_zhengzhou() {
    let s = demo::run("late-joiner", Rules::ALL, Lang::En).unwrap();
    assert_eq!(s.chosen, vec![text("Zhengzhou"), text("Zhengzhou")]);
    // Zhao Liu (4) wanted Hainan but P2c made him propose Zhengzhou at ballot 2.
    assert_eq!(s.proposals[1], (4, 2, text("Zhengzhou")));
    // Sun Qi (5) accepts the first proposal he sees (P1): Zhengzhou.
    assert_eq!(s.first_accepted.get(&5), Some(&text("Zhengzhou")));
    let zh = demo::run("late-joiner", Rules::ALL, Lang::Zh).unwrap();
    assert_eq!(zh.first_accepted.get(&5), Some(&text("郑州")));
    assert!(zh.text.contains("赵六"));
}

#[test]
fn without_p2c_the_late_joiner_overwrites_the_choice() {
    let s = demo::run("late-joiner", Rules::breaking(Some(Rule::P2c)), Lang::En).unwrap();
    assert_eq!(s.chosen, vec![text("Zhengzhou"), text("Hainan")]);
    assert_eq!(s.first_accepted.get(&5), Some(&text("Hainan")));
}

#[test]
fn without_the_promise_user1s_old_ballot_wins_too() {
    let s = demo::run(
        "three-users",
        Rules::breaking(Some(Rule::Promise)),
        Lang::En,
    )
    .unwrap();
    assert!(s.refusals.is_empty());
    assert_eq!(s.chosen[0], text("1+1=1"));
    assert!(s.chosen.len() > 1);
}

/// The steps the web page plays agree with what the story computed: one arrow
/// per message delivered, each pointing at the line that tells it.
#[test]
fn the_steps_are_the_messages_the_story_delivered() {
    for lang in [Lang::En, Lang::Zh] {
        let s = demo::run("three-users", Rules::ALL, lang).unwrap();
        let kinds = |k: &str| s.steps.iter().filter(|st| st.kind == k).count();
        assert_eq!(kinds("Prepare"), 6, "each user prepares with two others");
        assert_eq!(kinds("Accept"), 6);
        // Every refusal the story counted is a Nack to the refused proposer.
        let nacks: Vec<(u64, u64)> = s
            .steps
            .iter()
            .filter(|st| st.kind == "Nack" && st.label.starts_with("Nack"))
            .map(|st| (st.to, st.from))
            .collect();
        for r in &s.refusals {
            assert!(nacks.contains(r), "{r:?} not in {nacks:?}");
        }
        assert_eq!(
            kinds("Promise") + kinds("Nack"),
            6 + s.refusals.len(),
            "every prepare is answered, every refused accept is a Nack"
        );
        let chosen: Vec<&str> = s
            .steps
            .iter()
            .filter(|st| st.kind == "Chosen")
            .map(|st| st.label.as_str())
            .collect();
        assert!(!chosen.is_empty() && chosen.iter().all(|c| c.contains("1+1=3")));
        let lines = s.text.lines().count();
        assert!(s.steps.iter().all(|st| st.line < lines));
        assert_eq!(s.people.len(), 3);
    }
    // With P2c off, the diagram shows Zhao Liu's Accept carrying Hainan.
    let s = demo::run("late-joiner", Rules::breaking(Some(Rule::P2c)), Lang::En).unwrap();
    assert!(s
        .steps
        .iter()
        .any(|st| st.kind == "Accept" && st.from == 4 && st.label.contains("Hainan")));
}
