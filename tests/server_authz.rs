//! Authorized operations on the wire: Metadata (topics v8+, cluster v8–v10), DescribeCluster
//! v0–v2 and DescribeGroups v3+. With no authorizer a Kafka broker reports every operation that
//! applies to the resource type; the bitfields below are the ones Apache Kafka 4.3 returns.
//!
//! `RINGBOLT_AUTHZ_REFERENCE=127.0.0.1:PORT` runs the same tests against another broker instead of
//! an in-process Ringbolt (how they were checked against Kafka: `benches/kafka/start.sh PORT DIR`).

mod server_util;

use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterResponse;
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::describe_groups_response::DescribeGroupsResponse;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::{ApiKey, GroupId};
use kafka_protocol::protocol::StrBytes;
use server_util::*;

/// The broker under test: an in-process Ringbolt, or the reference broker named by the env var.
struct Target {
    addr: std::net::SocketAddr,
    broker: Option<ringbolt::server::BrokerHandle>,
    _dir: tempfile::TempDir,
}

impl Target {
    fn start() -> Target {
        let dir = tempfile::tempdir().unwrap();
        match std::env::var("RINGBOLT_AUTHZ_REFERENCE") {
            Ok(a) => Target {
                addr: a.parse().expect("RINGBOLT_AUTHZ_REFERENCE=host:port"),
                broker: None,
                _dir: dir,
            },
            Err(_) => {
                let broker = start(dir.path(), 2);
                Target {
                    addr: broker.local_addr(),
                    broker: Some(broker),
                    _dir: dir,
                }
            }
        }
    }

    fn stop(self) {
        if let Some(b) = self.broker {
            b.shutdown().unwrap();
        }
    }
}

/// A topic name no earlier run against a long-lived reference broker used.
fn unique(prefix: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{t}")
}

/// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
const TOPIC_OPS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
/// READ, DELETE, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
const GROUP_OPS: i32 = (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11);
/// CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
const CLUSTER_OPS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);
/// The schema default: the client did not ask.
const NOT_REQUESTED: i32 = i32::MIN;

fn md(
    topics: Option<Vec<MetadataRequestTopic>>,
    topic_ops: bool,
    cluster_ops: bool,
) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(topics)
        .with_allow_auto_topic_creation(false)
        .with_include_topic_authorized_operations(topic_ops)
        .with_include_cluster_authorized_operations(cluster_ops)
}

fn by_name(name: &str) -> MetadataRequestTopic {
    MetadataRequestTopic::default().with_name(Some(tn(name)))
}

#[test]
fn metadata_topic_and_cluster_operations() {
    let target = Target::start();
    let mut c = Client::connect(target.addr);
    let topic = unique("ops");
    let topic = topic.as_str();
    assert_eq!(c.create_topic(topic, 2, &[], 5).topics[0].error_code, 0);
    // Kafka answers CreateTopics before its metadata has the topic.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r: MetadataResponse = c.call(
            ApiKey::Metadata,
            12,
            &md(Some(vec![by_name(topic)]), false, false),
        );
        if r.topics[0].error_code == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "topic not in metadata"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    for v in 8..=12 {
        // Asked for both: topics at v8+, cluster only up to v10 (v11 removed the field).
        let r: MetadataResponse = c.call(
            ApiKey::Metadata,
            v,
            &md(
                Some(vec![by_name(topic), by_name("missing")]),
                true,
                v <= 10,
            ),
        );
        assert_eq!(r.topics.len(), 2, "v{v}");
        let ops = r
            .topics
            .iter()
            .find(|t| t.name.as_ref().unwrap().0.as_str() == topic)
            .unwrap();
        assert_eq!(ops.error_code, 0);
        assert_eq!(ops.topic_authorized_operations, TOPIC_OPS, "v{v}");
        // As Kafka: a topic asked for by name gets its field even when it does not exist.
        let missing = r
            .topics
            .iter()
            .find(|t| t.name.as_ref().unwrap().0.as_str() == "missing")
            .unwrap();
        assert_eq!(missing.error_code, 3);
        assert_eq!(missing.topic_authorized_operations, TOPIC_OPS, "v{v}");
        let want_cluster = if v <= 10 { CLUSTER_OPS } else { NOT_REQUESTED };
        assert_eq!(r.cluster_authorized_operations, want_cluster, "v{v}");

        // Not asked: the default.
        let r: MetadataResponse = c.call(ApiKey::Metadata, v, &md(None, false, false));
        assert!(
            r.topics
                .iter()
                .any(|t| t.name.as_ref().unwrap().0.as_str() == topic)
        );
        assert!(
            r.topics
                .iter()
                .all(|t| t.topic_authorized_operations == NOT_REQUESTED),
            "v{v}"
        );
        assert_eq!(r.cluster_authorized_operations, NOT_REQUESTED, "v{v}");

        // All topics, topic operations only.
        let r: MetadataResponse = c.call(ApiKey::Metadata, v, &md(None, true, false));
        assert!(
            r.topics
                .iter()
                .all(|t| t.topic_authorized_operations == TOPIC_OPS),
            "v{v}"
        );
        assert_eq!(r.cluster_authorized_operations, NOT_REQUESTED, "v{v}");
    }

    // v10+: an unknown topic id is answered without a name, and without operations (as Kafka).
    let r: MetadataResponse = c.call(
        ApiKey::Metadata,
        12,
        &md(
            Some(vec![
                MetadataRequestTopic::default().with_topic_id(uuid::Uuid::from_u128(7)),
            ]),
            true,
            false,
        ),
    );
    assert_eq!(r.topics[0].error_code, 100);
    assert_eq!(r.topics[0].topic_authorized_operations, NOT_REQUESTED);
    target.stop();
}

