"""Hand-built Kafka frames for raw-socket tests (request header v1, non-flexible bodies)."""

import socket
import struct
import time


def string(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">h", len(b)) + b


def header_v1(api_key, api_version, correlation_id, client_id="weir-e2e-raw"):
    return struct.pack(">hhi", api_key, api_version, correlation_id) + string(client_id)


def frame(payload):
    return struct.pack(">i", len(payload)) + payload


def request(api_key, api_version, correlation_id, body=b"", client_id="weir-e2e-raw"):
    return frame(header_v1(api_key, api_version, correlation_id, client_id) + body)


def connect(bootstrap, timeout=10.0):
    host, port = bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.settimeout(timeout)
    return s


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def recv_frame(s):
    (size,) = struct.unpack(">i", recv_exact(s, 4))
    return recv_exact(s, size)


def roundtrip(s, api_key, api_version, correlation_id, body=b""):
    s.sendall(request(api_key, api_version, correlation_id, body))
    resp = recv_frame(s)
    (corr,) = struct.unpack(">i", resp[:4])
    assert corr == correlation_id, "correlation id %d, sent %d" % (corr, correlation_id)
    return resp[4:]


def wait_closed(s, timeout=10.0):
    """Read until the peer closes; returns (closed, bytes_received)."""
    s.settimeout(0.5)
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True, got
        if not chunk:
            return True, got
        got += chunk
    return False, got


class Reader:
    def __init__(self, data):
        self.d = data
        self.i = 0

    def _u(self, fmt, n):
        v = struct.unpack(fmt, self.d[self.i:self.i + n])[0]
        self.i += n
        return v

    def i8(self):
        return self._u(">b", 1)

    def i16(self):
        return self._u(">h", 2)

    def i32(self):
        return self._u(">i", 4)

    def i64(self):
        return self._u(">q", 8)

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        s = self.d[self.i:self.i + n].decode()
        self.i += n
        return s

    def remaining(self):
        return len(self.d) - self.i


def parse_api_versions_v0(body):
    """ApiVersions v0 response body -> (error_code, {api_key: (min, max)})."""
    r = Reader(body)
    err = r.i16()
    n = r.i32()
    keys = {}
    for _ in range(max(n, 0)):
        k, lo, hi = r.i16(), r.i16(), r.i16()
        keys[k] = (lo, hi)
    return err, keys


def init_producer_id_v0(s, correlation_id):
    body = string(None) + struct.pack(">i", 60000)
    r = Reader(roundtrip(s, 22, 0, correlation_id, body))
    throttle, err, pid, epoch = r.i32(), r.i16(), r.i64(), r.i16()
    return err, pid, epoch


def produce_v3(s, correlation_id, topic, partition, records, acks=-1, timeout_ms=10000):
    """One-partition ProduceRequest v3 -> (error_code, base_offset)."""
    body = (string(None) + struct.pack(">hi", acks, timeout_ms) + struct.pack(">i", 1) + string(topic)
            + struct.pack(">i", 1) + struct.pack(">ii", partition, len(records)) + bytes(records))
    r = Reader(roundtrip(s, 0, 3, correlation_id, body))
    assert r.i32() == 1
    assert r.string() == topic
    assert r.i32() == 1
    idx, err, base, _log_append = r.i32(), r.i16(), r.i64(), r.i64()
    assert idx == partition
    return err, base


def incremental_alter_configs_v0(s, correlation_id, resource_type, name, changes):
    """IncrementalAlterConfigs v0 for one resource; `changes` maps key -> value
    (SET) or None (DELETE). Returns the resource's error code."""
    entries = b"".join(string(k) + struct.pack(">b", 1 if v is None else 0) + string(v)
                       for k, v in changes.items())
    body = (struct.pack(">i", 1) + struct.pack(">b", resource_type) + string(name)
            + struct.pack(">i", len(changes)) + entries + struct.pack(">b", 0))
    r = Reader(roundtrip(s, 44, 0, correlation_id, body))
    r.i32()  # throttle
    assert r.i32() == 1
    return r.i16()
