//! Produce (acks 0/1/-1), Fetch (byte-exact, long poll, out of range, mid-batch), ListOffsets and
//! restart against a real broker, on one and on several shards.

mod server_util;

use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::fetch_response::FetchResponse;
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::records::RecordBatchDecoder;
use kafka_test_client::requests::metadata_request;
use ringbolt::server::spawn_broker;
use server_util::*;

fn produce_fetch_roundtrip(shards: usize, zerocopy: bool) {
    let dir = tempfile::tempdir().unwrap();
    init_logs();
    let mut cfg = config(dir.path(), shards);
    cfg.settings.fetch_zerocopy_enable = zerocopy;
    let broker = spawn_broker(cfg).unwrap();
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(c.create_topic("t", 4, &[], 7).topics[0].error_code, 0);

    // Per partition: acks=1, acks=-1, and acks=0 batches; remember what we sent.
    let mut sent: Vec<Vec<bytes::Bytes>> = vec![Vec::new(); 4];
    for p in 0..4 {
        let b1 = batch(&format!("p{p}-a"), 3, 1_000);
        assert_eq!(c.produce("t", p, 1, b1.clone(), 9), (0, 0));
        sent[p as usize].push(b1);
        let b2 = batch(&format!("p{p}-b"), 5, 2_000);
        assert_eq!(c.produce("t", p, -1, b2.clone(), 3), (0, 3));
        sent[p as usize].push(b2);
        // acks=0: no response. The next request's response must carry the next correlation id.
        let b3 = batch(&format!("p{p}-c"), 2, 3_000);
        c.send(
            ApiKey::Produce,
            7,
            &Client::produce_req("t", p, 0, b3.clone()),
        );
        sent[p as usize].push(b3);
        let corr = c.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        let r: ApiVersionsResponse = c.recv(corr, 3);
        assert_eq!(r.error_code, 0);
    }
    for version in [4i16, 7, 11, 12] {
        for p in 0..4 {
            let (err, hw, records) = c.fetch("t", p, 0, version);
            assert_eq!((err, hw), (0, 10), "v{version} p{p}");
            let got = split_batches(&records);
            assert_eq!(got.len(), 3);
            for (((base, bytes), want), expect_base) in
                got.iter().zip(&sent[p as usize]).zip([0i64, 3, 8])
            {
                assert_eq!(*base, expect_base);
                assert_eq!(normalize(bytes), normalize(want), "byte-exact batch");
            }
            // Decodable by a Kafka codec, with the assigned offsets.
            let mut buf = records.clone();
            let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap();
            let offsets: Vec<i64> = sets
                .iter()
                .flat_map(|s| s.records.iter().map(|r| r.offset))
                .collect();
            assert_eq!(offsets, (0..10).collect::<Vec<_>>());
            assert_eq!(
                sets[1].records[4].value.as_deref(),
                Some(format!("p{p}-b-4").as_bytes())
            );
        }
    }
    // v13+ address the topic by id; an unknown id gets UNKNOWN_TOPIC_ID.
    let md: MetadataResponse = c.call(ApiKey::Metadata, 12, &metadata_request(&["t"]));
    let id = md.topics[0].topic_id;
    for version in [13i16, 16] {
        for (topic_id, want_err) in [(id, 0i16), (uuid::Uuid::from_u128(7), 100)] {
            let mut req = Client::fetch_req("", 3, 0, 0, 0);
            req.topics[0].topic_id = topic_id;
            let r: FetchResponse = c.call(ApiKey::Fetch, version, &req);
            assert_eq!(r.responses[0].topic_id, topic_id);
            let p = &r.responses[0].partitions[0];
            assert_eq!(p.error_code, want_err, "v{version}");
            if want_err == 0 {
                let got = split_batches(p.records.as_ref().unwrap());
                assert_eq!(got.len(), 3);
                assert_eq!(normalize(&got[2].1), normalize(&sent[3][2]));
            }
        }
    }
    // Offset in the middle of the second batch: that whole batch comes back first.
    let (err, _, records) = c.fetch("t", 2, 5, 12);
    assert_eq!(err, 0);
    let got = split_batches(&records);
    assert_eq!(got[0].0, 3);
    assert_eq!(got.len(), 2);
    // At the high watermark: empty; beyond it: OFFSET_OUT_OF_RANGE with the high watermark.
    assert_eq!(c.fetch("t", 1, 10, 12).2.len(), 0);
    let (err, hw, _) = c.fetch("t", 1, 11, 12);
    assert_eq!((err, hw), (1, 10));
    // Unknown topic / partition.
    assert_eq!(c.fetch("t", 9, 0, 12).0, 3);
    assert_eq!(c.fetch("nope", 0, 0, 12).0, 3);
    broker.shutdown().unwrap();
}

