//! A small blocking Kafka client for Ringbolt's integration tests, benchmarks and load generator.
//!
//! Message headers and bodies are encoded and decoded with the kafka-protocol crate; this crate
//! adds what a test needs around them: size-prefixed framing ([`frame`]), correlation ids, one
//! connection ([`Client`]), version negotiation ([`Versions`]), request builders for the APIs the
//! tests and tools use ([`requests`], [`group`]) and v2 record batches ([`records`]).
//!
//! Design choices:
//! - **Blocking std sockets.** Tests and benches drive a broker from plain threads, and loadgen
//!   pipelines by giving a reader and a writer thread each a handle of the same socket
//!   ([`Client::into_split`]); none of them needs an async runtime, and a blocking client keeps
//!   every test readable top to bottom.
//! - **Two faces of one connection.** `try_*` methods return [`Result`] (loadgen reports errors,
//!   and a test may expect the broker to go away); the short names (`send`, `recv`, `call`, …)
//!   panic with the error, which is what a test wants from a broker that must answer.
//! - **Nothing but the wire.** The crate does not depend on `ringbolt`: loadgen and the benches
//!   measure Apache Kafka with it too, and a test built on it tests what a client sees. Starting
//!   an in-process broker stays with the callers (`tests/server_util`).
//! - **Responses in request order.** Kafka answers a connection's requests in the order they were
//!   sent; [`Client::recv`] checks the correlation id of every response against the request's.

mod client;
mod error;
pub mod frame;
pub mod group;
pub mod records;
pub mod requests;
mod versions;

pub use client::{CONNECT_TIMEOUT, Client, DEFAULT_CLIENT_ID, DEFAULT_TIMEOUT};
pub use error::{Error, Result};
pub use requests::{sb, tn};
pub use versions::Versions;
