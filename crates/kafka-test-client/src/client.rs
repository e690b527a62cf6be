//! [`Client`]: one blocking connection to a broker.

use std::fmt::Display;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use crate::error::{Error, Result, short_type_name};
use crate::frame::{self, Response};

/// The client id requests carry unless [`Client::with_client_id`] sets another.
pub const DEFAULT_CLIENT_ID: &str = "ringbolt-test";
/// Longest wait for a response, or for a write to make progress, on a connection: long enough for
/// a broker under load (fdatasync group commits, a rebalance), short enough that a broker that
/// stopped answering fails the test or the run instead of hanging it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a connection to be accepted.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection: requests are sent with increasing correlation ids, and responses (which Kafka
/// sends in request order) are checked against them.
///
/// `stream` is public for tests that need the socket itself (a half-close, a slow reader, a
/// different timeout).
#[derive(Debug)]
pub struct Client {
    pub stream: TcpStream,
    next_correlation: i32,
    client_id: StrBytes,
    /// The last response frame's allocation, reused once that frame is dropped.
    rbuf: BytesMut,
    wbuf: BytesMut,
}

impl Client {
    /// Connects to `addr` (the first address it resolves to), with [`CONNECT_TIMEOUT`], TCP_NODELAY
    /// and [`DEFAULT_TIMEOUT`] for reads and writes.
    pub fn try_connect(addr: impl ToSocketAddrs + Display) -> Result<Client> {
        let sa = addr
            .to_socket_addrs()
            .map_err(|source| Error::Resolve {
                addr: addr.to_string(),
                source,
            })?
            .next()
            .ok_or_else(|| Error::NoAddress {
                addr: addr.to_string(),
            })?;
        let stream =
            TcpStream::connect_timeout(&sa, CONNECT_TIMEOUT).map_err(|source| Error::Connect {
                addr: addr.to_string(),
                source,
            })?;
        Self::try_from_stream(stream)
    }

    /// [`Client::try_connect`]; panics if it fails.
    pub fn connect(addr: impl ToSocketAddrs + Display) -> Client {
        Self::try_connect(addr).unwrap_or_else(|e| panic!("connect: {}", chain(&e)))
    }

    /// A client on an already connected stream (TCP_NODELAY and [`DEFAULT_TIMEOUT`] set).
    pub fn try_from_stream(stream: TcpStream) -> Result<Client> {
        let setup = |e| Error::Io {
            what: "setting up the socket",
            source: e,
        };
        stream.set_nodelay(true).map_err(setup)?;
        stream
            .set_read_timeout(Some(DEFAULT_TIMEOUT))
            .map_err(setup)?;
        stream
            .set_write_timeout(Some(DEFAULT_TIMEOUT))
            .map_err(setup)?;
        Ok(Client {
            stream,
            next_correlation: 1,
            client_id: StrBytes::from_static_str(DEFAULT_CLIENT_ID),
            rbuf: BytesMut::with_capacity(64 * 1024),
            wbuf: BytesMut::with_capacity(64 * 1024),
        })
    }

    /// [`Client::try_from_stream`]; panics if it fails.
    pub fn from_stream(stream: TcpStream) -> Client {
        Self::try_from_stream(stream).unwrap_or_else(|e| panic!("{}", chain(&e)))
    }

    /// The client id of the requests sent from now on.
    pub fn with_client_id(mut self, client_id: &str) -> Client {
        self.client_id = StrBytes::from_string(client_id.to_owned());
        self
    }

    pub fn client_id(&self) -> &str {
        self.client_id.as_str()
    }

