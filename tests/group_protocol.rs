//! Consumer groups over a real socket: raw kafka-protocol requests against `spawn_broker`
//! (2 shards, so coordinator calls cross shards): join/sync/heartbeat/leave/rebalance, admin
//! APIs, committed offsets that survive a broker restart, and the old OffsetCommit v0–v1 /
//! OffsetFetch v0 (hand-encoded: kafka-protocol no longer codes them).

mod server_util;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use kafka_protocol::messages::delete_groups_response::DeleteGroupsResponse;
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::describe_groups_response::DescribeGroupsResponse;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::FindCoordinatorResponse;
use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;
use kafka_protocol::messages::join_group_request::JoinGroupRequest;
use kafka_protocol::messages::join_group_response::JoinGroupResponse;
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::messages::leave_group_response::LeaveGroupResponse;
use kafka_protocol::messages::list_groups_request::ListGroupsRequest;
use kafka_protocol::messages::list_groups_response::ListGroupsResponse;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_commit_response::OffsetCommitResponse;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequest, OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_delete_response::OffsetDeleteResponse;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponse;
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::messages::{ApiKey, GroupId, TopicName};
use kafka_test_client::group::{heartbeat_request, join_group_request, sync_group_request};
use ringbolt::server::{BrokerHandle, spawn_broker};
use server_util::{Client, config, init_logs, sb};

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const REBALANCE_IN_PROGRESS: i16 = 27;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
const FENCED_INSTANCE_ID: i16 = 82;

/// The broker of these tests: groups form at once (no initial rebalance delay), auto-created
/// topics get 4 partitions.
fn start(dir: &std::path::Path, shards: usize) -> BrokerHandle {
    init_logs();
    let mut cfg = config(dir, shards);
    cfg.settings.group_initial_rebalance_delay_ms = 0;
    cfg.settings.num_partitions = 4;
    spawn_broker(cfg).expect("broker starts")
}

fn create_topic(c: &mut Client, name: &str, partitions: i32) {
    let r = c.create_topic(name, partitions, &[], 4);
    assert_eq!(r.topics[0].error_code, NONE, "create {name}");
}

fn join_req(group: &str, member: &str) -> JoinGroupRequest {
    join_group_request(
        group,
        member,
        10_000,
        Bytes::from_static(b"\x00\x00\x00\x00\x00\x01\x00\x01t\x00\x00\x00\x00"),
    )
}

/// The v5 two-step join: MEMBER_ID_REQUIRED, then the id to rejoin with.
fn member_id(c: &mut Client, group: &str) -> String {
    let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &join_req(group, ""));
    assert_eq!(r.error_code, MEMBER_ID_REQUIRED);
    assert!(!r.member_id.is_empty());
    r.member_id.to_string()
}

fn heartbeat(c: &mut Client, group: &str, member: &str, generation: i32) -> i16 {
    let req = heartbeat_request(group, member, generation);
    let r: HeartbeatResponse = c.call(ApiKey::Heartbeat, 4, &req);
    r.error_code
}

