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
        supports_skip_assignment: true,
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

/// What the coordinator's timer does at `now`: ticks until nothing more is due (an initial
/// rebalance with a delay of 0 may re-arm itself once per batch of new members).
fn fire(g: &mut Group, now: Millis) -> Vec<Reply> {
    let mut out = Vec::new();
    for _ in 0..10 {
        out.extend(g.tick(now));
        if g.next_deadline().is_none_or(|d| d > now) {
            break;
        }
    }
    out
}

/// Two-step v4 join: returns the assigned member id (and checks MEMBER_ID_REQUIRED).
fn get_member_id(g: &mut Group, req: ReqId, now: Millis) -> String {
    let out = g.join(jreq(req, "", None, RANGE), now);
    let j = join_of(&out, req).expect("immediate answer");
    assert_eq!(j.error, ResponseError::MemberIdRequired.code());
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
    replies.extend(fire(g, now));
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
    // The first rebalance of an Empty group completes only on its timer, even with no delay.
    assert!(out.is_empty());
    assert_eq!(g.state(), State::PreparingRebalance);
    assert_eq!(g.next_deadline(), Some(0));
    assert!(g.join(jreq(2, &b, None, RANGE), 1).is_empty());
    assert!(g.join(jreq(3, &c, None, RANGE), 2).is_empty());
    // The timer finds new members since it was armed: it waits another (zero) delay, then ends.
    assert!(g.tick(2).is_empty());
    let out = g.tick(2);
    assert_eq!(out.len(), 3);
    let ja = join_of(&out, 1).unwrap();
    let jb = join_of(&out, 2).unwrap();
    assert_eq!(ja.error, errors::NONE);
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
    assert_eq!(g.heartbeat(&b, None, 1, 6), errors::NONE);
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
        ResponseError::RebalanceInProgress.code()
    );
    // Commits of the current generation stay allowed while preparing (onPartitionsRevoked).
    assert_eq!(g.validate_commit(&ids[1], None, gen_, 11), errors::NONE);
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
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        sync_of(&g.sync(sreq(23, &ids[1], gen_, &[]), 14), 23)
            .unwrap()
            .error,
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        g.validate_commit(&ids[1], None, gen_ + 1, 14),
        ResponseError::RebalanceInProgress.code()
    );
    assert_eq!(
        g.heartbeat("nobody", None, gen_ + 1, 14),
        ResponseError::UnknownMemberId.code()
    );
}

