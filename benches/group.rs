//! Consumer-group benchmarks against a real broker on 127.0.0.1 (port 0, temporary data dir).
//!
//! - `offset_commit/tcp`: OffsetCommit v8 over TCP as consumers do it: 64 connections (one
//!   standalone group each), one request in flight per connection (the broker, like Kafka, runs
//!   a connection's requests one at a time), 4 partitions per request, durable acknowledgements
//!   (fdatasync group commit). Throughput counts committed partition offsets. The target:
//!   ≥ 50,000 commits/s.
//! - `offset_commit/coordinator`: the same path without sockets or cross-shard hops: 256
//!   concurrent committers (16 groups) on one shard's coordinator, durable acknowledgements.
//! - `rebalance/10_members`: a Stable group of 10 members rebalances (the leader rejoins, the
//!   others learn it from a heartbeat and rejoin); time from the last JoinGroup sent until every
//!   member has its SyncGroup answer (issue: < 1 s of the last join).
//!
//! Run: `cargo bench --bench group` (set `RINGBOLT_BENCH_SHARDS` to change the shard count, 2 by
//! default).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;
use kafka_protocol::messages::join_group_request::JoinGroupRequest;
use kafka_protocol::messages::join_group_response::JoinGroupResponse;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_commit_response::OffsetCommitResponse;
use kafka_protocol::messages::sync_group_request::SyncGroupRequest;
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::messages::{ApiKey, GroupId, TopicName};
use kafka_test_client::group::{heartbeat_request, join_group_request, sync_group_request};
use kafka_test_client::{Client, sb};
use ringbolt::server::{BrokerConfig, BrokerHandle, spawn_broker};

/// A connection that waits up to a minute for an answer (commits queue behind group commits).
fn connect(addr: SocketAddr) -> Client {
    let c = Client::connect(addr);
    c.stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    c
}

fn start() -> (tempfile::TempDir, BrokerHandle) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = BrokerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path());
    cfg.shards = std::env::var("RINGBOLT_BENCH_SHARDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    // The first formation of the 10-member group (not measured) ends on the initial-delay timer
    // (Kafka's rule, even at 0): a short delay makes sure all 10 joins are in it.
    cfg.settings.group_initial_rebalance_delay_ms = 200;
    let broker = spawn_broker(cfg).unwrap();
    (dir, broker)
}

const CONNS: usize = 64;
const IN_FLIGHT: usize = 1;
const PER_CONN: usize = 64;
const PARTS_PER_COMMIT: usize = 4;

fn commit_req(group: &str, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(sb("bench")))
                .with_partitions(
                    (0..PARTS_PER_COMMIT as i32)
                        .map(|p| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_metadata(Some(sb("")))
                        })
                        .collect(),
                ),
        ])
}

fn bench_commit(c: &mut Criterion) {
    let (_dir, broker) = start();
    let addr = broker.local_addr();
    let mut admin = connect(addr);
    let r = admin.create_topic("bench", 8, &[], 4);
    assert_eq!(r.topics[0].error_code, 0);
    let mut g = c.benchmark_group("offset_commit");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(15));
    g.throughput(Throughput::Elements(
        (CONNS * PER_CONN * PARTS_PER_COMMIT) as u64,
    ));
    g.bench_function("tcp", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t0 = Instant::now();
                let threads: Vec<_> = (0..CONNS)
                    .map(|i| {
                        std::thread::spawn(move || {
                            let mut c = connect(addr);
                            let group = format!("bench-group-{i}");
                            let mut sent = 0;
                            while sent < PER_CONN {
                                let n = IN_FLIGHT.min(PER_CONN - sent);
                                let corrs: Vec<i32> = (0..n)
                                    .map(|k| {
                                        c.send(
                                            ApiKey::OffsetCommit,
                                            8,
                                            &commit_req(&group, (sent + k) as i64),
                                        )
                                    })
                                    .collect();
                                for corr in corrs {
                                    let r: OffsetCommitResponse = c.recv(corr, 8);
                                    assert!(
                                        r.topics[0].partitions.iter().all(|p| p.error_code == 0)
                                    );
                                }
                                sent += n;
                            }
                        })
                    })
                    .collect();
                for t in threads {
                    t.join().unwrap();
                }
                total += t0.elapsed();
            }
            total
        })
    });
    g.finish();
    broker.shutdown().unwrap();
}

fn join_req(group: &str, member: &str) -> JoinGroupRequest {
    join_group_request(group, member, 30_000, Bytes::from_static(b"meta"))
}

/// SyncGroup of `member`; `all` (the leader's) get an assignment each.
fn sync_req(group: &str, member: &str, generation: i32, all: &[String]) -> SyncGroupRequest {
    let assignments: Vec<(&str, &[u8])> = all
        .iter()
        .map(|m| (m.as_str(), &b"assignment"[..]))
        .collect();
    sync_group_request(group, member, generation, &assignments)
}

