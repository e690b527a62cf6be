//! Compacted topics through the broker: keyless records refused with Kafka's INVALID_RECORD and
//! record errors; and kill -9 of the real `ringbolt serve` process while its cleaner rewrites
//! segments loses no acknowledged record (every key's last acknowledged value is what a
//! consumer from the beginning ends with, at its offset, after each restart).

mod server_util;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::fetch_response::FetchResponse;
use kafka_protocol::messages::produce_response::ProduceResponse;
use kafka_protocol::records::{Compression, Record};
use kafka_test_client::records::{encode_batch, record};
use kafka_test_client::requests::{fetch_partition, fetch_request};
use ringbolt::format::{record_batch, records};
use server_util::*;

fn kv(records: &[(String, Option<String>)], ts: i64) -> Bytes {
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            record(
                i as i64,
                ts,
                Some(Bytes::from(k.clone())),
                v.clone().map(Bytes::from),
            )
        })
        .collect();
    encode_batch(&recs, Compression::None)
}

#[test]
fn keyless_records_in_a_compacted_topic_are_invalid_record() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 2);
    let mut c = Client::connect(broker.local_addr());
    let r = c.create_topic("cmp", 1, &[("cleanup.policy", "compact")], 7);
    assert_eq!(r.topics[0].error_code, 0);
    // The second record of the batch has no key.
    let recs = vec![
        record(
            0,
            1,
            Some(Bytes::from_static(b"k")),
            Some(Bytes::from_static(b"v")),
        ),
        record(1, 1, None, Some(Bytes::from_static(b"v"))),
    ];
    let b = encode_batch(&recs, Compression::Gzip);
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &Client::produce_req("cmp", 0, -1, b));
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 87, "INVALID_RECORD");
    let m = "Compacted topic cannot accept message without key in topic partition cmp-0";
    assert_eq!(p.record_errors.len(), 1);
    assert_eq!(p.record_errors[0].batch_index, 1);
    assert_eq!(
        p.record_errors[0].batch_index_error_message.as_deref(),
        Some(m)
    );
    assert_eq!(
        p.error_message.as_deref(),
        Some(&*format!(
            "One or more records have been rejected due to 1 record errors in total, and only showing the first three errors at most: [RecordError(batchIndex=1, message='{m}')]"
        ))
    );
    // Nothing was appended; keyed records go in; a delete-policy topic takes keyless ones.
    assert_eq!(
        c.produce("cmp", 0, -1, kv(&[("k".into(), Some("v".into()))], 1), 9),
        (0, 0)
    );
    assert_eq!(c.create_topic("del", 1, &[], 7).topics[0].error_code, 0);
    assert_eq!(c.produce("del", 0, -1, batch("x", 3, 1), 9), (0, 0));
}

/// Every record of partition 0 of `topic`, from the log start: (offset, key, value).
fn fetch_all(c: &mut Client, topic: &str) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let req = fetch_request(
            tn(topic),
            [fetch_partition(0, offset, 1 << 20)],
            0,
            1,
            1 << 20,
        );
        let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req);
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "fetch at {offset}");
        let bytes = p.records.clone().unwrap_or_default();
        let mut pos = 0;
        let mut progressed = false;
        while pos < bytes.len() {
            let Ok(h) = record_batch::validate_stored_batch(&bytes[pos..]) else {
                break; // a partial batch at the end of the response
            };
            let batch = &bytes[pos..pos + h.total_len()];
            pos += h.total_len();
            let (h, raw) = records::decode(batch).unwrap();
            for r in records::parse_records(&h, &raw).unwrap() {
                let o = h.base_offset + r.offset_delta;
                if o >= offset {
                    out.push((
                        o,
                        String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                        r.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                    ));
                }
            }
            if h.last_offset() >= offset {
                offset = h.last_offset() + 1;
                progressed = true;
            }
        }
        if offset >= p.high_watermark || !progressed {
            assert!(
                offset >= p.high_watermark,
                "stuck at {offset} below {}",
                p.high_watermark
            );
            return out;
        }
    }
}

