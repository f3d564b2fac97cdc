"""What the broker acknowledged survives restarts: graceful (SIGTERM) and SIGKILL."""

import threading
import time

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import ConfigResource, ResourceType

from weir_helpers import (admin, consume_all, create_topic, flush_all, producer, unique,
                          wait_for_topic, wait_until)


def _committed(bootstrap, group, topic):
    a = admin(bootstrap)
    res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=15)
    return {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == topic}


def _topic_config(bootstrap, topic):
    a = admin(bootstrap)
    res = ConfigResource(ResourceType.TOPIC, topic)
    entries = a.describe_configs([res])[res].result(timeout=15)
    return {k: (e.value, e.source) for k, e in entries.items()}


def test_offsets_records_metadata_and_configs_survive_graceful_restart(broker):
    b = broker.bootstrap
    topic = create_topic(b, unique("dur"), 4,
                         config={"retention.ms": "123456789", "cleanup.policy": "delete",
                                 "max.message.bytes": "200000"})
    p = producer(b)
    for i in range(400):
        p.produce(topic, partition=i % 4, key=b"k%d" % i, value=b"v%d" % i)
    flush_all(p)
    group = unique("dur-g")
    c = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False})
    try:
        res = c.commit(offsets=[TopicPartition(topic, p_, 10 * (p_ + 1)) for p_ in range(4)],
                       asynchronous=False)
        assert all(tp.error is None for tp in res)
    finally:
        c.close()
    assert _committed(b, group, topic) == {0: 10, 1: 20, 2: 30, 3: 40}
    configs_before = _topic_config(b, topic)
    assert configs_before["retention.ms"][0] == "123456789"

    broker.restart()

    wait_for_topic(b, topic, 4)
    assert _committed(b, group, topic) == {0: 10, 1: 20, 2: 30, 3: 40}
    after = _topic_config(b, topic)
    for key in ("retention.ms", "cleanup.policy", "max.message.bytes"):
        assert after[key] == configs_before[key], "%s: %s before restart, %s after" % (
            key, configs_before[key], after[key])
    msgs = consume_all(b, topic, range(4))
    assert sorted((m.partition(), m.offset(), m.value()) for m in msgs) == \
        sorted((i % 4, i // 4, b"v%d" % i) for i in range(400))

    # A new member of the group resumes from the committed offsets.
    c = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    try:
        first = {}
        deadline = time.monotonic() + 30
        while len(first) < 4 and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                first.setdefault(m.partition(), m.offset())
        assert first == {0: 10, 1: 20, 2: 30, 3: 40}
    finally:
        c.close()


def test_kill9_during_acks_all_produce_keeps_every_acknowledged_record(broker):
    b = broker.bootstrap
    nparts = 3
    topic = create_topic(b, unique("kill9"), nparts)
    total = 30000   # far more than can be sent between reaching kill_after and the kill
    window = 400    # records in flight at most
    kill_after = 2000
    acked = {}      # seq -> (partition, offset)
    failed = {}     # seq -> error
    state = {"sent": 0, "stop": False, "error": None}
    reached = threading.Event()
    p = producer(b, **{"acks": "all", "linger.ms": 2, "message.timeout.ms": 4000,
                       "enable.idempotence": False, "retries": 1000000,
                       "retry.backoff.ms": 50, "max.in.flight.requests.per.connection": 1})

    def on_delivery(err, msg):
        seq = int(msg.value().split(b"-")[1])
        if err is None:
            acked[seq] = (msg.partition(), msg.offset())
            if len(acked) >= kill_after:
                reached.set()
        else:
            failed[seq] = err

    def run():
        try:
            while state["sent"] < total and not state["stop"]:
                if state["sent"] - len(acked) - len(failed) < window:
                    seq = state["sent"]
                    p.produce(topic, partition=seq % nparts, key=b"k%d" % seq,
                              value=b"seq-%d-%s" % (seq, b"x" * 100), on_delivery=on_delivery)
                    state["sent"] += 1
                    p.poll(0)
                else:
                    p.poll(0.02)
            # drain: everything in flight is either acknowledged or failed (message.timeout.ms)
            deadline = time.monotonic() + 30
            while len(p) > 0 and time.monotonic() < deadline:
                p.poll(0.1)
        except Exception as e:  # surfaced to the main thread
            state["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        assert reached.wait(60), "only %d records acknowledged within 60s" % len(acked)
        broker.kill9()
        in_flight_at_kill = state["sent"] - len(acked) - len(failed)
        state["stop"] = True
        t.join(45)
        assert not t.is_alive(), "producer thread did not finish"
        assert state["error"] is None, state["error"]
        remaining = p.flush(10)
        assert remaining == 0, "producer still holds %d records" % remaining
    finally:
        state["stop"] = True
    sent = state["sent"]
    assert len(acked) + len(failed) == sent, (len(acked), len(failed), sent)
    assert len(acked) < total, "everything was acknowledged before the kill; the test proved nothing"
    print("kill -9 with %d records in flight; %d acknowledged, %d failed" % (in_flight_at_kill, len(acked), len(failed)))

    broker.start()
    wait_for_topic(b, topic, nparts)
    msgs = consume_all(b, topic, range(nparts), timeout=60)
    stored = {}
    seqs_by_part = {}
    for m in msgs:
        seq = int(m.value().split(b"-")[1])
        stored.setdefault(seq, []).append((m.partition(), m.offset()))
        seqs_by_part.setdefault(m.partition(), []).append(seq)
    missing = [s for s in acked if s not in stored]
    assert not missing, "%d acknowledged records lost after kill -9, e.g. %s" % (len(missing), sorted(missing)[:10])
    dup = {s: stored[s] for s in acked if len(stored[s]) != 1}
    assert not dup, "acknowledged records stored more than once: %s" % list(dup.items())[:5]
    moved = {s: (acked[s], stored[s][0]) for s in acked if stored[s][0] != acked[s]}
    assert not moved, "acknowledged records found at a different partition/offset: %s" % list(moved.items())[:5]
    # per partition, the acknowledged records are in send order
    for part, seqs in seqs_by_part.items():
        acked_seqs = [s for s in seqs if s in acked]
        assert acked_seqs == sorted(acked_seqs), "partition %d out of order" % part
        offs = [m.offset() for m in msgs if m.partition() == part]
        assert offs == list(range(len(offs))), "partition %d has offset gaps after recovery" % part
    # The log stays writable after recovery, continuing at the recovered end.
    p2 = producer(b)
    ends = {}
    for part in range(nparts):
        p2.produce(topic, partition=part, value=b"seq-999999-after",
                   on_delivery=lambda err, msg: ends.__setitem__(msg.partition(), (err, msg.offset())))
    flush_all(p2)
    for part in range(nparts):
        err, off = ends[part]
        assert err is None
        assert off == len(seqs_by_part.get(part, [])), "partition %d: new record at %d" % (part, off)
