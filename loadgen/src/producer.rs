//! Open-loop producer: one writer and one reader thread per connection.
//!
//! The writer owns the schedule. Producer `p` of `P` sends the global messages `p, p+P, p+2P, …`;
//! message `i` is *scheduled* at `t0 + i / rate`. Each pass of the loop generates every message
//! whose scheduled time has passed, stamps that scheduled time into the record, and appends it to
//! its partition's batch; full batches (and, once a request slot is free, batches older than
//! `--linger-ms`) go out in one Produce request. When `--max-in-flight` requests are unanswered,
//! the writer blocks on the in-flight channel — and on waking generates the overdue messages with
//! their *original* scheduled times. A stalled broker therefore shows up as latency instead of
//! silently lowering the offered load (no coordinated omission). With `--rate 0` messages are
//! stamped when generated.
//!
//! The reader takes in-flight entries in order (Kafka answers in order per connection), decodes
//! the ProduceResponse and records `ack time − scheduled time` per message.
//!
//! Partitioning: without keys a sticky partitioner fills one partition's batch, then moves on;
//! with `--keys N` the key is the 8-byte big-endian key index and the partition is Kafka's default
//! `murmur2(key) % partitions`, so results match what Java clients would do.

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::produce_response::ProduceResponse;
use kafka_protocol::protocol::StrBytes;

use crate::batch::{BatchBuilder, Compression};
use crate::client::{self, Conn};
use crate::message::{HEADER_LEN, MessageHeader};
use crate::stats::{Live, LocalHist, latency_us};
use kafka_test_client::frame;

/// Largest Produce request loadgen builds before sending (bytes of batches).
const MAX_REQUEST_BYTES: usize = 1 << 20;

/// What one producer connection does.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    pub id: u32,
    pub producers: u32,
    pub run_id: u32,
    pub topic: String,
    pub partitions: Vec<i32>,
    pub leader: SocketAddr,
    /// Messages/s over all producers; 0 = as fast as possible.
    pub rate: u64,
    pub message_size: usize,
    pub keys: u64,
    pub acks: i16,
    pub batch_size: usize,
    pub linger_ns: u64,
    pub compression: Compression,
    pub max_in_flight: usize,
}

/// Outcome of one producer: messages sent per (partition, producer).
#[derive(Debug, Default)]
pub struct ProducerResult {
    pub sent: HashMap<(i32, u32), u64>,
}

/// Kafka's default partitioner hash (murmur2, as in `org.apache.kafka.common.utils.Utils`).
pub fn murmur2(data: &[u8]) -> i32 {
    let m: i32 = 0x5bd1_e995;
    let mut h: i32 = 0x9747_b28c_u32 as i32 ^ data.len() as i32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(m);
        k ^= ((k as u32) >> 24) as i32;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m);
        h ^= k;
    }
    if tail.len() >= 3 {
        h ^= i32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= i32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= i32::from(tail[0]);
        h = h.wrapping_mul(m);
    }
    h ^= ((h as u32) >> 13) as i32;
    h = h.wrapping_mul(m);
    h ^= ((h as u32) >> 15) as i32;
    h
}

/// Partition index (into the topic's partition list) for `key` — Kafka's `toPositive(murmur2) % n`.
pub fn partition_for_key(key: &[u8], n: usize) -> usize {
    ((murmur2(key) & 0x7fff_ffff) as usize) % n
}

/// The open-loop schedule of one producer: global message `i` is due at
/// `t0 + floor(i * 1e9 / rate)` ns, and producer `id` of `producers` owns `i = k * producers + id`.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub t0_ns: u64,
    /// Messages/s over all producers (> 0).
    pub rate: u64,
    pub producers: u32,
    pub id: u32,
}

impl Schedule {
    /// Scheduled time of this producer's `k`-th message.
    #[inline]
    pub fn scheduled_ns(&self, k: u64) -> u64 {
        let i = k * u64::from(self.producers) + u64::from(self.id);
        self.t0_ns + (u128::from(i) * 1_000_000_000 / u128::from(self.rate)) as u64
    }

