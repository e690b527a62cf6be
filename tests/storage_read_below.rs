//! `PartitionLog::read_below`, the read under a read_committed fetch: whole batches whose last
//! offset is below the bound (a batch straddling it is left out), the offset just past the data
//! (the upper end of the range whose aborted transactions go with it), across segments and byte
//! limits; reading between the bound and the high watermark is empty, not an error.

mod storage_common;

use ringbolt::protocol::record_batch::validate_all;
use ringbolt::storage::{LogConfig, PartitionLog, StorageError};
use storage_common::{batch, run};

/// (base offsets of the batches read, offset past them)
async fn below(log: &PartitionLog, offset: i64, max_bytes: u32, upper: i64) -> (Vec<i64>, i64) {
    let (r, next) = log.read_below(offset, max_bytes, upper).await.unwrap();
    let bytes = r.read_to_vec().unwrap();
    if bytes.is_empty() {
        return (Vec::new(), next);
    }
    let bases = validate_all(&bytes)
        .unwrap()
        .iter()
        .map(|h| h.base_offset)
        .collect();
    (bases, next)
}

#[test]
fn cuts_at_the_bound_whole_batches_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        // Small segments and a dense index: several batches per segment, index entries between.
        let cfg = LogConfig {
            segment_bytes: 600,
            index_interval_bytes: 1,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(&dir, cfg).await.unwrap();
        // Batches of 3 records: [0,2] [3,5] [6,8] ... [27,29].
        for i in 0..10u8 {
            log.append(batch(3, 40, 1000 + i64::from(i) * 10, i))
                .await
                .unwrap();
        }
        assert_eq!(log.high_watermark(), 30);
        let all: Vec<i64> = (0..10).map(|i| i * 3).collect();

        // Unbounded (the high watermark): everything, and the offset past it.
        assert_eq!(below(&log, 0, 1 << 20, 30).await, (all.clone(), 30));
        assert_eq!(below(&log, 0, 1 << 20, i64::MAX).await, (all.clone(), 30));
        // At a batch boundary: the batches before it.
        assert_eq!(below(&log, 0, 1 << 20, 9).await, (vec![0, 3, 6], 9));
        // Inside a batch: that batch is left out, and the data ends before it.
        assert_eq!(below(&log, 0, 1 << 20, 10).await, (vec![0, 3, 6], 9));
        assert_eq!(below(&log, 0, 1 << 20, 11).await, (vec![0, 3, 6], 9));
        // From inside a batch, as a consumer resuming mid-batch.
        assert_eq!(below(&log, 4, 1 << 20, 12).await, (vec![3, 6, 9], 12));
        // Every bound against a plain read: the same batches, cut before the one holding it.
        for upper in 0..=30 {
            let want: Vec<i64> = all.iter().copied().filter(|b| b + 2 < upper).collect();
            let next = want.last().map_or(0, |b| b + 3);
            assert_eq!(
                below(&log, 0, 1 << 20, upper).await,
                (want, next),
                "{upper}"
            );
        }
        // At or past the bound, below the high watermark: nothing, and no error.
        assert_eq!(below(&log, 9, 1 << 20, 9).await, (vec![], 9));
        assert_eq!(below(&log, 12, 1 << 20, 9).await, (vec![], 12));
        assert_eq!(below(&log, 30, 1 << 20, 30).await, (vec![], 30));
        // Past the high watermark: out of range, as a plain read.
        assert!(matches!(
            log.read_below(31, 1 << 20, 30).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));

        // Byte limits still apply, and the offset past the data is where they cut.
        let one = log.read(0, 1).await.unwrap().first_batch_len;
        assert_eq!(below(&log, 0, 1, 30).await, (vec![0], 3));
        assert_eq!(below(&log, 0, 2 * one, 30).await, (vec![0, 3], 6));
        assert_eq!(below(&log, 0, 2 * one, 4).await, (vec![0], 3));
        // The plain read is unchanged by all this.
        let r = log.read(0, 1 << 20).await.unwrap();
        assert_eq!(validate_all(&r.read_to_vec().unwrap()).unwrap().len(), 10);
    });
}
