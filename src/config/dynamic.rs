//! Dynamic configs: overrides changed at runtime by IncrementalAlterConfigs / AlterConfigs, and
//! the view DescribeConfigs gives of every config with its source and synonyms.
//!
//! Kafka resolves a config through layers, most specific first, and so does Ringbolt:
//! a topic's own override (`TOPIC_CONFIG`), then for the broker config that gives its default: the
//! per-broker dynamic value (`DYNAMIC_BROKER_CONFIG`), the cluster-wide dynamic default
//! (`DYNAMIC_DEFAULT_BROKER_CONFIG`), the value in the config file (`STATIC_BROKER_CONFIG`) and the
//! built-in default (`DEFAULT_CONFIG`). The dynamic layers live in the metadata store
//! ([`crate::metadata`]), persisted with the topics and published to every shard in the same
//! snapshots, so a change reaches the partitions' running logs without a restart.
//!
//! This module is pure: it computes new override maps from operations, validates them, merges the
//! layers into effective [`BrokerSettings`] and describes the result. Persisting and publishing are
//! the controller's.

use std::collections::BTreeMap;

use super::catalog::{self, ConfigType};
use super::{BrokerSettings, ConfigError};

/// Where a config's value comes from (DescribeConfigs' `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    TopicConfig = 1,
    DynamicBrokerConfig = 2,
    DynamicDefaultBrokerConfig = 3,
    StaticBrokerConfig = 4,
    DefaultConfig = 5,
}

impl ConfigSource {
    /// The wire code.
    pub fn code(self) -> i8 {
        self as i8
    }
}

/// The dynamic broker-config layers: `""` is the cluster-wide default, a node id string that
/// broker's own overrides (Kafka's `--entity-default` and `--entity-name <id>`).
pub type BrokerOverrides = BTreeMap<String, BTreeMap<String, String>>;

/// The key of the cluster-wide default layer in [`BrokerOverrides`].
pub const CLUSTER_DEFAULT: &str = "";

/// One IncrementalAlterConfigs operation (its `config_operation` codes 0–3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterOp {
    Set(String, String),
    Delete(String),
    /// Add list items not present yet (list configs only).
    Append(String, String),
    /// Remove list items (list configs only).
    Subtract(String, String),
}

impl AlterOp {
    /// The config the operation changes.
    pub fn name(&self) -> &str {
        match self {
            AlterOp::Set(n, _)
            | AlterOp::Delete(n)
            | AlterOp::Append(n, _)
            | AlterOp::Subtract(n, _) => n,
        }
    }
}

/// Why an alteration is refused; the handlers map it to Kafka's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlterError {
    /// INVALID_CONFIG: unknown name, wrong type, out of range, not dynamic.
    #[error("{0}")]
    InvalidConfig(String),
    /// INVALID_REQUEST: malformed request (duplicate names, null values, bad operation).
    #[error("{0}")]
    InvalidRequest(String),
}

impl From<ConfigError> for AlterError {
    fn from(e: ConfigError) -> Self {
        AlterError::InvalidConfig(e.to_string())
    }
}

/// Which kind of resource a set of overrides belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Topic,
    Broker,
}

impl Resource {
    fn ty(self, name: &str) -> Option<ConfigType> {
        match self {
            Resource::Topic => catalog::topic(name).map(|d| d.ty),
            Resource::Broker => catalog::broker(name).map(|d| d.ty),
        }
    }
}

