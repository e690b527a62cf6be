//! DescribeTransactions (key 65), v0: the state of transactional ids, each from its coordinator's
//! shard (`kafka-transactions describe`, `Admin.describeTransactions`). An unknown id is
//! TRANSACTIONAL_ID_NOT_FOUND, as in Kafka.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ProducerId;
use kafka_protocol::messages::describe_transactions_request::DescribeTransactionsRequest;
use kafka_protocol::messages::describe_transactions_response::{
    DescribeTransactionsResponse, TopicData, TransactionState,
};

use super::{HandlerError, Reply, Request, topic_name};
use crate::txn::shard::on_coordinator;
use crate::util::sb;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 0;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: DescribeTransactionsRequest = req.decode()?;
    let mut states = Vec::with_capacity(r.transactional_ids.len());
    for tid in &r.transactional_ids {
        let id = tid.0.to_string();
        let key = id.clone();
        let view = on_coordinator(&req.ctx, &key, move |c| async move { Ok(c.describe(&id)) })
            .await
            .unwrap_or(Err(ResponseError::CoordinatorNotAvailable));
        let state = TransactionState::default().with_transactional_id(tid.clone());
        states.push(match view {
            Ok(Some(v)) => {
                let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for (t, p) in v.partitions {
                    topics.entry(t).or_default().push(p);
                }
                state
                    .with_transaction_state(sb(v.state.name()))
                    .with_transaction_timeout_ms(v.timeout_ms)
                    .with_transaction_start_time_ms(v.start_ms)
                    .with_producer_id(ProducerId(v.producer_id))
                    .with_producer_epoch(v.producer_epoch)
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(t, ps)| {
                                TopicData::default()
                                    .with_topic(topic_name(&t))
                                    .with_partitions(ps)
                            })
                            .collect(),
                    )
            }
            Ok(None) => state.with_error_code(ResponseError::TransactionalIdNotFound.code()),
            Err(e) => state.with_error_code(e.code()),
        });
    }
    req.respond(&DescribeTransactionsResponse::default().with_transaction_states(states))
}
