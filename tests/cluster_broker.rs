//! Three cluster brokers in one test process (each broker + controller voter, `process.roles =
//! "broker,controller"`): every broker lists the three in Metadata and DescribeCluster; a topic
//! created with replication factor 3 on one broker is visible with leaders, replicas and ISR on
//! all; a factor above the live brokers is INVALID_REPLICATION_FACTOR; DeleteTopics removes it
//! everywhere; DescribeQuorum reports the quorum. Ports 19740–19749 and 19790–19792.

mod server_util;

use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreateTopicsRequest,
};
use kafka_protocol::messages::create_topics_response::CreateTopicsResponse;
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::delete_topics_response::DeleteTopicsResponse;
use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterResponse;
use kafka_protocol::messages::describe_quorum_request::{
    DescribeQuorumRequest, PartitionData, TopicData,
};
use kafka_protocol::messages::describe_quorum_response::DescribeQuorumResponse;
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::{BrokerId, api_versions_request::ApiVersionsRequest};
use ringbolt::server::{BrokerConfig, BrokerHandle, BrokerSettings, spawn_broker};
use server_util::*;

const CLIENT_PORTS: [u16; 3] = [19740, 19741, 19742];
const CONTROLLER_PORTS: [u16; 3] = [19790, 19791, 19792];

fn node_config(dir: &std::path::Path, id: i32) -> BrokerConfig {
    let voters: Vec<String> = CONTROLLER_PORTS
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
        .collect();
    let i = (id - 1) as usize;
    let toml = format!(
        "\"process.roles\" = \"broker,controller\"\n\"node.id\" = {id}\n\
         \"controller.quorum.voters\" = \"{}\"\n\
         \"listeners\" = \"PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}\"\n",
        voters.join(","),
        CLIENT_PORTS[i],
        CONTROLLER_PORTS[i]
    );
    let settings = BrokerSettings::from_toml_str(&toml).expect("cluster config");
    let mut c = BrokerConfig::new(
        format!("127.0.0.1:{}", CLIENT_PORTS[i]).parse().unwrap(),
        dir.join(format!("node-{id}")),
    );
    c.shards = 2;
    c.settings = settings;
    c
}

/// Starts the three nodes at once (each waits for a quorum to register).
fn start_cluster(dir: &std::path::Path) -> Vec<BrokerHandle> {
    init_logs();
    let threads: Vec<_> = (1..=3)
        .map(|id| {
            let cfg = node_config(dir, id);
            std::thread::spawn(move || spawn_broker(cfg))
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().unwrap().expect("cluster node starts"))
        .collect()
}

fn client(i: usize) -> Client {
    Client::connect(format!("127.0.0.1:{}", CLIENT_PORTS[i]))
}

fn metadata(c: &mut Client, topics: Option<&[&str]>) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| {
                    kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(tn(t)))
                })
                .collect()
        }))
        .with_allow_auto_topic_creation(false);
    c.call(ApiKey::Metadata, 12, &req)
}

