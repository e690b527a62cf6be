//! Log compaction (`storage::cleaner`): what a cleaning pass keeps (the latest record per key at
//! its original offset, tombstones until their delete horizon, compressed batches in their codec,
//! idempotent producers' last batches), that the log stays readable while and after segments are
//! swapped, that a crash at every step of a swap leaves the old or the new segment set, and that
//! kill -9 of a process in the middle of cleaning loses nothing.

mod storage_common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringbolt::format::compression::{self, Codec};
use ringbolt::format::record_batch::{self, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use ringbolt::format::records;
use ringbolt::storage::cleaner::{CleanReport, CleanerConfig, ShardCleaner};
use ringbolt::storage::{CleanupPolicy, LogConfig, PartitionLog, StorageError};
use storage_common::run;

const COMPACT: CleanupPolicy = CleanupPolicy {
    delete: false,
    compact: true,
};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 32 * 1024,
        index_interval_bytes: 512,
        cleanup_policy: COMPACT,
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A v2 batch of (key, value) records (`None` value: a tombstone), timestamps `ts, ts+1, …`.
fn kv_batch(recs: &[(&[u8], Option<&[u8]>)], ts: i64, pid: i64, epoch: i16, seq: i32) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (k, v)) in recs.iter().enumerate() {
        let mut rec = vec![0u8];
        record_batch::write_varlong(&mut rec, i as i64);
        record_batch::write_varlong(&mut rec, i as i64);
        record_batch::write_varlong(&mut rec, k.len() as i64);
        rec.extend_from_slice(k);
        match v {
            Some(v) => {
                record_batch::write_varlong(&mut rec, v.len() as i64);
                rec.extend_from_slice(v);
            }
            None => record_batch::write_varlong(&mut rec, -1),
        }
        record_batch::write_varlong(&mut rec, 0);
        record_batch::write_varlong(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let n = recs.len() as i32;
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(n - 1).to_be_bytes());
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&(ts + n as i64 - 1).to_be_bytes());
    b.extend_from_slice(&pid.to_be_bytes());
    b.extend_from_slice(&epoch.to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&n.to_be_bytes());
    b.extend_from_slice(&body);
    let crc = record_batch::compute_crc(&b);
    b[record_batch::CRC_OFFSET..record_batch::CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    record_batch::validate_batch(&b).expect("test batch validates");
    b
}

/// One stored record: (offset, key, value).
type Rec = (i64, Vec<u8>, Option<Vec<u8>>);

/// Every stored batch from the log start, raw.
async fn all_batches(log: &PartitionLog) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let hw = log.high_watermark();
    while offset < hw {
        let r = log.read(offset, 1 << 20).await.unwrap();
        let bytes = r.read_to_vec().unwrap();
        if bytes.is_empty() {
            break;
        }
        let mut pos = 0;
        while pos < bytes.len() {
            let h = record_batch::validate_stored_batch(&bytes[pos..]).expect("stored batch");
            // A read starts at the batch holding `offset`: skip batches seen already.
            if h.last_offset() >= offset {
                out.push(bytes[pos..pos + h.total_len()].to_vec());
                offset = h.last_offset() + 1;
            }
            pos += h.total_len();
        }
    }
    out
}

async fn all_records(log: &PartitionLog) -> Vec<Rec> {
    let mut out = Vec::new();
    for b in all_batches(log).await {
        let (h, raw) = records::decode(&b).unwrap();
        for r in records::parse_records(&h, &raw).unwrap() {
            out.push((
                h.base_offset + r.offset_delta,
                r.key.unwrap().to_vec(),
                r.value.map(<[u8]>::to_vec),
            ));
        }
    }
    out
}

/// Key → (offset, value) of its last record: what a consumer reading from the start ends with.
fn view(recs: &[Rec]) -> BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> {
    let mut m = BTreeMap::new();
    for (o, k, v) in recs {
        m.insert(k.clone(), (*o, v.clone()));
    }
    m
}

