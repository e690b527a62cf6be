//! Coordinator tests on a real glommio executor with a manual clock: parked joins resolved by
//! other members, offsets across a restart, expiry, deletes.

use super::*;
use crate::group::state::Protocol;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::{Encodable, StrBytes};

fn run<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move { f().await })
        .unwrap()
        .join()
        .unwrap();
}

fn cfg(dir: &std::path::Path) -> CoordinatorConfig {
    let mut c = CoordinatorConfig::new(dir);
    c.group.initial_rebalance_delay_ms = 0;
    c.offsets.num_partitions = 4;
    c
}

fn manual_clock(t: &Rc<Cell<i64>>) -> Clock {
    let t = t.clone();
    Rc::new(move || t.get())
}

fn subscription(topics: &[&str]) -> Bytes {
    let s = ConsumerProtocolSubscription::default().with_topics(
        topics
            .iter()
            .map(|t| StrBytes::from_string(t.to_string()))
            .collect(),
    );
    let mut b = BytesMut::new();
    b.put_i16(0);
    s.encode(&mut b, 0).unwrap();
    b.freeze()
}

fn join_req(member: &str, topics: &[&str]) -> JoinRequest {
    JoinRequest {
        req: 0,
        member_id: member.into(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 20_000,
        protocol_type: "consumer".into(),
        protocols: vec![Protocol {
            name: "range".into(),
            metadata: subscription(topics),
        }],
        require_known_member_id: true,
        supports_skip_assignment: true,
    }
}

fn sync_req(member: &str, generation: i32, a: Vec<(String, Bytes)>) -> SyncRequest {
    SyncRequest {
        req: 0,
        member_id: member.into(),
        group_instance_id: None,
        generation_id: generation,
        protocol_type: None,
        protocol_name: None,
        assignments: a,
    }
}

async fn member_id(c: &Coordinator, g: &str) -> String {
    let j = c.join(g, join_req("", &["t"])).await;
    assert_eq!(j.error, ResponseError::MemberIdRequired.code());
    j.member_id
}

#[test]
fn two_members_join_sync_leave_and_rebalance() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let t = Rc::new(Cell::new(1_000_000));
        let c = Coordinator::start(0, 1, cfg(&dir), manual_clock(&t))
            .await
            .unwrap();
        let a = member_id(&c, "g").await;
        let b = member_id(&c, "g").await;
        let c1 = c.clone();
        let a2 = a.clone();
        let ja = glommio::spawn_local(async move { c1.join("g", join_req(&a2, &["t"])).await });
        let jb = c.join("g", join_req(&b, &["t"])).await;
        let ja = ja.await;
        assert_eq!((ja.error, jb.error), (errors::NONE, errors::NONE));
        assert_eq!(ja.leader, a);
        assert_eq!(ja.members.len(), 2);
        let gen1 = ja.generation_id;

        let c2 = c.clone();
        let b2 = b.clone();
        let sb =
            glommio::spawn_local(async move { c2.sync("g", sync_req(&b2, gen1, vec![])).await });
        let sa = c
            .sync(
                "g",
                sync_req(
                    &a,
                    gen1,
                    vec![
                        (a.clone(), Bytes::from_static(b"A")),
                        (b.clone(), Bytes::from_static(b"B")),
                    ],
                ),
            )
            .await;
        assert_eq!(sa.assignment, Bytes::from_static(b"A"));
        assert_eq!(sb.await.assignment, Bytes::from_static(b"B"));
        assert_eq!(c.heartbeat("g", &b, None, gen1), errors::NONE);
        assert_eq!(c.describe("g").1.state, State::Stable);

        assert_eq!(c.leave("g", &[(b.clone(), None)]), Ok(vec![errors::NONE]));
        assert_eq!(
            c.heartbeat("g", &a, None, gen1),
            ResponseError::RebalanceInProgress.code()
        );
        let j = c.join("g", join_req(&a, &["t"])).await;
        assert_eq!((j.generation_id, j.members.len()), (gen1 + 1, 1));
        let listed = c.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].protocol_type, "consumer");
        c.shutdown().await.unwrap();
    });
}

