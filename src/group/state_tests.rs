//! Unit tests of the group state machine: whole rebalances driven by events and a fake clock.

use super::*;

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;

fn cfg(delay: i32) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: delay,
        ..GroupConfig::default()
    }
}

fn protos(list: &[(&str, &str)]) -> Vec<Protocol> {
    list.iter()
        .map(|(n, m)| Protocol {
            name: n.to_string(),
            metadata: Bytes::from(m.to_string()),
        })
        .collect()
}

fn jreq(req: ReqId, member: &str, instance: Option<&str>, p: &[(&str, &str)]) -> JoinRequest {
    JoinRequest {
        req,
        member_id: member.to_string(),
        group_instance_id: instance.map(str::to_string),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: protos(p),
        require_known_member_id: true,
    }
}

fn sreq(req: ReqId, member: &str, gen_: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        req,
        member_id: member.to_string(),
        group_instance_id: None,
        generation_id: gen_,
        protocol_type: Some("consumer".into()),
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
            .collect(),
    }
}

fn join_of(replies: &[Reply], req: ReqId) -> Option<JoinResult> {
    replies.iter().find_map(|r| match r {
        Reply::Join(q, j) if *q == req => Some(j.clone()),
        _ => None,
    })
}

fn sync_of(replies: &[Reply], req: ReqId) -> Option<SyncResult> {
    replies.iter().find_map(|r| match r {
        Reply::Sync(q, s) if *q == req => Some(s.clone()),
        _ => None,
    })
}

const RANGE: &[(&str, &str)] = &[("range", "m")];

/// Two-step v4 join: returns the assigned member id (and checks MEMBER_ID_REQUIRED).
fn get_member_id(g: &mut Group, req: ReqId, now: Millis) -> String {
    let out = g.join(jreq(req, "", None, RANGE), now);
    let j = join_of(&out, req).expect("immediate answer");
    assert_eq!(j.error, err::MEMBER_ID_REQUIRED);
    assert!(!j.member_id.is_empty());
    j.member_id
}

/// Builds a Stable group of `n` members (first is leader); returns member ids and generation.
fn stable_group(g: &mut Group, n: usize, now: Millis) -> (Vec<String>, i32) {
    let ids: Vec<String> = (0..n)
        .map(|i| get_member_id(g, 1000 + i as u64, now))
        .collect();
    let mut replies = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        replies.extend(g.join(jreq(i as u64, id, None, RANGE), now));
    }
    let gen_ = join_of(&replies, 0).unwrap().generation_id;
    let assignments: Vec<(String, String)> = ids
        .iter()
        .map(|id| (id.clone(), format!("a-{id}")))
        .collect();
    let a: Vec<(&str, &str)> = assignments
        .iter()
        .map(|(m, x)| (m.as_str(), x.as_str()))
        .collect();
    let mut out = Vec::new();
    for (i, id) in ids.iter().enumerate().rev() {
        let asg: &[(&str, &str)] = if i == 0 { &a } else { &[] };
        out.extend(g.sync(sreq(500 + i as u64, id, gen_, asg), now));
    }
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            sync_of(&out, 500 + i as u64).unwrap().assignment,
            Bytes::from(format!("a-{id}"))
        );
    }
    assert_eq!(g.state(), State::Stable);
    (ids, gen_)
}

