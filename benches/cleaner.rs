//! Log cleaner throughput (criterion): one cleaning pass over a dirty compacted log.
//!
//! `cargo bench --bench cleaner` (add `-- --quick` for a short run). A template log is written
//! once per codec: 20,000 keys × 10 versions of ~200-byte values (the loadgen record size), 10
//! records per batch (a producer's linger batch), 4 MiB segments, all sealed — about 45 MiB of
//! dirty log. Each iteration copies the template to a fresh directory (not timed), opens it, and
//! times one `ShardCleaner::clean_filthiest` round: building the offset map over the whole log,
//! rewriting every segment (records decoded, and for compressed batches decompressed and
//! recompressed with their codec) and swapping the results in (fdatasync, renames, directory
//! syncs). Throughput is in bytes of dirty log cleaned. The template files were just copied, so
//! the reads hit the page cache: this measures the cleaner's own cost, not the device's.
//!
//! - `clean_pass/none`: uncompressed batches.
//! - `clean_pass/lz4`, `clean_pass/zstd`: compressed batches.
//! - `produce_key_check/16KiB`: the key check every produce to a compacted topic pays
//!   (`protocol::ingest::check_keys`: decode every record of the batch).
//!
//! The log lives under `RINGBOLT_BENCH_DIR` (default: the system temp dir). Measured in
//! `docs/perf/compaction.md`.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ringbolt::format::compression::{self, Codec};
use ringbolt::format::record_batch;
use ringbolt::protocol::ingest;
use ringbolt::storage::cleaner::{CleanerConfig, ShardCleaner};
use ringbolt::storage::{CleanupPolicy, LogConfig, PartitionLog};

const KEYS: usize = 20_000;
const VERSIONS: usize = 10;
const PER_BATCH: usize = 10;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4 << 20,
        cleanup_policy: CleanupPolicy {
            delete: false,
            compact: true,
        },
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    }
}

fn bench_dir() -> PathBuf {
    std::env::var_os("RINGBOLT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// A v2 batch of keyed records.
fn kv_batch(keys: &[Vec<u8>], values: &[Vec<u8>], codec: Codec) -> Vec<u8> {
    let recs: Vec<record_batch::SimpleRecord<'_>> = keys
        .iter()
        .zip(values)
        .map(|(k, v)| (1_700_000_000_000, Some(&k[..]), &v[..]))
        .collect();
    let b = record_batch::build_batch(0, &recs, -1, -1, -1);
    match codec {
        Codec::None => b,
        c => compression::recompress_batch(&b, c).unwrap(),
    }
}

fn value(i: usize) -> Vec<u8> {
    format!(
        "{i:08} {}",
        "loadgen-like payload with some repetition ".repeat(5)
    )
    .into_bytes()[..200]
        .to_vec()
}

fn on_executor<G, F, T>(f: G) -> T
where
    G: FnOnce() -> F + Send + 'static,
    F: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

/// Writes the template log for `codec`; returns its directory and its size in bytes.
fn template(root: &Path, codec: Codec) -> (PathBuf, u64) {
    let dir = root.join(format!("template-{}-0", codec.name()));
    let d = dir.clone();
    on_executor(move || async move {
        let log = PartitionLog::open(&d, config()).await.unwrap();
        let mut n = 0;
        for v in 0..VERSIONS {
            for chunk in 0..KEYS / PER_BATCH {
                let keys: Vec<Vec<u8>> = (0..PER_BATCH)
                    .map(|i| format!("key-{:06}", chunk * PER_BATCH + i).into_bytes())
                    .collect();
                let values: Vec<Vec<u8>> = (0..PER_BATCH).map(|i| value(n + i + v)).collect();
                n += PER_BATCH;
                log.append(kv_batch(&keys, &values, codec)).await.unwrap();
            }
        }
        log.roll().await.unwrap();
        log.close().await.unwrap();
    });
    let size = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    (dir, size)
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Copies the template and times one cleaning round on the copy, `iters` times.
fn clean_iters(template: &Path, work: &Path, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        copy_dir(template, work);
        let w = work.to_path_buf();
        total += on_executor(move || async move {
            let log = Rc::new(PartitionLog::open(&w, config()).await.unwrap());
            let mut c = ShardCleaner::new(CleanerConfig::default(), 1);
            let t = Instant::now();
            let r = c
                .clean_filthiest(std::slice::from_ref(&log), 1_800_000_000_000)
                .await
                .expect("a dirty log")
                .map_err(|(_, e)| e)
                .unwrap();
            let took = t.elapsed();
            assert_eq!(r.stats.records_kept, KEYS as u64);
            log.close().await.unwrap();
            took
        });
    }
    let _ = std::fs::remove_dir_all(work);
    total
}

fn benches(c: &mut Criterion) {
    let root = tempfile::tempdir_in(bench_dir()).unwrap();
    let mut g = c.benchmark_group("clean_pass");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    for codec in [Codec::None, Codec::Lz4, Codec::Zstd] {
        let (tpl, size) = template(root.path(), codec);
        eprintln!("clean_pass/{}: template {size} bytes", codec.name());
        g.throughput(Throughput::Bytes(size));
        let work = root.path().join(format!("work-{}-0", codec.name()));
        g.bench_function(BenchmarkId::from_parameter(codec.name()), |b| {
            b.iter_custom(|iters| clean_iters(&tpl, &work, iters))
        });
    }
    g.finish();

    // 16 KiB of keyed records, as one produce to a compacted topic carries.
    let keys: Vec<Vec<u8>> = (0..70)
        .map(|i| format!("key-{i:06}").into_bytes())
        .collect();
    let values: Vec<Vec<u8>> = (0..70).map(value).collect();
    let batch = kv_batch(&keys, &values, Codec::None);
    let mut g = c.benchmark_group("produce_key_check");
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.bench_function("16KiB", |b| {
        b.iter(|| ingest::check_keys(std::hint::black_box(&batch), "t", 0).unwrap())
    });
    g.finish();
}

criterion_group!(cleaner, benches);
criterion_main!(cleaner);
