//! Starting and stopping a broker that is a cluster member (`process.roles` set).
//!
//! Before the shards start, [`start_quorum`] starts this node's metadata quorum participation
//! ([`crate::cluster::quorum`], on its own thread): it binds the controller listener (voters),
//! loads the Raft log from `<data-dir>/__cluster_metadata-0/`, and registers this broker. The
//! shards start with an empty snapshot; shard 0 follows the quorum's images
//! ([`crate::metadata::cluster::follow_images`]) and the broker only reports itself ready (and
//! starts accepting) once the image its shards applied holds its own registration
//! (`wait_registered`), so a client never sees a broker that does not yet know the topics.
//!
//! # Stopping
//! A SIGTERM (or [`super::BrokerHandle::shutdown`]) sets the broker's stop flag. In cluster mode
//! the shards do not watch that flag directly: a relay thread ([`spawn_stop_relay`]) first asks
//! the controller for a controlled shutdown (this broker's leaderships move to other ISR members
//! and it leaves the ISRs, so producers move before the connections close instead of timing out),
//! bounded by [`CONTROLLED_SHUTDOWN_TIMEOUT`], and only then stops the shards. The quorum thread
//! is shut down last, after the shards ([`super::BrokerHandle`]).
//!
//! A node that is only a controller (`process.roles = "controller"`) is not supported yet: the
//! process is built around serving clients.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cluster::controller::SessionTimeouts;
use crate::cluster::{QuorumConfig, QuorumHandle};
use crate::config::BrokerConfig;
use crate::config::cluster::ClusterSettings;
use crate::shard::ShardCtx;

/// The longest a stopping broker waits for its leaderships to move.
pub const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a starting broker waits to see its own registration in the metadata.
pub const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(45);
/// The Raft snapshot interval in applied entries.
const SNAPSHOT_EVERY: u64 = 10_000;
/// The directory of the metadata log inside the data directory (Kafka's name).
pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

/// The advertised client address: `advertised.listeners` (or the flag), else the listen address
/// (the loopback address for an unspecified one).
pub fn advertised(cfg: &BrokerConfig, bound: std::net::SocketAddr) -> (String, i32) {
    match &cfg.advertised_listener {
        Some(a) => {
            // `advertised.listeners` may list several; the client one is PLAINTEXT (or unnamed).
            let a = a
                .split(',')
                .map(str::trim)
                .find(|l| !l.contains("://") || l.to_ascii_uppercase().starts_with("PLAINTEXT://"))
                .unwrap_or(a);
            let a = a.split_once("://").map(|(_, r)| r).unwrap_or(a);
            match a.rsplit_once(':') {
                Some((h, p)) => (
                    h.trim_matches(|c| c == '[' || c == ']').to_string(),
                    p.parse().unwrap_or(bound.port() as i32),
                ),
                None => (a.to_string(), bound.port() as i32),
            }
        }
        None => {
            let ip = bound.ip();
            let host = if ip.is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                ip.to_string()
            };
            (host, bound.port() as i32)
        }
    }
}

/// Starts the quorum thread of this node.
pub fn start_quorum(cfg: &BrokerConfig, cs: &ClusterSettings) -> anyhow::Result<QuorumHandle> {
    if !cs.is_broker {
        anyhow::bail!(
            "process.roles = \"controller\" (a controller-only node) is not supported yet; \
             use \"broker,controller\""
        );
    }
    if cfg.listen.port() == 0 {
        anyhow::bail!(
            "a cluster node needs a fixed client port (the other nodes and clients are told it)"
        );
    }
    let (host, port) = advertised(cfg, cfg.listen);
    let s = &cfg.settings;
    let qc = QuorumConfig {
        node_id: cs.node_id,
        voters: cs.voters.clone(),
        controller_listen: cs.controller_listen,
        is_controller: cs.is_controller,
        is_broker: cs.is_broker,
        dir: cfg.data_dir.join(METADATA_LOG_DIR),
        broker_host: host,
        broker_port: port,
        rack: s.broker_rack.clone(),
        heartbeat_interval: Duration::from_millis(s.broker_heartbeat_interval_ms),
        session: SessionTimeouts {
            session_timeout_ms: s.broker_session_timeout_ms,
        },
        election_timeout: Duration::from_millis(s.controller_quorum_election_timeout_ms),
        snapshot_every: SNAPSHOT_EVERY,
    };
    std::fs::create_dir_all(&qc.dir)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", qc.dir.display()))?;
    tracing::info!(
        node = cs.node_id,
        voters = ?cs.voters,
        controller = cs.is_controller,
        "starting the metadata quorum"
    );
    QuorumHandle::start(qc)
}