    /// How many of this producer's messages are scheduled strictly before `ns`.
    pub fn due_before(&self, ns: u64) -> u64 {
        if ns <= self.t0_ns {
            return 0;
        }
        // floor(i·1e9/rate) < e  ⇔  i·1e9 < e·rate  ⇔  i < e·rate/1e9: ceil(e·rate/1e9) messages.
        let elapsed = u128::from(ns - self.t0_ns);
        let global = (elapsed * u128::from(self.rate)).div_ceil(1_000_000_000) as u64;
        let (p, n) = (u64::from(self.id), u64::from(self.producers));
        if global <= p {
            0
        } else {
            (global - p).div_ceil(n)
        }
    }
}

/// A request on the wire, waiting for its response.
struct InFlight {
    correlation_id: i32,
    /// (partition, scheduled ns of each message in its batch).
    parts: Vec<(i32, Vec<u64>)>,
}

/// How long `send_pending` may wait for a request slot.
#[derive(Clone, Copy)]
enum Wait {
    No,
    For(Duration),
    Block,
}

/// One partition's open batch.
struct Acc {
    builder: BatchBuilder,
    scheduled: Vec<u64>,
    opened_ns: u64,
    next_seq: u64,
}

/// Starts one producer connection (writer + reader threads).
pub fn spawn(cfg: ProducerConfig, live: Arc<Live>) -> JoinHandle<Result<ProducerResult>> {
    std::thread::Builder::new()
        .name(format!("producer-{}", cfg.id))
        .spawn(move || run(cfg, live))
        .expect("spawning producer thread")
}

fn run(cfg: ProducerConfig, live: Arc<Live>) -> Result<ProducerResult> {
    // The writer sleeps until the next batch may leave; the default 50 µs timer slack would
    // add up to that much to every batch's send time.
    // SAFETY: prctl with integer arguments only, on this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong);
    }
    let conn = Conn::connect(&cfg.leader.to_string())?;
    let version = conn.api.produce;
    let (mut writer, reader) = conn.into_split()?;
    // In-flight requests go to the reader in order; a request slot is a token the writer takes
    // before writing and the reader returns once the response is in: exactly `max_in_flight`
    // unanswered requests at most.
    let (tx, rx) = channel::<InFlight>();
    let (token_tx, token_rx) = channel::<()>();
    for _ in 0..cfg.max_in_flight {
        let _ = token_tx.send(());
    }
    let reader_handle = if cfg.acks != 0 {
        let live = live.clone();
        Some(
            std::thread::Builder::new()
                .name(format!("producer-{}-reader", cfg.id))
                .spawn(move || read_responses(reader, rx, token_tx, version, &live))
                .context("spawning reader")?,
        )
    } else {
        drop(rx);
        None
    };
    let mut w = Writer::new(
        &cfg,
        &live,
        version,
        if cfg.acks != 0 {
            Some((tx, token_rx))
        } else {
            None
        },
    );
    let result = w.run(&mut writer);
    drop(w); // closes the channel: the reader finishes once the in-flight requests are answered
    let read_result = match reader_handle {
        Some(h) => h
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("reader panicked"))),
        None => Ok(()),
    };
    let sent = result?;
    read_result?;
    Ok(ProducerResult { sent })
}

struct Writer<'a> {
    cfg: &'a ProducerConfig,
    live: &'a Live,
    version: i16,
    tx: Option<(Sender<InFlight>, Receiver<()>)>,
    topic: TopicName,
    accs: Vec<Acc>,
    /// Sealed batches waiting to go into the next request: (partition index, batch, scheduled).
    pending: Vec<(usize, Bytes, Vec<u64>)>,
    pending_bytes: usize,
    frame: BytesMut,
    filler: Vec<u8>,
    sticky: usize,
    next_correlation: i32,
    hist: LocalHist<'a>,
    schedule: Schedule,
    /// A request slot taken from the reader but not used yet.
    has_slot: bool,
}

