//! OffsetForLeaderEpoch over the wire (v2–v4): the end offset of an epoch from the partition's
//! leader epoch cache, Kafka's fencing of `current_leader_epoch`, unknown topics and partitions;
//! and the epoch agreeing everywhere it appears (Metadata, the stored batches, ListOffsets, the
//! `leader-epoch-checkpoint` file), across DeleteRecords and a restart.

mod server_util;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_records_response::DeleteRecordsResponse;
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderEpochRequest, OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::OffsetForLeaderEpochResponse;
use kafka_protocol::records::RecordBatchDecoder;
use kafka_test_client::requests::metadata_request;
use server_util::*;

/// (error, leader epoch, end offset) for (topic, partition, current leader epoch, leader epoch).
fn ask(c: &mut Client, v: i16, what: &[(&str, i32, i32, i32)]) -> Vec<(i16, i32, i64)> {
    let topics: Vec<OffsetForLeaderTopic> = what
        .iter()
        .map(|&(t, p, current, epoch)| {
            OffsetForLeaderTopic::default()
                .with_topic(tn(t))
                .with_partitions(vec![
                    OffsetForLeaderPartition::default()
                        .with_partition(p)
                        .with_current_leader_epoch(current)
                        .with_leader_epoch(epoch),
                ])
        })
        .collect();
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(topics);
    let r: OffsetForLeaderEpochResponse = c.call(ApiKey::OffsetForLeaderEpoch, v, &req);
    assert_eq!(r.topics.len(), what.len());
    r.topics
        .iter()
        .zip(what)
        .map(|(t, w)| {
            assert_eq!(t.topic.0.as_str(), w.0);
            let p = &t.partitions[0];
            assert_eq!(p.partition, w.1);
            (p.error_code, p.leader_epoch, p.end_offset)
        })
        .collect()
}

#[test]
fn end_offsets_fencing_and_one_epoch_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(c.create_topic("e", 2, &[], 7).topics[0].error_code, 0);
    // A fresh partition: epoch 0 from offset 0, in Kafka's file format.
    let file = dir.path().join("e-0").join("leader-epoch-checkpoint");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "0\n1\n0 0\n");
    for i in 0..4 {
        let (e, _) = c.produce("e", 0, -1, batch(&format!("x{i}"), 3, 1_000), 9);
        assert_eq!(e, 0);
    }
    let fenced = ResponseError::FencedLeaderEpoch.code();
    let unknown_epoch = ResponseError::UnknownLeaderEpoch.code();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    for v in 2..=4 {
        assert_eq!(
            ask(
                &mut c,
                v,
                &[
                    // The current epoch ends at the log end; an empty partition's at 0.
                    ("e", 0, 0, 0),
                    ("e", 1, -1, 0),
                    // No fencing asked (-1); an epoch above any known: undefined.
                    ("e", 0, -1, 1),
                    ("e", 0, -1, -1),
                    // The client's view of the leader epoch: newer than ours, older than ours.
                    ("e", 0, 1, 0),
                    ("e", 0, -2, 0),
                    ("e", 2, -1, 0),
                    ("nope", 0, -1, 0),
                ]
            ),
            vec![
                (0, 0, 12),
                (0, 0, 0),
                (0, -1, -1),
                (0, -1, -1),
                (unknown_epoch, -1, -1),
                (fenced, -1, -1),
                (unknown, -1, -1),
                (unknown, -1, -1),
            ],
            "v{v}"
        );
    }

    // Metadata, the stored batches and ListOffsets carry the same epoch.
    let m: MetadataResponse = c.call(ApiKey::Metadata, 12, &metadata_request(&["e"]));
    assert!(m.topics[0].partitions.iter().all(|p| p.leader_epoch == 0));
    let (_, _, records) = c.fetch("e", 0, 0, 12);
    let mut buf = records.clone();
    let set = RecordBatchDecoder::decode(&mut buf).unwrap();
    assert!(!set.records.is_empty());
    assert!(set.records.iter().all(|r| r.partition_leader_epoch == 0));
    assert_eq!(c.list_offset("e", 0, -1, 7).leader_epoch, 0);

    // DeleteRecords moves the epoch's start with the log start; the answer is unchanged.
    let req = DeleteRecordsRequest::default().with_topics(vec![
        DeleteRecordsTopic::default()
            .with_name(tn("e"))
            .with_partitions(vec![
                DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(7),
            ]),
    ]);
    let r: DeleteRecordsResponse = c.call(ApiKey::DeleteRecords, 2, &req);
    assert_eq!(r.topics[0].partitions[0].low_watermark, 7);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "0\n1\n0 7\n");
    assert_eq!(ask(&mut c, 4, &[("e", 0, 0, 0)]), vec![(0, 0, 12)]);
    drop(c);
    broker.shutdown().unwrap();

    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "0\n1\n0 7\n");
    assert_eq!(ask(&mut c, 3, &[("e", 0, 0, 0)]), vec![(0, 0, 12)]);
    drop(c);
    broker.shutdown().unwrap();
}
