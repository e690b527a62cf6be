//! Kafka applies the requests of one connection in order; loadgen's producers rely on it (several
//! Produce requests in flight per connection, like `max.in.flight.requests.per.connection` = 5 in
//! Java clients). This checks it directly: 200 Produce requests, each with one batch for every
//! partition of a 4-partition topic (listed in a rotating order, as a client's drain would), are
//! written back-to-back without waiting; then every answer must carry, per partition, a higher
//! base offset than the one before, and each partition's log must hold the batches in request order.
//!
//! Runs against the embedded Ringbolt, or `LOADGEN_TEST_BOOTSTRAP` when set.

use std::io::Write;

use bytes::BytesMut;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::produce_response::ProduceResponse;
use kafka_protocol::protocol::StrBytes;
use kafka_test_client::frame;
use loadgen::batch::{BatchBuilder, Compression, for_each_record};
use loadgen::client::{self, Conn, ensure_topic};
use loadgen::message::MessageHeader;

const REQUESTS: u64 = 200;
const PER_BATCH: u64 = 10;
const PARTITIONS: i32 = 4;

#[test]
fn pipelined_produce_requests_on_one_connection_are_applied_in_order() {
    let embedded;
    let bootstrap = match std::env::var("LOADGEN_TEST_BOOTSTRAP") {
        Ok(b) => b,
        Err(_) => {
            embedded = loadgen::embedded::Embedded::start(0).expect("embedded broker");
            embedded.addr().to_string()
        }
    };
    let topic = format!("lg-pipe-{}", std::process::id());
    let mut admin = Conn::connect(&bootstrap).unwrap();
    // Several partitions, so a sharded broker spreads them over its shards.
    let meta = ensure_topic(&mut admin, &topic, PARTITIONS, true).unwrap();
    // Waits (retrying) until every partition's leader serves requests.
    admin.list_offsets(&topic, &meta.partitions, -1).unwrap();
    let conn = Conn::connect(&meta.leader.to_string()).unwrap();
    let version = conn.api.produce;
    let (mut w, mut r) = conn.into_split().unwrap();
    let name = TopicName(StrBytes::from_string(topic.clone()));
    let mut frames = BytesMut::new();
    let mut b = BatchBuilder::new(Compression::None, 1 << 16);
    for req in 0..REQUESTS {
        let mut batches = Vec::new();
        for k in 0..PARTITIONS {
            let partition = (k + req as i32) % PARTITIONS;
            for i in 0..PER_BATCH {
                let seq = req * PER_BATCH + i;
                let h = MessageHeader {
                    run_id: 1,
                    scheduled_ns: 1,
                    producer: 0,
                    seq,
                };
                b.append(1, None, &[&h.encode(), &[0u8; 100]]);
            }
            batches.push((partition, b.finish().unwrap().unwrap()));
        }
        client::encode_produce(
            &mut frames,
            version,
            req as i32,
            1,
            &name,
            batches.into_iter(),
        )
        .unwrap();
    }
    w.write_all(&frames).unwrap();
    let mut buf = BytesMut::new();
    let mut last_base = vec![-1i64; PARTITIONS as usize];
    for req in 0..REQUESTS {
        let frame = frame::read_frame(&mut r, &mut buf).unwrap();
        let r = frame::decode_response::<ProduceResponse>(frame, version).unwrap();
        let (corr, resp) = (r.correlation_id, r.body);
        assert_eq!(corr, req as i32, "responses out of request order");
        for p in &resp.responses[0].partition_responses {
            assert_eq!(p.error_code, 0);
            let last = &mut last_base[p.index as usize];
            assert!(
                p.base_offset > *last,
                "request {req} partition {}: base offset {} after {last}: requests applied out of order",
                p.index,
                p.base_offset
            );
            *last = p.base_offset;
        }
    }
    // Read every partition back: sequences must be 0, 1, 2, … in offset order.
    for partition in 0..PARTITIONS {
        let mut offset = admin.list_offsets(&topic, &[partition], -2).unwrap()[0];
        let mut seqs = Vec::new();
        while seqs.len() < (REQUESTS * PER_BATCH) as usize {
            let req = client::fetch_request(&name, &[(partition, offset)], 500, 1 << 20);
            let resp = admin.call(admin.api.fetch, &req).unwrap();
            let pd = &resp.responses[0].partitions[0];
            assert_eq!(pd.error_code, 0);
            let records = pd.records.clone().unwrap_or_default();
            let infos = for_each_record(&records, |rec| {
                if rec.offset >= offset {
                    seqs.push(MessageHeader::decode(rec.value.unwrap()).unwrap().seq);
                }
            })
            .unwrap();
            offset = infos.last().map_or(offset, |i| i.last_offset + 1);
        }
        let first_bad = seqs.iter().enumerate().find(|(i, s)| **s != *i as u64);
        assert!(
            first_bad.is_none(),
            "partition {partition}: log order differs from request order at {first_bad:?}"
        );
    }
}
