//! AlterClientQuotas / DescribeClientQuotas and the enforcement of byte-rate, request-time
//! (`request_percentage`) and topic-mutation (`controller_mutation_rate`) quotas: throttle times
//! in the answers, muted connections, delayed answers for old clients, refused mutations; persisted.

mod server_util;

use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::alter_client_quotas_request::{
    AlterClientQuotasRequest, EntityData, EntryData, OpData,
};
use kafka_protocol::messages::alter_client_quotas_response::AlterClientQuotasResponse;
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsRequest, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsResponse;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::create_topics_response::CreateTopicsResponse;
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::delete_topics_response::DeleteTopicsResponse;
use kafka_protocol::messages::describe_client_quotas_request::{
    ComponentData, DescribeClientQuotasRequest,
};
use kafka_protocol::messages::describe_client_quotas_response::DescribeClientQuotasResponse;
use kafka_protocol::messages::fetch_response::FetchResponse;
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::produce_response::ProduceResponse;
use server_util::*;

/// (entity parts, (key, value or None to remove)) → error codes per entry.
fn alter(c: &mut Client, entity: Parts, ops: Ops, validate_only: bool) -> (i16, String) {
    let req = AlterClientQuotasRequest::default()
        .with_validate_only(validate_only)
        .with_entries(vec![
            EntryData::default()
                .with_entity(
                    entity
                        .iter()
                        .map(|(t, n)| {
                            EntityData::default()
                                .with_entity_type(sb(t))
                                .with_entity_name(n.map(sb))
                        })
                        .collect(),
                )
                .with_ops(
                    ops.iter()
                        .map(|(k, v)| {
                            OpData::default()
                                .with_key(sb(k))
                                .with_value(v.unwrap_or(0.0))
                                .with_remove(v.is_none())
                        })
                        .collect(),
                ),
        ]);
    let r: AlterClientQuotasResponse = c.call(ApiKey::AlterClientQuotas, 1, &req);
    let e = &r.entries[0];
    (
        e.error_code,
        e.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

/// Every configured quota as (entity parts, key, value), sorted.
/// (entity parts, key, value) of one described quota.
type Described = (Vec<(String, Option<String>)>, String, f64);
/// An entity's (type, name) parts and (key, value or None to remove) operations.
type Parts<'a> = &'a [(&'a str, Option<&'a str>)];
type Ops<'a> = &'a [(&'a str, Option<f64>)];

fn describe_all(c: &mut Client) -> Vec<Described> {
    let req = DescribeClientQuotasRequest::default().with_components(vec![]);
    let r: DescribeClientQuotasResponse = c.call(ApiKey::DescribeClientQuotas, 1, &req);
    assert_eq!(r.error_code, 0);
    let mut out = Vec::new();
    for e in r.entries.unwrap_or_default() {
        let parts: Vec<_> = e
            .entity
            .iter()
            .map(|d| {
                (
                    d.entity_type.to_string(),
                    d.entity_name.as_ref().map(|n| n.to_string()),
                )
            })
            .collect();
        for v in e.values {
            out.push((parts.clone(), v.key.to_string(), v.value));
        }
    }
    out.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    out
}

fn payload(tag: &str) -> bytes::Bytes {
    // ~40 KB in one batch.
    batch(&tag.repeat(400), 100, 1)
}

fn produce(c: &mut Client, version: i16, tag: &str) -> (i16, i32) {
    let r: ProduceResponse = c.call(
        ApiKey::Produce,
        version,
        &Client::produce_req("q", 0, 1, payload(tag)),
    );
    (
        r.responses[0].partition_responses[0].error_code,
        r.throttle_time_ms,
    )
}

#[test]
fn producer_quota_throttles_and_mutes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let addr = broker.local_addr();
    let mut admin = Client::connect(addr);
    assert_eq!(admin.create_topic("q", 1, &[], 7).topics[0].error_code, 0);
    // A 10 KB/s quota for client id "slow".
    assert_eq!(
        alter(
            &mut admin,
            &[("client-id", Some("slow"))],
            &[("producer_byte_rate", Some(10_000.0))],
            false
        ),
        (0, String::new())
    );
    let mut slow = Client::connect(addr).with_client_id("slow");
    let mut fast = Client::connect(addr).with_client_id("fast");
    // 40 KB over the 10 s minimum span is 4 KB/s: within the quota; the next two exceed it.
    assert_eq!(produce(&mut slow, 9, "a"), (0, 0));
    assert_eq!(produce(&mut slow, 9, "b"), (0, 0));
    let (err, throttle) = produce(&mut slow, 9, "c");
    assert_eq!(err, 0);
    assert!(throttle > 1_000, "throttle {throttle}");
    // The connection is muted: its next request waits out the throttle.
    let t = Instant::now();
    let r: ApiVersionsResponse = slow.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(r.error_code, 0);
    assert!(
        t.elapsed() >= Duration::from_millis(throttle as u64 - 50),
        "{:?} < {throttle} ms",
        t.elapsed()
    );
    // Another client id has no quota.
    for tag in ["d", "e", "f", "g"] {
        assert_eq!(produce(&mut fast, 9, tag), (0, 0));
    }
    // An old client (Produce v5, before KIP-219) gets its answer only after the throttle.
    let mut old = Client::connect(addr).with_client_id("slow");
    let t = Instant::now();
    let (err, throttle) = produce(&mut old, 5, "h");
    assert_eq!(err, 0);
    assert!(throttle > 0);
    assert!(t.elapsed() >= Duration::from_millis(throttle as u64 - 50));
    broker.shutdown().unwrap();
}

#[test]
fn consumer_quota_throttles_fetches() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 1);
    let addr = broker.local_addr();
    let mut c = Client::connect(addr);
    assert_eq!(c.create_topic("q", 1, &[], 7).topics[0].error_code, 0);
    for tag in ["a", "b", "c", "d"] {
        assert_eq!(produce(&mut c, 9, tag).0, 0);
    }
    // The default client-id entity: every client id is metered on its own.
    assert_eq!(
        alter(
            &mut c,
            &[("client-id", None)],
            &[("consumer_byte_rate", Some(5_000.0))],
            false
        )
        .0,
        0
    );
    let mut reader = Client::connect(addr).with_client_id("reader");
    let req = Client::fetch_req("q", 0, 0, 100, 1);
    let r: FetchResponse = reader.call(ApiKey::Fetch, 12, &req);
    assert!(r.throttle_time_ms > 1_000, "{}", r.throttle_time_ms);
    let records = r.responses[0].partitions[0].records.as_ref().unwrap();
    assert!(
        records.len() > 100_000,
        "a throttled fetch still carries its records"
    );
    broker.shutdown().unwrap();
}

fn metadata(c: &mut Client, version: i16) -> MetadataResponse {
    c.call(
        ApiKey::Metadata,
        version,
        &MetadataRequest::default().with_topics(Some(vec![])),
    )
}

/// A client with a tiny `request_percentage` quota (0.001 % of a core: 100 µs of request time per
/// 10 s window) is throttled after a few requests: the answer carries the throttle time (at most
/// one 1 s window, as Kafka bounds request throttles) and the connection is muted for it, also
/// for an answer without the field. A client without a quota never is.
#[test]
fn request_quota_throttles_busy_clients() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let addr = broker.local_addr();
    let mut admin = Client::connect(addr);
    assert_eq!(
        alter(
            &mut admin,
            &[("client-id", Some("busy"))],
            &[("request_percentage", Some(0.001))],
            false
        ),
        (0, String::new())
    );
    let mut busy = Client::connect(addr).with_client_id("busy");
    let mut idle = Client::connect(addr).with_client_id("idle");
    let mut throttle = 0;
    for _ in 0..200 {
        throttle = metadata(&mut busy, 12).throttle_time_ms;
        if throttle > 0 {
            break;
        }
    }
    assert!(
        throttle > 0 && throttle <= 1000,
        "busy client throttled: {throttle} ms"
    );
    // Muted: its next request starts after the throttle time.
    let t = Instant::now();
    let r: ApiVersionsResponse = busy.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(r.error_code, 0);
    assert!(
        t.elapsed() >= Duration::from_millis(throttle as u64 - 50),
        "{:?} < {throttle} ms",
        t.elapsed()
    );
    // ApiVersions has its throttle field last (not raised): the mute alone holds the client back.
    let t = Instant::now();
    let _ = metadata(&mut busy, 2);
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "muted after an ApiVersions over quota: {:?}",
        t.elapsed()
    );
    // Produce (throttle time last in the body) and a zero-copy Fetch (in its first memory chunk)
    // carry the request-time throttle too.
    assert_eq!(admin.create_topic("q", 1, &[], 7).topics[0].error_code, 0);
    for id in ["busy-p", "busy-f"] {
        assert_eq!(
            alter(
                &mut admin,
                &[("client-id", Some(id))],
                &[("request_percentage", Some(0.001))],
                false
            )
            .0,
            0
        );
    }
    let mut producer = Client::connect(addr).with_client_id("busy-p");
    let mut throttle = 0;
    for i in 0..200 {
        let (err, t) = produce(&mut producer, 9, &format!("{i}"));
        assert_eq!(err, 0);
        if t > 0 {
            throttle = t;
            break;
        }
    }
    assert!(
        throttle > 0 && throttle <= 1000,
        "produce throttle {throttle}"
    );
    let mut fetcher = Client::connect(addr).with_client_id("busy-f");
    let mut throttle = 0;
    for _ in 0..200 {
        let r: FetchResponse =
            fetcher.call(ApiKey::Fetch, 12, &Client::fetch_req("q", 0, 0, 100, 1));
        assert_eq!(r.responses[0].partitions[0].error_code, 0);
        if r.throttle_time_ms > 0 {
            throttle = r.throttle_time_ms;
            break;
        }
    }
    assert!(
        throttle > 0 && throttle <= 1000,
        "fetch throttle {throttle}"
    );
    // The same requests from a client without a quota are never throttled.
    for _ in 0..200 {
        assert_eq!(metadata(&mut idle, 12).throttle_time_ms, 0);
    }
    // Removing the quota lifts it.
    assert_eq!(
        alter(
            &mut admin,
            &[("client-id", Some("busy"))],
            &[("request_percentage", None)],
            false
        )
        .0,
        0
    );
    std::thread::sleep(Duration::from_millis(1100));
    let _ = metadata(&mut busy, 12);
    for _ in 0..50 {
        assert_eq!(metadata(&mut busy, 12).throttle_time_ms, 0);
    }
    broker.shutdown().unwrap();
}

