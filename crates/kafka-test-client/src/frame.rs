//! Kafka's framing: every request and response is a 4-byte big-endian size followed by that many
//! bytes — a request header and body, or a response header (the correlation id, plus tagged fields
//! in flexible versions) and body.
//!
//! These functions work on buffers and a `TcpStream` rather than on a [`crate::Client`], so that a
//! pipelining caller (loadgen's producer: one thread writes requests, another reads responses)
//! frames exactly as the client does.

use std::io::Read;
use std::net::TcpStream;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

use crate::error::{Error, Result, short_type_name};

/// Largest response frame accepted (guards against garbage size prefixes).
pub const MAX_FRAME: usize = 256 * 1024 * 1024;

/// A request header: `key` at `version`, the correlation id and the client id.
pub fn request_header(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: StrBytes,
) -> RequestHeader {
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id))
}

/// Appends one size-prefixed request frame to `out`: `header`, at the header version its API key
/// and version call for, then `body` encoded at `body_version` (usually the header's version; a
/// test may claim a version the codec does not know and encode an older body).
pub fn encode_request<R: Encodable>(
    out: &mut BytesMut,
    header: &RequestHeader,
    body_version: i16,
    body: &R,
) -> Result<()> {
    let key = ApiKey::try_from(header.request_api_key)
        .map_err(|_| Error::UnknownApiKey(header.request_api_key))?;
    let header_version = key.request_header_version(header.request_api_version);
    put_frame(out, |out| {
        header
            .encode(out, header_version)
            .map_err(|e| encode_error::<RequestHeader>(header_version, e))?;
        body.encode(out, body_version)
            .map_err(|e| encode_error::<R>(body_version, e))
    })
}

/// Appends one size-prefixed request frame to `out`: `header` at `header_version`, then `body`
/// as it is (hand-encoded bodies of versions the codec does not speak, or hostile ones).
pub fn encode_raw_request(
    out: &mut BytesMut,
    header: &RequestHeader,
    header_version: i16,
    body: &[u8],
) -> Result<()> {
    put_frame(out, |out| {
        header
            .encode(out, header_version)
            .map_err(|e| encode_error::<RequestHeader>(header_version, e))?;
        out.put_slice(body);
        Ok(())
    })
}

