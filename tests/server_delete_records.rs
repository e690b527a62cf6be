//! DeleteRecords over the wire (v0–v2): the log start moves inside a segment and the segments
//! below it go; ListOffsets EARLIEST and Fetch honour it (OFFSET_OUT_OF_RANGE below it); bad
//! input (beyond the high watermark, negative offsets, unknown topics and partitions, a compacted
//! topic) changes nothing; the new start survives a clean restart and a kill -9 right after the
//! answer.

mod server_util;

use std::net::SocketAddr;
use std::path::Path;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_records_response::DeleteRecordsResponse;
use kafka_protocol::messages::fetch_response::FetchResponse;
use server_util::process::{serve, sigterm_and_wait, spawn_listening};
use server_util::*;

const OUT_OF_RANGE: i16 = 1;
const UNKNOWN: i16 = 3;

/// DeleteRecords of `(topic, partition, offset)`s; (error code, low watermark) each, in order.
fn delete(c: &mut Client, version: i16, what: &[(&str, i32, i64)]) -> Vec<(i16, i64)> {
    let mut topics: Vec<DeleteRecordsTopic> = Vec::new();
    for &(t, p, o) in what {
        let part = DeleteRecordsPartition::default()
            .with_partition_index(p)
            .with_offset(o);
        match topics.iter_mut().find(|x| x.name.0.as_str() == t) {
            Some(x) => x.partitions.push(part),
            None => topics.push(
                DeleteRecordsTopic::default()
                    .with_name(tn(t))
                    .with_partitions(vec![part]),
            ),
        }
    }
    let req = DeleteRecordsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(5000);
    let r: DeleteRecordsResponse = c.call(ApiKey::DeleteRecords, version, &req);
    let mut out = Vec::new();
    for &(t, p, _) in what {
        let topic = r.topics.iter().find(|x| x.name.0.as_str() == t).unwrap();
        let part = topic
            .partitions
            .iter()
            .find(|x| x.partition_index == p)
            .unwrap();
        out.push((part.error_code, part.low_watermark));
    }
    out
}

fn earliest(c: &mut Client, topic: &str, p: i32) -> i64 {
    let r = c.list_offset(topic, p, -2, 7);
    assert_eq!(r.error_code, 0);
    r.offset
}

/// Fetch at `offset`: (error, log start offset, base offset of the first batch returned).
fn fetch_at(c: &mut Client, topic: &str, p: i32, offset: i64) -> (i16, i64, Option<i64>) {
    let r: FetchResponse = c.call(
        ApiKey::Fetch,
        12,
        &Client::fetch_req(topic, p, offset, 0, 0),
    );
    let part = &r.responses[0].partitions[0];
    let first = split_batches(&part.records.clone().unwrap_or_default())
        .first()
        .map(|(b, _)| *b);
    (part.error_code, part.log_start_offset, first)
}

/// Produces `n` batches of 5 records to partition `p`.
fn produce(c: &mut Client, topic: &str, p: i32, n: usize, acks: i16) {
    for i in 0..n {
        let (e, _) = c.produce(topic, p, acks, batch(&format!("b{i}"), 5, 1_000), 9);
        assert_eq!(e, 0);
    }
}

fn segment_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count()
}

