use super::*;
use crate::kv::Op;
use crate::paxos::message::PValue;
use crate::paxos::Quorums;
use crate::paxos::{Rule, Value};

fn cfg() -> ProposerConfig {
    ProposerConfig {
        heartbeat_ticks: 2,
        election_ticks: (4, 4),
        fast: FastPaths {
            window: 2,
            max_batch: 2,
            full_batches: false,
            read_index: true,
            fast_election: true,
        },
        max_batch_bytes: 1 << 20,
        max_waiting: 100,
        quorums: None,
    }
}

fn cmd(seq: u64) -> Command {
    Command {
        client: 7,
        seq,
        op: Op::Put {
            key: "k".into(),
            value: seq.to_string(),
        },
    }
}

fn read(seq: u64) -> Command {
    Command {
        client: 8,
        seq,
        op: Op::Get { key: "k".into() },
    }
}

#[test]
fn a_read_waits_for_a_majority_to_confirm_a_round_sent_after_it() {
    let mut l = Proposer::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
    elect(&mut l, vec![]);
    let mut out = Outbox::new();
    l.notice(Notice::Request(cmd(1)), &mut out);
    // The election's round is confirmed: no round is in flight.
    let sent = l.hb_seq;
    for n in [2, 3] {
        ack(&mut l, n, sent, &mut out);
    }
    let mut out = Outbox::new();
    l.notice(Notice::Request(read(1)), &mut out);
    assert!(
        out.send
            .iter()
            .any(|e| matches!(e.msg, Message::Heartbeat { seq, .. } if seq == sent + 1)),
        "a round starts at once"
    );
    assert!(
        !out.notices.iter().any(|n| n.kind() == "Read"),
        "the older round does not count"
    );
    let mut out = Outbox::new();
    ack(&mut l, 1, sent + 1, &mut out);
    assert!(
        !out.notices.iter().any(|n| n.kind() == "Read"),
        "one ack is not a majority"
    );
    ack(&mut l, 3, sent + 1, &mut out);
    // Served at the slot after everything proposed so far (the write in slot 0).
    assert!(
        out.notices.contains(&Notice::Read {
            cmd: read(1),
            index: 1
        }),
        "{:?}",
        out.notices
    );
    // The read never enters the log.
    assert_eq!(l.in_flight(), 1);
}

#[test]
fn a_leader_serving_many_reads_does_not_think_itself_cut_off() {
    // Rounds started on demand for reads, each confirmed at once, must count
    // as contact with a majority (check-quorum), however many there are.
    let mut l = Proposer::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
    elect(&mut l, vec![]);
    for i in 0..100 {
        let mut out = Outbox::new();
        l.notice(Notice::Request(read(i)), &mut out);
        l.tick(&mut out);
        let seq = l.hb_seq;
        for n in [2, 3] {
            ack(&mut l, n, seq, &mut out);
        }
        assert_eq!(l.mode(), Mode::Leader, "stepped down after {i} ticks");
    }
}

#[test]
fn pending_reads_are_refused_when_the_leader_steps_down() {
    let mut l = Proposer::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
    elect(&mut l, vec![]);
    let mut out = Outbox::new();
    l.notice(Notice::Request(read(1)), &mut out);
    let mut out = Outbox::new();
    l.notice(
        Notice::PromiseMade {
            ballot: Ballot::new(9, 2),
        },
        &mut out,
    );
    assert_eq!(out.replies.len(), 1);
    assert!(matches!(out.replies[0].outcome, Outcome::NotLeader { .. }));
}

/// Acceptor `from` confirms heartbeat round `seq` of `l`'s ballot.
fn ack(l: &mut Proposer, from: NodeId, seq: u64, out: &mut Outbox) {
    let ballot = l.ballot();
    l.handle(from, Message::HeartbeatAck { ballot, seq }, out);
}

