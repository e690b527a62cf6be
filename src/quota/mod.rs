//! Client quotas (Kafka's KIP-13 / KIP-55 byte-rate quotas and KIP-124 request quotas, configured
//! with KIP-546's AlterClientQuotas): which quota applies to a request, and how long to throttle it.
//!
//! # Model
//! A quota entity is a set of (entity type, name) pairs, the name being a specific user or client
//! id or the default (`None`, Kafka's `<default>`). A request from (user, client id) is governed
//! by the most specific entity that has the quota key, in Kafka's order:
//! `/users/U/clients/C`, `/users/U/clients/<default>`, `/users/U`, `/users/<default>/clients/C`,
//! `/users/<default>/clients/<default>`, `/users/<default>`, `/clients/C`, `/clients/<default>`.
//! Usage is metered per *quota key* as Kafka's default callback does: the parts of (user, client
//! id) the matched entity names (a default entry meters every user or client id separately).
//!
//! # Byte rates
//! `producer_byte_rate` meters the request bytes of Produce, `consumer_byte_rate` the record bytes
//! of Fetch responses. Rates are measured over Kafka's sampled window (11 one-second samples, see
//! [`rate`]) and a request that pushes the rate over the quota is throttled for
//! `(rate - quota) / quota * window`, as Kafka computes it. The answer carries `throttle_time_ms`;
//! clients that throttle themselves (Produce v6+, Fetch v8+: KIP-219) get it at once and the
//! broker stops processing the connection's requests for that long (Kafka mutes the channel);
//! older clients get their answer only after the throttle time. A throttled Fetch still carries
//! its records (Kafka returns an empty one instead and does not meter it): both converge on the
//! quota, and this keeps the zero-copy response path free of a second encoding.
//!
//! # Request time (`request_percentage`)
//! Kafka meters the time a client's requests occupy its request-handler threads (and, unthrottled,
//! its network threads), as a percentage of one thread: each request records
//! `nanos * 100 / 1e9` on a [`rate::Rate`] over the same window, and a request that takes the rate
//! over the quota is throttled by the same formula, at most one window (`quota.window.size.seconds`,
//! Kafka's `ClientRequestQuotaManager`). Ringbolt has no request-handler pool: a request runs as a
//! task on the shard (core) that read it, and between polls it is waiting (for the disk, the
//! coordinator shard, a durability sync) while the core serves others. So the honest equivalent of
//! Kafka's thread time is the time the request's task spends *being polled*: [`request_time`] wraps
//! the handler future and sums the time inside each poll, which counts the CPU a request costs the
//! core and none of its waits (Kafka likewise does not count purgatory time). The time the
//! connection's writer spends sending the response (Kafka's network-thread share) is not counted.
//! Only clients that have a `request_percentage` quota are wrapped (`server::request_quota`): the
//! others pay one check of the metadata snapshot.
//!
//! The usage is known only when the handler has built its answer, so the throttle cannot be
//! computed into the response like Kafka does. Instead the connection is muted for the throttle
//! time (its next request starts after it, as Kafka mutes the channel) and the encoded answer's
//! `throttle_time_ms` is raised to it: the field leads the response body for nearly every API at
//! the versions current clients use, and ends Produce's (table and codec test in
//! `server::request_quota`; a zero-copy Fetch has it in its first memory chunk). OffsetDelete and
//! ApiVersions answers keep their field; their clients are held back by the mute alone, like
//! pre-KIP-219 clients were.
//!
//! Meters are shared by all shards (one mutex-protected table per broker), because a quota is per
//! broker and a client's connections may land on different shards. Requests of clients without a
//! quota never touch it: with no quota configured the hot path is one empty check of the
//! metadata snapshot.
//!
//! # Topic mutations (`controller_mutation_rate`, KIP-599)
//! CreateTopics, CreatePartitions and DeleteTopics take one token per partition they create or
//! delete from a [`token_bucket`] that refills at the quota (partitions per second), as Kafka's
//! `ControllerMutationQuotaManager` meters them. From CreateTopics v6, DeleteTopics v5 and
//! CreatePartitions v3 (clients that know THROTTLING_QUOTA_EXCEEDED) the check is strict: a topic
//! asked for while the bucket is below zero is refused with THROTTLING_QUOTA_EXCEEDED, the ones
//! before it are done (one topic may take the bucket below zero); older versions are never refused,
//! only throttled. Either way the answer's `throttle_time_ms` says how long until the bucket is
//! back at zero and the connection is muted for that long (`server::mutation_quota`). Like Kafka's
//! controller, a `validate_only` request is metered as the real one would be.
//!
//! The `ip` entity's `connection_creation_rate` is not enforced: it is refused with
//! INVALID_REQUEST and a message saying so, rather than stored and silently ignored.

