//! Fetch v0–v3 responses: the stored v2 batches down-converted to message sets (magic 0 for
//! Fetch v0–v1, magic 1 for v2–v3) by `protocol::legacy::down_convert`.
//!
//! Old consumers cannot read v2 batches, so this path reads the fetched file slices into memory
//! (pread on the shard thread, like the copying fetch path; the handler first makes the slices
//! ready through io_uring, `storage::page_cache::settle`, so those are page-cache hits) and
//! converts them; compressed batches go out uncompressed. The v4+ path
//! (zero-copy sendfile of the stored bytes) never comes here.

use kafka_protocol::messages::fetch_request::FetchRequest;

use super::handlers::{Reply, Request};
use crate::protocol::errors;
use crate::protocol::fetch_response::TopicOut;
use crate::protocol::legacy;
use crate::protocol::legacy_api::{self, LegacyFetchPartition};

/// The message-set magic an old Fetch version can read.
pub fn magic_for(version: i16) -> i8 {
    if version >= 2 { 1 } else { 0 }
}

/// Builds the whole Fetch v0–v3 response for `topics` (in request order, as `r`).
pub fn reply(req: &Request, r: &FetchRequest, topics: &[TopicOut]) -> Reply {
    let magic = magic_for(req.version);
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
            let (error_code, records) = match legacy::down_convert(&stored, rp.fetch_offset, magic)
            {
                Ok(set) => (p.error_code, set),
                Err(e) => {
                    tracing::warn!(topic = %t.name, partition = p.partition, error = %e,
                        "down-converting stored batches failed");
                    (errors::CORRUPT_MESSAGE, Vec::new())
                }
            };
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
