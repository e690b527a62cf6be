//! Transactional produce (`--txn-records N`): the throughput of Kafka transactions of N records,
//! or of the same loop with an idempotent producer (`--txn-mode idempotent`) as the baseline.
//!
//! Unlike the open-loop producer (`producer.rs`), this is a closed loop, as a transactional
//! client is: a transaction's records cannot be sent before the previous one ended, so the
//! offered load is "as fast as the broker completes transactions" and the figures are committed
//! records/s and transaction latency. Each producer connection:
//! 1. FindCoordinator (key type 1) for its transactional id `loadgen-<run>-<i>`, retried while the
//!    coordinator loads (Kafka creates `__transaction_state` on the first lookup), then
//!    InitProducerId with it (idempotent mode: without one);
//! 2. per transaction: N records of `--message-size` bytes cut into `--batch-size` batches, each
//!    batch on the next partition (sticky, round robin), AddPartitionsToTxn for the partitions it
//!    touches (Kafka's transaction version 1 flow, which Ringbolt serves), the Produce requests
//!    (one batch per partition each, acks=all), then EndTxn(commit), which both brokers answer
//!    once the markers are written. The idempotent baseline skips AddPartitionsToTxn and EndTxn.
//!
//! Requests go one at a time on the connection (no pipelining inside a transaction), the same for
//! both systems and both modes: more throughput comes from more producer connections.