#[test]
fn three_members_rebalance_and_sync() {
    let mut g = Group::new("g", cfg(0), 0);
    let a = get_member_id(&mut g, 100, 0);
    let b = get_member_id(&mut g, 101, 0);
    let c = get_member_id(&mut g, 102, 0);
    assert_ne!(a, b);
    assert_eq!(g.state(), State::Empty);

    let out = g.join(jreq(1, &a, None, RANGE), 0);
    // b and c are pending (got ids), so the join waits for them.
    assert!(out.is_empty());
    assert_eq!(g.state(), State::PreparingRebalance);
    assert!(g.join(jreq(2, &b, None, RANGE), 1).is_empty());
    let out = g.join(jreq(3, &c, None, RANGE), 2);
    assert_eq!(out.len(), 3);
    let ja = join_of(&out, 1).unwrap();
    let jb = join_of(&out, 2).unwrap();
    assert_eq!(ja.error, err::NONE);
    assert_eq!(ja.generation_id, 1);
    assert_eq!(ja.leader, a);
    assert_eq!(jb.leader, a);
    assert_eq!(ja.members.len(), 3, "leader gets the member list");
    assert!(jb.members.is_empty(), "followers do not");
    assert_eq!(ja.protocol_name.as_deref(), Some("range"));
    assert_eq!(g.state(), State::CompletingRebalance);

    // Followers' syncs wait for the leader.
    assert!(g.sync(sreq(11, &b, 1, &[]), 3).is_empty());
    assert!(g.sync(sreq(12, &c, 1, &[]), 3).is_empty());
    let out = g.sync(sreq(10, &a, 1, &[(&a, "pa"), (&b, "pb"), (&c, "pc")]), 4);
    assert_eq!(out.len(), 3);
    assert_eq!(sync_of(&out, 10).unwrap().assignment, Bytes::from("pa"));
    assert_eq!(sync_of(&out, 11).unwrap().assignment, Bytes::from("pb"));
    assert_eq!(sync_of(&out, 12).unwrap().assignment, Bytes::from("pc"));
    assert_eq!(g.state(), State::Stable);
    // A late sync in Stable gets the stored assignment right away.
    let out = g.sync(sreq(13, &c, 1, &[]), 5);
    assert_eq!(sync_of(&out, 13).unwrap().assignment, Bytes::from("pc"));
    assert_eq!(g.heartbeat(&b, None, 1, 6), err::NONE);
}