const THROTTLING_QUOTA_EXCEEDED: i16 = 89;

/// CreateTopics of `(name, partitions)` at `version`: (per-topic error codes, throttle time).
fn create_topics(c: &mut Client, version: i16, topics: &[(&str, i32)]) -> (Vec<i16>, i32) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(
            topics
                .iter()
                .map(|(n, p)| {
                    CreatableTopic::default()
                        .with_name(topic_name(n))
                        .with_num_partitions(*p)
                        .with_replication_factor(1)
                })
                .collect(),
        );
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, version, &req);
    let codes = r.topics.iter().map(|t| t.error_code).collect();
    (codes, r.throttle_time_ms)
}

fn topic_name(n: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(sb(n))
}

/// `controller_mutation_rate` = 2 partitions/s for every client id (the default entity, so each is
/// metered on its own): a bucket of 22 partitions, then strict versions refuse the next topic with
/// THROTTLING_QUOTA_EXCEEDED and old versions are only throttled.
#[test]
fn mutation_quota_refuses_or_throttles_topic_changes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let addr = broker.local_addr();
    let mut admin = Client::connect(addr);
    assert_eq!(
        alter(
            &mut admin,
            &[("client-id", None)],
            &[("controller_mutation_rate", Some(2.0))],
            false
        ),
        (0, String::new())
    );
    // Strict (v6+): 20 + 3 partitions take the bucket to -1; the third topic is refused.
    let mut strict = Client::connect(addr).with_client_id("strict");
    let (codes, throttle) = create_topics(&mut strict, 7, &[("a", 20), ("b", 3), ("c", 1)]);
    assert_eq!(codes, vec![0, 0, THROTTLING_QUOTA_EXCEEDED]);
    // -1 token at 2/s: about 500 ms until the bucket is back at zero.
    assert!((400..=500).contains(&throttle), "throttle {throttle}");
    let t = Instant::now();
    let r: ApiVersionsResponse =
        strict.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(r.error_code, 0);
    assert!(
        t.elapsed() >= Duration::from_millis(throttle as u64 - 50),
        "muted: {:?}",
        t.elapsed()
    );
    // Old versions (v5) are never refused, only throttled.
    let mut old = Client::connect(addr).with_client_id("old");
    let (codes, throttle) = create_topics(&mut old, 5, &[("d", 20), ("e", 3), ("f", 1)]);
    assert_eq!(codes, vec![0, 0, 0]);
    assert!(throttle > 500, "throttle {throttle}");
    // DeleteTopics (strict from v5) and CreatePartitions (strict from v3) take their partitions.
    let mut deleter = Client::connect(addr).with_client_id("deleter");
    let del = |c: &mut Client, names: &[&str]| -> (Vec<i16>, i32) {
        let req = DeleteTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topic_names(names.iter().map(|n| topic_name(n)).collect());
        let r: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, 5, &req);
        (
            r.responses.iter().map(|t| t.error_code).collect(),
            r.throttle_time_ms,
        )
    };
    assert_eq!(del(&mut deleter, &["d"]), (vec![0], 0));
    // "e" takes the bucket from 2 to -1; "f" is refused.
    let (codes, throttle) = del(&mut deleter, &["e", "f"]);
    assert_eq!(codes, vec![0, THROTTLING_QUOTA_EXCEEDED]);
    assert!((400..=500).contains(&throttle), "throttle {throttle}");
    let mut grower = Client::connect(addr).with_client_id("grower");
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(topic_name("a"))
                .with_count(43)
                .with_assignments(None),
            CreatePartitionsTopic::default()
                .with_name(topic_name("b"))
                .with_count(4)
                .with_assignments(None),
        ]);
    let r: CreatePartitionsResponse = grower.call(ApiKey::CreatePartitions, 3, &req);
    let codes: Vec<i16> = r.results.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![0, THROTTLING_QUOTA_EXCEEDED]);
    assert!(r.throttle_time_ms > 0);
    broker.shutdown().unwrap();
}

