//! ListOffsets over the wire, max timestamp (-3, KIP-734): the answer is the offset of the first
//! record carrying the partition's largest timestamp, with that timestamp — inside one batch,
//! across batches and segments, compressed, after a restart and after retention deleted the
//! segment that held it; an empty partition answers -1/-1. Versions below 7 get
//! UNSUPPORTED_VERSION for it, as from Kafka. By timestamp inside compressed batches, too.

mod server_util;

use bytes::Bytes;
use ringbolt::protocol::compression::{self, Codec};
use ringbolt::protocol::record_batch::{SimpleRecord, build_batch};
use server_util::{Client, config, init_logs};

const MAX_TIMESTAMP: i64 = -3;

/// (error code, offset, timestamp, leader epoch) of partition 0.
fn ask(c: &mut Client, topic: &str, ts: i64, v: i16) -> (i16, i64, i64, i32) {
    let p = c.list_offset(topic, 0, ts, v);
    (p.error_code, p.offset, p.timestamp, p.leader_epoch)
}

/// (offset, timestamp) from a v7 max-timestamp request that must succeed.
fn max_ts(c: &mut Client, topic: &str) -> (i64, i64) {
    let (e, off, ts, _) = ask(c, topic, MAX_TIMESTAMP, 7);
    assert_eq!(e, 0, "max timestamp of {topic}");
    (off, ts)
}

fn ts_batch(ts: &[i64], value_len: usize) -> Vec<u8> {
    let value = vec![b'x'; value_len];
    let recs: Vec<SimpleRecord<'_>> = ts.iter().map(|t| (*t, None, value.as_slice())).collect();
    build_batch(0, &recs, -1, -1, -1)
}

fn produce(c: &mut Client, topic: &str, batch: Vec<u8>) -> i64 {
    let (e, base) = c.produce(topic, 0, -1, Bytes::from(batch), 9);
    assert_eq!(e, 0, "produce to {topic}");
    base
}

#[test]
fn max_timestamp_is_the_record_carrying_it() {
    let dir = tempfile::tempdir().unwrap();
    init_logs();
    let broker = ringbolt::server::spawn_broker(config(dir.path(), 2)).unwrap();
    let mut c = Client::connect(broker.local_addr());
    assert_eq!(c.create_topic("mt", 1, &[], 7).topics[0].error_code, 0);

    // Empty partition: no offset, no timestamp, no epoch (Kafka's "not found").
    assert_eq!(ask(&mut c, "mt", MAX_TIMESTAMP, 7), (0, -1, -1, -1));

    let t = 1_700_000_000_000;
    assert_eq!(
        produce(&mut c, "mt", ts_batch(&[t + 100, t + 400, t + 250], 8)),
        0
    );
    // The batch ends at offset 2; the record with the max timestamp is offset 1.
    assert_eq!(ask(&mut c, "mt", MAX_TIMESTAMP, 7), (0, 1, t + 400, 0));
    // Before v7 the max-timestamp query does not exist (Kafka: UNSUPPORTED_VERSION).
    for v in [1i16, 4, 6] {
        assert_eq!(
            ask(&mut c, "mt", MAX_TIMESTAMP, v),
            (35, -1, -1, -1),
            "v{v}"
        );
    }
    // Other negative timestamps are unsupported too; earliest and latest still work.
    assert_eq!(ask(&mut c, "mt", -7, 7).0, 35);
    assert_eq!(ask(&mut c, "mt", -2, 7).1, 0);
    assert_eq!(ask(&mut c, "mt", -1, 7).1, 3);

    // A later batch that only ties the max does not move the answer; one that beats it does.
    assert_eq!(produce(&mut c, "mt", ts_batch(&[t + 1, t + 400], 8)), 3);
    assert_eq!(max_ts(&mut c, "mt"), (1, t + 400));
    assert_eq!(
        produce(&mut c, "mt", ts_batch(&[t, t + 900, t + 2, t + 900], 8)),
        5
    );
    assert_eq!(max_ts(&mut c, "mt"), (6, t + 900));

    // Compressed batches are decoded for the record's offset.
    for (i, codec) in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd]
        .into_iter()
        .enumerate()
    {
        let top = t + 10_000 * (i as i64 + 1);
        let b =
            compression::recompress_batch(&ts_batch(&[top - 5, top - 1, top, top - 3], 300), codec)
                .unwrap();
        let base = produce(&mut c, "mt", b);
        assert_eq!(max_ts(&mut c, "mt"), (base + 2, top), "{}", codec.name());
        // By timestamp too: the first record at or after it, with its own timestamp.
        let (e, off, ts, _) = ask(&mut c, "mt", top - 2, 7);
        assert_eq!(
            (e, off, ts),
            (0, base + 1, top - 1),
            "by time, {}",
            codec.name()
        );
    }
    broker.shutdown().unwrap();
}

/// Small segments: the max sits in an early sealed segment. It survives a restart (recovery),
/// and once retention deletes that segment the answer is the best record that remains.
#[test]
fn max_timestamp_across_segments_restart_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    init_logs();
    // Recent timestamps: the default retention.ms (7 days) must not touch them.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    let mut sizes = Vec::new();
    let (want, runner_up) = {
        let broker = ringbolt::server::spawn_broker(config(dir.path(), 2)).unwrap();
        let mut c = Client::connect(broker.local_addr());
        let r = c.create_topic("seg", 1, &[("segment.bytes", "1024")], 7);
        assert_eq!(r.topics[0].error_code, 0);
        let mut want = None;
        let mut runner_up = None;
        for i in 0..30i64 {
            let ts = match i {
                1 => vec![t + 10, t + 9_000, t + 20],
                12 => vec![t + 5, t + 8_000, t + 8_000],
                20 => vec![t + 8_000],
                _ => vec![t + i, t + 100 + i],
            };
            let b = ts_batch(&ts, 120);
            sizes.push(b.len() as i64);
            let base = produce(&mut c, "seg", b);
            match i {
                1 => want = Some((base + 1, t + 9_000)),
                12 => runner_up = Some((base + 1, t + 8_000)),
                _ => {}
            }
        }
        assert_eq!(Some(max_ts(&mut c, "seg")), want);
        broker.shutdown().unwrap();
        (want.unwrap(), runner_up.unwrap())
    };

    // Restart: segments are reopened (the active one recovered); same answer.
    {
        let broker = ringbolt::server::spawn_broker(config(dir.path(), 1)).unwrap();
        let mut c = Client::connect(broker.local_addr());
        assert_eq!(max_ts(&mut c, "seg"), want, "after restart");
        broker.shutdown().unwrap();
    }

    // Restart with retention by size that drops the first few segments (which hold the max
    // but not the runner-up), checked every 50 ms.
    let mut cfg = config(dir.path(), 1);
    cfg.settings.log_retention_check_interval_ms = 50;
    let total: i64 = sizes.iter().sum();
    cfg.settings.log_retention_bytes = total - sizes[..6].iter().sum::<i64>();
    let broker = ringbolt::server::spawn_broker(cfg).unwrap();
    let mut c = Client::connect(broker.local_addr());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while ask(&mut c, "seg", -2, 7).1 <= want.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "retention did not delete the segment holding offset {}",
            want.0
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let start = ask(&mut c, "seg", -2, 7).1;
    assert!(
        start <= runner_up.0,
        "retention went too far: log start {start}"
    );
    assert_eq!(max_ts(&mut c, "seg"), runner_up, "after retention");
    broker.shutdown().unwrap();
}