async fn append(log: &PartitionLog, b: Vec<u8>) -> i64 {
    log.append(b).await.unwrap().base_offset
}

/// One cleaning round over `log` at `now`.
async fn clean(
    cleaner: &mut ShardCleaner,
    log: &Rc<PartitionLog>,
    now: i64,
) -> Option<CleanReport> {
    cleaner
        .clean_filthiest(std::slice::from_ref(log), now)
        .await
        .map(|r| r.map_err(|(_, e)| e).expect("cleaning succeeds"))
}

fn cleaner() -> ShardCleaner {
    ShardCleaner::new(
        CleanerConfig {
            backoff_ms: 0,
            ..CleanerConfig::default()
        },
        1,
    )
}

fn log_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// Files a swap leaves while in progress; none may survive an open.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap") || n.ends_with(".replaces"))
        .collect()
}

/// Appends `versions` rounds over `keys` keys (values `v<round>-<key>` padded), one record per
/// batch; returns key → (offset, value) of the last round.
async fn fill(
    log: &PartitionLog,
    keys: usize,
    versions: usize,
    pad: usize,
) -> BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> {
    let mut expected = BTreeMap::new();
    let ts = now_ms();
    for round in 0..versions {
        for k in 0..keys {
            let key = format!("key-{k}").into_bytes();
            let mut value = format!("v{round}-{k}-").into_bytes();
            value.resize(value.len() + pad, b'x');
            let off = append(log, kv_batch(&[(&key, Some(&value))], ts, -1, -1, -1)).await;
            expected.insert(key, (off, Some(value)));
        }
    }
    expected
}

#[test]
fn keeps_the_latest_record_per_key_at_its_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let log = Rc::new(PartitionLog::open(&dir, config()).await.unwrap());
        let expected = fill(&log, 50, 40, 100).await;
        log.roll().await.unwrap();
        let before = all_records(&log).await;
        assert_eq!(before.len(), 2000);
        let (bytes_before, segs_before) = (log_bytes(&dir), log.segment_count());
        let mut c = cleaner();
        let r = clean(&mut c, &log, now_ms())
            .await
            .expect("a dirty compacted log is cleaned");
        assert_eq!(r.stats.records_read, 2000);
        assert_eq!(r.stats.records_kept, 50);
        let after = all_records(&log).await;
        assert_eq!(
            view(&after),
            expected,
            "latest value of every key, at its offset"
        );
        assert_eq!(after.len(), 50, "one record per key");
        assert_eq!(
            view(&before),
            view(&after),
            "a consumer's view is unchanged"
        );
        assert!(after.windows(2).all(|w| w[0].0 < w[1].0), "offsets ascend");
        assert!(
            log_bytes(&dir) * 10 < bytes_before,
            "{} -> {}",
            bytes_before,
            log_bytes(&dir)
        );
        assert!(log.segment_count() <= segs_before);
        assert_eq!(log.log_start_offset(), 0, "the log start does not move");
        assert!(temp_files(&dir).is_empty(), "{:?}", temp_files(&dir));
        let cp = std::fs::read_to_string(dir.join("cleaner-offset-checkpoint")).unwrap();
        assert_eq!(cp, format!("0\n1\nt 0 {}\n", r.stats.end_offset));
        assert_eq!(r.stats.end_offset, 2000);
        // Nothing dirty left: the next round finds nothing to do.
        assert!(clean(&mut c, &log, now_ms()).await.is_none());
        // Reopened (recovery validates the rewritten segments), the log reads the same and
        // appends continue after the last offset.
        log.close().await.unwrap();
        let log = Rc::new(PartitionLog::open(&dir, config()).await.unwrap());
        assert_eq!(all_records(&log).await, after);
        assert_eq!(log.high_watermark(), 2000);
        assert_eq!(
            append(
                &log,
                kv_batch(&[(b"key-0", Some(b"new"))], now_ms(), -1, -1, -1)
            )
            .await,
            2000
        );
        // A new cleaner (a restart) resumes from the checkpoint: only the new data is dirty.
        log.roll().await.unwrap();
        let mut c = cleaner();
        let r = clean(&mut c, &log, now_ms()).await.unwrap();
        assert_eq!(r.stats.keys, 1);
        let recs = all_records(&log).await;
        assert_eq!(recs.len(), 50);
        assert_eq!(
            recs.last().unwrap(),
            &(2000, b"key-0".to_vec(), Some(b"new".to_vec()))
        );
        // The first pass rewrote each full segment alone; this one merged the small results
        // (Kafka's grouping by size): one sealed segment and the active one.
        assert!(segs_before > 10);
        assert_eq!(log.segment_count(), 2);
        log.close().await.unwrap();
    });
}

