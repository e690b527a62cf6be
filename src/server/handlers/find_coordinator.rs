//! FindCoordinator (key 10), v0–v4. This broker coordinates every group (key type 0) and every
//! transactional id (key type 1); inside it, the shard is chosen by hash (`group::shard`,
//! `txn::shard`). v4 answers a batch of keys. Another key type is INVALID_REQUEST, as in Kafka.

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

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: FindCoordinatorRequest = req.decode()?;
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
