//! Storage engine benchmarks (criterion).
//!
//! `cargo bench --bench storage` (add `-- --quick` for a short run). The log lives in a temporary
//! directory (`RINGBOLT_BENCH_DIR` to choose the file system). All log work runs on one glommio
//! executor thread; criterion's `iter_custom` sends it a job and gets back the measured time.
//!
//! - `append_16k/sequential_nosync`: one appender, each append awaited (no fdatasync).
//! - `append_16k/concurrent8_nosync`: 8 concurrent appenders (writes coalesce).
//! - `append_16k/concurrent32_nosync`: 32 concurrent appenders.
//! - `append_16k/pipelined8x4_nosync`: 8 appenders each keeping 4 appends in flight
//!   (`append_assign` + `wait_written`, as the produce path does with pipelined requests), so
//!   appends arrive while writes are in flight.
//! - `append_16k/concurrent{32,128}_group_commit`: 32 / 128 concurrent appenders, each awaiting
//!   `wait_durable` (acks=all); p50/p99 latency of append+durable (both runs pooled) printed to
//!   stderr at the end.
//! - `index/lookup_262144_entries`: offset-index lookup in a full 1 GiB segment's index.
//! - `read/locate_random_offset`: `PartitionLog::read` at a random offset (index + header walk).
//! - `read/tail_after_append_16k`: read + copy out of the batch appended 200 µs earlier (a
//!   consumer that keeps up); only the read is timed.
//! - `recovery/torn_tail_*`: reopening a log whose newest segment (`RINGBOLT_BENCH_RECOVERY_MIB`,
//!   default 256 MiB) has a torn tail, with its index (tail scan) and without (full scan).
//! - `producer_state/check_apply_*`: the idempotence check plus state update per produced batch
//!   (one producer; a partition with 1000 producers).
//! - `producer_state/open_64MiB_*`: reopening a cleanly closed log with 64 MiB of 16 KiB
//!   idempotent batches in its active segment, from the close snapshot and, as after a crash
//!   without a usable snapshot, replaying every batch header (page-cached).

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ringbolt::protocol::record_batch::{SimpleRecord, build_batch};
use ringbolt::storage::index::OffsetIndex;
use ringbolt::storage::{LogConfig, PartitionLog};

const BATCH: usize = 16 * 1024;

enum Job {
    Sequential(u64),
    Concurrent {
        writers: usize,
        iters: u64,
        durable: bool,
    },
    /// `writers` tasks each keeping up to `depth` appends in flight (`append_assign` +
    /// `wait_written`, as the produce path does for a connection's pipelined requests).
    Pipelined {
        writers: usize,
        depth: usize,
        iters: u64,
    },
    Read(u64),
    TailRead(u64),
    Recovery {
        with_index: bool,
    },
    ProducerOpen {
        snapshot: bool,
    },
}

/// A ~16 KiB batch: 80 records of ~200 bytes (the classic Kafka message size).
fn batch_16k() -> BytesMut {
    let value = [0x5au8; 190];
    let recs: Vec<SimpleRecord<'_>> = (0..80)
        .map(|i| (1_700_000_000_000 + i, None, &value[..]))
        .collect();
    let mut b = build_batch(0, &recs, -1, -1, -1);
    // Pad with one more record to land close to 16 KiB.
    if b.len() < BATCH {
        let pad = vec![0x33u8; BATCH - b.len() - 20];
        let mut recs2 = recs.clone();
        recs2.push((1_700_000_000_100, None, &pad[..]));
        b = build_batch(0, &recs2, -1, -1, -1);
    }
    BytesMut::from(&b[..])
}

fn bench_dir() -> PathBuf {
    match std::env::var("RINGBOLT_BENCH_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => std::env::temp_dir(),
    }
}

struct Worker {
    tx: mpsc::Sender<(Job, mpsc::Sender<Duration>)>,
    thread: std::thread::JoinHandle<()>,
}

