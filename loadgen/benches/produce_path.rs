//! Produce-path cost per message: building 200-byte messages into v2 record batches (varints,
//! header, CRC-32C) against a null sink, as the producer's writer thread does. Throughput is in
//! elements = messages, so criterion prints msg/s directly.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use loadgen::batch::{BatchBuilder, Compression};
use loadgen::client::encode_produce;
use loadgen::message::{HEADER_LEN, MessageHeader};

fn build(
    c: &mut Criterion,
    name: &str,
    compression: Compression,
    keyed: bool,
    encode_request: bool,
) {
    const MESSAGES: u64 = 10_000;
    const BATCH: usize = 16_384;
    let filler = vec![b'x'; 200 - HEADER_LEN];
    let mut g = c.benchmark_group("produce_path");
    g.throughput(Throughput::Elements(MESSAGES));
    g.bench_function(name, |b| {
        let mut builder = BatchBuilder::new(compression, BATCH);
        let mut sink = 0usize;
        let mut frame = BytesMut::with_capacity(2 * BATCH);
        let topic = TopicName(StrBytes::from_static_str("bench"));
        b.iter(|| {
            for seq in 0..MESSAGES {
                let h = MessageHeader {
                    run_id: 1,
                    scheduled_ns: 1_700_000_000_000_000_000 + seq * 4_000,
                    producer: 0,
                    seq,
                }
                .encode();
                let key = seq.to_be_bytes();
                let ts = 1_700_000_000_000 + (seq / 250) as i64;
                builder.append(ts, keyed.then_some(&key[..]), &[&h, &filler]);
                if builder.size() >= BATCH {
                    let batch = builder.finish().unwrap().unwrap();
                    if encode_request {
                        // The whole produce path: the batch wrapped in a Produce v9 request frame.
                        frame.clear();
                        encode_produce(&mut frame, 9, 1, 1, &topic, std::iter::once((0, batch)))
                            .unwrap();
                        sink += black_box(&frame).len();
                    } else {
                        sink += black_box(batch).len();
                    }
                }
            }
            if let Some(b) = builder.finish().unwrap() {
                sink += black_box(b).len();
            }
        });
        black_box(sink);
    });
    g.finish();
}

fn all(c: &mut Criterion) {
    build(
        c,
        "200B_no_key_uncompressed",
        Compression::None,
        false,
        false,
    );
    build(c, "200B_keyed_uncompressed", Compression::None, true, false);
    build(c, "200B_no_key_lz4", Compression::Lz4, false, false);
    build(
        c,
        "200B_no_key_with_produce_request",
        Compression::None,
        false,
        true,
    );
}

criterion_group!(benches, all);
criterion_main!(benches);
