//! A minimal blocking Kafka client for the group integration tests: kafka-protocol codecs over a
//! std TcpStream, with split send/receive so several members can park requests at once.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use ringbolt::server::{BrokerConfig, BrokerHandle, spawn_broker};

pub(crate) fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub(crate) struct Client {
    stream: TcpStream,
    next: i32,
}

impl Client {
    pub(crate) fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream, next: 1 }
    }

    /// Sends a request; returns its correlation id.
    pub(crate) fn send<R: Encodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> i32 {
        let id = self.next;
        self.next += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(sb("group-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).unwrap();
        id
    }

    /// Reads the next response (responses arrive in request order on one connection).
    pub(crate) fn recv<T: Decodable + HeaderVersion>(&mut self, version: i16) -> T {
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .expect("read response size");
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf).expect("read response");
        let mut b = Bytes::from(buf);
        let _h = ResponseHeader::decode(&mut b, T::header_version(version)).unwrap();
        let r = T::decode(&mut b, version).expect("decode response");
        assert_eq!(b.remaining(), 0, "trailing bytes in response");
        r
    }

    /// Sends a hand-encoded body after a request header v1 (the non-flexible versions that
    /// kafka-protocol no longer codes); returns its correlation id.
    pub(crate) fn send_raw_header_v1(&mut self, key: ApiKey, version: i16, body: &[u8]) -> i32 {
        let id = self.next;
        self.next += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(sb("group-test")));
        let mut buf = BytesMut::new();
        header.encode(&mut buf, 1).unwrap();
        buf.extend_from_slice(body);
        let mut frame = BytesMut::with_capacity(buf.len() + 4);
        frame.put_i32(buf.len() as i32);
        frame.extend_from_slice(&buf);
        self.stream.write_all(&frame).unwrap();
        id
    }

    /// [`Client::send_raw_header_v1`], then the response body after the correlation id
    /// (response header v0).
    pub(crate) fn raw_call(&mut self, key: ApiKey, version: i16, body: &[u8]) -> Bytes {
        let id = self.send_raw_header_v1(key, version, body);
        let mut b = self.recv_frame().expect("response frame");
        assert_eq!(b.get_i32(), id, "correlation id");
        b
    }

    /// The next whole response frame (without its size), or an error (e.g. the broker closed
    /// the connection).
    pub(crate) fn recv_frame(&mut self) -> std::io::Result<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf)?;
        Ok(Bytes::from(buf))
    }

    pub(crate) fn call<R: Encodable + HeaderVersion, T: Decodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> T {
        self.send(key, version, req);
        self.recv(version)
    }
}

pub(crate) fn start(dir: &std::path::Path, shards: usize) -> BrokerHandle {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let mut cfg = BrokerConfig::new("127.0.0.1:0".parse().unwrap(), dir);
    cfg.shards = shards;
    cfg.settings.group_initial_rebalance_delay_ms = 0;
    cfg.settings.num_partitions = 4;
    spawn_broker(cfg).expect("broker starts")
}