#[test]
fn silent_member_is_expired_by_the_ticker() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let t = Rc::new(Cell::new(0));
        let c = Coordinator::start(0, 1, cfg(&dir), manual_clock(&t))
            .await
            .unwrap();
        let a = member_id(&c, "g").await;
        let j = c.join("g", join_req(&a, &["t"])).await;
        c.sync("g", sync_req(&a, j.generation_id, vec![])).await;
        t.set(10_001);
        glommio::timer::sleep(Duration::from_millis(250)).await;
        assert_eq!(c.describe("g").1.state, State::Empty);
        assert_eq!(
            c.heartbeat("g", &a, None, j.generation_id),
            ResponseError::UnknownMemberId.code()
        );
        c.shutdown().await.unwrap();
    });
}

fn part(topic: &str, p: i32, offset: i64, meta: &str) -> CommitPartition {
    CommitPartition {
        topic: topic.into(),
        partition: p,
        offset,
        leader_epoch: 3,
        metadata: Some(meta.into()),
        commit_timestamp: None,
    }
}

#[test]
fn offsets_survive_restart_and_validation_applies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let t = Rc::new(Cell::new(5_000));
        let c = Coordinator::start(0, 1, cfg(&dir), manual_clock(&t))
            .await
            .unwrap();
        let codes = c
            .commit(
                "solo",
                "",
                None,
                -1,
                -1,
                vec![part("t", 0, 10, "hello"), part("t", 1, 20, "")],
            )
            .await;
        assert_eq!(codes, vec![errors::NONE, errors::NONE]);
        let big = "x".repeat(5000);
        let codes = c
            .commit("solo", "", None, -1, -1, vec![part("t", 2, 1, &big)])
            .await;
        assert_eq!(codes, vec![ResponseError::OffsetMetadataTooLarge.code()]);
        let codes = c
            .commit("nogroup", "m", None, 3, -1, vec![part("t", 0, 1, "")])
            .await;
        assert_eq!(codes, vec![ResponseError::IllegalGeneration.code()]);
        // Members must use their generation.
        let a = member_id(&c, "g").await;
        let j = c.join("g", join_req(&a, &["t"])).await;
        let codes = c
            .commit(
                "g",
                &a,
                None,
                j.generation_id,
                -1,
                vec![part("t", 0, 1, "")],
            )
            .await;
        assert_eq!(codes, vec![ResponseError::RebalanceInProgress.code()]);
        c.sync("g", sync_req(&a, j.generation_id, vec![])).await;
        let codes = c
            .commit(
                "g",
                &a,
                None,
                j.generation_id + 1,
                -1,
                vec![part("t", 0, 1, "")],
            )
            .await;
        assert_eq!(codes, vec![ResponseError::IllegalGeneration.code()]);
        let codes = c
            .commit(
                "g",
                &a,
                None,
                j.generation_id,
                -1,
                vec![part("u", 4, 77, "m")],
            )
            .await;
        assert_eq!(codes, vec![errors::NONE]);
        c.shutdown().await.unwrap();
        drop(c);

        let c = Coordinator::start(0, 1, cfg(&dir), manual_clock(&t))
            .await
            .unwrap();
        let (e, got) = c.fetch("solo", Some(vec![("t".into(), vec![0, 1, 2])]), false);
        assert_eq!(e, errors::NONE);
        assert_eq!(got[0].offset, 10);
        assert_eq!(got[0].metadata, "hello");
        assert_eq!(got[0].leader_epoch, 3);
        assert_eq!(got[1].offset, 20);
        assert_eq!((got[2].offset, got[2].metadata.as_str()), (-1, ""));
        let (_, all) = c.fetch("g", None, false);
        assert_eq!(all.len(), 1);
        assert_eq!(
            (all[0].topic.as_str(), all[0].partition, all[0].offset),
            ("u", 4, 77)
        );
        // Known by offsets only: listed and described as Empty.
        assert!(
            c.list()
                .iter()
                .any(|g| g.group_id == "g" && g.state == State::Empty)
        );
        c.shutdown().await.unwrap();
    });
}