impl<'a> Writer<'a> {
    fn new(
        cfg: &'a ProducerConfig,
        live: &'a Live,
        version: i16,
        tx: Option<(Sender<InFlight>, Receiver<()>)>,
    ) -> Self {
        let accs = cfg
            .partitions
            .iter()
            .map(|_| Acc {
                builder: BatchBuilder::new(cfg.compression, cfg.batch_size),
                scheduled: Vec::new(),
                opened_ns: 0,
                next_seq: 0,
            })
            .collect();
        // Filler: a repeating pattern (compressible, like typical payloads, but not all zeros).
        let filler = (0..cfg.message_size - HEADER_LEN)
            .map(|i| b"loadgen-payload-"[i % 16])
            .collect();
        Writer {
            cfg,
            live,
            version,
            tx,
            topic: TopicName(StrBytes::from_string(cfg.topic.clone())),
            accs,
            pending: Vec::new(),
            pending_bytes: 0,
            frame: BytesMut::with_capacity(MAX_REQUEST_BYTES + 64 * 1024),
            filler,
            sticky: cfg.id as usize % cfg.partitions.len(),
            next_correlation: 1,
            hist: LocalHist::new(&live.produce_hist),
            schedule: Schedule {
                t0_ns: live.t0_ns,
                rate: cfg.rate.max(1),
                producers: cfg.producers,
                id: cfg.id,
            },
            has_slot: false,
        }
    }

    #[inline]
    fn scheduled_ns(&self, k: u64) -> u64 {
        self.schedule.scheduled_ns(k)
    }

    fn due_before(&self, ns: u64) -> u64 {
        self.schedule.due_before(ns)
    }

    fn run(&mut self, sock: &mut TcpStream) -> Result<HashMap<(i32, u32), u64>> {
        let end_ns = self.live.produce_end_ns;
        let total = if self.cfg.rate > 0 {
            self.due_before(end_ns)
        } else {
            u64::MAX
        };
        let clock = self.live.clock;
        let mut k: u64 = 0;
        loop {
            let now = clock.now_ns();
            let due = if self.cfg.rate > 0 {
                self.due_before(now + 1).min(total)
            } else if now < end_ns {
                k + 64
            } else {
                k
            };
            while k < due {
                let sched = if self.cfg.rate > 0 {
                    self.scheduled_ns(k)
                } else {
                    now
                };
                self.generate(k, sched, sock)?;
                k += 1;
            }
            let finished = k >= total || (self.cfg.rate == 0 && now >= end_ns);
            self.seal_ready(now, finished, sock)?;
            if !self.pending.is_empty() {
                // While every request slot is taken, sealed batches wait here and later ones join
                // them: under saturation requests grow to one batch per partition (as Kafka's
                // sender drains all ready batches per broker) instead of queueing behind each other.
                let wait = if finished { Wait::Block } else { Wait::No };
                self.send_pending(sock, wait)?;
            }
            if finished {
                break;
            }
            if self.cfg.rate > 0 {
                // Sleep until a batch may have to leave: its linger expires, or the message that
                // may seal it (see `next_seal`) is due, or a request slot frees up for the
                // waiting batches. Messages carry their *scheduled* time whenever they are
                // generated, so generating them in a burst on waking measures the same thing
                // as generating each on time; only the moment a batch leaves matters, and that
                // is what the wake-up follows. (Waking for every message — every 8 µs per
                // producer at 250k msg/s — kept the writer threads spinning, taking a core from
                // the broker on a small machine.)
                // Message k lands in a batch whose linger ends by scheduled(k) + linger at the
                // latest (with --linger-ms 0 that is its own due time).
                // Ready batches that found no free slot wait for one: then only a slot, or a
                // batch filling up, can change anything, so new messages need no wake-up of
                // their own (with --linger-ms 0 that would be one per message).
                let now = clock.now_ns();
                let slot_wait = self.lingered(now);
                let mut wake =
                    self.scheduled_ns((k + self.next_seal()).min(total.saturating_sub(1)));
                if !slot_wait {
                    wake = wake.min(self.scheduled_ns(k) + self.cfg.linger_ns);
                    for a in &self.accs {
                        if !a.builder.is_empty() {
                            wake = wake.min(a.opened_ns + self.cfg.linger_ns);
                        }
                    }
                }
                if wake > now + 20_000 || slot_wait {
                    let d = Duration::from_nanos(wake.saturating_sub(now).min(1_000_000));
                    if slot_wait {
                        // The next pass seals the ready batches into the slot's request,
                        // together with any already sealed.
                        self.acquire_slot(Wait::For(d))?;
                    } else if !self.pending.is_empty() {
                        self.send_pending(sock, Wait::For(d))?;
                    } else {
                        std::thread::sleep(d);
                    }
                }
            }
        }
        self.hist.maybe_merge(true);
        Ok(self
            .accs
            .iter()
            .zip(&self.cfg.partitions)
            .map(|(a, &p)| ((p, self.cfg.id), a.next_seq))
            .collect())
    }

