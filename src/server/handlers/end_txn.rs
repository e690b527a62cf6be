//! EndTxn (key 26), v0–v5: commit or abort the producer's ongoing transaction. Answered once the
//! outcome is durable everywhere: PrepareCommit/PrepareAbort in the transaction log, a marker on
//! every partition, the group offsets completed, CompleteCommit/CompleteAbort in the log (see
//! `txn::coordinator`). Errors as Kafka's: INVALID_PRODUCER_ID_MAPPING for an unknown id or
//! producer, PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before v2, KIP-588) for an old epoch,
//! INVALID_TXN_STATE for a commit of an aborted transaction (or the reverse) or with none
//! ongoing. v5's producer id and epoch are transaction-version-2 fields: -1 here.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ProducerId;
use kafka_protocol::messages::end_txn_request::EndTxnRequest;
use kafka_protocol::messages::end_txn_response::EndTxnResponse;

use super::{HandlerError, Reply, Request};
use crate::txn::client_error;
use crate::txn::shard::on_coordinator;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: EndTxnRequest = req.decode()?;
    let id = r.transactional_id.0.to_string();
    let (pid, epoch, commit) = (r.producer_id.0, r.producer_epoch, r.committed);
    let key = id.clone();
    let answer = on_coordinator(&req.ctx, &key, move |c| async move {
        c.end_txn(&id, pid, epoch, commit).await
    })
    .await
    .unwrap_or(Err(ResponseError::CoordinatorNotAvailable));
    let code = answer.map_or_else(|e| client_error(e, req.version, 2), |_| 0);
    let mut resp = EndTxnResponse::default().with_error_code(code);
    if req.version >= 5 {
        resp = resp
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    req.respond(&resp)
}
