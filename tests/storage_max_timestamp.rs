//! ListOffsets `MAX_TIMESTAMP` at the storage level: the offset of the first *record* carrying the
//! log's largest timestamp (KIP-734, Kafka's `UnifiedLog.fetchOffsetByTimestamp`), not the last
//! offset of its batch — inside one batch, across batches and segments, after reopen, after the
//! time index is rebuilt, after retention deleted the segment holding the max, in compressed
//! batches and under `LogAppendTime`. Also ListOffsets by timestamp inside compressed batches,
//! which shares the record decoding.

mod storage_common;

use bytes::BytesMut;
use ringbolt::protocol::compression::{self, Codec};
use ringbolt::protocol::record_batch::{SimpleRecord, build_batch};
use ringbolt::storage::{LogConfig, PartitionLog, TimestampType};
use storage_common::run;

/// One uncompressed batch with these record timestamps (values sized `value_len`).
fn ts_batch(ts: &[i64], value_len: usize) -> Vec<u8> {
    let value = vec![b'v'; value_len];
    let recs: Vec<SimpleRecord<'_>> = ts.iter().map(|t| (*t, None, value.as_slice())).collect();
    build_batch(0, &recs, -1, -1, -1)
}

async fn append(log: &PartitionLog, batch: &[u8]) -> (i64, i64) {
    let a = log.append(BytesMut::from(batch)).await.unwrap();
    (a.base_offset, a.last_offset)
}

async fn max_ts(log: &PartitionLog) -> Option<(i64, i64)> {
    log.offset_of_max_timestamp().await.unwrap()
}

fn with_log<F, Fut>(cfg: LogConfig, f: F)
where
    F: FnOnce(std::path::PathBuf, LogConfig) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mt-0");
    run(move || f(dir, cfg));
}

#[test]
fn empty_log_has_no_max_timestamp() {
    with_log(LogConfig::default(), |dir, cfg| async move {
        let log = PartitionLog::open(&dir, cfg.clone()).await.unwrap();
        assert_eq!(max_ts(&log).await, None);
        log.close().await.unwrap();
        let log = PartitionLog::open(&dir, cfg).await.unwrap();
        assert_eq!(max_ts(&log).await, None, "after reopen");
        log.close().await.unwrap();
    });
}

#[test]
fn one_batch_out_of_order_timestamps() {
    with_log(LogConfig::default(), |dir, cfg| async move {
        let log = PartitionLog::open(&dir, cfg).await.unwrap();
        let t = 1_700_000_000_000;
        assert_eq!(
            append(&log, &ts_batch(&[t + 100, t + 400, t + 250], 10)).await,
            (0, 2)
        );
        // The batch's last offset is 2; the record with the max timestamp is offset 1.
        assert_eq!(max_ts(&log).await, Some((1, t + 400)));
        log.close().await.unwrap();
    });
}

#[test]
fn ties_answer_the_first_record_of_the_first_batch() {
    with_log(LogConfig::default(), |dir, cfg| async move {
        let log = PartitionLog::open(&dir, cfg).await.unwrap();
        append(&log, &ts_batch(&[5, 9, 3, 9], 10)).await; // 0..3
        assert_eq!(max_ts(&log).await, Some((1, 9)));
        append(&log, &ts_batch(&[9, 9], 10)).await; // 4..5: same max, later
        assert_eq!(max_ts(&log).await, Some((1, 9)));
        append(&log, &ts_batch(&[1, 2, 10, 10], 10)).await; // 6..9
        assert_eq!(max_ts(&log).await, Some((8, 10)));
        log.close().await.unwrap();
    });
}

#[test]
fn several_batches_in_one_append_and_across_appends() {
    with_log(LogConfig::default(), |dir, cfg| async move {
        let log = PartitionLog::open(&dir, cfg).await.unwrap();
        let mut req = ts_batch(&[100, 101], 10); // 0..1
        req.extend_from_slice(&ts_batch(&[300, 700, 500], 10)); // 2..4
        req.extend_from_slice(&ts_batch(&[600, 650], 10)); // 5..6
        assert_eq!(append(&log, &req).await, (0, 6));
        assert_eq!(max_ts(&log).await, Some((3, 700)));
        append(&log, &ts_batch(&[10, 20], 10)).await; // 7..8
        assert_eq!(max_ts(&log).await, Some((3, 700)));
        append(&log, &ts_batch(&[10, 800, 30], 10)).await; // 9..11
        assert_eq!(max_ts(&log).await, Some((10, 800)));
        log.close().await.unwrap();
    });
}

