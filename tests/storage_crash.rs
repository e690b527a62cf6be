//! Crash test: a child process (this test binary re-executed, running `crash_child`) appends
//! under load, awaiting durability, and prints every durable batch (offsets + CRC-32C of the
//! exact stored bytes). The parent kill -9s it at random moments, ~25 times on the same data
//! directory; after each kill it reopens the log and checks that every batch reported durable is
//! present at its offsets with identical bytes, that offsets are dense, and that appends work
//! again.

mod storage_common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringbolt::protocol::record_batch::{self, validate_all};
use ringbolt::storage::{LogConfig, PartitionLog};
use storage_common::{batch, run};

const DIR_ENV: &str = "RINGBOLT_CRASH_CHILD_DIR";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 512 * 1024,
        index_interval_bytes: 4096,
        ..LogConfig::default()
    }
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Runs only when re-executed by the parent (a no-op in a normal test run).
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    run(move || async move {
        let log = Rc::new(PartitionLog::open(&dir, config()).await.unwrap());
        let mut tasks = Vec::new();
        for w in 0..6u64 {
            let log = log.clone();
            tasks.push(glommio::spawn_local(async move {
                let mut rng =
                    XorShift(0x9E37_79B9_7F4A_7C15 ^ ((w + 1) * 7919) ^ std::process::id() as u64);
                loop {
                    let n = 1 + (rng.next() % 20) as usize;
                    let vlen = (rng.next() % 2000) as usize;
                    let b = batch(
                        n,
                        vlen,
                        1_000 + (rng.next() % 1000) as i64,
                        rng.next() as u8,
                    );
                    let mut stored = b.to_vec();
                    let info = log.append(b).await.unwrap();
                    log.wait_durable(info.last_offset).await.unwrap();
                    record_batch::set_base_offset(&mut stored, info.base_offset);
                    record_batch::set_partition_leader_epoch(&mut stored, 0);
                    let crc = crc32c::crc32c(&stored);
                    let mut out = std::io::stdout().lock();
                    writeln!(
                        out,
                        "D {} {} {} {}",
                        info.base_offset,
                        info.last_offset,
                        stored.len(),
                        crc
                    )
                    .unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        // The writers loop until the parent kills the process.
        let _running = tasks;
        futures_lite::future::pending::<()>().await;
    });
}

#[test]
fn kill9_keeps_every_durable_batch() {
    if std::env::var(DIR_ENV).is_ok() {
        return;
    }
    storage_common::init_tracing();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("crash-0");
    let exe = std::env::current_exe().unwrap();
    let mut rng = XorShift(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut durable: Vec<(i64, i64, usize, u32)> = Vec::new();
    let mut kills = 0;
    while kills < 25 && Instant::now() < deadline {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(DIR_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(tmp.path().join("child.err")).unwrap(),
            ))
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
        // Wait for the first durable append (the child is up), then a random extra delay.
        // (libtest prints its own lines on stdout first.)
        let mut lines = Vec::new();
        let up_by = Instant::now() + Duration::from_secs(20);
        while let Ok(l) = rx.recv_timeout(up_by.saturating_duration_since(Instant::now())) {
            let first_durable = l.starts_with("D ");
            lines.push(l);
            if first_durable {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(rng.next() % 300));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        kills += 1;
        let before = durable.len();
        for l in lines {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() == 5 && f[0] == "D" {
                durable.push((
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                    f[4].parse().unwrap(),
                ));
            }
        }
        assert!(
            durable.len() > before,
            "child reported no durable batch in round {kills}; its stderr:\n{}",
            std::fs::read_to_string(tmp.path().join("child.err")).unwrap_or_default()
        );

        // Reopen and verify every batch reported durable so far.
        let d2 = dir.clone();
        let check = durable.clone();
        run(move || async move {
            let log = PartitionLog::open(&d2, config()).await.unwrap();
            let hw = log.high_watermark();
            for &(base, last, len, crc) in &check {
                assert!(
                    last < hw,
                    "durable offset {last} lost (high watermark {hw})"
                );
                let r = log.read(base, 1).await.unwrap();
                let bytes = r.read_to_vec().unwrap();
                let hs = validate_all(&bytes).unwrap();
                assert_eq!((hs[0].base_offset, hs[0].last_offset()), (base, last));
                assert_eq!(bytes.len(), len);
                assert_eq!(crc32c::crc32c(&bytes), crc, "bytes of batch {base} differ");
            }
            // Offsets are dense from 0 to the high watermark.
            let all = log.read(0, u32::MAX).await.unwrap().read_to_vec().unwrap();
            let mut next = 0;
            for h in validate_all(&all).unwrap() {
                assert_eq!(h.base_offset, next);
                next = h.last_offset() + 1;
            }
            assert_eq!(next, hw);
            // The log accepts appends again.
            let a = log
                .append(BytesMut::from(&batch(1, 10, 5, 5)[..]))
                .await
                .unwrap();
            assert_eq!(a.base_offset, hw);
            log.wait_durable(a.last_offset).await.unwrap();
            log.close().await.unwrap();
        });
    }
    assert!(
        kills >= 10,
        "only {kills} kill rounds within the time bound"
    );
    eprintln!(
        "crash test: {kills} kill -9 rounds, {} durable batches verified",
        durable.len()
    );
}
