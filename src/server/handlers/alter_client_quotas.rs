//! AlterClientQuotas (key 49), v0–v1: set or remove `producer_byte_rate` / `consumer_byte_rate`
//! for user and client-id entities (names or `<default>`), persisted and in force on every shard
//! before the answer; `validate_only` checks only. Per entry INVALID_REQUEST for an unknown or
//! repeated entity type, an empty entity, an unknown or unenforced key (see [`crate::quota`]), a
//! value that is not a positive whole number; a refused entry changes nothing.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_client_quotas_request::AlterClientQuotasRequest;
use kafka_protocol::messages::alter_client_quotas_response::{
    AlterClientQuotasResponse, EntityData, EntryData,
};

use super::{HandlerError, Reply, Request};
use crate::metadata::quotas::{QuotaAlteration, alter_quotas};
use crate::protocol::errors::NONE;
use crate::quota::{Entity, QuotaError};
use crate::util::sb;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 1;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: AlterClientQuotasRequest = req.decode()?;
    // Entries whose entity does not parse are answered without reaching the controller.
    let mut parsed: Vec<Result<QuotaAlteration, QuotaError>> = Vec::with_capacity(r.entries.len());
    for e in &r.entries {
        parsed.push(
            Entity::from_parts(
                e.entity
                    .iter()
                    .map(|d| (d.entity_type.as_str(), d.entity_name.as_deref())),
            )
            .map(|entity| QuotaAlteration {
                entity,
                ops: e
                    .ops
                    .iter()
                    .map(|o| (o.key.to_string(), (!o.remove).then_some(o.value)))
                    .collect(),
            }),
        );
    }
    let valid: Vec<QuotaAlteration> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let mut applied = match alter_quotas(valid, r.validate_only).await {
        Ok(results) => results.into_iter(),
        Err(e) => {
            // The controller failed as a whole (storage, shutdown): every entry gets its error.
            let entries = r
                .entries
                .iter()
                .map(|x| entry(x, e.error_code(), Some(e.to_string())))
                .collect();
            return req.respond(&AlterClientQuotasResponse::default().with_entries(entries));
        }
    };
    let entries = r
        .entries
        .iter()
        .zip(parsed)
        .map(|(x, p)| {
            let outcome = p.and_then(|_| applied.next().unwrap_or(Ok(())));
            match outcome {
                Ok(()) => entry(x, NONE, None),
                Err(e) => entry(x, ResponseError::InvalidRequest.code(), Some(e.0)),
            }
        })
        .collect();
    req.respond(&AlterClientQuotasResponse::default().with_entries(entries))
}

fn entry(
    x: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
    code: i16,
    msg: Option<String>,
) -> EntryData {
    EntryData::default()
        .with_error_code(code)
        .with_error_message(msg.as_deref().map(sb))
        .with_entity(
            x.entity
                .iter()
                .map(|d| {
                    EntityData::default()
                        .with_entity_type(d.entity_type.clone())
                        .with_entity_name(d.entity_name.clone())
                })
                .collect(),
        )
}
