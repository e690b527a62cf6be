//! Bad input: oversized and negative frame sizes, garbage headers, unknown API keys, unsupported
//! versions, truncated frames. Each closes only the offending connection; others keep working.

mod server_util;

use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::metadata_request::MetadataRequest;
use ringbolt::server::spawn_broker;
use server_util::*;

fn still_serving(c: &mut Client) {
    let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(r.error_code, 0);
}

#[test]
fn bad_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    init_logs();
    let mut cfg = config(dir.path(), 2);
    cfg.settings.socket_request_max_bytes = 1 << 20;
    let broker = spawn_broker(cfg).unwrap();
    let addr = broker.local_addr();
    let mut bystander = Client::connect(addr);
    still_serving(&mut bystander);

    // 1. A size above socket.request.max.bytes (2 GiB - 1): closed without reading or allocating.
    let mut c = Client::connect(addr);
    c.send_raw(&i32::MAX.to_be_bytes()).unwrap();
    assert!(c.is_closed(), "oversized frame closes the connection");
    // Just over the limit, with some body bytes following.
    let mut c = Client::connect(addr);
    let mut frame = ((1 << 20) + 1i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&[0u8; 64]);
    let _ = c.send_raw(&frame);
    assert!(c.is_closed());

    // 2. Negative and tiny sizes.
    for size in [-1i32, 0, 3] {
        let mut c = Client::connect(addr);
        c.send_raw(&size.to_be_bytes()).unwrap();
        assert!(c.is_closed(), "size {size}");
    }

    // 3. Garbage header: unknown API key.
    let mut c = Client::connect(addr);
    let mut f = Vec::new();
    let body = [0x03u8, 0xe7, 0, 0, 0, 0, 0, 1, 0xff, 0xff]; // api key 999
    f.extend_from_slice(&(body.len() as i32).to_be_bytes());
    f.extend_from_slice(&body);
    c.send_raw(&f).unwrap();
    assert!(c.is_closed(), "unknown api key");

    // 4. A known key the broker does not serve (e.g. SaslHandshake=17... use DescribeAcls=29).
    let mut c = Client::connect(addr);
    let body = [0u8, 29, 0, 1, 0, 0, 0, 1, 0xff, 0xff];
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&body);
    c.send_raw(&f).unwrap();
    assert!(c.is_closed(), "unsupported api key");

    // 5. Unsupported version of a served API (Produce v99): closed with a log line.
    let mut c = Client::connect(addr);
    let body = [0u8, 0, 0, 99, 0, 0, 0, 1, 0xff, 0xff];
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&body);
    c.send_raw(&f).unwrap();
    assert!(c.is_closed(), "unsupported version");

    // 6. Header whose client id runs past the frame.
    let mut c = Client::connect(addr);
    let body = [0u8, 18, 0, 2, 0, 0, 0, 1, 0x7f, 0x00];
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&body);
    c.send_raw(&f).unwrap();
    assert!(c.is_closed(), "malformed header");

    // 7. Valid header, body that does not decode (Metadata v12 with a truncated array).
    let mut c = Client::connect(addr);
    let corr = c.send(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    let _ = corr;
    let mut c2 = Client::connect(addr);
    let mut hdr = vec![0u8, 3, 0, 12, 0, 0, 0, 9, 0, 0, 0x00];
    hdr.extend_from_slice(&[0x05, 0x01]); // compact array of 4 topics, then nothing
    let mut f = (hdr.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&hdr);
    c2.send_raw(&f).unwrap();
    assert!(c2.is_closed(), "undecodable body");
    let _ = c.recv_frame();

    // 8. Truncated frame then EOF: the broker just drops it.
    let mut c = Client::connect(addr);
    c.send_raw(&100i32.to_be_bytes()).unwrap();
    c.send_raw(&[0u8; 10]).unwrap();
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(c.is_closed());

    // The bystander and new connections are unaffected.
    still_serving(&mut bystander);
    let mut fresh = Client::connect(addr);
    still_serving(&mut fresh);
    broker.shutdown().unwrap();
}

#[test]
fn client_that_never_reads_does_not_block_others() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 1);
    let addr = broker.local_addr();
    let mut c = Client::connect(addr);
    assert_eq!(c.create_topic("big", 1, &[], 7).topics[0].error_code, 0);
    // ~1 MiB of data, fetched over and over by a client that never reads its responses.
    for i in 0..16 {
        let big = batch(&format!("{i}-{}", "x".repeat(60_000)), 1, 1);
        assert_eq!(c.produce("big", 0, 1, big, 9).0, 0);
    }
    let mut hog = Client::connect(addr);
    hog.stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let req = Client::fetch_req("big", 0, 0, 0, 0);
    let big_produce = Client::produce_req("big", 0, 1, batch(&"y".repeat(500_000), 1, 1));
    let mut blocked = false;
    for i in 0..400 {
        // Fetches whose ~1 MiB responses are never read, then big produces: once the in-flight
        // limit is reached the broker stops reading and our send buffer fills (backpressure):
        // the write times out.
        let sent = if i < 100 {
            hog.try_send(ApiKey::Fetch, 12, &req)
        } else {
            hog.try_send(ApiKey::Produce, 9, &big_produce)
        };
        if sent.is_err() {
            blocked = true;
            break;
        }
    }
    assert!(
        blocked,
        "the broker stopped reading from a client that does not read"
    );
    // Meanwhile everyone else is served on the same shard.
    let mut other = Client::connect(addr);
    for _ in 0..5 {
        still_serving(&mut other);
        let (err, hw, _) = other.fetch("big", 0, 0, 12);
        assert_eq!(err, 0);
        assert!(hw >= 16);
    }
    // A client that never reads cannot hold up shutdown beyond the grace period.
    let t0 = std::time::Instant::now();
    broker.shutdown().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    drop(hog);
}

/// Array lengths far beyond the frame (kafka-protocol pre-allocates `Vec::with_capacity(n)`) must
/// not take the broker down: such bodies are refused before decoding.
#[test]
fn huge_array_lengths_do_not_kill_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), 1);
    let addr = broker.local_addr();
    // Metadata v1 (non-flexible): header v1 then topics array length i32::MAX, then nothing.
    let mut c = Client::connect(addr);
    let mut body = vec![0u8, 3, 0, 1, 0, 0, 0, 5, 0xff, 0xff];
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&body);
    c.send_raw(&f).unwrap();
    assert!(c.is_closed());
    // Metadata v12 (flexible): compact array length 2^32-1 as a varint.
    let mut c = Client::connect(addr);
    let mut body = vec![0u8, 3, 0, 12, 0, 0, 0, 6, 0xff, 0xff, 0x00];
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&body);
    c.send_raw(&f).unwrap();
    assert!(c.is_closed());
    // Produce v9 with a huge topic array.
    let mut c = Client::connect(addr);
    let mut body = vec![0u8, 0, 0, 9, 0, 0, 0, 7, 0xff, 0xff, 0x00];
    body.extend_from_slice(&[0x00, 0x00, 0x01, 0x00, 0x00, 0x03, 0xe8]); // txn id null, acks 1, timeout
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&body);
    c.send_raw(&f).unwrap();
    assert!(c.is_closed());
    let mut fresh = Client::connect(addr);
    still_serving(&mut fresh);
    broker.shutdown().unwrap();
}
