//! Idempotent producer (InitProducerId, sequence/epoch checks, duplicates answered with the
//! original offsets, state across restarts), LogAppendTime and MESSAGE_TOO_LARGE against a real
//! broker.

mod server_util;

use bytes::Bytes;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use kafka_protocol::messages::produce_response::ProduceResponse;
use kafka_protocol::messages::{ApiKey, ProducerId, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use ringbolt::protocol::record_batch::{self, build_batch};
use server_util::*;

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

/// A batch of `n` records from producer `pid`/`epoch` starting at sequence `seq`.
fn idem(pid: i64, epoch: i16, seq: i32, n: usize, tag: &str) -> Bytes {
    let values: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
    let recs: Vec<record_batch::SimpleRecord<'_>> =
        values.iter().map(|v| (1_000, None, v.as_bytes())).collect();
    Bytes::from(build_batch(0, &recs, pid, epoch, seq))
}

fn init_pid(c: &mut Client, version: i16) -> (i16, i64, i16) {
    let r: InitProducerIdResponse = c.call(
        ApiKey::InitProducerId,
        version,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// The batches of partition 0 as (base offset, producer id, base sequence, record count).
fn batches(c: &mut Client, topic: &str) -> Vec<(i64, i64, i32, i32)> {
    let (err, _, records) = c.fetch(topic, 0, 0, 12);
    assert_eq!(err, 0);
    split_batches(&records)
        .into_iter()
        .map(|(_, b)| {
            let h = record_batch::validate_batch(&b).expect("stored batch validates");
            (
                h.base_offset,
                h.producer_id,
                h.base_sequence,
                h.records_count,
            )
        })
        .collect()
}

#[test]
fn init_producer_id_versions_and_transactional_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    {
        let broker = start(dir.path(), 2);
        let mut c = Client::connect(broker.local_addr());
        for v in 0..=5 {
            let (err, pid, epoch) = init_pid(&mut c, v);
            assert_eq!((err, epoch), (0, 0), "v{v}");
            assert!(pid >= 0 && !seen.contains(&pid), "v{v}: {pid} in {seen:?}");
            seen.push(pid);
        }
        // KIP-360 (v3+): a producer passing its id and epoch gets a fresh id, as from Kafka.
        let r: InitProducerIdResponse = c.call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(seen[0]))
                .with_producer_epoch(0),
        );
        assert_eq!(r.error_code, 0);
        assert!(!seen.contains(&r.producer_id.0));
        seen.push(r.producer_id.0);
        // Id without epoch: INVALID_REQUEST.
        let r: InitProducerIdResponse = c.call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(seen[0]))
                .with_producer_epoch(-1),
        );
        assert_eq!(r.error_code, 42);
        // A transactional id gets its own producer id at epoch 0 (tests/txn_coordinator.rs has
        // the rest); an empty one is INVALID_REQUEST.
        for (id, code) in [("txn-1", 0i16), ("", 42)] {
            let r: InitProducerIdResponse = c.call(
                ApiKey::InitProducerId,
                1,
                &InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str(id))))
                    .with_transaction_timeout_ms(60_000),
            );
            assert_eq!(r.error_code, code, "{id:?}");
            if code == 0 {
                assert!(!seen.contains(&r.producer_id.0) && r.producer_epoch == 0);
                seen.push(r.producer_id.0);
            } else {
                assert_eq!(r.producer_id.0, -1);
            }
        }
        broker.shutdown().unwrap();
    }
    // After a restart ids are still fresh.
    let broker = start(dir.path(), 1);
    let mut c = Client::connect(broker.local_addr());
    let (err, pid, _) = init_pid(&mut c, 5);
    assert_eq!(err, 0);
    assert!(seen.iter().all(|&s| pid > s), "{pid} after {seen:?}");
    broker.shutdown().unwrap();
}

