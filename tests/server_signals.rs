//! SIGTERM at random moments to the real `ringbolt serve` process: as soon as its handlers are
//! installed, while it recovers a data dir with many partitions, while idle, under produce load,
//! during a long-poll fetch, and with a client that stopped reading large fetch responses. Every
//! time the broker must exit with status 0 within [`BOUND`], having logged the signal and
//! "shutdown complete".
//!
//! The moments are drawn from a seeded generator; the seed is printed, and
//! `RINGBOLT_SIGNALS_SEED=<seed>` replays a run.

mod server_util;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::create_topics_response::CreateTopicsResponse;
use kafka_protocol::messages::fetch_request::FetchRequest;
use kafka_protocol::protocol::Encodable;
use kafka_protocol::records::{Compression, Record};
use kafka_test_client::Error;
use kafka_test_client::records::{encode_batch, record};
use kafka_test_client::requests::{create_topic_request, fetch_partition, fetch_request};
use server_util::*;

/// Longest time from SIGTERM to the process's exit.
const BOUND: Duration = Duration::from_secs(10);
/// Partitions of the data dir the recovery scenario starts on.
const MANY: i32 = 1000;
/// Longest time from a SIGTERM sent during startup to a "listening" line that may still follow:
/// the startup was already complete when the signal arrived (the line is printed right after).
const LATE: Duration = Duration::from_millis(200);

/// xorshift64*: enough to spread the moments, and replayable from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A duration in `[lo, hi)`.
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = (hi.saturating_sub(lo).as_micros() as u64).max(1);
        lo + Duration::from_micros(self.next() % span)
    }
}

/// A `ringbolt serve` child with its stderr in a file (a file never fills up and blocks the
/// broker the way an undrained pipe would) and its stdout read by a thread.
struct Broker {
    child: Child,
    log: PathBuf,
    /// Lines of stdout, with when they were read.
    stdout: Receiver<(Instant, String)>,
    what: String,
}

impl Broker {
    fn spawn(data: &Path, log: &Path, what: &str) -> Broker {
        Self::spawn_with(data, log, what, true)
    }