#[test]
fn two_members_join_sync_heartbeat_leave_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let addr = broker.local_addr();
    let mut a = Client::connect(addr);
    let mut b = Client::connect(addr);
    let group = "it-group";

    // FindCoordinator: single key (v3) and batched keys (v4) both point at this broker.
    let r: FindCoordinatorResponse = a.call(
        ApiKey::FindCoordinator,
        3,
        &FindCoordinatorRequest::default().with_key(sb(group)),
    );
    assert_eq!((r.error_code, r.port), (NONE, addr.port() as i32));
    let r: FindCoordinatorResponse = a.call(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default().with_coordinator_keys(vec![sb("g1"), sb("g2")]),
    );
    assert_eq!(r.coordinators.len(), 2);
    assert!(
        r.coordinators
            .iter()
            .all(|c| c.error_code == NONE && c.port == addr.port() as i32)
    );

    // A alone: generation 1, A leads.
    let ma = member_id(&mut a, group);
    let r: JoinGroupResponse = a.call(ApiKey::JoinGroup, 5, &join_req(group, &ma));
    assert_eq!(r.error_code, NONE);
    assert_eq!(r.leader.as_str(), ma);
    let gen1 = r.generation_id;
    let r: SyncGroupResponse = a.call(
        ApiKey::SyncGroup,
        3,
        &sync_group_request(group, &ma, gen1, &[(&ma, b"all")]),
    );
    assert_eq!((r.error_code, &r.assignment[..]), (NONE, &b"all"[..]));
    assert_eq!(heartbeat(&mut a, group, &ma, gen1), NONE);

    // B joins: parks until A rejoins; A learns of the rebalance from its heartbeat.
    let mb = member_id(&mut b, group);
    let join_b = b.send(ApiKey::JoinGroup, 5, &join_req(group, &mb));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(heartbeat(&mut a, group, &ma, gen1), REBALANCE_IN_PROGRESS);
    let ra: JoinGroupResponse = a.call(ApiKey::JoinGroup, 5, &join_req(group, &ma));
    let rb: JoinGroupResponse = b.recv(join_b, 5);
    assert_eq!((ra.error_code, rb.error_code), (NONE, NONE));
    let gen2 = ra.generation_id;
    assert_eq!(gen2, gen1 + 1);
    assert_eq!(rb.generation_id, gen2);
    assert_eq!(ra.leader.as_str(), ma);
    assert_eq!(ra.members.len(), 2, "leader gets every member");
    assert!(rb.members.is_empty());
    assert_eq!(ra.protocol_name.as_ref().map(|s| s.as_str()), Some("range"));

    // B's sync waits for the leader's.
    let sync_b = b.send(
        ApiKey::SyncGroup,
        3,
        &sync_group_request(group, &mb, gen2, &[]),
    );
    let r: SyncGroupResponse = a.call(
        ApiKey::SyncGroup,
        3,
        &sync_group_request(group, &ma, gen2, &[(&ma, b"p0p1"), (&mb, b"p2p3")]),
    );
    assert_eq!(&r.assignment[..], b"p0p1");
    let r: SyncGroupResponse = b.recv(sync_b, 3);
    assert_eq!((r.error_code, &r.assignment[..]), (NONE, &b"p2p3"[..]));
    assert_eq!(heartbeat(&mut a, group, &ma, gen2), NONE);
    assert_eq!(heartbeat(&mut b, group, &mb, gen2), NONE);
    assert_eq!(heartbeat(&mut b, group, &mb, gen1), ILLEGAL_GENERATION);
    assert_eq!(
        heartbeat(&mut b, group, "stranger", gen2),
        UNKNOWN_MEMBER_ID
    );

    let r: DescribeGroupsResponse = a.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(sb(group)), GroupId(sb("nope"))]),
    );
    let d = &r.groups[0];
    assert_eq!((d.error_code, d.group_state.as_str()), (NONE, "Stable"));
    assert_eq!(d.protocol_data.as_str(), "range");
    assert_eq!(d.members.len(), 2);
    assert!(
        d.members
            .iter()
            .any(|m| &m.member_assignment[..] == b"p2p3")
    );
    // Kafka reports each member's connection address as Java prints it.
    assert!(
        d.members
            .iter()
            .all(|m| m.client_host.as_str() == "/127.0.0.1"),
        "{:?}",
        d.members
    );
    // An unknown group: Dead without an error before v6, GROUP_ID_NOT_FOUND from v6 (KIP-1043).
    assert_eq!(
        (r.groups[1].error_code, r.groups[1].group_state.as_str()),
        (NONE, "Dead")
    );
    let r = describe_v6(&mut a, "nope");
    assert_eq!(
        (r.error_code, r.group_state.as_str()),
        (GROUP_ID_NOT_FOUND, "Dead")
    );
    assert_eq!(r.error_message.as_deref(), Some("Group nope not found."));
    let r = describe_v6(&mut a, group);
    assert_eq!((r.error_code, r.group_state.as_str()), (NONE, "Stable"));
    assert_eq!(r.error_message, None);

    let r: ListGroupsResponse = a.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default());
    let g = r
        .groups
        .iter()
        .find(|g| g.group_id.0.as_str() == group)
        .unwrap();
    assert_eq!(
        (g.protocol_type.as_str(), g.group_state.as_str()),
        ("consumer", "Stable")
    );

    // DeleteGroups refuses a live group.
    let r: DeleteGroupsResponse = a.call(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb(group))]),
    );
    assert_eq!(r.results[0].error_code, NON_EMPTY_GROUP);

    // B leaves (batched v3+ form); A rebalances alone.
    let r: LeaveGroupResponse = b.call(
        ApiKey::LeaveGroup,
        4,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_members(vec![MemberIdentity::default().with_member_id(sb(&mb))]),
    );
    assert_eq!((r.error_code, r.members[0].error_code), (NONE, NONE));
    assert_eq!(heartbeat(&mut a, group, &ma, gen2), REBALANCE_IN_PROGRESS);
    let r: JoinGroupResponse = a.call(ApiKey::JoinGroup, 5, &join_req(group, &ma));
    assert_eq!(
        (r.error_code, r.generation_id, r.members.len()),
        (NONE, gen2 + 1, 1)
    );
    // Old-style v0 leave of the last member empties the group; then it can be deleted.
    let r: LeaveGroupResponse = a.call(
        ApiKey::LeaveGroup,
        0,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_member_id(sb(&ma)),
    );
    assert_eq!(r.error_code, NONE);
    let r: DeleteGroupsResponse = a.call(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb(group))]),
    );
    assert_eq!(r.results[0].error_code, NONE);
    // A deleted group no longer exists.
    let r = describe_v6(&mut a, group);
    assert_eq!(
        (r.error_code, r.group_state.as_str(), r.members.len()),
        (GROUP_ID_NOT_FOUND, "Dead", 0)
    );
    broker.shutdown().unwrap();
}

