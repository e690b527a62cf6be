//! ApiVersions (key 18), v0–v4, with the KIP-511 fallback.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};

use super::{HandlerError, Reply, Request, SUPPORTED_APIS, encode_frame};
use crate::protocol::errors;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 4;

fn table() -> Vec<ApiVersion> {
    let cluster = crate::shard::current().is_some_and(|c| c.info.quorum.is_some());
    SUPPORTED_APIS
        .iter()
        .filter(|(k, _, _)| super::advertised(*k, cluster))
        .map(|&(k, min, max)| {
            ApiVersion::default()
                .with_api_key(k as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    // v3+ carries the client's software name/version; a body that does not decode is answered with
    // INVALID_REQUEST (as Kafka does) rather than a closed connection.
    let error_code = match req.decode::<ApiVersionsRequest>() {
        Ok(_) => errors::NONE,
        Err(e) => {
            tracing::warn!(error = %e, "bad ApiVersions body");
            ResponseError::InvalidRequest.code()
        }
    };
    let resp = ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(table());
    req.respond(&resp)
}

/// KIP-511: a request at a version above ours is answered at v0 with UNSUPPORTED_VERSION and the
/// full table, so the client can retry with a version we support.
pub fn fallback(correlation_id: i32) -> Reply {
    let resp = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(table());
    match encode_frame(ApiKey::ApiVersions, correlation_id, 0, &resp) {
        Ok(b) => Reply::Frame(b),
        Err(e) => Reply::Close(e.to_string()),
    }
}
