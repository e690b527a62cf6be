//! Byte-level layout: `.log`, `.index` and `.timeindex` exactly as Apache Kafka writes them.
//! The expected bytes are assembled by hand from Kafka's format description (record batch v2,
//! `OffsetIndex`, `TimeIndex`), not with the crate's own batch builder.

mod storage_common;

use bytes::BytesMut;
use ringbolt::storage::{LogConfig, PartitionLog};
use storage_common::run;

/// A v2 batch header + records section, written field by field. `base_offset` and
/// `partition_leader_epoch` are what the producer sends (0 and -1) unless overridden.
fn hand_batch(
    base_offset: i64,
    epoch: i32,
    last_offset_delta: i32,
    base_ts: i64,
    max_ts: i64,
    records: &[u8],
    count: i32,
) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&base_offset.to_be_bytes()); // baseOffset
    b.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes()); // batchLength
    b.extend_from_slice(&epoch.to_be_bytes()); // partitionLeaderEpoch
    b.push(2); // magic
    b.extend_from_slice(&[0, 0, 0, 0]); // crc, below
    b.extend_from_slice(&[0, 0]); // attributes: no compression, CreateTime
    b.extend_from_slice(&last_offset_delta.to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producerId
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producerEpoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // baseSequence
    b.extend_from_slice(&count.to_be_bytes()); // records count
    b.extend_from_slice(records);
    assert_eq!(b.len(), 61 + records.len());
    let crc = crc32c::crc32c(&b[21..]); // CRC-32C over attributes..end
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

// Record: length varint, attributes i8, timestampDelta varlong, offsetDelta varint,
// keyLength varint (-1 = null -> zigzag 0x01), value length, value, headers count.
// One record, value "hi": body 00 00 00 01 04 'h' 'i' 00 (8 bytes) -> length zigzag(8) = 0x10.
const REC_HI: [u8; 9] = [0x10, 0x00, 0x00, 0x00, 0x01, 0x04, b'h', b'i', 0x00];
// Value "ab", delta 0.
const REC_AB: [u8; 9] = [0x10, 0x00, 0x00, 0x00, 0x01, 0x04, b'a', b'b', 0x00];
// Value "cd", timestampDelta 500 (zigzag 1000 = 0xE8 0x07), offsetDelta 1 (zigzag 2):
// body 00 E8 07 02 01 04 'c' 'd' 00 (9 bytes) -> length zigzag(9) = 0x12.
const REC_CD: [u8; 10] = [0x12, 0x00, 0xE8, 0x07, 0x02, 0x01, 0x04, b'c', b'd', 0x00];

#[test]
fn log_index_and_timeindex_bytes_match_kafka() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout-0");
    let d2 = dir.clone();
    run(move || async move {
        let cfg = LogConfig {
            index_interval_bytes: 1,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(&d2, cfg).await.unwrap();
        // Producer-side batches: baseOffset 0, partitionLeaderEpoch -1.
        let b1 = hand_batch(0, -1, 0, 1000, 1000, &REC_HI, 1);
        let b2 = hand_batch(0, -1, 0, 900, 900, &REC_HI, 1);
        let mut recs3 = REC_AB.to_vec();
        recs3.extend_from_slice(&REC_CD);
        let b3 = hand_batch(0, -1, 1, 1500, 2000, &recs3, 2);
        assert_eq!((b1.len(), b2.len(), b3.len()), (70, 70, 80));
        for b in [&b1, &b2, &b3] {
            log.append(BytesMut::from(&b[..])).await.unwrap();
        }
        log.close().await.unwrap();
    });

    // .log: the same batches, with baseOffset assigned and partitionLeaderEpoch 0 (both outside
    // the CRC, so the CRC is the producer's).
    let mut expected = hand_batch(0, 0, 0, 1000, 1000, &REC_HI, 1);
    expected.extend(hand_batch(1, 0, 0, 900, 900, &REC_HI, 1));
    let mut recs3 = REC_AB.to_vec();
    recs3.extend_from_slice(&REC_CD);
    expected.extend(hand_batch(2, 0, 1, 1500, 2000, &recs3, 2));
    let log_bytes = std::fs::read(dir.join("00000000000000000000.log")).unwrap();
    assert_eq!(log_bytes, expected, ".log bytes");

    // .index: no entry for the first batch (bytesSinceLastIndexEntry starts at 0); then one per
    // batch since 70 > 1: (lastOffset 1 - base 0, position 70), (lastOffset 3, position 140).
    let index = std::fs::read(dir.join("00000000000000000000.index")).unwrap();
    assert_eq!(
        index,
        vec![0, 0, 0, 1, 0, 0, 0, 70, 0, 0, 0, 3, 0, 0, 0, 140],
        ".index bytes"
    );

    // .timeindex: with each index entry maybeAppend(maxTimestampSoFar, its offset):
    // after batch 2 the max is still 1000 @ offset 0; after batch 3 it is 2000 @ offset 3.
    // Closing appends (2000, 3) again only if it grew: it did not.
    let tindex = std::fs::read(dir.join("00000000000000000000.timeindex")).unwrap();
    let mut t = Vec::new();
    t.extend_from_slice(&1000i64.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    t.extend_from_slice(&2000i64.to_be_bytes());
    t.extend_from_slice(&3u32.to_be_bytes());
    assert_eq!(tindex, t, ".timeindex bytes");

    // The dump tool reads it back.
    let dump = ringbolt::storage::dump::dump_bytes(&log_bytes);
    assert_eq!(dump.lines().count(), 3);
    assert!(dump.lines().all(|l| l.ends_with("isValid: true")), "{dump}");
}

#[test]
fn roll_seals_indexes_and_names_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout-1");
    let d2 = dir.clone();
    run(move || async move {
        let cfg = LogConfig {
            index_interval_bytes: 1,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(&d2, cfg).await.unwrap();
        for _ in 0..3 {
            log.append(BytesMut::from(
                &hand_batch(0, -1, 0, 1000, 1000, &REC_HI, 1)[..],
            ))
            .await
            .unwrap();
        }
        log.roll().await.unwrap();
        log.append(BytesMut::from(
            &hand_batch(0, -1, 0, 5000, 5000, &REC_HI, 1)[..],
        ))
        .await
        .unwrap();
        log.close().await.unwrap();
    });
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "00000000000000000000.index",
            "00000000000000000000.log",
            "00000000000000000000.timeindex",
            "00000000000000000003.index",
            "00000000000000000003.log",
            "00000000000000000003.snapshot",
            "00000000000000000003.timeindex",
            // Producer-state snapshots (as Kafka writes them): at the roll and at close.
            "00000000000000000004.snapshot",
            // The leader epoch cache (`storage::leader_epoch`), as Kafka's.
            "leader-epoch-checkpoint",
        ]
    );
    // Sealed segment: log trimmed to its 3 batches (no direct-I/O padding), index trimmed to its
    // 2 entries, time index: maxTimestamp 1000 first reached at offset 0, recorded with the first
    // index entry; sealing adds nothing since it did not grow.
    assert_eq!(
        std::fs::metadata(dir.join("00000000000000000000.log"))
            .unwrap()
            .len(),
        210
    );
    assert_eq!(
        std::fs::read(dir.join("00000000000000000000.index")).unwrap(),
        vec![0, 0, 0, 1, 0, 0, 0, 70, 0, 0, 0, 2, 0, 0, 0, 140]
    );
    let mut t = 1000i64.to_be_bytes().to_vec();
    t.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(
        std::fs::read(dir.join("00000000000000000000.timeindex")).unwrap(),
        t
    );
    // New segment: one batch, base offset 3, no index entry; close adds the time entry
    // (5000, relative 0) as Kafka's close does.
    let seg2 = std::fs::read(dir.join("00000000000000000003.log")).unwrap();
    assert_eq!(seg2, hand_batch(3, 0, 0, 5000, 5000, &REC_HI, 1));
    assert!(
        std::fs::read(dir.join("00000000000000000003.index"))
            .unwrap()
            .is_empty()
    );
    let mut t = 5000i64.to_be_bytes().to_vec();
    t.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(
        std::fs::read(dir.join("00000000000000000003.timeindex")).unwrap(),
        t
    );
}

