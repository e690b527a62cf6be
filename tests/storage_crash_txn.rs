//! Transactions across kill -9 (20 rounds): a child process (this test binary re-executed) runs
//! transactions of three producers interleaved on one partition — data batches, then a COMMIT
//! or ABORT marker awaited durable — and prints each completed one. The parent kill -9s it at
//! random moments, reopens the log and checks the recovered transaction state against the log
//! itself: the aborted-transaction index (`aborted_transactions`, the `.txnindex` files), the
//! ongoing transactions and the LSO all match a from-scratch walk of the batches, no durable
//! marker is lost, and a read_committed reader applying the index sees no aborted record and
//! every committed one.

mod storage_common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringbolt::protocol::record_batch::{
    ATTR_TRANSACTIONAL, ATTRIBUTES_OFFSET, CRC_OFFSET, build_batch, compute_crc,
    validate_stored_batch,
};
use ringbolt::storage::txn::{TxnMarker, decode_marker};
use ringbolt::storage::{LogConfig, PartitionLog};
use storage_common::run;

const DIR_ENV: &str = "RINGBOLT_TXN_CRASH_CHILD_DIR";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        ..LogConfig::default()
    }
}

fn txn_batch(pid: i64, seq: i32, n: usize, tag: u8) -> BytesMut {
    let value = [tag; 300];
    let recs: Vec<_> = (0..n).map(|_| (1_000i64, None, &value[..])).collect();
    let mut b = BytesMut::from(&build_batch(0, &recs, pid, 0, seq)[..]);
    let a =
        i16::from_be_bytes([b[ATTRIBUTES_OFFSET], b[ATTRIBUTES_OFFSET + 1]]) | ATTR_TRANSACTIONAL;
    b[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&a.to_be_bytes());
    let crc = compute_crc(&b);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// What a walk of the whole log says: aborted (pid, first offset, marker offset), ongoing
/// (pid → first offset), committed-record offsets and aborted-record offsets, next sequence per
/// producer.
#[derive(Default, Debug)]
struct Truth {
    aborted: Vec<(i64, i64, i64)>,
    ongoing: BTreeMap<i64, i64>,
    /// (producer id, base offset) of committed and of aborted data batches.
    committed: Vec<(i64, i64)>,
    aborted_data: Vec<(i64, i64)>,
    next_seq: HashMap<i64, i32>,
    markers: HashSet<i64>,
}

async fn truth(log: &PartitionLog) -> Truth {
    let bytes = log.read(0, u32::MAX).await.unwrap().read_to_vec().unwrap();
    let mut t = Truth::default();
    let mut pending: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = validate_stored_batch(&bytes[pos..]).unwrap();
        let b = &bytes[pos..pos + h.total_len()];
        if h.is_control() {
            let (commit, _) = decode_marker(b).unwrap();
            t.markers.insert(h.base_offset);
            if let Some(first) = t.ongoing.remove(&h.producer_id) {
                let data = pending.remove(&h.producer_id).unwrap_or_default();
                if commit {
                    t.committed.extend(data);
                } else {
                    t.aborted.push((h.producer_id, first, h.base_offset));
                    t.aborted_data.extend(data);
                }
            }
        } else {
            t.ongoing.entry(h.producer_id).or_insert(h.base_offset);
            pending
                .entry(h.producer_id)
                .or_default()
                .push((h.producer_id, h.base_offset));
            t.next_seq
                .insert(h.producer_id, h.base_sequence + h.last_offset_delta + 1);
        }
        pos += h.total_len();
    }
    t
}