#[test]
fn tombstones_survive_one_cleaning_for_delete_retention_ms() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let cfg = LogConfig {
            delete_retention_ms: 60_000,
            ..config()
        };
        let log = Rc::new(PartitionLog::open(&dir, cfg).await.unwrap());
        fill(&log, 10, 3, 10).await;
        for k in 0..5 {
            let key = format!("key-{k}").into_bytes();
            append(&log, kv_batch(&[(&key, None)], now_ms(), -1, -1, -1)).await;
        }
        log.roll().await.unwrap();
        let t = now_ms();
        let mut c = cleaner();
        let r = clean(&mut c, &log, t).await.unwrap();
        assert_eq!(r.stats.tombstone_horizon, Some(t + 60_000));
        let v = view(&all_records(&log).await);
        assert_eq!(
            all_records(&log).await.len(),
            10,
            "5 values and 5 tombstones"
        );
        for k in 0..5 {
            assert_eq!(
                v[format!("key-{k}").as_bytes()].1,
                None,
                "tombstone kept after the first pass"
            );
        }
        // The stamped batches carry the horizon (KIP-534) in their base timestamp.
        let stamped = all_batches(&log)
            .await
            .into_iter()
            .map(|b| BatchHeader::parse(&b).unwrap())
            .filter(|h| h.attributes & 0x40 != 0)
            .count();
        assert_eq!(stamped, 5);
        // New dirty data makes the log cleanable again; before the horizon the tombstones stay.
        append(
            &log,
            kv_batch(&[(b"filler", Some(b"1"))], now_ms(), -1, -1, -1),
        )
        .await;
        log.roll().await.unwrap();
        clean(&mut c, &log, t + 59_999).await.unwrap();
        assert_eq!(all_records(&log).await.len(), 11);
        // At the horizon a pass runs even without new dirty data, and drops them.
        let r = clean(&mut c, &log, t + 60_000)
            .await
            .expect("due horizon triggers a pass");
        assert_eq!(r.stats.tombstone_horizon, None);
        let recs = all_records(&log).await;
        let keys: Vec<_> = recs
            .iter()
            .map(|r| String::from_utf8(r.1.clone()).unwrap())
            .collect();
        assert_eq!(
            keys,
            ["key-5", "key-6", "key-7", "key-8", "key-9", "filler"]
        );
        assert!(recs.iter().all(|r| r.2.is_some()));
        log.close().await.unwrap();
    });
}