    /// `read_stdout` false: the read end of the stdout pipe is closed at once.
    fn spawn_with(data: &Path, log: &Path, what: &str, read_stdout: bool) -> Broker {
        let mut child = process::serve(data)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(File::create(log).unwrap())
            .spawn()
            .unwrap();
        let (tx, rx) = channel();
        let out = child.stdout.take().unwrap();
        if !read_stdout {
            drop(out);
            return Broker {
                child,
                log: log.to_owned(),
                stdout: rx,
                what: what.to_string(),
            };
        }
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Broker {
            child,
            log: log.to_owned(),
            stdout: rx,
            what: what.to_string(),
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the process has its SIGTERM handler (before that SIGTERM ends it at once, as
    /// for any process, whatever the broker does).
    fn wait_handlers(&mut self) {
        let status = format!("/proc/{}/status", self.child.id());
        let t0 = Instant::now();
        loop {
            let text = std::fs::read_to_string(&status).unwrap_or_default();
            let caught = text
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
                .unwrap_or(0);
            if caught & (1 << (libc::SIGTERM - 1)) != 0 {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{}: no SIGTERM handler after 10 s",
                self.what
            );
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Waits for the "listening" line; returns the address.
    fn wait_listening(&mut self) -> SocketAddr {
        let (_, line) = self
            .stdout
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{}: not listening\n{}", self.what, self.log_text()));
        process::listening_addr(&line).unwrap_or_else(|| panic!("unexpected first line {line:?}"))
    }

    /// Sends SIGTERM during startup (before the "listening" line) and requires a clean exit
    /// within [`BOUND`] without the broker having gone on to serve: a "listening" line read more
    /// than [`LATE`] after the signal means the startup ran on regardless.
    fn sigterm_during_startup(self) {
        let what = self.what.clone();
        let log = self.log.clone();
        let (sent, _, stdout) = self.sigterm();
        if let Ok((at, line)) = stdout.try_recv() {
            let after = at.saturating_duration_since(sent);
            eprintln!("{what}: the startup had completed; {line:?} read {after:?} after SIGTERM");
            assert!(
                after <= LATE,
                "{what}: {line:?} {after:?} after SIGTERM: the startup went on; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }

    /// Sends SIGTERM and requires a clean exit within [`BOUND`]; returns how long it took.
    fn sigterm_clean(self) -> Duration {
        self.sigterm().1
    }

    /// Sends SIGTERM, requires a clean exit within [`BOUND`]; returns when the signal was sent,
    /// how long the exit took and the unread stdout lines.
    fn sigterm(mut self) -> (Instant, Duration, Receiver<(Instant, String)>) {
        let t0 = Instant::now();
        process::sigterm(&self.child);
        let Some(status) = process::wait_exit(&mut self.child, BOUND) else {
            panic!(
                "{}: still running {BOUND:?} after SIGTERM; log:\n{}",
                self.what,
                self.log_text()
            );
        };
        let took = t0.elapsed();
        let log = self.log_text();
        assert!(
            status.success(),
            "{}: exit {status:?} after SIGTERM; log:\n{log}",
            self.what
        );
        assert!(
            log.contains("signal received") && log.contains("shutdown complete"),
            "{}: log lacks the signal or \"shutdown complete\":\n{log}",
            self.what
        );
        eprintln!("{}: clean exit {took:?} after SIGTERM", self.what);
        (t0, took, self.stdout)
    }
}

/// One request and its response frame, errors returned (the broker may be going away).
fn roundtrip<R: Encodable>(
    c: &mut Client,
    key: ApiKey,
    version: i16,
    req: &R,
) -> Result<(), Error> {
    c.try_send(key, version, req)?;
    c.recv_frame().map(drop)
}

fn create_topic(addr: SocketAddr, name: &str, partitions: i32) {
    let mut c = Client::connect(addr);
    let r: CreateTopicsResponse = c.call(
        ApiKey::CreateTopics,
        5,
        &create_topic_request(name, partitions, &[]).with_timeout_ms(60_000),
    );
    assert_eq!(r.topics[0].error_code, 0, "creating {name}");
}

/// A batch of `n` records of `size` bytes each.
fn big_batch(n: usize, size: usize) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| {
            record(
                i as i64,
                1_700_000_000_000,
                None,
                Some(vec![b'x'; size].into()),
            )
        })
        .collect();
    encode_batch(&records, Compression::None)
}

fn fetch_req(topic: &str, max_wait_ms: i32, min_bytes: i32, max_bytes: i32) -> FetchRequest {
    fetch_request(
        tn(topic),
        [fetch_partition(0, 0, max_bytes)],
        max_wait_ms,
        min_bytes,
        max_bytes,
    )
}

#[derive(Debug, Clone, Copy)]
enum Moment {
    /// As soon as the SIGTERM handler is installed (configuration, data dir lock, shard start).
    Immediately,
    /// At a random moment of the startup on a data dir with [`MANY`] partitions.
    DuringRecovery,
    /// While serving nothing.
    Idle,
    /// While producers send acks=1 and acks=-1 batches as fast as they can.
    UnderProduceLoad,
    /// While a fetch waits (max_wait 20 s) for data that never comes.
    DuringLongPoll,
    /// While a client has stopped reading the large fetch responses it asked for.
    StalledReader,
}

struct Setup {
    root: PathBuf,
    many: PathBuf,
    /// How long the broker took to start on `many`.
    many_startup: Duration,
    runs: AtomicU64,
}

impl Setup {
    fn fresh_dir(&self) -> (PathBuf, PathBuf) {
        let i = self.runs.fetch_add(1, Ordering::SeqCst);
        (
            self.root.join(format!("data-{i}")),
            self.root.join(format!("log-{i}.txt")),
        )
    }

    fn log_path(&self) -> PathBuf {
        let i = self.runs.fetch_add(1, Ordering::SeqCst);
        self.root.join(format!("log-{i}.txt"))
    }
}

fn run(setup: &Setup, moment: Moment, rng: &mut Rng) {
    let what = format!("{moment:?}");
    match moment {
        Moment::Immediately => {
            // Half the time on the big data dir, so the signal lands in recovery's first steps.
            let (data, log) = if rng.next().is_multiple_of(2) {
                (setup.many.clone(), setup.log_path())
            } else {
                setup.fresh_dir()
            };
            let mut b = Broker::spawn(&data, &log, &what);
            b.wait_handlers();
            std::thread::sleep(rng.between(Duration::ZERO, Duration::from_millis(5)));
            b.sigterm_during_startup();
        }
        Moment::DuringRecovery => {
            let mut b = Broker::spawn(&setup.many, &setup.log_path(), &what);
            b.wait_handlers();
            std::thread::sleep(rng.between(Duration::ZERO, setup.many_startup));
            b.sigterm_during_startup();
        }
        Moment::Idle => {
            let (data, log) = setup.fresh_dir();
            let mut b = Broker::spawn(&data, &log, &what);
            let addr = b.wait_listening();
            create_topic(addr, "idle", 2);
            std::thread::sleep(rng.between(Duration::ZERO, Duration::from_millis(300)));
            b.sigterm_clean();
        }
        Moment::UnderProduceLoad => {
            let (data, log) = setup.fresh_dir();
            let mut b = Broker::spawn(&data, &log, &what);
            let addr = b.wait_listening();
            create_topic(addr, "load", 4);
            let stop = Arc::new(AtomicBool::new(false));
            let acked = Arc::new(AtomicU64::new(0));
            let producers: Vec<_> = (0..3)
                .map(|t| {
                    let (stop, acked) = (stop.clone(), acked.clone());
                    std::thread::spawn(move || {
                        let Ok(mut c) = Client::try_connect(addr) else {
                            return;
                        };
                        let _ = c.stream.set_read_timeout(Some(Duration::from_secs(15)));
                        let records = batch("load", 50, 1_700_000_000_000);
                        let mut i = 0;
                        while !stop.load(Ordering::SeqCst) {
                            let acks = if i % 2 == 0 { 1 } else { -1 };
                            let req =
                                Client::produce_req("load", (t + i) % 4, acks, records.clone());
                            if roundtrip(&mut c, ApiKey::Produce, 9, &req).is_err() {
                                return;
                            }
                            acked.fetch_add(1, Ordering::SeqCst);
                            i += 1;
                        }
                    })
                })
                .collect();
            std::thread::sleep(rng.between(Duration::from_millis(100), Duration::from_millis(600)));
            assert!(acked.load(Ordering::SeqCst) > 0, "producers got no answer");
            b.sigterm_clean();
            stop.store(true, Ordering::SeqCst);
            for p in producers {
                p.join().unwrap();
            }
        }
        Moment::DuringLongPoll => {
            let (data, log) = setup.fresh_dir();
            let mut b = Broker::spawn(&data, &log, &what);
            let addr = b.wait_listening();
            create_topic(addr, "poll", 1);
            let poller = std::thread::spawn(move || {
                let mut c = Client::connect(addr); // read timeout 30 s
                let t0 = Instant::now();
                let answered = roundtrip(
                    &mut c,
                    ApiKey::Fetch,
                    12,
                    &fetch_req("poll", 20_000, 1, 1 << 20),
                )
                .is_ok();
                (answered, t0.elapsed())
            });
            std::thread::sleep(rng.between(Duration::from_millis(200), Duration::from_millis(500)));
            let took = b.sigterm_clean();
            let (answered, waited) = poller.join().unwrap();
            // The long poll ends with the shutdown, not after its 20 s.
            assert!(
                answered,
                "the long poll was answered before the broker left"
            );
            assert!(
                waited < Duration::from_secs(5),
                "long poll held for {waited:?}"
            );
            assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
        }
        Moment::StalledReader => {
            let (data, log) = setup.fresh_dir();
            let mut b = Broker::spawn(&data, &log, &what);
            let addr = b.wait_listening();
            create_topic(addr, "big", 1);
            let mut c = Client::connect(addr);
            let chunk = big_batch(14, 64 * 1024);
            for _ in 0..12 {
                assert_eq!(c.produce("big", 0, 1, chunk.clone(), 9).0, 0);
            }
            // About 11 MiB per response, 12 responses asked for and never read.
            let mut stalled = Client::connect(addr);
            for _ in 0..12 {
                stalled.send(ApiKey::Fetch, 12, &fetch_req("big", 0, 1, 16 << 20));
            }
            std::thread::sleep(rng.between(Duration::from_millis(300), Duration::from_millis(800)));
            let log = b.log.clone();
            b.sigterm_clean();
            // The shutdown said what it had waited for.
            let log = std::fs::read_to_string(log).unwrap();
            assert!(
                log.contains("did not drain within the shutdown grace period"),
                "no line about the stalled connection:\n{log}"
            );
            drop(stalled);
        }
    }
}

#[test]
fn sigterm_at_random_moments_exits_cleanly() {
    let seed = std::env::var("RINGBOLT_SIGNALS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("RINGBOLT_SIGNALS_SEED={seed}");
    let mut rng = Rng(seed);
    let t0 = Instant::now();
    let root = tempfile::tempdir().unwrap();

    // The data dir with many partitions, made once (and stopped with SIGTERM under no load).
    let many = root.path().join("many");
    let mut b = Broker::spawn(&many, &root.path().join("setup-1.txt"), "setup");
    let addr = b.wait_listening();
    create_topic(addr, "many", MANY);
    let mut c = Client::connect(addr);
    for p in 0..20 {
        assert_eq!(
            c.produce("many", p, 1, batch("m", 10, 1_700_000_000_000), 9)
                .0,
            0
        );
    }
    drop(c);
    b.sigterm_clean();
    let spawned = Instant::now();
    let mut b = Broker::spawn(&many, &root.path().join("setup-2.txt"), "startup on many");
    b.wait_listening();
    let many_startup = spawned.elapsed();
    eprintln!("startup on {MANY} partitions: {many_startup:?}");
    b.sigterm_clean();

    let setup = Setup {
        root: root.path().to_owned(),
        many,
        many_startup,
        runs: AtomicU64::new(0),
    };
    let mut moments = Vec::new();
    for _ in 0..2 {
        moments.extend([
            Moment::Immediately,
            Moment::DuringRecovery,
            Moment::Idle,
            Moment::UnderProduceLoad,
            Moment::DuringLongPoll,
            Moment::StalledReader,
        ]);
    }
    moments.extend([Moment::Immediately, Moment::DuringRecovery]);
    // Fisher-Yates with the seeded generator.
    for i in (1..moments.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        moments.swap(i, j);
    }
    for m in moments {
        run(&setup, m, &mut rng);
    }
    eprintln!("all moments in {:?}", t0.elapsed());
}

/// The "listening" line goes to stdout; a reader that went away before it (EPIPE) must not take
/// the broker down (println! panics on it, and the panic hook aborts the process).
#[test]
fn stdout_reader_gone_is_not_fatal() {
    let root = tempfile::tempdir().unwrap();
    let log = root.path().join("log.txt");
    let mut b = Broker::spawn_with(&root.path().join("data"), &log, "stdout reader gone", false);
    let t0 = Instant::now();
    while !b.log_text().contains("broker listening") {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "not started:\n{}",
            b.log_text()
        );
        assert!(
            b.child.try_wait().unwrap().is_none(),
            "exited:\n{}",
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        b.child.try_wait().unwrap().is_none(),
        "exited:\n{}",
        b.log_text()
    );
    b.sigterm_clean();
}

/// A stderr nobody reads (a full pipe) must not stall the broker: it keeps serving while it logs
/// more than the pipe holds, and SIGTERM still stops it cleanly (the log lines that did not fit
/// are dropped).
#[test]
fn stalled_stderr_stalls_nothing() {
    let root = tempfile::tempdir().unwrap();
    let mut child = process::serve(&root.path().join("data"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kept open and never read.
    let _stderr = child.stderr.take().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = process::listening_addr(&line).unwrap();
    // Each bad frame is a warning line: far more than a pipe's 64 KiB.
    let t0 = Instant::now();
    for _ in 0..1500 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&(-1i32).to_be_bytes()).unwrap();
        let mut b = [0u8; 1];
        let closed = matches!(s.read(&mut b), Ok(0) | Err(_));
        assert!(closed, "bad frame not answered by closing");
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "broker stalled by its stderr"
        );
    }
    // Still serving.
    let mut c = Client::connect(addr);
    assert_eq!(c.produce("after-flood", 0, 1, batch("x", 3, 1), 9).0, 0);
    process::sigterm(&child);
    let status = process::wait_exit(&mut child, BOUND)
        .unwrap_or_else(|| panic!("still running {BOUND:?} after SIGTERM with a stalled stderr"));
    assert!(status.success(), "exit {status:?}");
}
