//! Small helpers shared across the crate, kept here once instead of copied per module.

use kafka_protocol::protocol::StrBytes;

/// The items that occur more than once (a request naming a resource twice is refused for it).
pub(crate) fn repeated<T: Eq + std::hash::Hash + Clone>(
    items: impl IntoIterator<Item = T>,
) -> std::collections::HashSet<T> {
    let mut seen = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|i| !seen.insert(i.clone()))
        .collect()
}

/// Milliseconds since the Unix epoch by the wall clock (0 if the clock reads before 1970).
///
/// Wall-clock, not monotonic: these are the timestamps Kafka puts on the wire and in files
/// (record and index timestamps, retention, commit times), which must mean the same across
/// restarts and brokers.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A `StrBytes` (the string type of kafka-protocol's messages) from a `&str`.
pub(crate) fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}
