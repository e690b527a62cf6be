//! Transactional offset commits over a real socket: raw kafka-protocol TxnOffsetCommit
//! requests against `spawn_broker` (2 shards, so the group's coordinator is reached across
//! shards): KIP-447 generation fencing, pending offsets invisible to OffsetFetch and reported
//! UNSTABLE_OFFSET_COMMIT to `require_stable` fetches, kept pending across a restart (no marker
//! yet), unknown partitions and v0 requests.

mod server_util;

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponse;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponse;
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequest, TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::txn_offset_commit_response::TxnOffsetCommitResponse;
use kafka_protocol::messages::{ApiKey, GroupId, ProducerId, TopicName, TransactionalId};
use kafka_test_client::group::{join_group_request, sync_group_request};
use ringbolt::server::{BrokerHandle, spawn_broker};
use server_util::{Client, config, init_logs, sb};

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const MEMBER_ID_REQUIRED: i16 = 79;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;

fn start(dir: &std::path::Path) -> BrokerHandle {
    init_logs();
    let mut cfg = config(dir, 2);
    cfg.settings.group_initial_rebalance_delay_ms = 0;
    spawn_broker(cfg).expect("broker starts")
}

struct Txn<'a> {
    group: &'a str,
    producer_id: i64,
    epoch: i16,
    member: &'a str,
    generation: i32,
}

/// TxnOffsetCommit v`version` of `parts` (partition, offset) of `topic`; per-partition codes.
fn txn_commit(
    c: &mut Client,
    version: i16,
    t: &Txn<'_>,
    topic: &str,
    parts: &[(i32, i64)],
) -> Vec<i16> {
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(sb("tx-1")))
        .with_group_id(GroupId(sb(t.group)))
        .with_producer_id(ProducerId(t.producer_id))
        .with_producer_epoch(t.epoch)
        .with_generation_id(t.generation)
        .with_member_id(sb(t.member))
        .with_topics(vec![
            TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(sb(topic)))
                .with_partitions(
                    parts
                        .iter()
                        .map(|(p, o)| {
                            TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*o)
                                .with_committed_metadata(Some(sb("txn")))
                        })
                        .collect(),
                ),
        ]);
    let r: TxnOffsetCommitResponse = c.call(ApiKey::TxnOffsetCommit, version, &req);
    assert_eq!(r.topics.len(), 1);
    r.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// OffsetFetch v7 of `parts`: (offset, error code) per partition.
fn fetch7(
    c: &mut Client,
    group: &str,
    topic: &str,
    parts: &[i32],
    require_stable: bool,
) -> Vec<(i64, i16)> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_require_stable(require_stable)
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(sb(topic)))
                .with_partition_indexes(parts.to_vec()),
        ]));
    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 7, &req);
    assert_eq!(r.error_code, NONE);
    r.topics[0]
        .partitions
        .iter()
        .map(|p| (p.committed_offset, p.error_code))
        .collect()
}

/// OffsetFetch v8 (batched groups) of `parts`: (offset, error code) per partition.
fn fetch8(
    c: &mut Client,
    group: &str,
    topic: &str,
    parts: &[i32],
    require_stable: bool,
) -> Vec<(i64, i16)> {
    let req = OffsetFetchRequest::default()
        .with_require_stable(require_stable)
        .with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(sb(group)))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopics::default()
                        .with_name(TopicName(sb(topic)))
                        .with_partition_indexes(parts.to_vec()),
                ])),
        ]);
    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 8, &req);
    assert_eq!(r.groups[0].error_code, NONE);
    r.groups[0].topics[0]
        .partitions
        .iter()
        .map(|p| (p.committed_offset, p.error_code))
        .collect()
}

/// Joins `group` as its only member: (member id, generation).
fn join_alone(c: &mut Client, group: &str) -> (String, i32) {
    let meta = Bytes::from_static(b"\x00\x00\x00\x00\x00\x01\x00\x01t\x00\x00\x00\x00");
    let r: JoinGroupResponse = c.call(
        ApiKey::JoinGroup,
        5,
        &join_group_request(group, "", 10_000, meta.clone()),
    );
    assert_eq!(r.error_code, MEMBER_ID_REQUIRED);
    let m = r.member_id.to_string();
    let r: JoinGroupResponse = c.call(
        ApiKey::JoinGroup,
        5,
        &join_group_request(group, &m, 10_000, meta),
    );
    assert_eq!(r.error_code, NONE);
    let generation = r.generation_id;
    let r: SyncGroupResponse = c.call(
        ApiKey::SyncGroup,
        3,
        &sync_group_request(group, &m, generation, &[(&m, b"x")]),
    );
    assert_eq!(r.error_code, NONE);
    (m, generation)
}