#[test]
fn produce_fetch_one_shard_zero_copy() {
    produce_fetch_roundtrip(1, true);
}

#[test]
fn produce_fetch_three_shards_zero_copy() {
    produce_fetch_roundtrip(3, true);
}

#[test]
fn produce_fetch_two_shards_copying_path() {
    produce_fetch_roundtrip(2, false);
}

#[test]
fn produce_auto_creates_and_reports_per_partition_errors() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    // Unknown topic on produce: auto-created with num.partitions = 1.
    assert_eq!(c.produce("fresh", 0, 1, batch("a", 2, 5), 9), (0, 0));
    let md: MetadataResponse = c.call(ApiKey::Metadata, 12, &metadata_request(&["fresh"]));
    assert_eq!(md.topics[0].partitions.len(), 1);
    // Partition out of range → UNKNOWN_TOPIC_OR_PARTITION; corrupt batch → CORRUPT_MESSAGE;
    // both in one request with a good partition that still succeeds.
    let mut bad = batch("z", 2, 5).to_vec();
    let n = bad.len();
    bad[n - 1] ^= 0xff; // breaks the CRC
    let req = kafka_protocol::messages::produce_request::ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![
            kafka_protocol::messages::produce_request::TopicProduceData::default()
                .with_name(tn("fresh"))
                .with_partition_data(vec![
                    kafka_protocol::messages::produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch("ok", 1, 5))),
                    kafka_protocol::messages::produce_request::PartitionProduceData::default()
                        .with_index(7)
                        .with_records(Some(batch("no", 1, 5))),
                ]),
            kafka_protocol::messages::produce_request::TopicProduceData::default()
                .with_name(tn("other"))
                .with_partition_data(vec![
                    kafka_protocol::messages::produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(bad.into())),
                ]),
        ]);
    let r: kafka_protocol::messages::produce_response::ProduceResponse =
        c.call(ApiKey::Produce, 9, &req);
    let codes: Vec<i16> = r
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))
        .collect();
    assert_eq!(codes, vec![0, 3, 2]);
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 2);
    // Invalid acks.
    assert_eq!(c.produce("fresh", 0, 5, batch("a", 1, 5), 9).0, 21);
    // acks=0 that fails closes the connection (Kafka's signal to fire-and-forget producers).
    c.send(
        ApiKey::Produce,
        9,
        &Client::produce_req("fresh", 3, 0, batch("x", 1, 1)),
    );
    assert!(c.is_closed());
    broker.shutdown().unwrap();
}

#[test]
fn fetch_long_poll_woken_by_append_and_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let addr = broker.local_addr();
    let mut c = Client::connect(addr);
    assert_eq!(c.create_topic("lp", 2, &[], 7).topics[0].error_code, 0);
    // Nothing there: waits max_wait_ms, returns empty.
    let t0 = Instant::now();
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &Client::fetch_req("lp", 1, 0, 400, 1));
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(350), "{waited:?}");
    assert!(
        r.responses[0].partitions[0]
            .records
            .as_ref()
            .is_none_or(|r| r.is_empty())
    );
    // A producer on another connection wakes a 10 s poll early.
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let mut p = Client::connect(addr);
        assert_eq!(p.produce("lp", 1, 1, batch("wake", 4, 9), 9), (0, 0));
    });
    let t0 = Instant::now();
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &Client::fetch_req("lp", 1, 0, 10_000, 1));
    let waited = t0.elapsed();
    producer.join().unwrap();
    assert!(
        waited < Duration::from_secs(5),
        "woken by the append, not the timeout: {waited:?}"
    );
    let recs = r.responses[0].partitions[0].records.clone().unwrap();
    assert_eq!(split_batches(&recs).len(), 1);
    assert_eq!(r.responses[0].partitions[0].high_watermark, 4);
    assert_eq!(r.session_id, 0, "sessionless");
    broker.shutdown().unwrap();
}

