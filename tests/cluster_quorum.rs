//! The metadata quorum end to end in one process: three `QuorumHandle`s on loopback ports with
//! their own data dirs, talking over the real controller transport.
//!
//! Covers election, proposals from a follower (forwarded to the leader), image convergence,
//! failover when the leader's node stops, a stopped node catching up (through a snapshot: the
//! snapshot interval is small and the leader purges its log), a full restart from disk (log,
//! vote, snapshot), and broker sessions: registration, unfencing after heartbeats, fencing
//! after the session timeout. Every wait is bounded; nothing here sleeps for a fixed result.
//!
//! Ports 19400-19499 (this test's range), one block of three per test so tests run in parallel.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future::block_on;
use ringbolt::cluster::controller::SessionTimeouts;
use ringbolt::cluster::{ClusterImage, MetaCommand, MetaResponse, QuorumConfig, QuorumHandle};

const IDS: [i32; 3] = [1, 2, 3];

fn config(id: i32, base: u16, dir: &Path, broker: bool, snapshot_every: u64) -> QuorumConfig {
    let voters = IDS
        .iter()
        .map(|&v| (v, format!("127.0.0.1:{}", base + v as u16).parse().unwrap()))
        .collect::<Vec<_>>();
    let listen = voters.iter().find(|(v, _)| *v == id).unwrap().1;
    QuorumConfig {
        node_id: id,
        voters,
        controller_listen: Some(listen),
        is_controller: true,
        is_broker: broker,
        dir: dir.join(format!("node-{id}")).join("__cluster_metadata-0"),
        broker_host: "127.0.0.1".into(),
        broker_port: 29000 + id,
        rack: None,
        heartbeat_interval: Duration::from_millis(100),
        session: SessionTimeouts {
            session_timeout_ms: 1500,
        },
        election_timeout: Duration::from_millis(300),
        snapshot_every,
    }
}

struct Cluster {
    base: u16,
    dir: tempfile::TempDir,
    broker: bool,
    snapshot_every: u64,
    nodes: Vec<Option<QuorumHandle>>,
}

impl Cluster {
    fn start(base: u16, broker: bool, snapshot_every: u64) -> Cluster {
        // RUST_LOG=ringbolt=debug shows the quorum's own story when a test fails.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::Builder::new()
            .prefix("ringbolt-i19-quorum-")
            .tempdir()
            .unwrap();
        let mut c = Cluster {
            base,
            dir,
            broker,
            snapshot_every,
            nodes: vec![None, None, None],
        };
        for id in IDS {
            c.restart(id);
        }
        c
    }

    fn restart(&mut self, id: i32) {
        let cfg = config(
            id,
            self.base,
            self.dir.path(),
            self.broker,
            self.snapshot_every,
        );
        self.nodes[(id - 1) as usize] = Some(QuorumHandle::start(cfg).expect("quorum starts"));
    }

    fn stop(&mut self, id: i32) {
        if let Some(h) = self.nodes[(id - 1) as usize].take() {
            h.shutdown();
        }
    }

    fn node(&self, id: i32) -> &QuorumHandle {
        self.nodes[(id - 1) as usize]
            .as_ref()
            .expect("node running")
    }

    fn running(&self) -> impl Iterator<Item = (i32, &QuorumHandle)> {
        IDS.iter()
            .filter_map(|&id| self.nodes[(id - 1) as usize].as_ref().map(|h| (id, h)))
    }

    fn data_dir(&self, id: i32) -> PathBuf {
        self.dir
            .path()
            .join(format!("node-{id}"))
            .join("__cluster_metadata-0")
    }

    /// The leader every running node agrees on.
    fn wait_leader(&self, within: Duration) -> i32 {
        let mut seen = -1;
        wait_until(within, "an agreed leader", || {
            let leaders: Vec<i32> = self.running().map(|(_, h)| h.status().leader_id).collect();
            seen = leaders[0];
            seen > 0
                && leaders.iter().all(|&l| l == seen)
                && self.nodes[(seen - 1) as usize].is_some()
        });
        seen
    }

    fn wait_images(&self, within: Duration, what: &str, pred: impl Fn(&ClusterImage) -> bool) {
        wait_until(within, what, || {
            self.running().all(|(_, h)| pred(&h.image()))
        });
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in IDS {
            self.stop(id);
        }
    }
}

fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn register(id: i32) -> MetaCommand {
    MetaCommand::RegisterBroker {
        id,
        incarnation: format!("test-{id}"),
        host: "127.0.0.1".into(),
        port: 30000 + id,
        rack: None,
    }
}

fn propose(h: &QuorumHandle, cmd: MetaCommand) -> (u64, MetaResponse) {
    let (index, resp) = block_on(h.propose(cmd)).expect("proposal commits");
    assert!(
        !matches!(resp, MetaResponse::Error { .. }),
        "proposal refused: {resp:?}"
    );
    (index, resp)
}

fn has(img: &ClusterImage, ids: &[i32]) -> bool {
    ids.iter().all(|id| img.brokers.contains_key(id))
}

const SOON: Duration = Duration::from_secs(10);

#[test]
fn elects_forwards_fails_over_and_catches_up_through_a_snapshot() {
    let mut c = Cluster::start(19400, false, 4);
    let leader = c.wait_leader(SOON);
    let status = c.node(leader).status();
    assert_eq!(status.voters.len(), 3, "{status:?}");
    assert!(status.leader_epoch >= 1);

    // A follower's proposal is forwarded to the leader and applied everywhere.
    let follower = IDS.into_iter().find(|&id| id != leader).unwrap();
    let (index, _) = propose(c.node(follower), register(101));
    assert!(index > 0);
    c.wait_images(SOON, "broker 101 everywhere", |img| {
        has(img, &[101]) && img.applied_index >= index
    });

    // The leader's node stops: the other two elect a new leader and keep accepting writes.
    let old_term = c.node(follower).status().leader_epoch;
    c.stop(leader);
    let new_leader = c.wait_leader(SOON);
    assert_ne!(new_leader, leader);
    assert!(c.node(new_leader).status().leader_epoch > old_term);
    let survivor = IDS
        .into_iter()
        .find(|&id| id != leader && id != new_leader)
        .unwrap();
    // More entries than the snapshot interval, so the leader snapshots and purges its log past
    // what the stopped node has.
    for b in 102..=112 {
        propose(c.node(survivor), register(b));
    }
    let ids: Vec<i32> = (101..=112).collect();
    c.wait_images(SOON, "brokers 101..=112 on the survivors", |img| {
        has(img, &ids)
    });

    // The stopped node comes back from its dir and catches up.
    c.restart(leader);
    c.wait_images(SOON, "the restarted node caught up", |img| has(img, &ids));
    assert!(c.data_dir(leader).join("raft-snapshot.json").exists());
    let status = c.node(new_leader).status();
    let leo = status
        .voters
        .iter()
        .map(|v| v.log_end_offset)
        .min()
        .unwrap();
    assert!(leo > 0, "{status:?}");
}

#[test]
fn log_vote_and_snapshot_survive_a_full_restart() {
    let mut c = Cluster::start(19410, false, 5);
    let leader = c.wait_leader(SOON);
    for b in 201..=208 {
        propose(c.node(leader), register(b));
    }
    let ids: Vec<i32> = (201..=208).collect();
    c.wait_images(SOON, "brokers 201..=208", |img| has(img, &ids));
    let term = c.node(leader).status().leader_epoch;
    let applied = c.node(leader).image().applied_index;
    for id in IDS {
        c.stop(id);
    }

    for id in IDS {
        c.restart(id);
    }
    // The image is rebuilt from snapshot + log before any new write.
    c.wait_images(SOON, "images rebuilt from disk", |img| {
        has(img, &ids) && img.applied_index >= applied
    });
    // The restarted nodes remember their vote: the term carries on (openraft even lets a node
    // whose committed vote names itself resume leading in that term) instead of restarting at 1.
    let leader = c.wait_leader(SOON);
    assert!(c.node(leader).status().leader_epoch >= term);
    propose(c.node(leader), register(209));
    c.wait_images(SOON, "broker 209", |img| has(img, &[209]));
}