    /// Linger: a batch that waited `--linger-ms` is ready. As in Kafka's producer, ready batches
    /// leave when a request slot is free; until then they stay open and keep filling (Kafka's
    /// accumulator closes a batch only when its sender drains it). Sealing them while every slot
    /// was taken made `--linger-ms 0` send one-message requests and block on the next message of
    /// the same partition. At the end (`finished`) every batch leaves.
    fn seal_ready(&mut self, now: u64, finished: bool, sock: &mut TcpStream) -> Result<()> {
        if finished || (self.lingered(now) && self.acquire_slot(Wait::No)?) {
            for i in 0..self.accs.len() {
                let a = &self.accs[i];
                if !a.builder.is_empty()
                    && (finished || now.saturating_sub(a.opened_ns) >= self.cfg.linger_ns)
                {
                    self.seal(i, sock)?;
                }
            }
        }
        Ok(())
    }

    /// Whether an open batch has waited `--linger-ms` (it is ready to leave).
    fn lingered(&self, now: u64) -> bool {
        self.accs
            .iter()
            .any(|a| !a.builder.is_empty() && now.saturating_sub(a.opened_ns) >= self.cfg.linger_ns)
    }

    /// How many more messages certainly fit in the open batches: the next message after them is
    /// the first that may seal one (it overflows the sticky batch, or, with keys, possibly the
    /// fullest batch). Errs low (a record is assumed 8 bytes larger than its size now), which
    /// only means an earlier wake-up.
    fn next_seal(&self) -> u64 {
        let ts_ms = (self.live.clock.now_ns() / 1_000_000) as i64;
        let key_len = (self.cfg.keys > 0).then_some(8);
        let room = |a: &Acc| {
            let rec = a.builder.record_size(ts_ms, key_len, self.cfg.message_size) + 8;
            (self.cfg.batch_size.saturating_sub(a.builder.size()) / rec) as u64
        };
        if self.cfg.keys == 0 {
            room(&self.accs[self.sticky])
        } else {
            self.accs.iter().map(room).min().unwrap_or(0)
        }
    }

    /// Builds message `k` (scheduled at `sched`) into its partition's batch.
    #[inline]
    fn generate(&mut self, k: u64, sched: u64, sock: &mut TcpStream) -> Result<()> {
        let n = self.accs.len();
        let key_buf;
        let (pi, key) = if self.cfg.keys > 0 {
            let global = k * u64::from(self.cfg.producers) + u64::from(self.cfg.id);
            key_buf = (global % self.cfg.keys).to_be_bytes();
            (partition_for_key(&key_buf, n), Some(&key_buf[..]))
        } else {
            (self.sticky, None)
        };
        let ts_ms = (sched / 1_000_000) as i64;
        let rec =
            self.accs[pi]
                .builder
                .record_size(ts_ms, key.map(<[u8]>::len), self.cfg.message_size);
        let mut pi = pi;
        if !self.accs[pi].builder.is_empty()
            && self.accs[pi].builder.size() + rec > self.cfg.batch_size
        {
            self.seal(pi, sock)?;
            // Without keys the message that did not fit goes to the next sticky partition, as
            // Kafka's sticky partitioner re-partitions a record that would open a new batch
            // (`onNewBatch`). Left in a fresh batch of the old partition it waited a whole
            // rotation of the sticky partitioner or the linger: ≈ 5 ms for 1 message in 80 at
            // 250k msg/s, which set loadgen's own produce p99 (docs/perf/loadgen.md).
            if self.cfg.keys == 0 {
                pi = self.sticky;
            }
        }
        let a = &mut self.accs[pi];
        if a.builder.is_empty() {
            a.opened_ns = sched;
        }
        let header = MessageHeader {
            run_id: self.cfg.run_id,
            scheduled_ns: sched,
            producer: self.cfg.id,
            seq: a.next_seq,
        }
        .encode();
        a.builder.append(ts_ms, key, &[&header, &self.filler]);
        a.scheduled.push(sched);
        a.next_seq += 1;
        if a.builder.size() >= self.cfg.batch_size {
            self.seal(pi, sock)?;
        }
        Ok(())
    }

