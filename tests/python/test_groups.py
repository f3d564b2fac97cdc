"""Classic consumer groups against the broker's group coordinator."""

import time

from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KTopicPartition
from kafka.admin import KafkaAdminClient

from weir_helpers import admin, create_topic, flush_all, producer, unique, wait_until

NPART = 6
PER_PARTITION = 50


def _fill(bootstrap, topic):
    p = producer(bootstrap)
    for part in range(NPART):
        for i in range(PER_PARTITION):
            p.produce(topic, partition=part, key=b"k%d" % i, value=b"p%d-%d" % (part, i))
    flush_all(p)


def _group_consumer(bootstrap, group, name):
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": name,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 500,
        "partition.assignment.strategy": "range",
        "fetch.wait.max.ms": 100,
    })


def _assigned(c):
    return {tp.partition for tp in c.assignment()}


def _drive(consumers, sink, until, timeout, what):
    """Poll every consumer in turn (so all of them take part in rebalances)
    until `until()` holds. Received records go to sink[consumer_index]."""
    def step():
        for i, c in enumerate(consumers):
            m = c.poll(0.05)
            if m is not None and not m.error():
                sink.setdefault(i, []).append(m)
        return until()
    wait_until(step, timeout, what, interval=0)


def test_three_consumers_share_six_partitions_then_one_leaves(module_broker):
    b = module_broker.bootstrap
    topic = create_topic(b, unique("grp"), NPART)
    _fill(b, topic)
    group = unique("g3")
    consumers = [_group_consumer(b, group, "member-%d" % i) for i in range(3)]
    closed = set()
    try:
        for c in consumers:
            c.subscribe([topic])
        sink = {}

        def balanced3():
            sets = [_assigned(c) for c in consumers]
            return (all(len(s) == 2 for s in sets)
                    and set().union(*sets) == set(range(NPART)))

        _drive(consumers, sink, balanced3, 60, "3 members with 2 partitions each")
        sets = [_assigned(c) for c in consumers]
        assert sum(len(s) for s in sets) == NPART, "overlapping assignments: %s" % sets

        # Each consumes its partitions to the end: 6 * 50 records in all.
        want = {(p, o) for p in range(NPART) for o in range(PER_PARTITION)}

        def seen():
            return {(m.partition(), m.offset()) for msgs in sink.values() for m in msgs}

        def all_read():
            return seen() >= want and balanced3()
        _drive(consumers, sink, all_read, 60, "all %d records consumed by the group" % len(want))
        assert seen() == want

        # Commit each consumer's position synchronously.
        for c in consumers:
            res = c.commit(offsets=[TopicPartition(topic, p, PER_PARTITION) for p in _assigned(c)],
                           asynchronous=False)
            assert all(tp.error is None for tp in res), res

        # Committed offsets through AdminClient ...
        a = admin(b)
        fut = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
        committed = {tp.partition: tp.offset for tp in fut.result(timeout=15).topic_partitions
                     if tp.topic == topic}
        assert committed == {p: PER_PARTITION for p in range(NPART)}

        # ... and through kafka-python's admin client.
        ka = KafkaAdminClient(bootstrap_servers=b)
        try:
            koffs = ka.list_group_offsets({group: None})[group]
            assert {tp.partition: om.offset for tp, om in koffs.items() if tp.topic == topic} == \
                {p: PER_PARTITION for p in range(NPART)}
            kgroups = {g["group_id"] if isinstance(g, dict) else g[0] for g in ka.list_groups()}
            assert group in kgroups, kgroups
        finally:
            ka.close()

        # The group is listed and described with its three members.
        listed = a.list_consumer_groups().result(timeout=15)
        assert group in {g.group_id for g in listed.valid}
        desc = a.describe_consumer_groups([group])[group].result(timeout=15)
        assert desc.group_id == group
        assert desc.state == ConsumerGroupState.STABLE, desc.state
        assert desc.partition_assignor == "range", desc.partition_assignor
        assert sorted(m.client_id for m in desc.members) == ["member-0", "member-1", "member-2"]
        described = {}
        for m in desc.members:
            parts = {tp.partition for tp in m.assignment.topic_partitions if tp.topic == topic}
            assert len(parts) == 2, "member %s assigned %s" % (m.client_id, parts)
            described[m.client_id] = parts
        assert set().union(*described.values()) == set(range(NPART))
        for i, c in enumerate(consumers):
            assert described["member-%d" % i] == _assigned(c)

        # One member leaves: the other two take over all six partitions.
        consumers[2].close()
        closed.add(2)
        rest = consumers[:2]

        def balanced2():
            sets = [_assigned(c) for c in rest]
            return all(len(s) == 3 for s in sets) and set().union(*sets) == set(range(NPART))
        _drive(rest, {}, balanced2, 60, "2 remaining members with 3 partitions each")

        def two_members():
            d = a.describe_consumer_groups([group])[group].result(timeout=15)
            return d.state == ConsumerGroupState.STABLE and len(d.members) == 2 and d
        d = wait_until(two_members, 30, "group described with 2 members")
        assert sorted(m.client_id for m in d.members) == ["member-0", "member-1"]

        # Committed offsets are kept: nothing is re-delivered to the new owners.
        extra = {}
        for c in rest:
            m = c.poll(0.5)
            if m is not None and not m.error():
                extra.setdefault(c, []).append(m)
        assert not extra, "records re-delivered after rebalance despite commits: %s" % \
            [(m.partition(), m.offset()) for v in extra.values() for m in v]
    finally:
        for i, c in enumerate(consumers):
            if i not in closed:
                c.close()