/// Retries `check` for up to 10 s (a broker applies the metadata a moment after the one that
/// answered the change).
fn eventually(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let t0 = Instant::now();
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if t0.elapsed() > Duration::from_secs(10) => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn create(c: &mut Client, t: CreatableTopic) -> CreateTopicsResponse {
    c.call(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default()
            .with_topics(vec![t])
            .with_timeout_ms(10_000),
    )
}

#[test]
fn three_brokers_share_topics_and_quorum() {
    let dir = tempfile::Builder::new()
        .prefix("ringbolt-i19-broker-cluster-")
        .tempdir()
        .unwrap();
    let nodes = start_cluster(dir.path());

    // Every broker lists the three, with their client listeners.
    for i in 0..3 {
        let mut c = client(i);
        eventually("three brokers in Metadata", || {
            let md = metadata(&mut c, None);
            let mut ports: Vec<i32> = md.brokers.iter().map(|b| b.port).collect();
            ports.sort();
            if ports == CLIENT_PORTS.map(i32::from) {
                Ok(())
            } else {
                Err(format!("{ports:?}"))
            }
        });
        let md = metadata(&mut c, None);
        assert!((1..=3).contains(&md.controller_id.0), "{md:?}");
        assert_eq!(md.cluster_id, metadata(&mut client(0), None).cluster_id);
        let dc: DescribeClusterResponse = c.call(
            ApiKey::DescribeCluster,
            1,
            &DescribeClusterRequest::default(),
        );
        assert_eq!(dc.error_code, 0);
        assert_eq!(dc.brokers.len(), 3);
    }

    // RF=3 on broker 1: leaders, replicas, ISR visible on all.
    let mut c = client(0);
    let r = create(
        &mut c,
        CreatableTopic::default()
            .with_name(tn("replicated"))
            .with_num_partitions(3)
            .with_replication_factor(3),
    );
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    assert_eq!(r.topics[0].replication_factor, 3);
    assert_eq!(r.topics[0].num_partitions, 3);
    let mut leaders = Vec::new();
    for i in 0..3 {
        let mut c = client(i);
        eventually("replicated topic on every broker", || {
            let md = metadata(&mut c, Some(&["replicated"]));
            let t = &md.topics[0];
            if t.error_code != 0 || t.partitions.len() != 3 {
                return Err(format!("{t:?}"));
            }
            for p in &t.partitions {
                let mut replicas: Vec<i32> = p.replica_nodes.iter().map(|b| b.0).collect();
                replicas.sort();
                if replicas != [1, 2, 3] || p.isr_nodes.len() != 3 || p.error_code != 0 {
                    return Err(format!("{p:?}"));
                }
                if !p.replica_nodes.contains(&p.leader_id) || p.leader_epoch < 0 {
                    return Err(format!("leader {p:?}"));
                }
            }
            Ok(())
        });
        let md = metadata(&mut c, Some(&["replicated"]));
        let l: Vec<BrokerId> = md.topics[0]
            .partitions
            .iter()
            .map(|p| p.leader_id)
            .collect();
        leaders.push(l);
    }
    assert!(leaders.windows(2).all(|w| w[0] == w[1]), "{leaders:?}");

    // A manual assignment is kept as given.
    let r = create(
        &mut c,
        CreatableTopic::default()
            .with_name(tn("assigned"))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![
                CreatableReplicaAssignment::default()
                    .with_partition_index(0)
                    .with_broker_ids(vec![BrokerId(3), BrokerId(1)]),
            ]),
    );
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    let mut c2 = client(1);
    eventually("assigned topic", || {
        let md = metadata(&mut c2, Some(&["assigned"]));
        let p = md.topics[0].partitions.first().ok_or("no partition")?;
        let replicas: Vec<i32> = p.replica_nodes.iter().map(|b| b.0).collect();
        if replicas == [3, 1] {
            Ok(())
        } else {
            Err(format!("{p:?}"))
        }
    });

    // More replicas than brokers.
    let r = create(
        &mut c,
        CreatableTopic::default()
            .with_name(tn("too-many"))
            .with_num_partitions(1)
            .with_replication_factor(4),
    );
    assert_eq!(r.topics[0].error_code, 38, "INVALID_REPLICATION_FACTOR");

    // Delete on broker 2: gone from all.
    let r: DeleteTopicsResponse = client(1).call(
        ApiKey::DeleteTopics,
        4,
        &DeleteTopicsRequest::default()
            .with_topic_names(vec![tn("replicated")])
            .with_timeout_ms(10_000),
    );
    assert_eq!(r.responses[0].error_code, 0);
    for i in 0..3 {
        let mut c = client(i);
        eventually("deleted everywhere", || {
            let md = metadata(&mut c, Some(&["replicated"]));
            if md.topics[0].error_code == 3 {
                Ok(())
            } else {
                Err(format!("{:?}", md.topics[0]))
            }
        });
    }

    // DescribeQuorum: advertised in a cluster and answered.
    let mut c = client(2);
    let av: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert!(
        av.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::DescribeQuorum as i16)
    );
    let q: DescribeQuorumResponse = c.call(
        ApiKey::DescribeQuorum,
        2,
        &DescribeQuorumRequest::default().with_topics(vec![
            TopicData::default()
                .with_topic_name(tn("__cluster_metadata"))
                .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
        ]),
    );
    assert_eq!(q.error_code, 0);
    let p = &q.topics[0].partitions[0];
    assert!((1..=3).contains(&p.leader_id.0), "{p:?}");
    assert!(p.high_watermark > 0, "{p:?}");
    assert_eq!(q.nodes.len(), 3);

    for n in nodes {
        n.shutdown().expect("clean shutdown");
    }
}
