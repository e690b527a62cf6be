//! Check-then-parse framing and request headers.
//!
//! A Kafka request is `size: i32` followed by `size` bytes: a request header (api key, api version,
//! correlation id, client id, and tagged fields from header v2 on) and the body. The connection reads
//! the size, asks [`check_frame_size`] whether to go on (so an oversized or negative size is refused
//! before any buffer of that size exists), reads the frame whole and then calls [`parse_header`].

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// Why a frame cannot be served; every variant closes the connection.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    #[error("frame size {size} exceeds socket.request.max.bytes {max}")]
    TooLarge { size: i64, max: u32 },
    #[error("negative or too small frame size {0}")]
    BadSize(i32),
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("malformed request header: {0}")]
    BadHeader(String),
}

/// Smallest possible request: api key, api version, correlation id, client id length.
pub const MIN_FRAME: i32 = 10;

/// Validates the 4-byte size prefix against the configured maximum.
pub fn check_frame_size(size: i32, max: u32) -> Result<usize, FrameError> {
    if size < MIN_FRAME {
        return Err(FrameError::BadSize(size));
    }
    if size as u32 > max {
        return Err(FrameError::TooLarge {
            size: size as i64,
            max,
        });
    }
    Ok(size as usize)
}

/// A decoded request header and the remaining body bytes.
#[derive(Debug)]
pub struct ParsedRequest {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
}

/// Decodes the header of one whole frame (without its size prefix).
pub fn parse_header(mut frame: Bytes) -> Result<ParsedRequest, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::BadHeader(format!("{} bytes", frame.len())));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| FrameError::UnknownApiKey(raw_key))?;
    if version < 0 {
        return Err(FrameError::BadHeader(format!(
            "negative api version {version}"
        )));
    }
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| FrameError::BadHeader(e.to_string()))?;
    Ok(ParsedRequest {
        api_key,
        header,
        body: frame,
    })
}

/// Starts a response frame: a size placeholder and the response header. Finish with
/// [`finish_frame`] after encoding the body into the same buffer.
pub fn start_frame(buf: &mut BytesMut, correlation_id: i32, header_version: i16) {
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    // Encoding a header with no unknown tagged fields cannot fail.
    let _ = header.encode(buf, header_version);
}

/// Writes the size prefix of a frame started with [`start_frame`].
pub fn finish_frame(buf: &mut BytesMut) {
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
}

/// Reads the size prefix from the first 4 bytes of `buf`, if present.
pub fn peek_size(buf: &[u8]) -> Option<i32> {
    (buf.len() >= 4).then(|| (&buf[..4]).get_i32())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::StrBytes;

    #[test]
    fn sizes_are_checked_before_allocation() {
        assert_eq!(check_frame_size(100, 1000), Ok(100));
        assert!(matches!(
            check_frame_size(2000, 1000),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(
            check_frame_size(-5, 1000),
            Err(FrameError::BadSize(-5))
        ));
        assert!(matches!(
            check_frame_size(3, 1000),
            Err(FrameError::BadSize(3))
        ));
    }

    #[test]
    fn header_round_trip_and_garbage() {
        let h = RequestHeader::default()
            .with_request_api_key(18)
            .with_request_api_version(3)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("me")));
        let mut b = BytesMut::new();
        h.encode(&mut b, 2).unwrap();
        b.put_slice(b"body");
        let p = parse_header(b.freeze()).unwrap();
        assert_eq!(p.api_key, ApiKey::ApiVersions);
        assert_eq!(p.header.correlation_id, 7);
        assert_eq!(&p.body[..], b"body");
        assert!(matches!(
            parse_header(Bytes::from_static(&[0x7f, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0])),
            Err(FrameError::UnknownApiKey(_))
        ));
        // client id length larger than the frame
        assert!(parse_header(Bytes::from_static(&[0, 3, 0, 1, 0, 0, 0, 1, 0x7f, 0])).is_err());
    }
}
