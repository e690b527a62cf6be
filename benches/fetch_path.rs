//! Zero-copy (sendfile) vs copying (read into memory + kafka-protocol encoder) Fetch responses,
//! over loopback against two in-process brokers holding the same data.
//!
//! Each iteration is one Fetch of up to `FETCH_BYTES` of 64 KiB batches from a 128 MiB partition
//! (page-cache resident), read whole by a std `TcpStream` client. Criterion reports consume
//! throughput; the bench also prints broker CPU per GiB served (user + system time of the
//! `ringbolt-shard-*` threads from /proc/self/task; the idle second broker adds a few ms). Run: `cargo bench --bench fetch_path`.

#[path = "../tests/server_util/mod.rs"]
mod server_util;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::fetch_response::FetchResponse;
use ringbolt::server::{BrokerHandle, spawn_broker};
use server_util::*;

const TOTAL: usize = 128 << 20;
const BATCH_RECORDS: usize = 320; // ~64 KiB batches of ~200-byte records
const FETCH_BYTES: i32 = 4 << 20;

/// CPU seconds (user + system) of this process's broker shard threads, from /proc.
fn shard_cpu_secs() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // comm is in parentheses; utime and stime are fields 14 and 15.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with("ringbolt-shard") {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        ticks += fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    }
    ticks as f64 / hz
}

fn broker(dir: &std::path::Path, zerocopy: bool) -> (BrokerHandle, i64) {
    let mut cfg = config(dir, 1);
    cfg.settings.fetch_zerocopy_enable = zerocopy;
    let b = spawn_broker(cfg).unwrap();
    let mut c = Client::connect(b.local_addr());
    assert_eq!(c.create_topic("bench", 1, &[], 7).topics[0].error_code, 0);
    let one = batch(&"v".repeat(190), BATCH_RECORDS, 1);
    let mut written = 0;
    let mut end = 0;
    while written < TOTAL {
        let (e, base) = c.produce("bench", 0, 1, one.clone(), 9);
        assert_eq!(e, 0);
        written += one.len();
        end = base + BATCH_RECORDS as i64;
    }
    (b, end)
}

/// One fetch; returns (record bytes received, next offset).
fn fetch_once(c: &mut Client, offset: i64, end: i64) -> (usize, i64) {
    let mut req = Client::fetch_req("bench", 0, offset, 0, 1);
    req.max_bytes = FETCH_BYTES;
    req.topics[0].partitions[0].partition_max_bytes = FETCH_BYTES;
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req);
    let recs = r.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    let batches = split_batches(&recs);
    let next = batches
        .last()
        .map(|(base, _)| base + BATCH_RECORDS as i64)
        .unwrap_or(0);
    (recs.len(), if next >= end { 0 } else { next })
}

fn bench(c: &mut Criterion) {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let (zc, end1) = broker(d1.path(), true);
    let (cp, end2) = broker(d2.path(), false);
    let mut g = c.benchmark_group("fetch_path");
    g.throughput(Throughput::Bytes(FETCH_BYTES as u64));
    g.measurement_time(Duration::from_secs(6));
    // Alternate the two paths (twice each) so drift on a shared machine hits both alike.
    let runs = [
        ("zero_copy_sendfile/1", &zc, end1),
        ("copy_kafka_protocol/1", &cp, end2),
        ("zero_copy_sendfile/2", &zc, end1),
        ("copy_kafka_protocol/2", &cp, end2),
    ];
    for (name, b, end) in runs {
        let mut client = Client::connect(b.local_addr());
        let mut offset = 0;
        let mut bytes = 0usize;
        let cpu0 = shard_cpu_secs();
        let t0 = Instant::now();
        g.bench_function(name, |bch| {
            bch.iter(|| {
                let (n, next) = fetch_once(&mut client, offset, end);
                offset = next;
                bytes += n;
            })
        });
        let cpu = shard_cpu_secs() - cpu0;
        let gib = bytes as f64 / (1u64 << 30) as f64;
        println!(
            "{name}: {:.2} GiB served in {:.1} s wall, broker CPU {:.3} s per GiB",
            gib,
            t0.elapsed().as_secs_f64(),
            cpu / gib
        );
    }
    g.finish();
    zc.shutdown().unwrap();
    cp.shutdown().unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