use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnTopic,
};
use kafka_protocol::messages::end_txn_request::EndTxnRequest;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::produce_request::ProduceRequest;
use kafka_protocol::messages::{ProducerId, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use kafka_test_client::requests::produce_request;
use kafka_test_client::tn;
use serde::Serialize;

use crate::args::{Args, TxnMode};
use crate::batch::BatchBuilder;
use crate::client::{Conn, ensure_topic};

/// Errors a transactional client retries (coordinator loading or moving, a previous transaction
/// still completing).
fn retriable(code: i16) -> bool {
    matches!(code, 14 | 15 | 16 | 51)
}

/// What one run measured.
#[derive(Debug, Serialize)]
pub struct TxnSummary {
    pub mode: TxnMode,
    pub txn_records: usize,
    pub producers: usize,
    pub seconds: f64,
    pub transactions: u64,
    pub records: u64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    pub txn_per_sec: f64,
    pub txn_latency_us_p50: u64,
    pub txn_latency_us_p99: u64,
    pub txn_latency_us_max: u64,
}

struct Session {
    conn: Conn,
    pid: i64,
    epoch: i16,
    txn_id: Option<String>,
    /// Next sequence per partition index.
    seq: Vec<i32>,
}

fn find_coordinator(bootstrap: &str, txn_id: &str) -> Result<SocketAddr> {
    let mut conn = Conn::connect(bootstrap)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let req = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(txn_id.to_string()))
            .with_key_type(1);
        let r = conn.call(3, &req)?;
        if r.error_code == 0 {
            let host = if r.host.is_empty() {
                "127.0.0.1"
            } else {
                r.host.as_str()
            };
            return (host, r.port as u16)
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| anyhow!("coordinator host {host} resolves to nothing"));
        }
        if !retriable(r.error_code) || Instant::now() > deadline {
            bail!("FindCoordinator({txn_id}): error code {}", r.error_code);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn open(
    bootstrap: &str,
    leader: SocketAddr,
    txn_id: Option<String>,
    parts: usize,
) -> Result<Session> {
    // Single-broker runs only: the partitions' leader must also be the coordinator.
    if let Some(id) = &txn_id {
        let coord = find_coordinator(bootstrap, id)?;
        if coord.port() != leader.port() {
            bail!(
                "coordinator {coord} is not the partitions' leader {leader}: loadgen needs one broker"
            );
        }
    }
    let mut conn = Conn::connect(&leader.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(
                txn_id
                    .clone()
                    .map(|s| TransactionalId(StrBytes::from_string(s))),
            )
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let r = conn.call(4, &req)?;
        if r.error_code == 0 {
            return Ok(Session {
                conn,
                pid: r.producer_id.0,
                epoch: r.producer_epoch,
                txn_id,
                seq: vec![0; parts],
            });
        }
        if !retriable(r.error_code) || Instant::now() > deadline {
            bail!("InitProducerId: error code {}", r.error_code);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Puts the producer id, epoch, base sequence and the transactional flag into a finished batch
/// and recomputes its CRC.
fn stamp(batch: &Bytes, pid: i64, epoch: i16, seq: i32, transactional: bool) -> Bytes {
    let mut b = BytesMut::from(&batch[..]);
    if transactional {
        let attrs = i16::from_be_bytes([b[21], b[22]]) | 0x10;
        b[21..23].copy_from_slice(&attrs.to_be_bytes());
    }
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

/// One producer connection's loop until `stop`; returns (transactions, records) counted after
/// `measure_from`, recording latencies into `hist`.
fn producer_loop(
    s: &mut Session,
    args: &Args,
    partitions: &[i32],
    start_at: usize,
    stop: &AtomicBool,
    measuring: &AtomicBool,
    hist: &Mutex<Histogram<u64>>,
) -> Result<(u64, u64)> {
    let topic = tn(&args.topic);
    let transactional = s.txn_id.is_some();
    let filler = vec![b'x'; args.message_size];
    let mut builder = BatchBuilder::new(args.compression, args.batch_size);
    let mut next_part = start_at % partitions.len();
    let (mut txns, mut records) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let began = Instant::now();
        // Cut the transaction's records into batches, one partition per batch, round robin.
        let mut batches: Vec<(usize, Bytes)> = Vec::new();
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        for _ in 0..args.txn_records {
            if !builder.is_empty()
                && builder.size() + builder.record_size(ts, None, filler.len()) > args.batch_size
            {
                let b = builder.finish()?.expect("non-empty batch");
                batches.push((next_part, b));
                next_part = (next_part + 1) % partitions.len();
            }
            builder.append(ts, None, &[&filler]);
        }
        if let Some(b) = builder.finish()? {
            batches.push((next_part, b));
            next_part = (next_part + 1) % partitions.len();
        }
        if transactional {
            let touched: BTreeSet<i32> = batches.iter().map(|(i, _)| partitions[*i]).collect();
            add_partitions(s, &args.topic, touched.into_iter().collect())?;
        }
        // Produce: one batch per partition per request.
        let mut pending = batches;
        while !pending.is_empty() {
            let mut seen = BTreeSet::new();
            let mut now: Vec<(usize, Bytes)> = Vec::new();
            let mut later = Vec::new();
            for (i, b) in pending {
                if seen.insert(i) {
                    now.push((i, b));
                } else {
                    later.push((i, b));
                }
            }
            pending = later;
            let data: Vec<(i32, Bytes)> = now
                .iter()
                .map(|(i, b)| {
                    let n = i32::from_be_bytes([b[57], b[58], b[59], b[60]]);
                    let stamped = stamp(b, s.pid, s.epoch, s.seq[*i], transactional);
                    s.seq[*i] = s.seq[*i].wrapping_add(n);
                    (partitions[*i], stamped)
                })
                .collect();
            let req = produce_request(topic.clone(), -1, 30_000, data).with_transactional_id(
                s.txn_id
                    .clone()
                    .map(|id| TransactionalId(StrBytes::from_string(id))),
            );
            produce(&mut s.conn, &req)?;
        }
        if transactional {
            end_txn(s)?;
        }
        if measuring.load(Ordering::Relaxed) {
            txns += 1;
            records += args.txn_records as u64;
            let us = began.elapsed().as_micros() as u64;
            hist.lock().unwrap().record(us.max(1)).ok();
        }
    }
    Ok((txns, records))
}

/// Sends one Produce request, again (same batches, same sequences) while it gets an error that
/// goes away by itself (a fresh topic's leadership settling).
fn produce(conn: &mut Conn, req: &ProduceRequest) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = conn.api.produce;
        let r = conn.call(v, req)?;
        let code = r
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .map(|p| p.error_code)
            .find(|&c| c != 0)
            .unwrap_or(0);
        if code == 0 {
            return Ok(());
        }
        if !crate::client::is_retriable(code) || Instant::now() > deadline {
            bail!("produce: error code {code}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn add_partitions(s: &mut Session, topic: &str, parts: Vec<i32>) -> Result<()> {
    let id = s.txn_id.clone().unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_string(id.clone())))
            .with_v3_and_below_producer_id(ProducerId(s.pid))
            .with_v3_and_below_producer_epoch(s.epoch)
            .with_v3_and_below_topics(vec![
                AddPartitionsToTxnTopic::default()
                    .with_name(tn(topic))
                    .with_partitions(parts.clone()),
            ]);
        let r = s.conn.call(3, &req)?;
        let code = r
            .results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| t.results_by_partition.iter())
            .map(|p| p.partition_error_code)
            .find(|&c| c != 0)
            .unwrap_or(r.error_code);
        if code == 0 {
            return Ok(());
        }
        if !retriable(code) || Instant::now() > deadline {
            bail!("AddPartitionsToTxn: error code {code}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn end_txn(s: &mut Session) -> Result<()> {
    let id = s.txn_id.clone().unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(id.clone())))
            .with_producer_id(ProducerId(s.pid))
            .with_producer_epoch(s.epoch)
            .with_committed(true);
        let r = s.conn.call(3, &req)?;
        if r.error_code == 0 {
            return Ok(());
        }
        if !retriable(r.error_code) || Instant::now() > deadline {
            bail!("EndTxn: error code {}", r.error_code);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs the transactional (or idempotent baseline) produce phase; prints a line and writes
/// `txn.json` into the report directory.
pub fn run(args: &Args, bootstrap: &str) -> Result<TxnSummary> {
    let mut conn = Conn::connect(bootstrap)?;
    let meta = ensure_topic(&mut conn, &args.topic, args.partitions, true)?;
    let run_id = std::process::id();
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let hist = Arc::new(Mutex::new(crate::stats::new_histogram()));
    let mut handles = Vec::new();
    for i in 0..args.producers {
        let txn_id = match args.txn_mode {
            TxnMode::Transactional => Some(format!("loadgen-{run_id}-{i}")),
            TxnMode::Idempotent => None,
        };
        let mut s = open(bootstrap, meta.leader, txn_id, meta.partitions.len())
            .with_context(|| format!("producer {i}"))?;
        let (args, parts) = (args.clone(), meta.partitions.clone());
        let (stop, measuring, hist) = (stop.clone(), measuring.clone(), hist.clone());
        handles.push(std::thread::spawn(move || {
            producer_loop(&mut s, &args, &parts, i, &stop, &measuring, &hist)
        }));
    }
    std::thread::sleep(Duration::from_secs_f64(args.warmup));
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.duration));
    measuring.store(false, Ordering::Relaxed);
    let seconds = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (mut txns, mut records) = (0, 0);
    for h in handles {
        let (t, r) = h
            .join()
            .map_err(|_| anyhow!("producer thread panicked"))??;
        txns += t;
        records += r;
    }
    let h = hist.lock().unwrap();
    let summary = TxnSummary {
        mode: args.txn_mode,
        txn_records: args.txn_records,
        producers: args.producers,
        seconds,
        transactions: txns,
        records,
        records_per_sec: records as f64 / seconds,
        mb_per_sec: (records * args.message_size as u64) as f64 / seconds / 1e6,
        txn_per_sec: txns as f64 / seconds,
        txn_latency_us_p50: h.value_at_quantile(0.5),
        txn_latency_us_p99: h.value_at_quantile(0.99),
        txn_latency_us_max: h.max(),
    };
    Ok(summary)
}

/// The one-line result and `txn.json`.
pub fn report(s: &TxnSummary, dir: &Path) -> Result<()> {
    println!(
        "txn-produce ({:?}, {} records/txn, {} producers): {:.0} msgs/s, {:.1} MB/s, {:.1} txn/s, txn latency p50 {} us p99 {} us max {} us",
        s.mode,
        s.txn_records,
        s.producers,
        s.records_per_sec,
        s.mb_per_sec,
        s.txn_per_sec,
        s.txn_latency_us_p50,
        s.txn_latency_us_p99,
        s.txn_latency_us_max
    );
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("txn.json"), serde_json::to_vec_pretty(s)?)?;
    Ok(())
}
