//! Wire protocol helpers. No I/O here.
//!
//! - [`errors`]: the Kafka error codes the broker answers with.
//! - [`frame`]: check-then-parse framing: the 4-byte size is checked against
//!   `socket.request.max.bytes` before anything is allocated for the frame, then the request header is
//!   decoded with `kafka-protocol` (header version from the API's flexible versions).
//! - [`fetch_response`]: a hand-written Fetch response encoder that leaves record bytes as file slices
//!   so the connection can send them with sendfile(2) (see its docs for why kafka-protocol's encoder
//!   cannot).
//! - [`record_batch`]: v2 record-batch header views and validation (storage helper's).
//! - [`compression`]: gzip/snappy/lz4/zstd codecs and re-encoding a v2 batch in another codec
//!   (topic `compression.type`); never on the hot path.
//! - [`legacy`]: message sets v0/v1 (magic 0 and 1): parse, convert to v2, down-convert for
//!   old consumers. [`legacy_api`]: Produce v0–v2, Fetch v0–v3, ListOffsets v0 and OffsetCommit
//!   v0–v1 codecs.
//! - [`ingest`]: what a produced record set goes through before the append.

pub mod compression;
pub mod errors;
pub mod fetch_response;
pub mod frame;
pub mod ingest;
pub mod legacy;
pub mod legacy_api;
pub mod record_batch;
