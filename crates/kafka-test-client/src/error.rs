//! What can go wrong talking to a broker: the connection, the framing, the codecs, or an answer
//! that does not belong to the request.

use std::time::Duration;

use kafka_protocol::messages::ApiKey;

/// A boxed source error (kafka-protocol's codec errors are `anyhow::Error`s).
type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of [`crate::Client`] and [`crate::frame`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("resolving {addr}")]
    Resolve {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} resolves to nothing")]
    NoAddress { addr: String },
    #[error("connecting to {addr}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// A socket operation other than connecting failed; `what` says which.
    #[error("{what}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The socket's read timeout passed without a (whole) response.
    #[error("no response from the broker within {} s", .0.as_secs())]
    Timeout(Duration),
    /// A response size prefix below 4 (no room for a correlation id) or above
    /// [`crate::frame::MAX_FRAME`].
    #[error("bad response frame length {0}")]
    FrameLength(i32),
    #[error("connection closed after {got} of {len} frame bytes")]
    Truncated { got: usize, len: usize },
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("encoding {what} v{version}")]
    Encode {
        what: &'static str,
        version: i16,
        #[source]
        source: Source,
    },
    #[error("decoding {what} v{version}")]
    Decode {
        what: &'static str,
        version: i16,
        #[source]
        source: Source,
    },
    /// A response whose correlation id is not the one of the request it should answer.
    #[error("{what}: correlation id {got}, expected {expected}")]
    Correlation {
        what: &'static str,
        got: i32,
        expected: i32,
    },
    #[error("broker does not support {0:?}")]
    Unsupported(ApiKey),
    #[error("no common version for {key:?}: broker {broker_min}..={broker_max}, client {ours:?}")]
    NoCommonVersion {
        key: ApiKey,
        broker_min: i16,
        broker_max: i16,
        ours: (i16, i16),
    },
    #[error("ApiVersions failed with error code {0}")]
    ApiVersions(i16),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error of a read or write: a timeout becomes [`Error::Timeout`] (`timeout` is the
    /// socket's), anything else [`Error::Io`] saying `what` was going on.
    pub(crate) fn io(what: &'static str, e: std::io::Error, timeout: Option<Duration>) -> Error {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                Error::Timeout(timeout.unwrap_or_default())
            }
            _ => Error::Io { what, source: e },
        }
    }
}

/// The last path segment of a type's name (`ProduceResponse`), for error messages.
pub(crate) fn short_type_name<T>() -> &'static str {
    let name = std::any::type_name::<T>();
    name.rsplit("::").next().unwrap_or(name)
}