#[test]
fn offsets_expire_after_retention_durably() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let t = Rc::new(Cell::new(0));
        let mut conf = cfg(&dir);
        conf.offsets_retention_ms = 60_000;
        let c = Coordinator::start(0, 1, conf.clone(), manual_clock(&t))
            .await
            .unwrap();
        c.commit("a", "", None, -1, -1, vec![part("t", 0, 1, "")])
            .await;
        t.set(30_000);
        c.commit("b", "", None, -1, -1, vec![part("t", 0, 2, "")])
            .await;
        // v2-v4 explicit retention time.
        c.commit("c", "", None, -1, 1_000, vec![part("t", 0, 3, "")])
            .await;
        t.set(60_000);
        c.expire_offsets().await;
        assert_eq!(c.fetch("a", None, false).1.len(), 0);
        assert_eq!(c.fetch("b", None, false).1.len(), 1);
        assert_eq!(c.fetch("c", None, false).1.len(), 0);
        assert!(!c.list().iter().any(|g| g.group_id == "a"));
        c.shutdown().await.unwrap();
        let c = Coordinator::start(0, 1, conf, manual_clock(&t))
            .await
            .unwrap();
        assert_eq!(c.fetch("a", None, false).1.len(), 0);
        assert_eq!(c.fetch("b", None, false).1[0].offset, 2);
        c.shutdown().await.unwrap();
    });
}

/// OffsetCommit v1's per-partition commit timestamp is the commit time retention counts from
/// (Kafka 3.x), kept across a restart; hostile values neither panic nor overflow.
#[test]
fn client_commit_timestamp_starts_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let t = Rc::new(Cell::new(30_000));
        let mut conf = cfg(&dir);
        conf.offsets_retention_ms = 60_000;
        let c = Coordinator::start(0, 1, conf.clone(), manual_clock(&t))
            .await
            .unwrap();
        let at = |offset: i64, ts: Option<i64>| {
            let mut p = part("t", 0, offset, "");
            p.commit_timestamp = ts;
            vec![p]
        };
        for (g, offset, ts) in [
            ("old", 1, Some(0)),
            ("clock", 2, None),
            ("future", 3, Some(80_000)),
            ("min", 4, Some(i64::MIN)),
            ("max", 5, Some(i64::MAX)),
        ] {
            assert_eq!(c.commit(g, "", None, -1, -1, at(offset, ts)).await, vec![0]);
        }
        c.shutdown().await.unwrap();
        let c = Coordinator::start(0, 1, conf, manual_clock(&t))
            .await
            .unwrap();
        t.set(60_000);
        c.expire_offsets().await;
        let left = |c: &Coordinator| {
            ["old", "clock", "future", "min", "max"]
                .into_iter()
                .filter(|g| !c.fetch(g, None, false).1.is_empty())
                .collect::<Vec<_>>()
        };
        assert_eq!(left(&c), vec!["clock", "future", "max"]);
        t.set(90_000);
        c.expire_offsets().await;
        assert_eq!(left(&c), vec!["future", "max"]);
        c.shutdown().await.unwrap();
    });
}

#[test]
fn delete_group_and_offset_delete_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let t = Rc::new(Cell::new(0));
        let c = Coordinator::start(0, 1, cfg(&dir), manual_clock(&t))
            .await
            .unwrap();
        assert_eq!(
            c.delete_group("none").await,
            ResponseError::GroupIdNotFound.code()
        );
        let a = member_id(&c, "g").await;
        let j = c.join("g", join_req(&a, &["sub"])).await;
        c.sync("g", sync_req(&a, j.generation_id, vec![])).await;
        let gen_ = j.generation_id;
        c.commit(
            "g",
            &a,
            None,
            gen_,
            -1,
            vec![part("sub", 0, 1, ""), part("other", 0, 2, "")],
        )
        .await;
        assert_eq!(
            c.delete_group("g").await,
            ResponseError::NonEmptyGroup.code()
        );
        let (e, codes) = c
            .offset_delete("g", vec![("sub".into(), 0), ("other".into(), 0)])
            .await;
        assert_eq!(e, errors::NONE);
        assert_eq!(
            codes,
            vec![ResponseError::GroupSubscribedToTopic.code(), errors::NONE]
        );
        let (_, left) = c.fetch("g", None, false);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].topic, "sub");
        assert_eq!(c.leave("g", &[(a.clone(), None)]), Ok(vec![errors::NONE]));
        assert_eq!(c.describe("g").1.state, State::Empty);
        assert_eq!(c.delete_group("g").await, errors::NONE);
        assert_eq!(c.describe("g").1.state, State::Dead);
        assert!(c.fetch("g", None, false).1.is_empty());
        assert_eq!(
            c.offset_delete("g", vec![("sub".into(), 0)]).await.0,
            ResponseError::GroupIdNotFound.code()
        );
        c.shutdown().await.unwrap();
    });
}