fn heartbeat(c: &mut Client, group: &str, member: &str, generation: i32) -> i16 {
    let r: HeartbeatResponse = c.call(
        ApiKey::Heartbeat,
        4,
        &heartbeat_request(group, member, generation),
    );
    r.error_code
}

/// The leader rejoins (starting a rebalance); the others learn of it from a heartbeat, as
/// clients do, and rejoin; then everybody syncs. Returns (time from the last JoinGroup sent to
/// the last SyncGroup answer, new generation). `generation` < 0: first formation.
fn rebalance(
    clients: &mut [Client],
    ids: &mut [String],
    group: &str,
    generation: i32,
) -> (Duration, i32) {
    let mut corrs = Vec::with_capacity(clients.len());
    for i in 0..clients.len() {
        if i > 0 && generation >= 0 {
            while heartbeat(&mut clients[i], group, &ids[i], generation) != 27 {}
        }
        corrs.push(clients[i].send(ApiKey::JoinGroup, 5, &join_req(group, &ids[i])));
    }
    let t0 = Instant::now();
    let joins: Vec<JoinGroupResponse> = clients
        .iter_mut()
        .zip(&corrs)
        .map(|(c, &corr)| c.recv(corr, 5))
        .collect();
    let generation = joins[0].generation_id;
    for (j, id) in joins.iter().zip(ids.iter_mut()) {
        assert_eq!(j.error_code, 0);
        *id = j.member_id.to_string();
    }
    let leader = joins[0].leader.to_string();
    corrs.clear();
    for (c, id) in clients.iter_mut().zip(ids.iter()) {
        let all: Vec<String> = if *id == leader {
            ids.to_vec()
        } else {
            Vec::new()
        };
        corrs.push(c.send(ApiKey::SyncGroup, 3, &sync_req(group, id, generation, &all)));
    }
    for (c, &corr) in clients.iter_mut().zip(&corrs) {
        let s: SyncGroupResponse = c.recv(corr, 3);
        assert_eq!(s.error_code, 0);
    }
    (t0.elapsed(), generation)
}

fn bench_rebalance(c: &mut Criterion) {
    let (_dir, broker) = start();
    let addr = broker.local_addr();
    let group = "bench-rebalance";
    let mut clients: Vec<Client> = (0..10).map(|_| connect(addr)).collect();
    let mut ids: Vec<String> = clients
        .iter_mut()
        .map(|c| {
            let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &join_req(group, ""));
            assert_eq!(r.error_code, 79);
            r.member_id.to_string()
        })
        .collect();
    let (_, mut generation) = rebalance(&mut clients, &mut ids, group, -1);
    let mut g = c.benchmark_group("rebalance");
    g.sample_size(20);
    g.bench_function("10_members", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (t, next) = rebalance(&mut clients, &mut ids, group, generation);
                generation = next;
                total += t;
            }
            total
        })
    });
    g.finish();
    broker.shutdown().unwrap();
}

/// The coordinator and offsets store alone (no sockets): 256 concurrent committers on one shard.
fn bench_commit_store(c: &mut Criterion) {
    use ringbolt::group::coordinator::{
        CommitPartition, Coordinator, CoordinatorConfig, system_clock,
    };
    const TASKS: usize = 256;
    const PER_TASK: usize = 64;
    let mut g = c.benchmark_group("offset_commit");
    g.sample_size(10);
    g.throughput(Throughput::Elements((TASKS * PER_TASK) as u64));
    g.bench_function("coordinator", |b| {
        b.iter_custom(|iters| {
            glommio::LocalExecutorBuilder::default()
                .spawn(move || async move {
                    let dir = tempfile::tempdir().unwrap();
                    let coord = Coordinator::start(
                        0,
                        1,
                        CoordinatorConfig::new(dir.path()),
                        system_clock(),
                    )
                    .await
                    .unwrap();
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        let tasks: Vec<_> = (0..TASKS)
                            .map(|t| {
                                let c = coord.clone();
                                glommio::spawn_local(async move {
                                    let group = format!("g{}", t % 16);
                                    for i in 0..PER_TASK {
                                        let codes = c
                                            .commit(
                                                &group,
                                                "",
                                                None,
                                                -1,
                                                -1,
                                                vec![CommitPartition {
                                                    topic: "t".into(),
                                                    partition: t as i32,
                                                    offset: i as i64,
                                                    leader_epoch: -1,
                                                    metadata: None,
                                                    commit_timestamp: None,
                                                }],
                                            )
                                            .await;
                                        assert_eq!(codes, vec![0]);
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await;
                        }
                    }
                    let elapsed = t0.elapsed();
                    coord.shutdown().await.unwrap();
                    elapsed
                })
                .unwrap()
                .join()
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_commit, bench_commit_store, bench_rebalance);
criterion_main!(benches);