#[test]
fn dump_log_cli_prints_every_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("00000000000000000000.log");
    let mut bytes = hand_batch(0, 0, 0, 1000, 1000, &REC_HI, 1);
    let mut recs3 = REC_AB.to_vec();
    recs3.extend_from_slice(&REC_CD);
    let mut bad = hand_batch(1, 0, 1, 1500, 2000, &recs3, 2);
    bad[70] ^= 1; // flip a record byte: CRC no longer matches
    bytes.extend_from_slice(&bad);
    std::fs::write(&path, &bytes).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringbolt"))
        .arg("dump-log")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("baseOffset"))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("baseOffset: 0 lastOffset: 0 count: 1 position: 0 size: 70"));
    assert!(lines[0].contains("firstTimestamp: 1000 maxTimestamp: 1000"));
    assert!(lines[0].contains("producerId: -1 producerEpoch: -1 baseSequence: -1"));
    assert!(lines[0].contains("compresscodec: none"));
    assert!(lines[0].ends_with("isValid: true"));
    assert!(lines[1].starts_with("baseOffset: 1 lastOffset: 2 count: 2 position: 70 size: 80"));
    assert!(lines[1].ends_with("isValid: false"));
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_ringbolt"))
        .args(["dump-log", "/nonexistent/x.log"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
}
