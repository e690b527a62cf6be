//! Fetch byte limits and large zero-copy responses that overrun the socket buffer (EAGAIN path).

mod server_util;

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::fetch_response::FetchResponse;
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Decodable;
use server_util::*;

fn fetch_three(max_bytes: i32, partition_max: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default().with_topic(tn("lim")).with_partitions(
                (0..3)
                    .map(|p| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(partition_max)
                    })
                    .collect(),
            ),
        ])
}

fn record_lens(r: &FetchResponse) -> Vec<usize> {
    r.responses[0]
        .partitions
        .iter()
        .map(|p| p.records.as_ref().map_or(0, |b| b.len()))
        .collect()
}

#[test]
fn max_bytes_and_partition_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(c.create_topic("lim", 3, &[], 7).topics[0].error_code, 0);
    // Each partition: two ~40 KB batches.
    let mut batch_len = 0;
    for p in 0..3 {
        for i in 0..2 {
            let b = batch(&format!("{p}{i}{}", "x".repeat(40_000)), 1, 1);
            batch_len = b.len();
            assert_eq!(c.produce("lim", p, 1, b, 9).0, 0);
        }
    }
    // Everything fits.
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_three(10 << 20, 1 << 20));
    assert_eq!(record_lens(&r), vec![2 * batch_len; 3]);
    // partition_max_bytes smaller than one batch: still one whole batch per partition.
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_three(10 << 20, 100));
    assert_eq!(record_lens(&r), vec![batch_len; 3]);
    // max_bytes covers one partition's data: the first comes back, the others are empty but still
    // report their high watermark.
    let r: FetchResponse = c.call(
        ApiKey::Fetch,
        12,
        &fetch_three((3 * batch_len) as i32, 1 << 20),
    );
    assert_eq!(record_lens(&r), vec![2 * batch_len, 0, 0]);
    assert!(
        r.responses[0]
            .partitions
            .iter()
            .all(|p| p.high_watermark == 2 && p.error_code == 0)
    );
    // max_bytes below one batch: the first batch is returned anyway (KIP-74), nothing else.
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_three(10, 100));
    assert_eq!(record_lens(&r), vec![batch_len, 0, 0]);
    broker.shutdown().unwrap();
}

#[test]
fn large_zero_copy_response_to_a_slow_reader_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 1);
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(c.create_topic("large", 1, &[], 7).topics[0].error_code, 0);
    let mut sent: Vec<Bytes> = Vec::new();
    for i in 0..96 {
        // ~96 KiB per batch, distinct content, ~9 MiB in total: larger than any socket buffer.
        let b = batch(&format!("{i:03}-{}", "abcdefgh".repeat(12_000)), 1, i);
        assert_eq!(c.produce("large", 0, 1, b.clone(), 9).0, 0);
        sent.push(b);
    }
    let mut req = Client::fetch_req("large", 0, 0, 0, 1);
    req.max_bytes = 64 << 20;
    req.topics[0].partitions[0].partition_max_bytes = 64 << 20;
    let corr = c.send(ApiKey::Fetch, 12, &req);
    // Read slowly so the broker's sendfile hits a full socket buffer (EAGAIN) many times.
    let mut len = [0u8; 4];
    c.stream.read_exact(&mut len).unwrap();
    let n = i32::from_be_bytes(len) as usize;
    let mut frame = vec![0u8; n];
    let mut got = 0;
    while got < n {
        let k = c
            .stream
            .read(&mut frame[got..(got + 256 * 1024).min(n)])
            .unwrap();
        assert!(k > 0, "connection closed mid-response");
        got += k;
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut frame = Bytes::from(frame);
    let h = ResponseHeader::decode(&mut frame, 1).unwrap();
    assert_eq!(h.correlation_id, corr);
    let r = FetchResponse::decode(&mut frame, 12).unwrap();
    let recs = r.responses[0].partitions[0].records.clone().unwrap();
    let batches = split_batches(&recs);
    assert_eq!(batches.len(), sent.len());
    for ((base, b), want) in batches.iter().zip(&sent) {
        assert_eq!(normalize(b), normalize(want), "batch at {base}");
    }
    // The connection is still in sync afterwards.
    let (err, hw, _) = c.fetch("large", 0, 95, 12);
    assert_eq!((err, hw), (0, 96));
    broker.shutdown().unwrap();
}