#[test]
fn new_member_triggers_rebalance_and_heartbeats_signal_it() {
    let mut g = Group::new("g", cfg(0), 0);
    let (ids, gen_) = stable_group(&mut g, 2, 0);
    let c = get_member_id(&mut g, 200, 10);
    let out = g.join(jreq(20, &c, None, RANGE), 10);
    assert!(out.is_empty());
    assert_eq!(g.state(), State::PreparingRebalance);
    assert_eq!(
        g.heartbeat(&ids[0], None, gen_, 11),
        err::REBALANCE_IN_PROGRESS
    );
    // Commits of the current generation stay allowed while preparing (onPartitionsRevoked).
    assert_eq!(g.validate_commit(&ids[1], None, gen_, 11), err::NONE);
    let mut out = g.join(jreq(21, &ids[0], None, RANGE), 12);
    out.extend(g.join(jreq(22, &ids[1], None, RANGE), 13));
    assert_eq!(out.len(), 3);
    let j = join_of(&out, 21).unwrap();
    assert_eq!(j.generation_id, gen_ + 1);
    assert_eq!(j.leader, ids[0], "leader stays the first joiner");
    assert_eq!(j.members.len(), 3);
    // Old generation is fenced now.
    assert_eq!(
        g.heartbeat(&ids[1], None, gen_, 14),
        err::ILLEGAL_GENERATION
    );
    assert_eq!(
        sync_of(&g.sync(sreq(23, &ids[1], gen_, &[]), 14), 23)
            .unwrap()
            .error,
        err::ILLEGAL_GENERATION
    );
    assert_eq!(
        g.validate_commit(&ids[1], None, gen_ + 1, 14),
        err::REBALANCE_IN_PROGRESS
    );
    assert_eq!(
        g.heartbeat("nobody", None, gen_ + 1, 14),
        err::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn silent_member_expires_and_group_rebalances_without_it() {
    let mut g = Group::new("g", cfg(0), 0);
    let (ids, gen_) = stable_group(&mut g, 2, 0);
    // Member 0 heartbeats, member 1 goes silent.
    for t in (1000..=SESSION as i64).step_by(1000) {
        assert_eq!(g.heartbeat(&ids[0], None, gen_, t), err::NONE);
        assert!(g.tick(t).is_empty());
    }
    assert_eq!(g.state(), State::Stable);
    assert_eq!(g.next_deadline(), Some(SESSION as i64));
    let out = g.tick(SESSION as i64 + 1);
    assert!(out.is_empty());
    assert_eq!(g.state(), State::PreparingRebalance);
    assert!(!g.has_member(&ids[1]));
    assert_eq!(
        g.heartbeat(&ids[0], None, gen_, SESSION as i64 + 2),
        err::REBALANCE_IN_PROGRESS
    );
    let out = g.join(jreq(30, &ids[0], None, RANGE), SESSION as i64 + 3);
    let j = join_of(&out, 30).unwrap();
    assert_eq!(j.generation_id, gen_ + 1);
    assert_eq!(j.members.len(), 1);
}

#[test]
fn member_not_rejoining_is_dropped_at_rebalance_timeout() {
    let mut g = Group::new("g", cfg(0), 0);
    let (ids, gen_) = stable_group(&mut g, 3, 0);
    let c = get_member_id(&mut g, 300, 100);
    assert!(g.join(jreq(31, &c, None, RANGE), 100).is_empty());
    assert!(g.join(jreq(32, &ids[0], None, RANGE), 101).is_empty());
    assert!(g.join(jreq(33, &ids[1], None, RANGE), 102).is_empty());
    // ids[2] keeps heartbeating but never rejoins.
    for t in (5000..REBALANCE as i64).step_by(5000) {
        assert_eq!(
            g.heartbeat(&ids[2], None, gen_, t),
            err::REBALANCE_IN_PROGRESS
        );
        assert!(g.tick(t).is_empty());
    }
    assert!(g.tick(100 + REBALANCE as i64 - 1).is_empty());
    assert_eq!(g.state(), State::PreparingRebalance);
    let out = g.tick(100 + REBALANCE as i64);
    assert_eq!(out.len(), 3);
    assert_eq!(join_of(&out, 31).unwrap().generation_id, gen_ + 1);
    assert!(!g.has_member(&ids[2]));
    assert_eq!(
        g.heartbeat(&ids[2], None, gen_ + 1, 100 + REBALANCE as i64),
        err::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn member_leaving_mid_rebalance_lets_join_complete() {
    let mut g = Group::new("g", cfg(0), 0);
    let (ids, gen_) = stable_group(&mut g, 3, 0);
    // ids[0] (leader) rejoins with changed metadata → rebalance.
    let out = g.join(jreq(40, &ids[0], None, &[("range", "changed")]), 10);
    assert!(out.is_empty());
    assert!(g.join(jreq(41, &ids[1], None, RANGE), 11).is_empty());
    // ids[2] leaves instead of rejoining: the join completes at once.
    let (codes, out) = g.leave(&[(ids[2].clone(), None)], 12);
    assert_eq!(codes, vec![err::NONE]);
    assert_eq!(out.len(), 2);
    let j = join_of(&out, 40).unwrap();
    assert_eq!(j.generation_id, gen_ + 1);
    assert_eq!(j.members.len(), 2);
    assert!(j.members.iter().any(|m| m.metadata == "changed"));
    // Leaving twice: unknown.
    let (codes, _) = g.leave(&[(ids[2].clone(), None)], 13);
    assert_eq!(codes, vec![err::UNKNOWN_MEMBER_ID]);
}

#[test]
fn leader_leaving_during_sync_restarts_rebalance_with_new_leader() {
    let mut g = Group::new("g", cfg(0), 0);
    let a = get_member_id(&mut g, 1, 0);
    let b = get_member_id(&mut g, 2, 0);
    g.join(jreq(3, &a, None, RANGE), 0);
    let out = g.join(jreq(4, &b, None, RANGE), 0);
    assert_eq!(join_of(&out, 3).unwrap().leader, a);
    assert!(g.sync(sreq(5, &b, 1, &[]), 1).is_empty());
    let (codes, out) = g.leave(&[(a.clone(), None)], 2);
    assert_eq!(codes, vec![err::NONE]);
    // b's parked sync is told to rejoin.
    assert_eq!(sync_of(&out, 5).unwrap().error, err::REBALANCE_IN_PROGRESS);
    assert_eq!(g.state(), State::PreparingRebalance);
    assert_eq!(g.leader(), Some(b.as_str()));
    let out = g.join(jreq(6, &b, None, RANGE), 3);
    let j = join_of(&out, 6).unwrap();
    assert_eq!((j.generation_id, j.leader.as_str()), (2, b.as_str()));
}

#[test]
fn last_member_leaving_empties_group() {
    let mut g = Group::new("g", cfg(0), 0);
    let (ids, gen_) = stable_group(&mut g, 1, 0);
    let (codes, _) = g.leave(&[(ids[0].clone(), None)], 5);
    assert_eq!(codes, vec![err::NONE]);
    assert_eq!(g.state(), State::Empty);
    assert_eq!(g.generation(), gen_ + 1);
    assert_eq!(g.validate_commit("", None, -1, 6), err::NONE);
    assert_eq!(
        g.validate_commit(&ids[0], None, gen_, 6),
        err::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn protocol_chosen_is_supported_by_all_by_vote() {
    let mut g = Group::new("g", cfg(0), 0);
    let a = get_member_id(&mut g, 1, 0);
    let b = get_member_id(&mut g, 2, 0);
    let c = get_member_id(&mut g, 3, 0);
    g.join(
        jreq(4, &a, None, &[("sticky", "1"), ("range", "2"), ("rr", "3")]),
        0,
    );
    g.join(jreq(5, &b, None, &[("range", "1"), ("rr", "x")]), 0);
    let out = g.join(jreq(6, &c, None, &[("rr", "1"), ("range", "2")]), 0);
    // Common: range, rr. Votes: a→range, b→range, c→rr.
    let j = join_of(&out, 4).unwrap();
    assert_eq!(j.protocol_name.as_deref(), Some("range"));
    // Leader receives each member's metadata for the chosen protocol.
    let meta: Vec<_> = j.members.iter().map(|m| m.metadata.clone()).collect();
    assert_eq!(
        meta,
        vec![Bytes::from("2"), Bytes::from("1"), Bytes::from("2")]
    );
    // A member supporting none of them is refused.
    let out = g.join(jreq(7, "", None, &[("other", "")]), 1);
    assert_eq!(
        join_of(&out, 7).unwrap().error,
        err::INCONSISTENT_GROUP_PROTOCOL
    );
    let mut bad = jreq(8, "", None, RANGE);
    bad.protocol_type = "connect".into();
    assert_eq!(
        join_of(&g.join(bad, 1), 8).unwrap().error,
        err::INCONSISTENT_GROUP_PROTOCOL
    );
}

#[test]
fn join_validation_errors() {
    let mut g = Group::new("g", cfg(0), 0);
    let mut r = jreq(1, "", None, RANGE);
    r.session_timeout_ms = 10;
    assert_eq!(
        join_of(&g.join(r, 0), 1).unwrap().error,
        err::INVALID_SESSION_TIMEOUT
    );
    let out = g.join(jreq(2, "made-up", None, RANGE), 0);
    assert_eq!(join_of(&out, 2).unwrap().error, err::UNKNOWN_MEMBER_ID);
    // v0-v3 clients join in one step.
    let mut r = jreq(3, "", None, RANGE);
    r.require_known_member_id = false;
    let out = g.join(r, 0);
    let j = join_of(&out, 3).unwrap();
    assert_eq!(j.error, err::NONE);
    assert_eq!(j.generation_id, 1);
    assert!(!j.member_id.is_empty());
}

#[test]
fn pending_member_id_expires() {
    let mut g = Group::new("g", cfg(0), 0);
    let (ids, _) = stable_group(&mut g, 1, 0);
    let p = get_member_id(&mut g, 9, 100);
    // A rebalance waits for the pending member...
    g.join(jreq(10, &ids[0], None, &[("range", "new")]), 200);
    assert_eq!(g.state(), State::PreparingRebalance);
    // ...until its session timeout, then completes without it.
    let out = g.tick(100 + SESSION as i64);
    assert_eq!(join_of(&out, 10).unwrap().members.len(), 1);
    let out = g.join(jreq(11, &p, None, RANGE), 100 + SESSION as i64 + 1);
    assert_eq!(join_of(&out, 11).unwrap().error, err::UNKNOWN_MEMBER_ID);
}

#[test]
fn initial_rebalance_delay_collects_members() {
    let mut g = Group::new("g", cfg(3000), 0);
    let mut r = jreq(1, "", None, RANGE);
    r.require_known_member_id = false;
    assert!(g.join(r, 0).is_empty());
    let mut r = jreq(2, "", None, RANGE);
    r.require_known_member_id = false;
    assert!(g.join(r, 1000).is_empty());
    assert!(g.tick(2999).is_empty());
    // Second arrival at 1000 extended the window to 4000.
    assert!(g.tick(3500).is_empty());
    let out = g.tick(4000);
    assert_eq!(out.len(), 2);
    assert_eq!(join_of(&out, 1).unwrap().members.len(), 2);
}

#[test]
fn static_member_rejoin_keeps_assignment_and_fences_old_id() {
    let mut g = Group::new("g", cfg(0), 0);
    let out = g.join(jreq(1, "", Some("inst-a"), RANGE), 0);
    // Static members skip MEMBER_ID_REQUIRED.
    let a1 = join_of(&out, 1).unwrap();
    assert_eq!(a1.error, err::NONE);
    let b = get_member_id(&mut g, 2, 1);
    // b joins → rebalance, a rejoins with id.
    g.join(jreq(3, &b, None, RANGE), 1);
    let out = g.join(jreq(4, &a1.member_id, Some("inst-a"), RANGE), 2);
    let j = join_of(&out, 4).unwrap();
    assert_eq!(j.leader, a1.member_id);
    let gen_ = j.generation_id;
    let a = a1.member_id.clone();
    g.sync(sreq(5, &b, gen_, &[]), 3);
    g.sync(sreq(6, &a, gen_, &[(&a, "pa"), (&b, "pb")]), 3);
    assert_eq!(g.state(), State::Stable);

    // The static member restarts: joins with no member id, same instance id, same protocols.
    let out = g.join(jreq(7, "", Some("inst-a"), RANGE), 10);
    let j = join_of(&out, 7).unwrap();
    assert_eq!(j.error, err::NONE);
    assert_eq!(j.generation_id, gen_, "no rebalance for a static rejoin");
    assert_ne!(j.member_id, a);
    assert_eq!(j.leader, j.member_id, "leadership moves to the new id");
    assert!(j.skip_assignment);
    assert_eq!(g.state(), State::Stable);
    let mut s = sreq(8, &j.member_id, gen_, &[]);
    s.group_instance_id = Some("inst-a".into());
    assert_eq!(
        sync_of(&g.sync(s, 11), 8).unwrap().assignment,
        Bytes::from("pa")
    );

    // The old incarnation is fenced everywhere.
    assert_eq!(
        g.heartbeat(&a, Some("inst-a"), gen_, 12),
        err::FENCED_INSTANCE_ID
    );
    assert_eq!(
        g.validate_commit(&a, Some("inst-a"), gen_, 12),
        err::FENCED_INSTANCE_ID
    );
    let out = g.join(jreq(9, &a, Some("inst-a"), RANGE), 12);
    assert_eq!(join_of(&out, 9).unwrap().error, err::FENCED_INSTANCE_ID);
    let (codes, _) = g.leave(&[(a.clone(), Some("inst-a".into()))], 12);
    assert_eq!(codes, vec![err::FENCED_INSTANCE_ID]);
    // Batched leave by instance id (v3+).
    let (codes, _) = g.leave(
        &[
            ("".into(), Some("inst-a".into())),
            ("".into(), Some("inst-zz".into())),
        ],
        13,
    );
    assert_eq!(codes, vec![err::NONE, err::UNKNOWN_MEMBER_ID]);
    assert_eq!(g.state(), State::PreparingRebalance);
}

#[test]
fn static_rejoin_while_parked_fences_old_request() {
    let mut g = Group::new("g", cfg(0), 0);
    let a = join_of(&g.join(jreq(1, "", Some("s"), RANGE), 0), 1)
        .unwrap()
        .member_id;
    let b = get_member_id(&mut g, 2, 0);
    g.join(jreq(3, &b, None, RANGE), 0);
    // a's first join already completed generation 1; b's arrival needs a rejoin of a.
    let out = g.join(jreq(4, &a, Some("s"), RANGE), 1);
    assert_eq!(out.len(), 2);
    assert_eq!(join_of(&out, 4).unwrap().generation_id, 2);
    let gen_ = g.generation();
    g.sync(sreq(5, &b, gen_, &[]), 2);
    // In CompletingRebalance a restarted static member forces a new rebalance; b's sync is told.
    let out = g.join(jreq(6, "", Some("s"), RANGE), 3);
    assert_eq!(sync_of(&out, 5).unwrap().error, err::REBALANCE_IN_PROGRESS);
    assert_eq!(g.state(), State::PreparingRebalance);
    let out = g.join(jreq(7, &b, None, RANGE), 4);
    let j = join_of(&out, 6).unwrap();
    assert_eq!(j.generation_id, gen_ + 1);
    assert_ne!(j.member_id, a);
}

#[test]
fn sync_and_heartbeat_errors_by_state() {
    let mut g = Group::new("g", cfg(0), 0);
    assert_eq!(g.heartbeat("x", None, 0, 0), err::UNKNOWN_MEMBER_ID);
    assert_eq!(
        sync_of(&g.sync(sreq(1, "x", 0, &[]), 0), 1).unwrap().error,
        err::UNKNOWN_MEMBER_ID
    );
    let (ids, gen_) = stable_group(&mut g, 2, 0);
    let mut s = sreq(2, &ids[0], gen_, &[]);
    s.protocol_name = Some("roundrobin".into());
    assert_eq!(
        sync_of(&g.sync(s, 1), 2).unwrap().error,
        err::INCONSISTENT_GROUP_PROTOCOL
    );
    g.join(jreq(3, &ids[1], None, &[("range", "v2")]), 2);
    assert_eq!(
        sync_of(&g.sync(sreq(4, &ids[0], gen_, &[]), 3), 4)
            .unwrap()
            .error,
        err::REBALANCE_IN_PROGRESS
    );
    let out = g.set_dead(4);
    assert_eq!(
        join_of(&out, 3).unwrap().error,
        err::COORDINATOR_NOT_AVAILABLE
    );
    assert_eq!(
        g.heartbeat(&ids[0], None, gen_, 5),
        err::COORDINATOR_NOT_AVAILABLE
    );
}

#[test]
fn describe_shows_members_when_stable() {
    let mut g = Group::new("g", cfg(0), 0);
    let (ids, _) = stable_group(&mut g, 2, 0);
    let d = g.describe();
    assert_eq!(d.state.name(), "Stable");
    assert_eq!(d.protocol, "range");
    assert_eq!(d.protocol_type, "consumer");
    assert_eq!(d.members.len(), 2);
    assert_eq!(
        d.members[1].assignment,
        Bytes::from(format!("a-{}", ids[1]))
    );
    assert_eq!(d.members[0].metadata, Bytes::from("m"));
}

#[test]
fn known_member_rejoin_in_stable_returns_current_generation() {
    let mut g = Group::new("g", cfg(0), 0);
    let (ids, gen_) = stable_group(&mut g, 2, 0);
    let out = g.join(jreq(1, &ids[1], None, RANGE), 5);
    let j = join_of(&out, 1).unwrap();
    assert_eq!((j.error, j.generation_id), (err::NONE, gen_));
    assert_eq!(g.state(), State::Stable);
    // The leader rejoining always rebalances (so it can reassign).
    assert!(g.join(jreq(2, &ids[0], None, RANGE), 6).is_empty());
    assert_eq!(g.state(), State::PreparingRebalance);
}