/// Small segments and index interval: the max sits in an early sealed segment whose indexes are
/// cold (evicted from the warm set), and must survive a clean reopen, a reopen with its time index
/// deleted (rebuilt by a full scan) and a reopen with every index deleted.
#[test]
fn across_segments_and_reopens() {
    let cfg = LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    };
    with_log(cfg, |dir, cfg| async move {
        let log = PartitionLog::open(&dir, cfg.clone()).await.unwrap();
        let mut next = 0;
        let mut want = None;
        for i in 0..40i64 {
            // Batch 7 holds the max (its 3rd record); batch 25 ties it (later, so it loses).
            let ts: Vec<i64> = match i {
                7 => vec![1_000, 2_000, 9_000, 8_999],
                25 => vec![9_000, 1],
                _ => vec![1_000 + i, 1_100 + i, 1_050 + i],
            };
            let (b, l) = append(&log, &ts_batch(&ts, 60)).await;
            assert_eq!(b, next);
            if i == 7 {
                want = Some((b + 2, 9_000));
            }
            next = l + 1;
        }
        assert!(log.segment_count() >= 6, "{} segments", log.segment_count());
        assert_eq!(max_ts(&log).await, want);
        log.close().await.unwrap();

        let log = PartitionLog::open(&dir, cfg.clone()).await.unwrap();
        assert_eq!(max_ts(&log).await, want, "after a clean reopen");
        let bases = log.segment_bases();
        log.close().await.unwrap();
        let holder = *bases.iter().rev().find(|&&b| b <= want.unwrap().0).unwrap();

        std::fs::remove_file(dir.join(format!("{holder:020}.timeindex"))).unwrap();
        let log = PartitionLog::open(&dir, cfg.clone()).await.unwrap();
        assert_eq!(max_ts(&log).await, want, "after rebuilding the time index");
        log.close().await.unwrap();

        for b in &bases {
            for ext in ["index", "timeindex"] {
                let _ = std::fs::remove_file(dir.join(format!("{b:020}.{ext}")));
            }
        }
        let log = PartitionLog::open(&dir, cfg).await.unwrap();
        assert_eq!(max_ts(&log).await, want, "after rebuilding every index");
        log.close().await.unwrap();
    });
}

/// A torn tail is cut by recovery; if the cut batch held the max, the answer falls back to the
/// best record that survived.
#[test]
fn recovery_that_cuts_the_max() {
    with_log(LogConfig::default(), |dir, cfg| async move {
        let log = PartitionLog::open(&dir, cfg.clone()).await.unwrap();
        append(&log, &ts_batch(&[10, 50, 20], 10)).await; // 0..2
        let big = ts_batch(&[30, 99, 40], 10);
        append(&log, &big).await; // 3..5
        assert_eq!(max_ts(&log).await, Some((4, 99)));
        log.close().await.unwrap();
        let path = dir.join(format!("{:020}.log", 0));
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 5).unwrap();
        drop(f);
        let log = PartitionLog::open(&dir, cfg).await.unwrap();
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(max_ts(&log).await, Some((1, 50)));
        log.close().await.unwrap();
    });
}