/// Writes the size prefix in front of what `fill` appends.
fn put_frame(out: &mut BytesMut, fill: impl FnOnce(&mut BytesMut) -> Result<()>) -> Result<()> {
    let start = out.len();
    out.put_i32(0);
    fill(out)?;
    let len = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn encode_error<T>(version: i16, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::Encode {
        what: short_type_name::<T>(),
        version,
        source: e.into(),
    }
}

/// Reads one size-prefixed frame and returns it without the size. `buf`'s allocation is reused
/// between calls once the previous frame has been dropped.
///
/// The body is read with `Read::take(..).read_to_end`, which hands the socket the buffer's spare
/// capacity without zero-filling it first (std's `TcpStream` reads into uninitialised memory):
/// zeroing a catch-up Fetch response of tens of MiB before overwriting it stood out in `perf` of
/// loadgen's consumer threads (`docs/perf/loadgen.md`).
pub fn read_frame(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<Bytes> {
    let timeout = stream.read_timeout().ok().flatten();
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .map_err(|e| Error::io("reading frame length", e, timeout))?;
    let len = i32::from_be_bytes(len);
    if len < 4 || len as usize > MAX_FRAME {
        return Err(Error::FrameLength(len));
    }
    let len = len as usize;
    buf.clear();
    // Unique again once the previous frame is gone: the Vec keeps its allocation.
    let mut v: Vec<u8> = std::mem::take(buf).into();
    v.reserve_exact(len);
    let got = stream
        .take(len as u64)
        .read_to_end(&mut v)
        .map_err(|e| Error::io("reading frame", e, timeout))?;
    if got != len {
        return Err(Error::Truncated { got, len });
    }
    *buf = BytesMut::from(Bytes::from(v)); // no copy: the Bytes is unique
    Ok(buf.split().freeze())
}

/// A decoded response frame.
#[derive(Debug)]
pub struct Response<T> {
    pub correlation_id: i32,
    pub body: T,
    /// Bytes left after the body: 0 unless the codec and the broker disagree on the format.
    pub trailing: usize,
}

/// Decodes a response frame (as [`read_frame`] returns it) to a `T` of `version`.
pub fn decode_response<T: Decodable + HeaderVersion>(
    mut frame: Bytes,
    version: i16,
) -> Result<Response<T>> {
    let header_version = T::header_version(version);
    let header = ResponseHeader::decode(&mut frame, header_version).map_err(|e| Error::Decode {
        what: "ResponseHeader",
        version: header_version,
        source: e.into(),
    })?;
    let body = T::decode(&mut frame, version).map_err(|e| Error::Decode {
        what: short_type_name::<T>(),
        version,
        source: e.into(),
    })?;
    Ok(Response {
        correlation_id: header.correlation_id,
        body,
        trailing: frame.len(),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
    use kafka_protocol::messages::metadata_request::MetadataRequest;

    /// A connected pair of loopback sockets.
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    #[test]
    fn request_frame_is_size_header_body() {
        let header = request_header(ApiKey::Metadata, 12, 7, StrBytes::from_static_str("c"));
        let mut out = BytesMut::from(&b"xy"[..]); // appends after what is there
        encode_request(&mut out, &header, 12, &MetadataRequest::default()).unwrap();
        let mut frame = out.split_off(2).freeze();
        assert_eq!(&out[..], b"xy");
        let len = i32::from_be_bytes(frame[..4].try_into().unwrap());
        assert_eq!(len as usize, frame.len() - 4);
        let _ = frame.split_to(4);
        let h = RequestHeader::decode(&mut frame, 2).unwrap(); // flexible: header v2
        assert_eq!((h.request_api_key, h.correlation_id), (3, 7));
        assert_eq!(
            MetadataRequest::decode(&mut frame, 12).unwrap(),
            MetadataRequest::default()
        );
        assert!(frame.is_empty());
    }

    #[test]
    fn raw_request_carries_the_body_as_is() {
        let header = request_header(ApiKey::OffsetCommit, 1, 9, StrBytes::from_static_str("t"));
        let mut out = BytesMut::new();
        encode_raw_request(&mut out, &header, 1, b"body").unwrap();
        assert_eq!(&out[..4], &15i32.to_be_bytes());
        assert_eq!(&out[4..], b"\0\x08\0\x01\0\0\0\x09\0\x01tbody");
    }

    #[test]
    fn unknown_api_key_is_an_error() {
        let header = RequestHeader::default().with_request_api_key(999);
        let err = encode_request(
            &mut BytesMut::new(),
            &header,
            0,
            &MetadataRequest::default(),
        );
        assert!(matches!(err, Err(Error::UnknownApiKey(999))), "{err:?}");
    }

    #[test]
    fn frames_are_read_whole_and_checked() {
        let (mut a, mut b) = pair();
        let mut resp = BytesMut::new();
        resp.put_i32(42); // response header v0: the correlation id
        ApiVersionsResponse::default()
            .with_error_code(35)
            .encode(&mut resp, 0)
            .unwrap();
        resp.put_u8(0xee); // one byte too many
        a.write_all(&(resp.len() as i32).to_be_bytes()).unwrap();
        a.write_all(&resp).unwrap();
        let mut buf = BytesMut::new();
        let frame = read_frame(&mut b, &mut buf).unwrap();
        assert_eq!(frame.len(), resp.len());
        let r = decode_response::<ApiVersionsResponse>(frame, 0).unwrap();
        assert_eq!(
            (r.correlation_id, r.body.error_code, r.trailing),
            (42, 35, 1)
        );

        a.write_all(&3i32.to_be_bytes()).unwrap();
        assert!(matches!(
            read_frame(&mut b, &mut buf),
            Err(Error::FrameLength(3))
        ));
        let (mut a, mut b) = pair();
        a.write_all(&10i32.to_be_bytes()).unwrap();
        a.write_all(b"short").unwrap();
        drop(a);
        let err = read_frame(&mut b, &mut buf);
        assert!(
            matches!(err, Err(Error::Truncated { got: 5, len: 10 })),
            "{err:?}"
        );
    }

    #[test]
    fn a_silent_broker_is_a_timeout() {
        let (_a, mut b) = pair();
        b.set_read_timeout(Some(std::time::Duration::from_millis(20)))
            .unwrap();
        let err = read_frame(&mut b, &mut BytesMut::new());
        assert!(matches!(err, Err(Error::Timeout(_))), "{err:?}");
    }
}
