//! Open-loop behaviour against a scripted broker that stalls once.
//!
//! A tiny in-test Kafka "broker" (ApiVersions, Metadata, ListOffsets, Produce; no storage) answers
//! every Produce at once, except that it holds its answers for 300 ms once, 1 s into the run. With a
//! closed-loop measurement only the few requests in flight during the stall would look slow; with
//! loadgen's open loop every message *scheduled* during the stall is late by the remaining stall
//! time, so at 10,000 msg/s about 2,000 messages must show ≥ 100 ms of latency.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};
use kafka_protocol::messages::list_offsets_request::ListOffsetsRequest;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_request::ProduceRequest;
use kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, BrokerId, ResponseHeader};
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, StrBytes, decode_request_header_from_buffer,
};

const STALL: Duration = Duration::from_millis(300);

fn respond<R: Encodable + HeaderVersion>(
    s: &mut TcpStream,
    key: ApiKey,
    version: i16,
    corr: i32,
    body: &R,
) {
    let mut out = BytesMut::new();
    out.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(corr)
        .encode(&mut out, key.response_header_version(version))
        .unwrap();
    body.encode(&mut out, version).unwrap();
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    s.write_all(&out).unwrap();
}

fn serve(mut s: TcpStream, port: u16, start: Instant, stalled: Arc<AtomicBool>) {
    loop {
        let mut len = [0u8; 4];
        if s.read_exact(&mut len).is_err() {
            return;
        }
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).unwrap();
        let mut b = Bytes::from(buf);
        let h = decode_request_header_from_buffer(&mut b).unwrap();
        let (v, corr) = (h.request_api_version, h.correlation_id);
        match ApiKey::try_from(h.request_api_key).unwrap() {
            ApiKey::ApiVersions => {
                let keys = [
                    (ApiKey::Produce, 3, 9),
                    (ApiKey::Metadata, 1, 12),
                    (ApiKey::ListOffsets, 1, 7),
                    (ApiKey::Fetch, 4, 12),
                    (ApiKey::ApiVersions, 0, 3),
                ];
                let resp = ApiVersionsResponse::default().with_api_keys(
                    keys.iter()
                        .map(|&(k, lo, hi)| {
                            ApiVersion::default()
                                .with_api_key(k as i16)
                                .with_min_version(lo)
                                .with_max_version(hi)
                        })
                        .collect(),
                );
                respond(&mut s, ApiKey::ApiVersions, v, corr, &resp);
            }
            ApiKey::Metadata => {
                let req = MetadataRequest::decode(&mut b, v).unwrap();
                let name = req.topics.unwrap()[0].name.clone();
                let resp = MetadataResponse::default()
                    .with_brokers(vec![
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(0))
                            .with_host(StrBytes::from_static_str("127.0.0.1"))
                            .with_port(i32::from(port)),
                    ])
                    .with_topics(vec![
                        MetadataResponseTopic::default()
                            .with_name(name)
                            .with_partitions(vec![
                                MetadataResponsePartition::default()
                                    .with_partition_index(0)
                                    .with_leader_id(BrokerId(0)),
                            ]),
                    ]);
                respond(&mut s, ApiKey::Metadata, v, corr, &resp);
            }
            ApiKey::ListOffsets => {
                let req = ListOffsetsRequest::decode(&mut b, v).unwrap();
                let t = &req.topics[0];
                let resp = ListOffsetsResponse::default().with_topics(vec![
                    ListOffsetsTopicResponse::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    ListOffsetsPartitionResponse::default()
                                        .with_partition_index(p.partition_index)
                                })
                                .collect(),
                        ),
                ]);
                respond(&mut s, ApiKey::ListOffsets, v, corr, &resp);
            }
            ApiKey::Produce => {
                let req = ProduceRequest::decode(&mut b, v).unwrap();
                if start.elapsed() > Duration::from_secs(1) && !stalled.swap(true, Ordering::SeqCst)
                {
                    std::thread::sleep(STALL);
                }
                let resp = ProduceResponse::default().with_responses(
                    req.topic_data
                        .iter()
                        .map(|t| {
                            TopicProduceResponse::default()
                                .with_name(t.name.clone())
                                .with_partition_responses(
                                    t.partition_data
                                        .iter()
                                        .map(|p| {
                                            PartitionProduceResponse::default().with_index(p.index)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
                respond(&mut s, ApiKey::Produce, v, corr, &resp);
            }
            k => panic!("unexpected request {k:?}"),
        }
    }
}

#[test]
fn a_stall_shows_up_as_latency_for_every_message_scheduled_during_it() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let start = Instant::now();
    let stalled = Arc::new(AtomicBool::new(false));
    let st = stalled.clone();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let st = st.clone();
            std::thread::spawn(move || serve(s.unwrap(), port, start, st));
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--bootstrap",
            &format!("127.0.0.1:{port}"),
            "--mode",
            "produce",
            "--rate",
            "10000",
        ])
        .args([
            "--duration",
            "2.5",
            "--warmup",
            "0",
            "--producers",
            "1",
            "--expect-produce",
            "0",
        ])
        .args(["--report-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stalled.load(Ordering::SeqCst), "the broker never stalled");
    // Count messages at >= 100 ms from the percentile distribution (values in ms).
    let hgrm = std::fs::read_to_string(dir.path().join("produce.hgrm")).unwrap();
    let rows: Vec<(f64, u64)> = hgrm
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.first()?.parse().ok()?, f.get(2)?.parse().ok()?))
        })
        .collect();
    let total = rows.last().unwrap().1;
    let below_100ms = rows
        .iter()
        .filter(|(v, _)| *v < 100.0)
        .map(|r| r.1)
        .max()
        .unwrap();
    let slow = total - below_100ms;
    eprintln!("{slow} of {total} messages at >= 100 ms");
    assert!((24_000..=26_000).contains(&total), "{total}");
    assert!(
        slow >= 1_500,
        "only {slow} messages saw >= 100 ms; the stall was hidden (coordinated omission)"
    );
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert!(j["produce"]["latency_us"]["max"].as_u64().unwrap() >= 250_000);
}
