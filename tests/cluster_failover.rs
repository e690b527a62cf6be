//! A 3-node Ringbolt cluster (scripts/cluster.sh, this build's `ringbolt` binary) loses no
//! acknowledged acks=all write when a partition leader is killed with kill -9.
//!
//! The test creates a topic with replication factor 3 and min.insync.replicas=2, produces acks=all
//! batches to every partition's leader and remembers each acknowledged batch's base offset; then it
//! kill -9s the leader of partition 0, waits until the cluster names another leader, produces again
//! (with the dead broker out of the ISR, two replicas still satisfy min.insync.replicas), restarts
//! the killed node and waits until every ISR is full again. Every acknowledged record must then be
//! readable from each partition's leader at the offset it was acknowledged with, exactly once. A
//! second kill -9 of partition 0's new leader makes yet another replica the leader, whose copy is
//! checked the same way: the acknowledged records are on the replicas, not only on one broker.
//!
//! The processes are real (one per node, each broker + controller voter), so the test runs the
//! same code paths as production, including the Raft quorum between processes; a guard stops the
//! cluster and removes its directory however the test ends (keeping the directory and printing the
//! node logs' tails when it fails). The binary is `CARGO_BIN_EXE_ringbolt` (cargo builds it for
//! integration tests) or `RINGBOLT_BIN`; the test skips with a message only if that file is missing.
//! Ports: the first free block from 19900 (CLUSTER_BASE_PORT overrides), nodes 10 apart.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_response::CreateTopicsResponse;
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::produce_response::ProduceResponse;
use kafka_protocol::messages::{ApiKey, FetchResponse};
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use kafka_test_client::Client;
use kafka_test_client::records::{encode_batch, record};
use kafka_test_client::requests::{
    create_topic_request, fetch_partition, fetch_request, metadata_request, produce_request,
};
use kafka_test_client::tn;

const TOPIC: &str = "cluster-failover";
const PARTITIONS: i32 = 3;
const NODES: i32 = 3;
const STEP: u16 = 10;
const CREATE_TOPICS_V: i16 = 7;
const METADATA_V: i16 = 12;
const PRODUCE_V: i16 = 9;
const FETCH_V: i16 = 12;
const INVALID_REPLICATION_FACTOR: i16 = 38;

/// The cluster of this test: scripts/cluster.sh with this test's directory and ports.
struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    base: u16,
}

impl Cluster {
    fn script(&self, args: &[&str]) -> bool {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = Command::new("bash")
            .arg(root.join("scripts/cluster.sh"))
            .args(args)
            .env("RINGBOLT_BIN", &self.bin)
            .env("CLUSTER_DIR", &self.dir)
            .env("CLUSTER_BASE_PORT", self.base.to_string())
            .env("CLUSTER_PORT_STEP", STEP.to_string())
            .env("CLUSTER_NODES", NODES.to_string())
            .env("START_TIMEOUT", "90")
            .status()
            .expect("bash runs scripts/cluster.sh");
        status.success()
    }

    fn run(&self, args: &[&str]) {
        assert!(self.script(args), "scripts/cluster.sh {args:?} failed");
    }

    fn addr(&self, node: i32) -> String {
        format!("127.0.0.1:{}", self.base + (node as u16 - 1) * STEP)
    }