#[test]
fn compressed_batches_and_idempotent_producer_state_survive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let log = Rc::new(PartitionLog::open(&dir, config()).await.unwrap());
        let ts = now_ms();
        // Producer 7: three zstd batches (offsets 0-14, sequences 0-14) over keys a0..a4.
        let mut pid_batches = Vec::new();
        for i in 0..3 {
            let vals: Vec<Vec<u8>> = (0..5).map(|k| format!("p{i}-{k}").into_bytes()).collect();
            let keys: Vec<Vec<u8>> = (0..5).map(|k| format!("a{k}").into_bytes()).collect();
            let recs: Vec<(&[u8], Option<&[u8]>)> = keys
                .iter()
                .zip(&vals)
                .map(|(k, v)| (&k[..], Some(&v[..])))
                .collect();
            let b = compression::recompress_batch(&kv_batch(&recs, ts, 7, 0, i * 5), Codec::Zstd)
                .unwrap();
            pid_batches.push(b.clone());
            append(&log, b).await;
        }
        // A gzip batch without producer supersedes a0..a4; a zstd batch half superseded later.
        let over: Vec<(&[u8], Option<&[u8]>)> = vec![
            (b"a0", Some(b"final0")),
            (b"a1", Some(b"final1")),
            (b"a2", Some(b"final2")),
            (b"a3", Some(b"final3")),
            (b"a4", Some(b"final4")),
        ];
        append(
            &log,
            compression::recompress_batch(&kv_batch(&over, ts, -1, -1, -1), Codec::Gzip).unwrap(),
        )
        .await;
        let mixed: Vec<(&[u8], Option<&[u8]>)> = vec![
            (b"b0", Some(b"old")),
            (b"b1", Some(b"keep")),
            (b"b2", Some(b"old")),
        ];
        let mixed_at = append(
            &log,
            compression::recompress_batch(&kv_batch(&mixed, ts, -1, -1, -1), Codec::Lz4).unwrap(),
        )
        .await;
        append(
            &log,
            kv_batch(
                &[(b"b0", Some(b"new0")), (b"b2", Some(b"new2"))],
                ts,
                -1,
                -1,
                -1,
            ),
        )
        .await;
        log.roll().await.unwrap();
        let mut c = cleaner();
        clean(&mut c, &log, now_ms()).await.unwrap();
        let batches: Vec<(BatchHeader, Vec<u8>)> = all_batches(&log)
            .await
            .into_iter()
            .map(|b| (BatchHeader::parse(&b).unwrap(), b))
            .collect();
        // Producer 7: only its newest batch remains, emptied, with its offsets and sequence.
        let p7: Vec<&BatchHeader> = batches
            .iter()
            .map(|(h, _)| h)
            .filter(|h| h.producer_id == 7)
            .collect();
        assert_eq!(p7.len(), 1);
        assert_eq!(
            (
                p7[0].base_offset,
                p7[0].last_offset(),
                p7[0].records_count,
                p7[0].base_sequence,
                p7[0].producer_epoch
            ),
            (10, 14, 0, 10, 0)
        );
        // The gzip batch is kept verbatim; the lz4 one rebuilt in lz4 with its one live record.
        assert!(
            batches
                .iter()
                .any(|(h, _)| h.compression() == Codec::Gzip.id() && h.records_count == 5)
        );
        let (lz4, lz4_bytes) = batches
            .iter()
            .find(|(h, _)| h.base_offset == mixed_at)
            .unwrap();
        assert_eq!(
            (lz4.compression(), lz4.records_count, lz4.last_offset()),
            (Codec::Lz4.id(), 1, mixed_at + 2)
        );
        let (h, raw) = records::decode(lz4_bytes).unwrap();
        let r = records::parse_records(&h, &raw).unwrap();
        assert_eq!(
            (r[0].key, r[0].value, h.base_offset + r[0].offset_delta),
            (Some(&b"b1"[..]), Some(&b"keep"[..]), mixed_at + 1)
        );
        let v = view(&all_records(&log).await);
        assert_eq!(v.len(), 8);
        assert_eq!(v[&b"a3"[..]].1.as_deref(), Some(&b"final3"[..]));
        // Restart without producer snapshots: the state is rebuilt from the cleaned segments, so
        // a retry of the producer's last batch is still recognised and its sequence continues.
        log.close().await.unwrap();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "snapshot") {
                std::fs::remove_file(p).unwrap();
            }
        }
        let log = Rc::new(PartitionLog::open(&dir, config()).await.unwrap());
        let dup = log.append(pid_batches[2].clone()).await.unwrap();
        assert_eq!(
            dup.base_offset, 10,
            "the retried batch is answered with its original offsets"
        );
        let gap = kv_batch(&[(b"a0", Some(b"x"))], ts, 7, 0, 16);
        assert!(matches!(
            log.append(gap).await,
            Err(StorageError::OutOfOrderSequence(_))
        ));
        let next = kv_batch(&[(b"a0", Some(b"x"))], ts, 7, 0, 15);
        log.append(next).await.unwrap();
        log.close().await.unwrap();
    });
}

