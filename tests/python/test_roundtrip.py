"""Produce/consume round trips through a real broker with confluent-kafka and kafka-python:
keys, values, headers, timestamps and partitions come back exactly, in every codec."""

import time

import pytest
from confluent_kafka import (TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME)
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition
from kafka.admin import KafkaAdminClient, NewTopic as KNewTopic

from weir_helpers import (consume_all, create_topic, flush_all, java_partition, producer,
                          unique, wait_for_topic)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 3
BASE_TS = 1_700_000_000_000
N_KEYED = 60


def expected_records(tag):
    """(key, value, headers, timestamp_ms, explicit_partition) tuples to produce."""
    recs = []
    for i in range(N_KEYED):
        key = ("key-%d" % (i % 20)).encode()
        value = (("%s-value-%d|" % (tag, i)) * 8).encode()
        headers = [("h1", ("v%d" % i).encode()), ("dup", b"a"), ("dup", b"b"), ("empty", b"")] if i % 2 == 0 else []
        recs.append((key, value, headers, BASE_TS + i * 1000, None))
    # a keyed record with a null value
    recs.append((b"key-null-value", None, [("only", b"header")], BASE_TS + 500_000, None))
    # null keys sent to an explicit partition
    for i in range(5):
        recs.append((None, ("%s-nokey-%d" % (tag, i)).encode(), [], BASE_TS + 600_000 + i, 1))
    return recs


def expected_partition(rec):
    key, _, _, _, explicit = rec
    if explicit is not None:
        return explicit
    return java_partition(key, PARTITIONS)


def check_consumed(got, recs, delivered):
    """got: list of (partition, offset, key, value, headers, ts_type, ts) as consumed.
    delivered: list (same order as recs) of (partition, offset) from delivery reports."""
    assert len(got) == len(recs), "consumed %d records, produced %d" % (len(got), len(recs))
    by_pos = {(g[0], g[1]): g for g in got}
    assert len(by_pos) == len(got), "duplicate (partition, offset) pairs in consumed records"
    per_part_expected = {}
    for rec, (dp, doff) in zip(recs, delivered):
        key, value, headers, ts, _ = rec
        want_p = expected_partition(rec)
        assert dp == want_p, "record with key %r delivered to partition %d, murmur2 says %d" % (key, dp, want_p)
        per_part_expected.setdefault(dp, []).append(doff)
        g = by_pos.get((dp, doff))
        assert g is not None, "acknowledged record %r at %d/%d not consumed" % (key, dp, doff)
        _, _, gkey, gvalue, gheaders, gtype, gts = g
        assert gkey == key
        assert gvalue == value
        assert list(gheaders or []) == headers
        assert gtype == "create", "timestamp type %s, expected CreateTime" % gtype
        assert gts == ts
    # offsets are dense from 0 within each partition, in production order
    for p, offs in per_part_expected.items():
        assert offs == list(range(len(offs))), "partition %d offsets %s" % (p, offs[:20])
    consumed_order = {}
    for g in got:
        consumed_order.setdefault(g[0], []).append(g[1])
    for p, offs in consumed_order.items():
        assert offs == sorted(offs), "partition %d consumed out of order" % p


# --------------------------------------------------------------------------- confluent-kafka

def _confluent_consume(bootstrap, topic):
    out = []
    for m in consume_all(bootstrap, topic, range(PARTITIONS)):
        ttype, ts = m.timestamp()
        tname = {TIMESTAMP_CREATE_TIME: "create", TIMESTAMP_LOG_APPEND_TIME: "logappend"}.get(ttype, ttype)
        out.append((m.partition(), m.offset(), m.key(), m.value(), m.headers(), tname, ts))
    return out


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_roundtrip(module_broker, codec):
    b = module_broker.bootstrap
    topic = create_topic(b, unique("rt-ck-" + codec), PARTITIONS)
    recs = expected_records("ck-" + codec)
    p = producer(b, **{"compression.type": codec, "partitioner": "murmur2_random",
                       "enable.idempotence": False, "linger.ms": 20})
    reports = [None] * len(recs)

    def cb(i):
        def f(err, msg):
            reports[i] = (err, msg.partition() if err is None else None, msg.offset() if err is None else None)
        return f

    for i, (key, value, headers, ts, part) in enumerate(recs):
        kw = dict(key=key, value=value, timestamp=ts, on_delivery=cb(i))
        if headers:
            kw["headers"] = headers
        if part is not None:
            kw["partition"] = part
        p.produce(topic, **kw)
    flush_all(p)
    errs = [r for r in reports if r is None or r[0] is not None]
    assert not errs, "delivery failures: %s" % errs[:5]
    delivered = [(r[1], r[2]) for r in reports]
    check_consumed(_confluent_consume(b, topic), recs, delivered)


