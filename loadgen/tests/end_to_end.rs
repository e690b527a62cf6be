//! End-to-end runs of the loadgen binary with small bounded figures.
//!
//! By default the runs use the embedded Ringbolt broker (no `--bootstrap`), exactly as a newcomer's
//! first command. Set `LOADGEN_TEST_BOOTSTRAP=host:port` to run the same tests against another
//! Kafka-compatible broker (e.g. the reference Apache Kafka of `benches/kafka/start.sh`).

use std::path::Path;
use std::process::Command;

use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::protocol::StrBytes;
use loadgen::batch::{BatchBuilder, Compression};
use loadgen::client::{Conn, ensure_topic};
use loadgen::message::MessageHeader;

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Runs the loadgen binary; returns (exit code, stdout).
fn loadgen(extra: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    if let Ok(b) = std::env::var("LOADGEN_TEST_BOOTSTRAP") {
        cmd.args(["--bootstrap", &b]);
    }
    let out = cmd.args(extra).output().expect("running loadgen");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

fn read_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn both_mode_run_passes_and_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("lg-e2e");
    let (code, stdout) = loadgen(&[
        "--rate",
        "20000",
        "--duration",
        "3",
        "--warmup",
        "1",
        "--partitions",
        "4",
        "--topic",
        &topic,
        "--expect-produce",
        "15000",
        "--expect-consume",
        "20000",
        "--expect-p99-us",
        "5000000",
        // A debug build of broker and loadgen on a shared machine: bounds as loose as the p99's.
        "--max-schedule-lag-ms",
        "5000",
        "--report-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "run failed:\n{stdout}");
    assert!(stdout.contains("PASS produce rate"));
    assert!(stdout.contains("PASS produce schedule"));
    assert!(stdout.contains("PASS verification"));
    for f in [
        "summary.json",
        "produce.hgrm",
        "e2e.hgrm",
        "latency.svg",
        "throughput.svg",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let j = read_json(dir.path());
    for section in ["produce", "consume"] {
        for k in ["messages", "msgs_per_sec", "mb_per_sec"] {
            assert!(j[section][k].is_number(), "{section}.{k}");
        }
    }
    for lat in [&j["produce"]["latency_us"], &j["e2e"]["latency_us"]] {
        for k in ["p50", "p90", "p99", "p999", "p9999", "max"] {
            assert!(lat[k].as_u64().unwrap() > 0, "{k}");
        }
        assert!(lat["p50"].as_u64() <= lat["p99"].as_u64());
        assert!(lat["p99"].as_u64() <= lat["max"].as_u64());
    }
    assert!(j["produce"]["end_lag_us"].is_u64());
    assert_eq!(j["errors"], 0);
    assert_eq!(j["passed"], true);
    assert_eq!(j["config"]["rate"], 20000);
    assert_eq!(j["config"]["topic"], topic.as_str());
    assert!(j["broker"].as_str().unwrap().len() > 3);
    // 3 s at 20k msg/s after the warmup; every produced message (warmup included) read back twice.
    let measured = j["produce"]["messages"].as_u64().unwrap();
    assert!((59_000..=61_000).contains(&measured), "{measured}");
    let total = j["produce"]["total_messages"].as_u64().unwrap();
    assert_eq!(j["consume"]["messages"].as_u64().unwrap(), total);
    assert_eq!(j["consume"]["live_messages"].as_u64().unwrap(), total);
    assert_eq!(j["verification"]["checked"].as_u64().unwrap(), 2 * total);
    let hgrm = std::fs::read_to_string(dir.path().join("e2e.hgrm")).unwrap();
    assert!(hgrm.contains(&format!("Total count    = {measured:>12}")));
}

/// Writes records with a loadgen header of a made-up run straight into partition 0.
fn inject(bootstrap: &str, topic: &str, seqs: &[u64]) {
    let mut conn = Conn::connect(bootstrap).unwrap();
    ensure_topic(&mut conn, topic, 1, true).unwrap();
    let mut b = BatchBuilder::new(Compression::None, 1 << 16);
    for &seq in seqs {
        let h = MessageHeader {
            run_id: 4242,
            scheduled_ns: 1,
            producer: 0,
            seq,
        }
        .encode();
        b.append(1, None, &[&h, &[7u8; 40]]);
    }
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(b.finish().unwrap()),
                ]),
        ]);
    let version = conn.api.produce;
    let resp = conn.call(version, &req).unwrap();
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
}

#[test]
fn consume_mode_catches_gaps_and_duplicates_and_exits_1() {
    // Bad data goes into LOADGEN_TEST_BOOTSTRAP's broker when given, else into an embedded broker
    // started by this test process (a loadgen process's own embedded broker dies with it).
    let Ok(bootstrap) = std::env::var("LOADGEN_TEST_BOOTSTRAP") else {
        return consume_mode_catches_gaps_embedded();
    };
    let topic = unique("lg-bad");
    inject(&bootstrap, &topic, &[0, 1, 3, 3, 4]); // 2 missing, 3 twice
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout) = loadgen(&[
        "--mode",
        "consume",
        "--topic",
        &topic,
        "--expect-consume",
        "0",
        "--report-dir",
        dir.path().to_str().unwrap(),
    ]);
    check_bad_run(code, &stdout, dir.path());
}

fn check_bad_run(code: i32, stdout: &str, dir: &Path) {
    assert_eq!(code, 1, "a run with violations must exit 1:\n{stdout}");
    assert!(stdout.contains("FAIL verification"));
    assert!(
        stdout.contains("gap: partition 0 producer 0 at offset 2: expected seq 2, got 3"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "duplicate/reorder: partition 0 producer 0 at offset 3: expected seq 4, got 3"
        )
    );
    let j = read_json(dir);
    assert_eq!(j["passed"], false);
    assert_eq!(j["verification"]["violations"], 2);
    assert_eq!(j["verification"]["checked"], 5);
}

/// Embedded variant: start the broker in this process, inject, then run loadgen against it.
fn consume_mode_catches_gaps_embedded() {
    let broker = loadgen::embedded::Embedded::start(1).expect("embedded broker");
    let bootstrap = broker.addr().to_string();
    let topic = unique("lg-bad");
    inject(&bootstrap, &topic, &[0, 1, 3, 3, 4]);
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--bootstrap",
            &bootstrap,
            "--mode",
            "consume",
            "--topic",
            &topic,
            "--expect-consume",
            "0",
        ])
        .args(["--report-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    check_bad_run(out.status.code().unwrap_or(-1), &stdout, dir.path());
    broker.shutdown().unwrap();
}
