"""Malformed and hostile input on raw sockets: the broker drops the offending
connection (or answers as Kafka does) and keeps serving everyone else."""

import random
import struct
import subprocess

import pytest

import kafka_wire as w
from weir_helpers import create_topic, produce_sync, producer, unique

BROKER_CONFIGS = {"socket.request.max.bytes": "1048576"}
UNSUPPORTED_VERSION = 35


@pytest.fixture(scope="module")
def healthy(module_broker):
    """Returns a check that a fresh, well-behaved client still works."""
    topic = create_topic(module_broker.bootstrap, unique("bad-input-canary"), 1)
    state = {"n": 0}

    def check():
        assert module_broker.alive(), "broker process died:\n" + module_broker.stderr_tail()
        p = producer(module_broker.bootstrap, **{"linger.ms": 0})
        msg = produce_sync(p, topic, value=b"canary-%d" % state["n"], timeout=20)
        assert msg.offset() == state["n"], "canary %d stored at offset %d" % (state["n"], msg.offset())
        state["n"] += 1
        # and a raw ApiVersions on a new connection is answered
        s = w.connect(module_broker.bootstrap)
        try:
            err, keys = w.parse_api_versions_v0(w.roundtrip(s, 18, 0, 77))
            assert err == 0 and 18 in keys
        finally:
            s.close()
    check()
    return check


def test_api_versions_v0_lists_supported_apis(module_broker, healthy):
    s = w.connect(module_broker.bootstrap)
    try:
        err, keys = w.parse_api_versions_v0(w.roundtrip(s, 18, 0, 1))
        assert err == 0
        for api in (0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18, 19, 20):
            assert api in keys, "api key %d not advertised: %s" % (api, sorted(keys))
            lo, hi = keys[api]
            assert 0 <= lo <= hi, (api, lo, hi)
        assert keys[18][1] >= 3, "ApiVersions max version %d" % keys[18][1]
        # the connection stays usable: a second request on it is answered too
        err, _ = w.parse_api_versions_v0(w.roundtrip(s, 18, 1, 2))  # v1 adds throttle_time_ms after the array
        assert err == 0
    finally:
        s.close()
    healthy()


def test_api_versions_unsupported_version_gets_v0_error_response(module_broker, healthy):
    s = w.connect(module_broker.bootstrap)
    try:
        body = w.roundtrip(s, 18, 99, 4711)
        err, keys = w.parse_api_versions_v0(body)
        assert err == UNSUPPORTED_VERSION, "error code %d" % err
        assert 18 in keys and 0 in keys, "the error response still lists the supported APIs: %s" % sorted(keys)
        # Kafka keeps the connection open: the client retries with a version it now knows.
        err, _ = w.parse_api_versions_v0(w.roundtrip(s, 18, 0, 4712))
        assert err == 0
    finally:
        s.close()
    healthy()


def test_truncated_frame_then_close(module_broker, healthy):
    s = w.connect(module_broker.bootstrap)
    full = w.request(3, 1, 5, struct.pack(">i", -1))
    s.sendall(struct.pack(">i", 100) + full[4:14])  # claims 100 bytes, sends 10
    s.close()
    # and a frame cut inside its 4-byte length prefix
    s = w.connect(module_broker.bootstrap)
    s.sendall(b"\x00\x00")
    s.close()
    healthy()


def test_oversized_frame_closes_connection(module_broker, healthy):
    s = w.connect(module_broker.bootstrap)
    try:
        s.sendall(struct.pack(">i", 2 * 1024 * 1024) + w.header_v1(3, 1, 9))
        closed, got = w.wait_closed(s, timeout=10)
        assert closed, "connection still open after a 2 MiB size prefix (socket.request.max.bytes=1 MiB)"
        assert got == b"", "broker answered an oversized frame: %r" % got[:40]
    finally:
        s.close()
    healthy()


def test_negative_size_closes_connection(module_broker, healthy):
    s = w.connect(module_broker.bootstrap)
    try:
        s.sendall(struct.pack(">i", -5) + b"abcd")
        closed, _ = w.wait_closed(s, timeout=10)
        assert closed, "connection still open after a negative size prefix"
    finally:
        s.close()
    healthy()


def test_unknown_api_key_closes_connection(module_broker, healthy):
    s = w.connect(module_broker.bootstrap)
    try:
        s.sendall(w.request(9999, 0, 11, b"\x00" * 16))
        closed, got = w.wait_closed(s, timeout=10)
        assert closed, "connection still open after an unknown api key"
        assert got == b"", "broker answered an unknown api key: %r" % got[:40]
    finally:
        s.close()
    healthy()


