//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use std::future::Future;

use bytes::BytesMut;
use ringbolt::protocol::record_batch::{SimpleRecord, build_batch};

/// Runs `f` on a fresh glommio executor with a small I/O memory reservation (tests run in
/// parallel under an 8 MiB `ulimit -l`).
pub(crate) fn run<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .io_memory(512 << 10)
        .spawn(f)
        .expect("spawn executor")
        .join()
        .expect("executor thread")
}

/// Runs `f` with a fresh default-config log in a temporary `t-0` directory (see [`run`]).
pub(crate) fn with_new_log<F, Fut>(f: F)
where
    F: FnOnce(ringbolt::storage::PartitionLog, std::path::PathBuf) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    run(move || async move {
        let log = ringbolt::storage::PartitionLog::open(&dir, Default::default())
            .await
            .unwrap();
        f(log, dir).await
    });
}

/// A batch of `n` records with values of `value_len` bytes and timestamps `ts, ts+1, ...`.
pub(crate) fn batch(n: usize, value_len: usize, ts: i64, seed: u8) -> BytesMut {
    let values: Vec<Vec<u8>> = (0..n)
        .map(|i| vec![seed.wrapping_add(i as u8); value_len])
        .collect();
    let recs: Vec<SimpleRecord<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (ts + i as i64, None, v.as_slice()))
        .collect();
    BytesMut::from(&build_batch(0, &recs, -1, -1, -1)[..])
}

pub(crate) fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
