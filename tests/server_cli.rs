//! `ringbolt serve` as a process: TOML config with Kafka names, SIGTERM → clean shutdown, restart.

mod server_util;

use std::net::SocketAddr;
use std::process::Child;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_test_client::requests::metadata_request;
use server_util::*;

fn spawn(dir: &std::path::Path, config: &std::path::Path) -> (Child, SocketAddr) {
    let mut cmd = process::serve(dir);
    cmd.arg("--config").arg(config);
    process::spawn_listening(cmd)
}

fn sigterm_and_wait(child: Child) {
    let status = process::sigterm_and_wait(child);
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}

#[test]
fn serve_with_toml_config_sigterm_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("broker.toml");
    std::fs::write(
        &cfg,
        "num.partitions = 3\n\"auto.create.topics.enable\" = true\nlog.segment.bytes = 1048576\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let (child, addr) = spawn(&data, &cfg);
    let mut c = Client::connect(addr);
    let b = batch("cli", 5, 7);
    // Auto-created by produce with num.partitions from the file.
    assert_eq!(c.produce("viacli", 2, -1, b.clone(), 9), (0, 0));
    let md: MetadataResponse = c.call(ApiKey::Metadata, 12, &metadata_request(&["viacli"]));
    assert_eq!(md.topics[0].partitions.len(), 3);
    // A 14-byte request claiming 2^31 topics closes its connection, not the broker process.
    let mut hostile = Client::connect(addr);
    let mut body = vec![0u8, 3, 0, 1, 0, 0, 0, 5, 0xff, 0xff];
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&body);
    hostile.send_raw(&f).unwrap();
    assert!(hostile.is_closed());
    assert_eq!(c.fetch("viacli", 2, 0, 12).1, 5, "broker still serving");
    // A long poll in flight when SIGTERM arrives is answered, then the process exits 0.
    let waiter = std::thread::spawn(move || {
        let mut w = Client::connect(addr);
        let r: kafka_protocol::messages::fetch_response::FetchResponse = w.call(
            ApiKey::Fetch,
            12,
            &Client::fetch_req("viacli", 0, 0, 20_000, 1),
        );
        r.responses[0].partitions[0].error_code
    });
    std::thread::sleep(Duration::from_millis(300));
    sigterm_and_wait(child);
    assert_eq!(waiter.join().unwrap(), 0);

    let (child, addr) = spawn(&data, &cfg);
    let mut c = Client::connect(addr);
    let (err, hw, recs) = c.fetch("viacli", 2, 0, 12);
    assert_eq!((err, hw), (0, 5));
    assert_eq!(normalize(&split_batches(&recs)[0].1), normalize(&b));
    sigterm_and_wait(child);
}

#[test]
fn serve_rejects_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "num.partitons = 3\n").unwrap();
    let out = process::ringbolt()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("num.partitons"));
}