/// On shard 0: starts following the quorum's images, then waits until the image applied by the
/// shards holds this broker's registration (see the module docs). `Err` says why not.
pub async fn follow_and_wait_registered(
    ctx: &Rc<ShardCtx>,
    stop: &AtomicBool,
) -> Result<(), String> {
    let Some(quorum) = ctx.info.quorum.clone() else {
        return Ok(());
    };
    glommio::spawn_local(crate::metadata::cluster::follow_images(
        ctx.clone(),
        quorum.clone(),
    ))
    .detach();
    wait_registered(ctx, &quorum, stop).await
}

async fn wait_registered(
    ctx: &Rc<ShardCtx>,
    quorum: &QuorumHandle,
    stop: &AtomicBool,
) -> Result<(), String> {
    let node = ctx.info.node_id;
    let t0 = Instant::now();
    let mut next_log = t0 + super::PROGRESS_EVERY;
    loop {
        if let Some(epoch) = quorum.broker_epoch() {
            let published = crate::metadata::cluster::published_index().await;
            let registered = ctx.with_metadata(|m| {
                m.cluster
                    .as_ref()
                    .is_some_and(|i| i.brokers.get(&node).is_some_and(|b| b.epoch == epoch))
            });
            if registered && published >= epoch {
                tracing::info!(node, epoch, "registered with the cluster");
                return Ok(());
            }
        }
        if stop.load(Ordering::SeqCst) || ctx.stopping.is_set() {
            return Err("stopped while waiting for the cluster registration".into());
        }
        let now = Instant::now();
        if now >= t0 + REGISTRATION_TIMEOUT {
            let status = quorum.status();
            return Err(format!(
                "broker {node} did not see its registration in the cluster metadata within {} s \
                 (quorum leader {}, committed offset {}); is a majority of \
                 controller.quorum.voters running and reachable?",
                REGISTRATION_TIMEOUT.as_secs(),
                status.leader_id,
                status.high_watermark
            ));
        }
        if now >= next_log {
            let status = quorum.status();
            tracing::info!(
                node,
                leader = status.leader_id,
                committed = status.high_watermark,
                "waiting for this broker's registration in the cluster metadata"
            );
            next_log = now + super::PROGRESS_EVERY;
        }
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
}

/// Relays the broker's stop flag to the shards' one, after a controlled shutdown once the broker
/// serves (see the module docs). Ends when the stop is relayed or the shards stopped on their own.
pub fn spawn_stop_relay(
    stop: Arc<AtomicBool>,
    shard_stop: Arc<AtomicBool>,
    open: Arc<AtomicBool>,
    quorum: QuorumHandle,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("ringbolt-stop-relay".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if shard_stop.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if open.load(Ordering::SeqCst) {
                tracing::info!("controlled shutdown: moving this broker's leaderships away");
                let t0 = Instant::now();
                futures_lite::future::block_on(
                    quorum.controlled_shutdown(CONTROLLED_SHUTDOWN_TIMEOUT),
                );
                tracing::info!(
                    elapsed_ms = t0.elapsed().as_millis() as u64,
                    "controlled shutdown done"
                );
            }
            shard_stop.store(true, Ordering::SeqCst);
        })
        .map(|_| ())
}