#[test]
fn list_offsets_earliest_latest_max_and_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(c.create_topic("lo", 1, &[], 7).topics[0].error_code, 0);
    assert_eq!(c.produce("lo", 0, 1, batch("a", 3, 1_000), 9).0, 0); // offsets 0..2, ts 1000..1002
    assert_eq!(c.produce("lo", 0, 1, batch("b", 2, 5_000), 9).0, 0); // offsets 3..4, ts 5000..5001
    let ask = |c: &mut Client, ts: i64, v: i16| -> (i16, i64, i64) {
        let p = c.list_offset("lo", 0, ts, v);
        (p.error_code, p.offset, p.timestamp)
    };
    for v in [1i16, 4, 6, 7] {
        assert_eq!(ask(&mut c, -2, v).1, 0, "earliest v{v}");
        assert_eq!(ask(&mut c, -1, v).1, 5, "latest v{v}");
        let (e, off, _) = ask(&mut c, 2_000, v);
        assert_eq!((e, off), (0, 3), "by time v{v}");
        assert_eq!(ask(&mut c, 9_999, v).1, -1, "after the last timestamp v{v}");
    }
    let (e, off, ts) = ask(&mut c, -3, 7);
    assert_eq!((e, off, ts), (0, 4, 5_001));
    broker.shutdown().unwrap();
}

#[test]
fn restart_keeps_topics_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let b1 = batch("persist", 7, 42);
    let id = {
        let broker = start(dir.path(), 2);
        let mut c = Client::connect(broker.local_addr());
        assert_eq!(
            c.create_topic("keep", 3, &[("retention.ms", "86400000")], 7)
                .topics[0]
                .error_code,
            0
        );
        for p in 0..3 {
            assert_eq!(c.produce("keep", p, -1, b1.clone(), 9).0, 0);
        }
        let md: MetadataResponse = c.call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        );
        let id = md.topics[0].topic_id;
        broker.shutdown().unwrap();
        id
    };
    // Restart with a different shard count: partitions are redistributed, data stays.
    let broker = start(dir.path(), 3);
    let mut c = Client::connect(broker.local_addr());
    let md: MetadataResponse = c.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    assert_eq!(md.topics.len(), 1);
    assert_eq!(md.topics[0].topic_id, id);
    assert_eq!(md.topics[0].partitions.len(), 3);
    for p in 0..3 {
        let (err, hw, records) = c.fetch("keep", p, 0, 12);
        assert_eq!((err, hw), (0, 7));
        let got = split_batches(&records);
        assert_eq!(normalize(&got[0].1), normalize(&b1));
        // and appends continue after the recovered end
        assert_eq!(c.produce("keep", p, 1, batch("more", 1, 50), 9), (0, 7));
    }
    broker.shutdown().unwrap();
}

/// Pipelined multi-partition produces on one connection are applied in request order (Kafka's
/// per-connection guarantee that producers with several requests in flight rely on).
#[test]
fn pipelined_produces_apply_in_request_order() {
    use kafka_protocol::messages::produce_request::{
        PartitionProduceData, ProduceRequest, TopicProduceData,
    };
    use kafka_protocol::messages::produce_response::ProduceResponse;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(c.create_topic("seq", 4, &[], 7).topics[0].error_code, 0);
    const N: usize = 60;
    let mut corrs = Vec::new();
    for r in 0..N {
        let parts = (0..4)
            .map(|k| {
                let p = ((r + k) % 4) as i32; // rotating partition order inside the request
                PartitionProduceData::default()
                    .with_index(p)
                    .with_records(Some(batch(&format!("req{r:03}"), 1 + r % 3, r as i64)))
            })
            .collect();
        let req = ProduceRequest::default()
            .with_acks(if r % 2 == 0 { 1 } else { -1 })
            .with_timeout_ms(5000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(tn("seq"))
                    .with_partition_data(parts),
            ]);
        corrs.push(c.send(ApiKey::Produce, 9, &req));
    }
    let mut last = [-1i64; 4];
    for (r, corr) in corrs.into_iter().enumerate() {
        let resp: ProduceResponse = c.recv(corr, 9);
        for p in &resp.responses[0].partition_responses {
            assert_eq!(p.error_code, 0);
            let i = p.index as usize;
            assert!(
                p.base_offset > last[i],
                "request {r} partition {i} applied out of order"
            );
            last[i] = p.base_offset;
        }
    }
    for p in 0..4 {
        let mut req = Client::fetch_req("seq", p, 0, 0, 0);
        req.topics[0].partitions[0].partition_max_bytes = 10 << 20;
        let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req);
        let mut buf = r.responses[0].partitions[0].records.clone().unwrap();
        let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap();
        let order: Vec<String> = sets
            .iter()
            .map(|s| String::from_utf8_lossy(&s.records[0].value.clone().unwrap())[..6].to_string())
            .collect();
        let want: Vec<String> = (0..N).map(|r| format!("req{r:03}")).collect();
        assert_eq!(order, want, "partition {p}");
    }
    broker.shutdown().unwrap();
}