/// Applies incremental operations to `current` overrides. `default_of` gives the value a list
/// config has without an override (what APPEND / SUBTRACT start from, as in Kafka).
pub fn apply_ops(
    resource: Resource,
    current: &BTreeMap<String, String>,
    ops: &[AlterOp],
    default_of: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, AlterError> {
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = ops.iter().find(|op| !seen.insert(op.name())) {
        return Err(AlterError::InvalidRequest(format!(
            "Error due to duplicate config keys: {}",
            dup.name()
        )));
    }
    let mut next = current.clone();
    for op in ops {
        let name = op.name();
        let Some(ty) = resource.ty(name) else {
            return Err(unknown(resource, name));
        };
        match op {
            AlterOp::Set(_, v) => {
                next.insert(name.to_string(), v.clone());
            }
            AlterOp::Delete(_) => {
                next.remove(name);
            }
            AlterOp::Append(_, v) | AlterOp::Subtract(_, v) => {
                if ty != ConfigType::List {
                    let what = if matches!(op, AlterOp::Append(..)) {
                        "append"
                    } else {
                        "subtract"
                    };
                    return Err(AlterError::InvalidConfig(format!(
                        "Config value {what} is not allowed for config key: {name}"
                    )));
                }
                let base = next
                    .get(name)
                    .cloned()
                    .or_else(|| default_of(name))
                    .unwrap_or_default();
                let mut items: Vec<String> = split_list(&base);
                let given = split_list(v);
                if matches!(op, AlterOp::Append(..)) {
                    for g in given {
                        if !items.contains(&g) {
                            items.push(g);
                        }
                    }
                } else {
                    items.retain(|i| !given.contains(i));
                }
                next.insert(name.to_string(), items.join(","));
            }
        }
    }
    Ok(next)
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn unknown(resource: Resource, name: &str) -> AlterError {
    let kind = match resource {
        Resource::Topic => "topic",
        Resource::Broker => "broker",
    };
    AlterError::InvalidConfig(format!("Unknown {kind} config name: {name}"))
}

/// Checks a topic's complete override map against `settings` (the effective broker settings):
/// known names, well-typed values, values in range.
pub fn validate_topic(
    settings: &BrokerSettings,
    overrides: &BTreeMap<String, String>,
) -> Result<(), AlterError> {
    for (name, v) in overrides {
        let def = catalog::topic(name).ok_or_else(|| unknown(Resource::Topic, name))?;
        if !def.ty.parses(v) {
            return Err(invalid_value(name, v));
        }
    }
    settings.validate_topic_configs(overrides)?;
    Ok(())
}

fn invalid_value(name: &str, v: &str) -> AlterError {
    AlterError::InvalidConfig(format!("Invalid value {v} for configuration {name}"))
}

/// Checks one dynamic broker layer: known names that Kafka lets change at runtime, well-typed.
/// The merged result is checked by [`effective_settings`].
pub fn validate_broker_layer(layer: &BTreeMap<String, String>) -> Result<(), AlterError> {
    let mut not_dynamic = Vec::new();
    for (name, v) in layer {
        let def = catalog::broker(name).ok_or_else(|| unknown(Resource::Broker, name))?;
        if !def.dynamic {
            not_dynamic.push(name.as_str());
        } else if !def.ty.parses(v) {
            return Err(invalid_value(name, v));
        }
    }
    if !not_dynamic.is_empty() {
        return Err(AlterError::InvalidConfig(format!(
            "Cannot update these configs dynamically: {}",
            not_dynamic.join(", ")
        )));
    }
    Ok(())
}

/// The settings node `node` runs with: the static settings with the cluster-wide and then the
/// node's dynamic layer applied; each layer and the result validated.
pub fn effective_settings(
    static_settings: &BrokerSettings,
    overrides: &BrokerOverrides,
    node: i32,
) -> Result<BrokerSettings, AlterError> {
    let mut layers = Vec::new();
    for key in [CLUSTER_DEFAULT.to_string(), node.to_string()] {
        if let Some(layer) = overrides.get(&key) {
            validate_broker_layer(layer)?;
            layers.push(layer);
        }
    }
    Ok(static_settings.with_overrides(&layers)?)
}

/// One config as DescribeConfigs lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub ty: ConfigType,
    pub doc: &'static str,
    /// Every layer that has a value for it, most specific first (the first is the value).
    pub synonyms: Vec<(String, Option<String>, ConfigSource)>,
}

/// The layers of a broker's configs: static file, dynamic overrides, node id, and the settings
/// they add up to.
#[derive(Debug, Clone, Copy)]
pub struct Layers<'a> {
    pub static_settings: &'a BrokerSettings,
    pub overrides: &'a BrokerOverrides,
    pub node: i32,
    /// `static_settings` with `overrides` applied (the snapshot's settings).
    pub effective: &'a BrokerSettings,
}

/// One synonym: (config name, value, source).
pub type Synonym = (String, Option<String>, ConfigSource);