#[test]
fn txn_offset_commit_fencing_pending_and_require_stable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let t = Rc::new(Cell::new(1_000));
        let c = Coordinator::start(0, 1, cfg(&dir), manual_clock(&t))
            .await
            .unwrap();
        let ok = vec![errors::NONE];
        // An unknown group: created (Empty) for generation -1, ILLEGAL_GENERATION otherwise.
        assert_eq!(
            c.txn_commit("nogroup", "m", None, 2, 1, 0, vec![part("t", 0, 1, "")])
                .await,
            vec![ResponseError::IllegalGeneration.code()]
        );
        assert_eq!(
            c.txn_commit("", "", None, -1, 1, 0, vec![part("t", 0, 1, "")])
                .await,
            vec![ResponseError::InvalidGroupId.code()]
        );
        assert_eq!(
            c.txn_commit("solo", "", None, -1, 1, 0, vec![part("t", 0, 7, "x")])
                .await,
            ok
        );
        assert_eq!(c.describe("solo").1.state, State::Empty);
        // Pending: invisible to OffsetFetch, UNSTABLE_OFFSET_COMMIT with require_stable.
        let asked = || Some(vec![("t".to_string(), vec![0, 1])]);
        let (_, rows) = c.fetch("solo", asked(), false);
        assert_eq!((rows[0].offset, rows[0].error_code), (-1, errors::NONE));
        let (_, rows) = c.fetch("solo", asked(), true);
        assert_eq!(
            rows[0].error_code,
            ResponseError::UnstableOffsetCommit.code()
        );
        assert_eq!((rows[1].offset, rows[1].error_code), (-1, errors::NONE));
        // A zombie of the producer (older epoch than the pending transaction's).
        c.txn_commit("solo", "", None, -1, 1, 3, vec![part("t", 1, 1, "")])
            .await;
        assert_eq!(
            c.txn_commit("solo", "", None, -1, 1, 2, vec![part("t", 1, 1, "")])
                .await,
            vec![ResponseError::InvalidProducerEpoch.code()]
        );
        // Metadata size is checked per partition.
        let big = "x".repeat(5000);
        assert_eq!(
            c.txn_commit(
                "solo",
                "",
                None,
                -1,
                4,
                0,
                vec![part("t", 2, 1, &big), part("t", 3, 1, "")]
            )
            .await,
            vec![ResponseError::OffsetMetadataTooLarge.code(), errors::NONE]
        );

        // KIP-447: a member commits with its generation; anything else is fenced.
        let a = member_id(&c, "g").await;
        let j = c.join("g", join_req(&a, &["t"])).await;
        let g1 = j.generation_id;
        // Unlike OffsetCommit, no REBALANCE_IN_PROGRESS while the assignment is distributed.
        assert_eq!(
            c.txn_commit("g", &a, None, g1, 9, 0, vec![part("t", 0, 1, "")])
                .await,
            ok
        );
        c.sync("g", sync_req(&a, g1, vec![])).await;
        assert_eq!(
            c.txn_commit("g", &a, None, g1 - 1, 9, 0, vec![part("t", 0, 1, "")])
                .await,
            vec![ResponseError::IllegalGeneration.code()]
        );
        assert_eq!(
            c.txn_commit("g", "stranger", None, g1, 9, 0, vec![part("t", 0, 1, "")])
                .await,
            vec![ResponseError::UnknownMemberId.code()]
        );
        assert_eq!(
            c.txn_commit("g", "", None, -1, 9, 0, vec![part("t", 1, 5, "")])
                .await,
            ok,
            "v0-v2 requests name no member"
        );
        // Nothing pending for producer 77: completing its transaction writes nothing.
        assert_eq!(c.complete_txn("g", 77, 0, true).await, Ok(()));
        // The group with only pending offsets exists and is deleted with them.
        assert!(c.fetch("solo", None, false).1.is_empty());
        assert_eq!(c.delete_group("solo").await, errors::NONE);
        let (_, rows) = c.fetch("solo", asked(), true);
        assert_eq!(rows[0].error_code, errors::NONE, "tombstone drops pending");
        c.shutdown().await.unwrap();
    });
}