fn elect(l: &mut Proposer, accepted: Vec<PValue>) -> Outbox {
    let mut out = Outbox::new();
    for _ in 0..4 {
        l.tick(&mut out);
    }
    assert_eq!(l.mode(), Mode::PreCandidate);
    let prevote = out
        .send
        .iter()
        .find_map(|e| match e.msg {
            Message::PreVote { ballot } => Some(ballot),
            _ => None,
        })
        .expect("a pre-vote is asked");
    let mut out = Outbox::new();
    l.handle(
        2,
        Message::PreVoteReply {
            ballot: prevote,
            granted: true,
        },
        &mut out,
    );
    assert_eq!(l.mode(), Mode::Candidate);
    let ballot = l.ballot();
    assert_eq!(ballot, prevote);
    let mut out = Outbox::new();
    for (from, accepted) in [(2, accepted), (3, vec![])] {
        l.handle(
            from,
            Message::Promise {
                ballot,
                from_slot: 0,
                accepted,
                next: None,
                floor: 0,
            },
            &mut out,
        );
    }
    assert_eq!(l.mode(), Mode::Leader);
    out
}

fn accepts(out: &Outbox) -> Vec<(Slot, Value)> {
    let mut v: Vec<(Slot, Value)> = out
        .send
        .iter()
        .filter(|e| e.to == 2)
        .filter_map(|e| match &e.msg {
            Message::Accept { slot, value, .. } => Some((*slot, value.clone())),
            _ => None,
        })
        .collect();
    v.dedup();
    v
}

#[test]
fn a_new_leader_reproposes_reported_values_and_fills_holes() {
    // Paxos Made Simple §3: the new leader runs phase 2 for reported slots and
    // proposes no-ops for the gaps.
    let mut l = Proposer::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
    let reported = vec![PValue {
        slot: 2,
        ballot: Ballot::new(1, 2),
        value: Value::Text("x".into()),
    }];
    let out = elect(&mut l, reported);
    assert_eq!(
        accepts(&out),
        vec![
            (0, Value::Noop),
            (1, Value::Noop),
            (2, Value::Text("x".into()))
        ]
    );
}

#[test]
fn commands_are_batched_within_the_window() {
    let mut l = Proposer::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
    elect(&mut l, vec![]);
    let mut out = Outbox::new();
    for seq in 1..=7 {
        l.notice(Notice::Request(cmd(seq)), &mut out);
    }
    // Window 2: slots 0 and 1 each take one command at once; the rest wait.
    assert_eq!(l.in_flight(), 2);
    assert_eq!(l.waiting(), 5);
    let mut out = Outbox::new();
    l.notice(Notice::SlotChosen { slot: 0 }, &mut out);
    // One slot freed: the next batch carries max_batch = 2 commands.
    assert_eq!(accepts(&out), vec![(2, Value::Batch(vec![cmd(3), cmd(4)]))]);
}

#[test]
fn with_full_batches_a_second_slot_waits_for_a_full_batch() {
    let mut c = cfg();
    c.fast.full_batches = true;
    let mut l = Proposer::new(1, vec![1, 2, 3], Rules::ALL, c, 1);
    elect(&mut l, vec![]);
    let mut out = Outbox::new();
    l.notice(Notice::Request(cmd(1)), &mut out);
    // Nothing in flight: the first command goes out at once.
    assert_eq!(accepts(&out), vec![(0, Value::Batch(vec![cmd(1)]))]);
    let mut out = Outbox::new();
    l.notice(Notice::Request(cmd(2)), &mut out);
    // One slot in flight: a lone command waits for company...
    assert!(accepts(&out).is_empty());
    assert_eq!((l.in_flight(), l.waiting()), (1, 1));
    l.notice(Notice::Request(cmd(3)), &mut out);
    // ... and goes with it once the batch is full (max_batch = 2).
    assert_eq!(accepts(&out), vec![(1, Value::Batch(vec![cmd(2), cmd(3)]))]);
    let mut out = Outbox::new();
    l.notice(Notice::Request(cmd(4)), &mut out);
    l.notice(Notice::SlotChosen { slot: 0 }, &mut out);
    assert!(accepts(&out).is_empty(), "slot 1 is still in flight");
    l.notice(Notice::SlotChosen { slot: 1 }, &mut out);
    // The window empty again, what waits goes at once, full or not.
    assert_eq!(accepts(&out), vec![(2, Value::Batch(vec![cmd(4)]))]);
}

#[test]
fn a_follower_redirects_clients_to_the_leader_it_heard() {
    let mut l = Proposer::new(3, vec![1, 2, 3], Rules::ALL, cfg(), 1);
    let mut out = Outbox::new();
    l.notice(
        Notice::LeaderSeen {
            ballot: Ballot::new(4, 2),
            first_unchosen: 0,
        },
        &mut out,
    );
    l.notice(Notice::Request(cmd(1)), &mut out);
    assert_eq!(
        out.replies[0].outcome,
        Outcome::NotLeader { leader: Some(2) }
    );
}

