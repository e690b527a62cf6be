//! DeleteTopics (key 20), v1–v6: by name (v1–v5) or by name or id (v6). The owner shards close
//! the partition logs and remove their directories before the response is sent.

use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::delete_topics_response::{
    DeletableTopicResult, DeleteTopicsResponse,
};

use super::{HandlerError, Reply, Request, topic_name};
use crate::metadata::controller::{self, TopicRef};
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
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let which = match &name {
            Some(n) => TopicRef::Name(n.clone()),
            None => TopicRef::Id(id),
        };
        let res = controller::delete_topic(which).await;
        let entry = DeletableTopicResult::default();
        responses.push(match res {
            Ok(meta) => entry
                .with_name(Some(topic_name(&meta.name)))
                .with_topic_id(meta.id),
            Err(e) => entry
                .with_name(name.as_deref().map(topic_name))
                .with_topic_id(id)
                .with_error_code(e.error_code())
                .with_error_message(Some(sb(&e.to_string()))),
        });
    }
    req.respond(&DeleteTopicsResponse::default().with_responses(responses))
}
