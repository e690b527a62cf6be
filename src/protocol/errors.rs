//! Kafka error codes: [`kafka_protocol::ResponseError`] is the one source.
//!
//! The broker keeps no table of its own. Handlers and the group state machine name an error as
//! `ResponseError::UnknownMemberId.code()`, and each internal error type maps to a
//! `ResponseError` in one method (`StorageError::response_error`, `TopicError::response_error`,
//! `IngestError::response_error`), so a code is written down once, in the library generated from
//! Kafka's `Errors.java`, and cannot drift from it.
//!
//! Codes still travel as `i16` inside the broker: that is the wire type, the generated response
//! structs take it, and "no error" is a code (0) that `ResponseError` has no variant for. This
//! module adds only that missing constant.

/// The wire code for success: `ResponseError` has a variant for every error and none for "no
/// error".
pub const NONE: i16 = 0;