#[test]
fn a_leader_steps_down_on_a_higher_ballot_and_without_a_majority() {
    let mut l = Proposer::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
    elect(&mut l, vec![]);
    let mut out = Outbox::new();
    l.notice(
        Notice::PromiseMade {
            ballot: Ballot::new(9, 2),
        },
        &mut out,
    );
    assert_eq!(l.mode(), Mode::Follower);

    let mut l = Proposer::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
    elect(&mut l, vec![]);
    // No acks ever arrive: after the election timeout (4 ticks) it gives up.
    let mut out = Outbox::new();
    for _ in 0..6 {
        l.tick(&mut out);
    }
    assert_eq!(l.mode(), Mode::Follower);
}

#[test]
fn unanswered_accepts_are_sent_again() {
    let mut l = Proposer::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
    elect(&mut l, vec![]);
    let mut out = Outbox::new();
    l.notice(Notice::Request(cmd(1)), &mut out);
    let mut later = Outbox::new();
    for _ in 0..4 {
        let seq = l.hb_seq;
        ack(&mut l, 2, seq, &mut later);
        ack(&mut l, 3, seq, &mut later);
        l.tick(&mut later);
    }
    assert!(accepts(&later).contains(&(0, Value::Batch(vec![cmd(1)]))));
}

#[test]
fn a_follower_that_hears_a_leader_refuses_a_pre_vote_and_the_asker_keeps_its_round() {
    // A node cut off from the leader alone asks the followers: they still hear
    // the leader, so they refuse, and it never raises its round.
    let mut follower = Proposer::new(2, vec![1, 2, 3], Rules::ALL, cfg(), 1);
    let mut out = Outbox::new();
    follower.notice(
        Notice::LeaderSeen {
            ballot: Ballot::new(1, 1),
            first_unchosen: 0,
        },
        &mut out,
    );
    let asked = Ballot::new(2, 3);
    follower.handle(3, Message::PreVote { ballot: asked }, &mut out);
    assert_eq!(
        out.send.last().map(|e| e.msg.clone()),
        Some(Message::PreVoteReply {
            ballot: asked,
            granted: false
        })
    );
    // Once the follower has not heard a leader for an election timeout, it grants.
    for _ in 0..4 {
        follower.tick(&mut Outbox::new());
    }
    let mut out = Outbox::new();
    follower.handle(3, Message::PreVote { ballot: asked }, &mut out);
    assert!(out.send.iter().any(|e| e.msg
        == Message::PreVoteReply {
            ballot: asked,
            granted: true
        }));

    let mut asker = Proposer::new(3, vec![1, 2, 3], Rules::ALL, cfg(), 1);
    let mut out = Outbox::new();
    for _ in 0..4 {
        asker.tick(&mut out);
    }
    let mut out = Outbox::new();
    asker.handle(
        2,
        Message::PreVoteReply {
            ballot: Ballot::new(1, 3),
            granted: false,
        },
        &mut out,
    );
    assert!(
        out.persist.is_empty() && out.send_durable.is_empty(),
        "no round raised"
    );
    assert_eq!(asker.mode(), Mode::PreCandidate);
    assert_eq!(asker.next_round(), 1);
    // With the `prevote` guard broken, a timeout raises the round at once.
    let mut rash = Proposer::new(
        3,
        vec![1, 2, 3],
        Rules::breaking(Some(Rule::Prevote)),
        cfg(),
        1,
    );
    let mut out = Outbox::new();
    for _ in 0..4 {
        rash.tick(&mut out);
    }
    assert_eq!(rash.mode(), Mode::Candidate);
    assert_eq!(out.persist, vec![Record::Round { round: 1 }]);
}

#[test]
fn a_restarted_leader_starts_above_its_rounds_and_its_acceptors_promise() {
    let rounds = [Record::Round { round: 4 }];
    let l = Proposer::recover(
        1,
        vec![1, 2, 3],
        Rules::ALL,
        cfg(),
        1,
        &rounds,
        Ballot::new(6, 2),
    );
    assert_eq!(l.next_round(), 7);
    let l = Proposer::recover(
        1,
        vec![1, 2, 3],
        Rules::ALL,
        cfg(),
        1,
        &rounds,
        Ballot::new(2, 2),
    );
    assert_eq!(l.next_round(), 5);
    let broken = Rules::breaking(Some(Rule::Round));
    let l = Proposer::recover(
        1,
        vec![1, 2, 3],
        broken,
        cfg(),
        1,
        &rounds,
        Ballot::new(6, 2),
    );
    assert_eq!(l.next_round(), 1, "the broken rule forgets both");
}