fn describe_v6(
    c: &mut Client,
    group: &str,
) -> kafka_protocol::messages::describe_groups_response::DescribedGroup {
    let mut r: DescribeGroupsResponse = c.call(
        ApiKey::DescribeGroups,
        6,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(group))]),
    );
    assert_eq!(r.groups.len(), 1);
    r.groups.remove(0)
}

fn commit(
    c: &mut Client,
    version: i16,
    group: &str,
    member: &str,
    generation: i32,
    topic: &str,
    parts: &[(i32, i64, &str)],
) -> OffsetCommitResponse {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(sb(member))
        .with_retention_time_ms(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(sb(topic)))
                .with_partitions(
                    parts
                        .iter()
                        .map(|(p, o, m)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*o)
                                .with_committed_metadata(Some(sb(m)))
                        })
                        .collect(),
                ),
        ]);
    c.call(ApiKey::OffsetCommit, version, &req)
}

/// (offset, metadata) per partition via OffsetFetch v`version` (1..=7).
fn fetch_v(
    c: &mut Client,
    version: i16,
    group: &str,
    topic: &str,
    parts: &[i32],
) -> Vec<(i64, String)> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(sb(topic)))
                .with_partition_indexes(parts.to_vec()),
        ]));
    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, version, &req);
    assert_eq!(r.error_code, NONE);
    r.topics[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, NONE);
            (
                p.committed_offset,
                p.metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn committed_offsets_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    create_topic(&mut c, "orders", 4);

    // A member commits with its generation (v8); a standalone consumer with generation -1 (v2).
    let m = member_id(&mut c, "g-member");
    let j: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &join_req("g-member", &m));
    let gen_ = j.generation_id;
    let r: SyncGroupResponse = c.call(
        ApiKey::SyncGroup,
        3,
        &sync_group_request("g-member", &m, gen_, &[(&m, b"x")]),
    );
    assert_eq!(r.error_code, NONE);
    let r = commit(
        &mut c,
        8,
        "g-member",
        &m,
        gen_,
        "orders",
        &[(0, 100, "meta-0"), (3, 7, "")],
    );
    assert!(r.topics[0].partitions.iter().all(|p| p.error_code == NONE));
    let r = commit(&mut c, 8, "g-member", &m, gen_ + 5, "orders", &[(1, 1, "")]);
    assert_eq!(r.topics[0].partitions[0].error_code, ILLEGAL_GENERATION);
    let r = commit(&mut c, 2, "g-solo", "", -1, "orders", &[(1, 42, "solo ✓")]);
    assert_eq!(r.topics[0].partitions[0].error_code, NONE);
    let r = commit(&mut c, 2, "g-solo", "", -1, "no-such-topic", &[(0, 1, "")]);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    // Many commits in a row (the batched write path), last one wins.
    for i in 0..200 {
        commit(&mut c, 7, "g-solo", "", -1, "orders", &[(2, i, "loop")]);
    }
    assert_eq!(
        fetch_v(&mut c, 5, "g-solo", "orders", &[2]),
        vec![(199, "loop".into())]
    );
    broker.shutdown().unwrap();

    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(
        fetch_v(&mut c, 1, "g-member", "orders", &[0, 1, 3]),
        vec![(100, "meta-0".into()), (-1, "".into()), (7, "".into())]
    );
    assert_eq!(
        fetch_v(&mut c, 7, "g-solo", "orders", &[1, 2]),
        vec![(42, "solo ✓".into()), (199, "loop".into())]
    );
    // v8: several groups in one request; null topics = everything committed.
    let req = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(sb("g-member")))
            .with_topics(None),
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(sb("g-solo")))
            .with_topics(Some(vec![
                OffsetFetchRequestTopics::default()
                    .with_name(TopicName(sb("orders")))
                    .with_partition_indexes(vec![1]),
            ])),
    ]);
    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 8, &req);
    assert_eq!(r.groups.len(), 2);
    let member: Vec<(i32, i64)> = r.groups[0].topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    assert_eq!(member, vec![(0, 100), (3, 7)]);
    assert_eq!(r.groups[1].topics[0].partitions[0].committed_offset, 42);

    // OffsetDelete on a group known only by its offsets, then it is gone after another restart.
    let req = OffsetDeleteRequest::default()
        .with_group_id(GroupId(sb("g-member")))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(TopicName(sb("orders")))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0),
                ]),
        ]);
    let r: OffsetDeleteResponse = c.call(ApiKey::OffsetDelete, 0, &req);
    assert_eq!(
        (r.error_code, r.topics[0].partitions[0].error_code),
        (NONE, NONE)
    );
    broker.shutdown().unwrap();
    let broker = start(dir.path(), 1);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(
        fetch_v(&mut c, 6, "g-member", "orders", &[0, 3]),
        vec![(-1, "".into()), (7, "".into())],
        "restart with another shard count keeps offsets"
    );
    broker.shutdown().unwrap();
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn get_str(b: &mut Bytes) -> Option<String> {
    let n = b.get_i16();
    (n >= 0).then(|| String::from_utf8(b.split_to(n as usize).to_vec()).unwrap())
}