#[test]
fn reads_stay_correct_across_a_swap() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let log = Rc::new(PartitionLog::open(&dir, config()).await.unwrap());
        fill(&log, 20, 30, 200).await;
        log.roll().await.unwrap();
        // Slices handed out before the swap (a fetch about to sendfile them) keep their files.
        let early = log.read(0, 64 * 1024).await.unwrap();
        let early_bytes = early.read_to_vec().unwrap();
        let before = all_records(&log).await;
        clean(&mut cleaner(), &log, now_ms()).await.unwrap();
        assert_eq!(
            early.read_to_vec().unwrap(),
            early_bytes,
            "old slices read the old bytes"
        );
        record_batch::validate_all(&early_bytes).unwrap();
        // Reads at every old offset land on the batch holding it or the next kept one.
        let after = all_records(&log).await;
        for (o, _, _) in before.iter().step_by(37) {
            let r = log.read(*o, 1).await.unwrap();
            let b = r.read_to_vec().unwrap();
            let h = record_batch::validate_stored_batch(&b).unwrap();
            let want = after.iter().find(|r| r.0 >= *o).unwrap().0;
            assert!(
                h.base_offset <= want && want <= h.last_offset(),
                "read at {o}"
            );
        }
        log.close().await.unwrap();
    });
}

#[test]
fn policy_is_read_at_each_round_and_retention_needs_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let delete_only = LogConfig {
            cleanup_policy: CleanupPolicy::default(),
            ..config()
        };
        let log = Rc::new(PartitionLog::open(&dir, delete_only.clone()).await.unwrap());
        fill(&log, 10, 20, 100).await;
        log.roll().await.unwrap();
        let mut c = cleaner();
        assert!(
            clean(&mut c, &log, now_ms()).await.is_none(),
            "delete policy: never compacted"
        );
        // min.compaction.lag.ms holds back records younger than it.
        log.set_config(LogConfig {
            min_compaction_lag_ms: 3_600_000,
            ..config()
        });
        assert!(clean(&mut c, &log, now_ms()).await.is_none());
        assert!(clean(&mut c, &log, now_ms() + 7_200_000).await.is_some());
        assert_eq!(all_records(&log).await.len(), 10);
        // compact alone: retention deletes nothing even past retention.ms; compact,delete does.
        log.set_config(LogConfig {
            retention_ms: 0,
            ..config()
        });
        fill(&log, 1, 1, 1).await;
        log.roll().await.unwrap();
        assert_eq!(log.enforce_retention(now_ms() + 1000).await.unwrap(), 0);
        log.set_config(LogConfig {
            retention_ms: 0,
            cleanup_policy: CleanupPolicy {
                delete: true,
                compact: true,
            },
            ..config()
        });
        assert!(log.enforce_retention(now_ms() + 1000).await.unwrap() > 0);
        log.close().await.unwrap();
    });
}

