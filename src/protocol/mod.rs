//! Wire protocol helpers. No I/O here.
//!
//! - [`errors`]: the Kafka error codes the broker answers with.
//! - [`frame`]: check-then-parse framing: the 4-byte size is checked against
//!   `socket.request.max.bytes` before anything is allocated for the frame, then the request header is
//!   decoded with `kafka-protocol` (header version from the API's flexible versions).
//! - [`legacy`]: message sets v0/v1 (magic 0 and 1): parse, convert to v2, down-convert for
//!   old consumers. [`legacy_api`]: Produce v0–v2, Fetch v0–v3, ListOffsets v0 and OffsetCommit
//!   v0–v1 codecs.
//! - [`ingest`]: what a produced record set goes through before the append.
//!
//! The record-batch format itself (header layout, CRC-32C, validation, codecs) is not here but in
//! [`crate::format`], below both this module and the storage module: storage parses and checks
//! the same batches when it recovers and reads a log, and must not depend on the wire layer. Its
//! two modules stay reachable as [`record_batch`] and [`compression`] here, the paths tests,
//! benches and tools use. The Fetch response encoder that leaves record bytes as file slices
//! lives with the code that sends them, in `server::fetch_response`: it carries
//! `storage::FileSlice`s, and nothing in this module knows about files.

pub use crate::format::{compression, record_batch};

pub mod errors;
pub mod frame;
pub mod ingest;
pub mod legacy;
pub mod legacy_api;