/// One partition of a hand-encoded OffsetCommit v0/v1: (partition, offset, v1 commit timestamp,
/// metadata).
type OldCommit<'a> = (i32, i64, i64, Option<&'a str>);

/// OffsetCommit v0/v1 of one topic (v0 sends no generation or member id); (partition, error)
/// per partition of the response, which has the v0–v2 layout.
fn commit_old(
    c: &mut Client,
    version: i16,
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    parts: &[OldCommit],
) -> Vec<(i32, i16)> {
    let mut b = BytesMut::new();
    put_str(&mut b, group);
    if version >= 1 {
        b.put_i32(generation);
        put_str(&mut b, member);
    }
    b.put_i32(1);
    put_str(&mut b, topic);
    b.put_i32(parts.len() as i32);
    for (p, offset, ts, meta) in parts {
        b.put_i32(*p);
        b.put_i64(*offset);
        if version >= 1 {
            b.put_i64(*ts);
        }
        match meta {
            Some(m) => put_str(&mut b, m),
            None => b.put_i16(-1),
        }
    }
    let mut r = c.raw_call(ApiKey::OffsetCommit, version, &b);
    assert_eq!(r.get_i32(), 1, "topics");
    assert_eq!(get_str(&mut r).as_deref(), Some(topic));
    let n = r.get_i32();
    let out = (0..n).map(|_| (r.get_i32(), r.get_i16())).collect();
    assert!(
        r.is_empty(),
        "trailing bytes in OffsetCommit v{version} response"
    );
    out
}