    /// Closes partition `pi`'s batch and queues it for the next request.
    fn seal(&mut self, pi: usize, sock: &mut TcpStream) -> Result<()> {
        // A request carries at most one batch per partition (Kafka rejects more).
        if self.pending.iter().any(|(p, _, _)| *p == pi) {
            self.send_pending(sock, Wait::Block)?;
        }
        let a = &mut self.accs[pi];
        let Some(batch) = a.builder.finish()? else {
            return Ok(());
        };
        let scheduled = std::mem::take(&mut a.scheduled);
        self.pending_bytes += batch.len();
        self.pending.push((pi, batch, scheduled));
        if self.cfg.keys == 0 && pi == self.sticky {
            self.sticky = (self.sticky + 1) % self.accs.len();
        }
        if self.pending_bytes >= MAX_REQUEST_BYTES {
            self.send_pending(sock, Wait::Block)?;
        }
        Ok(())
    }

    /// Takes a request slot (always available with acks=0). `false` when none freed up in time.
    fn acquire_slot(&mut self, wait: Wait) -> Result<bool> {
        let Some((_, tokens)) = &self.tx else {
            return Ok(true);
        };
        if self.has_slot {
            return Ok(true);
        }
        use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
        let stopped = || anyhow::anyhow!("producer reader stopped");
        self.has_slot = match wait {
            Wait::Block => tokens.recv().map(|_| true).map_err(|_| stopped())?,
            Wait::No => match tokens.try_recv() {
                Ok(()) => true,
                Err(TryRecvError::Empty) => false,
                Err(TryRecvError::Disconnected) => return Err(stopped()),
            },
            Wait::For(d) => match tokens.recv_timeout(d) {
                Ok(()) => true,
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => return Err(stopped()),
            },
        };
        Ok(self.has_slot)
    }

    /// Sends the pending batches as one Produce request once a request slot is free.
    /// Returns whether it sent.
    fn send_pending(&mut self, sock: &mut TcpStream, wait: Wait) -> Result<bool> {
        if self.pending.is_empty() || !self.acquire_slot(wait)? {
            return Ok(false);
        }
        self.has_slot = false;
        let corr = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let parts: Vec<(usize, Bytes, Vec<u64>)> = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        self.frame.clear();
        client::encode_produce(
            &mut self.frame,
            self.version,
            corr,
            self.cfg.acks,
            &self.topic,
            parts
                .iter()
                .map(|(pi, b, _)| (self.cfg.partitions[*pi], b.clone())),
        )?;
        let parts: Vec<(i32, Vec<u64>)> = parts
            .into_iter()
            .map(|(pi, _, s)| (self.cfg.partitions[pi], s))
            .collect();
        match &self.tx {
            Some((tx, _)) => {
                tx.send(InFlight {
                    correlation_id: corr,
                    parts,
                })
                .map_err(|_| anyhow::anyhow!("producer reader stopped"))?;
                sock.write_all(&self.frame)
                    .context("writing Produce request")?;
            }
            None => {
                // acks=0: no response; "acknowledged" = written to the socket.
                sock.write_all(&self.frame)
                    .context("writing Produce request")?;
                let now = self.live.clock.now_ns();
                account(self.live, &mut self.hist, &parts, now);
            }
        }
        Ok(true)
    }
}

