//! Consumer-side verification: counts, order per partition, no gaps, no duplicates.
//!
//! Every message carries (run id, producer id, sequence per producer and partition). A partition is
//! read in offset order, so for each (partition, producer) the sequences must be exactly 0, 1, 2, …
//! A sequence above the expected one is a gap (messages lost or reordered away), one below is a
//! duplicate (or a reorder). At the end the last sequence seen must match the count the producer
//! sent, otherwise the tail is missing. The verifier keeps one small map entry per
//! (partition, producer): no per-message allocation.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use crate::message::MessageHeader;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Sequences `expected..got` never arrived before `got`.
    Gap {
        partition: i32,
        producer: u32,
        offset: i64,
        expected: u64,
        got: u64,
    },
    /// `got..got + messages` arrive after `expected - 1`: already seen (duplicates) or late
    /// (reordered; then a `Gap` at their expected place comes first). Consecutive such messages are
    /// one violation.
    Duplicate {
        partition: i32,
        producer: u32,
        offset: i64,
        expected: u64,
        got: u64,
        messages: u64,
    },
    /// The producer sent `sent` messages; only `seen` arrived in order.
    Missing {
        partition: i32,
        producer: u32,
        seen: u64,
        sent: u64,
    },
    /// More messages than the producer sent.
    Extra {
        partition: i32,
        producer: u32,
        seen: u64,
        sent: u64,
    },
    /// A record of this run's range without a loadgen header.
    Malformed { partition: i32, offset: i64 },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Gap {
                partition,
                producer,
                offset,
                expected,
                got,
            } => write!(
                f,
                "gap: partition {partition} producer {producer} at offset {offset}: expected seq {expected}, got {got}"
            ),
            Violation::Duplicate {
                partition,
                producer,
                offset,
                expected,
                got,
                messages,
            } => write!(
                f,
                "duplicate/reorder: partition {partition} producer {producer} at offset {offset}: expected seq {expected}, got {got}..={} ({messages} messages)",
                got + messages - 1
            ),
            Violation::Missing {
                partition,
                producer,
                seen,
                sent,
            } => write!(
                f,
                "missing: partition {partition} producer {producer}: {seen} of {sent} messages consumed"
            ),
            Violation::Extra {
                partition,
                producer,
                seen,
                sent,
            } => write!(
                f,
                "extra: partition {partition} producer {producer}: {seen} consumed, {sent} sent"
            ),
            Violation::Malformed { partition, offset } => {
                write!(
                    f,
                    "malformed: partition {partition} offset {offset}: no loadgen header"
                )
            }
        }
    }
}

/// Multiply-rotate hasher (FxHash's scheme) for the (partition, producer) keys looked up once per
/// consumed record. std's default SipHash is built to resist hash flooding, which these keys
/// (ours, a handful per partition) do not need; it stood out in `perf` of the consumer threads
/// (measured in `docs/perf/loadgen.md`).
#[derive(Clone, Copy, Default)]
pub struct KeyHasher(u64);