    /// A connection to any node that answers, preferring `first`, skipping `avoid`.
    fn connect_any(&self, first: i32, avoid: Option<i32>) -> Client {
        let order = std::iter::once(first).chain(1..=NODES);
        for n in order.filter(|n| Some(*n) != avoid) {
            if let Ok(c) = Client::try_connect(self.addr(n)) {
                return c;
            }
        }
        panic!("no node of the cluster accepts connections");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.script(&["stop"]);
        if std::thread::panicking() {
            for n in 1..=NODES {
                let log = self.dir.join(format!("node-{n}/ringbolt.log"));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(25).collect();
                eprintln!("---- last lines of {}", log.display());
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
            eprintln!("kept {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn port_free(p: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
}

fn free_base() -> u16 {
    if let Some(b) = std::env::var("CLUSTER_BASE_PORT")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return b;
    }
    let mut base = 19900;
    while !(0..NODES as u16).all(|i| port_free(base + i * STEP) && port_free(base + i * STEP + 1)) {
        base += 2;
    }
    base
}

/// (leader, isr) per partition, from one node's Metadata; None if it cannot answer now.
fn partitions(c: &mut Client) -> Option<BTreeMap<i32, (i32, Vec<i32>)>> {
    let r: MetadataResponse = c
        .try_call(
            METADATA_V,
            &metadata_request(&[TOPIC]).with_allow_auto_topic_creation(false),
        )
        .ok()?;
    let t = r.topics.first()?;
    if t.error_code != 0 {
        return None;
    }
    Some(
        t.partitions
            .iter()
            .map(|p| {
                (
                    p.partition_index,
                    (p.leader_id.0, p.isr_nodes.iter().map(|b| b.0).collect()),
                )
            })
            .collect(),
    )
}

/// Polls Metadata (from a node other than `avoid`) until `ok` holds, at most `secs` seconds.
fn wait_for(
    cl: &Cluster,
    avoid: Option<i32>,
    secs: u64,
    what: &str,
    ok: impl Fn(&BTreeMap<i32, (i32, Vec<i32>)>) -> bool,
) -> BTreeMap<i32, (i32, Vec<i32>)> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = None;
    let mut node = 1;
    while Instant::now() < deadline {
        node = node % NODES + 1;
        if Some(node) != avoid
            && let Ok(mut c) = Client::try_connect(cl.addr(node))
            && let Some(parts) = partitions(&mut c)
        {
            if parts.len() == PARTITIONS as usize && ok(&parts) {
                return parts;
            }
            last = Some(parts);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("after {secs}s: not {what}; last metadata (partition -> leader, isr): {last:?}");
}

/// One acknowledged batch: its partition, base offset and record values.
struct Acked {
    partition: i32,
    base: i64,
    values: Vec<String>,
}

/// Produces one acks=all batch to `partition`'s leader, retrying (new metadata each time) while
/// the cluster moves leadership; panics after 30 s without an acknowledgement.
fn produce(cl: &Cluster, partition: i32, tag: &str, avoid: Option<i32>) -> Acked {
    let values: Vec<String> = (0..5).map(|i| format!("p{partition}-{tag}-{i}")).collect();
    let records: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| record(i as i64, 0, None, Some(Bytes::from(v.clone()))))
        .collect();
    let batch = encode_batch(&records, Compression::None);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut meta = cl.connect_any(1, avoid);
        let leader = partitions(&mut meta).and_then(|p| p.get(&partition).map(|x| x.0));
        if let Some(leader) = leader.filter(|l| *l > 0 && Some(*l) != avoid)
            && let Ok(mut c) = Client::try_connect(cl.addr(leader))
        {
            let req = produce_request(tn(TOPIC), -1, 10_000, [(partition, batch.clone())]);
            match c.try_call::<_>(PRODUCE_V, &req) {
                Ok(r) => {
                    let r: ProduceResponse = r;
                    let p = &r.responses[0].partition_responses[0];
                    if p.error_code == 0 {
                        return Acked {
                            partition,
                            base: p.base_offset,
                            values,
                        };
                    }
                    last = format!("error code {} from node {leader}", p.error_code);
                }
                Err(e) => last = format!("{e} from node {leader}"),
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no acknowledgement for partition {partition} ({tag}) in 30s: {last}");
}

/// Every acknowledged record is on `partition`'s current leader at its offset, and no value
/// appears twice there.
///
/// A new leader's high watermark can trail what the old one acknowledged until its followers have
/// fetched in the new term (Kafka's new leaders behave the same), and consumers read only below
/// it; so a record not visible yet is looked for again for a while before it counts as lost.
fn verify(cl: &Cluster, acked: &[Acked], avoid: Option<i32>, label: &str) {
    let parts = wait_for(cl, avoid, 30, "led", |p| p.values().all(|(l, _)| *l > 0));
    for (&p, (leader, _)) in &parts {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut at = read_partition(cl, *leader, p, label);
        while Instant::now() < deadline
            && acked
                .iter()
                .filter(|a| a.partition == p)
                .any(|a| !at.contains_key(&(a.base + a.values.len() as i64 - 1)))
        {
            std::thread::sleep(Duration::from_millis(200));
            at = read_partition(cl, *leader, p, label);
        }
        for a in acked.iter().filter(|a| a.partition == p) {
            for (i, v) in a.values.iter().enumerate() {
                let o = a.base + i as i64;
                assert_eq!(
                    at.get(&o),
                    Some(v),
                    "{label}: partition {p} on leader {leader}: acknowledged {v} is not at offset {o} (LOST or moved)"
                );
            }
        }
        eprintln!(
            "{label}: partition {p}: leader {leader} has all {} acknowledged batches ({} records)",
            acked.iter().filter(|a| a.partition == p).count(),
            at.len()
        );
    }
}

/// Partition `p` as a consumer sees it on `leader` (up to the high watermark): offset → value;
/// panics on a value found twice.
fn read_partition(cl: &Cluster, leader: i32, p: i32, label: &str) -> HashMap<i64, String> {
    let mut c = Client::connect(cl.addr(leader));
    let mut at: HashMap<i64, String> = HashMap::new();
    let mut seen: HashMap<String, i64> = HashMap::new();
    let mut offset = 0;
    loop {
        let req = fetch_request(
            tn(TOPIC),
            [fetch_partition(p, offset, 1 << 20)],
            0,
            0,
            8 << 20,
        );
        let r: FetchResponse = c.call(ApiKey::Fetch, FETCH_V, &req);
        let pr = &r.responses[0].partitions[0];
        assert_eq!(
            pr.error_code, 0,
            "{label}: fetch of partition {p} from leader {leader}"
        );
        let mut buf = pr.records.clone().unwrap_or_default();
        let sets = RecordBatchDecoder::decode_all(&mut buf).expect("batches decode");
        let before = offset;
        for r in sets.iter().flat_map(|s| s.records.iter()) {
            let v = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
            if let Some(prev) = seen.insert(v.clone(), r.offset) {
                panic!(
                    "{label}: partition {p}: {v} at offsets {prev} and {} (duplicate)",
                    r.offset
                );
            }
            at.insert(r.offset, v);
            offset = r.offset + 1;
        }
        if offset >= pr.high_watermark || offset == before {
            break;
        }
    }
    at
}

#[test]
fn acked_writes_survive_leader_kill() {
    let bin = std::env::var_os("RINGBOLT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ringbolt")));
    if !bin.is_file() {
        eprintln!(
            "SKIP cluster_failover: no ringbolt binary at {}",
            bin.display()
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!(
        "ringbolt-cluster-failover-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let cluster = Cluster {
        dir,
        bin,
        base: free_base(),
    };
    cluster.run(&["start"]);

    let mut req = create_topic_request(TOPIC, PARTITIONS, &[("min.insync.replicas", "2")])
        .with_timeout_ms(30_000);
    req.topics[0].replication_factor = NODES as i16;
    // A node serves clients before every other broker has registered: until then RF=3 is
    // INVALID_REPLICATION_FACTOR (Kafka answers a fresh cluster the same way).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut c = cluster.connect_any(1, None);
        let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, CREATE_TOPICS_V, &req);
        let t = &r.topics[0];
        if t.error_code == 0 {
            break;
        }
        assert!(
            t.error_code == INVALID_REPLICATION_FACTOR && Instant::now() < deadline,
            "CreateTopics RF=3: error {} {:?}",
            t.error_code,
            t.error_message
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let full = |p: &BTreeMap<i32, (i32, Vec<i32>)>| {
        p.values()
            .all(|(l, isr)| *l > 0 && isr.len() == NODES as usize)
    };
    wait_for(
        &cluster,
        None,
        60,
        "every partition led with a full ISR",
        full,
    );

    let mut acked = Vec::new();
    for round in 0..4 {
        for p in 0..PARTITIONS {
            acked.push(produce(&cluster, p, &format!("before-{round}"), None));
        }
    }

    // kill -9 the leader of partition 0; another replica takes over.
    let parts = wait_for(&cluster, None, 10, "led", |p| p[&0].0 > 0);
    let victim = parts[&0].0;
    cluster.run(&["kill", &victim.to_string()]);
    let t0 = Instant::now();
    wait_for(&cluster, Some(victim), 30, "led by another node", |p| {
        p.values().all(|(l, _)| *l > 0 && *l != victim)
    });
    eprintln!(
        "node {victim} killed: partition leadership moved in {:?}",
        t0.elapsed()
    );
    for round in 0..4 {
        for p in 0..PARTITIONS {
            acked.push(produce(
                &cluster,
                p,
                &format!("after-{round}"),
                Some(victim),
            ));
        }
    }
    verify(&cluster, &acked, Some(victim), "after the kill");

    // The killed node comes back and catches up.
    cluster.run(&["restart", &victim.to_string()]);
    wait_for(&cluster, None, 60, "every ISR full after the restart", full);
    for p in 0..PARTITIONS {
        acked.push(produce(&cluster, p, "restarted", None));
    }
    verify(&cluster, &acked, None, "after the restart");

    // Another replica's copy: kill -9 partition 0's current leader too.
    let parts = wait_for(&cluster, None, 10, "led", |p| p[&0].0 > 0);
    let second = parts[&0].0;
    cluster.run(&["kill", &second.to_string()]);
    let after = wait_for(&cluster, Some(second), 30, "led by a third node", |p| {
        p.values().all(|(l, _)| *l > 0 && *l != second)
    });
    eprintln!(
        "node {second} killed: partition 0 now led by node {}",
        after[&0].0
    );
    verify(&cluster, &acked, Some(second), "after the second kill");
    cluster.run(&["restart", &second.to_string()]);
    wait_for(&cluster, None, 60, "every ISR full at the end", full);
}