#[test]
fn dedupe_buffer_smaller_than_the_dirty_keys_cleans_in_several_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let log = Rc::new(PartitionLog::open(&dir, config()).await.unwrap());
        let expected = fill(&log, 300, 4, 20).await;
        log.roll().await.unwrap();
        // Room for 100 keys per pass.
        let mut c = ShardCleaner::new(
            CleanerConfig {
                backoff_ms: 0,
                dedupe_buffer_size: 100 * ringbolt::storage::cleaner::offset_map::BYTES_PER_ENTRY,
                ..CleanerConfig::default()
            },
            1,
        );
        let mut passes = 0;
        while let Some(r) = clean(&mut c, &log, now_ms()).await {
            passes += 1;
            assert!(r.stats.keys <= 100);
            assert_eq!(
                view(&all_records(&log).await),
                expected,
                "after pass {passes}"
            );
            assert!(passes < 50);
        }
        assert!(passes >= 3, "{passes} passes");
        log.close().await.unwrap();
    });
}

/// A log directory's files: name → content.
type Files = BTreeMap<String, Vec<u8>>;

/// The files of a log directory, by name.
fn snapshot_dir(dir: &Path) -> Files {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| {
            (
                e.file_name().to_string_lossy().to_string(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn write_dir(dir: &Path, files: &Files) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for (n, b) in files {
        std::fs::write(dir.join(n), b).unwrap();
    }
}

#[test]
fn a_crash_at_every_step_of_a_swap_leaves_the_old_or_the_new_set() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let root = tmp.path().to_path_buf();
    run(move || async move {
        // Four small segments rolled by hand: one group, one swap.
        let cfg = LogConfig {
            segment_bytes: 1 << 20,
            ..config()
        };
        let log = Rc::new(PartitionLog::open(&dir, cfg.clone()).await.unwrap());
        for _ in 0..4 {
            fill(&log, 10, 5, 30).await;
            log.roll().await.unwrap();
        }
        let old_bases = log.segment_bases();
        assert_eq!(
            old_bases.len(),
            5,
            "four sealed segments and the active one"
        );
        let old_records = all_records(&log).await;
        log.close().await.unwrap();
        let old = snapshot_dir(&dir);
        let log = Rc::new(PartitionLog::open(&dir, cfg.clone()).await.unwrap());
        let r = clean(&mut cleaner(), &log, now_ms()).await.unwrap();
        assert_eq!(r.stats.swaps, 1);
        let new_records = all_records(&log).await;
        assert_eq!(new_records.len(), 10);
        log.close().await.unwrap();
        let new = snapshot_dir(&dir);
        let b0 = format!("{:020}", old_bases[0]);
        let olds: Vec<String> = old_bases[..4].iter().map(|b| format!("{b:020}")).collect();
        let replaces: Vec<u8> = old_bases[..4]
            .iter()
            .map(|b| format!("{b}\n"))
            .collect::<String>()
            .into_bytes();
        let newf = |ext: &str| new[&format!("{b0}.{ext}")].clone();
        // Each crash state: the files present, and which set must come back.
        let mut states: Vec<(&str, Files, bool)> = Vec::new();
        let mut s = old.clone();
        s.insert(
            format!("{b0}.log.cleaned"),
            newf("log")[..newf("log").len() / 2].to_vec(),
        );
        states.push(("log half written", s.clone(), false));
        s.insert(format!("{b0}.log.cleaned"), newf("log"));
        s.insert(format!("{b0}.index.cleaned"), newf("index"));
        s.insert(format!("{b0}.timeindex.cleaned"), newf("timeindex"));
        s.insert(format!("{b0}.replaces"), replaces.clone());
        states.push(("cleaned files written", s.clone(), false));
        let idx = s.remove(&format!("{b0}.index.cleaned")).unwrap();
        s.insert(format!("{b0}.index.swap"), idx);
        let tidx = s.remove(&format!("{b0}.timeindex.cleaned")).unwrap();
        s.insert(format!("{b0}.timeindex.swap"), tidx);
        states.push(("indexes renamed to .swap", s.clone(), false));
        let l = s.remove(&format!("{b0}.log.cleaned")).unwrap();
        s.insert(format!("{b0}.log.swap"), l);
        states.push(("committed: log renamed to .swap", s.clone(), true));
        for o in &olds[1..3] {
            for ext in ["log", "index", "timeindex"] {
                s.remove(&format!("{o}.{ext}"));
            }
        }
        states.push(("some old segments unlinked", s.clone(), true));
        for o in &olds[3..] {
            for ext in ["log", "index", "timeindex"] {
                s.remove(&format!("{o}.{ext}"));
            }
        }
        let i = s.remove(&format!("{b0}.index.swap")).unwrap();
        s.insert(format!("{b0}.index"), i);
        states.push(("index renamed into place", s.clone(), true));
        let t = s.remove(&format!("{b0}.timeindex.swap")).unwrap();
        s.insert(format!("{b0}.timeindex"), t);
        let l = s.remove(&format!("{b0}.log.swap")).unwrap();
        s.insert(format!("{b0}.log"), l);
        states.push(("all renamed, .replaces left", s.clone(), true));
        for (i, (what, files, is_new)) in states.into_iter().enumerate() {
            let d: PathBuf = root.join(format!("crash{i}")).join("t-0");
            write_dir(&d, &files);
            let log = PartitionLog::open(&d, cfg.clone()).await.unwrap();
            let got = all_records(&log).await;
            let want = if is_new { &new_records } else { &old_records };
            assert_eq!(&got, want, "crash after: {what}");
            assert!(temp_files(&d).is_empty(), "{what}: {:?}", temp_files(&d));
            assert_eq!(
                log.segment_bases().len(),
                if is_new { 2 } else { 5 },
                "{what}"
            );
            log.close().await.unwrap();
        }
    });
}

const CHILD_ENV: &str = "RINGBOLT_CLEANER_CRASH_CHILD_DIR";

/// Runs only when re-executed by `kill_9_during_cleaning_loses_nothing`: cleans the log in
/// its directory slowly (I/O budget 400 kB/s) until killed.
#[test]
fn cleaner_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    run(move || async move {
        let log = Rc::new(PartitionLog::open(&dir, config()).await.unwrap());
        let mut c = ShardCleaner::new(
            CleanerConfig {
                backoff_ms: 0,
                io_max_bytes_per_second: 400_000.0,
                ..CleanerConfig::default()
            },
            1,
        );
        println!("cleaning");
        loop {
            let t = Instant::now();
            if let Some(r) = clean(&mut c, &log, now_ms()).await {
                println!("pass {:?} {:?}", t.elapsed(), r.stats);
            } else {
                println!("idle");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    });
}

#[test]
fn kill_9_during_cleaning_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let exe = std::env::current_exe().unwrap();
    let mut expected: BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> = BTreeMap::new();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut mid_swap_files_seen = 0;
    for round in 0..10 {
        // New versions of every key (some deleted), written and closed by this process.
        let d = dir.clone();
        let added = run(move || async move {
            let log = PartitionLog::open(&d, config()).await.unwrap();
            let mut added = fill(&log, 200, 3, 300).await;
            for k in (round..200).step_by(7) {
                let key = format!("key-{k}").into_bytes();
                let off = append(&log, kv_batch(&[(&key, None)], now_ms(), -1, -1, -1)).await;
                added.insert(key, (off, None));
            }
            log.roll().await.unwrap();
            log.close().await.unwrap();
            added
        });
        expected.extend(added);
        // A child cleans; it is killed at a random moment.
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "cleaner_crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let started = Instant::now();
        while !line.contains("cleaning") && started.elapsed() < Duration::from_secs(30) {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(20 + rng % 1500));

        if !temp_files(&dir).is_empty() {
            mid_swap_files_seen += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Reopened: every key's last record is the last one written.
        let d = dir.clone();
        let want = expected.clone();
        run(move || async move {
            let log = PartitionLog::open(&d, config()).await.unwrap();
            assert!(temp_files(&d).is_empty());
            let v = view(&all_records(&log).await);
            for (k, (off, val)) in &want {
                match (v.get(k), val) {
                    (Some(got), _) => assert_eq!(got, &(*off, val.clone()), "round {round}"),
                    (None, None) => {} // a tombstone removed after its horizon
                    (None, Some(_)) => panic!("round {round}: live key {k:?} lost"),
                }
            }
            assert_eq!(v.len(), want.len().min(v.len()));
            log.close().await.unwrap();
        });
    }
    eprintln!("kills with cleaner files on disk: {mid_swap_files_seen} of 10");
}

#[test]
fn retention_during_a_pass_stops_it_without_losing_dirty_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let both = LogConfig {
            cleanup_policy: CleanupPolicy {
                delete: true,
                compact: true,
            },
            ..config()
        };
        let log = Rc::new(PartitionLog::open(&dir, both.clone()).await.unwrap());
        fill(&log, 40, 30, 100).await;
        log.roll().await.unwrap();
        let segs = log.segment_count();
        assert!(segs >= 6, "{segs} segments");
        // A slow pass (about 2 s); retention deletes the oldest segments 300 ms into it.
        let l = log.clone();
        let pass = glommio::spawn_local(async move {
            let mut c = ShardCleaner::new(
                CleanerConfig {
                    backoff_ms: 0,
                    io_max_bytes_per_second: 200_000.0,
                    ..CleanerConfig::default()
                },
                1,
            );
            clean(&mut c, &l, now_ms()).await
        });
        glommio::timer::sleep(Duration::from_millis(300)).await;
        log.set_config(LogConfig {
            retention_bytes: 100_000,
            ..both.clone()
        });
        assert!(log.enforce_retention(now_ms()).await.unwrap() > 0);
        let r = pass.await.expect("the pass ran");
        assert_eq!(r.stats.swaps, 0, "the pass stopped at its first group");
        assert_eq!(r.stats.end_offset, 0, "nothing counts as clean");
        assert!(temp_files(&dir).is_empty());
        // What retention left is intact, and the next pass compacts all of it.
        let left = view(&all_records(&log).await);
        log.set_config(both);
        let r = clean(&mut cleaner(), &log, now_ms()).await.unwrap();
        assert!(r.stats.swaps > 0);
        let after = all_records(&log).await;
        assert_eq!(view(&after), left);
        assert_eq!(after.len(), left.len(), "one record per key");
        log.close().await.unwrap();
    });
}

