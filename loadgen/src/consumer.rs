//! Consumers: Fetch loops over a fixed set of partitions, verifying every record.
//!
//! Partitions are assigned to consumer connections round-robin (no consumer group: loadgen measures
//! the data path, and a group protocol would add rebalances to the numbers). A consumer reads from
//! its start offsets until it reaches the end offsets — which, for the live consumers, are only
//! known once producing is over (`Targets`). Live consumers record end-to-end latency from the
//! scheduled time in each message; the catch-up consumers only count and verify.
//!
//! One Fetch is in flight per connection: the next fetch offset depends on the previous answer.
//! Throughput comes from large responses (`partition_max_bytes`) and several connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

use crate::batch::for_each_record;
use crate::client::Conn;
use crate::stats::{Live, LocalHist, latency_us};
use crate::verify::Verifier;

/// End offsets for the live consumers, published once the producers are done.
#[derive(Default)]
pub struct Targets {
    /// partition → end offset (exclusive).
    pub end: OnceLock<Vec<(i32, i64)>>,
    /// Set when the consumers must give up (drain deadline passed).
    pub abort: AtomicBool,
}

#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    pub id: usize,
    pub topic: String,
    pub leader: SocketAddr,
    /// (partition, first offset to read).
    pub start: Vec<(i32, i64)>,
    /// Verify strictly for this run id (None: verify any loadgen messages found).
    pub run_id: Option<u32>,
    /// (partition, first offset of the run): records from there on must be this run's.
    pub run_start: Vec<(i32, i64)>,
    /// Record end-to-end latency (live consumers).
    pub record_e2e: bool,
    pub max_wait_ms: i32,
    pub partition_max_bytes: i32,
    /// Fetch `isolation_level`: 0 read_uncommitted, 1 read_committed.
    pub isolation_level: i8,
}

pub struct ConsumerResult {
    pub verifier: Verifier,
    pub messages: u64,
    pub bytes: u64,
}

pub fn spawn(
    cfg: ConsumerConfig,
    targets: Arc<Targets>,
    live: Arc<Live>,
) -> JoinHandle<Result<ConsumerResult>> {
    std::thread::Builder::new()
        .name(format!("consumer-{}", cfg.id))
        .spawn(move || run(cfg, &targets, &live))
        .expect("spawning consumer thread")
}

/// Splits `partitions` round-robin over `n` consumers.
pub fn assign(partitions: &[(i32, i64)], n: usize) -> Vec<Vec<(i32, i64)>> {
    let mut out = vec![Vec::new(); n.min(partitions.len()).max(1)];
    let len = out.len();
    for (i, p) in partitions.iter().enumerate() {
        out[i % len].push(*p);
    }
    out
}

