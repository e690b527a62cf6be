//! Model-based property test of the partition log: random sequences of appends (random batch
//! sizes and record counts), rolls, reads at random offsets and timestamps, clean reopen, reopen
//! after truncating the active `.log` at a random byte, deleting or garbling index files, and
//! retention by size and time — each checked against a plain in-memory model.

mod storage_common;

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use proptest::prelude::*;
use proptest::sample::Index;
use ringbolt::protocol::record_batch::{self, SimpleRecord, build_batch};
use ringbolt::storage::{LogConfig, PartitionLog};
use storage_common::run;

#[derive(Debug, Clone)]
enum Op {
    /// Batches of one request: per batch, (record timestamps, value length).
    Append(Vec<(Vec<i64>, usize)>),
    Roll,
    Read(Index, u32),
    ReadTs(i64),
    Reopen,
    /// Close, truncate the newest `.log` at a random byte, reopen.
    TruncateTail(Index),
    /// Close, delete (kind 0/1) or garble (kind 2) an index file of a random segment, reopen.
    DamageIndex(u8, Index),
    RetainBytes(i64),
    RetainTime {
        now: i64,
        retention_ms: i64,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let batch = (prop::collection::vec(0i64..10_000, 1..6), 0usize..400);
    prop_oneof![
        10 => prop::collection::vec(batch, 1..4).prop_map(Op::Append),
        1 => Just(Op::Roll),
        5 => (any::<Index>(), 1u32..6000).prop_map(|(i, m)| Op::Read(i, m)),
        3 => (-5i64..10_500).prop_map(Op::ReadTs),
        1 => Just(Op::Reopen),
        1 => any::<Index>().prop_map(Op::TruncateTail),
        1 => (0u8..3, any::<Index>()).prop_map(|(k, i)| Op::DamageIndex(k, i)),
        1 => (0i64..8000).prop_map(Op::RetainBytes),
        1 => (0i64..20_000, 0i64..10_000).prop_map(|(now, r)| Op::RetainTime { now, retention_ms: r }),
    ]
}

#[derive(Debug, Clone)]
struct MBatch {
    base: i64,
    last: i64,
    /// Bytes as they must be on disk (base offset assigned, leader epoch 0).
    bytes: Vec<u8>,
    ts: Vec<i64>,
    max_ts: i64,
}

#[derive(Default)]
struct Model {
    batches: Vec<MBatch>,
    next: i64,
    log_start: i64,
}

impl Model {
    fn segment_of(bases: &[i64], offset: i64) -> i64 {
        *bases
            .iter()
            .rev()
            .find(|&&b| b <= offset)
            .expect("a segment")
    }

    /// ListOffsets MAX_TIMESTAMP: the first record (in log order) carrying the largest timestamp,
    /// as (offset, timestamp).
    fn offset_of_max_timestamp(&self) -> Option<(i64, i64)> {
        let max = self.batches.iter().map(|b| b.max_ts).max()?;
        let b = self.batches.iter().find(|b| b.max_ts == max)?;
        let i = b.ts.iter().position(|&t| t == max)?;
        Some((b.base + i as i64, max))
    }

    fn expected_read(&self, offset: i64, max_bytes: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for b in self.batches.iter().filter(|b| b.last >= offset) {
            if !out.is_empty() && out.len() + b.bytes.len() > max_bytes as usize {
                break;
            }
            out.extend_from_slice(&b.bytes);
            if out.len() >= max_bytes as usize {
                break;
            }
        }
        out
    }

    fn offset_for_timestamp(&self, ts: i64) -> Option<(i64, i64)> {
        for b in &self.batches {
            for (i, &t) in b.ts.iter().enumerate() {
                if t >= ts {
                    return Some((b.base + i as i64, t));
                }
            }
        }
        None
    }

