//! ApiVersions, Metadata, CreateTopics, DeleteTopics, DescribeConfigs against a real broker.

mod server_util;

use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::delete_topics_request::{DeleteTopicState, DeleteTopicsRequest};
use kafka_protocol::messages::delete_topics_response::DeleteTopicsResponse;
use kafka_protocol::messages::describe_configs_request::{
    DescribeConfigsRequest, DescribeConfigsResource,
};
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResponse;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::{Decodable, StrBytes};
use server_util::*;

#[test]
fn api_versions_all_versions_and_kip511_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 1);
    let mut c = Client::connect(broker.local_addr());
    for v in 0..=4 {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("test"))
            .with_client_software_version(StrBytes::from_static_str("1.0"));
        let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, v, &req);
        assert_eq!(r.error_code, 0, "v{v}");
        let produce = r.api_keys.iter().find(|k| k.api_key == 0).unwrap();
        assert_eq!((produce.min_version, produce.max_version), (0, 9));
        let fetch = r.api_keys.iter().find(|k| k.api_key == 1).unwrap();
        assert_eq!((fetch.min_version, fetch.max_version), (0, 16));
        let av = r.api_keys.iter().find(|k| k.api_key == 18).unwrap();
        assert_eq!((av.min_version, av.max_version), (0, 4));
        assert!(
            r.api_keys
                .iter()
                .any(|k| k.api_key == 3 && k.max_version == 12)
        );
    }
    // KIP-511: a future ApiVersions version (v3+ header) gets a v0 answer with the table.
    let corr = c.send_with_body_version(ApiKey::ApiVersions, 42, 3, &ApiVersionsRequest::default());
    let mut frame = c.recv_frame().unwrap();
    let h = ResponseHeader::decode(&mut frame, 0).unwrap();
    assert_eq!(h.correlation_id, corr);
    let r = ApiVersionsResponse::decode(&mut frame, 0).unwrap();
    assert_eq!(r.error_code, 35);
    assert!(
        r.api_keys
            .iter()
            .any(|k| k.api_key == 0 && k.max_version == 9)
    );
    // and the connection still works
    let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(r.error_code, 0);
    broker.shutdown().unwrap();
}

fn md_req(topics: &[&str], allow: bool) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(tn(t))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(allow)
}

#[test]
fn metadata_lists_broker_and_auto_creates() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let addr = broker.local_addr();
    let mut c = Client::connect(addr);
    for v in [1i16, 4, 9, 12] {
        let r: MetadataResponse = c.call(ApiKey::Metadata, v, &md_req(&[], true));
        assert_eq!(r.brokers.len(), 1);
        assert_eq!(r.brokers[0].node_id.0, 1);
        assert_eq!(r.brokers[0].host.as_str(), "127.0.0.1");
        assert_eq!(r.brokers[0].port, addr.port() as i32);
        assert_eq!(r.controller_id.0, 1);
    }
    // Not allowed → unknown; allowed → created with num.partitions (1).
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &md_req(&["auto1"], false));
    assert_eq!(r.topics[0].error_code, 3);
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &md_req(&["auto1"], true));
    let t = &r.topics[0];
    assert_eq!(t.error_code, 0);
    assert_eq!(t.partitions.len(), 1);
    assert_eq!(t.partitions[0].leader_id.0, 1);
    assert_eq!(t.partitions[0].isr_nodes.len(), 1);
    assert!(!t.topic_id.is_nil());
    let id = t.topic_id;
    // Illegal name → INVALID_TOPIC_EXCEPTION, not created.
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &md_req(&["bad/name"], true));
    assert_eq!(r.topics[0].error_code, 17);
    // v0 with an empty list = all topics; v1+ null = all topics.
    let r: MetadataResponse = c.call(
        ApiKey::Metadata,
        0,
        &MetadataRequest::default().with_topics(Some(vec![])),
    );
    assert_eq!(r.topics.len(), 1);
    let r: MetadataResponse = c.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    assert_eq!(r.topics.len(), 1);
    assert_eq!(r.topics[0].topic_id, id);
    // By topic id (v10+).
    let r: MetadataResponse = c.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default()
                .with_name(None)
                .with_topic_id(id),
        ])),
    );
    assert_eq!(r.topics[0].name.as_ref().unwrap().0.as_str(), "auto1");
    broker.shutdown().unwrap();
}

