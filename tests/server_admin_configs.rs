//! IncrementalAlterConfigs, AlterConfigs, DescribeConfigs (sources, synonyms, documentation) and
//! CreatePartitions against a real broker: changes take effect on running partitions, survive a
//! restart, and bad input changes nothing.

mod server_util;

use kafka_protocol::messages::alter_configs_request::{
    AlterConfigsRequest, AlterConfigsResource, AlterableConfig as LegacyConfig,
};
use kafka_protocol::messages::alter_configs_response::AlterConfigsResponse;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsRequest, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsResponse;
use kafka_protocol::messages::describe_configs_request::{
    DescribeConfigsRequest, DescribeConfigsResource,
};
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse,
};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncResource, AlterableConfig, IncrementalAlterConfigsRequest,
};
use kafka_protocol::messages::incremental_alter_configs_response::IncrementalAlterConfigsResponse;
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::{ApiKey, BrokerId};
use server_util::*;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;

/// (config name, operation, value) of one IncrementalAlterConfigs entry.
type Op<'a> = (&'a str, i8, Option<&'a str>);

fn inc(c: &mut Client, validate_only: bool, resources: &[(i8, &str, &[Op])]) -> Vec<(i16, String)> {
    let req = IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(
            resources
                .iter()
                .map(|(ty, name, ops)| {
                    IncResource::default()
                        .with_resource_type(*ty)
                        .with_resource_name(sb(name))
                        .with_configs(
                            ops.iter()
                                .map(|(n, op, v)| {
                                    AlterableConfig::default()
                                        .with_name(sb(n))
                                        .with_config_operation(*op)
                                        .with_value(v.map(sb))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let r: IncrementalAlterConfigsResponse = c.call(ApiKey::IncrementalAlterConfigs, 1, &req);
    r.responses
        .iter()
        .map(|x| {
            (
                x.error_code,
                x.error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn describe(c: &mut Client, ty: i8, name: &str, key: &str) -> DescribeConfigsResourceResult {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(ty)
                .with_resource_name(sb(name))
                .with_configuration_keys(Some(vec![sb(key)])),
        ]);
    let mut r: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 4, &req);
    assert_eq!(
        r.results[0].error_code, 0,
        "{:?}",
        r.results[0].error_message
    );
    assert_eq!(r.results[0].configs.len(), 1, "{key}");
    r.results[0].configs.remove(0)
}

fn value(c: &mut Client, ty: i8, name: &str, key: &str) -> (Option<String>, i8) {
    let d = describe(c, ty, name, key);
    (d.value.map(|v| v.to_string()), d.config_source)
}

/// A batch of `n` records of about 100 bytes each.
fn big_batch(n: usize) -> bytes::Bytes {
    batch(&"x".repeat(100), n, 1_000)
}

#[test]
fn topic_config_changes_reach_running_partitions_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = start(dir.path(), 2);
        let mut c = Client::connect(broker.local_addr());
        assert_eq!(c.create_topic("cfg", 2, &[], 7).topics[0].error_code, 0);
        assert_eq!(c.produce("cfg", 1, 1, big_batch(10), 9).0, 0);
        // A smaller max.message.bytes refuses the same batch on the open partition at once.
        let r = inc(
            &mut c,
            false,
            &[(TOPIC, "cfg", &[("max.message.bytes", SET, Some("300"))])],
        );
        assert_eq!(r, [(0, String::new())]);
        assert_eq!(c.produce("cfg", 1, 1, big_batch(10), 9).0, 10); // MESSAGE_TOO_LARGE
        assert_eq!(c.produce("cfg", 0, 1, big_batch(10), 9).0, 10);
        let d = describe(&mut c, TOPIC, "cfg", "max.message.bytes");
        assert_eq!(
            d.value.as_deref().map(|v| v.to_string()),
            Some("300".into())
        );
        assert_eq!(d.config_source, 1); // TOPIC_CONFIG
        assert_eq!(d.synonyms[0].source, 1);
        assert_eq!(d.synonyms[1].name.as_str(), "message.max.bytes");
        assert_eq!(d.synonyms.last().unwrap().source, 5); // DEFAULT_CONFIG
        assert_eq!(d.config_type, 3); // INT
        assert!(d.documentation.is_some_and(|doc| !doc.is_empty()));
        // APPEND to a list config starts from its default.
        let r = inc(
            &mut c,
            false,
            &[(TOPIC, "cfg", &[("cleanup.policy", APPEND, Some("compact"))])],
        );
        assert_eq!(r[0].0, 0);
        assert_eq!(
            value(&mut c, TOPIC, "cfg", "cleanup.policy").0.as_deref(),
            Some("delete,compact")
        );
        // A compacted topic refuses keyless records (INVALID_RECORD); back to delete only.
        assert_eq!(c.produce("cfg", 0, 1, batch("k", 2, 1), 9).0, 87);
        let r = inc(
            &mut c,
            false,
            &[(TOPIC, "cfg", &[("cleanup.policy", DELETE, None)])],
        );
        assert_eq!(r[0].0, 0);
        broker.shutdown().unwrap();
    }
    let broker = start(dir.path(), 3);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(
        value(&mut c, TOPIC, "cfg", "max.message.bytes"),
        (Some("300".into()), 1)
    );
    assert_eq!(c.produce("cfg", 1, 1, big_batch(10), 9).0, 10);
    // DELETE goes back to the default, on the running log too.
    let r = inc(
        &mut c,
        false,
        &[(TOPIC, "cfg", &[("max.message.bytes", DELETE, None)])],
    );
    assert_eq!(r[0].0, 0);
    assert_eq!(value(&mut c, TOPIC, "cfg", "max.message.bytes").1, 5);
    assert_eq!(c.produce("cfg", 1, 1, big_batch(10), 9).0, 0);
    broker.shutdown().unwrap();
}

#[test]
fn bad_config_changes_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 1);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(
        c.create_topic("bad", 1, &[("retention.ms", "5000")], 7)
            .topics[0]
            .error_code,
        0
    );
    let cases: &[(&[Op], i16)] = &[
        (&[("retention.ms", SET, Some("soon"))], 40), // wrong type
        (&[("segment.bytes", SET, Some("10"))], 40),  // out of range
        (&[("no.such.config", SET, Some("1"))], 40),  // unknown
        (&[("retention.ms", APPEND, Some("1"))], 40), // append to a non-list
        (&[("cleanup.policy", SET, Some("shred"))], 40),
        (&[("retention.ms", SET, None)], 42), // null value
        (
            &[
                ("retention.ms", SET, Some("1")),
                ("retention.ms", DELETE, None),
            ],
            42,
        ), // duplicate key
        (&[("retention.ms", 9, Some("1"))], 42), // unknown operation
    ];
    for (ops, code) in cases {
        // Each bad change comes with a good one in the same resource: nothing is applied.
        let mut all = ops.to_vec();
        all.push(("segment.ms", SET, Some("1000")));
        let r = inc(&mut c, false, &[(TOPIC, "bad", &all)]);
        assert_eq!(r[0].0, *code, "{ops:?}: {}", r[0].1);
        assert!(!r[0].1.is_empty());
    }
    assert_eq!(
        value(&mut c, TOPIC, "bad", "retention.ms"),
        (Some("5000".into()), 1)
    );
    assert_eq!(value(&mut c, TOPIC, "bad", "segment.ms").1, 5);
    // Unknown topic; a resource named twice; validate_only changes nothing.
    let r = inc(
        &mut c,
        false,
        &[(TOPIC, "nope", &[("retention.ms", SET, Some("1"))])],
    );
    assert_eq!(r[0].0, 3);
    let r = inc(
        &mut c,
        false,
        &[
            (TOPIC, "bad", &[("retention.ms", SET, Some("1"))]),
            (TOPIC, "bad", &[("retention.ms", SET, Some("2"))]),
        ],
    );
    assert_eq!((r[0].0, r[1].0), (42, 42));
    let r = inc(
        &mut c,
        true,
        &[(TOPIC, "bad", &[("retention.ms", SET, Some("7"))])],
    );
    assert_eq!(r[0].0, 0);
    assert_eq!(
        value(&mut c, TOPIC, "bad", "retention.ms").0.as_deref(),
        Some("5000")
    );
    // Broker: read-only configs, unknown names, another broker's id.
    let r = inc(
        &mut c,
        false,
        &[(BROKER, "1", &[("num.partitions", SET, Some("3"))])],
    );
    // Kafka answers refused broker config changes with INVALID_REQUEST.
    assert_eq!(r[0].0, 42, "{}", r[0].1);
    let r = inc(
        &mut c,
        false,
        &[(BROKER, "", &[("no.such", SET, Some("3"))])],
    );
    assert_eq!(r[0].0, 42);
    let r = inc(
        &mut c,
        false,
        &[(BROKER, "1", &[("log.retention.ms", SET, Some("soon"))])],
    );
    assert_eq!(r[0].0, 42);
    // Configs Kafka has whose feature Ringbolt lacks: only their default is accepted.
    let r = inc(
        &mut c,
        false,
        &[(
            TOPIC,
            "bad",
            &[("remote.storage.enable", SET, Some("true"))],
        )],
    );
    assert_eq!(r[0].0, 40);
    assert!(r[0].1.contains("not supported"), "{}", r[0].1);
    let r = inc(
        &mut c,
        false,
        &[(TOPIC, "bad", &[("segment.jitter.ms", SET, Some("0"))])],
    );
    assert_eq!(r[0].0, 0);
    let r = inc(
        &mut c,
        false,
        &[(BROKER, "7", &[("log.retention.ms", SET, Some("3"))])],
    );
    assert_eq!(r[0].0, 42);
    assert_eq!(
        value(&mut c, BROKER, "1", "num.partitions").0.as_deref(),
        Some("1")
    );
    broker.shutdown().unwrap();
}

#[test]
fn dynamic_broker_configs_layer_and_apply() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = start(dir.path(), 2);
        let mut c = Client::connect(broker.local_addr());
        assert_eq!(c.create_topic("dyn", 1, &[], 7).topics[0].error_code, 0);
        assert_eq!(c.produce("dyn", 0, 1, big_batch(10), 9).0, 0);
        // The cluster-wide default reaches a topic without an override.
        let r = inc(
            &mut c,
            false,
            &[(BROKER, "", &[("message.max.bytes", SET, Some("400"))])],
        );
        assert_eq!(r[0].0, 0, "{}", r[0].1);
        assert_eq!(c.produce("dyn", 0, 1, big_batch(10), 9).0, 10);
        assert_eq!(
            value(&mut c, TOPIC, "dyn", "max.message.bytes"),
            (Some("400".into()), 3) // DYNAMIC_DEFAULT_BROKER_CONFIG
        );
        // The per-broker layer wins over the default.
        let r = inc(
            &mut c,
            false,
            &[(BROKER, "1", &[("message.max.bytes", SET, Some("2000000"))])],
        );
        assert_eq!(r[0].0, 0);
        assert_eq!(c.produce("dyn", 0, 1, big_batch(10), 9).0, 0);
        let d = describe(&mut c, BROKER, "1", "message.max.bytes");
        let sources: Vec<i8> = d.synonyms.iter().map(|s| s.source).collect();
        assert_eq!((d.config_source, sources), (2, vec![2, 3, 5]));
        assert!(!d.read_only);
        assert!(describe(&mut c, BROKER, "1", "num.partitions").read_only);
        broker.shutdown().unwrap();
    }
    let broker = start(dir.path(), 1);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(
        value(&mut c, BROKER, "1", "message.max.bytes"),
        (Some("2000000".into()), 2)
    );
    // The cluster-wide default resource lists only what that layer sets.
    assert_eq!(
        value(&mut c, BROKER, "", "message.max.bytes"),
        (Some("400".into()), 3)
    );
    // AlterConfigs replaces the whole layer: the per-broker value goes, the default comes back.
    let req = AlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(sb("1"))
            .with_configs(vec![
                LegacyConfig::default()
                    .with_name(sb("log.retention.ms"))
                    .with_value(Some(sb("3600000"))),
            ]),
    ]);
    let r: AlterConfigsResponse = c.call(ApiKey::AlterConfigs, 2, &req);
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(c.produce("dyn", 0, 1, big_batch(10), 9).0, 10);
    assert_eq!(
        value(&mut c, TOPIC, "dyn", "retention.ms"),
        (Some("3600000".into()), 2)
    );
    broker.shutdown().unwrap();
}