impl Worker {
    fn start() -> Self {
        let (tx, rx) = mpsc::channel::<(Job, mpsc::Sender<Duration>)>();
        let thread = std::thread::spawn(move || {
            glommio::LocalExecutorBuilder::default()
                .io_memory(4 << 20)
                .spawn(move || async move {
                    let root = tempfile::tempdir_in(bench_dir()).unwrap();
                    // Keep the disk footprint of long runs bounded.
                    let cfg = LogConfig {
                        retention_bytes: 2 << 30,
                        retention_ms: -1,
                        ..LogConfig::default()
                    };
                    let log = Rc::new(PartitionLog::open(root.path().join("bench-0"), cfg.clone()).await.unwrap());
                    let proto = batch_16k();
                    let mut latencies: Vec<Duration> = Vec::new();
                    let mut seed = 0x1234_5678_9abc_def1u64;
                    while let Ok((job, reply)) = rx.recv() {
                        let took = match job {
                            Job::Sequential(iters) => {
                                let t = Instant::now();
                                for _ in 0..iters {
                                    log.append(proto.clone()).await.unwrap();
                                }
                                t.elapsed()
                            }
                            Job::Concurrent { writers, iters, durable } => {
                                let per = iters.div_ceil(writers as u64);
                                let t = Instant::now();
                                let mut tasks = Vec::new();
                                for _ in 0..writers {
                                    let log = log.clone();
                                    let proto = proto.clone();
                                    tasks.push(glommio::spawn_local(async move {
                                        let mut lat = Vec::new();
                                        for _ in 0..per {
                                            let s = Instant::now();
                                            let a = log.append(proto.clone()).await.unwrap();
                                            if durable {
                                                log.wait_durable(a.last_offset).await.unwrap();
                                            }
                                            lat.push(s.elapsed());
                                        }
                                        lat
                                    }));
                                }
                                for task in tasks {
                                    let l = task.await;
                                    if durable {
                                        latencies.extend(l);
                                    }
                                }
                                t.elapsed()
                            }
                            Job::Pipelined { writers, depth, iters } => {
                                let per = iters.div_ceil(writers as u64);
                                let t = Instant::now();
                                let mut tasks = Vec::new();
                                for _ in 0..writers {
                                    let log = log.clone();
                                    let proto = proto.clone();
                                    tasks.push(glommio::spawn_local(async move {
                                        let mut in_flight = std::collections::VecDeque::new();
                                        for _ in 0..per {
                                            if in_flight.len() == depth {
                                                let last = in_flight.pop_front().unwrap();
                                                log.wait_written(last).await.unwrap();
                                            }
                                            in_flight.push_back(log.append_assign(proto.clone()).unwrap().last_offset);
                                        }
                                        if let Some(last) = in_flight.pop_back() {
                                            log.wait_written(last).await.unwrap();
                                        }
                                    }));
                                }
                                for task in tasks {
                                    task.await;
                                }
                                t.elapsed()
                            }
                            Job::Read(iters) => {
                                let (start, hw) = (log.log_start_offset(), log.high_watermark());
                                let span = (hw - start).max(1) as u64;
                                let t = Instant::now();
                                for _ in 0..iters {
                                    seed ^= seed << 13;
                                    seed ^= seed >> 7;
                                    seed ^= seed << 17;
                                    let off = start + (seed % span) as i64;
                                    let r = log.read(off, 1 << 20).await.unwrap();
                                    assert!(!r.slices.is_empty());
                                }
                                t.elapsed()
                            }
                            Job::TailRead(iters) => {
                                // Append one batch, then read it back as a caught-up consumer would
                                // (only the read is timed).
                                let mut total = Duration::ZERO;
                                for _ in 0..iters {
                                    let a = log.append(proto.clone()).await.unwrap();
                                    glommio::timer::sleep(Duration::from_micros(200)).await;
                                    let t = Instant::now();
                                    let r = log.read(a.base_offset, 1 << 20).await.unwrap();
                                    let bytes = r.read_to_vec().unwrap();
                                    total += t.elapsed();
                                    assert_eq!(bytes.len(), proto.len());
                                }
                                total
                            }
                            Job::Recovery { with_index } => recovery_once(root.path(), with_index).await,
                            Job::ProducerOpen { snapshot } => producer_open_once(root.path(), snapshot).await,
                        };
                        log.enforce_retention(0).await.unwrap();
                        let _ = reply.send(took);
                    }
                    if !latencies.is_empty() {
                        latencies.sort();
                        let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
                        eprintln!(
                            "group commit append+wait_durable latency over {} appends: p50 {:?} p99 {:?} max {:?}",
                            latencies.len(),
                            p(0.50),
                            p(0.99),
                            latencies.last().unwrap()
                        );
                    }
                    log.close().await.unwrap();
                })
                .unwrap()
                .join()
                .unwrap();
        });
        Worker { tx, thread }
    }

