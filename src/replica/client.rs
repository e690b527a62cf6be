//! Kafka requests from this broker to another one (a follower to its leader), over a
//! `glommio::net::TcpStream`, encoded and decoded by kafka-protocol.
//!
//! One request at a time per connection (the fetcher is sequential: truncate, fetch, append,
//! fetch again), so there is no pipelining and no correlation table: the answer to a request is
//! the next frame, and its correlation id is checked. Every read has a timeout and every
//! response frame a size bound, so a leader that stops answering or sends garbage costs a
//! reconnect, never a hung fetcher or unbounded memory.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

/// Why a call failed; every kind ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("response frame of {0} bytes exceeds the limit")]
    TooLarge(i64),
    #[error("correlation id {got}, expected {want}")]
    Correlation { got: i32, want: i32 },
    #[error("encoding or decoding: {0}")]
    Codec(String),
}

/// A connection to another broker's client listener.
pub struct Conn {
    stream: TcpStream,
    next_correlation: i32,
    client_id: StrBytes,
    max_frame: usize,
}

impl Conn {
    /// Connects within `timeout`; reads then time out after `read_timeout` (the caller sizes it
    /// above the longest long poll it asks for), response frames larger than `max_frame` fail.
    pub async fn connect(
        addr: SocketAddr,
        client_id: &str,
        timeout: Duration,
        read_timeout: Duration,
        max_frame: usize,
    ) -> Result<Conn, ClientError> {
        let stream = TcpStream::connect_timeout(addr, timeout)
            .await
            .map_err(std::io::Error::from)?;
        stream.set_nodelay(true).map_err(std::io::Error::from)?;
        stream
            .set_read_timeout(Some(read_timeout))
            .map_err(std::io::Error::from)?;
        stream
            .set_write_timeout(Some(timeout.max(Duration::from_secs(5))))
            .map_err(std::io::Error::from)?;
        Ok(Conn {
            stream,
            next_correlation: 0,
            client_id: StrBytes::from_string(client_id.to_string()),
            max_frame,
        })
    }

    /// Sends one request and returns its decoded response.
    pub async fn call<Req, Resp>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<Resp, ClientError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let frame = encode_request(key, version, correlation, &self.client_id, req)?;
        self.stream.write_all(&frame).await?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await?;
        let size = i32::from_be_bytes(len);
        if size < 4 || size as usize > self.max_frame {
            return Err(ClientError::TooLarge(size.into()));
        }
        let mut body = vec![0u8; size as usize];
        self.stream.read_exact(&mut body).await?;
        decode_response(Bytes::from(body), version, correlation)
    }
}

/// A size-prefixed request frame.
pub fn encode_request<Req: Encodable + HeaderVersion>(
    key: ApiKey,
    version: i16,
    correlation: i32,
    client_id: &StrBytes,
    req: &Req,
) -> Result<Bytes, ClientError> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(client_id.clone()));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, Req::header_version(version))
        .map_err(|e| ClientError::Codec(e.to_string()))?;
    req.encode(&mut buf, version)
        .map_err(|e| ClientError::Codec(e.to_string()))?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// Decodes a response frame (without its size prefix), checking the correlation id.
pub fn decode_response<Resp: Decodable + HeaderVersion>(
    mut body: Bytes,
    version: i16,
    correlation: i32,
) -> Result<Resp, ClientError> {
    let header = ResponseHeader::decode(&mut body, Resp::header_version(version))
        .map_err(|e| ClientError::Codec(e.to_string()))?;
    if header.correlation_id != correlation {
        return Err(ClientError::Correlation {
            got: header.correlation_id,
            want: correlation,
        });
    }
    let resp = Resp::decode(&mut body, version).map_err(|e| ClientError::Codec(e.to_string()))?;
    if body.has_remaining() {
        tracing::debug!(left = body.remaining(), "response with trailing bytes");
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_request::FetchRequest;
    use kafka_protocol::messages::fetch_response::FetchResponse;

    #[test]
    fn request_frames_carry_their_size_and_header() {
        let req = FetchRequest::default().with_max_wait_ms(500);
        let frame = encode_request(
            ApiKey::Fetch,
            12,
            7,
            &StrBytes::from_static_str("ringbolt-replica-1"),
            &req,
        )
        .unwrap();
        let mut b = frame.clone();
        let len = b.get_i32() as usize;
        assert_eq!(len, frame.len() - 4);
        let parsed = crate::protocol::frame::parse_header(b).unwrap();
        assert_eq!(parsed.header.request_api_key, ApiKey::Fetch as i16);
        assert_eq!(parsed.header.request_api_version, 12);
        assert_eq!(parsed.header.correlation_id, 7);
    }

    #[test]
    fn responses_are_checked_for_their_correlation_id() {
        let resp = FetchResponse::default().with_throttle_time_ms(3);
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(5)
            .encode(&mut buf, FetchResponse::header_version(12))
            .unwrap();
        resp.encode(&mut buf, 12).unwrap();
        let body = buf.freeze();
        let got: FetchResponse = decode_response(body.clone(), 12, 5).unwrap();
        assert_eq!(got.throttle_time_ms, 3);
        assert!(matches!(
            decode_response::<FetchResponse>(body, 12, 6),
            Err(ClientError::Correlation { got: 5, want: 6 })
        ));
    }
}