/// Records latencies and counters for acknowledged batches.
fn account(live: &Live, hist: &mut LocalHist<'_>, parts: &[(i32, Vec<u64>)], ack_ns: u64) {
    let mut measured = 0u64;
    let mut total = 0u64;
    for (_, scheduled) in parts {
        for &s in scheduled {
            if s >= live.measure_start_ns {
                hist.record(latency_us(s, ack_ns));
                measured += 1;
            }
        }
        total += scheduled.len() as u64;
    }
    live.produced.add(ack_ns, total);
    live.acked_total.fetch_add(total, Ordering::Relaxed);
    if measured > 0 {
        live.measured_acked.fetch_add(measured, Ordering::Relaxed);
        live.first_ack_ns.fetch_min(ack_ns, Ordering::Relaxed);
        live.last_ack_ns.fetch_max(ack_ns, Ordering::Relaxed);
    }
    hist.maybe_merge(false);
}

fn read_responses(
    mut sock: TcpStream,
    rx: Receiver<InFlight>,
    tokens: Sender<()>,
    version: i16,
    live: &Live,
) -> Result<()> {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut hist = LocalHist::new(&live.produce_hist);
    let mut logged = 0;
    while let Ok(inflight) = rx.recv() {
        let frame = frame::read_frame(&mut sock, &mut buf)?;
        let ack_ns = live.clock.now_ns();
        let frame::Response {
            correlation_id: corr,
            body: resp,
            ..
        } = frame::decode_response::<ProduceResponse>(frame, version)?;
        if corr != inflight.correlation_id {
            bail!(
                "Produce response correlation id {corr}, expected {}",
                inflight.correlation_id
            );
        }
        let mut ok = Vec::with_capacity(inflight.parts.len());
        for (partition, scheduled) in inflight.parts {
            let code = resp
                .responses
                .iter()
                .flat_map(|t| t.partition_responses.iter())
                .find(|r| r.index == partition)
                .map_or(-1, |r| r.error_code);
            if code == 0 {
                ok.push((partition, scheduled));
            } else {
                live.add_errors(scheduled.len() as u64);
                if logged < 10 {
                    logged += 1;
                    tracing::warn!(
                        partition,
                        code,
                        messages = scheduled.len(),
                        "produce failed"
                    );
                }
            }
        }
        account(live, &mut hist, &ok, ack_ns);
        let _ = tokens.send(());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_consistent_and_producers_partition_the_messages() {
        let (t0, rate, n) = (1_000_000_000u64, 250_000u64, 3u32);
        let scheds: Vec<Schedule> = (0..n)
            .map(|id| Schedule {
                t0_ns: t0,
                rate,
                producers: n,
                id,
            })
            .collect();
        for s in &scheds {
            for k in [0u64, 1, 2, 7, 1000, 123_457] {
                let at = s.scheduled_ns(k);
                assert_eq!(s.due_before(at), k, "{s:?} k={k}");
                assert_eq!(s.due_before(at + 1), k + 1, "{s:?} k={k}");
            }
        }
        // Over one second exactly `rate` messages are due, split over the producers.
        let end = t0 + 1_000_000_000;
        let total: u64 = scheds.iter().map(|s| s.due_before(end)).sum();
        assert_eq!(total, rate);
        // The union of all producers' times is the global grid t0 + i * 4 µs.
        let mut all: Vec<u64> = scheds
            .iter()
            .flat_map(|s| (0..s.due_before(end)).map(move |k| s.scheduled_ns(k)))
            .collect();
        all.sort_unstable();
        assert!(
            all.iter()
                .enumerate()
                .all(|(i, &t)| t == t0 + i as u64 * 4_000)
        );
    }

    /// A connected socket whose peer discards everything, and the peer's thread.
    fn sink_socket() -> (TcpStream, std::thread::JoinHandle<()>, SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sink = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let _ = std::io::copy(&mut s, &mut std::io::sink());
        });
        (TcpStream::connect(addr).unwrap(), sink, addr)
    }

    /// One producer of 200-byte messages at 250k msg/s, 16 KiB batches, no keys.
    fn test_config(
        leader: SocketAddr,
        partitions: i32,
        acks: i16,
        linger_ns: u64,
    ) -> ProducerConfig {
        ProducerConfig {
            id: 0,
            producers: 1,
            run_id: 1,
            topic: "t".into(),
            partitions: (0..partitions).collect(),
            leader,
            rate: 250_000,
            message_size: 200,
            keys: 0,
            acks,
            batch_size: 16 * 1024,
            linger_ns,
            compression: Compression::None,
            max_in_flight: 1,
        }
    }

    /// Without keys, the message that overflows the sticky batch must open the *next* sticky
    /// partition's batch: left in a fresh batch of the old partition it waited a whole rotation
    /// (or the linger), ≈ 5 ms for 1 message in 80 at 250k msg/s.
    #[test]
    fn sticky_overflow_moves_to_the_next_partition() {
        use crate::stats::Clock;
        // acks=0: the writer sends into a sink and never waits for a slot.
        let (mut sock, sink, addr) = sink_socket();
        let cfg = test_config(addr, 8, 0, 5_000_000);
        let clock = Clock::new();
        let live = Live::new(clock, clock.now_ns(), 0.0, 1.0);
        let mut w = Writer::new(&cfg, &live, 9, None);
        for k in 0..5_000 {
            w.generate(k, clock.now_ns(), &mut sock).unwrap();
            // Only the sticky partition may hold an open batch.
            for (i, a) in w.accs.iter().enumerate() {
                assert!(
                    i == w.sticky || a.builder.is_empty(),
                    "after message {k}: partition {i} holds an open batch while partition {} is sticky",
                    w.sticky
                );
            }
        }
        drop(w);
        drop(sock);
        sink.join().unwrap();
    }

    /// With `--linger-ms 0` a batch is ready at once, but while every request slot is in flight
    /// it must stay open and keep filling, then leave whole when a slot frees (Kafka's
    /// accumulator). Sealed early, each message became its own batch and the writer blocked on
    /// the next message for the same partition.
    #[test]
    fn ready_batches_wait_open_for_a_free_slot() {
        use crate::stats::Clock;
        // One request slot; acks=1, but the test plays the reader's part (the slot tokens).
        let (mut sock, sink, addr) = sink_socket();
        let cfg = test_config(addr, 1, 1, 0);
        let clock = Clock::new();
        let live = Live::new(clock, clock.now_ns(), 0.0, 1.0);
        let (in_flight_tx, in_flight_rx) = channel();
        let (tokens_tx, tokens_rx) = channel();
        tokens_tx.send(()).unwrap();
        let mut w = Writer::new(&cfg, &live, 9, Some((in_flight_tx, tokens_rx)));
        let mut step = |w: &mut Writer<'_>, k: std::ops::Range<u64>| {
            for k in k {
                w.generate(k, clock.now_ns(), &mut sock).unwrap();
            }
            w.seal_ready(clock.now_ns(), false, &mut sock).unwrap();
            w.send_pending(&mut sock, Wait::No).unwrap();
        };
        // A free slot: the first message leaves at once.
        step(&mut w, 0..1);
        let first = in_flight_rx.try_recv().expect("first request sent");
        assert_eq!(first.parts[0].1.len(), 1);
        // No slot: the next messages wait in the open batch, nothing is sealed.
        step(&mut w, 1..11);
        assert!(in_flight_rx.try_recv().is_err());
        assert!(w.pending.is_empty());
        assert!(!w.accs[0].builder.is_empty());
        // The slot frees: all ten leave as one batch in one request.
        tokens_tx.send(()).unwrap();
        step(&mut w, 11..11);
        let second = in_flight_rx.try_recv().expect("second request sent");
        assert_eq!(second.parts.len(), 1);
        assert_eq!(second.parts[0].1.len(), 10);
        drop(w);
        drop(sock);
        sink.join().unwrap();
    }

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }
}
