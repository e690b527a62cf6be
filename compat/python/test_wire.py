"""Raw Kafka wire protocol, no client library: what every client relies on implicitly.

A long-lived connection (a producer or consumer that runs for hours) sends an unbounded number of
requests; the broker must answer all of them, in order, on that one connection.
"""

import socket
import struct
import time


def connect(bootstrap):
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return bytes(buf)


def api_versions_v0(correlation_id):
    # Request header v1: api_key=18 (ApiVersions), api_version=0, correlation_id, client_id=null.
    body = struct.pack(">hhih", 18, 0, correlation_id, -1)
    return struct.pack(">i", len(body)) + body


def read_response(s):
    size = struct.unpack(">i", recv_exact(s, 4))[0]
    data = recv_exact(s, size)
    return struct.unpack(">i", data[:4])[0], data[4:]


def test_one_connection_answers_50000_requests(bootstrap):
    n = 50_000
    s = connect(bootstrap)
    t0 = time.time()
    try:
        for i in range(n):
            s.sendall(api_versions_v0(i))
            try:
                corr, body = read_response(s)
            except (ConnectionError, socket.timeout) as e:
                raise AssertionError(f"request {i} of {n} on one connection got no answer: {e}") from e
            assert corr == i, f"response {i} carries correlation id {corr}"
            assert struct.unpack(">h", body[:2])[0] == 0, f"ApiVersions error code {body[:2]!r}"
    finally:
        s.close()
    # The broker is still healthy for new connections.
    s = connect(bootstrap)
    try:
        s.sendall(api_versions_v0(7))
        assert read_response(s)[0] == 7
    finally:
        s.close()
    print(f"{n} sequential requests in {time.time() - t0:.1f}s")


def test_pipelined_requests_answered_in_order(bootstrap):
    """1000 requests written back to back before reading anything: answers in request order."""
    s = connect(bootstrap)
    try:
        s.sendall(b"".join(api_versions_v0(i) for i in range(1000)))
        for i in range(1000):
            corr, _ = read_response(s)
            assert corr == i, f"answer #{i} has correlation id {corr}"
    finally:
        s.close()