#[test]
fn describe_cluster_all_versions() {
    let target = Target::start();
    let addr = target.addr;
    let mut c = Client::connect(addr);
    let cluster_id = {
        let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &md(Some(vec![]), false, false));
        r.cluster_id.unwrap()
    };
    for v in 0..=2 {
        for ask in [true, false] {
            let req = DescribeClusterRequest::default()
                .with_include_cluster_authorized_operations(ask)
                .with_include_fenced_brokers(v >= 2);
            let r: DescribeClusterResponse = c.call(ApiKey::DescribeCluster, v, &req);
            assert_eq!(r.error_code, 0, "v{v}");
            assert_eq!(r.cluster_id, cluster_id);
            assert_eq!(r.controller_id.0, 1);
            assert_eq!(r.brokers.len(), 1);
            let b = &r.brokers[0];
            assert_eq!(
                (b.broker_id.0, b.host.as_str(), b.port),
                (1, "127.0.0.1", addr.port() as i32)
            );
            assert!(b.rack.is_none() && !b.is_fenced);
            if v >= 1 {
                assert_eq!(r.endpoint_type, 1);
            }
            let want = if ask { CLUSTER_OPS } else { NOT_REQUESTED };
            assert_eq!(r.cluster_authorized_operations, want, "v{v} ask={ask}");
        }
    }
    // v1+: a controller endpoint is asked for at a broker endpoint, or an unknown type.
    for (ty, code) in [(2i8, 114i16), (0, 115), (9, 115)] {
        let r: DescribeClusterResponse = c.call(
            ApiKey::DescribeCluster,
            1,
            &DescribeClusterRequest::default().with_endpoint_type(ty),
        );
        assert_eq!(r.error_code, code, "endpoint type {ty}");
        assert!(r.error_message.is_some());
        assert!(r.brokers.is_empty());
    }
    target.stop();
}

#[test]
fn describe_groups_operations() {
    let target = Target::start();
    let mut c = Client::connect(target.addr);
    for v in 0..=6 {
        for ask in [true, false] {
            if ask && v < 3 {
                continue; // the field does not exist before v3
            }
            let req = DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(StrBytes::from_static_str("nobody-here"))])
                .with_include_authorized_operations(ask);
            let r: DescribeGroupsResponse = c.call(ApiKey::DescribeGroups, v, &req);
            let g = &r.groups[0];
            // An unknown group is described as Dead: without error before v6, so it gets the
            // field; with GROUP_ID_NOT_FOUND from v6 (KIP-1043), so it keeps the default.
            let code = if v >= 6 { 69 } else { 0 };
            assert_eq!(
                (g.error_code, g.group_state.as_str()),
                (code, "Dead"),
                "v{v}"
            );
            let want = if (3..6).contains(&v) && ask {
                GROUP_OPS
            } else {
                NOT_REQUESTED
            };
            assert_eq!(g.authorized_operations, want, "v{v} ask={ask}");
        }
    }
    target.stop();
}
