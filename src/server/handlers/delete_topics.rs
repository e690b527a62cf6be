//! DeleteTopics (key 20), v1–v6: by name (v1–v5) or by name or id (v6). The owner shards close
//! the partition logs and remove their directories before the response is sent. A client over its
//! `controller_mutation_rate` gets THROTTLING_QUOTA_EXCEEDED from v5 (see [`crate::quota`]).

use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::delete_topics_response::{
    DeletableTopicResult, DeleteTopicsResponse,
};

use super::{HandlerError, Reply, Request, topic_name};
use crate::metadata::controller::{self, TopicRef};
use crate::server::mutation_quota::{EXCEEDED_MESSAGE, MutationQuota};
use crate::util::sb;

pub const MIN_VERSION: i16 = 1;
pub const MAX_VERSION: i16 = 6;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: DeleteTopicsRequest = req.decode()?;
    let targets: Vec<(Option<String>, uuid::Uuid)> = if req.version >= 6 {
        r.topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.0.as_str().to_string()),
                    t.topic_id,
                )
            })
            .collect()
    } else {
        r.topic_names
            .iter()
            .map(|n| (Some(n.0.as_str().to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut quota = MutationQuota::for_request(&req, 5);
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let which = match &name {
            Some(n) => TopicRef::Name(n.clone()),
            None => TopicRef::Id(id),
        };
        let entry = DeletableTopicResult::default();
        if let Err(code) = quota.admit() {
            responses.push(
                entry
                    .with_name(name.as_deref().map(topic_name))
                    .with_topic_id(id)
                    .with_error_code(code)
                    .with_error_message(Some(sb(EXCEEDED_MESSAGE))),
            );
            continue;
        }
        let res = controller::delete_topic(which).await;
        responses.push(match res {
            Ok(meta) => {
                quota.record(meta.partitions);
                entry
                    .with_name(Some(topic_name(&meta.name)))
                    .with_topic_id(meta.id)
            }
            Err(e) => entry
                .with_name(name.as_deref().map(topic_name))
                .with_topic_id(id)
                .with_error_code(e.error_code())
                .with_error_message(Some(sb(&e.to_string()))),
        });
    }
    let throttle = quota.finish(&req);
    req.respond(
        &DeleteTopicsResponse::default()
            .with_throttle_time_ms(throttle)
            .with_responses(responses),
    )
}
