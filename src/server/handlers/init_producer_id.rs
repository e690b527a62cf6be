//! InitProducerId (key 22), v0–v5: producer ids for idempotent producers.
//!
//! Without a transactional id Kafka "blindly accepts" the request and returns a fresh producer id
//! with epoch 0 — also when the producer passes its current id and epoch (KIP-360, v3+: the
//! client asks for an epoch bump after a lost sequence; Kafka's coordinator answers a new id for
//! non-transactional producers, and clients accept either). We do the same. Ids come from the
//! allocator on shard 0 ([`crate::metadata::producer_ids`]), persisted in blocks so they are unique
//! across restarts. The sequence and epoch checks themselves happen per partition on append
//! ([`crate::storage::producer_state`]).
//!
//! Transactions are not supported. A transactional id gets COORDINATOR_NOT_AVAILABLE, the same
//! answer FindCoordinator gives for key type 1 (which real clients ask first, and then retry until
//! their `max.block.ms`/`transaction.timeout`): it tells a client there is no transaction
//! coordinator, rather than the misleading TRANSACTIONAL_ID_AUTHORIZATION_FAILED. An empty
//! transactional id is INVALID_REQUEST, and a producer id without an epoch (or the reverse) is
//! INVALID_REQUEST, both as in Kafka.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ProducerId;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;

use super::{HandlerError, Reply, Request};
use crate::metadata::producer_ids::ProducerIdAllocator;
use crate::protocol::errors;
use crate::shard;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

/// Shard that owns the producer-id allocator.
const ALLOCATOR_SHARD: usize = 0;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: InitProducerIdRequest = req.decode()?;
    let error = |code: i16| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if let Some(t) = &r.transactional_id {
        let code = if t.0.is_empty() {
            ResponseError::InvalidRequest.code()
        } else {
            tracing::debug!(transactional_id = %t.0.as_str(), "InitProducerId for a transactional producer: not supported");
            ResponseError::CoordinatorNotAvailable.code()
        };
        return req.respond(&error(code));
    }
    // v3+ (KIP-360) may name the producer's current id and epoch: both or neither.
    if req.version >= 3 && (r.producer_id.0 == -1) != (r.producer_epoch == -1) {
        return req.respond(&error(ResponseError::InvalidRequest.code()));
    }
    let allocated = shard::run_on(ALLOCATOR_SHARD, |ctx| async move {
        let data_dir = ctx.info.data_dir.clone();
        ctx.local_state(|| ProducerIdAllocator::new(&data_dir))
            .allocate()
            .map_err(|e| e.to_string())
    })
    .await;
    let resp = match allocated {
        Ok(Ok(id)) => InitProducerIdResponse::default()
            .with_error_code(errors::NONE)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "allocating a producer id failed");
            error(ResponseError::UnknownServerError.code())
        }
        Err(e) => {
            tracing::warn!(error = %e, "producer-id allocator unreachable");
            error(ResponseError::CoordinatorNotAvailable.code())
        }
    };
    req.respond(&resp)
}