/// Static members expire exactly `session.timeout.ms` after their last request, like dynamic
/// ones, and the timer task is woken for deadlines earlier than the one it sleeps towards: with
/// the real clock and a timer cap of a minute, nothing here may wait for a periodic tick.
#[test]
fn deadlines_are_met_exactly_without_a_periodic_tick() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let mut config = cfg(&dir);
        config.tick_ms = 60_000;
        config.group.min_session_timeout_ms = 100;
        let c = Coordinator::start(0, 1, config, system_clock())
            .await
            .unwrap();
        let session = 400;
        let static_join = |inst: &str| {
            let mut r = join_req("", &["t"]);
            r.group_instance_id = Some(inst.into());
            r.session_timeout_ms = session;
            r
        };
        // The first rebalance (delay 0) completes on the timer, which this join had to wake.
        let start = std::time::Instant::now();
        let (c1, r1) = (c.clone(), static_join("s1"));
        let j1 = glommio::spawn_local(async move { c1.join("g", r1).await });
        let j2 = c.join("g", static_join("s2")).await;
        let j1 = j1.await;
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "woken, not ticked"
        );
        assert_eq!((j1.error, j2.error), (errors::NONE, errors::NONE));
        assert_eq!(j1.generation_id, j2.generation_id, "one rebalance for both");
        let g1 = j1.generation_id;
        let mut s2 = sync_req(&j2.member_id, g1, vec![]);
        s2.group_instance_id = Some("s2".into());
        let c2 = c.clone();
        let s2 = glommio::spawn_local(async move { c2.sync("g", s2).await });
        let mut s1 = sync_req(&j1.member_id, g1, vec![]);
        s1.group_instance_id = Some("s1".into());
        c.sync("g", s1).await;
        s2.await;
        let last_request = std::time::Instant::now();
        assert_eq!(c.describe("g").1.state, State::Stable);

        // Both go silent (closed without LeaveGroup, as static members do).
        let at = |ms: u64| last_request + Duration::from_millis(ms);
        glommio::timer::sleep(
            at(session as u64 - 60).saturating_duration_since(std::time::Instant::now()),
        )
        .await;
        assert_eq!(
            c.describe("g").1.members.len(),
            2,
            "not before the session timeout"
        );
        assert_eq!(
            c.delete_group("g").await,
            ResponseError::NonEmptyGroup.code()
        );
        glommio::timer::sleep(
            at(session as u64 + 40).saturating_duration_since(std::time::Instant::now()),
        )
        .await;
        let d = c.describe("g").1;
        assert_eq!(
            (d.state, d.members.len()),
            (State::Empty, 0),
            "expired on time"
        );
        assert_eq!(c.delete_group("g").await, errors::NONE);
        c.shutdown().await.unwrap();
    });
}

#[test]
fn shard_placement_is_stable_and_spread() {
    let mut seen = HashSet::new();
    for i in 0..200 {
        let g = format!("group-{i}");
        let s = shard_for(&g, 4, 50);
        assert_eq!(s, shard_for(&g, 4, 50));
        assert_eq!(s, (partition_for(&g, 50) % 4) as usize);
        seen.insert(s);
    }
    assert_eq!(seen.len(), 4);
}
