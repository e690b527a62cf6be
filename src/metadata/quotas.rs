//! The controller's side of client quotas: validated changes, persisted with the rest of the
//! metadata and published to every shard (whose Produce and Fetch handlers enforce them, see
//! [`crate::quota`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::TopicError;
use super::controller::{publish, serialized};
use crate::quota::{self, Entity, QuotaError};

/// One entity's changes: key → new value, or `None` to remove the key.
#[derive(Debug, Clone)]
pub struct QuotaAlteration {
    pub entity: Entity,
    pub ops: Vec<(String, Option<f64>)>,
}

/// Applies each alteration that validates (or with `validate_only` only checks them); returns one
/// result per alteration, in order. Valid ones are applied together: one persist, one publish.
pub async fn alter_quotas(
    alterations: Vec<QuotaAlteration>,
    validate_only: bool,
) -> Result<Vec<Result<(), QuotaError>>, TopicError> {
    serialized(move |ctx, store| async move {
        let old = store.quotas.borrow().clone();
        let mut next = (*old).clone();
        let results: Vec<Result<(), QuotaError>> =
            alterations.iter().map(|a| apply(&mut next, a)).collect();
        if validate_only || next == *old {
            return Ok(results);
        }
        if let Some(quorum) = ctx.info.quorum.clone() {
            let cmd = crate::cluster::MetaCommand::SetQuotas {
                quotas: super::cluster::quota_entries(&next),
            };
            super::cluster::propose(&quorum, cmd).await?;
            tracing::info!("altered client quotas in the cluster");
            return Ok(results);
        }
        store.quotas.replace(Arc::new(next));
        store.bump();
        if let Err(e) = store.persist() {
            store.quotas.replace(old);
            store.bump();
            tracing::error!(error = %e, "persisting metadata failed");
            return Err(TopicError::Storage(e.to_string()));
        }
        // Usage metered under the old quotas does not carry over to the new ones.
        ctx.info.quota_meters.clear();
        publish(&ctx, store.snapshot()).await;
        tracing::info!("altered client quotas");
        Ok(results)
    })
    .await
}

/// Checks one alteration and, if it is valid, applies it to `quotas`.
fn apply(quotas: &mut quota::Quotas, a: &QuotaAlteration) -> Result<(), QuotaError> {
    let mut seen = std::collections::BTreeSet::new();
    for (key, value) in &a.ops {
        if !seen.insert(key.as_str()) {
            return Err(QuotaError(format!("Duplicate quota key {key}")));
        }
        match value {
            Some(v) => quota::validate_value(key, *v)?,
            None => quota::validate_value(key, 1.0)?,
        }
    }
    let mut values: BTreeMap<String, f64> = quotas.get(&a.entity).cloned().unwrap_or_default();
    for (key, value) in &a.ops {
        match value {
            Some(v) => values.insert(key.clone(), *v),
            None => values.remove(key),
        };
    }
    if values.is_empty() {
        quotas.remove(&a.entity);
    } else {
        quotas.insert(a.entity.clone(), values);
    }
    Ok(())
}
