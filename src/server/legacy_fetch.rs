//! Fetch v0–v3 responses: the stored v2 batches down-converted to message sets (magic 0 for
//! Fetch v0–v1, magic 1 for v2–v3) by `protocol::legacy::down_convert`.
//!
//! Old consumers cannot read v2 batches, so this path reads the fetched file slices into memory
//! (pread on the shard thread, like the copying fetch path; the handler first makes the slices
//! ready through io_uring, `storage::page_cache::settle`, so those are page-cache hits) and
//! converts them; compressed batches go out uncompressed. The v4+ path
//! (zero-copy sendfile of the stored bytes) never comes here.
//!
//! Byte limits: the handler has already cut the stored batches to the response's budget (as for
//! v4+), but converting changes sizes (messages are larger than v2 records, and compressed batches
//! grow), so the converted message sets are held to the limits again, in request order, as Kafka
//! did for these versions: each partition at most min(`partition_max_bytes`, budget left). v3 (the
//! version that brought `max_bytes`, KIP-74) keeps whole messages, and the first partition with
//! data gets at least its first message. v0–v2 are Kafka's "hard" limit (`hardMaxBytesLimit`, no
//! first-message exception): the set is cut at the limit even inside a message; old clients read
//! a trailing partial message as "too large for my fetch size" and grow it (librdkafka) or report
//! it (the Java consumer), which is what Kafka's own brokers made them do.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::FetchRequest;

use super::fetch_response::TopicOut;
use super::handlers::{Reply, Request};
use crate::protocol::legacy;
use crate::protocol::legacy_api::{self, LegacyFetchPartition};

/// The message-set magic an old Fetch version can read.
pub fn magic_for(version: i16) -> i8 {
    if version >= 2 { 1 } else { 0 }
}

/// Builds the whole Fetch v0–v3 response for `topics` (in request order, as `r`), at most
/// `max_bytes` of message sets (v3: but for the first message of the first partition with data).
pub fn reply(req: &Request, r: &FetchRequest, topics: &[TopicOut], max_bytes: u32) -> Reply {
    let magic = magic_for(req.version);
    let hard_limit = req.version <= 2;
    let mut left = max_bytes as usize;
    let mut min_one = !hard_limit;
    let mut out = Vec::with_capacity(topics.len());
    for (t, rt) in topics.iter().zip(&r.topics) {
        let mut parts = Vec::with_capacity(t.partitions.len());
        for (p, rp) in t.partitions.iter().zip(&rt.partitions) {
            let mut stored = Vec::with_capacity(p.records.iter().map(|s| s.len as usize).sum());
            for s in &p.records {
                match s.read_to_vec() {
                    Ok(v) => stored.extend_from_slice(&v),
                    Err(e) => return Reply::Close(format!("reading fetched records failed: {e}")),
                }
            }
            let (error_code, mut records) =
                match legacy::down_convert(&stored, rp.fetch_offset, magic) {
                    Ok(set) => (p.error_code, set),
                    Err(e) => {
                        tracing::warn!(topic = %t.name, partition = p.partition, error = %e,
                        "down-converting stored batches failed");
                        (ResponseError::CorruptMessage.code(), Vec::new())
                    }
                };
            let limit = (rp.partition_max_bytes.max(0) as usize).min(left);
            let keep = if hard_limit {
                records.len().min(limit)
            } else {
                legacy::fitting_prefix(&records, limit, min_one)
            };
            records.truncate(keep);
            if !records.is_empty() {
                min_one = false;
            }
            left = left.saturating_sub(records.len());
            parts.push(LegacyFetchPartition {
                partition: p.partition,
                error_code,
                high_watermark: p.high_watermark,
                records,
            });
        }
        out.push((t.name.clone(), parts));
    }
    Reply::Frame(legacy_api::encode_fetch_response(
        req.header.correlation_id,
        req.version,
        &out,
    ))
}
