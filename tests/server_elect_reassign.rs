//! ElectLeaders (v0–v2) and Alter/ListPartitionReassignments (v0–v1 / v0) on one node, with
//! Kafka's codes and messages: no election is ever needed, a reassignment to exactly this node is
//! a no-op, any other target is an invalid assignment, and nothing is ever in progress.

mod server_util;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    AlterPartitionReassignmentsRequest, ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::alter_partition_reassignments_response::AlterPartitionReassignmentsResponse;
use kafka_protocol::messages::elect_leaders_request::{ElectLeadersRequest, TopicPartitions};
use kafka_protocol::messages::elect_leaders_response::ElectLeadersResponse;
use kafka_protocol::messages::list_partition_reassignments_request::{
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsTopics,
};
use kafka_protocol::messages::list_partition_reassignments_response::ListPartitionReassignmentsResponse;
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::{ApiKey, BrokerId};
use kafka_test_client::requests::metadata_request;
use server_util::*;

fn elect(
    c: &mut Client,
    v: i16,
    kind: i8,
    topics: Option<&[(&str, &[i32])]>,
) -> ElectLeadersResponse {
    let req = ElectLeadersRequest::default()
        .with_election_type(kind)
        .with_topic_partitions(topics.map(|ts| {
            ts.iter()
                .map(|(t, ps)| {
                    TopicPartitions::default()
                        .with_topic(tn(t))
                        .with_partitions(ps.to_vec())
                })
                .collect()
        }));
    c.call(ApiKey::ElectLeaders, v, &req)
}

/// (topic, partition, error, message) of every result.
fn results(r: &ElectLeadersResponse) -> Vec<(String, i32, i16, String)> {
    r.replica_election_results
        .iter()
        .flat_map(|t| {
            t.partition_result.iter().map(move |p| {
                (
                    t.topic.0.as_str().to_string(),
                    p.partition_id,
                    p.error_code,
                    p.error_message
                        .as_ref()
                        .map_or("", |m| m.as_str())
                        .to_string(),
                )
            })
        })
        .collect()
}

#[test]
fn no_election_is_ever_needed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(c.create_topic("t", 2, &[], 7).topics[0].error_code, 0);
    assert_eq!(c.create_topic("u", 1, &[], 7).topics[0].error_code, 0);
    let not_needed = ResponseError::ElectionNotNeeded.code();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    for (v, kind) in [(0i16, 0i8), (1, 0), (1, 1), (2, 0), (2, 1)] {
        let r = elect(&mut c, v, kind, Some(&[("t", &[0, 1, 5]), ("nope", &[0])]));
        assert_eq!(r.error_code, 0);
        assert_eq!(
            results(&r),
            vec![
                (
                    "t".into(),
                    0,
                    not_needed,
                    "Leader election not needed for topic partition.".into()
                ),
                (
                    "t".into(),
                    1,
                    not_needed,
                    "Leader election not needed for topic partition.".into()
                ),
                ("t".into(), 5, unknown, "No such partition as t-5".into()),
                ("nope".into(), 0, unknown, "No such topic as nope".into()),
            ],
            "v{v} type {kind}"
        );
        // All partitions: Kafka leaves out those needing no election; the topics are listed.
        let all = elect(&mut c, v, kind, None);
        let mut topics: Vec<&str> = all
            .replica_election_results
            .iter()
            .map(|t| t.topic.0.as_str())
            .collect();
        topics.sort();
        assert_eq!(topics, ["t", "u"]);
        assert!(results(&all).is_empty());
    }
    // An election type that does not exist fails the whole request.
    let r = elect(&mut c, 2, 7, Some(&[("t", &[0])]));
    let invalid = ResponseError::InvalidRequest.code();
    assert_eq!(r.error_code, invalid);
    assert_eq!(
        results(&r),
        vec![("t".into(), 0, invalid, "Unknown election type 7".into())]
    );
    // The leader is unchanged.
    let m: MetadataResponse = c.call(ApiKey::Metadata, 12, &metadata_request(&["t"]));
    assert!(m.topics[0].partitions.iter().all(|p| p.leader_id.0 == 1));
    drop(c);
    broker.shutdown().unwrap();
}

fn reassign(
    c: &mut Client,
    v: i16,
    what: &[(&str, i32, Option<&[i32]>)],
) -> Vec<(i16, Option<String>)> {
    let topics = what
        .iter()
        .map(|&(t, p, replicas)| {
            ReassignableTopic::default()
                .with_name(tn(t))
                .with_partitions(vec![
                    ReassignablePartition::default()
                        .with_partition_index(p)
                        .with_replicas(replicas.map(|r| r.iter().map(|&b| BrokerId(b)).collect())),
                ])
        })
        .collect();
    let r: AlterPartitionReassignmentsResponse = c.call(
        ApiKey::AlterPartitionReassignments,
        v,
        &AlterPartitionReassignmentsRequest::default().with_topics(topics),
    );
    assert_eq!(r.error_code, 0);
    assert_eq!(r.error_message, None);
    r.responses
        .iter()
        .map(|t| {
            let p = &t.partitions[0];
            (
                p.error_code,
                p.error_message.as_ref().map(|m| m.as_str().to_string()),
            )
        })
        .collect()
}

#[test]
fn reassignments_to_this_node_only_and_none_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(c.create_topic("r", 2, &[], 7).topics[0].error_code, 0);
    let invalid = ResponseError::InvalidReplicaAssignment.code();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    let none = ResponseError::NoReassignmentInProgress.code();
    let s = |m: &str| Some(m.to_string());
    for v in 0..=1 {
        assert_eq!(
            reassign(
                &mut c,
                v,
                &[
                    ("r", 0, Some(&[1])),
                    ("r", 1, Some(&[2])),
                    ("r", 1, Some(&[1, 3])),
                    ("r", 1, Some(&[1, 1])),
                    ("r", 1, Some(&[])),
                    ("r", 0, None),
                    ("r", 7, Some(&[1])),
                    ("nope", 0, Some(&[1])),
                ]
            ),
            vec![
                (0, None),
                (
                    invalid,
                    s(
                        "The manual partition assignment includes broker 2, but no such broker is registered."
                    )
                ),
                (
                    invalid,
                    s(
                        "The manual partition assignment includes broker 3, but no such broker is registered."
                    )
                ),
                (
                    invalid,
                    s("The manual partition assignment includes the broker 1 more than once.")
                ),
                (
                    invalid,
                    s("The manual partition assignment includes an empty replica list.")
                ),
                (none, None),
                (unknown, s("Unable to find partition r:7.")),
                (unknown, s("Unable to find a topic named nope.")),
            ],
            "v{v}"
        );
    }
    for topics in [
        None,
        Some(vec![
            ListPartitionReassignmentsTopics::default()
                .with_name(tn("r"))
                .with_partition_indexes(vec![0, 1]),
            ListPartitionReassignmentsTopics::default()
                .with_name(tn("nope"))
                .with_partition_indexes(vec![0]),
        ]),
    ] {
        let r: ListPartitionReassignmentsResponse = c.call(
            ApiKey::ListPartitionReassignments,
            0,
            &ListPartitionReassignmentsRequest::default().with_topics(topics),
        );
        assert_eq!((r.error_code, r.topics.len()), (0, 0));
    }
    // The replicas are what they were.
    let m: MetadataResponse = c.call(ApiKey::Metadata, 12, &metadata_request(&["r"]));
    assert!(
        m.topics[0]
            .partitions
            .iter()
            .all(|p| p.replica_nodes == vec![BrokerId(1)])
    );
    drop(c);
    broker.shutdown().unwrap();
}
