//! What the compression and legacy-format code costs, per 16 KiB batch of ~200-byte records
//! (the loadgen record size), single-threaded, in memory:
//!
//! - `ingest/v2-producer` vs `ingest/baseline-copy`: the Produce hot path before (one
//!   `BytesMut::from` copy) and after (`protocol::ingest::prepare` with `compression.type =
//!   producer`: a magic-byte check plus the same copy). These should be equal.
//! - `ingest/recompress-gzip-to-zstd`: a topic whose `compression.type` differs from the batch.
//! - `ingest/legacy-magic1-to-v2`: Produce v2 message set → v2 batch.
//! - `downconvert/v2-to-magic1`: Fetch v2–v3 down-conversion of stored batches.
//!
//! Run: `cargo bench --bench codec`. Measured in `docs/perf/codec.md`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringbolt::protocol::compression::{self, Codec, TopicCompression};
use ringbolt::protocol::ingest;
use ringbolt::protocol::legacy::{self, Message};
use ringbolt::protocol::record_batch::{SimpleRecord, build_batch};
use std::hint::black_box;

const RECORDS: usize = 80; // 80 x ~200 B ≈ 16 KiB

fn value(i: usize) -> Vec<u8> {
    format!(
        "{i:08} {}",
        "loadgen-like payload with some repetition ".repeat(5)
    )
    .into_bytes()[..200]
        .to_vec()
}

fn benches(c: &mut Criterion) {
    let values: Vec<Vec<u8>> = (0..RECORDS).map(value).collect();
    let recs: Vec<SimpleRecord<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (1_700_000_000_000 + i as i64, None, v.as_slice()))
        .collect();
    let plain = build_batch(0, &recs, -1, -1, -1);
    let gzip = compression::recompress_batch(&plain, Codec::Gzip).unwrap();
    let msgs: Vec<Message> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Message {
            offset: i as i64,
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(v.clone()),
        })
        .collect();
    let set = bytes::Bytes::from(legacy::build_message_set(1, Codec::None, &msgs));
    let (plain, gzip) = (bytes::Bytes::from(plain), bytes::Bytes::from(gzip));

    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Bytes(plain.len() as u64));
    g.bench_function("baseline-copy", |b| {
        b.iter(|| bytes::BytesMut::from(black_box(&plain[..])))
    });
    g.bench_function("v2-producer", |b| {
        b.iter(|| ingest::prepare(black_box(&plain), TopicCompression::Producer).unwrap())
    });
    g.bench_function("recompress-gzip-to-zstd", |b| {
        b.iter(|| ingest::prepare(black_box(&gzip), TopicCompression::Codec(Codec::Zstd)).unwrap())
    });
    g.bench_function("legacy-magic1-to-v2", |b| {
        b.iter(|| ingest::prepare(black_box(&set), TopicCompression::Producer).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("downconvert");
    g.throughput(Throughput::Bytes(plain.len() as u64));
    g.bench_function("v2-to-magic1", |b| {
        b.iter(|| legacy::down_convert(black_box(&plain), 0, 1).unwrap())
    });
    g.bench_function("v2-gzip-to-magic1", |b| {
        b.iter(|| legacy::down_convert(black_box(&gzip), 0, 1).unwrap())
    });
    g.finish();
}

criterion_group!(codec, benches);
criterion_main!(codec);
