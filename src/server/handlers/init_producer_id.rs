//! InitProducerId (key 22), v0–v5: producer ids for idempotent and transactional producers.
//!
//! Without a transactional id Kafka "blindly accepts" the request and returns a fresh producer id
//! with epoch 0 — also when the producer passes its current id and epoch (KIP-360, v3+: the
//! client asks for an epoch bump after a lost sequence; Kafka's coordinator answers a new id for
//! non-transactional producers, and clients accept either). We do the same. Ids come from the
//! allocator on shard 0 ([`crate::metadata::producer_ids`]), persisted in blocks so they are unique
//! across restarts. The sequence and epoch checks themselves happen per partition on append
//! ([`crate::storage::producer_state`]).
//!
//! With a transactional id the request goes to the id's transaction coordinator (`txn`), which
//! checks `transaction.timeout.ms` against `transaction.max.timeout.ms`, gives a new id its
//! producer id, bumps the epoch of a known one (fencing the previous producer instance, whose
//! ongoing transaction it aborts first) and answers once the new epoch is durable. PRODUCER_FENCED
//! is INVALID_PRODUCER_EPOCH before v4 (KIP-588). An empty transactional id is INVALID_REQUEST,
//! and a producer id without an epoch (or the reverse) is INVALID_REQUEST, both as in Kafka.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ProducerId;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;

use super::{HandlerError, Reply, Request};
use crate::metadata::producer_ids::allocate_remote;
use crate::protocol::errors;
use crate::txn::client_error;
use crate::txn::shard::on_coordinator;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: InitProducerIdRequest = req.decode()?;
    let error = |code: i16| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    // v3+ (KIP-360) may name the producer's current id and epoch: both or neither.
    if req.version >= 3 && (r.producer_id.0 == -1) != (r.producer_epoch == -1) {
        return req.respond(&error(ResponseError::InvalidRequest.code()));
    }
    let expected = (r.producer_id.0 != -1).then_some((r.producer_id.0, r.producer_epoch));
    let answer = match r.transactional_id.as_ref().map(|t| t.0.to_string()) {
        Some(t) if t.is_empty() => Err(ResponseError::InvalidRequest.code()),
        Some(id) => {
            let timeout = r.transaction_timeout_ms;
            let key = id.clone();
            on_coordinator(&req.ctx, &key, move |c| async move {
                c.init_producer_id(&id, timeout, expected).await
            })
            .await
            .unwrap_or(Err(ResponseError::CoordinatorNotAvailable))
            .map_err(|e| client_error(e, req.version, 4))
        }
        None => allocate_remote()
            .await
            .map(|id| (id, 0))
            .map_err(|e| e.code()),
    };
    let resp = match answer {
        Ok((id, epoch)) => InitProducerIdResponse::default()
            .with_error_code(errors::NONE)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(code) => error(code),
    };
    req.respond(&resp)
}
