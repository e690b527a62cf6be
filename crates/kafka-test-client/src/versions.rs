//! Version negotiation: ApiVersions, and the highest version both sides support.

use std::collections::HashMap;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::protocol::StrBytes;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::frame;

/// Version ranges a broker advertised in ApiVersions.
#[derive(Clone, Debug, Default)]
pub struct Versions(HashMap<i16, (i16, i16)>);

impl Versions {
    /// The broker's (min, max) for `key`, if it supports it.
    pub fn range(&self, key: ApiKey) -> Option<(i16, i16)> {
        self.0.get(&(key as i16)).copied()
    }

    /// Highest version in both `ours` and the broker's range for `key`.
    pub fn pick(&self, key: ApiKey, ours: (i16, i16)) -> Result<i16> {
        let (broker_min, broker_max) = self.range(key).ok_or(Error::Unsupported(key))?;
        let v = broker_max.min(ours.1);
        if v < ours.0.max(broker_min) {
            return Err(Error::NoCommonVersion {
                key,
                broker_min,
                broker_max,
                ours,
            });
        }
        Ok(v)
    }
}

impl Client {
    /// Asks the broker for its API versions: v3 (KIP-511: the client id doubles as the software
    /// name) first; a broker that does not know v3 answers in the v0 format with
    /// UNSUPPORTED_VERSION and its table, which is taken as the answer.
    pub fn try_api_versions(&mut self) -> Result<Versions> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_string(self.client_id().to_owned()))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let corr = self.try_send(ApiKey::ApiVersions, 3, &req)?;
        let frame = self.recv_frame()?;
        let resp = match frame::decode_response::<ApiVersionsResponse>(frame.clone(), 3) {
            Ok(r) if r.body.error_code == 0 => r,
            _ => frame::decode_response::<ApiVersionsResponse>(frame, 0)?,
        };
        if resp.correlation_id != corr {
            return Err(Error::Correlation {
                what: "ApiVersionsResponse",
                got: resp.correlation_id,
                expected: corr,
            });
        }
        let resp = resp.body;
        if resp.error_code != 0 && resp.api_keys.is_empty() {
            return Err(Error::ApiVersions(resp.error_code));
        }
        Ok(Versions(
            resp.api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_takes_the_highest_common_version() {
        let v = Versions([(0, (0, 9)), (1, (4, 16))].into_iter().collect());
        assert_eq!(v.pick(ApiKey::Produce, (3, 12)).unwrap(), 9);
        assert_eq!(v.pick(ApiKey::Fetch, (4, 12)).unwrap(), 12);
        assert!(matches!(
            v.pick(ApiKey::Fetch, (0, 3)),
            Err(Error::NoCommonVersion { broker_min: 4, .. })
        ));
        assert!(matches!(
            v.pick(ApiKey::Metadata, (1, 12)),
            Err(Error::Unsupported(ApiKey::Metadata))
        ));
    }
}
