//! Many concurrent appenders with small and odd-sized batches, so coalesced writes end mid-block
//! and mid-batch (the partial tail block is rewritten by the next write), the background zero-fill
//! runs ahead of syncing partitions, and rolls drain the queue: every batch must read back
//! byte-identical at contiguous offsets, before and after a close/reopen. (Written for a
//! multi-write pipeline, branch `pipeline`, that was not merged: no measurable gain on this disk.)

mod storage_common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use ringbolt::protocol::record_batch::{set_base_offset, set_partition_leader_epoch, validate_all};
use ringbolt::storage::{LogConfig, PartitionLog};
use storage_common::{batch, run};

const WRITERS: usize = 24;
const PER_WRITER: usize = 80;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Appends from `WRITERS` tasks (half await each append, half keep up to 3 in flight with
/// `append_assign`) plus one bulk, some asking for durability; returns base offset -> expected
/// bytes.
async fn load(log: &Rc<PartitionLog>, seed: u64, durable: bool) -> BTreeMap<i64, Vec<u8>> {
    let expected = Rc::new(RefCell::new(BTreeMap::new()));
    let mut tasks = Vec::new();
    // A bulk of ~6 MiB queued at once: more than one coalesced burst, so bursts are split into
    // concurrent pieces and cut at a block boundary with the rest carried into the next one.
    {
        let log = log.clone();
        let expected = expected.clone();
        tasks.push(glommio::spawn_local(async move {
            let mut rng = Rng(seed.rotate_left(7) | 1);
            let mut last = -1;
            for i in 0..220 {
                let b = batch(
                    8 + (rng.next() % 8) as usize,
                    2_000 + (rng.next() % 1_000) as usize,
                    5_000 + i,
                    i as u8,
                );
                let mut want = b.to_vec();
                let info = log.append_assign(b).unwrap();
                set_base_offset(&mut want, info.base_offset);
                set_partition_leader_epoch(&mut want, 0);
                expected.borrow_mut().insert(info.base_offset, want);
                last = info.last_offset;
            }
            log.wait_written(last).await.unwrap();
        }));
    }
    for w in 0..WRITERS {
        let log = log.clone();
        let expected = expected.clone();
        tasks.push(glommio::spawn_local(async move {
            let mut rng = Rng(seed ^ (w as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut in_flight = std::collections::VecDeque::new();
            for i in 0..PER_WRITER {
                // 1..24 records of 0..2999 bytes: batches from ~70 bytes to tens of KiB.
                let n = 1 + (rng.next() % 24) as usize;
                let len = (rng.next() % 3000) as usize;
                let b = batch(n, len, 1_000 + i as i64, (w * 7 + i) as u8);
                let mut want = b.to_vec();
                let info = if w % 2 == 0 {
                    log.append(b).await.unwrap()
                } else {
                    let info = log.append_assign(b).unwrap();
                    in_flight.push_back(info.last_offset);
                    if in_flight.len() > 3 {
                        log.wait_written(in_flight.pop_front().unwrap())
                            .await
                            .unwrap();
                    }
                    info
                };
                assert_eq!(info.last_offset - info.base_offset + 1, n as i64);
                set_base_offset(&mut want, info.base_offset);
                set_partition_leader_epoch(&mut want, 0);
                expected.borrow_mut().insert(info.base_offset, want);
                if durable && rng.next().is_multiple_of(8) {
                    log.wait_durable(info.last_offset).await.unwrap();
                }
                if rng.next().is_multiple_of(16) {
                    glommio::yield_if_needed().await;
                }
            }
            if let Some(last) = in_flight.pop_back() {
                log.wait_written(last).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await;
    }
    Rc::try_unwrap(expected).unwrap().into_inner()
}

/// Reads the whole log and checks it is exactly `expected`, batch after batch.
async fn check(log: &PartitionLog, expected: &BTreeMap<i64, Vec<u8>>) {
    let hw = log.high_watermark();
    let mut next = log.log_start_offset();
    let mut seen = 0;
    while next < hw {
        let r = log.read(next, 256 << 10).await.unwrap();
        let bytes = r.read_to_vec().unwrap();
        let headers = validate_all(&bytes).expect("whole valid batches");
        assert!(!headers.is_empty(), "no batch at {next} below hw {hw}");
        let mut pos = 0;
        for h in headers {
            assert_eq!(h.base_offset, next, "offsets not contiguous");
            let got = &bytes[pos..pos + h.total_len()];
            let want = expected.get(&next).expect("a batch we appended");
            assert!(got == &want[..], "batch at {next} differs");
            pos += h.total_len();
            next = h.last_offset() + 1;
            seen += 1;
        }
    }
    assert_eq!(next, hw);
    assert_eq!(seen, expected.len());
}

fn round_trip(config: LogConfig, seed: u64, durable: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p-0");
    run(move || async move {
        let log = Rc::new(PartitionLog::open(&dir, config.clone()).await.unwrap());
        let mut expected = load(&log, seed, durable).await;
        check(&log, &expected).await;
        // A second wave after the first completed, then close and reopen.
        expected.extend(load(&log, seed.rotate_left(17), durable).await);
        check(&log, &expected).await;
        let rolls = log.segment_count();
        log.close().await.unwrap();
        drop(log);
        let log = Rc::new(PartitionLog::open(&dir, config).await.unwrap());
        assert_eq!(log.segment_count(), rolls);
        check(&log, &expected).await;
        // And it takes appends again.
        expected.extend(load(&log, seed ^ 0x55, durable).await);
        check(&log, &expected).await;
        log.close().await.unwrap();
    });
}

/// Partitions that sync: several writes in flight, rolls every ~1 MiB drain them.
#[test]
fn concurrent_odd_batches_syncing_partition() {
    storage_common::init_tracing();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        flush_messages: 5_000,
        ..LogConfig::default()
    };
    round_trip(config, 0x1234_5678_9abc_def1, true);
}

/// Durability asked for from the start, one big segment: long pipelines, no roll.
#[test]
fn concurrent_odd_batches_one_segment() {
    let config = LogConfig {
        flush_ms: 5,
        ..LogConfig::default()
    };
    round_trip(config, 0x0bad_cafe_f00d_7777, true);
}

/// Partitions that never sync (one write in flight): same checks.
#[test]
fn concurrent_odd_batches_nosync_partition() {
    let config = LogConfig {
        segment_bytes: 2 << 20,
        ..LogConfig::default()
    };
    round_trip(config, 0x7777_1111_2222_3333, false);
}