#[test]
fn txn_offset_commit_is_fenced_pending_and_unstable_until_completed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut c = Client::connect(broker.local_addr());
    let r = c.create_topic("in", 3, &[], 4);
    assert_eq!(r.topics[0].error_code, NONE);

    let group = "eos-group";
    let (member, generation) = join_alone(&mut c, group);
    let tx = Txn {
        group,
        producer_id: 4000,
        epoch: 0,
        member: &member,
        generation,
    };
    // KIP-447: a stale generation or an unknown member is fenced; nothing is written.
    let stale = Txn {
        generation: generation - 1,
        ..tx
    };
    assert_eq!(
        txn_commit(&mut c, 3, &stale, "in", &[(0, 5)]),
        vec![ILLEGAL_GENERATION]
    );
    let stranger = Txn {
        member: "stranger",
        ..tx
    };
    assert_eq!(
        txn_commit(&mut c, 3, &stranger, "in", &[(0, 5)]),
        vec![UNKNOWN_MEMBER_ID]
    );
    let nogroup = Txn {
        group: "no-such-group",
        ..tx
    };
    assert_eq!(
        txn_commit(&mut c, 3, &nogroup, "in", &[(0, 5)]),
        vec![ILLEGAL_GENERATION]
    );
    assert_eq!(
        fetch7(&mut c, group, "in", &[0], true),
        vec![(-1, NONE)],
        "a fenced commit left nothing pending"
    );

    // The member's commit (v3, flexible): pending. Unknown partitions are refused alone.
    assert_eq!(
        txn_commit(&mut c, 3, &tx, "in", &[(0, 10), (1, 11), (7, 1)]),
        vec![NONE, NONE, UNKNOWN_TOPIC_OR_PARTITION]
    );
    assert_eq!(
        txn_commit(&mut c, 4, &tx, "nope", &[(0, 1)]),
        vec![UNKNOWN_TOPIC_OR_PARTITION]
    );
    // Invisible without require_stable; UNSTABLE_OFFSET_COMMIT (per partition) with it.
    assert_eq!(
        fetch7(&mut c, group, "in", &[0, 1, 2], false),
        vec![(-1, NONE), (-1, NONE), (-1, NONE)]
    );
    assert_eq!(
        fetch7(&mut c, group, "in", &[0, 1, 2], true),
        vec![
            (-1, UNSTABLE_OFFSET_COMMIT),
            (-1, UNSTABLE_OFFSET_COMMIT),
            (-1, NONE)
        ]
    );
    assert_eq!(
        fetch8(&mut c, group, "in", &[1, 2], true),
        vec![(-1, UNSTABLE_OFFSET_COMMIT), (-1, NONE)]
    );

    // A v0 request (no member fields) from another producer, to a standalone group.
    let solo = Txn {
        group: "solo",
        producer_id: 4001,
        epoch: 2,
        member: "",
        generation: -1,
    };
    assert_eq!(txn_commit(&mut c, 0, &solo, "in", &[(2, 3)]), vec![NONE]);
    // Its zombie (older epoch) is fenced.
    let zombie = Txn { epoch: 1, ..solo };
    assert_eq!(
        txn_commit(&mut c, 0, &zombie, "in", &[(2, 1)]),
        vec![INVALID_PRODUCER_EPOCH]
    );
    broker.shutdown().unwrap();

    // No marker was written: after a restart the offsets are still pending, not committed.
    let broker = start(dir.path());
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(
        fetch7(&mut c, group, "in", &[0, 1], false),
        vec![(-1, NONE), (-1, NONE)]
    );
    assert_eq!(
        fetch7(&mut c, group, "in", &[0, 1], true),
        vec![(-1, UNSTABLE_OFFSET_COMMIT), (-1, UNSTABLE_OFFSET_COMMIT)]
    );
    assert_eq!(
        fetch7(&mut c, "solo", "in", &[2], true),
        vec![(-1, UNSTABLE_OFFSET_COMMIT)]
    );
    broker.shutdown().unwrap();
}