fn run(cfg: ConsumerConfig, targets: &Targets, live: &Live) -> Result<ConsumerResult> {
    let mut conn = Conn::connect(&cfg.leader.to_string())?;
    let version = conn.api.fetch;
    let topic = TopicName(StrBytes::from_string(cfg.topic.clone()));
    let mut offsets = cfg.start.clone();
    let mut verifier = Verifier::new(cfg.run_id);
    let mut hist = LocalHist::new(&live.e2e_hist);
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut logged = 0;
    loop {
        if targets.abort.load(Ordering::Relaxed) {
            break;
        }
        let wanted: Vec<(i32, i64)> = match targets.end.get() {
            None => offsets.clone(),
            Some(end) => offsets
                .iter()
                .copied()
                .filter(|(p, off)| end.iter().any(|(q, e)| q == p && off < e))
                .collect(),
        };
        if wanted.is_empty() {
            break;
        }
        let req =
            crate::client::fetch_request(&topic, &wanted, cfg.max_wait_ms, cfg.partition_max_bytes)
                .with_isolation_level(cfg.isolation_level);
        let resp = conn.call(version, &req)?;
        if resp.error_code != 0 {
            bail!("Fetch failed with error code {}", resp.error_code);
        }
        let now = live.clock.now_ns();
        let mut got = 0u64;
        for pd in resp.responses.iter().flat_map(|t| t.partitions.iter()) {
            let partition = pd.partition_index;
            let Some(slot) = offsets.iter_mut().find(|(p, _)| *p == partition) else {
                continue;
            };
            if pd.error_code != 0 {
                live.add_errors(1);
                std::thread::sleep(Duration::from_millis(10)); // don't spin on a failing partition
                if logged < 10 {
                    logged += 1;
                    tracing::warn!(partition, code = pd.error_code, "fetch partition error");
                }
                continue;
            }
            let Some(records) = &pd.records else { continue };
            let from = slot.1;
            let mut next = from;
            let run_start = cfg
                .run_start
                .iter()
                .find(|(p, _)| *p == partition)
                .map_or(i64::MAX, |r| r.1);
            let batches = for_each_record(records, |r| {
                if r.offset < from {
                    return; // the batch containing `from` starts earlier
                }
                got += 1;
                bytes +=
                    r.value.map_or(0, <[u8]>::len) as u64 + r.key.map_or(0, <[u8]>::len) as u64;
                if let Some(h) =
                    verifier.check_in(partition, r.offset, r.value, r.offset >= run_start)
                    && cfg.record_e2e
                    && h.scheduled_ns >= live.measure_start_ns
                {
                    hist.record(latency_us(h.scheduled_ns, now));
                }
            });
            match batches {
                Ok(infos) => {
                    if let Some(last) = infos.last() {
                        next = next.max(last.last_offset + 1);
                    }
                }
                Err(e) => {
                    live.add_errors(1);
                    bail!("partition {partition} at offset {from}: {e:#}");
                }
            }
            slot.1 = next;
        }
        if got > 0 {
            messages += got;
            if cfg.record_e2e {
                live.consumed.add(now, got);
            } else {
                live.caught_up.add(now, got);
            }
            live.consumed_total.fetch_add(got, Ordering::Relaxed);
        }
        hist.maybe_merge(false);
    }
    hist.maybe_merge(true);
    Ok(ConsumerResult {
        verifier,
        messages,
        bytes,
    })
}

/// Waits for consumer threads; merges their verifiers.
pub fn join_all(
    handles: Vec<JoinHandle<Result<ConsumerResult>>>,
    live: &Live,
) -> (Verifier, u64, u64, Vec<String>) {
    let mut verifier: Option<Verifier> = None;
    let (mut messages, mut bytes) = (0, 0);
    let mut failures = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(r)) => {
                messages += r.messages;
                bytes += r.bytes;
                match &mut verifier {
                    Some(v) => v.merge(r.verifier),
                    None => verifier = Some(r.verifier),
                }
            }
            Ok(Err(e)) => {
                live.add_errors(1);
                failures.push(format!("{e:#}"));
            }
            Err(_) => {
                live.add_errors(1);
                failures.push("consumer thread panicked".into());
            }
        }
    }
    (
        verifier.unwrap_or_else(|| Verifier::new(None)),
        messages,
        bytes,
        failures,
    )
}

/// Waits until the consumers have finished or `deadline` passes (then tells them to stop).
pub fn wait_or_abort(
    handles: &[JoinHandle<Result<ConsumerResult>>],
    targets: &Targets,
    deadline: Instant,
) {
    while handles.iter().any(|h| !h.is_finished()) {
        if Instant::now() > deadline {
            targets.abort.store(true, Ordering::Relaxed);
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assign_round_robin() {
        let parts: Vec<(i32, i64)> = (0..5).map(|p| (p, 0)).collect();
        let a = assign(&parts, 2);
        assert_eq!(a[0].iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 2, 4]);
        assert_eq!(a[1].iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(assign(&parts[..1], 4).len(), 1);
    }
}