def test_unsupported_version_of_other_api_closes_connection(module_broker, healthy):
    s = w.connect(module_broker.bootstrap)
    try:
        s.sendall(w.request(3, 999, 12, struct.pack(">i", -1)))  # Metadata v999
        closed, _ = w.wait_closed(s, timeout=10)
        assert closed, "connection still open after Metadata v999"
    finally:
        s.close()
    healthy()


@pytest.mark.parametrize("api_key,version", [(3, 1), (0, 3), (1, 4), (19, 2), (11, 1)])
def test_malformed_body_of_known_api_closes_connection(module_broker, healthy, api_key, version):
    s = w.connect(module_broker.bootstrap)
    try:
        # The first field of each of these bodies is an i32 or a string length:
        # two bytes are too short for the one, and claim 32767 bytes for the other.
        body = b"\x7f\xff"
        s.sendall(w.request(api_key, version, 13, body))
        closed, _ = w.wait_closed(s, timeout=10)
        assert closed, "connection still open after a malformed api %d v%d body" % (api_key, version)
    finally:
        s.close()
    healthy()


def test_random_garbage(module_broker, healthy):
    rng = random.Random(42)
    for i in range(20):
        s = w.connect(module_broker.bootstrap)
        try:
            n = rng.choice([1, 3, 7, 64, 1000, 4096])
            s.sendall(bytes(rng.getrandbits(8) for _ in range(n)))
        finally:
            s.close()
    # framed garbage: a plausible size followed by random bytes
    for i in range(20):
        s = w.connect(module_broker.bootstrap)
        try:
            payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(8, 300)))
            s.sendall(w.frame(payload))
            w.wait_closed(s, timeout=0.5)  # whatever it answers, it must not crash
        finally:
            s.close()
    healthy()


def test_many_half_open_connections_do_not_block_others(module_broker, healthy):
    socks = []
    try:
        for _ in range(50):
            s = w.connect(module_broker.bootstrap)
            s.sendall(struct.pack(">i", 500) + b"\x00\x03")  # a frame that never completes
            socks.append(s)
        healthy()
    finally:
        for s in socks:
            s.close()
    healthy()


@pytest.mark.parametrize(
    "settings, says",
    [
        (["listeners=SECURE://127.0.0.1:0", "listener.security.protocol.map=SECURE:SSL"],
         "listener SECURE uses TLS but has no keystore"),
        (["listeners=SECURE://127.0.0.1:0", "listener.security.protocol.map=SECURE:SASL_SSL"],
         "listener SECURE uses TLS but has no keystore"),
        (["sasl.enabled.mechanisms=PLAIN,GSSAPI"], "SASL mechanism GSSAPI is not supported by Weir"),
        (["listener.name.s.plain.sasl.jaas.config=PlainLoginModule required user_a=\"hush-hush"],
         "sasl.jaas.config: option user_a: the quoted value is not closed"),
        (["listener.name.s.kerberos.sasl.jaas.config=M required;"],
         "unknown SASL mechanism"),
        (["listeners=OTHER://127.0.0.1:0"], "listener OTHER has no security protocol"),
        (["listeners=PLAINTEXT://127.0.0.1:0", "advertised.listeners=EXTERNAL://h:1"],
         "advertised.listeners names EXTERNAL"),
        (["listeners=PLAINTEXT:127.0.0.1:0"], "is not NAME://HOST:PORT"),
    ],
)
def test_bad_listener_settings_stop_the_broker_with_a_clear_error(weir_bin, tmp_path, settings, says):
    args = [weir_bin, "broker", "--node-id", "1", "--data-dir", str(tmp_path),
            "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]
    for s in settings:
        args += ["--config", s]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert says in done.stderr, done.stderr
    assert "hush-hush" not in done.stderr, "a secret was echoed"


def test_listener_flags_are_the_keys(weir_bin, tmp_path):
    done = subprocess.run(
        [weir_bin, "broker", "--data-dir", str(tmp_path), "--admin-listen", "127.0.0.1:0",
         "--listeners", "SECURE://127.0.0.1:0",
         "--listener-security-protocol-map", "SECURE:SASL_SSL"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "listener SECURE uses TLS but has no keystore" in done.stderr, done.stderr
