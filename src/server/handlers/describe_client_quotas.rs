//! DescribeClientQuotas (key 48), v0–v1: the configured quotas whose entities match the filter.
//! A component matches an entity type exactly by name (match type 0), its default (1) or any
//! specific name (2); with `strict` an entity must have no types beyond the components'.
//! INVALID_REQUEST for a repeated entity type or an unknown match type.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_client_quotas_request::{
    ComponentData, DescribeClientQuotasRequest,
};
use kafka_protocol::messages::describe_client_quotas_response::{
    DescribeClientQuotasResponse, EntityData, EntryData, ValueData,
};

use super::{HandlerError, Reply, Request};
use crate::quota::Entity;
use crate::util::sb;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 1;

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: DescribeClientQuotasRequest = req.decode()?;
    if let Err(msg) = check(&r.components) {
        return req.respond(
            &DescribeClientQuotasResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(sb(&msg))),
        );
    }
    let snap = req.ctx.metadata();
    let entries = snap
        .quotas
        .iter()
        .filter(|(e, _)| matches(e, &r.components, r.strict))
        .map(|(e, values)| {
            EntryData::default()
                .with_entity(
                    e.parts()
                        .into_iter()
                        .map(|(ty, name)| {
                            EntityData::default()
                                .with_entity_type(sb(ty))
                                .with_entity_name(name.map(sb))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(k, v)| ValueData::default().with_key(sb(k)).with_value(*v))
                        .collect(),
                )
        })
        .collect();
    req.respond(&DescribeClientQuotasResponse::default().with_entries(Some(entries)))
}

fn check(components: &[ComponentData]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for c in components {
        if !seen.insert(c.entity_type.as_str()) {
            return Err(format!("Duplicate entity type {}", c.entity_type.as_str()));
        }
        if !(MATCH_EXACT..=MATCH_SPECIFIED).contains(&c.match_type) {
            return Err(format!("Unknown match type {}", c.match_type));
        }
    }
    Ok(())
}

/// Whether entity `e` passes every component (and, with `strict`, has no other types).
fn matches(e: &Entity, components: &[ComponentData], strict: bool) -> bool {
    let parts = e.parts();
    let passes = components.iter().all(|c| {
        let Some((_, name)) = parts.iter().find(|(t, _)| *t == c.entity_type.as_str()) else {
            return false;
        };
        match c.match_type {
            MATCH_EXACT => *name == c._match.as_deref(),
            MATCH_DEFAULT => name.is_none(),
            _ => name.is_some(),
        }
    });
    passes && (!strict || parts.len() == components.len())
}