/// OffsetFetch v0/v1 of one topic, hand-encoded: (partition, offset, metadata, error).
fn fetch_old(
    c: &mut Client,
    version: i16,
    group: &str,
    topic: &str,
    parts: &[i32],
) -> Vec<(i32, i64, Option<String>, i16)> {
    let mut b = BytesMut::new();
    put_str(&mut b, group);
    b.put_i32(1);
    put_str(&mut b, topic);
    b.put_i32(parts.len() as i32);
    for p in parts {
        b.put_i32(*p);
    }
    let mut r = c.raw_call(ApiKey::OffsetFetch, version, &b);
    assert_eq!(r.get_i32(), 1, "topics");
    assert_eq!(get_str(&mut r).as_deref(), Some(topic));
    let n = r.get_i32();
    let out = (0..n)
        .map(|_| (r.get_i32(), r.get_i64(), get_str(&mut r), r.get_i16()))
        .collect();
    assert!(
        r.is_empty(),
        "trailing bytes in OffsetFetch v{version} response"
    );
    out
}

/// (offset, metadata) per partition through OffsetFetch v0, v1 (both hand-encoded), v1 and v5
/// (kafka-protocol): all must agree, since every version reads the one store.
fn fetch_all_versions(
    c: &mut Client,
    group: &str,
    topic: &str,
    parts: &[i32],
) -> Vec<(i64, String)> {
    let v0 = fetch_old(c, 0, group, topic, parts);
    assert_eq!(v0, fetch_old(c, 1, group, topic, parts), "v0 vs v1");
    assert!(v0.iter().all(|p| p.3 == NONE), "{v0:?}");
    let out: Vec<(i64, String)> = v0
        .into_iter()
        .zip(parts)
        .map(|((p, o, m, _), want)| {
            assert_eq!(p, *want);
            (o, m.unwrap_or_default())
        })
        .collect();
    assert_eq!(
        out,
        fetch_v(c, 1, group, topic, parts),
        "v1 (kafka-protocol)"
    );
    assert_eq!(out, fetch_v(c, 5, group, topic, parts), "v5");
    out
}