#[test]
fn duplicates_sequences_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(c.create_topic("idem", 1, &[], 7).topics[0].error_code, 0);
    let (err, pid, _) = init_pid(&mut c, 4);
    assert_eq!(err, 0);

    assert_eq!(c.produce("idem", 0, -1, idem(pid, 0, 0, 3, "a"), 9), (0, 0));
    // A retry of the same batch: NONE with the original base offset, nothing written.
    assert_eq!(c.produce("idem", 0, -1, idem(pid, 0, 0, 3, "a"), 9), (0, 0));
    assert_eq!(c.produce("idem", 0, 1, idem(pid, 0, 3, 2, "b"), 9), (0, 3));
    // Any of the last five batches is a duplicate, not only the newest.
    assert_eq!(c.produce("idem", 0, 1, idem(pid, 0, 0, 3, "a"), 7), (0, 0));
    // A gap, an overlap that is no exact retry: OUT_OF_ORDER_SEQUENCE_NUMBER; the connection
    // keeps working.
    assert_eq!(
        c.produce("idem", 0, 1, idem(pid, 0, 7, 1, "gap"), 9).0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(
        c.produce("idem", 0, 1, idem(pid, 0, 4, 2, "overlap"), 9).0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(c.produce("idem", 0, 1, idem(pid, 0, 5, 1, "c"), 9), (0, 5));
    // A new epoch must start at 0; after it, the old epoch is fenced.
    assert_eq!(
        c.produce("idem", 0, 1, idem(pid, 1, 6, 1, "x"), 9).0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(c.produce("idem", 0, 1, idem(pid, 1, 0, 1, "d"), 9), (0, 6));
    assert_eq!(
        c.produce("idem", 0, 1, idem(pid, 0, 6, 1, "stale"), 9).0,
        INVALID_PRODUCER_EPOCH
    );
    // An unknown producer may start at any sequence (KIP-360: Kafka no longer answers
    // UNKNOWN_PRODUCER_ID); plain batches are not checked.
    assert_eq!(
        c.produce("idem", 0, 1, idem(pid + 1000, 0, 42, 1, "e"), 9),
        (0, 7)
    );
    assert_eq!(c.produce("idem", 0, 1, batch("plain", 2, 5), 9), (0, 8));
    assert_eq!(c.produce("idem", 0, 1, batch("plain", 2, 5), 9), (0, 10));

    assert_eq!(
        batches(&mut c, "idem"),
        vec![
            (0, pid, 0, 3),
            (3, pid, 3, 2),
            (5, pid, 5, 1),
            (6, pid, 0, 1),
            (7, pid + 1000, 42, 1),
            (8, -1, 0, 2),
            (10, -1, 0, 2),
        ]
    );
    broker.shutdown().unwrap();
}

#[test]
fn sequence_wraps_at_i32_max() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 1);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(c.create_topic("wrap", 1, &[], 7).topics[0].error_code, 0);
    let pid = 77;
    assert_eq!(
        c.produce("wrap", 0, 1, idem(pid, 0, i32::MAX - 1, 3, "a"), 9),
        (0, 0)
    );
    // Sequences MAX-1, MAX, 0: the next batch starts at 1.
    assert_eq!(
        c.produce("wrap", 0, 1, idem(pid, 0, 0, 1, "b"), 9).0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(c.produce("wrap", 0, 1, idem(pid, 0, 1, 1, "b"), 9), (0, 3));
    assert_eq!(
        c.produce("wrap", 0, 1, idem(pid, 0, i32::MAX - 1, 3, "a"), 9),
        (0, 0)
    );
    broker.shutdown().unwrap();
}

/// Producer state survives a clean restart (snapshot) and a restart without the snapshot (replay
/// of the log's batch headers after the roll's snapshot, the crash path), across segment rolls.
#[test]
fn producer_state_survives_restart() {
    for drop_snapshots in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let pid = 5;
        // ~330-byte batches: three per 1 KiB segment.
        let tag = "r".repeat(120);
        let tag = tag.as_str();
        {
            let broker = start(dir.path(), 2);
            let mut c = Client::connect(broker.local_addr());
            // Small segments: the state crosses a roll.
            let r = c.create_topic("rs", 1, &[("segment.bytes", "1024")], 7);
            assert_eq!(r.topics[0].error_code, 0);
            for i in 0..6 {
                let (e, off) = c.produce("rs", 0, -1, idem(pid, 0, 2 * i, 2, tag), 9);
                assert_eq!((e, off), (0, 2 * i as i64));
            }
            assert_eq!(
                c.produce("rs", 0, -1, idem(pid + 1, 3, 0, 1, "o"), 9),
                (0, 12)
            );
            broker.shutdown().unwrap();
        }
        let pdir = dir.path().join("rs-0");
        let mut snaps: Vec<String> = std::fs::read_dir(&pdir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".snapshot"))
            .collect();
        snaps.sort();
        // The roll to segment 12 and the clean close at 13 each wrote one; the two newest stay.
        assert_eq!(
            snaps,
            [
                "00000000000000000012.snapshot",
                "00000000000000000013.snapshot"
            ]
        );
        if drop_snapshots {
            // As after a crash: no close snapshot, the roll's snapshot plus a replay of the tail.
            std::fs::remove_file(pdir.join(&snaps[1])).unwrap();
        }
        let broker = start(dir.path(), 1);
        let mut c = Client::connect(broker.local_addr());
        // Retry of the last batch after the restart: still a duplicate.
        assert_eq!(c.produce("rs", 0, -1, idem(pid, 0, 10, 2, tag), 9), (0, 10));
        assert_eq!(
            c.produce("rs", 0, -1, idem(pid + 1, 3, 0, 1, "o"), 9),
            (0, 12)
        );
        // Sequence and epoch checks continue where they were.
        assert_eq!(
            c.produce("rs", 0, -1, idem(pid, 0, 13, 1, "r"), 9).0,
            OUT_OF_ORDER_SEQUENCE_NUMBER,
            "drop_snapshots={drop_snapshots}"
        );
        assert_eq!(
            c.produce("rs", 0, -1, idem(pid + 1, 2, 1, 1, "o"), 9).0,
            INVALID_PRODUCER_EPOCH
        );
        assert_eq!(c.produce("rs", 0, -1, idem(pid, 0, 12, 1, "r"), 9), (0, 13));
        let (_, hw, _) = c.fetch("rs", 0, 13, 12);
        assert_eq!(hw, 14);
        broker.shutdown().unwrap();
    }
}

fn list_offset(c: &mut Client, topic: &str, ts: i64) -> (i16, i64, i64) {
    let p = c.list_offset(topic, 0, ts, 7);
    (p.error_code, p.offset, p.timestamp)
}

#[test]
fn log_append_time_rewrites_timestamp_and_crc() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    let r = c.create_topic("lat", 1, &[("message.timestamp.type", "LogAppendTime")], 7);
    assert_eq!(r.topics[0].error_code, 0);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut append_times = Vec::new();
    for (i, tag) in ["a", "b"].iter().enumerate() {
        let resp: ProduceResponse = c.call(
            ApiKey::Produce,
            9,
            &Client::produce_req("lat", 0, 1, batch(tag, 3, 1_000 + i as i64)),
        );
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0);
        assert!(p.log_append_time_ms >= before, "{}", p.log_append_time_ms);
        append_times.push(p.log_append_time_ms);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let (_, _, records) = c.fetch("lat", 0, 0, 12);
    let got = split_batches(&records);
    assert_eq!(got.len(), 2);
    for (i, ((_, b), t)) in got.iter().zip(&append_times).enumerate() {
        // validate_batch checks the CRC-32C over the rewritten attributes and max timestamp.
        let h = record_batch::validate_batch(b).expect("CRC valid after the rewrite");
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, *t);
        assert_eq!(
            h.base_timestamp,
            1_000 + i as i64,
            "first timestamp kept, as Kafka does"
        );
    }
    // The time index and ListOffsets use the append time, not the producer's 1000.
    assert_eq!(list_offset(&mut c, "lat", 2_000).1, 0);
    assert_eq!(list_offset(&mut c, "lat", append_times[1]).1, 3);
    assert_eq!(list_offset(&mut c, "lat", append_times[1] + 1).1, -1);
    // Max timestamp: every record of the second batch carries its append time, so the first of
    // them (offset 3) is the first record with the max timestamp (Kafka's KIP-734 answer).
    let (e, off, ts) = list_offset(&mut c, "lat", -3);
    assert_eq!((e, off, ts), (0, 3, append_times[1]));
    broker.shutdown().unwrap();
}