pub mod rate;
pub mod request_time;
pub mod token_bucket;
pub mod tracker;

use std::collections::BTreeMap;

pub use tracker::QuotaTracker;

/// Entity types.
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// Quota keys that are enforced.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";

/// Keys Kafka knows that Ringbolt does not enforce (refused, see the module docs).
const NOT_ENFORCED: &[&str] = &["connection_creation_rate"];

/// A quota entity: `user` and/or `client-id`, each a name or the default (`None`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entity {
    pub user: Option<Option<String>>,
    pub client_id: Option<Option<String>>,
}

/// Why a quota request is refused (INVALID_REQUEST in Kafka for all of these).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QuotaError(pub String);

impl Entity {
    /// Builds an entity from the wire's (type, name) pairs; `None` names the default.
    pub fn from_parts<'a>(
        parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Self, QuotaError> {
        let mut e = Entity {
            user: None,
            client_id: None,
        };
        let mut any = false;
        for (ty, name) in parts {
            any = true;
            let slot = match ty {
                USER => &mut e.user,
                CLIENT_ID => &mut e.client_id,
                IP => {
                    return Err(QuotaError(
                        "ip quotas (connection_creation_rate) are not supported by Ringbolt yet"
                            .into(),
                    ));
                }
                other => return Err(QuotaError(format!("Unknown entity type: {other}"))),
            };
            if slot.is_some() {
                return Err(QuotaError(format!("Duplicate entity type: {ty}")));
            }
            *slot = Some(name.map(String::from));
        }
        if !any {
            return Err(QuotaError("Invalid empty client quota entity".into()));
        }
        Ok(e)
    }

    /// The (type, name) pairs, user first.
    pub fn parts(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut v = Vec::new();
        if let Some(u) = &self.user {
            v.push((USER, u.as_deref()));
        }
        if let Some(c) = &self.client_id {
            v.push((CLIENT_ID, c.as_deref()));
        }
        v
    }
}

/// Checks one quota value for `key`: an enforced key; a positive whole number of bytes/s for the
/// byte rates, a positive double for request time (a percentage) and mutations (partitions/s), as
/// Kafka types `request_percentage` and `controller_mutation_rate`.
pub fn validate_value(key: &str, value: f64) -> Result<(), QuotaError> {
    if NOT_ENFORCED.contains(&key) {
        return Err(QuotaError(format!(
            "quota {key} is not supported by Ringbolt yet (only {PRODUCER_BYTE_RATE}, {CONSUMER_BYTE_RATE}, {REQUEST_PERCENTAGE} and {CONTROLLER_MUTATION_RATE} are enforced)"
        )));
    }
    if key == REQUEST_PERCENTAGE || key == CONTROLLER_MUTATION_RATE {
        // Kafka: "Quota <key> must be greater than 0" (a DOUBLE key otherwise takes any value;
        // Ringbolt also refuses NaN and infinity, which no quota can mean).
        if !value.is_finite() || value <= 0.0 {
            return Err(QuotaError(format!("Quota {key} must be greater than 0")));
        }
        return Ok(());
    }
    if key != PRODUCER_BYTE_RATE && key != CONSUMER_BYTE_RATE {
        return Err(QuotaError(format!("Invalid configuration key {key}")));
    }
    if !value.is_finite() || value <= 0.0 || value.fract() != 0.0 {
        return Err(QuotaError(format!(
            "Invalid value {value} for {key}: must be a positive whole number"
        )));
    }
    Ok(())
}

/// Whether any entity has a quota for `key`: the cheap test before [`resolve`], which allocates.
pub fn any_has(quotas: &Quotas, key: &str) -> bool {
    !quotas.is_empty() && quotas.values().any(|m| m.contains_key(key))
}

/// Every configured quota: entity → key → value.
pub type Quotas = BTreeMap<Entity, BTreeMap<String, f64>>;

/// The meter a request is counted on: the matched entity's parts of (user, client id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeterKey {
    pub key: &'static str,
    pub user: String,
    pub client_id: String,
}

/// One entity type's part of a lookup: absent, the default, or a name.
type Slot = Option<Option<String>>;