#[test]
fn quotas_are_validated_described_and_persisted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = start(dir.path(), 1);
        let mut c = Client::connect(broker.local_addr());
        let bad: &[(Parts, Ops)] = &[
            (
                &[("group", Some("g"))],
                &[("producer_byte_rate", Some(1.0))],
            ),
            (
                &[("user", Some("a")), ("user", Some("b"))],
                &[("producer_byte_rate", Some(1.0))],
            ),
            (&[], &[("producer_byte_rate", Some(1.0))]),
            (&[("user", Some("a"))], &[("no_such_rate", Some(1.0))]),
            (
                &[("user", Some("a"))],
                &[("producer_byte_rate", Some(-5.0))],
            ),
            (&[("user", Some("a"))], &[("producer_byte_rate", Some(1.5))]),
            (
                &[("user", Some("a"))],
                &[("controller_mutation_rate", Some(0.0))],
            ),
            (
                &[("ip", Some("127.0.0.1"))],
                &[("connection_creation_rate", Some(5.0))],
            ),
            (&[("user", Some("a"))], &[("request_percentage", Some(0.0))]),
            (
                &[("user", Some("a"))],
                &[("request_percentage", Some(-1.0))],
            ),
        ];
        for (entity, ops) in bad {
            let (code, msg) = alter(&mut c, entity, ops, false);
            assert_eq!(code, 42, "{entity:?} {ops:?}");
            assert!(!msg.is_empty());
        }
        assert_eq!(
            alter(
                &mut c,
                &[("user", Some("alice")), ("client-id", None)],
                &[("producer_byte_rate", Some(2048.0))],
                true
            )
            .0,
            0
        );
        assert!(
            describe_all(&mut c).is_empty(),
            "validate_only changed nothing"
        );
        for (entity, key, v) in [
            (
                &[("user", Some("alice")), ("client-id", None)][..],
                "producer_byte_rate",
                2048.0,
            ),
            (
                &[("client-id", Some("app"))][..],
                "consumer_byte_rate",
                4096.0,
            ),
            (
                &[("client-id", Some("app"))][..],
                "producer_byte_rate",
                1024.0,
            ),
            (
                &[("client-id", Some("app"))][..],
                "request_percentage",
                12.5,
            ),
            (&[("user", Some("bob"))][..], "request_percentage", 50.0),
        ] {
            assert_eq!(alter(&mut c, entity, &[(key, Some(v))], false).0, 0);
        }
        // Remove one key.
        assert_eq!(
            alter(
                &mut c,
                &[("client-id", Some("app"))],
                &[("producer_byte_rate", None)],
                false
            )
            .0,
            0
        );
        assert_eq!(
            alter(
                &mut c,
                &[("user", Some("bob"))],
                &[("request_percentage", None)],
                false
            )
            .0,
            0
        );
        broker.shutdown().unwrap();
    }
    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    let all = describe_all(&mut c);
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.contains(&(
        vec![("client-id".into(), Some("app".into()))],
        "request_percentage".into(),
        12.5
    )));
    assert!(all.contains(&(
        vec![("client-id".into(), Some("app".into()))],
        "consumer_byte_rate".into(),
        4096.0
    )));
    assert!(all.contains(&(
        vec![
            ("user".into(), Some("alice".into())),
            ("client-id".into(), None)
        ],
        "producer_byte_rate".into(),
        2048.0
    )));
    // Filters: exact user, default client id, strict.
    let filtered = |c: &mut Client, comps: Vec<ComponentData>, strict: bool| {
        let req = DescribeClientQuotasRequest::default()
            .with_components(comps)
            .with_strict(strict);
        let r: DescribeClientQuotasResponse = c.call(ApiKey::DescribeClientQuotas, 1, &req);
        (r.error_code, r.entries.map(|e| e.len()).unwrap_or(0))
    };
    let user_alice = ComponentData::default()
        .with_entity_type(sb("user"))
        .with_match_type(0)
        .with_match(Some(sb("alice")));
    assert_eq!(filtered(&mut c, vec![user_alice.clone()], false), (0, 1));
    assert_eq!(filtered(&mut c, vec![user_alice.clone()], true), (0, 0));
    let default_client = ComponentData::default()
        .with_entity_type(sb("client-id"))
        .with_match_type(1);
    assert_eq!(filtered(&mut c, vec![default_client], false), (0, 1));
    assert_eq!(
        filtered(&mut c, vec![user_alice.clone(), user_alice], false).0,
        42
    );
    broker.shutdown().unwrap();
}