    fn finish(self) {
        drop(self.tx);
        self.thread.join().unwrap();
    }

    fn run(&self, job: Job) -> Duration {
        let (tx, rx) = mpsc::channel();
        self.tx.send((job, tx)).unwrap();
        rx.recv().unwrap()
    }
}

fn recovery_mib() -> u64 {
    std::env::var("RINGBOLT_BENCH_RECOVERY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Builds (once) a log with one large segment, then each call tears its tail, optionally deletes
/// the index files, and times `PartitionLog::open`.
async fn recovery_once(root: &std::path::Path, with_index: bool) -> Duration {
    let dir = root.join("recovery-0");
    let seg = dir.join("00000000000000000000.log");
    if !seg.exists() {
        let cfg = LogConfig {
            segment_bytes: 2 << 30,
            ..LogConfig::default()
        };
        let log = Rc::new(PartitionLog::open(&dir, cfg).await.unwrap());
        let proto = batch_16k();
        let n = recovery_mib() * 1024 * 1024 / proto.len() as u64;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let log = log.clone();
            let proto = proto.clone();
            tasks.push(glommio::spawn_local(async move {
                for _ in 0..n / 8 {
                    log.append(proto.clone()).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await;
        }
        log.close().await.unwrap();
    }
    // Tear the tail: a partial batch header plus garbage.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0x40, 0, 7, 7, 7])
            .unwrap();
    }
    if !with_index {
        let _ = std::fs::remove_file(dir.join("00000000000000000000.index"));
        let _ = std::fs::remove_file(dir.join("00000000000000000000.timeindex"));
    }
    let t = Instant::now();
    let log = PartitionLog::open(&dir, LogConfig::default())
        .await
        .unwrap();
    let took = t.elapsed();
    log.close().await.unwrap();
    took
}

/// Builds (once) a log with 64 MiB of idempotent 16 KiB batches (4 producers), then each call
/// times `PartitionLog::open`, after deleting the snapshots unless `snapshot`.
async fn producer_open_once(root: &std::path::Path, snapshot: bool) -> Duration {
    let dir = root.join("producers-0");
    if !dir.exists() {
        let log = PartitionLog::open(&dir, LogConfig::default())
            .await
            .unwrap();
        let value = [0x5au8; 190];
        let recs: Vec<SimpleRecord<'_>> = (0..80)
            .map(|i| (1_700_000_000_000 + i, None, &value[..]))
            .collect();
        let n = (64u64 << 20) / batch_16k().len() as u64;
        for i in 0..n as i32 {
            let (pid, seq) = ((i % 4) as i64, (i / 4) * 80);
            let b = build_batch(0, &recs, pid, 0, seq);
            log.append(BytesMut::from(&b[..])).await.unwrap();
        }
        log.close().await.unwrap();
    }
    if !snapshot {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "snapshot") {
                std::fs::remove_file(p).unwrap();
            }
        }
    }
    let t = Instant::now();
    let log = PartitionLog::open(&dir, LogConfig::default())
        .await
        .unwrap();
    let took = t.elapsed();
    log.close().await.unwrap();
    took
}

fn benches(c: &mut Criterion) {
    let w = Worker::start();
    let b16 = batch_16k().len() as u64;

    let mut g = c.benchmark_group("append_16k");
    g.throughput(Throughput::Bytes(b16));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("sequential_nosync", |b| {
        b.iter_custom(|iters| w.run(Job::Sequential(iters)))
    });
    g.bench_function("concurrent8_nosync", |b| {
        b.iter_custom(|iters| {
            w.run(Job::Concurrent {
                writers: 8,
                iters,
                durable: false,
            })
        })
    });
    g.bench_function("concurrent32_nosync", |b| {
        b.iter_custom(|iters| {
            w.run(Job::Concurrent {
                writers: 32,
                iters,
                durable: false,
            })
        })
    });
    g.bench_function("pipelined8x4_nosync", |b| {
        b.iter_custom(|iters| {
            w.run(Job::Pipelined {
                writers: 8,
                depth: 4,
                iters,
            })
        })
    });
    g.bench_function("concurrent128_group_commit", |b| {
        b.iter_custom(|iters| {
            w.run(Job::Concurrent {
                writers: 128,
                iters,
                durable: true,
            })
        })
    });
    g.bench_function("concurrent32_group_commit", |b| {
        b.iter_custom(|iters| {
            w.run(Job::Concurrent {
                writers: 32,
                iters,
                durable: true,
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("index");
    let mut idx = OffsetIndex::new();
    for i in 0..262_144u32 {
        idx.append(i * 3 + 2, i * 4100);
    }
    let mut x = 1u32;
    g.bench_with_input(
        BenchmarkId::new("lookup", "262144_entries"),
        &idx,
        |b, idx| {
            b.iter(|| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                std::hint::black_box(idx.lookup(x % (262_144 * 3)))
            })
        },
    );
    g.finish();

    let mut g = c.benchmark_group("read");
    g.bench_function("tail_after_append_16k", |b| {
        b.iter_custom(|iters| w.run(Job::TailRead(iters)))
    });
    g.bench_function("locate_random_offset", |b| {
        b.iter_custom(|iters| w.run(Job::Read(iters)))
    });
    g.finish();

    let mut g = c.benchmark_group("producer_state");
    for producers in [1i64, 1000] {
        g.bench_function(format!("check_apply_{producers}_producers"), |b| {
            let recs: [SimpleRecord<'_>; 1] = [(1, None, b"v")];
            let mut h = ringbolt::protocol::record_batch::BatchHeader::parse(&build_batch(
                0, &recs, 0, 0, 0,
            ))
            .unwrap();
            let mut st = ringbolt::storage::producer_state::ProducerStates::default();
            let mut seqs = vec![0i32; producers as usize];
            let mut i = 0usize;
            b.iter(|| {
                let p = i % producers as usize;
                h.producer_id = p as i64;
                h.base_sequence = seqs[p];
                h.base_offset = i as i64;
                let v = st.check(std::slice::from_ref(&h)).unwrap();
                st.apply(&h, 0);
                seqs[p] += 1;
                i += 1;
                std::hint::black_box(v)
            })
        });
    }
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for snapshot in [true, false] {
        let name = if snapshot {
            "open_64MiB_from_snapshot"
        } else {
            "open_64MiB_replay_headers"
        };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| w.run(Job::ProducerOpen { snapshot }))
                    .sum()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("recovery");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    let mib = recovery_mib();
    g.throughput(Throughput::Bytes(mib * 1024 * 1024));
    g.bench_function(format!("torn_tail_{mib}MiB_with_index"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| w.run(Job::Recovery { with_index: true }))
                .sum()
        })
    });
    g.bench_function(format!("torn_tail_{mib}MiB_full_scan"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| w.run(Job::Recovery { with_index: false }))
                .sum()
        })
    });
    g.finish();
    w.finish();
}

criterion_group!(storage, benches);
criterion_main!(storage);