/// The quota for `key` that governs (user, client id), and the meter to count it on.
pub fn resolve(
    quotas: &Quotas,
    key: &'static str,
    user: &str,
    client_id: &str,
) -> Option<(f64, MeterKey)> {
    if quotas.is_empty() {
        return None;
    }
    let named = |s: &str| Some(Some(s.to_string()));
    let default = Some(None);
    // Kafka's precedence, most specific first.
    let order: [(Slot, Slot); 8] = [
        (named(user), named(client_id)),
        (named(user), default.clone()),
        (named(user), None),
        (default.clone(), named(client_id)),
        (default.clone(), default.clone()),
        (default.clone(), None),
        (None, named(client_id)),
        (None, default),
    ];
    order.into_iter().find_map(|(u, c)| {
        let meter = MeterKey {
            key,
            user: if u.is_some() {
                user.to_string()
            } else {
                String::new()
            },
            client_id: if c.is_some() {
                client_id.to_string()
            } else {
                String::new()
            },
        };
        let e = Entity {
            user: u,
            client_id: c,
        };
        quotas.get(&e).and_then(|m| m.get(key)).map(|v| (*v, meter))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parts<'a> = &'a [(&'a str, Option<&'a str>)];

    fn q(entries: &[(Parts<'_>, f64)]) -> Quotas {
        entries
            .iter()
            .map(|(parts, v)| {
                let e = Entity::from_parts(parts.iter().copied()).unwrap();
                (
                    e,
                    [(PRODUCER_BYTE_RATE.to_string(), *v)].into_iter().collect(),
                )
            })
            .collect()
    }

    #[test]
    fn most_specific_entity_wins() {
        let quotas = q(&[
            (&[(CLIENT_ID, None)], 1.0),
            (&[(CLIENT_ID, Some("app"))], 2.0),
            (&[(USER, None)], 3.0),
            (&[(USER, Some("alice")), (CLIENT_ID, Some("app"))], 4.0),
        ]);
        let r = |u, c| {
            resolve(&quotas, PRODUCER_BYTE_RATE, u, c).map(|(v, m)| (v, m.user, m.client_id))
        };
        assert_eq!(r("alice", "app"), Some((4.0, "alice".into(), "app".into())));
        assert_eq!(r("bob", "app"), Some((3.0, "bob".into(), String::new())));
        let only_clients = q(&[
            (&[(CLIENT_ID, None)], 1.0),
            (&[(CLIENT_ID, Some("app"))], 2.0),
        ]);
        let r2 =
            |c| resolve(&only_clients, PRODUCER_BYTE_RATE, "u", c).map(|(v, m)| (v, m.client_id));
        assert_eq!(r2("app"), Some((2.0, "app".into())));
        assert_eq!(r2("other"), Some((1.0, "other".into())));
        assert_eq!(resolve(&only_clients, CONSUMER_BYTE_RATE, "u", "app"), None);
        assert_eq!(
            resolve(&Quotas::new(), PRODUCER_BYTE_RATE, "u", "app"),
            None
        );
    }

    #[test]
    fn entities_and_values_are_validated() {
        assert!(Entity::from_parts([]).is_err());
        assert!(Entity::from_parts([("group", Some("g"))]).is_err());
        assert!(Entity::from_parts([(USER, Some("a")), (USER, Some("b"))]).is_err());
        assert!(Entity::from_parts([(IP, Some("1.2.3.4"))]).is_err());
        assert!(validate_value(PRODUCER_BYTE_RATE, 1024.0).is_ok());
        assert!(validate_value(PRODUCER_BYTE_RATE, 0.0).is_err());
        assert!(validate_value(PRODUCER_BYTE_RATE, 1.5).is_err());
        assert!(validate_value(REQUEST_PERCENTAGE, 50.0).is_ok());
        assert!(validate_value(REQUEST_PERCENTAGE, 0.5).is_ok());
        assert!(validate_value(REQUEST_PERCENTAGE, 0.0).is_err());
        assert!(validate_value(REQUEST_PERCENTAGE, -1.0).is_err());
        assert!(validate_value(REQUEST_PERCENTAGE, f64::NAN).is_err());
        assert!(validate_value(CONTROLLER_MUTATION_RATE, 0.5).is_ok());
        assert!(validate_value(CONTROLLER_MUTATION_RATE, 0.0).is_err());
        assert!(validate_value("connection_creation_rate", 1.0).is_err());
        assert!(validate_value("nope", 1.0).is_err());
    }
}