#[test]
fn delete_records_moves_the_log_start_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    let created = c.create_topic("dr", 2, &[("segment.bytes", "1024")], 7);
    assert_eq!(created.topics[0].error_code, 0);
    produce(&mut c, "dr", 0, 30, -1);
    produce(&mut c, "dr", 1, 1, -1);
    let part_dir = dir.path().join("dr-0");
    let segments_before = segment_count(&part_dir);
    assert!(segments_before > 4, "{segments_before} segments");

    // Bad input first: nothing changes.
    assert_eq!(
        delete(
            &mut c,
            2,
            &[("dr", 0, 151), ("dr", 1, -2), ("dr", 2, 0), ("nope", 0, 0)]
        ),
        vec![
            (OUT_OF_RANGE, -1),
            (OUT_OF_RANGE, -1),
            (UNKNOWN, -1),
            (UNKNOWN, -1)
        ]
    );
    assert_eq!(earliest(&mut c, "dr", 0), 0);
    assert_eq!(earliest(&mut c, "dr", 1), 0);

    // A partition listed twice is answered once, for its last offset (as Kafka): inside a
    // segment on p0.
    let twice = DeleteRecordsRequest::default().with_topics(vec![
        DeleteRecordsTopic::default()
            .with_name(tn("dr"))
            .with_partitions(vec![
                DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(151),
            ]),
        DeleteRecordsTopic::default()
            .with_name(tn("dr"))
            .with_partitions(vec![
                DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(42),
            ]),
    ]);
    let r: DeleteRecordsResponse = c.call(ApiKey::DeleteRecords, 2, &twice);
    assert_eq!(r.topics.len(), 1);
    assert_eq!(r.topics[0].partitions.len(), 1);
    let p = &r.topics[0].partitions[0];
    assert_eq!(
        (p.partition_index, p.error_code, p.low_watermark),
        (0, 0, 42)
    );

    // Again (no change), and the high watermark (-1) on p1 (possibly another shard).
    assert_eq!(
        delete(&mut c, 2, &[("dr", 0, 42), ("dr", 1, -1)]),
        vec![(0, 42), (0, 5)]
    );
    assert_eq!(earliest(&mut c, "dr", 0), 42);
    assert_eq!(earliest(&mut c, "dr", 1), 5);
    assert_eq!(c.list_offset("dr", 0, -1, 7).offset, 150);
    assert!(segment_count(&part_dir) < segments_before);

    // Fetch below the start: OFFSET_OUT_OF_RANGE; at it: the batch holding it (offsets 40-44).
    let (e, log_start, _) = fetch_at(&mut c, "dr", 0, 41);
    assert_eq!((e, log_start), (OUT_OF_RANGE, 42));
    assert_eq!(fetch_at(&mut c, "dr", 0, 42), (0, 42, Some(40)));
    assert_eq!(fetch_at(&mut c, "dr", 0, 45), (0, 42, Some(45)));
    // v0 and v1 answer alike; backwards is no change.
    assert_eq!(delete(&mut c, 0, &[("dr", 0, 10)]), vec![(0, 42)]);
    assert_eq!(delete(&mut c, 1, &[("dr", 0, 61)]), vec![(0, 61)]);
    assert_eq!(earliest(&mut c, "dr", 0), 61);
    // p1 is empty from 5 on and keeps taking appends.
    let (e, base) = c.produce("dr", 1, -1, batch("after", 2, 1), 9);
    assert_eq!((e, base), (0, 5));
    drop(c);
    broker.shutdown().unwrap();

    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(earliest(&mut c, "dr", 0), 61);
    assert_eq!(earliest(&mut c, "dr", 1), 5);
    assert_eq!(fetch_at(&mut c, "dr", 0, 60).0, OUT_OF_RANGE);
    assert_eq!(fetch_at(&mut c, "dr", 0, 61), (0, 61, Some(60)));
    drop(c);
    broker.shutdown().unwrap();
}

#[test]
fn a_compacted_topic_refuses_delete_records() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 1);
    let mut c = Client::connect(broker.local_addr());
    let created = c.create_topic("cmp", 1, &[("cleanup.policy", "compact")], 7);
    assert_eq!(created.topics[0].error_code, 0);
    // A compacted topic takes only keyed records: one-record batches (the first record is keyed).
    for i in 0..5 {
        let (e, _) = c.produce("cmp", 0, -1, batch(&format!("b{i}"), 1, 1_000), 9);
        assert_eq!(e, 0);
    }
    assert_eq!(
        delete(&mut c, 2, &[("cmp", 0, 3)]),
        vec![(ResponseError::PolicyViolation.code(), -1)]
    );
    assert_eq!(earliest(&mut c, "cmp", 0), 0);
    drop(c);
    broker.shutdown().unwrap();
}

fn connect_process(data: &Path) -> (std::process::Child, SocketAddr, Client) {
    let (child, addr) = spawn_listening(serve(data));
    let c = Client::connect(addr);
    (child, addr, c)
}

/// The answer comes only once the new start is durable: a kill -9 right after it keeps it.
#[test]
fn kill_9_after_the_answer_keeps_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, _, mut c) = connect_process(&data);
    let created = c.create_topic("k", 1, &[("segment.bytes", "1024")], 7);
    assert_eq!(created.topics[0].error_code, 0);
    let mut expected = 0;
    for (round, target) in [(0, 17i64), (1, 33), (2, -1)] {
        // acks=1: nothing was synced before DeleteRecords asked for it.
        produce(&mut c, "k", 0, 10, 1);
        let hw = c.list_offset("k", 0, -1, 7).offset;
        let want = if target == -1 { hw } else { target };
        assert_eq!(delete(&mut c, 2, &[("k", 0, target)]), vec![(0, want)]);
        expected = want;
        child.kill().unwrap();
        child.wait().unwrap();
        let (ch, _, cl) = connect_process(&data);
        child = ch;
        c = cl;
        assert_eq!(earliest(&mut c, "k", 0), expected, "round {round}");
        assert!(c.list_offset("k", 0, -1, 7).offset >= expected);
        assert_eq!(fetch_at(&mut c, "k", 0, expected - 1).0, OUT_OF_RANGE);
    }
    assert!(expected > 33);
    drop(c);
    assert!(sigterm_and_wait(child).success());
}