#[test]
fn acks_count_only_for_the_current_ballot_and_from_members() {
    let mut l = Proposer::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
    elect(&mut l, vec![]);
    let mut out = Outbox::new();
    let election_round = l.hb_seq;
    for n in [2, 3] {
        ack(&mut l, n, election_round, &mut out);
    }
    l.notice(Notice::Request(read(1)), &mut out);
    let seq = l.hb_seq;
    assert_eq!(seq, election_round + 1, "the read started a round");
    let mut out = Outbox::new();
    // An ack of an earlier term with a high sequence number, and a stranger's.
    l.handle(
        2,
        Message::HeartbeatAck {
            ballot: Ballot::new(0, 1),
            seq: 1 << 40,
        },
        &mut out,
    );
    l.handle(
        9,
        Message::HeartbeatAck {
            ballot: l.ballot(),
            seq,
        },
        &mut out,
    );
    ack(&mut l, 3, seq, &mut out);
    assert!(!out.notices.iter().any(|n| n.kind() == "Read"));
    ack(&mut l, 2, seq, &mut out);
    assert!(out.notices.iter().any(|n| n.kind() == "Read"));
    // With `fresh` broken, the old term's acks confirm.
    let mut l = Proposer::new(
        1,
        vec![1, 2, 3],
        Rules::breaking(Some(Rule::Fresh)),
        cfg(),
        1,
    );
    elect(&mut l, vec![]);
    let mut out = Outbox::new();
    l.notice(Notice::Request(read(1)), &mut out);
    for from in [2, 3] {
        l.handle(
            from,
            Message::HeartbeatAck {
                ballot: Ballot::new(0, 1),
                seq: 1 << 40,
            },
            &mut out,
        );
    }
    assert!(out.notices.iter().any(|n| n.kind() == "Read"));
}

#[test]
fn without_confirm_a_read_is_answered_at_once() {
    let mut l = Proposer::new(
        1,
        vec![1, 2, 3],
        Rules::breaking(Some(Rule::Confirm)),
        cfg(),
        1,
    );
    elect(&mut l, vec![]);
    let mut out = Outbox::new();
    l.notice(Notice::Request(read(1)), &mut out);
    assert!(out.notices.iter().any(|n| n.kind() == "Read"));
}

#[test]
fn past_the_bound_a_leader_says_busy_instead_of_queueing() {
    let mut l = Proposer::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
    elect(&mut l, vec![]);
    let mut out = Outbox::new();
    for seq in 1..=105 {
        l.notice(Notice::Request(cmd(seq)), &mut out);
    }
    // Two went into the window; the next 100 wait (max_waiting); the last
    // three are refused with Busy, and nothing of theirs was proposed.
    assert_eq!((l.in_flight(), l.waiting()), (2, 100));
    let busy: Vec<u64> = out
        .replies
        .iter()
        .filter(|r| r.outcome == Outcome::Busy)
        .map(|r| r.seq)
        .collect();
    assert_eq!(busy, vec![103, 104, 105]);
}

fn prevotes(out: &Outbox) -> Vec<NodeId> {
    out.send
        .iter()
        .filter(|e| matches!(e.msg, Message::PreVote { .. }))
        .map(|e| e.to)
        .collect()
}

/// A follower of node 2 in a five-node cluster that reaches every peer.
fn following_two(id: NodeId, cfg: ProposerConfig) -> Proposer {
    let mut f = Proposer::new(id, vec![1, 2, 3, 4, 5], Rules::ALL, cfg, 1);
    let mut out = Outbox::new();
    for n in [1, 2, 3, 4, 5] {
        f.notice(Notice::PeerUp { node: n }, &mut out);
    }
    f.notice(
        Notice::LeaderSeen {
            ballot: Ballot::new(1, 2),
            first_unchosen: 0,
        },
        &mut out,
    );
    f
}

