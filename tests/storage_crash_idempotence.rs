//! Producer state across kill -9 (20 rounds): a child process (this test binary re-executed) appends an
//! idempotent producer's batches one at a time, each awaited durable, and prints them. The parent
//! kill -9s it at random moments; after each kill it reopens the log and checks that a retry of
//! the last batch reported durable is answered as a duplicate with its original offsets (nothing
//! written) and that a sequence gap is refused — i.e. the rebuilt state (roll snapshots plus a
//! replay of the batch headers after them) matches the log.

mod storage_common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringbolt::protocol::record_batch::{SimpleRecord, build_batch, validate_all};
use ringbolt::storage::{LogConfig, PartitionLog, StorageError};
use storage_common::run;

const DIR_ENV: &str = "RINGBOLT_IDEM_CRASH_CHILD_DIR";
const PID: i64 = 42;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 * 1024,
        ..LogConfig::default()
    }
}

fn idem(seq: i32, n: usize) -> BytesMut {
    let value = [0x61u8; 700];
    let recs: Vec<SimpleRecord<'_>> = (0..n).map(|_| (1_000, None, &value[..])).collect();
    BytesMut::from(&build_batch(0, &recs, PID, 0, seq)[..])
}

/// The next sequence of producer `PID` according to the log's batches.
async fn next_seq(log: &PartitionLog) -> i32 {
    let all = log.read(0, u32::MAX).await.unwrap().read_to_vec().unwrap();
    if all.is_empty() {
        return 0;
    }
    validate_all(&all)
        .unwrap()
        .iter()
        .filter(|h| h.producer_id == PID)
        .map(|h| h.base_sequence + h.last_offset_delta + 1)
        .max()
        .unwrap_or(0)
}

/// Runs only when re-executed by the parent (a no-op in a normal test run).
#[test]
fn idem_crash_child() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    run(move || async move {
        let log = PartitionLog::open(&dir, config()).await.unwrap();
        let mut seq = next_seq(&log).await;
        let mut i = 0usize;
        loop {
            let n = 1 + i % 7;
            let a = log.append(idem(seq, n)).await.unwrap();
            log.wait_durable(a.last_offset).await.unwrap();
            let mut out = std::io::stdout().lock();
            writeln!(out, "D {} {} {seq} {n}", a.base_offset, a.last_offset).unwrap();
            out.flush().unwrap();
            seq += n as i32;
            i += 1;
        }
    });
}

#[test]
fn kill9_keeps_producer_state() {
    if std::env::var(DIR_ENV).is_ok() {
        return;
    }
    storage_common::init_tracing();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idem-0");
    let exe = std::env::current_exe().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut kills = 0u64;
    while kills < 20 && Instant::now() < deadline {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "idem_crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let up_by = Instant::now() + Duration::from_secs(20);
        while let Ok(l) = rx.recv_timeout(up_by.saturating_duration_since(Instant::now())) {
            if l.starts_with("D ") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50 + (kills * 37) % 250));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        kills += 1;
        let last: Vec<i64> = rx
            .try_iter()
            .filter(|l| l.starts_with("D "))
            .last()
            .map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .map(|f| f.parse().unwrap())
                    .collect()
            })
            .expect("a durable batch reported after the first");
        let (base, lastoff, seq, n) = (last[0], last[1], last[2] as i32, last[3] as usize);
        let d2 = dir.clone();
        run(move || async move {
            let log = PartitionLog::open(&d2, config()).await.unwrap();
            let hw = log.high_watermark();
            assert!(lastoff < hw, "durable offset {lastoff} lost (hw {hw})");
            // The retry of the last acknowledged batch: same offsets, nothing written.
            let a = log.append(idem(seq, n)).await.unwrap();
            assert_eq!(
                (a.base_offset, a.last_offset),
                (base, lastoff),
                "round {kills}"
            );
            assert_eq!(log.high_watermark(), hw);
            // A gap after the producer's real end is refused.
            let next = next_seq(&log).await;
            assert!(matches!(
                log.append(idem(next + 3, 1)).await,
                Err(StorageError::OutOfOrderSequence(_))
            ));
            log.close().await.unwrap();
        });
    }
    assert!(kills >= 5, "only {kills} kill rounds in a minute");
}
