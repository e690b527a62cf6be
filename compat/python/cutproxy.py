"""A Kafka-aware TCP proxy that loses produce responses, to force client retries.

CutProxy listens on a loopback port and forwards every client connection to the broker. It reads
whole frames in both directions, remembers (api key, version) per correlation id, and:

- rewrites the broker list of Metadata responses to point at the proxy itself, so a client that
  bootstraps through the proxy keeps talking through it (works against any Kafka broker);
- for the Produce responses chosen by `cut_produce` (1-based count of Produce responses the broker
  sent), drops the response and closes the client connection. The batch is in the log but the
  client never heard so: it reconnects and retries the same batch, which an idempotent broker must
  answer with the original offsets without writing it twice.

Responses are counted, not requests: a cut also kills the requests pipelined behind the dropped
one, and a request counted on its way in could then die with its connection before reaching the
broker, so a cut chosen by request count would sometimes never happen.
"""

import socket
import struct
import threading

METADATA = 3
PRODUCE = 0


def _read_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _read_frame(sock):
    head = _read_exact(sock, 4)
    if head is None:
        return None
    (n,) = struct.unpack(">i", head)
    body = _read_exact(sock, n)
    return None if body is None else body


def _uvarint(buf, pos):
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _put_uvarint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _skip_tags(buf, pos):
    n, pos = _uvarint(buf, pos)
    for _ in range(n):
        _, pos = _uvarint(buf, pos)
        size, pos = _uvarint(buf, pos)
        pos += size
    return pos


def rewrite_metadata(body, version, host, port):
    """Metadata response body (after the correlation id) with every broker at host:port."""
    flexible = version >= 9
    pos = 0
    out = bytearray()
    if flexible:  # response header v1: tagged fields
        end = _skip_tags(body, pos)
        out += body[pos:end]
        pos = end
    if version >= 3:
        out += body[pos : pos + 4]
        pos += 4
    if flexible:
        n, pos = _uvarint(body, pos)
        count = n - 1
        out += _put_uvarint(n)
    else:
        (count,) = struct.unpack_from(">i", body, pos)
        pos += 4
        out += struct.pack(">i", count)
    h = host.encode()
    for _ in range(count):
        out += body[pos : pos + 4]  # node id
        pos += 4
        if flexible:
            n, pos = _uvarint(body, pos)
            pos += n - 1
            out += _put_uvarint(len(h) + 1) + h
        else:
            (n,) = struct.unpack_from(">h", body, pos)
            pos += 2 + n
            out += struct.pack(">h", len(h)) + h
        pos += 4
        out += struct.pack(">i", port)
        if version >= 1:  # rack, nullable
            start = pos
            if flexible:
                n, pos = _uvarint(body, pos)
                pos += max(n - 1, 0)
            else:
                (n,) = struct.unpack_from(">h", body, pos)
                pos += 2 + max(n, 0)
            out += body[start:pos]
        if flexible:
            end = _skip_tags(body, pos)
            out += body[pos:end]
            pos = end
    out += body[pos:]
    return bytes(out)


class CutProxy:
    def __init__(self, upstream, cut_produce=(3,)):
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.cut_produce = set(cut_produce)
        self.produce_answered = 0  # produce responses read from the broker
        self.cuts = 0  # produce responses dropped
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.closed = True
        self.listener.close()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                broker = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            conn = {"pending": {}, "client": client, "broker": broker}
            threading.Thread(target=self._c2b, args=(conn,), daemon=True).start()
            threading.Thread(target=self._b2c, args=(conn,), daemon=True).start()

    @staticmethod
    def _kill(conn):
        for s in (conn["client"], conn["broker"]):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _c2b(self, conn):
        try:
            while True:
                frame = _read_frame(conn["client"])
                if frame is None:
                    break
                api, version, corr = struct.unpack_from(">hhi", frame, 0)
                conn["pending"][corr] = (api, version)
                conn["broker"].sendall(struct.pack(">i", len(frame)) + frame)
        except OSError:
            pass
        self._kill(conn)

    def _b2c(self, conn):
        try:
            while True:
                frame = _read_frame(conn["broker"])
                if frame is None:
                    break
                (corr,) = struct.unpack_from(">i", frame, 0)
                api, version = conn["pending"].pop(corr, (None, None))
                if api == PRODUCE:
                    with self.lock:
                        self.produce_answered += 1
                        cut = self.produce_answered in self.cut_produce
                        if cut:
                            self.cuts += 1
                    if cut:
                        break  # the broker answered; the client never hears it
                if api == METADATA:
                    frame = frame[:4] + rewrite_metadata(frame[4:], version, "127.0.0.1", self.port)
                conn["client"].sendall(struct.pack(">i", len(frame)) + frame)
        except OSError:
            pass
        self._kill(conn)