#[test]
fn silent_member_expires_and_group_rebalances_without_it() {
    let mut g = Group::new("g", cfg(0), 0);
    let (ids, gen_) = stable_group(&mut g, 2, 0);
    // Member 0 heartbeats, member 1 goes silent.
    for t in (1000..SESSION as i64).step_by(1000) {
        assert_eq!(g.heartbeat(&ids[0], None, gen_, t), errors::NONE);
        assert!(g.tick(t).is_empty());
    }
    assert!(g.tick(SESSION as i64 - 1).is_empty());
    assert_eq!(g.state(), State::Stable);
    assert_eq!(g.next_deadline(), Some(SESSION as i64));
    // Gone exactly when the session timeout has elapsed since its last request.
    let out = g.tick(SESSION as i64);
    assert!(out.is_empty());
    assert_eq!(g.state(), State::PreparingRebalance);
    assert!(!g.has_member(&ids[1]));
    assert_eq!(
        g.heartbeat(&ids[0], None, gen_, SESSION as i64 + 2),
        ResponseError::RebalanceInProgress.code()
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
            ResponseError::RebalanceInProgress.code()
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
        ResponseError::UnknownMemberId.code()
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
    assert_eq!(codes, vec![errors::NONE]);
    assert_eq!(out.len(), 2);
    let j = join_of(&out, 40).unwrap();
    assert_eq!(j.generation_id, gen_ + 1);
    assert_eq!(j.members.len(), 2);
    assert!(j.members.iter().any(|m| m.metadata == "changed"));
    // Leaving twice: unknown.
    let (codes, _) = g.leave(&[(ids[2].clone(), None)], 13);
    assert_eq!(codes, vec![ResponseError::UnknownMemberId.code()]);
}

#[test]
fn leader_leaving_during_sync_restarts_rebalance_with_new_leader() {
    let mut g = Group::new("g", cfg(0), 0);
    let a = get_member_id(&mut g, 1, 0);
    let b = get_member_id(&mut g, 2, 0);
    g.join(jreq(3, &a, None, RANGE), 0);
    g.join(jreq(4, &b, None, RANGE), 0);
    let out = fire(&mut g, 0);
    assert_eq!(join_of(&out, 3).unwrap().leader, a);
    assert!(g.sync(sreq(5, &b, 1, &[]), 1).is_empty());
    let (codes, out) = g.leave(&[(a.clone(), None)], 2);
    assert_eq!(codes, vec![errors::NONE]);
    // b's parked sync is told to rejoin.
    assert_eq!(
        sync_of(&out, 5).unwrap().error,
        ResponseError::RebalanceInProgress.code()
    );
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
    assert_eq!(codes, vec![errors::NONE]);
    assert_eq!(g.state(), State::Empty);
    assert_eq!(g.generation(), gen_ + 1);
    assert_eq!(g.validate_commit("", None, -1, 6), errors::NONE);
    assert_eq!(
        g.validate_commit(&ids[0], None, gen_, 6),
        ResponseError::UnknownMemberId.code()
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
    g.join(jreq(6, &c, None, &[("rr", "1"), ("range", "2")]), 0);
    let out = fire(&mut g, 0);
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
        ResponseError::InconsistentGroupProtocol.code()
    );
    let mut bad = jreq(8, "", None, RANGE);
    bad.protocol_type = "connect".into();
    assert_eq!(
        join_of(&g.join(bad, 1), 8).unwrap().error,
        ResponseError::InconsistentGroupProtocol.code()
    );
}

#[test]
fn join_validation_errors() {
    let mut g = Group::new("g", cfg(0), 0);
    let mut r = jreq(1, "", None, RANGE);
    r.session_timeout_ms = 10;
    assert_eq!(
        join_of(&g.join(r, 0), 1).unwrap().error,
        ResponseError::InvalidSessionTimeout.code()
    );
    let out = g.join(jreq(2, "made-up", None, RANGE), 0);
    assert_eq!(
        join_of(&out, 2).unwrap().error,
        ResponseError::UnknownMemberId.code()
    );
    // v0-v3 clients join in one step.
    let mut r = jreq(3, "", None, RANGE);
    r.require_known_member_id = false;
    assert!(g.join(r, 0).is_empty());
    let out = fire(&mut g, 0);
    let j = join_of(&out, 3).unwrap();
    assert_eq!(j.error, errors::NONE);
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
    assert_eq!(
        join_of(&out, 11).unwrap().error,
        ResponseError::UnknownMemberId.code()
    );
}

#[test]
fn initial_rebalance_delay_collects_members() {
    let mut g = Group::new("g", cfg(3000), 0);
    let mut r = jreq(1, "", None, RANGE);
    r.require_known_member_id = false;
    assert!(g.join(r, 0).is_empty());
    assert_eq!(g.next_deadline(), Some(3000));
    let mut r = jreq(2, "", None, RANGE);
    r.require_known_member_id = false;
    assert!(g.join(r, 1000).is_empty());
    assert!(g.tick(2999).is_empty());
    // A member arrived since the timer was armed: when it fires it waits another delay
    // (Kafka's InitialDelayedJoin), so the group completes at 6000, not 3000 or 4000.
    assert!(g.tick(3000).is_empty());
    assert_eq!(g.next_deadline(), Some(6000));
    assert!(g.tick(5999).is_empty());
    let out = g.tick(6000);
    assert_eq!(out.len(), 2);
    assert_eq!(join_of(&out, 1).unwrap().members.len(), 2);
    assert_eq!(g.state(), State::CompletingRebalance);
}

#[test]
fn initial_delay_extensions_stop_at_the_rebalance_timeout() {
    // Delay 3 s, first member's rebalance timeout 10 s: fires at 3, 6, 9 (capped to 1 s), 10.
    let mut g = Group::new("g", cfg(3000), 0);
    let join = |g: &mut Group, req: ReqId, t: Millis| {
        let mut r = jreq(req, "", Some(&format!("s{req}")), RANGE);
        r.rebalance_timeout_ms = 10_000;
        assert!(g.join(r, t).is_empty());
    };
    join(&mut g, 1, 0);
    for (req, joined_at, fires_at, next) in [
        (2, 2000, 3000, 6000),
        (3, 5000, 6000, 9000),
        (4, 8000, 9000, 10_000),
    ] {
        join(&mut g, req, joined_at);
        assert_eq!(g.next_deadline(), Some(fires_at));
        assert!(
            g.tick(fires_at).is_empty(),
            "a member joined since: extended"
        );
        assert_eq!(g.next_deadline(), Some(next));
    }
    // Another member joins, but the rebalance timeout is used up: the timer completes the join.
    join(&mut g, 5, 9500);
    let out = g.tick(10_000);
    assert_eq!(out.len(), 5, "every member is in generation 1");
    assert_eq!(g.generation(), 1);
}

#[test]
fn static_member_rejoin_keeps_assignment_and_fences_old_id() {
    let mut g = Group::new("g", cfg(0), 0);
    // Static members skip MEMBER_ID_REQUIRED.
    assert!(g.join(jreq(1, "", Some("inst-a"), RANGE), 0).is_empty());
    let a1 = join_of(&fire(&mut g, 0), 1).unwrap();
    assert_eq!(a1.error, errors::NONE);
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
    assert_eq!(j.error, errors::NONE);
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
        ResponseError::FencedInstanceId.code()
    );
    assert_eq!(
        g.validate_commit(&a, Some("inst-a"), gen_, 12),
        ResponseError::FencedInstanceId.code()
    );
    let out = g.join(jreq(9, &a, Some("inst-a"), RANGE), 12);
    assert_eq!(
        join_of(&out, 9).unwrap().error,
        ResponseError::FencedInstanceId.code()
    );
    let (codes, _) = g.leave(&[(a.clone(), Some("inst-a".into()))], 12);
    assert_eq!(codes, vec![ResponseError::FencedInstanceId.code()]);
    // Batched leave by instance id (v3+).
    let (codes, _) = g.leave(
        &[
            ("".into(), Some("inst-a".into())),
            ("".into(), Some("inst-zz".into())),
        ],
        13,
    );
    assert_eq!(
        codes,
        vec![errors::NONE, ResponseError::UnknownMemberId.code()]
    );
    assert_eq!(g.state(), State::PreparingRebalance);
}