    /// Kafka's two retention passes over sealed segments.
    fn retain(&mut self, bases: &[i64], now: Option<(i64, i64)>, bytes: Option<i64>) -> usize {
        let sealed = &bases[..bases.len() - 1];
        let seg_batches = |s: i64| {
            let end = bases.iter().find(|&&b| b > s).copied().unwrap_or(i64::MAX);
            self.batches
                .iter()
                .filter(move |b| b.base >= s && b.base < end)
        };
        let mut victims = Vec::new();
        if let Some((now, r)) = now {
            for &s in sealed {
                let max = seg_batches(s).map(|b| b.max_ts).max().unwrap_or(-1);
                if now - max > r {
                    victims.push(s);
                } else {
                    break;
                }
            }
        }
        if let Some(limit) = bytes {
            let mut total: i64 = self
                .batches
                .iter()
                .filter(|b| !victims.contains(&Self::segment_of(bases, b.base)))
                .map(|b| b.bytes.len() as i64)
                .sum();
            for &s in sealed.iter().skip(victims.len()) {
                let size: i64 = seg_batches(s).map(|b| b.bytes.len() as i64).sum();
                if total - size >= limit {
                    victims.push(s);
                    total -= size;
                } else {
                    break;
                }
            }
        }
        if !victims.is_empty() {
            self.batches
                .retain(|b| !victims.contains(&Self::segment_of(bases, b.base)));
            let first_remaining = bases
                .iter()
                .find(|b| !victims.contains(b))
                .copied()
                .unwrap();
            self.log_start = self.log_start.max(first_remaining);
        }
        victims.len()
    }
}

fn newest_log(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

async fn check(log: &PartitionLog, m: &Model, ctx: &str) {
    assert_eq!(log.high_watermark(), m.next, "high watermark after {ctx}");
    assert_eq!(log.log_start_offset(), m.log_start, "log start after {ctx}");
    assert_eq!(
        log.offset_of_max_timestamp().await.unwrap(),
        m.offset_of_max_timestamp(),
        "offset of max timestamp after {ctx}"
    );
}

fn run_ops(ops: Vec<Op>, cfg: LogConfig) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model-0");
    run(move || async move {
        let mut log = PartitionLog::open(&dir, cfg.clone()).await.unwrap();
        let mut m = Model::default();
        for (step, op) in ops.into_iter().enumerate() {
            let ctx = format!("step {step}: {op:?}");
            match op {
                Op::Append(batches) => {
                    let mut req = Vec::new();
                    let mut expected = Vec::new();
                    let mut off = m.next;
                    for (k, (ts, vlen)) in batches.iter().enumerate() {
                        let vals: Vec<Vec<u8>> = (0..ts.len())
                            .map(|i| vec![(off as u8).wrapping_add(i as u8 + k as u8); *vlen])
                            .collect();
                        let recs: Vec<SimpleRecord<'_>> = ts
                            .iter()
                            .zip(&vals)
                            .map(|(t, v)| (*t, None, v.as_slice()))
                            .collect();
                        let b = build_batch(0, &recs, -1, -1, -1);
                        req.extend_from_slice(&b);
                        let mut stored = b.clone();
                        record_batch::set_base_offset(&mut stored, off);
                        record_batch::set_partition_leader_epoch(&mut stored, 0);
                        let n = ts.len() as i64;
                        expected.push(MBatch {
                            base: off,
                            last: off + n - 1,
                            bytes: stored,
                            ts: ts.clone(),
                            max_ts: *ts.iter().max().unwrap(),
                        });
                        off += n;
                    }
                    let info = log.append(BytesMut::from(&req[..])).await.unwrap();
                    assert_eq!(info.base_offset, m.next, "{ctx}");
                    assert_eq!(info.last_offset, off - 1, "{ctx}");
                    m.batches.extend(expected);
                    m.next = off;
                    if step % 3 == 0 {
                        log.wait_durable(off - 1).await.unwrap();
                        assert!(log.durable_offset() >= off, "{ctx}");
                    }
                }
                Op::Roll => log.roll().await.unwrap(),
                Op::Read(i, max_bytes) => {
                    let span = (m.next - m.log_start + 1) as usize;
                    let offset = m.log_start + i.index(span) as i64;
                    let r = log.read(offset, max_bytes).await.unwrap();
                    assert_eq!(r.high_watermark, m.next, "{ctx}");
                    let got = r.read_to_vec().unwrap();
                    let want = m.expected_read(offset, max_bytes);
                    assert_eq!(
                        got.len(),
                        want.len(),
                        "read({offset}, {max_bytes}) length, {ctx}"
                    );
                    assert!(
                        got == want,
                        "read({offset}, {max_bytes}) bytes differ, {ctx}"
                    );
                    if m.log_start > 0 {
                        assert!(log.read(m.log_start - 1, 100).await.is_err(), "{ctx}");
                    }
                    assert!(log.read(m.next + 1, 100).await.is_err(), "{ctx}");
                }
                Op::ReadTs(ts) => {
                    let got = log.offset_for_timestamp(ts).await.unwrap();
                    assert_eq!(got, m.offset_for_timestamp(ts), "{ctx}");
                }
                Op::Reopen => {
                    log.close().await.unwrap();
                    log = PartitionLog::open(&dir, cfg.clone()).await.unwrap();
                }
                Op::TruncateTail(i) => {
                    log.close().await.unwrap();
                    let bases = log.segment_bases();
                    let newest_base = *bases.last().unwrap();
                    let path = newest_log(&dir);
                    let len = std::fs::metadata(&path).unwrap().len();
                    let cut = i.index(len as usize + 1) as u64;
                    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                    f.set_len(cut).unwrap();
                    drop(f);
                    // Keep batches that end at or before the cut in the newest segment.
                    let mut pos = 0u64;
                    m.batches.retain(|b| {
                        if b.base < newest_base {
                            return true;
                        }
                        pos += b.bytes.len() as u64;
                        pos <= cut
                    });
                    m.next = m
                        .batches
                        .last()
                        .map_or(newest_base, |b| b.last + 1)
                        .max(newest_base);
                    log = PartitionLog::open(&dir, cfg.clone()).await.unwrap();
                }
                Op::DamageIndex(kind, i) => {
                    log.close().await.unwrap();
                    let bases = log.segment_bases();
                    let base = bases[i.index(bases.len())];
                    let ext = if kind == 1 { "timeindex" } else { "index" };
                    let p = dir.join(format!("{base:020}.{ext}"));
                    if kind == 2 {
                        let mut b = std::fs::read(&p).unwrap_or_default();
                        b.extend_from_slice(&[0xff, 0x01, 0x02]);
                        std::fs::write(&p, b).unwrap();
                    } else {
                        let _ = std::fs::remove_file(&p);
                    }
                    log = PartitionLog::open(&dir, cfg.clone()).await.unwrap();
                }
                Op::RetainBytes(limit) => {
                    let bases = log.segment_bases();
                    let want = m.retain(&bases, None, Some(limit));
                    log.set_config(LogConfig {
                        retention_bytes: limit,
                        retention_ms: -1,
                        ..cfg.clone()
                    });
                    let got = log.enforce_retention(i64::MAX / 2).await.unwrap();
                    log.set_config(cfg.clone());
                    assert_eq!(got, want, "{ctx}");
                }
                Op::RetainTime { now, retention_ms } => {
                    let bases = log.segment_bases();
                    let want = m.retain(&bases, Some((now, retention_ms)), None);
                    log.set_config(LogConfig {
                        retention_ms,
                        retention_bytes: -1,
                        ..cfg.clone()
                    });
                    let got = log.enforce_retention(now).await.unwrap();
                    log.set_config(cfg.clone());
                    assert_eq!(got, want, "{ctx}");
                }
            }
            check(&log, &m, &ctx).await;
        }
        // Everything the model holds reads back in one go.
        let all = log
            .read(m.log_start, u32::MAX)
            .await
            .unwrap()
            .read_to_vec()
            .unwrap();
        let want: Vec<u8> = m.batches.iter().flat_map(|b| b.bytes.clone()).collect();
        assert!(all == want, "final full read differs");
        log.close().await.unwrap();
    });
}

fn config_strategy() -> impl Strategy<Value = LogConfig> {
    (1024u64..8192, 32u32..1024).prop_map(|(segment_bytes, index_interval_bytes)| LogConfig {
        segment_bytes,
        index_interval_bytes,
        retention_ms: -1,
        ..LogConfig::default()
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        max_shrink_iters: 200,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("tests/storage_model.proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_matches_model(cfg in config_strategy(), ops in prop::collection::vec(op_strategy(), 1..60)) {
        run_ops(ops, cfg);
    }
}