impl Layers<'_> {
    /// Every value any layer gives broker config `name` or its synonyms (Kafka's
    /// `log.retention.ms` / `.minutes` / `.hours`), most specific first; unset ones left out.
    fn broker_chain(&self, name: &'static str) -> Vec<Synonym> {
        let statics = self.static_settings.values_with_unset();
        let defaults = BrokerSettings::default().values_with_unset();
        let mut chain = Vec::new();
        for syn in catalog::synonym_names(name) {
            let layer = |key: &str| self.overrides.get(key).and_then(|l| l.get(syn)).cloned();
            let mut push = |v: Option<String>, source| {
                if v.is_some() {
                    chain.push((syn.to_string(), v, source));
                }
            };
            push(
                layer(&self.node.to_string()),
                ConfigSource::DynamicBrokerConfig,
            );
            push(
                layer(CLUSTER_DEFAULT),
                ConfigSource::DynamicDefaultBrokerConfig,
            );
            if self.static_settings.is_explicit(syn) {
                push(
                    statics.get(syn).cloned().flatten(),
                    ConfigSource::StaticBrokerConfig,
                );
            }
            push(
                defaults.get(syn).cloned().flatten(),
                ConfigSource::DefaultConfig,
            );
        }
        chain
    }

    /// Every broker config (or those `wanted` accepts) as this node runs them. For the
    /// cluster-wide default resource (`default_resource`), only the configs that layer sets, as
    /// Kafka lists them.
    pub fn describe_broker(
        &self,
        default_resource: bool,
        wanted: impl Fn(&str) -> bool,
    ) -> Vec<Described> {
        let cluster = self.overrides.get(CLUSTER_DEFAULT);
        catalog::BROKER_CONFIGS
            .iter()
            .filter(|d| wanted(d.name))
            .filter_map(|d| {
                let synonyms = if default_resource {
                    let v = cluster.and_then(|l| l.get(d.name))?;
                    vec![(
                        d.name.to_string(),
                        Some(v.clone()),
                        ConfigSource::DynamicDefaultBrokerConfig,
                    )]
                } else {
                    self.broker_chain(d.name)
                };
                let own = synonyms.iter().find(|s| s.0 == d.name);
                Some(Described {
                    name: d.name.to_string(),
                    value: own.and_then(|s| s.1.clone()),
                    source: own.map_or(ConfigSource::DefaultConfig, |s| s.2),
                    read_only: !d.dynamic,
                    ty: d.ty,
                    doc: d.doc,
                    synonyms,
                })
            })
            .collect()
    }

    /// Every topic config of a topic with `overrides` (or those `wanted` accepts): the override,
    /// else the value the broker settings give it. Synonyms as Kafka lists them: the override,
    /// then the broker chain from its first entry for the topic config's own broker synonym (so
    /// a retention that only `log.retention.hours`' default gives has no broker synonym).
    pub fn describe_topic(
        &self,
        overrides: &BTreeMap<String, String>,
        wanted: impl Fn(&str) -> bool,
    ) -> Vec<Described> {
        let defaults = self.effective.topic_defaults();
        catalog::TOPIC_CONFIGS
            .iter()
            .filter(|d| wanted(d.name))
            .map(|d| {
                let mut synonyms = Vec::new();
                if let Some(v) = overrides.get(d.name) {
                    synonyms.push((
                        d.name.to_string(),
                        Some(v.clone()),
                        ConfigSource::TopicConfig,
                    ));
                }
                if let Some(b) = d.broker_synonym {
                    synonyms.extend(self.broker_chain(b).into_iter().skip_while(|s| s.0 != b));
                }
                let value = overrides
                    .get(d.name)
                    .cloned()
                    .or_else(|| defaults.get(d.name).cloned());
                Described {
                    name: d.name.to_string(),
                    value,
                    source: synonyms
                        .first()
                        .map_or(ConfigSource::DefaultConfig, |s| s.2),
                    read_only: false,
                    ty: d.ty,
                    doc: d.doc,
                    synonyms,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn incremental_ops() {
        let cur = map(&[("retention.ms", "1000")]);
        let next = apply_ops(
            Resource::Topic,
            &cur,
            &[
                AlterOp::Delete("retention.ms".into()),
                AlterOp::Set("segment.ms".into(), "5000".into()),
                AlterOp::Append("cleanup.policy".into(), "compact".into()),
            ],
            |_| Some("delete".into()),
        )
        .unwrap();
        assert_eq!(
            next,
            map(&[("cleanup.policy", "delete,compact"), ("segment.ms", "5000")])
        );
        let next = apply_ops(
            Resource::Topic,
            &next,
            &[AlterOp::Subtract("cleanup.policy".into(), "delete".into())],
            |_| None,
        )
        .unwrap();
        assert_eq!(next["cleanup.policy"], "compact");
        assert!(matches!(
            apply_ops(
                Resource::Topic,
                &cur,
                &[AlterOp::Append("retention.ms".into(), "1".into())],
                |_| None
            ),
            Err(AlterError::InvalidConfig(_))
        ));
        assert!(matches!(
            apply_ops(
                Resource::Topic,
                &cur,
                &[AlterOp::Set("no.such".into(), "1".into())],
                |_| None
            ),
            Err(AlterError::InvalidConfig(_))
        ));
        assert!(matches!(
            apply_ops(
                Resource::Topic,
                &cur,
                &[
                    AlterOp::Delete("retention.ms".into()),
                    AlterOp::Set("retention.ms".into(), "1".into())
                ],
                |_| None
            ),
            Err(AlterError::InvalidRequest(_))
        ));
    }

    #[test]
    fn topic_values_are_typed_and_ranged() {
        let s = BrokerSettings::default();
        assert!(validate_topic(&s, &map(&[("retention.ms", "60000")])).is_ok());
        assert!(validate_topic(&s, &map(&[("retention.ms", "soon")])).is_err());
        assert!(validate_topic(&s, &map(&[("segment.bytes", "10")])).is_err());
        assert!(validate_topic(&s, &map(&[("cleanup.policy", "shred")])).is_err());
    }

    #[test]
    fn broker_layers_merge_and_describe() {
        let s = BrokerSettings::from_toml_str("\"log.retention.ms\" = 5000\n").unwrap();
        let mut o = BrokerOverrides::new();
        o.insert(
            CLUSTER_DEFAULT.into(),
            map(&[("log.segment.bytes", "2048"), ("log.retention.ms", "7000")]),
        );
        o.insert("1".into(), map(&[("log.retention.ms", "9000")]));
        let e = effective_settings(&s, &o, 1).unwrap();
        assert_eq!(e.retention_ms(), 9000);
        assert_eq!(e.log_segment_bytes, 2048);
        assert_eq!(effective_settings(&s, &o, 2).unwrap().retention_ms(), 7000);

        let e = effective_settings(&s, &o, 1).unwrap();
        let l = Layers {
            static_settings: &s,
            overrides: &o,
            node: 1,
            effective: &e,
        };
        let d = &l.describe_broker(false, |n| n == "log.retention.ms")[0];
        assert_eq!(d.value.as_deref(), Some("9000"));
        let sources: Vec<_> = d.synonyms.iter().map(|x| x.2).collect();
        assert_eq!(
            sources,
            [
                ConfigSource::DynamicBrokerConfig,
                ConfigSource::DynamicDefaultBrokerConfig,
                ConfigSource::StaticBrokerConfig,
                ConfigSource::DefaultConfig
            ]
        );
        let t = l.describe_topic(&map(&[("segment.bytes", "4096")]), |_| true);
        let seg = t.iter().find(|d| d.name == "segment.bytes").unwrap();
        assert_eq!(
            (seg.value.as_deref(), seg.source),
            (Some("4096"), ConfigSource::TopicConfig)
        );
        assert_eq!(seg.synonyms[1].0, "log.segment.bytes");
        assert_eq!(d.synonyms.last().unwrap().0, "log.retention.hours");
        // Only log.retention.hours' default behind a topic's retention: no broker synonym.
        let plain = BrokerSettings::default();
        let none = BrokerOverrides::new();
        let l0 = Layers {
            static_settings: &plain,
            overrides: &none,
            node: 1,
            effective: &plain,
        };
        let r0 = &l0.describe_topic(&BTreeMap::new(), |n| n == "retention.ms")[0];
        assert_eq!(
            (r0.value.as_deref(), r0.source, r0.synonyms.len()),
            (Some("604800000"), ConfigSource::DefaultConfig, 0)
        );
        assert!(l0.describe_broker(true, |_| true).is_empty());
        let ret = t.iter().find(|d| d.name == "retention.ms").unwrap();
        assert_eq!(
            (ret.value.as_deref(), ret.source),
            (Some("9000"), ConfigSource::DynamicBrokerConfig)
        );

        o.insert("1".into(), map(&[("num.partitions", "3")]));
        assert!(
            matches!(effective_settings(&s, &o, 1), Err(AlterError::InvalidConfig(m)) if m.contains("dynamically"))
        );
        o.insert("1".into(), map(&[("log.segment.bytes", "12")]));
        assert!(effective_settings(&s, &o, 1).is_err());
    }
}