    /// Sets the read and the write timeout of the socket.
    pub fn set_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.stream.set_read_timeout(timeout)?;
        self.stream.set_write_timeout(timeout)
    }

    pub fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        self.stream.peer_addr()
    }

    /// The correlation id for the next request (for callers that frame requests themselves).
    pub fn next_correlation(&mut self) -> i32 {
        let c = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        c
    }

    /// A request header with the next correlation id and this client's id.
    pub fn header(&mut self, key: ApiKey, version: i16) -> RequestHeader {
        let corr = self.next_correlation();
        frame::request_header(key, version, corr, self.client_id.clone())
    }

    /// Splits into a write and a read handle of the same socket (for pipelining: one thread
    /// writes requests, another reads the responses, both with [`frame`]'s functions).
    pub fn into_split(self) -> Result<(TcpStream, TcpStream)> {
        let w = self.stream.try_clone().map_err(|e| Error::Io {
            what: "cloning the socket",
            source: e,
        })?;
        Ok((w, self.stream))
    }

    // ---- fallible requests and responses

    /// Sends a request; returns its correlation id.
    pub fn try_send<R: Encodable>(&mut self, key: ApiKey, version: i16, req: &R) -> Result<i32> {
        self.try_send_with_body_version(key, version, version, req)
    }

    /// Sends a request whose header claims `version` but whose body is encoded at `body_version`
    /// (to speak versions the codec does not know, e.g. a future ApiVersions).
    pub fn try_send_with_body_version<R: Encodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body_version: i16,
        req: &R,
    ) -> Result<i32> {
        let header = self.header(key, version);
        self.wbuf.clear();
        frame::encode_request(&mut self.wbuf, &header, body_version, req)?;
        self.write_wbuf()?;
        Ok(header.correlation_id)
    }

    /// Sends a hand-encoded `body` after a request header v1 (the non-flexible versions that
    /// kafka-protocol no longer codes, or hostile bodies); returns its correlation id.
    pub fn try_send_raw_header_v1(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &[u8],
    ) -> Result<i32> {
        let header = self.header(key, version);
        self.wbuf.clear();
        frame::encode_raw_request(&mut self.wbuf, &header, 1, body)?;
        self.write_wbuf()?;
        Ok(header.correlation_id)
    }

    fn write_wbuf(&mut self) -> Result<()> {
        let timeout = self.stream.write_timeout().ok().flatten();
        self.stream
            .write_all(&self.wbuf)
            .map_err(|e| Error::io("sending request", e, timeout))
    }

    /// The next response frame (without its size).
    pub fn recv_frame(&mut self) -> Result<Bytes> {
        frame::read_frame(&mut self.stream, &mut self.rbuf)
    }

    /// Reads the response to request `corr`, a `T` of `version`.
    pub fn try_recv_response<T: Decodable + HeaderVersion>(
        &mut self,
        corr: i32,
        version: i16,
    ) -> Result<Response<T>> {
        let frame = self.recv_frame()?;
        let r = frame::decode_response::<T>(frame, version)?;
        if r.correlation_id != corr {
            return Err(Error::Correlation {
                what: short_type_name::<T>(),
                got: r.correlation_id,
                expected: corr,
            });
        }
        Ok(r)
    }

    /// Reads the response to request `corr`, a `T` of `version`.
    pub fn try_recv<T: Decodable + HeaderVersion>(&mut self, corr: i32, version: i16) -> Result<T> {
        Ok(self.try_recv_response(corr, version)?.body)
    }

    /// Sends `req` and waits for its response.
    pub fn try_call<R: Request>(&mut self, version: i16, req: &R) -> Result<R::Response> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| Error::UnknownApiKey(R::KEY))?;
        let corr = self.try_send(key, version, req)?;
        self.try_recv(corr, version)
    }

    /// [`Client::try_send_raw_header_v1`], then the response body after the correlation id
    /// (response header v0), the correlation id checked.
    pub fn try_raw_call(&mut self, key: ApiKey, version: i16, body: &[u8]) -> Result<Bytes> {
        let corr = self.try_send_raw_header_v1(key, version, body)?;
        let mut frame = self.recv_frame()?;
        let got = frame.get_i32();
        if got != corr {
            return Err(Error::Correlation {
                what: "raw response",
                got,
                expected: corr,
            });
        }
        Ok(frame)
    }

    // ---- the same for tests: a broker that must answer, or the test fails here

    /// [`Client::try_send`]; panics if it fails.
    pub fn send<R: Encodable>(&mut self, key: ApiKey, version: i16, req: &R) -> i32 {
        ok(self.try_send(key, version, req))
    }

    /// [`Client::try_send_with_body_version`]; panics if it fails.
    pub fn send_with_body_version<R: Encodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body_version: i16,
        req: &R,
    ) -> i32 {
        ok(self.try_send_with_body_version(key, version, body_version, req))
    }

    /// [`Client::try_send_raw_header_v1`]; panics if it fails.
    pub fn send_raw_header_v1(&mut self, key: ApiKey, version: i16, body: &[u8]) -> i32 {
        ok(self.try_send_raw_header_v1(key, version, body))
    }

    /// Writes `bytes` as they are (frames of a test's own making, or none at all).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads the response to request `corr`, a `T` of `version`, which must decode exactly (no
    /// trailing bytes); panics otherwise.
    pub fn recv<T: Decodable + HeaderVersion>(&mut self, corr: i32, version: i16) -> T {
        let r = ok(self.try_recv_response::<T>(corr, version));
        assert_eq!(r.trailing, 0, "no trailing bytes");
        r.body
    }

    /// Sends `req` and returns its response ([`Client::recv`]); panics if anything fails.
    pub fn call<R: Encodable, T: Decodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> T {
        let corr = self.send(key, version, req);
        self.recv(corr, version)
    }

    /// [`Client::try_raw_call`]; panics if it fails.
    pub fn raw_call(&mut self, key: ApiKey, version: i16, body: &[u8]) -> Bytes {
        ok(self.try_raw_call(key, version, body))
    }

    /// True when the broker closed the connection (EOF or reset) within 10 s.
    pub fn is_closed(&mut self) -> bool {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
        }
    }
}

/// The value, or a panic with the error and its causes.
fn ok<T>(r: Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{}", chain(&e)))
}

/// An error with its causes, `outer: inner: …`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}