fn create_partitions(
    c: &mut Client,
    topic: &str,
    count: i32,
    assignments: Option<Vec<Vec<i32>>>,
    validate_only: bool,
) -> i16 {
    let req = CreatePartitionsRequest::default()
        .with_validate_only(validate_only)
        .with_timeout_ms(10_000)
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(tn(topic))
                .with_count(count)
                .with_assignments(assignments.map(|a| {
                    a.into_iter()
                        .map(|ids| {
                            CreatePartitionsAssignment::default()
                                .with_broker_ids(ids.into_iter().map(BrokerId).collect())
                        })
                        .collect()
                })),
        ]);
    let r: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, 3, &req);
    r.results[0].error_code
}

fn partition_count(c: &mut Client, topic: &str) -> usize {
    let md: MetadataResponse = c.call(
        ApiKey::Metadata,
        12,
        &kafka_test_client::requests::metadata_request(&[topic]),
    );
    md.topics[0].partitions.len()
}

#[test]
fn create_partitions_grows_topics_only() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = start(dir.path(), 2);
        let mut c = Client::connect(broker.local_addr());
        assert_eq!(c.create_topic("grow", 2, &[], 7).topics[0].error_code, 0);
        assert_eq!(c.produce("grow", 3, 1, batch("x", 1, 1), 9).0, 3);
        assert_eq!(create_partitions(&mut c, "grow", 4, None, true), 0);
        assert_eq!(partition_count(&mut c, "grow"), 2);
        assert_eq!(create_partitions(&mut c, "grow", 4, None, false), 0);
        assert_eq!(partition_count(&mut c, "grow"), 4);
        for p in 0..4 {
            assert_eq!(c.produce("grow", p, -1, batch("x", 2, 1), 9), (0, 0));
        }
        assert_eq!(create_partitions(&mut c, "grow", 3, None, false), 37);
        assert_eq!(create_partitions(&mut c, "grow", 4, None, false), 37);
        assert_eq!(create_partitions(&mut c, "nope", 4, None, false), 3);
        assert_eq!(
            create_partitions(&mut c, "grow", 6, Some(vec![vec![1]]), false),
            39
        );
        assert_eq!(
            create_partitions(&mut c, "grow", 5, Some(vec![vec![2]]), false),
            39
        );
        assert_eq!(
            create_partitions(&mut c, "grow", 5, Some(vec![vec![1]]), false),
            0
        );
        broker.shutdown().unwrap();
    }
    let broker = start(dir.path(), 3);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(partition_count(&mut c, "grow"), 5);
    for p in 0..4 {
        assert_eq!(c.produce("grow", p, 1, batch("y", 1, 1), 9), (0, 2));
    }
    assert_eq!(c.produce("grow", 4, 1, batch("y", 1, 1), 9), (0, 0));
    broker.shutdown().unwrap();
}

