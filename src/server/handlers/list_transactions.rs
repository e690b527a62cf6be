//! ListTransactions (key 66), v0–v2: the transactional ids of every shard's coordinator
//! (`kafka-transactions list`, `Admin.listTransactions`), filtered as Kafka filters them: by
//! state (an unknown state name is reported back in `unknown_state_filters` and matches
//! nothing), by producer id, by duration (v1+: running at least that many ms) and by a
//! transactional-id pattern (v2+, a regular expression as Kafka's RE2/J reads it; one that does
//! not compile is INVALID_REGULAR_EXPRESSION).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_transactions_request::ListTransactionsRequest;
use kafka_protocol::messages::list_transactions_response::{
    ListTransactionsResponse, TransactionState,
};
use kafka_protocol::messages::{ProducerId, TransactionalId};

use super::{HandlerError, Reply, Request};
use crate::txn::shard::list_all;
use crate::txn::state::TxnState;
use crate::util::{now_ms, sb};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: ListTransactionsRequest = req.decode()?;
    let mut unknown = Vec::new();
    let mut states = Vec::new();
    for s in &r.state_filters {
        match TxnState::from_name(s) {
            Some(st) => states.push(st),
            None => unknown.push(s.clone()),
        }
    }
    let pattern = match r.transactional_id_pattern.as_deref() {
        Some(p) if req.version >= 2 && !p.is_empty() => {
            match regex::Regex::new(&format!("^(?:{p})$")) {
                Ok(re) => Some(re),
                Err(_) => {
                    return req.respond(
                        &ListTransactionsResponse::default()
                            .with_error_code(ResponseError::InvalidRegularExpression.code()),
                    );
                }
            }
        }
        _ => None,
    };
    let now = now_ms();
    let listed = if !r.state_filters.is_empty() && states.is_empty() {
        Vec::new()
    } else {
        list_all(&req.ctx).await
    };
    let out = listed
        .into_iter()
        .filter(|t| t.state != TxnState::Dead)
        .filter(|t| states.is_empty() || states.contains(&t.state))
        .filter(|t| {
            r.producer_id_filters.is_empty()
                || r.producer_id_filters.contains(&ProducerId(t.producer_id))
        })
        .filter(|t| {
            req.version < 1
                || r.duration_filter < 0
                || (t.start_ms >= 0 && now - t.start_ms >= r.duration_filter)
        })
        .filter(|t| {
            pattern
                .as_ref()
                .is_none_or(|re| re.is_match(&t.transactional_id))
        })
        .map(|t| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(sb(&t.transactional_id)))
                .with_producer_id(ProducerId(t.producer_id))
                .with_transaction_state(sb(t.state.name()))
        })
        .collect();
    req.respond(
        &ListTransactionsResponse::default()
            .with_unknown_state_filters(unknown)
            .with_transaction_states(out),
    )
}