#[test]
fn when_the_leaders_process_is_gone_its_successor_asks_at_once_and_the_rest_grant() {
    // Node 3 follows 2 after 2's death is known: it asks at once.
    let mut next = following_two(3, cfg());
    let mut out = Outbox::new();
    next.notice(Notice::PeerGone { node: 2 }, &mut out);
    assert_eq!(next.mode(), Mode::PreCandidate);
    assert_eq!(prevotes(&out), vec![1, 2, 4, 5]);
    assert_eq!(next.leader_hint(), None);
    // Refused by peers that had not yet seen the link close, it asks again
    // two ticks later, not a whole timeout later.
    let mut out = Outbox::new();
    next.tick(&mut out);
    assert!(prevotes(&out).is_empty());
    next.tick(&mut out);
    assert_eq!(prevotes(&out), vec![1, 2, 4, 5]);

    // Node 4 is not next: it waits, but grants the asker without waiting out
    // a timeout, as it no longer counts the dead leader as heard.
    let mut other = following_two(4, cfg());
    let asked = Ballot::new(2, 3);
    let mut out = Outbox::new();
    other.handle(3, Message::PreVote { ballot: asked }, &mut out);
    assert!(out.send.iter().any(|e| e.msg
        == Message::PreVoteReply {
            ballot: asked,
            granted: false
        }));
    let mut out = Outbox::new();
    other.notice(Notice::PeerGone { node: 2 }, &mut out);
    assert_eq!(other.mode(), Mode::Follower);
    assert!(prevotes(&out).is_empty());
    other.handle(3, Message::PreVote { ballot: asked }, &mut out);
    assert!(out.send.iter().any(|e| e.msg
        == Message::PreVoteReply {
            ballot: asked,
            granted: true
        }));
}

#[test]
fn a_heartbeat_read_after_the_leaders_link_closed_does_not_revive_it() {
    // The dead leader's last heartbeat came on its own connection, read after
    // our link to it closed: it must not make us refuse the successor for a
    // whole timeout (the race that failed CI with 20 s timeouts).
    let seen = Notice::LeaderSeen {
        ballot: Ballot::new(1, 2),
        first_unchosen: 0,
    };
    let asked = Ballot::new(2, 3);
    let granted = |out: &Outbox| {
        out.send.iter().any(|e| {
            e.msg
                == Message::PreVoteReply {
                    ballot: asked,
                    granted: true,
                }
        })
    };
    let mut other = following_two(4, cfg());
    let mut out = Outbox::new();
    other.notice(Notice::PeerGone { node: 2 }, &mut out);
    other.notice(seen.clone(), &mut out);
    other.handle(3, Message::PreVote { ballot: asked }, &mut out);
    assert!(granted(&out), "a stale heartbeat made it refuse");
    // Its link open again (a new process), its heartbeats count again.
    let mut out = Outbox::new();
    other.notice(Notice::PeerUp { node: 2 }, &mut out);
    other.notice(seen.clone(), &mut out);
    other.handle(3, Message::PreVote { ballot: asked }, &mut out);
    assert!(!granted(&out), "a live leader's heartbeat was ignored");

    // The successor, refused again and again, asks at 2, 4, 8, ... ticks.
    let slow = ProposerConfig {
        election_ticks: (50, 50),
        ..cfg()
    };
    let mut next = following_two(3, slow);
    let mut out = Outbox::new();
    next.notice(Notice::PeerGone { node: 2 }, &mut out);
    next.notice(seen, &mut out);
    let mut asked_at = Vec::new();
    for t in 1..=120u32 {
        let mut out = Outbox::new();
        next.tick(&mut out);
        if !prevotes(&out).is_empty() {
            asked_at.push(t);
        }
    }
    // Then back to the drawn timeout of 50.
    assert_eq!(asked_at, vec![2, 6, 14, 30, 62, 112]);
}

#[test]
fn a_successor_known_gone_is_skipped_and_a_followers_death_changes_nothing() {
    // 3 is gone too: 4 is next after 2.
    let mut f = following_two(4, cfg());
    let mut out = Outbox::new();
    f.notice(Notice::PeerGone { node: 3 }, &mut out);
    assert_eq!(f.mode(), Mode::Follower, "3 did not lead");
    assert!(out.send.is_empty());
    assert_eq!(f.leader_hint(), Some(2));
    f.notice(Notice::PeerGone { node: 2 }, &mut out);
    assert_eq!(f.mode(), Mode::PreCandidate);
    // Wrapping: after 5 comes 1.
    let mut f = Proposer::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
    let mut out = Outbox::new();
    f.notice(
        Notice::LeaderSeen {
            ballot: Ballot::new(4, 3),
            first_unchosen: 0,
        },
        &mut out,
    );
    f.notice(Notice::PeerGone { node: 3 }, &mut out);
    assert_eq!(f.mode(), Mode::PreCandidate);
}