#[test]
fn list_config_resources_names_topics_and_the_broker() {
    use kafka_protocol::messages::list_config_resources_request::ListConfigResourcesRequest;
    use kafka_protocol::messages::list_config_resources_response::ListConfigResourcesResponse;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 1);
    let mut c = Client::connect(broker.local_addr());
    for t in ["la", "lb"] {
        assert_eq!(c.create_topic(t, 1, &[], 7).topics[0].error_code, 0);
    }
    let list = |c: &mut Client, types: Vec<i8>| {
        let r: ListConfigResourcesResponse = c.call(
            ApiKey::ListConfigResources,
            1,
            &ListConfigResourcesRequest::default().with_resource_types(types),
        );
        let mut v: Vec<(i8, String)> = r
            .config_resources
            .iter()
            .map(|x| (x.resource_type, x.resource_name.to_string()))
            .collect();
        v.sort();
        (r.error_code, v)
    };
    assert_eq!(
        list(&mut c, vec![]),
        (0, vec![(2, "la".into()), (2, "lb".into()), (4, "1".into())])
    );
    assert_eq!(list(&mut c, vec![16, 32]), (0, vec![]));
    assert_eq!(list(&mut c, vec![99]).0, 35);
    broker.shutdown().unwrap();
}

#[test]
fn min_insync_replicas_above_one_refuses_acks_all() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 1);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(
        c.create_topic("isr", 1, &[("min.insync.replicas", "2")], 7)
            .topics[0]
            .error_code,
        0
    );
    assert_eq!(c.produce("isr", 0, -1, batch("a", 1, 1), 9).0, 19); // NOT_ENOUGH_REPLICAS
    assert_eq!(c.produce("isr", 0, 1, batch("a", 1, 1), 9), (0, 0));
    let r = inc(
        &mut c,
        false,
        &[(TOPIC, "isr", &[("min.insync.replicas", DELETE, None)])],
    );
    assert_eq!(r[0].0, 0);
    assert_eq!(c.produce("isr", 0, -1, batch("b", 1, 1), 9), (0, 1));
    let r = inc(
        &mut c,
        false,
        &[(BROKER, "", &[("min.insync.replicas", SET, Some("2"))])],
    );
    assert_eq!(r[0].0, 0);
    assert_eq!(c.produce("isr", 0, -1, batch("c", 1, 1), 9).0, 19);
    let r = inc(
        &mut c,
        false,
        &[(TOPIC, "isr", &[("min.insync.replicas", SET, Some("0"))])],
    );
    assert_eq!(r[0].0, 40);
    broker.shutdown().unwrap();
}
