//! Bad input is refused with the right Kafka error and leaves the log unchanged.

mod storage_common;

use bytes::BytesMut;
use ringbolt::protocol::record_batch::{
    CRC_OFFSET, MAGIC_OFFSET, RECORDS_COUNT_OFFSET, compute_crc,
};
use ringbolt::storage::{LogConfig, PartitionLog, StorageError};
use storage_common::{batch, run};

fn fix_crc(b: &mut [u8]) {
    let c = compute_crc(b);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn refused_batches_leave_the_log_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bad-0");
    run(move || async move {
        let cfg = LogConfig {
            max_message_bytes: 2000,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(&dir, cfg).await.unwrap();
        log.append(batch(2, 10, 100, 1)).await.unwrap();
        log.flush().await.unwrap();
        let log_file = dir.join("00000000000000000000.log");
        let before = std::fs::read(&log_file).unwrap();
        let good = batch(3, 10, 200, 2);

        let mut wrong_crc = good.clone();
        let last = wrong_crc.len() - 1;
        wrong_crc[last] ^= 0x55;

        let mut wrong_magic = good.clone();
        wrong_magic[MAGIC_OFFSET] = 1;

        let truncated = BytesMut::from(&good[..good.len() - 3]);
        let short_header = BytesMut::from(&good[..20]);

        let mut count_mismatch = good.clone();
        count_mismatch[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4]
            .copy_from_slice(&5i32.to_be_bytes());
        fix_crc(&mut count_mismatch);

        let mut negative_length = good.clone();
        negative_length[8..12].copy_from_slice(&(-7i32).to_be_bytes());

        let too_large = batch(1, 3000, 300, 3);

        let mut bad_timestamp = good.clone();
        bad_timestamp[ringbolt::protocol::record_batch::MAX_TIMESTAMP_OFFSET
            ..ringbolt::protocol::record_batch::MAX_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&(-5i64).to_be_bytes());
        fix_crc(&mut bad_timestamp);

        // A good batch followed by a bad one: nothing of the request is appended.
        let mut good_then_bad = good.clone();
        good_then_bad.extend_from_slice(&wrong_crc);

        let cases: Vec<(&str, BytesMut, i16)> = vec![
            ("wrong crc", wrong_crc, 2),
            ("wrong magic", wrong_magic, 2),
            ("truncated", truncated, 2),
            ("short header", short_header, 2),
            ("negative length", negative_length, 2),
            ("record count mismatch", count_mismatch, 87),
            ("too large", too_large, 10),
            ("invalid timestamp", bad_timestamp, 32),
            ("good then bad", good_then_bad, 2),
            ("empty", BytesMut::new(), 2),
        ];
        for (name, bytes, code) in cases {
            let err = log.append(bytes).await.expect_err(name);
            assert_eq!(err.error_code(), code, "{name}: {err}");
            match code {
                2 => assert!(matches!(err, StorageError::CorruptMessage(_)), "{name}"),
                87 => assert!(matches!(err, StorageError::InvalidRecord(_)), "{name}"),
                10 => assert!(
                    matches!(err, StorageError::MessageTooLarge { .. }),
                    "{name}"
                ),
                32 => assert!(matches!(err, StorageError::InvalidTimestamp(_)), "{name}"),
                _ => unreachable!(),
            }
            assert_eq!(log.high_watermark(), 2, "{name}");
        }
        log.flush().await.unwrap();
        assert_eq!(std::fs::read(&log_file).unwrap(), before);
        // And the log still works.
        let a = log.append(good).await.unwrap();
        assert_eq!(a.base_offset, 2);
        log.close().await.unwrap();
    });
}