/// Runs only when re-executed by the parent (a no-op in a normal test run).
#[test]
fn txn_crash_child() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    run(move || async move {
        let log = PartitionLog::open(&dir, config()).await.unwrap();
        let t = truth(&log).await;
        let mut seq: HashMap<i64, i32> = t.next_seq.clone();
        // Finish what the last run left open (as the coordinator would), then go on.
        for pid in t.ongoing.keys() {
            let m = TxnMarker {
                producer_id: *pid,
                producer_epoch: 0,
                commit: false,
                coordinator_epoch: 0,
            };
            let a = log.append_marker(m).unwrap();
            log.wait_durable(a.last_offset).await.unwrap();
        }
        let mut i: u64 = 0;
        loop {
            for pid in 1..=3i64 {
                let s = seq.entry(pid).or_insert(0);
                let n = 1 + ((i as usize + pid as usize) % 4);
                log.append(txn_batch(pid, *s, n, (i % 200) as u8))
                    .await
                    .unwrap();
                *s += n as i32;
            }
            // One producer ends its transaction per round; the others keep theirs open.
            let pid = 1 + (i % 3) as i64;
            let commit = (i * 7 + 3) % 5 < 3;
            let m = TxnMarker {
                producer_id: pid,
                producer_epoch: 0,
                commit,
                coordinator_epoch: 0,
            };
            let a = log.append_marker(m).unwrap();
            log.wait_durable(a.last_offset).await.unwrap();
            let mut out = std::io::stdout().lock();
            writeln!(out, "M {} {pid} {}", a.last_offset, commit as u8).unwrap();
            out.flush().unwrap();
            i += 1;
        }
    });
}

#[test]
fn kill9_under_transactional_load_keeps_index_and_lso_consistent() {
    if std::env::var(DIR_ENV).is_ok() {
        return;
    }
    storage_common::init_tracing();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("txn-0");
    let exe = std::env::current_exe().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut kills = 0u64;
    while kills < 20 && Instant::now() < deadline {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "txn_crash_child",
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
            if l.starts_with("M ") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50 + (kills * 37) % 300));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        kills += 1;
        let durable: Vec<i64> = rx
            .try_iter()
            .filter(|l| l.starts_with("M "))
            .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
            .collect();
        let d2 = dir.clone();
        run(move || async move {
            let log = PartitionLog::open(&d2, config()).await.unwrap();
            let hw = log.high_watermark();
            let t = truth(&log).await;
            for m in &durable {
                assert!(t.markers.contains(m), "durable marker {m} lost (hw {hw})");
            }
            // The index, the ongoing transactions and the LSO match the log.
            let want: Vec<(i64, i64)> = t.aborted.iter().map(|&(p, f, _)| (p, f)).collect();
            let got: Vec<(i64, i64)> = log
                .aborted_transactions(0, hw)
                .iter()
                .map(|a| (a.producer_id, a.first_offset))
                .collect();
            assert_eq!(got, want, "round {kills}");
            let ongoing: BTreeMap<i64, i64> = log.ongoing_transactions().into_iter().collect();
            assert_eq!(ongoing, t.ongoing, "round {kills}");
            let lso = t.ongoing.values().copied().min().unwrap_or(hw);
            assert_eq!(log.last_stable_offset(), lso, "round {kills}");
            // A read_committed reader: data below the LSO, minus the aborted transactions
            // the index reports for the range (per producer, from its first offset to its
            // marker), holds every committed record below the LSO and no aborted one.
            let aborted = log.aborted_transactions(0, lso);
            let entries: Vec<(i64, i64, i64)> = t
                .aborted
                .iter()
                .filter(|(p, f, _)| {
                    aborted
                        .iter()
                        .any(|a| a.producer_id == *p && a.first_offset == *f)
                })
                .copied()
                .collect();
            // What Kafka's consumer skips: a batch of a producer inside one of its aborted
            // transactions (from the first offset the index gives up to its ABORT marker).
            let skipped =
                |pid: i64, o: i64| entries.iter().any(|&(p, f, m)| p == pid && o >= f && o < m);
            let mut seen = 0;
            for &(pid, b) in t.aborted_data.iter().filter(|(_, b)| *b < lso) {
                assert!(
                    skipped(pid, b),
                    "aborted batch at {b} would reach a read_committed reader"
                );
                seen += 1;
            }
            for &(pid, b) in t.committed.iter().filter(|(_, b)| *b < lso) {
                assert!(!skipped(pid, b), "committed batch at {b} hidden");
                seen += 1;
            }
            assert!(seen > 0);
            log.close().await.unwrap();
        });
    }
    assert!(kills >= 5, "only {kills} kill rounds");
}