#[test]
fn a_dedupe_buffer_too_small_for_one_batch_is_an_error_not_a_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let log = Rc::new(PartitionLog::open(&dir, config()).await.unwrap());
        let recs: Vec<(Vec<u8>, Vec<u8>)> = (0..10)
            .map(|i| (format!("k{i}").into_bytes(), b"v".to_vec()))
            .collect();
        let refs: Vec<(&[u8], Option<&[u8]>)> =
            recs.iter().map(|(k, v)| (&k[..], Some(&v[..]))).collect();
        for _ in 0..3 {
            append(&log, kv_batch(&refs, now_ms(), -1, -1, -1)).await;
        }
        log.roll().await.unwrap();
        let before = all_records(&log).await;
        // Room for 2 keys: not even the first batch fits.
        let mut c = ShardCleaner::new(
            CleanerConfig {
                dedupe_buffer_size: 2 * ringbolt::storage::cleaner::offset_map::BYTES_PER_ENTRY,
                ..CleanerConfig::default()
            },
            1,
        );
        let r = c
            .clean_filthiest(std::slice::from_ref(&log), now_ms())
            .await;
        assert!(matches!(r, Some(Err(_))), "{r:?}");
        assert_eq!(all_records(&log).await, before);
        // The failed log is left alone until the backoff has passed.
        assert!(
            c.clean_filthiest(std::slice::from_ref(&log), now_ms())
                .await
                .is_none()
        );
        log.close().await.unwrap();
    });
}