/// OffsetCommit v0–v1 and OffsetFetch v0 (Kafka 4 removed them, KIP-896; github.com/Shopify/sarama
/// v1.38.1's ConsumerGroup commits with v1 by default): they use the store every other version
/// reads; v1 with a generation is validated like v2+ (Kafka 3.x); v0 and v1 simple commits
/// (generation -1, no member id) are accepted only while the group has no members; the offsets
/// survive a restart.
#[test]
fn offset_commit_v0_v1_and_fetch_v0() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    create_topic(&mut c, "old", 4);

    let req = ApiVersionsRequest::default()
        .with_client_software_name(sb("test"))
        .with_client_software_version(sb("1"));
    let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &req);
    for (key, max) in [(ApiKey::OffsetCommit, 8), (ApiKey::OffsetFetch, 8)] {
        let k = r.api_keys.iter().find(|k| k.api_key == key as i16).unwrap();
        assert_eq!((k.min_version, k.max_version), (0, max), "{key:?}");
    }

    // v0: a simple commit to a group nobody joined; null metadata reads back as "".
    let r = commit_old(
        &mut c,
        0,
        "g-v0",
        0,
        "",
        "old",
        &[(0, 10, 0, Some("zero")), (1, 11, 0, None), (9, 1, 0, None)],
    );
    assert_eq!(
        r,
        vec![(0, NONE), (1, NONE), (9, UNKNOWN_TOPIC_OR_PARTITION)]
    );
    let r = commit_old(
        &mut c,
        0,
        "g-v0",
        0,
        "",
        "no-such-topic",
        &[(0, 1, 0, None)],
    );
    assert_eq!(r, vec![(0, UNKNOWN_TOPIC_OR_PARTITION)]);
    assert_eq!(
        fetch_all_versions(&mut c, "g-v0", "old", &[0, 1, 2]),
        vec![(10, "zero".into()), (11, "".into()), (-1, "".into())]
    );
    // A v2+ commit to the same group overwrites a v0 one, and v0 sees it.
    commit(&mut c, 8, "g-v0", "", -1, "old", &[(1, 12, "v8")]);
    assert_eq!(fetch_old(&mut c, 0, "g-v0", "old", &[1])[0].1, 12);

    // v1 simple commits (generation -1, empty member id), with and without a commit timestamp.
    let r = commit_old(
        &mut c,
        1,
        "g-v1",
        -1,
        "",
        "old",
        &[
            (0, 20, -1, Some("a")),
            (3, 23, 1_700_000_000_000, Some("b")),
        ],
    );
    assert_eq!(r, vec![(0, NONE), (3, NONE)]);
    assert_eq!(
        fetch_all_versions(&mut c, "g-v1", "old", &[0, 3]),
        vec![(20, "a".into()), (23, "b".into())]
    );
    // Empty group id, as in Kafka.
    let r = commit_old(&mut c, 1, "", -1, "", "old", &[(0, 1, -1, None)]);
    assert_eq!(r, vec![(0, 24)], "INVALID_GROUP_ID");

    // A real member: v1 is validated like v2+.
    let m = member_id(&mut c, "g-member");
    let j: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &join_req("g-member", &m));
    assert_eq!(j.error_code, NONE);
    let gen_ = j.generation_id;
    // Joined but not yet synced: the assignment is being distributed.
    let r = commit_old(&mut c, 1, "g-member", gen_, &m, "old", &[(0, 1, -1, None)]);
    assert_eq!(r, vec![(0, REBALANCE_IN_PROGRESS)]);
    let r: SyncGroupResponse = c.call(
        ApiKey::SyncGroup,
        3,
        &sync_group_request("g-member", &m, gen_, &[(&m, b"x")]),
    );
    assert_eq!(r.error_code, NONE);
    let r = commit_old(
        &mut c,
        1,
        "g-member",
        gen_,
        &m,
        "old",
        &[(0, 30, -1, Some("member")), (2, 32, -1, None)],
    );
    assert_eq!(r, vec![(0, NONE), (2, NONE)]);
    let refused = [
        (1, gen_ + 1, m.as_str(), ILLEGAL_GENERATION),
        (1, gen_ - 1, m.as_str(), ILLEGAL_GENERATION),
        (1, gen_, "someone-else", UNKNOWN_MEMBER_ID),
        // Simple commits while the group has a member: v1 (-1, "") and v0.
        (1, -1, "", UNKNOWN_MEMBER_ID),
        (0, 0, "", UNKNOWN_MEMBER_ID),
    ];
    for (version, generation, member, code) in refused {
        let r = commit_old(
            &mut c,
            version,
            "g-member",
            generation,
            member,
            "old",
            &[(0, 99, -1, None)],
        );
        assert_eq!(
            r,
            vec![(0, code)],
            "v{version} generation {generation} member {member:?}"
        );
    }
    assert_eq!(
        fetch_all_versions(&mut c, "g-member", "old", &[0, 2]),
        vec![(30, "member".into()), (32, "".into())]
    );
    // A group that does not exist yet refuses a generation (a stale member of a lost group).
    let r = commit_old(&mut c, 1, "g-gone", 3, "m", "old", &[(0, 1, -1, None)]);
    assert_eq!(r, vec![(0, ILLEGAL_GENERATION)]);

    // The member leaves: the group is Empty, simple commits go through again.
    let r: LeaveGroupResponse = c.call(
        ApiKey::LeaveGroup,
        1,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(sb("g-member")))
            .with_member_id(sb(&m)),
    );
    assert_eq!(r.error_code, NONE);
    let r = commit_old(&mut c, 1, "g-member", gen_, &m, "old", &[(0, 1, -1, None)]);
    assert_eq!(r, vec![(0, UNKNOWN_MEMBER_ID)], "a former member");
    let r = commit_old(
        &mut c,
        0,
        "g-member",
        0,
        "",
        "old",
        &[(1, 41, 0, Some("v0"))],
    );
    assert_eq!(r, vec![(1, NONE)]);

    // A malformed v1 body closes the connection (as for every undecodable request).
    let mut bad = Client::connect(broker.local_addr());
    bad.send_raw_header_v1(ApiKey::OffsetCommit, 1, &[0, 1, b'g', 0, 0]);
    assert!(bad.recv_frame().is_err(), "connection closed");
    broker.shutdown().unwrap();

    let broker = start(dir.path(), 1);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(
        fetch_all_versions(&mut c, "g-v0", "old", &[0, 1]),
        vec![(10, "zero".into()), (12, "v8".into())]
    );
    assert_eq!(
        fetch_all_versions(&mut c, "g-v1", "old", &[0, 3]),
        vec![(20, "a".into()), (23, "b".into())]
    );
    assert_eq!(
        fetch_all_versions(&mut c, "g-member", "old", &[0, 1, 2]),
        vec![(30, "member".into()), (41, "v0".into()), (32, "".into())]
    );
    broker.shutdown().unwrap();
}

