//! FindCoordinator (key 10), v0–v4. This broker coordinates every group (key type 0) and every
//! transactional id (key type 1); inside it, the shard is chosen by hash (`group::shard`,
//! `txn::shard`). v4 answers a batch of keys. Another key type is INVALID_REQUEST, as in Kafka.
//!
//! In a cluster the key's coordinator partition (as on one node: 50 partitions, Kafka's hash) is
//! coordinated by the live broker at `partition % live brokers` in id order
//! ([`cluster_coordinator`]): every broker computes the same answer from the same image, and a
//! coordinator's death moves its keys at the next image. Group and transaction state is not
//! replicated yet, so a moved coordinator starts without the old one's committed offsets and
//! transactions; requests reaching a broker that does not coordinate the key are refused at the one
//! routing point (`group::shard::on_coordinator`, `txn::shard::on_coordinator`) as when the
//! coordinator is not available (COORDINATOR_NOT_AVAILABLE), on which clients look the coordinator
//! up again as they do for NOT_COORDINATOR.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};

use super::{HandlerError, Reply, Request};
use crate::protocol::errors;
use crate::util::sb;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 4;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Cluster mode: the broker (id, host, port) coordinating `key` of `key_type`, `None` while no
/// broker is live; `None` as a whole on a single node.
pub fn cluster_coordinator(
    ctx: &crate::shard::ShardCtx,
    key_type: i8,
    key: &str,
) -> Option<Option<(i32, String, i32)>> {
    let image = ctx.with_metadata(|m| m.cluster.clone())?;
    let p = if key_type == KEY_TYPE_TRANSACTION {
        crate::txn::log_partition(key, crate::txn::shard::TXN_LOG_PARTITIONS)
    } else {
        crate::group::offsets::partition_for(key, crate::group::shard::OFFSETS_PARTITIONS)
    };
    Some(
        crate::metadata::cluster::coordinator_of(&image, p).map(|b| (b.id, b.host.clone(), b.port)),
    )
}

/// One key's answer: (error code, message, node, host, port).
fn answer(
    ctx: &crate::shard::ShardCtx,
    key_type: i8,
    key: &str,
) -> (
    i16,
    Option<kafka_protocol::protocol::StrBytes>,
    i32,
    String,
    i32,
) {
    if key_type != KEY_TYPE_GROUP && key_type != KEY_TYPE_TRANSACTION {
        return (
            ResponseError::InvalidRequest.code(),
            Some(sb("unknown coordinator key type")),
            -1,
            String::new(),
            -1,
        );
    }
    match cluster_coordinator(ctx, key_type, key) {
        None => (
            errors::NONE,
            None,
            ctx.info.node_id,
            ctx.info.advertised_host.clone(),
            ctx.info.advertised_port,
        ),
        Some(Some((id, host, port))) => (errors::NONE, None, id, host, port),
        Some(None) => (
            ResponseError::CoordinatorNotAvailable.code(),
            Some(sb("no live broker")),
            -1,
            String::new(),
            -1,
        ),
    }
}

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: FindCoordinatorRequest = req.decode()?;
    if req.ctx.info.quorum.is_some() {
        let ctx = &req.ctx;
        let resp = if req.version >= 4 {
            FindCoordinatorResponse::default().with_coordinators(
                r.coordinator_keys
                    .iter()
                    .map(|k| {
                        let (code, msg, node, host, port) = answer(ctx, r.key_type, k.as_str());
                        Coordinator::default()
                            .with_key(k.clone())
                            .with_node_id(BrokerId(node))
                            .with_host(sb(&host))
                            .with_port(port)
                            .with_error_code(code)
                            .with_error_message(msg)
                    })
                    .collect(),
            )
        } else {
            let (code, msg, node, host, port) = answer(ctx, r.key_type, r.key.as_str());
            FindCoordinatorResponse::default()
                .with_error_code(code)
                .with_error_message(if req.version >= 1 { msg } else { None })
                .with_node_id(BrokerId(node))
                .with_host(sb(&host))
                .with_port(port)
        };
        return req.respond(&resp);
    }
    let info = &req.ctx.info;
    let (code, msg) = if r.key_type == KEY_TYPE_GROUP || r.key_type == KEY_TYPE_TRANSACTION {
        (errors::NONE, None)
    } else {
        (
            ResponseError::InvalidRequest.code(),
            Some(sb("unknown coordinator key type")),
        )
    };
    let (node, host, port) = if code == errors::NONE {
        (
            info.node_id,
            info.advertised_host.as_str(),
            info.advertised_port,
        )
    } else {
        (-1, "", -1)
    };
    let resp = if req.version >= 4 {
        FindCoordinatorResponse::default().with_coordinators(
            r.coordinator_keys
                .iter()
                .map(|k| {
                    Coordinator::default()
                        .with_key(k.clone())
                        .with_node_id(BrokerId(node))
                        .with_host(sb(host))
                        .with_port(port)
                        .with_error_code(code)
                        .with_error_message(msg.clone())
                })
                .collect(),
        )
    } else {
        FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_error_message(if req.version >= 1 { msg } else { None })
            .with_node_id(BrokerId(node))
            .with_host(sb(host))
            .with_port(port)
    };
    req.respond(&resp)
}