# --------------------------------------------------------------------------- kafka-python

def _kp_consume(bootstrap, topic, expected_count, timeout=30.0):
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", fetch_max_wait_ms=100)
    try:
        tps = [KTopicPartition(topic, p) for p in range(PARTITIONS)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < expected_count and time.monotonic() < deadline:
            for tp, records in c.poll(timeout_ms=200).items():
                for r in records:
                    tname = {0: "create", 1: "logappend"}.get(r.timestamp_type, r.timestamp_type)
                    out.append((r.partition, r.offset, r.key, r.value, r.headers, tname, r.timestamp))
        # one more short poll: nothing beyond what was produced may show up
        for tp, records in c.poll(timeout_ms=300).items():
            for r in records:
                out.append((r.partition, r.offset, r.key, r.value, r.headers, "extra", r.timestamp))
        return out
    finally:
        c.close()


def _kp_admin_create(bootstrap, topic, partitions, configs=None):
    a = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        a.create_topics([KNewTopic(topic, num_partitions=partitions, replication_factor=1,
                                   topic_configs=configs or {})])
    finally:
        a.close()
    wait_for_topic(bootstrap, topic, partitions)
    return topic


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_roundtrip(module_broker, codec):
    b = module_broker.bootstrap
    topic = _kp_admin_create(b, unique("rt-kp-" + codec), PARTITIONS)
    recs = expected_records("kp-" + codec)
    p = KafkaProducer(bootstrap_servers=b, acks="all", linger_ms=20,
                      compression_type=None if codec == "none" else codec)
    try:
        futures = []
        for key, value, headers, ts, part in recs:
            futures.append(p.send(topic, key=key, value=value, headers=headers or None,
                                  timestamp_ms=ts, partition=part))
        p.flush(timeout=30)
        delivered = []
        for f in futures:
            md = f.get(timeout=30)
            delivered.append((md.partition, md.offset))
    finally:
        p.close(timeout=10)
    check_consumed(_kp_consume(b, topic, len(recs)), recs, delivered)


# --------------------------------------------------------------------------- cross-client partitioning

def test_same_key_same_partition_across_clients(module_broker):
    b = module_broker.bootstrap
    nparts = 7
    topic = create_topic(b, unique("rt-xclient"), nparts)
    keys = [("user-%d" % i).encode() for i in range(60)]
    cp = producer(b, partitioner="murmur2_random")
    for k in keys:
        cp.produce(topic, key=k, value=b"ck")
    flush_all(cp)
    kp = KafkaProducer(bootstrap_servers=b, acks="all")
    try:
        for k in keys:
            kp.send(topic, key=k, value=b"kp")
        kp.flush(timeout=30)
    finally:
        kp.close(timeout=10)
    seen = {}
    for m in consume_all(b, topic, range(nparts)):
        seen.setdefault(m.key(), {}).setdefault(m.value(), set()).add(m.partition())
    assert set(seen) == set(keys)
    for k in keys:
        parts = seen[k]
        assert set(parts) == {b"ck", b"kp"}, "key %r: missing a client's record (%s)" % (k, parts)
        assert parts[b"ck"] == parts[b"kp"] == {java_partition(k, nparts)}, (
            "key %r: confluent->%s kafka-python->%s murmur2->%d"
            % (k, parts[b"ck"], parts[b"kp"], java_partition(k, nparts)))


# --------------------------------------------------------------------------- LogAppendTime

@pytest.mark.parametrize("codec", ["none", "gzip"])
def test_log_append_time(module_broker, codec):
    b = module_broker.bootstrap
    topic = create_topic(b, unique("rt-lat-" + codec), 1,
                         config={"message.timestamp.type": "LogAppendTime"})
    old_ts = 1_000_000_000_000  # 2001: far from the broker's clock
    before = int(time.time() * 1000) - 2000
    p = producer(b, **{"compression.type": codec})
    reports = []
    for i in range(20):
        p.produce(topic, key=b"k%d" % i, value=b"v%d" % i, timestamp=old_ts + i,
                  on_delivery=lambda err, msg: reports.append((err, msg.timestamp())))
    flush_all(p)
    kp = KafkaProducer(bootstrap_servers=b, acks="all",
                       compression_type=None if codec == "none" else codec)
    try:
        kfut = [kp.send(topic, key=b"kp%d" % i, value=b"x", timestamp_ms=old_ts + i) for i in range(5)]
        kp.flush(timeout=30)
        kmd = [f.get(timeout=30) for f in kfut]
    finally:
        kp.close(timeout=10)
    after = int(time.time() * 1000) + 2000

    assert all(err is None for err, _ in reports), reports[:3]
    for _, (ttype, ts) in reports:
        # ProduceResponse.log_append_time_ms is reported back to the producer
        assert ttype == TIMESTAMP_LOG_APPEND_TIME, "delivery report timestamp type %s" % ttype
        assert before <= ts <= after, "delivery report timestamp %d not in [%d, %d]" % (ts, before, after)
    for md in kmd:
        assert before <= md.timestamp <= after, "kafka-python RecordMetadata.timestamp %d" % md.timestamp

    msgs = consume_all(b, topic, [0])
    assert len(msgs) == 25
    for m in msgs:
        ttype, ts = m.timestamp()
        assert ttype == TIMESTAMP_LOG_APPEND_TIME, "consumed timestamp type %s, want LogAppendTime" % ttype
        assert before <= ts <= after, "consumed timestamp %d not in [%d, %d]" % (ts, before, after)

    kc = _kp_consume_one_partition(b, topic, 25)
    assert len(kc) == 25
    for r in kc:
        assert r.timestamp_type == 1, "kafka-python sees timestamp_type %s" % r.timestamp_type
        assert before <= r.timestamp <= after


def _kp_consume_one_partition(bootstrap, topic, n, timeout=30.0):
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", fetch_max_wait_ms=100)
    try:
        tp = KTopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            for _, records in c.poll(timeout_ms=200).items():
                out.extend(records)
        return out
    finally:
        c.close()


# --------------------------------------------------------------------------- fetch edge cases

@pytest.mark.parametrize("codec", ["none", "gzip", "zstd"])
def test_fetch_from_offset_inside_a_batch(module_broker, codec):
    """A fetch starting in the middle of a (compressed) batch returns records from
    exactly that offset on."""
    from confluent_kafka import Consumer, TopicPartition
    b = module_broker.bootstrap
    topic = create_topic(b, unique("rt-mid-" + codec), 1)
    p = producer(b, **{"compression.type": codec, "linger.ms": 200, "batch.num.messages": 1000})
    for i in range(100):
        p.produce(topic, partition=0, value=b"m%d" % i)
    flush_all(p)
    for start in (37, 99, 0):
        c = Consumer({"bootstrap.servers": b, "group.id": unique("mid"), "enable.auto.commit": False})
        try:
            c.assign([TopicPartition(topic, 0, start)])
            got = []
            deadline = time.monotonic() + 20
            while len(got) < 100 - start and time.monotonic() < deadline:
                m = c.poll(0.2)
                if m is not None and not m.error():
                    got.append((m.offset(), m.value()))
            assert got == [(i, b"m%d" % i) for i in range(start, 100)], "start %d: got %s" % (start, got[:3])
        finally:
            c.close()


@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_large_record(module_broker, codec):
    b = module_broker.bootstrap
    topic = create_topic(b, unique("rt-large-" + codec), 1)
    big = bytes((i * 7919) % 251 for i in range(900_000))
    p = producer(b, **{"compression.type": codec})
    p.produce(topic, partition=0, key=b"big", value=big)
    p.produce(topic, partition=0, key=b"small", value=b"after")
    flush_all(p)
    msgs = consume_all(b, topic, [0], extra={"fetch.max.bytes": 1024 * 1024,
                                            "max.partition.fetch.bytes": 64 * 1024})
    assert [(m.key(), m.value()) for m in msgs] == [(b"big", big), (b"small", b"after")]
