//! AddOffsetsToTxn (key 25), v0–v4: a consumer group joins the producer's ongoing transaction,
//! before its TxnOffsetCommit (`sendOffsetsToTransaction`). The coordinator records the group;
//! at EndTxn it completes the group's transactional offsets (`group::shard::complete_txn`).
//! PRODUCER_FENCED is INVALID_PRODUCER_EPOCH before v2 (KIP-588).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_offsets_to_txn_request::AddOffsetsToTxnRequest;
use kafka_protocol::messages::add_offsets_to_txn_response::AddOffsetsToTxnResponse;

use super::{HandlerError, Reply, Request};
use crate::txn::client_error;
use crate::txn::shard::on_coordinator;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 4;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: AddOffsetsToTxnRequest = req.decode()?;
    let id = r.transactional_id.0.to_string();
    let group = r.group_id.0.to_string();
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    let code = if group.is_empty() {
        ResponseError::InvalidGroupId.code()
    } else {
        let key = id.clone();
        let answer = on_coordinator(&req.ctx, &key, move |c| async move {
            c.add(&id, pid, epoch, Vec::new(), vec![group]).await
        })
        .await
        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable));
        answer.map_or_else(|e| client_error(e, req.version, 2), |_| 0)
    };
    req.respond(&AddOffsetsToTxnResponse::default().with_error_code(code))
}
