//! The record format Kafka clients and Kafka's log share: v2 record batches and their codecs.
//! No I/O here, and no dependency on any other module of the crate.
//!
//! - [`record_batch`]: the 61-byte v2 batch header (layout, views, broker-owned rewrites), CRC-32C,
//!   validation, varints; a batch builder for tests and tools.
//! - [`compression`]: gzip/snappy/lz4/zstd codecs, decoding a batch's records section, and
//!   re-encoding a v2 batch in another codec (topic `compression.type`); never on the hot path.
//! - [`records`]: decoding the records inside a batch (log cleaner, compacted topics' key check).
//!
//! # Why a module of its own
//!
//! The same bytes are both a wire format and a file format: a produced batch is checked at batch
//! level and written to the segment file as received, and a fetch sends it back from the file
//! unchanged. So the network side ([`crate::protocol`], the handlers) and the log
//! ([`crate::storage`]: recovery walks batch headers and checks CRCs, reads find batch boundaries,
//! ListOffsets decodes one batch's timestamps) need the same definitions. Kept in either of them,
//! the other has to import it; when they lived in `protocol`, storage imported the protocol module
//! while the protocol's Fetch encoder imported storage's file slices, and neither could be read,
//! tested or changed without the other. Here both depend on this module and it on neither. Kafka
//! splits the same way: `common.record` and `common.compress` sit below both its request layer and
//! its log.
//!
//! Message sets v0/v1 (magic 0 and 1) stay in `protocol::legacy`: the log only ever stores v2
//! batches, so only the wire layer meets the old formats (converting on produce, down-converting
//! for old consumers).

pub mod compression;
pub mod record_batch;
pub mod records;