impl KeyHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.add(u64::from(b));
        }
    }
    #[inline]
    fn write_i32(&mut self, i: i32) {
        self.add(u64::from(i as u32));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type KeyMap<V> = HashMap<(i32, u32), V, BuildHasherDefault<KeyHasher>>;

/// Keeps at most this many violations verbatim; all are counted.
const MAX_KEPT: usize = 50;

#[derive(Debug)]
pub struct Verifier {
    run_id: Option<u32>,
    /// (partition, producer) → next expected sequence.
    next: KeyMap<u64>,
    /// (partition, producer) → (next sequence continuing the current duplicate run, its index in
    /// `violations`; out of range when the violation was not kept).
    dup_runs: KeyMap<(u64, usize)>,
    pub checked: u64,
    /// Messages of other runs or other writers (ignored).
    pub foreign: u64,
    pub violation_count: u64,
    pub violations: Vec<Violation>,
}

impl Verifier {
    /// `run_id`: verify messages of this run strictly from sequence 0 and flag records without a
    /// loadgen header. `None` (consume mode): verify every loadgen message found, starting from the
    /// first sequence seen per (run, producer, partition); non-loadgen records are ignored.
    pub fn new(run_id: Option<u32>) -> Self {
        Verifier {
            run_id,
            next: KeyMap::default(),
            dup_runs: KeyMap::default(),
            checked: 0,
            foreign: 0,
            violation_count: 0,
            violations: Vec::new(),
        }
    }

    fn violate(&mut self, v: Violation) {
        self.violation_count += 1;
        if self.violations.len() < MAX_KEPT {
            self.violations.push(v);
        }
    }

    /// Checks one consumed record; returns its header when it belongs to the verified run.
    #[inline]
    pub fn check(
        &mut self,
        partition: i32,
        offset: i64,
        value: Option<&[u8]>,
    ) -> Option<MessageHeader> {
        self.check_in(partition, offset, value, true)
    }

    /// Like [`check`](Self::check); `in_run` = the offset lies in the verified run's range, where a
    /// record without a loadgen header is a violation (before it, older data is merely foreign).
    #[inline]
    pub fn check_in(
        &mut self,
        partition: i32,
        offset: i64,
        value: Option<&[u8]>,
        in_run: bool,
    ) -> Option<MessageHeader> {
        let Some(h) = value.and_then(MessageHeader::decode) else {
            if self.run_id.is_some() && in_run {
                self.violate(Violation::Malformed { partition, offset });
            } else {
                self.foreign += 1;
            }
            return None;
        };
        let producer_key = match self.run_id {
            Some(r) if r != h.run_id => {
                self.foreign += 1;
                return None;
            }
            Some(_) => h.producer,
            // Without a run to follow, fold the run id into the key so runs don't mix.
            None => h.producer ^ h.run_id.rotate_left(16),
        };
        self.checked += 1;
        let strict = self.run_id.is_some();
        let next = self
            .next
            .entry((partition, producer_key))
            .or_insert(if strict { 0 } else { h.seq });
        let expected = *next;
        if h.seq == expected {
            *next += 1;
            if !self.dup_runs.is_empty() {
                self.dup_runs.remove(&(partition, producer_key));
            }
        } else if h.seq > expected {
            *next = h.seq + 1;
            if !self.dup_runs.is_empty() {
                self.dup_runs.remove(&(partition, producer_key));
            }
            self.violate(Violation::Gap {
                partition,
                producer: h.producer,
                offset,
                expected,
                got: h.seq,
            });
        } else {
            let key = (partition, producer_key);
            match self.dup_runs.get(&key) {
                Some(&(run_next, idx)) if run_next == h.seq => {
                    if let Some(Violation::Duplicate { messages, .. }) =
                        self.violations.get_mut(idx)
                    {
                        *messages += 1;
                    }
                    self.dup_runs.insert(key, (h.seq + 1, idx));
                }
                _ => {
                    let idx = self.violations.len();
                    self.violate(Violation::Duplicate {
                        partition,
                        producer: h.producer,
                        offset,
                        expected,
                        got: h.seq,
                        messages: 1,
                    });
                    self.dup_runs.insert(key, (h.seq + 1, idx));
                }
            }
        }
        Some(h)
    }

    /// Compares what was consumed with what producers sent: `sent[(partition, producer)]` = count.
    pub fn finish(&mut self, sent: &HashMap<(i32, u32), u64>) {
        let mut keys: BTreeSet<(i32, u32)> = BTreeSet::new();
        keys.extend(sent.keys().copied());
        keys.extend(self.next.keys().copied());
        for &(partition, producer) in &keys {
            let seen = self.next.get(&(partition, producer)).copied().unwrap_or(0);
            let sent_n = sent.get(&(partition, producer)).copied().unwrap_or(0);
            if seen < sent_n {
                self.violate(Violation::Missing {
                    partition,
                    producer,
                    seen,
                    sent: sent_n,
                });
            } else if seen > sent_n {
                self.violate(Violation::Extra {
                    partition,
                    producer,
                    seen,
                    sent: sent_n,
                });
            }
        }
    }

    /// Folds another verifier (over disjoint partitions) into this one.
    pub fn merge(&mut self, other: Verifier) {
        self.dup_runs.clear();
        self.next.extend(other.next);
        self.checked += other.checked;
        self.foreign += other.foreign;
        self.violation_count += other.violation_count;
        for v in other.violations {
            if self.violations.len() < MAX_KEPT {
                self.violations.push(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(run: u32, producer: u32, seq: u64) -> Vec<u8> {
        let mut v = MessageHeader {
            run_id: run,
            scheduled_ns: 1,
            producer,
            seq,
        }
        .encode()
        .to_vec();
        v.extend_from_slice(&[0; 8]);
        v
    }

    fn run(seqs: &[(i32, u32, u64)], sent: &[((i32, u32), u64)]) -> Verifier {
        let mut v = Verifier::new(Some(1));
        for (i, &(p, prod, s)) in seqs.iter().enumerate() {
            v.check(p, i as i64, Some(&msg(1, prod, s)));
        }
        v.finish(&sent.iter().copied().collect());
        v
    }

    #[test]
    fn clean_interleaved_run_passes() {
        let v = run(
            &[(0, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 0), (0, 1, 1)],
            &[((0, 0), 2), ((0, 1), 2), ((1, 0), 1)],
        );
        assert_eq!(v.violation_count, 0, "{:?}", v.violations);
        assert_eq!(v.checked, 5);
    }

    #[test]
    fn gap_is_caught() {
        let v = run(&[(0, 0, 0), (0, 0, 2)], &[((0, 0), 3)]);
        assert_eq!(v.violation_count, 1);
        assert!(matches!(
            v.violations[0],
            Violation::Gap {
                expected: 1,
                got: 2,
                offset: 1,
                ..
            }
        ));
    }

    #[test]
    fn duplicate_is_caught() {
        let v = run(
            &[(0, 0, 0), (0, 0, 1), (0, 0, 1), (0, 0, 2)],
            &[((0, 0), 3)],
        );
        assert_eq!(v.violation_count, 1);
        assert!(matches!(
            v.violations[0],
            Violation::Duplicate {
                expected: 2,
                got: 1,
                ..
            }
        ));
    }

    #[test]
    fn a_late_batch_is_one_gap_and_one_duplicate_run() {
        // Batch 3..6 stored before batch 0..3 (two pipelined requests applied in reverse order).
        let v = run(
            &[
                (0, 0, 3),
                (0, 0, 4),
                (0, 0, 5),
                (0, 0, 0),
                (0, 0, 1),
                (0, 0, 2),
            ],
            &[((0, 0), 6)],
        );
        assert_eq!(v.violation_count, 2, "{:?}", v.violations);
        assert!(matches!(
            v.violations[0],
            Violation::Gap {
                expected: 0,
                got: 3,
                ..
            }
        ));
        assert!(matches!(
            v.violations[1],
            Violation::Duplicate {
                expected: 6,
                got: 0,
                messages: 3,
                ..
            }
        ));
        assert!(
            v.violations[1]
                .to_string()
                .contains("got 0..=2 (3 messages)")
        );
    }

    #[test]
    fn reorder_is_caught() {
        let v = run(&[(0, 0, 1), (0, 0, 0)], &[((0, 0), 2)]);
        assert!(v.violation_count >= 2);
    }

    #[test]
    fn missing_tail_and_missing_partition_are_caught() {
        let v = run(&[(0, 0, 0)], &[((0, 0), 2), ((1, 0), 1)]);
        assert_eq!(v.violation_count, 2);
        assert!(
            v.violations
                .iter()
                .all(|x| matches!(x, Violation::Missing { .. }))
        );
    }

    #[test]
    fn foreign_runs_are_ignored_and_malformed_flagged() {
        let mut v = Verifier::new(Some(1));
        v.check(0, 0, Some(&msg(2, 0, 5)));
        assert_eq!(v.foreign, 1);
        v.check(0, 1, Some(b"not ours"));
        v.check(0, 2, None);
        assert_eq!(v.violation_count, 2);
        v.check_in(0, 3, Some(b"older data"), false);
        assert_eq!((v.violation_count, v.foreign), (2, 2));
    }

    #[test]
    fn consume_mode_starts_at_first_seen_sequence() {
        let mut v = Verifier::new(None);
        v.check(0, 0, Some(&msg(9, 0, 100)));
        v.check(0, 1, Some(&msg(9, 0, 101)));
        v.check(0, 2, Some(b"plain record"));
        assert_eq!(v.violation_count, 0);
        v.check(0, 3, Some(&msg(9, 0, 103)));
        assert_eq!(v.violation_count, 1);
    }
}