#[test]
fn brokers_register_unfence_after_heartbeats_and_are_fenced_when_silent() {
    let mut c = Cluster::start(19420, true, 1000);
    c.wait_leader(SOON);
    // Every node registers as a broker and, heartbeating, is unfenced.
    c.wait_images(SOON, "three unfenced brokers", |img| {
        IDS.iter()
            .all(|id| img.brokers.get(id).is_some_and(|b| !b.fenced))
    });
    for (id, h) in c.running() {
        let epoch = h.broker_epoch().expect("registered");
        assert_eq!(h.image().brokers[&id].epoch, epoch);
    }

    // A registration without heartbeats starts fenced and stays so.
    let (index, _) = propose(c.node(1), register(7));
    c.wait_images(SOON, "broker 7", |img| img.applied_index >= index);
    assert!(c.node(1).image().brokers[&7].fenced);

    // A broker that stops heartbeating is fenced after its session timeout.
    let silent = 3;
    let epoch = c.node(silent).broker_epoch().unwrap();
    c.stop(silent);
    c.wait_leader(SOON);
    c.wait_images(SOON, "broker 3 fenced", |img| {
        img.brokers
            .get(&silent)
            .is_some_and(|b| b.fenced && b.epoch == epoch)
    });
    // The live ones stay unfenced.
    let img: Arc<ClusterImage> = c.node(1).image();
    assert!(!img.brokers[&1].fenced && !img.brokers[&2].fenced);

    // It comes back with a new registration (a new epoch) and is unfenced again.
    c.restart(silent);
    c.wait_images(SOON, "broker 3 back", |img| {
        img.brokers
            .get(&silent)
            .is_some_and(|b| !b.fenced && b.epoch > epoch)
    });
}

#[test]
fn controlled_shutdown_is_acknowledged_by_the_controller() {
    let c = Cluster::start(19430, true, 1000);
    c.wait_leader(SOON);
    c.wait_images(SOON, "three unfenced brokers", |img| {
        IDS.iter()
            .all(|id| img.brokers.get(id).is_some_and(|b| !b.fenced))
    });
    let timeout = Duration::from_secs(20);
    let started = Instant::now();
    block_on(c.node(2).controlled_shutdown(timeout));
    assert!(
        started.elapsed() < timeout,
        "the controller never answered shutdown_ready"
    );
    c.wait_images(SOON, "broker 2 in controlled shutdown", |img| {
        img.brokers
            .get(&2)
            .is_some_and(|b| b.in_controlled_shutdown)
    });
}

#[test]
fn a_broker_only_node_follows_the_log_as_a_learner() {
    let c = Cluster::start(19440, false, 1000);
    let leader = c.wait_leader(SOON);
    let mut cfg = config(1, 19440, c.dir.path(), true, 1000);
    cfg.node_id = 4;
    cfg.is_controller = false;
    cfg.controller_listen = Some("127.0.0.1:19444".parse().unwrap());
    cfg.dir = c.dir.path().join("node-4");
    let learner = QuorumHandle::start(cfg).expect("broker-only node starts");
    // It registers through the voters and receives the log (its own registration included).
    wait_until(
        SOON,
        "the broker-only node registered and following",
        || learner.broker_epoch().is_some() && learner.image().brokers.contains_key(&4),
    );
    let status = c.node(leader).status();
    assert!(
        status.observers.iter().any(|o| o.id == 4),
        "node 4 is a learner: {status:?}"
    );
    assert!(status.voters.iter().all(|v| v.id != 4));
    let (index, _) = propose(c.node(leader), register(301));
    wait_until(SOON, "the learner applied a new entry", || {
        learner.image().applied_index >= index && learner.image().brokers.contains_key(&301)
    });
    learner.shutdown();
}

#[test]
fn a_bad_frame_closes_the_connection_and_the_node_keeps_working() {
    use std::io::{Read, Write};
    let c = Cluster::start(19450, false, 1000);
    let leader = c.wait_leader(SOON);
    for garbage in [
        vec![0xff, 0xff, 0xff, 0xff],
        // A whole frame (length 20 = request id + 12 bytes) whose body is not JSON.
        [&20u32.to_be_bytes()[..], &[0u8; 8], b"not json!!!!"].concat(),
    ] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", 19450 + leader as u16)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&garbage).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).unwrap(), 0, "the connection is closed");
    }
    propose(c.node(leader), register(401));
    c.wait_images(SOON, "broker 401", |img| has(img, &[401]));
}