#[test]
fn fast_elections_can_be_switched_off_and_need_the_pre_vote() {
    let mut off = cfg();
    off.fast.fast_election = false;
    let mut f = following_two(3, off);
    let mut out = Outbox::new();
    f.notice(Notice::PeerGone { node: 2 }, &mut out);
    assert_eq!(f.mode(), Mode::Follower);
    assert!(out.send.is_empty() && out.persist.is_empty());
    // Without the pre-vote a fast election would raise rounds on a mere
    // closed link: it stays off.
    let mut f = Proposer::new(
        3,
        vec![1, 2, 3],
        Rules::breaking(Some(Rule::Prevote)),
        cfg(),
        1,
    );
    let mut out = Outbox::new();
    f.notice(
        Notice::LeaderSeen {
            ballot: Ballot::new(1, 2),
            first_unchosen: 0,
        },
        &mut out,
    );
    f.notice(Notice::PeerGone { node: 2 }, &mut out);
    assert_eq!(f.mode(), Mode::Follower);
    assert!(out.persist.is_empty());
}

#[test]
fn at_first_start_the_lowest_id_asks_once_a_majority_is_reachable() {
    let mut first = Proposer::new(1, vec![1, 2, 3, 4, 5], Rules::ALL, cfg(), 1);
    let mut out = Outbox::new();
    first.notice(Notice::PeerUp { node: 2 }, &mut out);
    assert_eq!(first.mode(), Mode::Follower, "two of five is no majority");
    first.notice(Notice::PeerUp { node: 4 }, &mut out);
    assert_eq!(first.mode(), Mode::PreCandidate);
    assert_eq!(prevotes(&out), vec![2, 3, 4, 5]);

    // Any other id waits for its timeout.
    let mut other = Proposer::new(2, vec![1, 2, 3], Rules::ALL, cfg(), 1);
    let mut out = Outbox::new();
    other.notice(Notice::PeerUp { node: 1 }, &mut out);
    other.notice(Notice::PeerUp { node: 3 }, &mut out);
    assert!(out.send.is_empty());

    // Once a leader was heard (a restart into a running cluster), reaching
    // peers again asks nothing.
    let mut back = Proposer::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
    let mut out = Outbox::new();
    back.notice(
        Notice::LeaderSeen {
            ballot: Ballot::new(3, 2),
            first_unchosen: 0,
        },
        &mut out,
    );
    back.notice(Notice::PeerUp { node: 2 }, &mut out);
    back.notice(Notice::PeerUp { node: 3 }, &mut out);
    assert_eq!(back.mode(), Mode::Follower);
    assert!(prevotes(&out).is_empty());
}

#[test]
fn with_flexible_quorums_phase_1_counts_q1_and_a_read_is_confirmed_by_q2() {
    // Four nodes, (3, 2): two promises (with its own) are not enough to lead;
    // three are. Then a read is confirmed by two acknowledgements.
    let q = ProposerConfig {
        quorums: Some(Quorums {
            phase1: 3,
            phase2: 2,
        }),
        ..cfg()
    };
    let mut l = Proposer::new(1, vec![1, 2, 3, 4], Rules::ALL, q, 1);
    let mut out = Outbox::new();
    for _ in 0..4 {
        l.tick(&mut out);
    }
    let asked = l.prevote.as_ref().map(|(b, _)| *b).expect("a pre-vote");
    l.handle(
        2,
        Message::PreVoteReply {
            ballot: asked,
            granted: true,
        },
        &mut out,
    );
    assert_eq!(l.mode(), Mode::PreCandidate, "2 of 4 pre-votes: not Q1");
    l.handle(
        3,
        Message::PreVoteReply {
            ballot: asked,
            granted: true,
        },
        &mut out,
    );
    assert_eq!(l.mode(), Mode::Candidate);
    let ballot = l.ballot();
    let promise = Message::Promise {
        ballot,
        from_slot: 0,
        accepted: vec![],
        next: None,
        floor: 0,
    };
    for from in [1, 2] {
        l.handle(from, promise.clone(), &mut out);
    }
    assert_eq!(l.mode(), Mode::Candidate, "2 of 4 promises: not Q1");
    l.handle(3, promise, &mut out);
    assert_eq!(l.mode(), Mode::Leader);
    // The election's round, confirmed by Q2 = 2 acknowledgements.
    let mut out = Outbox::new();
    let sent = l.hb_seq;
    ack(&mut l, 1, sent, &mut out);
    ack(&mut l, 2, sent, &mut out);
    // A read starts a round at once and is served once Q2 confirm that one.
    let mut out = Outbox::new();
    l.notice(Notice::Request(read(1)), &mut out);
    assert_eq!(l.hb_seq, sent + 1);
    ack(&mut l, 1, sent + 1, &mut out);
    assert!(!out.notices.iter().any(|n| n.kind() == "Read"));
    ack(&mut l, 3, sent + 1, &mut out);
    assert!(
        out.notices.iter().any(|n| n.kind() == "Read"),
        "Q2 = 2 acknowledgements confirm the read"
    );
}

