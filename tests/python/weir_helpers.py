"""Shared helpers for the end-to-end tests (client plumbing, bounded polling)."""

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import free_port, wait_until, unique  # noqa: F401  (re-exported)

OP_TIMEOUT = 15.0


def add_plain_sasl_listener(broker, passwords):
    """Gives a broker not yet started a SASL_PLAINTEXT listener beside its
    PLAINTEXT one, logging `passwords`' users in with PLAIN; its bootstrap."""
    port = free_port()
    broker.configs.update({
        "listeners": "PLAINTEXT://127.0.0.1:%d,SASL_PLAINTEXT://127.0.0.1:%d" % (broker.port, port),
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config":
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            + " ".join('user_%s="%s"' % u for u in passwords.items()) + ";",
    })
    return "127.0.0.1:%d" % port


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def create_topic(bootstrap, name, partitions=1, config=None, timeout=OP_TIMEOUT):
    a = admin(bootstrap)
    fs = a.create_topics([NewTopic(name, partitions, 1, config=config or {})],
                         operation_timeout=timeout, request_timeout=timeout)
    fs[name].result(timeout=timeout + 5)
    wait_for_topic(bootstrap, name, partitions)
    return name


def wait_for_topic(bootstrap, name, partitions, timeout=OP_TIMEOUT):
    """Wait until metadata shows `partitions` partitions of `name`, each with a leader."""
    a = admin(bootstrap)

    def ok():
        md = a.list_topics(topic=name, timeout=5)
        t = md.topics.get(name)
        if t is None or t.error is not None or len(t.partitions) != partitions:
            return False
        return all(p.leader >= 0 and p.error is None for p in t.partitions.values())

    wait_until(ok, timeout, "topic %s with %d partitions and leaders" % (name, partitions))


def producer(bootstrap, **extra):
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all",
            "message.timeout.ms": 30000}
    conf.update({k.replace("_", "."): v for k, v in extra.items()})
    return Producer(conf)


def produce_sync(p, topic, timeout=30.0, **kwargs):
    """Produce one record and wait for its delivery report; returns the Message."""
    box = []
    p.produce(topic, on_delivery=lambda err, msg: box.append((err, msg)), **kwargs)
    deadline = time.monotonic() + timeout
    while not box and time.monotonic() < deadline:
        p.poll(0.1)
    assert box, "no delivery report within %ss" % timeout
    err, msg = box[0]
    assert err is None, "delivery failed: %s" % err
    return msg


def flush_all(p, timeout=60.0):
    remaining = p.flush(timeout)
    assert remaining == 0, "%d messages still undelivered after %ss" % (remaining, timeout)


def watermarks(bootstrap, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("wm"),
                  "enable.auto.commit": False})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in partitions}
    finally:
        c.close()


def consume_all(bootstrap, topic, partitions, timeout=30.0, extra=None):
    """Read every record of the given partitions from the beginning up to the
    high watermarks seen at the start. Returns a list of confluent Messages in
    the order received (per-partition order is preserved)."""
    conf = {"bootstrap.servers": bootstrap, "group.id": unique("reader"),
            "enable.auto.commit": False, "enable.partition.eof": True,
            "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100}
    conf.update(extra or {})
    c = Consumer(conf)
    try:
        hw = {}
        for p in partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            hw[p] = hi
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        out = []
        pos = {p: -1 for p in partitions}
        eof = set()

        def done():
            return all(hw[p] == 0 or pos[p] >= hw[p] - 1 or p in eof for p in partitions)

        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, (
                "consume_all(%s) timed out: positions %s, high watermarks %s, got %d records"
                % (topic, pos, hw, len(out)))
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if m.offset() >= hw[m.partition()]:
                        eof.add(m.partition())
                    continue
                raise KafkaException(m.error())
            pos[m.partition()] = m.offset()
            out.append(m)
        return out
    finally:
        c.close()


def murmur2(data):
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as a signed 32-bit int."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    mask = 0xFFFFFFFF
    h = (seed ^ length) & mask
    n4 = length // 4
    for i in range(n4):
        i4 = i * 4
        k = (data[i4] & 0xFF) | ((data[i4 + 1] & 0xFF) << 8) | ((data[i4 + 2] & 0xFF) << 16) | ((data[i4 + 3] & 0xFF) << 24)
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    rem = length % 4
    tail = n4 * 4
    if rem == 3:
        h ^= (data[tail + 2] & 0xFF) << 16
    if rem >= 2:
        h ^= (data[tail + 1] & 0xFF) << 8
    if rem >= 1:
        h ^= data[tail] & 0xFF
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition(key, num_partitions):
    """The partition Java's DefaultPartitioner/BuiltInPartitioner picks for a non-null key."""
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions
