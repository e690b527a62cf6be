//! read_committed over the wire (KIP-98), driven by the transaction protocol a client uses
//! (InitProducerId with a transactional id, AddPartitionsToTxn, a transactional Produce, EndTxn):
//! Fetch with `isolation_level = 1` returns only whole batches below the last stable offset and
//! the aborted transactions of the range (null for read_uncommitted), every Fetch reports the
//! real LSO, a read_committed long poll waits for the LSO (not the high watermark) to move and
//! wakes on the marker; ListOffsets read_committed answers the LSO and caps timestamp lookups at
//! it; DescribeProducers lists the producer with its ongoing transaction's first offset.

mod server_util;

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnTopic,
};
use kafka_protocol::messages::add_partitions_to_txn_response::AddPartitionsToTxnResponse;
use kafka_protocol::messages::describe_producers_request::{
    DescribeProducersRequest, TopicRequest,
};
use kafka_protocol::messages::describe_producers_response::DescribeProducersResponse;
use kafka_protocol::messages::end_txn_request::EndTxnRequest;
use kafka_protocol::messages::end_txn_response::EndTxnResponse;
use kafka_protocol::messages::fetch_response::{FetchResponse, PartitionData};
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use kafka_protocol::messages::list_offsets_response::ListOffsetsResponse;
use kafka_protocol::messages::produce_response::ProduceResponse;
use kafka_protocol::messages::{ApiKey, ProducerId, TransactionalId};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use kafka_test_client::records::{encode_batch, record};
use kafka_test_client::requests::{fetch_partition, fetch_request, list_offsets_request};
use server_util::{Client, config, init_logs, sb, start, tn};

const TS: i64 = 1_700_000_000_000;

struct Txn {
    id: &'static str,
    pid: i64,
    epoch: i16,
    seq: i32,
}

fn init(c: &mut Client, id: &'static str) -> Txn {
    let r: InitProducerIdResponse = c.call(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(sb(id))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(r.error_code, 0, "InitProducerId {id}");
    Txn {
        id,
        pid: r.producer_id.0,
        epoch: r.producer_epoch,
        seq: 0,
    }
}

fn add_partition(c: &mut Client, t: &Txn, topic: &str, partition: i32) {
    let r: AddPartitionsToTxnResponse = c.call(
        ApiKey::AddPartitionsToTxn,
        3,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(sb(t.id)))
            .with_v3_and_below_producer_id(ProducerId(t.pid))
            .with_v3_and_below_producer_epoch(t.epoch)
            .with_v3_and_below_topics(vec![
                AddPartitionsToTxnTopic::default()
                    .with_name(tn(topic))
                    .with_partitions(vec![partition]),
            ]),
    );
    for topic in &r.results_by_topic_v3_and_below {
        for p in &topic.results_by_partition {
            assert_eq!(p.partition_error_code, 0, "AddPartitionsToTxn");
        }
    }
}

/// `n` records with timestamps `ts, ts+1, …`: transactional ones of `t` (advancing its
/// sequence), or plain ones without a producer id.
fn records(t: Option<&mut Txn>, n: usize, ts: i64, tag: &str) -> Bytes {
    let (pid, epoch, seq, transactional) = match t {
        Some(t) => {
            let s = t.seq;
            t.seq += n as i32;
            (t.pid, t.epoch, s, true)
        }
        None => (-1, -1, 0, false),
    };
    let recs: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional,
            producer_id: pid,
            producer_epoch: epoch,
            sequence: if pid < 0 { -1 } else { seq + i as i32 },
            ..record(
                i as i64,
                ts + i as i64,
                None,
                Some(Bytes::from(format!("{tag}-{i}"))),
            )
        })
        .collect();
    encode_batch(&recs, Compression::None)
}

/// Produces to partition 0 (acks=all); returns the base offset.
fn produce(c: &mut Client, topic: &str, txn_id: Option<&str>, batch: Bytes) -> i64 {
    let req = Client::produce_req(topic, 0, -1, batch)
        .with_transactional_id(txn_id.map(|id| TransactionalId(sb(id))));
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &req);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "produce to {topic}");
    p.base_offset
}

fn end(c: &mut Client, t: &Txn, commit: bool) {
    let r: EndTxnResponse = c.call(
        ApiKey::EndTxn,
        3,
        &EndTxnRequest::default()
            .with_transactional_id(TransactionalId(sb(t.id)))
            .with_producer_id(ProducerId(t.pid))
            .with_producer_epoch(t.epoch)
            .with_committed(commit),
    );
    assert_eq!(r.error_code, 0, "EndTxn commit={commit}");
}

/// Fetch of partition 0 from `offset` at `version` with `isolation` (0 or 1).
fn fetch(
    c: &mut Client,
    topic: &str,
    offset: i64,
    isolation: i8,
    version: i16,
    max_wait_ms: i32,
) -> PartitionData {
    let req = fetch_request(
        tn(topic),
        [fetch_partition(0, offset, 1 << 20)],
        max_wait_ms,
        1,
        50 << 20,
    )
    .with_isolation_level(isolation);
    let mut r: FetchResponse = c.call(ApiKey::Fetch, version, &req);
    r.responses.swap_remove(0).partitions.swap_remove(0)
}

/// (offset, value or control-marker name) of every record of a fetch, in order.
fn contents(p: &PartitionData) -> Vec<(i64, String)> {
    let mut bytes = p.records.clone().unwrap_or_default();
    if bytes.is_empty() {
        return Vec::new();
    }
    let sets = RecordBatchDecoder::decode_all(&mut bytes).expect("records decode");
    sets.iter()
        .flat_map(|set| set.records.iter())
        .map(|r| {
            let what = if r.control {
                // Kafka's control record key: version (i16), type (i16: 0 abort, 1 commit).
                let k = r.key.as_ref().expect("control key");
                match i16::from_be_bytes([k[2], k[3]]) {
                    0 => "ABORT".to_string(),
                    1 => "COMMIT".to_string(),
                    t => format!("control {t}"),
                }
            } else {
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()
            };
            (r.offset, what)
        })
        .collect()
}

fn aborted(p: &PartitionData) -> Option<Vec<(i64, i64)>> {
    p.aborted_transactions.as_ref().map(|l| {
        l.iter()
            .map(|a| (a.producer_id.0, a.first_offset))
            .collect()
    })
}

/// (error, offset, timestamp) of ListOffsets v`version` for partition 0 at `ts`.
fn list_offset(c: &mut Client, topic: &str, ts: i64, isolation: i8) -> (i16, i64, i64) {
    let req = list_offsets_request(tn(topic), [(0, ts)]).with_isolation_level(isolation);
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &req);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

/// (producer id, epoch, current transaction start offset, coordinator epoch) per producer of
/// partition 0, and the partition's error.
fn producers(c: &mut Client, topic: &str, partition: i32) -> (i16, Vec<(i64, i32, i64, i32)>) {
    let r: DescribeProducersResponse = c.call(
        ApiKey::DescribeProducers,
        0,
        &DescribeProducersRequest::default().with_topics(vec![
            TopicRequest::default()
                .with_name(tn(topic))
                .with_partition_indexes(vec![partition]),
        ]),
    );
    let p = &r.topics[0].partitions[0];
    (
        p.error_code,
        p.active_producers
            .iter()
            .map(|s| {
                (
                    s.producer_id.0,
                    s.producer_epoch,
                    s.current_txn_start_offset,
                    s.coordinator_epoch,
                )
            })
            .collect(),
    )
}

fn vals(list: &[(i64, &str)]) -> Vec<(i64, String)> {
    list.iter().map(|(o, v)| (*o, v.to_string())).collect()
}

#[test]
fn read_committed_zero_copy() {
    read_committed_fetch_list_offsets_and_producers(true);
}

#[test]
fn read_committed_copying() {
    read_committed_fetch_list_offsets_and_producers(false);
}

/// The whole story on one partition, answered by the zero-copy encoder or the copying one
/// (`fetch.zerocopy.enable = false`, kafka-protocol's encoder).
fn read_committed_fetch_list_offsets_and_producers(zerocopy: bool) {
    let dir = tempfile::tempdir().unwrap();
    init_logs();
    let mut cfg = config(dir.path(), 2);
    cfg.settings.fetch_zerocopy_enable = zerocopy;
    let broker = ringbolt::server::spawn_broker(cfg).unwrap();
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(c.create_topic("rc", 1, &[], 7).topics[0].error_code, 0);

    // Plain records 0-1; transaction A: 2-4; plain records 5-6 while A is open.
    assert_eq!(produce(&mut c, "rc", None, records(None, 2, TS, "p")), 0);
    let mut a = init(&mut c, "txn-a");
    add_partition(&mut c, &a, "rc", 0);
    let batch = records(Some(&mut a), 3, TS + 100, "a");
    assert_eq!(produce(&mut c, "rc", Some("txn-a"), batch), 2);
    assert_eq!(
        produce(&mut c, "rc", None, records(None, 2, TS + 200, "q")),
        5
    );

    for v in [4i16, 11, 12] {
        // read_uncommitted: everything, the real LSO, no aborted list (null).
        let p = fetch(&mut c, "rc", 0, 0, v, 0);
        assert_eq!((p.error_code, p.high_watermark), (0, 7), "v{v}");
        assert_eq!(p.last_stable_offset, 2, "v{v}");
        assert_eq!(contents(&p).len(), 7, "v{v}");
        assert_eq!(aborted(&p), None, "v{v}");
        // read_committed: the batch below the LSO only, an (empty) aborted list.
        let p = fetch(&mut c, "rc", 0, 1, v, 0);
        assert_eq!(
            (p.error_code, p.high_watermark, p.last_stable_offset),
            (0, 7, 2)
        );
        assert_eq!(contents(&p), vals(&[(0, "p-0"), (1, "p-1")]), "v{v}");
        assert_eq!(aborted(&p), Some(vec![]), "v{v}");
        // At the LSO, below the high watermark: nothing, no error.
        let p = fetch(&mut c, "rc", 2, 1, v, 0);
        assert_eq!((p.error_code, p.last_stable_offset), (0, 2), "v{v}");
        assert!(contents(&p).is_empty(), "v{v}");
    }

    // ListOffsets: LATEST is the LSO for read_committed; lookups stop below it.
    assert_eq!(list_offset(&mut c, "rc", -1, 0), (0, 7, -1));
    assert_eq!(list_offset(&mut c, "rc", -1, 1), (0, 2, -1));
    assert_eq!(list_offset(&mut c, "rc", -2, 1), (0, 0, -1));
    assert_eq!(list_offset(&mut c, "rc", TS + 1, 1), (0, 1, TS + 1));
    assert_eq!(list_offset(&mut c, "rc", TS + 100, 0), (0, 2, TS + 100));
    assert_eq!(list_offset(&mut c, "rc", TS + 100, 1), (0, -1, -1));
    assert_eq!(list_offset(&mut c, "rc", -3, 0), (0, 6, TS + 201));
    assert_eq!(list_offset(&mut c, "rc", -3, 1), (0, -1, -1));

    // DescribeProducers: A with its transaction open at offset 2.
    let (err, list) = producers(&mut c, "rc", 0);
    assert_eq!(err, 0);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (list[0].0, list[0].1, list[0].2),
        (a.pid, i32::from(a.epoch), 2)
    );
    // Unknown partitions and topics.
    assert_eq!(producers(&mut c, "rc", 1).0, 3);
    assert_eq!(producers(&mut c, "nope", 0).0, 3);

    // Abort A: its marker at 7 makes everything stable; A's range is in the aborted list.
    end(&mut c, &a, false);
    for v in [4i16, 12] {
        let p = fetch(&mut c, "rc", 0, 1, v, 0);
        assert_eq!((p.high_watermark, p.last_stable_offset), (8, 8), "v{v}");
        let got = contents(&p);
        assert_eq!(got.len(), 8, "{got:?}");
        assert_eq!(got[2], (2, "a-0".to_string()));
        assert_eq!(got[7], (7, "ABORT".to_string()));
        assert_eq!(aborted(&p), Some(vec![(a.pid, 2)]), "v{v}");
    }
    assert_eq!(list_offset(&mut c, "rc", -1, 1), (0, 8, -1));
    let (_, list) = producers(&mut c, "rc", 0);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].2, -1, "no open transaction after the marker");
    assert!(list[0].3 >= 0, "the marker's coordinator epoch: {list:?}");

    // Transaction A2 commits; a read from after A's marker has no aborted transactions.
    add_partition(&mut c, &a, "rc", 0);
    let batch = records(Some(&mut a), 2, TS + 300, "b");
    assert_eq!(produce(&mut c, "rc", Some("txn-a"), batch), 8);
    assert_eq!(fetch(&mut c, "rc", 8, 1, 12, 0).last_stable_offset, 8);
    end(&mut c, &a, true);
    let p = fetch(&mut c, "rc", 8, 1, 12, 0);
    assert_eq!(p.last_stable_offset, 11);
    assert_eq!(
        contents(&p),
        vals(&[(8, "b-0"), (9, "b-1"), (10, "COMMIT")])
    );
    assert_eq!(aborted(&p), Some(vec![]));
}

#[test]
fn read_committed_long_poll_waits_for_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let addr = broker.local_addr();
    let mut c = Client::connect(addr);
    assert_eq!(c.create_topic("lp", 1, &[], 7).topics[0].error_code, 0);
    let mut t = init(&mut c, "txn-lp");
    add_partition(&mut c, &t, "lp", 0);
    let batch = records(Some(&mut t), 2, TS, "t");
    assert_eq!(produce(&mut c, "lp", Some("txn-lp"), batch), 0);

    // A read_committed long poll at the LSO (0): plain appends move the high watermark only and
    // must not end it; the commit marker moves the LSO and must.
    let waiter = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        let started = Instant::now();
        let p = fetch(&mut c, "lp", 0, 1, 12, 30_000);
        (p, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        produce(&mut c, "lp", None, records(None, 1, TS + 10, "p")),
        2
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(!waiter.is_finished(), "woke without the LSO moving");
    end(&mut c, &t, true);
    let (p, waited) = waiter.join().unwrap();
    assert!(
        waited < Duration::from_secs(25),
        "woken by the marker, not the deadline"
    );
    assert_eq!(p.last_stable_offset, 4);
    assert_eq!(
        contents(&p),
        vals(&[(0, "t-0"), (1, "t-1"), (2, "p-0"), (3, "COMMIT")])
    );
    assert_eq!(aborted(&p), Some(vec![]));
}