#[test]
fn after_retention_deleted_the_segment_with_the_max() {
    let cfg = LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        retention_ms: -1,
        ..LogConfig::default()
    };
    with_log(cfg, |dir, cfg| async move {
        let log = PartitionLog::open(&dir, cfg.clone()).await.unwrap();
        // The max (5_000) in the first segment; the runner-up (4_000, twice) in later ones.
        let first = ts_batch(&[100, 5_000, 200], 100);
        append(&log, &first).await; // 0..2
        let mut sizes = vec![(0i64, first.len() as u64)];
        let mut runner_up = None;
        for i in 0..30i64 {
            let ts = if i == 12 || i == 20 {
                vec![300, 4_000, 4_000]
            } else {
                vec![300 + i, 310 + i]
            };
            let batch = ts_batch(&ts, 100);
            let (b, _) = append(&log, &batch).await;
            sizes.push((b, batch.len() as u64));
            if i == 12 {
                runner_up = Some((b + 1, 4_000));
            }
        }
        assert_eq!(max_ts(&log).await, Some((1, 5_000)));
        let bases = log.segment_bases();
        assert!(bases.len() >= 4, "{bases:?}");
        // Delete only the first segment: retention.bytes = the bytes of every other segment
        // (batches are stored verbatim, so a segment's size is the sum of its batches').
        let first_bytes: u64 = sizes
            .iter()
            .filter(|(b, _)| *b < bases[1])
            .map(|(_, n)| n)
            .sum();
        let total: u64 = sizes.iter().map(|(_, n)| n).sum();
        log.set_config(LogConfig {
            retention_bytes: (total - first_bytes) as i64,
            ..cfg.clone()
        });
        assert_eq!(log.enforce_retention(0).await.unwrap(), 1);
        assert_eq!(log.log_start_offset(), bases[1]);
        assert!(runner_up.unwrap().0 >= bases[1]);
        assert_eq!(max_ts(&log).await, runner_up, "after retention");
        log.close().await.unwrap();
        let log = PartitionLog::open(&dir, cfg).await.unwrap();
        assert_eq!(max_ts(&log).await, runner_up, "after retention and reopen");
        log.close().await.unwrap();
    });
}

#[test]
fn compressed_batches() {
    with_log(LogConfig::default(), |dir, cfg| async move {
        let log = PartitionLog::open(&dir, cfg).await.unwrap();
        let mut next = 0;
        for (i, codec) in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd]
            .into_iter()
            .enumerate()
        {
            let t = 10_000 * (i as i64 + 1);
            let b = compression::recompress_batch(
                &ts_batch(&[t + 100, t + 400, t + 250, t + 400], 200),
                codec,
            )
            .unwrap();
            let (base, last) = append(&log, &b).await;
            assert_eq!((base, last), (next, next + 3));
            next = last + 1;
            assert_eq!(
                max_ts(&log).await,
                Some((base + 1, t + 400)),
                "{}",
                codec.name()
            );
        }
        log.close().await.unwrap();
    });
}

/// Under `LogAppendTime` every record of a batch carries the append time, so the first record
/// of the (first) batch with the latest append time wins.
#[test]
fn log_append_time() {
    let cfg = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    with_log(cfg, |dir, cfg| async move {
        let log = PartitionLog::open(&dir, cfg).await.unwrap();
        let a = log
            .append(BytesMut::from(&ts_batch(&[1, 5, 3], 10)[..]))
            .await
            .unwrap();
        assert_eq!(max_ts(&log).await, Some((0, a.log_append_time)));
        glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
        let b = log
            .append(BytesMut::from(&ts_batch(&[9, 2], 10)[..]))
            .await
            .unwrap();
        assert!(b.log_append_time > a.log_append_time);
        assert_eq!(max_ts(&log).await, Some((3, b.log_append_time)));
        log.close().await.unwrap();
    });
}

/// ListOffsets by timestamp shares the record decoding: inside a compressed batch it answers
/// the first record at or after the timestamp, with that record's timestamp (Kafka's
/// `searchForTimestamp`), not the batch's first offset and max timestamp.
#[test]
fn by_timestamp_inside_compressed_batches() {
    with_log(LogConfig::default(), |dir, cfg| async move {
        let log = PartitionLog::open(&dir, cfg).await.unwrap();
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let t = 1_000 * log.log_end_offset();
            let b = compression::recompress_batch(
                &ts_batch(&[t + 100, t + 400, t + 250, t + 300], 200),
                codec,
            )
            .unwrap();
            let (base, _) = append(&log, &b).await;
            let by = |ts| log.offset_for_timestamp(ts);
            assert_eq!(by(t + 50).await.unwrap(), Some((base, t + 100)));
            assert_eq!(by(t + 200).await.unwrap(), Some((base + 1, t + 400)));
            assert_eq!(by(t + 401).await.unwrap(), None, "{}", codec.name());
        }
        // In offset order, not timestamp order: in the last batch (offsets 12..15, timestamps
        // +100 +400 +250 +300) the first record at or after +260 is offset 13 (+400), not the
        // closer +300 at offset 15.
        let t = 1_000 * 12;
        assert_eq!(
            log.offset_for_timestamp(t + 260).await.unwrap(),
            Some((13, t + 400))
        );
        log.close().await.unwrap();
    });
}