fn change(voters: &[NodeId], force: bool) -> Change {
    Change {
        voters: voters.iter().copied().collect(),
        learners: Default::default(),
        quorums: None,
        contacts: Default::default(),
        force,
    }
}

#[test]
fn membership_changes_are_refused_by_each_guard_with_the_reason() {
    let mut f = Proposer::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
    let mut out = Outbox::new();
    let why = f.reconfigure(change(&[1, 2], false), &mut out).unwrap_err();
    assert!(why.contains("does not lead"), "{why}");

    let mut l = Proposer::new(1, vec![1, 2, 3], Rules::ALL, cfg(), 1);
    elect(&mut l, vec![]);
    for n in [2, 3] {
        l.notice(Notice::PeerUp { node: n }, &mut out);
    }
    // The 2015 trap: no change before an entry of this ballot is chosen. The
    // leader proposes a no-op at once, so the operator's retry succeeds.
    let mut out = Outbox::new();
    let why = l.reconfigure(change(&[1, 2], false), &mut out).unwrap_err();
    assert!(
        why.contains("own ballot") && why.ends_with("; retry"),
        "{why}"
    );
    let mine = *accepts(&out)
        .last()
        .map(|(s, _)| s)
        .expect("a no-op of its own");
    let mut out = Outbox::new();
    for slot in 0..=mine {
        l.notice(Notice::SlotChosen { slot }, &mut out);
    }

    // The strict check, and a configuration that is not valid.
    let why = l
        .reconfigure(change(&[1, 4, 5], false), &mut out)
        .unwrap_err();
    assert!(
        why.contains("only 1 of the new configuration's 3 voters are reachable"),
        "{why}"
    );
    let why = l.reconfigure(change(&[], false), &mut out).unwrap_err();
    assert!(why.contains("at least one voter"), "{why}");

    // One change at a time: while one is proposed, and while one is chosen
    // and not yet in force.
    let slot = l.reconfigure(change(&[1, 2], false), &mut out).unwrap();
    let why = l
        .reconfigure(change(&[1, 2, 3], false), &mut out)
        .unwrap_err();
    assert!(why.contains("proposed and not yet chosen"), "{why}");
    let value = accepts(&out)
        .into_iter()
        .find(|(s, _)| *s == slot)
        .map(|(_, v)| v)
        .expect("the change is proposed");
    let mut configs = l.configs().clone();
    assert!(configs.learn(slot, &value));
    let mut out = Outbox::new();
    l.notice(Notice::Configured(Box::new(configs)), &mut out);
    l.notice(Notice::SlotChosen { slot }, &mut out);
    let why = l
        .reconfigure(change(&[1, 2, 3], true), &mut out)
        .unwrap_err();
    assert!(
        why.contains("takes effect at slot") && why.contains("one change at a time"),
        "{why}"
    );

    // Idle, the leader fills the gap with no-ops (within its window) so the
    // change takes effect.
    let filled: Vec<Slot> = accepts(&out)
        .into_iter()
        .filter(|(s, v)| *s > slot && *v == Value::Noop)
        .map(|(s, _)| s)
        .collect();
    assert_eq!(filled, vec![slot + 1, slot + 2], "no-ops toward the change");
}