#[test]
fn create_topics_errors_and_validate_only() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    let r = c.create_topic("orders", 4, &[("retention.ms", "3600000")], 7);
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    assert_eq!(r.topics[0].num_partitions, 4);
    assert!(!r.topics[0].topic_id.is_nil());
    for p in 0..4 {
        assert!(dir.path().join(format!("orders-{p}")).is_dir());
    }
    assert_eq!(c.create_topic("orders", 4, &[], 7).topics[0].error_code, 36);
    assert_eq!(c.create_topic("zero", 0, &[], 5).topics[0].error_code, 37);
    assert_eq!(c.create_topic("neg", -5, &[], 2).topics[0].error_code, 37);
    for bad in ["a/b", ".", "..", "sp ace", &"x".repeat(250)] {
        assert_eq!(
            c.create_topic(bad, 1, &[], 7).topics[0].error_code,
            17,
            "{bad}"
        );
    }
    assert_eq!(
        c.create_topic("cfg", 1, &[("no.such.config", "1")], 7)
            .topics[0]
            .error_code,
        40
    );
    assert_eq!(
        c.create_topic("cfg", 1, &[("retention.ms", "soon")], 7)
            .topics[0]
            .error_code,
        40
    );
    // -1 partitions = num.partitions.
    let r = c.create_topic("dflt", -1, &[], 7);
    assert_eq!((r.topics[0].error_code, r.topics[0].num_partitions), (0, 1));
    // validate_only creates nothing.
    let req = kafka_protocol::messages::create_topics_request::CreateTopicsRequest::default()
        .with_validate_only(true)
        .with_topics(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(tn("dry"))
                .with_num_partitions(2)
                .with_replication_factor(1),
        ]);
    let r: kafka_protocol::messages::create_topics_response::CreateTopicsResponse =
        c.call(ApiKey::CreateTopics, 7, &req);
    assert_eq!(r.topics[0].error_code, 0);
    let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &md_req(&["dry"], false));
    assert_eq!(r.topics[0].error_code, 3);
    assert!(!dir.path().join("dry-0").exists());
    broker.shutdown().unwrap();
}

#[test]
fn delete_topics_removes_files_and_describe_configs() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(c.create_topic("gone", 3, &[], 7).topics[0].error_code, 0);
    assert_eq!(c.create_topic("gone2", 1, &[], 7).topics[0].error_code, 0);
    assert_eq!(
        c.create_topic("kept", 1, &[("retention.ms", "1234")], 7)
            .topics[0]
            .error_code,
        0
    );
    assert_eq!(c.produce("gone", 1, 1, batch("x", 3, 1000), 9).0, 0);

    // DescribeConfigs: topic override vs default, and the broker.
    let req = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("kept")),
        DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("1")),
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("nope")),
    ]);
    for v in 1..=4 {
        let r: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, v, &req);
        let topic = &r.results[0];
        assert_eq!(topic.error_code, 0);
        let ret = topic
            .configs
            .iter()
            .find(|e| e.name.as_str() == "retention.ms")
            .unwrap();
        assert_eq!(ret.value.as_ref().unwrap().as_str(), "1234");
        assert_eq!(ret.config_source, 1);
        let seg = topic
            .configs
            .iter()
            .find(|e| e.name.as_str() == "segment.bytes")
            .unwrap();
        assert_eq!(
            seg.value.as_ref().unwrap().as_str(),
            (1u64 << 30).to_string()
        );
        assert_eq!(seg.config_source, 5);
        let b = &r.results[1];
        assert_eq!(b.error_code, 0);
        assert!(
            b.configs.iter().any(|e| e.name.as_str() == "num.partitions"
                && e.value.as_ref().unwrap().as_str() == "1")
        );
        assert_eq!(r.results[2].error_code, 3);
    }

    // DeleteTopics by name (v1..v5 style) and by id (v6).
    let r: DeleteTopicsResponse = c.call(
        ApiKey::DeleteTopics,
        4,
        &DeleteTopicsRequest::default()
            .with_topic_names(vec![tn("gone"), tn("missing")])
            .with_timeout_ms(5000),
    );
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(r.responses[1].error_code, 3);
    for p in 0..3 {
        assert!(
            !dir.path().join(format!("gone-{p}")).exists(),
            "partition dir removed"
        );
    }
    let md: MetadataResponse = c.call(ApiKey::Metadata, 12, &md_req(&["gone2"], false));
    let id = md.topics[0].topic_id;
    let r: DeleteTopicsResponse = c.call(
        ApiKey::DeleteTopics,
        6,
        &DeleteTopicsRequest::default()
            .with_topics(vec![DeleteTopicState::default().with_topic_id(id)])
            .with_timeout_ms(5000),
    );
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(r.responses[0].name.as_ref().unwrap().0.as_str(), "gone2");
    assert!(!dir.path().join("gone2-0").exists());
    let md: MetadataResponse = c.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    let names: Vec<&str> = md
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().0.as_str())
        .collect();
    assert_eq!(names, vec!["kept"]);
    // Re-creating a deleted name starts empty.
    assert_eq!(c.create_topic("gone", 1, &[], 7).topics[0].error_code, 0);
    let (err, hw, recs) = c.fetch("gone", 0, 0, 12);
    assert_eq!((err, hw, recs.len()), (0, 0, 0));
    broker.shutdown().unwrap();
}