#[test]
fn static_rejoin_while_parked_fences_old_request() {
    let mut g = Group::new("g", cfg(0), 0);
    g.join(jreq(1, "", Some("s"), RANGE), 0);
    let a = join_of(&fire(&mut g, 0), 1).unwrap().member_id;
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
    assert_eq!(
        sync_of(&out, 5).unwrap().error,
        ResponseError::RebalanceInProgress.code()
    );
    assert_eq!(g.state(), State::PreparingRebalance);
    let out = g.join(jreq(7, &b, None, RANGE), 4);
    let j = join_of(&out, 6).unwrap();
    assert_eq!(j.generation_id, gen_ + 1);
    assert_ne!(j.member_id, a);
}

#[test]
fn sync_and_heartbeat_errors_by_state() {
    let mut g = Group::new("g", cfg(0), 0);
    assert_eq!(
        g.heartbeat("x", None, 0, 0),
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(
        sync_of(&g.sync(sreq(1, "x", 0, &[]), 0), 1).unwrap().error,
        ResponseError::UnknownMemberId.code()
    );
    let (ids, gen_) = stable_group(&mut g, 2, 0);
    let mut s = sreq(2, &ids[0], gen_, &[]);
    s.protocol_name = Some("roundrobin".into());
    assert_eq!(
        sync_of(&g.sync(s, 1), 2).unwrap().error,
        ResponseError::InconsistentGroupProtocol.code()
    );
    g.join(jreq(3, &ids[1], None, &[("range", "v2")]), 2);
    assert_eq!(
        sync_of(&g.sync(sreq(4, &ids[0], gen_, &[]), 3), 4)
            .unwrap()
            .error,
        ResponseError::RebalanceInProgress.code()
    );
    let out = g.set_dead(4);
    assert_eq!(
        join_of(&out, 3).unwrap().error,
        ResponseError::CoordinatorNotAvailable.code()
    );
    assert_eq!(
        g.heartbeat(&ids[0], None, gen_, 5),
        ResponseError::CoordinatorNotAvailable.code()
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
    assert_eq!((j.error, j.generation_id), (errors::NONE, gen_));
    assert_eq!(g.state(), State::Stable);
    // The leader rejoining always rebalances (so it can reassign).
    assert!(g.join(jreq(2, &ids[0], None, RANGE), 6).is_empty());
    assert_eq!(g.state(), State::PreparingRebalance);
}

/// A Stable group of static members `(instance, session timeout)` (the first leads),
/// assignments "p-<inst>".
fn static_group(g: &mut Group, insts: &[(&str, i32)], now: Millis) -> (Vec<String>, i32) {
    for (i, (inst, session)) in insts.iter().enumerate() {
        let mut r = jreq(i as u64, "", Some(inst), RANGE);
        r.session_timeout_ms = *session;
        assert!(g.join(r, now).is_empty());
    }
    let out = fire(g, now);
    let ids: Vec<String> = (0..insts.len())
        .map(|i| join_of(&out, i as u64).unwrap().member_id)
        .collect();
    let gen_ = g.generation();
    let a: Vec<(String, String)> = ids
        .iter()
        .zip(insts)
        .map(|(id, (inst, _))| (id.clone(), format!("p-{inst}")))
        .collect();
    let a: Vec<(&str, &str)> = a.iter().map(|(m, x)| (m.as_str(), x.as_str())).collect();
    for (i, id) in ids.iter().enumerate().rev() {
        let asg: &[(&str, &str)] = if i == 0 { &a } else { &[] };
        g.sync(sreq(50 + i as u64, id, gen_, asg), now);
    }
    assert_eq!(g.state(), State::Stable);
    (ids, gen_)
}

fn stable_static_group(g: &mut Group, insts: &[&str], now: Millis) -> (Vec<String>, i32) {
    let with_session: Vec<(&str, i32)> = insts.iter().map(|i| (*i, SESSION)).collect();
    static_group(g, &with_session, now)
}

#[test]
fn first_rebalance_waits_for_every_static_member_within_the_delay() {
    // Two static members join 1 s apart: both are in generation 1 (no second rebalance).
    let mut g = Group::new("g", cfg(3000), 0);
    assert!(g.join(jreq(1, "", Some("c1"), RANGE), 0).is_empty());
    assert!(g.join(jreq(2, "", Some("c2"), RANGE), 1000).is_empty());
    let out = fire(&mut g, 3000);
    assert!(
        out.is_empty(),
        "a member arrived during the delay: wait another one"
    );
    let out = fire(&mut g, 6000);
    let (j1, j2) = (join_of(&out, 1).unwrap(), join_of(&out, 2).unwrap());
    assert_eq!((j1.generation_id, j2.generation_id), (1, 1));
    assert_eq!(j1.members.len(), 2);
    assert_eq!(j1.members[1].group_instance_id.as_deref(), Some("c2"));
}

#[test]
fn static_restart_answers_old_clients_as_followers_and_v9_leaders_skip() {
    let mut g = Group::new("g", cfg(0), 0);
    let (ids, gen_) = stable_static_group(&mut g, &["a", "b"], 0);
    // The leader restarts with a v5 client (librdkafka): same generation, no rebalance, and it
    // is told the old leader id, so it only syncs and gets its assignment back.
    let mut r = jreq(10, "", Some("a"), RANGE);
    r.supports_skip_assignment = false;
    let j = join_of(&g.join(r, 100), 10).unwrap();
    assert_eq!((j.error, j.generation_id), (errors::NONE, gen_));
    assert_ne!(j.member_id, ids[0]);
    assert_eq!(
        j.leader, ids[0],
        "answered with the leader id from before the restart"
    );
    assert!(j.members.is_empty() && !j.skip_assignment);
    assert_eq!(
        g.leader(),
        Some(j.member_id.as_str()),
        "the group's leader is the new id"
    );
    assert_eq!(g.state(), State::Stable);
    let a2 = j.member_id.clone();
    let mut s = sreq(11, &a2, gen_, &[]);
    s.group_instance_id = Some("a".into());
    assert_eq!(
        sync_of(&g.sync(s, 101), 11).unwrap().assignment,
        Bytes::from("p-a")
    );
    // The follower restarts: told the current leader.
    let mut r = jreq(12, "", Some("b"), RANGE);
    r.supports_skip_assignment = false;
    let j = join_of(&g.join(r, 102), 12).unwrap();
    assert_eq!((j.generation_id, j.leader.as_str()), (gen_, a2.as_str()));
    // A v9 leader restart gets the member list and skip_assignment.
    let j = join_of(&g.join(jreq(13, "", Some("a"), RANGE), 103), 13).unwrap();
    assert_eq!(j.leader, j.member_id);
    assert!(j.skip_assignment);
    assert_eq!(j.members.len(), 2);
    assert_eq!(g.generation(), gen_);
    assert_eq!(g.state(), State::Stable);
}

#[test]
fn static_member_missing_a_rebalance_is_kept_with_its_assignment() {
    let mut g = Group::new("g", cfg(0), 0);
    // s2's session outlasts the rebalance timeout: it is still a member while it is away.
    let (ids, gen1) = static_group(&mut g, &[("s1", SESSION), ("s2", 6 * SESSION)], 0);
    let (s1, s2) = (ids[0].clone(), ids[1].clone());
    // Leader s1 rejoins (e.g. new topic metadata); s2 is away (restarting) and does not.
    assert!(g.join(jreq(10, &s1, Some("s1"), RANGE), 10).is_empty());
    assert!(g.tick(10 + REBALANCE as i64 - 1).is_empty());
    let out = g.tick(10 + REBALANCE as i64);
    let j = join_of(&out, 10).unwrap();
    assert_eq!(j.generation_id, gen1 + 1);
    assert!(
        g.has_member(&s2),
        "a static member that did not rejoin stays"
    );
    let listed: Vec<_> = j.members.iter().map(|m| m.member_id.clone()).collect();
    assert_eq!(
        listed,
        vec![s1.clone(), s2.clone()],
        "the leader assigns to it too"
    );
    let gen2 = j.generation_id;
    let t = 10 + REBALANCE as i64;
    g.sync(sreq(11, &s1, gen2, &[(&s1, "y1"), (&s2, "y2")]), t);
    assert_eq!(g.state(), State::Stable);
    // s2 comes back under its instance id: no rebalance, it gets what the leader gave it.
    let j = join_of(&g.join(jreq(12, "", Some("s2"), RANGE), t + 5000), 12).unwrap();
    assert_eq!((j.error, j.generation_id), (errors::NONE, gen2));
    assert_eq!(g.state(), State::Stable);
    let mut s = sreq(13, &j.member_id, gen2, &[]);
    s.group_instance_id = Some("s2".into());
    assert_eq!(
        sync_of(&g.sync(s, t + 5001), 13).unwrap().assignment,
        Bytes::from("y2")
    );
}

#[test]
fn dynamic_member_missing_a_rebalance_is_dropped_static_one_kept() {
    let mut g = Group::new("g", cfg(0), 0);
    let mut r = jreq(1, "", Some("s"), RANGE);
    r.session_timeout_ms = 6 * SESSION;
    g.join(r, 0);
    let d = get_member_id(&mut g, 2, 0);
    let mut r = jreq(3, &d, None, RANGE);
    r.session_timeout_ms = 6 * SESSION;
    g.join(r, 0);
    let out = fire(&mut g, 0);
    let s = join_of(&out, 1).unwrap().member_id;
    let gen1 = g.generation();
    g.sync(sreq(4, &s, gen1, &[]), 0);
    // A third member joins; neither s nor d rejoin before the rebalance timeout.
    let n = get_member_id(&mut g, 5, 100);
    assert!(g.join(jreq(6, &n, None, RANGE), 100).is_empty());
    let out = g.tick(100 + REBALANCE as i64);
    let j = join_of(&out, 6).unwrap();
    assert_eq!(j.leader, n, "leadership moves to a member that rejoined");
    assert!(!g.has_member(&d));
    assert!(g.has_member(&s));
    assert_eq!(j.members.len(), 2);
}

#[test]
fn static_members_that_never_rejoin_hold_the_rebalance_open_until_they_expire() {
    let mut g = Group::new("g", cfg(0), 0);
    let long = 6 * SESSION;
    let (ids, gen_) = static_group(&mut g, &[("a", SESSION), ("b", long)], 0);
    // a rejoins with new metadata (a rebalance), then leaves; b never rejoins.
    assert!(
        g.join(jreq(1, &ids[0], Some("a"), &[("range", "new")]), 100)
            .is_empty()
    );
    let (codes, _) = g.leave(&[(ids[0].clone(), Some("a".into()))], 200);
    assert_eq!(codes, vec![errors::NONE]);
    assert_eq!(g.state(), State::PreparingRebalance);
    // The rebalance timeout passes with nobody joined: b is static, so it is not dropped and no
    // generation without members that joined starts; the group waits another timeout.
    let t = 100 + REBALANCE as i64;
    assert!(g.tick(t).is_empty());
    assert_eq!(
        (g.state(), g.generation()),
        (State::PreparingRebalance, gen_)
    );
    assert!(g.has_member(&ids[1]));
    // ...until b's session (from its last request at 0) runs out.
    assert_eq!(g.next_deadline(), Some(long as i64));
    assert!(g.tick(long as i64 - 1).is_empty());
    assert!(g.has_member(&ids[1]));
    g.tick(long as i64);
    assert!(
        !g.has_member(&ids[1]),
        "static members expire like any member"
    );
    assert_eq!(g.state(), State::Empty);
    assert!(g.is_empty());
}

#[test]
fn instance_id_validation_follows_kafka() {
    let mut g = Group::new("g", cfg(0), 0);
    let (ids, gen_) = stable_static_group(&mut g, &["a"], 0);
    let d = get_member_id(&mut g, 1, 1);
    g.join(jreq(2, &d, None, RANGE), 1);
    g.join(jreq(3, &ids[0], Some("a"), RANGE), 1);
    let gen2 = g.generation();
    assert_eq!(gen2, gen_ + 1);
    // A static member may omit its instance id (Kafka checks only the member id then).
    assert_eq!(g.heartbeat(&ids[0], None, gen2, 2), errors::NONE);
    // A dynamic member claiming an unknown instance id is unknown; a known one not its own fences.
    assert_eq!(
        g.heartbeat(&d, Some("zz"), gen2, 2),
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(
        g.heartbeat(&d, Some("a"), gen2, 2),
        ResponseError::FencedInstanceId.code()
    );
    // Commit checks the member before the state: a fenced instance hears so even mid-rebalance.
    assert_eq!(g.state(), State::CompletingRebalance);
    assert_eq!(
        g.validate_commit("old-id", Some("a"), gen2, 2),
        ResponseError::FencedInstanceId.code()
    );
    assert_eq!(
        g.validate_commit(&ids[0], Some("a"), gen2, 2),
        ResponseError::RebalanceInProgress.code()
    );
    // An anonymous commit (no member, generation -1) to a live group is refused.
    assert_eq!(
        g.validate_commit("", None, -1, 2),
        ResponseError::UnknownMemberId.code()
    );
    // JoinGroup with a member id validates the same way.
    let out = g.join(jreq(4, &d, Some("zz"), RANGE), 3);
    assert_eq!(
        join_of(&out, 4).unwrap().error,
        ResponseError::UnknownMemberId.code()
    );
    let out = g.join(jreq(5, "bogus", Some("a"), RANGE), 3);
    assert_eq!(
        join_of(&out, 5).unwrap().error,
        ResponseError::FencedInstanceId.code()
    );
    // SyncGroup too.
    let mut s = sreq(6, &d, gen2, &[]);
    s.group_instance_id = Some("a".into());
    assert_eq!(
        sync_of(&g.sync(s, 3), 6).unwrap().error,
        ResponseError::FencedInstanceId.code()
    );
    // LeaveGroup: by instance id alone, by member id with the wrong instance, anonymous.
    let (codes, _) = g.leave(
        &[
            ("".into(), None),
            (d.clone(), Some("a".into())),
            ("".into(), Some("nope".into())),
            ("".into(), Some("a".into())),
        ],
        4,
    );
    assert_eq!(
        codes,
        vec![
            ResponseError::UnknownMemberId.code(),
            ResponseError::FencedInstanceId.code(),
            ResponseError::UnknownMemberId.code(),
            errors::NONE
        ]
    );
    assert!(!g.has_member(&ids[0]), "removed at once by its instance id");
    assert!(g.has_member(&d));
}

/// A member missing against the group's own bookkeeping (here: the static-instance map names a
/// member the member list no longer has, which no public event produces) is answered
/// UNKNOWN_MEMBER_ID instead of panicking the shard; the stale entry is dropped, so the
/// instance's next join registers it afresh.
#[test]
fn missing_member_is_unknown_member_id_not_a_panic() {
    let mut g = Group::new("g", cfg(0), 0);
    let (ids, gen_) = stable_static_group(&mut g, &["a", "b"], 0);
    g.members.retain(|m| m.member_id != ids[0]);
    let j = join_of(&g.join(jreq(10, "", Some("a"), RANGE), 100), 10).unwrap();
    assert_eq!(j.error, ResponseError::UnknownMemberId.code());
    assert_eq!((g.generation(), g.state()), (gen_, State::Stable));
    // The client rejoins as a new static member: an ordinary rebalance follows.
    assert!(g.join(jreq(11, "", Some("a"), RANGE), 101).is_empty());
    assert_eq!(g.state(), State::PreparingRebalance);
    assert!(g.has_member(&ids[1]));
}