def test_committed_offsets_resume_new_member(module_broker):
    """A consumer that joins a group later starts from the group's committed offsets."""
    b = module_broker.bootstrap
    topic = create_topic(b, unique("grp-resume"), 2)
    p = producer(b)
    for i in range(40):
        p.produce(topic, partition=i % 2, value=b"%d" % i)
    flush_all(p)
    group = unique("g-resume")
    c = _group_consumer(b, group, "first")
    c.subscribe([topic])
    try:
        wait_until(lambda: (c.poll(0.1), len(c.assignment()) == 2)[1], 30, "assignment")
        c.commit(offsets=[TopicPartition(topic, 0, 7), TopicPartition(topic, 1, 13)], asynchronous=False)
    finally:
        c.close()
    c2 = _group_consumer(b, group, "second")
    c2.subscribe([topic])
    try:
        first = {}
        deadline = time.monotonic() + 30
        while len(first) < 2 and time.monotonic() < deadline:
            m = c2.poll(0.2)
            if m is not None and not m.error():
                first.setdefault(m.partition(), m.offset())
        assert first == {0: 7, 1: 13}
    finally:
        c2.close()


def test_kafka_python_group_consumer(module_broker):
    b = module_broker.bootstrap
    topic = create_topic(b, unique("grp-kp"), 3)
    p = producer(b)
    for i in range(90):
        p.produce(topic, partition=i % 3, value=b"v%d" % i)
    flush_all(p)
    group = unique("g-kp")
    c = KafkaConsumer(topic, bootstrap_servers=b, group_id=group, enable_auto_commit=False,
                      auto_offset_reset="earliest", session_timeout_ms=10000,
                      heartbeat_interval_ms=1000, fetch_max_wait_ms=100)
    try:
        got = []
        deadline = time.monotonic() + 60
        while len(got) < 90 and time.monotonic() < deadline:
            for _, recs in c.poll(timeout_ms=200).items():
                got.extend(recs)
        assert sorted((r.partition, r.offset) for r in got) == \
            sorted((p_, o) for p_ in range(3) for o in range(30))
        assert {tp.partition for tp in c.assignment()} == {0, 1, 2}
        c.commit()
        for part in range(3):
            assert c.committed(KTopicPartition(topic, part)) == 30
    finally:
        c.close()
    # The commits are visible to another client and to the admin API.
    a = admin(b)
    res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=15)
    assert {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == topic} == {0: 30, 1: 30, 2: 30}
    desc = a.describe_consumer_groups([group])[group].result(timeout=15)
    assert desc.state == ConsumerGroupState.EMPTY, desc.state
    assert desc.members == []
    # An unknown group has no committed offsets.
    res = a.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(unique("nobody"), [TopicPartition(topic, 0)])])
    tps = list(res.values())[0].result(timeout=15).topic_partitions
    assert [tp.offset for tp in tps] == [-1001], tps  # OFFSET_INVALID: nothing committed
