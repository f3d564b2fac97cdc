"""Older request versions that real clients still send (librdkafka 2.0.2 in kcat uses
ListOffsets v2, kafka-python and Java clients of older releases use others):
every advertised version of ListOffsets v1..v5 is answered correctly."""

import struct

import pytest

import kafka_wire as w
from weir_helpers import create_topic, flush_all, producer, unique

LATEST, EARLIEST = -1, -2


def _list_offsets_body(version, topic, partition, timestamp):
    body = struct.pack(">i", -1)                     # replica_id
    if version >= 2:
        body += struct.pack(">b", 0)                 # isolation_level READ_UNCOMMITTED
    body += struct.pack(">i", 1) + w.string(topic) + struct.pack(">i", 1)
    body += struct.pack(">i", partition)
    if version >= 4:
        body += struct.pack(">i", -1)                # current_leader_epoch
    body += struct.pack(">q", timestamp)
    return body


def _parse(version, body):
    r = w.Reader(body)
    if version >= 2:
        r.i32()                                      # throttle_time_ms
    assert r.i32() == 1
    r.string()
    assert r.i32() == 1
    idx, err, ts, off = r.i32(), r.i16(), r.i64(), r.i64()
    if version >= 4:
        r.i32()                                      # leader_epoch
    assert r.remaining() == 0, "%d trailing bytes in ListOffsets v%d response" % (r.remaining(), version)
    return idx, err, ts, off


@pytest.fixture(scope="module")
def advertised(module_broker):
    s = w.connect(module_broker.bootstrap)
    try:
        err, keys = w.parse_api_versions_v0(w.roundtrip(s, 18, 0, 1))
        assert err == 0
        return keys
    finally:
        s.close()


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5])
def test_list_offsets_versions(module_broker, advertised, version):
    lo, hi = advertised[2]
    if not lo <= version <= hi:
        pytest.skip("ListOffsets v%d not advertised (%d..%d)" % (version, lo, hi))
    b = module_broker.bootstrap
    topic = create_topic(b, unique("lo-v%d" % version), 1)
    p = producer(b)
    for i in range(3):
        p.produce(topic, partition=0, value=b"x", timestamp=1_600_000_000_000 + i)
    flush_all(p)
    s = w.connect(b)
    try:
        got = {}
        for corr, spec in ((10, LATEST), (11, EARLIEST), (12, 1_600_000_000_001)):
            resp = w.roundtrip(s, 2, version, corr, _list_offsets_body(version, topic, 0, spec))
            idx, err, ts, off = _parse(version, resp)
            assert (idx, err) == (0, 0), "ListOffsets v%d spec %d: partition %d error %d" % (version, spec, idx, err)
            got[spec] = (off, ts)
    finally:
        s.close()
    assert got[LATEST][0] == 3
    assert got[EARLIEST][0] == 0
    assert got[1_600_000_000_001] == (1, 1_600_000_000_001)