fn has_cleaner_files(data: &Path) -> bool {
    std::fs::read_dir(data.join("cmp-0")).is_ok_and(|d| {
        d.filter_map(|e| e.ok()).any(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.ends_with(".cleaned") || n.ends_with(".swap") || n.ends_with(".replaces")
        })
    })
}

#[test]
fn kill_9_of_the_broker_while_cleaning_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let conf = dir.path().join("broker.toml");
    // A slow cleaner that never sleeps long, so kills land inside passes.
    std::fs::write(
        &conf,
        "\"log.cleaner.backoff.ms\" = 20\n\"log.cleaner.io.max.bytes.per.second\" = 400000\n",
    )
    .unwrap();
    let spawn = || {
        let mut cmd = server_util::process::serve(&data);
        cmd.arg("--config").arg(&conf).env("RUST_LOG", "warn");
        server_util::process::spawn_listening(cmd)
    };
    let (mut child, addr) = spawn();
    let mut c = Client::connect(addr);
    let configs = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "65536"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("delete.retention.ms", "0"),
    ];
    assert_eq!(
        c.create_topic("cmp", 1, &configs, 7).topics[0].error_code,
        0
    );
    let mut expected: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
    let mut kills_mid_pass = 0;
    let rounds = 6;
    for round in 0..rounds {
        // 200 keys, two versions each, 10 records per acks=all produce; every 9th key deleted.
        for version in 0..2 {
            for chunk in 0..20 {
                let recs: Vec<(String, Option<String>)> = (0..10)
                    .map(|i| {
                        let k = chunk * 10 + i;
                        let v = if version == 1 && k % 9 == round % 9 {
                            None
                        } else {
                            Some(format!("r{round}v{version}-{k}-{}", "x".repeat(300)))
                        };
                        (format!("key-{k:03}"), v)
                    })
                    .collect();
                let (err, base) = c.produce("cmp", 0, -1, kv(&recs, 1_000 + round as i64), 9);
                assert_eq!(err, 0);
                for (i, (k, v)) in recs.into_iter().enumerate() {
                    expected.insert(k, (base + i as i64, v));
                }
            }
        }
        // Wait until the cleaner is writing, then kill -9 a little later.
        let t0 = Instant::now();
        while !has_cleaner_files(&data) && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis((round as u64 * 53) % 250));
        if has_cleaner_files(&data) {
            kills_mid_pass += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let (c2, a2) = spawn();
        child = c2;
        c = Client::connect(a2);
        let got = fetch_all(&mut c, "cmp");
        let mut view = BTreeMap::new();
        for (o, k, v) in &got {
            view.insert(k.clone(), (*o, v.clone()));
        }
        for (k, want) in &expected {
            match view.get(k) {
                Some(have) => assert_eq!(have, want, "round {round}: key {k}"),
                None => assert!(want.1.is_none(), "round {round}: live key {k} lost"),
            }
        }
        assert!(view.len() <= expected.len());
    }
    eprintln!("{kills_mid_pass} of {rounds} kills while the cleaner had files on disk");
    // The cleaner finishes after the last restart. Two large filler records roll the active
    // segment (which is never cleaned), so every key's records end up in closed segments: one
    // record per live key remains, and no tombstone (`delete.retention.ms` = 0).
    for i in 0..3 {
        let big = kv(&[("filler".into(), Some("f".repeat(40_000 + i)))], 5_000);
        assert_eq!(c.produce("cmp", 0, -1, big, 9).0, 0);
    }
    let live: BTreeMap<&String, &(i64, Option<String>)> =
        expected.iter().filter(|(_, v)| v.1.is_some()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: Vec<_> = fetch_all(&mut c, "cmp")
            .into_iter()
            .filter(|r| r.1 != "filler")
            .collect();
        let view: BTreeMap<&String, (i64, Option<String>)> =
            got.iter().map(|(o, k, v)| (k, (*o, v.clone()))).collect();
        let done = got.len() == live.len() && live.iter().all(|(k, v)| view.get(*k) == Some(*v));
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} records left for {} live keys",
            got.len(),
            live.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