#[test]
fn message_too_large_keeps_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 1);
    let mut c = Client::connect(broker.local_addr());
    let r = c.create_topic("big", 1, &[("max.message.bytes", "2000")], 7);
    assert_eq!(r.topics[0].error_code, 0);
    let value = vec![b'x'; 5_000];
    let big = Bytes::from(build_batch(0, &[(1, None, &value)], -1, -1, -1));
    assert_eq!(c.produce("big", 0, -1, big, 9).0, 10); // MESSAGE_TOO_LARGE
    assert_eq!(c.produce("big", 0, -1, batch("small", 2, 1), 9), (0, 0));
    let (_, hw, _) = c.fetch("big", 0, 0, 12);
    assert_eq!(hw, 2);
    broker.shutdown().unwrap();
}

/// The broker-wide defaults `log.message.timestamp.type` and `message.max.bytes` apply to topics
/// without overrides.
#[test]
fn broker_level_timestamp_type_and_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    init_logs();
    let mut cfg = config(dir.path(), 1);
    cfg.settings.log_message_timestamp_type = "LogAppendTime".into();
    cfg.settings.message_max_bytes = 2_000;
    let broker = ringbolt::server::spawn_broker(cfg).unwrap();
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(
        c.create_topic("defaults", 1, &[], 7).topics[0].error_code,
        0
    );
    let value = vec![b'x'; 5_000];
    let big = Bytes::from(build_batch(0, &[(1, None, &value)], -1, -1, -1));
    assert_eq!(c.produce("defaults", 0, 1, big, 9).0, 10); // MESSAGE_TOO_LARGE
    let resp: ProduceResponse = c.call(
        ApiKey::Produce,
        9,
        &Client::produce_req("defaults", 0, 1, batch("t", 2, 1_000)),
    );
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    assert!(p.log_append_time_ms > 1_000);
    let (_, _, records) = c.fetch("defaults", 0, 0, 12);
    let (_, b) = &split_batches(&records)[0];
    let h = record_batch::validate_batch(b).unwrap();
    assert!(h.is_log_append_time());
    assert_eq!(h.max_timestamp, p.log_append_time_ms);
    broker.shutdown().unwrap();
}

/// Copies of one batch in flight at once on two connections (a retry racing its original) and
/// five pipelined batches retried together: each is written once, every answer names the
/// original offsets.
#[test]
fn concurrent_retries_are_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let mut a = Client::connect(broker.local_addr());
    let mut b = Client::connect(broker.local_addr());
    assert_eq!(a.create_topic("race", 1, &[], 7).topics[0].error_code, 0);
    let pid = 9;
    for round in 0..20 {
        let seq = round * 3;
        let req = Client::produce_req("race", 0, -1, idem(pid, 0, seq, 3, "r"));
        let ca = a.send(ApiKey::Produce, 9, &req);
        let cb = b.send(ApiKey::Produce, 9, &req);
        let ra: ProduceResponse = a.recv(ca, 9);
        let rb: ProduceResponse = b.recv(cb, 9);
        for r in [ra, rb] {
            let p = &r.responses[0].partition_responses[0];
            assert_eq!(
                (p.error_code, p.base_offset),
                (0, seq as i64),
                "round {round}"
            );
        }
    }
    // Five in flight on one connection, then all five again (a client retrying its window).
    let window: Vec<_> = (0..5)
        .map(|i| Client::produce_req("race", 0, 1, idem(pid, 0, 60 + 2 * i, 2, "w")))
        .collect();
    for _ in 0..2 {
        let corrs: Vec<i32> = window
            .iter()
            .map(|r| a.send(ApiKey::Produce, 9, r))
            .collect();
        for (i, c) in corrs.into_iter().enumerate() {
            let r: ProduceResponse = a.recv(c, 9);
            let p = &r.responses[0].partition_responses[0];
            assert_eq!((p.error_code, p.base_offset), (0, 60 + 2 * i as i64));
        }
    }
    let (_, hw, _) = a.fetch("race", 0, 0, 12);
    assert_eq!(hw, 70);
    broker.shutdown().unwrap();
}
