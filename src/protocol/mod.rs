//! Wire protocol helpers. No I/O here.
pub mod record_batch;