fn static_join(group: &str, member: &str, instance: &str) -> JoinGroupRequest {
    join_req(group, member).with_group_instance_id(Some(sb(instance)))
}

fn static_heartbeat(c: &mut Client, group: &str, member: &str, inst: &str, generation: i32) -> i16 {
    let req = heartbeat_request(group, member, generation).with_group_instance_id(Some(sb(inst)));
    let r: HeartbeatResponse = c.call(ApiKey::Heartbeat, 4, &req);
    r.error_code
}

fn leave_v4(c: &mut Client, group: &str, members: &[(&str, Option<&str>)]) -> LeaveGroupResponse {
    let req = LeaveGroupRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_members(
            members
                .iter()
                .map(|(m, i)| {
                    MemberIdentity::default()
                        .with_member_id(sb(m))
                        .with_group_instance_id(i.map(sb))
                })
                .collect(),
        );
    c.call(ApiKey::LeaveGroup, 4, &req)
}

/// KIP-345 over the wire (JoinGroup v5 as librdkafka sends it, v9 as the Java client does):
/// static members join without MEMBER_ID_REQUIRED, a restarted instance takes its old place and
/// assignment without a rebalance (v5 answered as a follower, v9 leader told to skip the
/// assignment), the old member id is fenced, LeaveGroup v3+ removes by instance id.
#[test]
fn static_members_restart_without_rebalance_and_leave_by_instance_id() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let addr = broker.local_addr();
    let (mut a, mut b) = (Client::connect(addr), Client::connect(addr));
    let group = "static-group";

    // a alone (the initial rebalance ends on its zero-delay timer), Stable.
    let r: JoinGroupResponse = a.call(ApiKey::JoinGroup, 5, &static_join(group, "", "inst-a"));
    assert_eq!(r.error_code, NONE, "static members skip MEMBER_ID_REQUIRED");
    let (ma, gen1) = (r.member_id.to_string(), r.generation_id);
    assert!(
        ma.starts_with("inst-a-"),
        "member id prefixed by the instance id: {ma}"
    );
    let s: SyncGroupResponse = a.call(
        ApiKey::SyncGroup,
        3,
        &sync_group_request(group, &ma, gen1, &[(&ma, b"all")]),
    );
    assert_eq!(s.error_code, NONE);
    // b joins; a rejoins when its heartbeat says so; both in the next generation.
    let join_b = b.send(ApiKey::JoinGroup, 5, &static_join(group, "", "inst-b"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        static_heartbeat(&mut a, group, &ma, "inst-a", gen1),
        REBALANCE_IN_PROGRESS
    );
    let ra: JoinGroupResponse = a.call(ApiKey::JoinGroup, 5, &static_join(group, &ma, "inst-a"));
    let rb: JoinGroupResponse = b.recv(join_b, 5);
    let (mb, gen2) = (rb.member_id.to_string(), ra.generation_id);
    assert_eq!(
        (ra.error_code, rb.error_code, rb.generation_id),
        (NONE, NONE, gen2)
    );
    assert_eq!(ra.leader.as_str(), ma);
    let mut instances: Vec<_> = ra
        .members
        .iter()
        .map(|m| m.group_instance_id.as_ref().unwrap().to_string())
        .collect();
    instances.sort();
    assert_eq!(instances, ["inst-a", "inst-b"]);
    let sync_b = b.send(
        ApiKey::SyncGroup,
        3,
        &sync_group_request(group, &mb, gen2, &[]),
    );
    let _: SyncGroupResponse = a.call(
        ApiKey::SyncGroup,
        3,
        &sync_group_request(group, &ma, gen2, &[(&ma, b"p0p1"), (&mb, b"p2")]),
    );
    let s: SyncGroupResponse = b.recv(sync_b, 3);
    assert_eq!(&s.assignment[..], b"p2");

    // b restarts (a new connection, no member id, same instance id): same generation at once.
    let mut b2 = Client::connect(addr);
    let r: JoinGroupResponse = b2.call(ApiKey::JoinGroup, 5, &static_join(group, "", "inst-b"));
    assert_eq!(
        (r.error_code, r.generation_id),
        (NONE, gen2),
        "no rebalance"
    );
    let mb2 = r.member_id.to_string();
    assert_ne!(mb2, mb);
    assert_eq!(r.leader.as_str(), ma);
    let s: SyncGroupResponse = b2.call(
        ApiKey::SyncGroup,
        3,
        &sync_group_request(group, &mb2, gen2, &[]),
    );
    assert_eq!((s.error_code, &s.assignment[..]), (NONE, &b"p2"[..]));
    assert_eq!(static_heartbeat(&mut a, group, &ma, "inst-a", gen2), NONE);
    // The old incarnation is fenced.
    assert_eq!(
        static_heartbeat(&mut b, group, &mb, "inst-b", gen2),
        FENCED_INSTANCE_ID
    );

    // The leader restarts with a v5 client: told the old leader id, so it just syncs...
    let mut a2 = Client::connect(addr);
    let r: JoinGroupResponse = a2.call(ApiKey::JoinGroup, 5, &static_join(group, "", "inst-a"));
    assert_eq!((r.error_code, r.generation_id), (NONE, gen2));
    let ma2 = r.member_id.to_string();
    assert_eq!(
        r.leader.as_str(),
        ma,
        "v5: the leader id from before the restart"
    );
    assert!(r.members.is_empty());
    let s: SyncGroupResponse = a2.call(
        ApiKey::SyncGroup,
        3,
        &sync_group_request(group, &ma2, gen2, &[]),
    );
    assert_eq!(&s.assignment[..], b"p0p1");
    // ...and with a v9 client it is told it leads, with the members, but to skip assigning.
    let mut a3 = Client::connect(addr);
    let r: JoinGroupResponse = a3.call(ApiKey::JoinGroup, 9, &static_join(group, "", "inst-a"));
    assert_eq!((r.error_code, r.generation_id), (NONE, gen2));
    assert_eq!(r.leader, r.member_id);
    assert!(r.skip_assignment);
    assert_eq!(r.members.len(), 2);
    let ma3 = r.member_id.to_string();

    // LeaveGroup v4: a wrong member id for an instance is fenced, an unknown instance unknown,
    // and the admin form (no member id, instance id only) removes b at once.
    let r = leave_v4(
        &mut a3,
        group,
        &[
            (&mb, Some("inst-b")),
            ("", Some("inst-zz")),
            ("", Some("inst-b")),
        ],
    );
    let codes: Vec<i16> = r.members.iter().map(|m| m.error_code).collect();
    assert_eq!(r.error_code, NONE);
    assert_eq!(codes, [FENCED_INSTANCE_ID, UNKNOWN_MEMBER_ID, NONE]);
    assert_eq!(
        static_heartbeat(&mut b2, group, &mb2, "inst-b", gen2),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        static_heartbeat(&mut a3, group, &ma3, "inst-a", gen2),
        REBALANCE_IN_PROGRESS
    );
    // LeaveGroup of a group that does not exist: a request-level error, as in Kafka.
    let r = leave_v4(&mut a3, "no-such-group", &[("", Some("inst-a"))]);
    assert_eq!((r.error_code, r.members.len()), (UNKNOWN_MEMBER_ID, 0));
    broker.shutdown().unwrap();
}
