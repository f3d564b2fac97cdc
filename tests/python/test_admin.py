"""Admin API through confluent-kafka's AdminClient: topic lifecycle, errors, configs, offsets."""

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewPartitions, NewTopic, OffsetSpec, ResourceType)

import kafka_wire as w
from weir_helpers import (admin, consume_all, create_topic, flush_all, producer, unique,
                          wait_for_topic, wait_until, watermarks)

# A static broker config that topic defaults inherit (source STATIC_BROKER_CONFIG).
BROKER_CONFIGS = {"log.retention.bytes": "987654321"}
T = 15


def _error_code(future):
    with pytest.raises(KafkaException) as ei:
        future.result(timeout=T)
    return ei.value.args[0].code()


def _create(a, topic, partitions=1, rf=1, config=None, validate_only=False):
    fs = a.create_topics([NewTopic(topic, partitions, rf, config=config or {})],
                         validate_only=validate_only, operation_timeout=T, request_timeout=T)
    return fs[topic]


def _topics(bootstrap):
    return set(admin(bootstrap).list_topics(timeout=10).topics)


def _src(entry):
    """ConfigEntry.source as an int (confluent-kafka may hand back an int or a ConfigSource)."""
    return getattr(entry.source, "value", entry.source)


def _configs(a, topic):
    res = ConfigResource(ResourceType.TOPIC, topic)
    return a.describe_configs([res], request_timeout=T)[res].result(timeout=T)


def test_create_with_configs_and_describe(module_broker):
    b = module_broker.bootstrap
    a = admin(b)
    topic = unique("adm-cfg")
    assert _create(a, topic, 2, config={"retention.ms": "3600000", "cleanup.policy": "compact"}).result(T) is None
    wait_for_topic(b, topic, 2)
    md = a.list_topics(topic=topic, timeout=10).topics[topic]
    assert sorted(md.partitions) == [0, 1]
    assert all(p.leader == 1 and list(p.replicas) == [1] and list(p.isrs) == [1] for p in md.partitions.values())

    cfg = _configs(a, topic)
    assert cfg["retention.ms"].value == "3600000"
    assert _src(cfg["retention.ms"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not cfg["retention.ms"].is_default
    assert cfg["cleanup.policy"].value == "compact"
    assert _src(cfg["cleanup.policy"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    # not overridden: Kafka's default, reported as such
    assert cfg["segment.bytes"].value == "1073741824"
    assert _src(cfg["segment.bytes"]) == ConfigSource.DEFAULT_CONFIG.value
    # inherited from the broker's static config
    assert cfg["retention.bytes"].value == "987654321"
    assert _src(cfg["retention.bytes"]) == ConfigSource.STATIC_BROKER_CONFIG.value


def test_validate_only_creates_nothing(module_broker):
    b = module_broker.bootstrap
    a = admin(b)
    topic = unique("adm-validate")
    assert _create(a, topic, 3, validate_only=True).result(T) is None
    assert topic not in _topics(b)
    # validation errors are still reported with validate_only
    assert _error_code(_create(a, unique("adm-validate-bad"), 1, rf=3, validate_only=True)) == \
        KafkaError.INVALID_REPLICATION_FACTOR
    # and the name is still free afterwards
    assert _create(a, topic, 1).result(T) is None
    wait_for_topic(b, topic, 1)


def test_create_errors(module_broker):
    b = module_broker.bootstrap
    a = admin(b)
    topic = create_topic(b, unique("adm-dup"), 1)
    assert _error_code(_create(a, topic, 1)) == KafkaError.TOPIC_ALREADY_EXISTS
    for bad in ["bad name!", "a/b", ".", "..", "x" * 250]:
        assert _error_code(_create(a, bad, 1)) == KafkaError.TOPIC_EXCEPTION, bad
    assert _error_code(_create(a, unique("adm-p0"), 0)) == KafkaError.INVALID_PARTITIONS
    assert _error_code(_create(a, unique("adm-rf3"), 1, rf=3)) == KafkaError.INVALID_REPLICATION_FACTOR
    assert _error_code(_create(a, unique("adm-cfg-bad"), 1, config={"no.such.config": "1"})) == \
        KafkaError.INVALID_CONFIG
    assert _error_code(_create(a, unique("adm-cfg-val"), 1, config={"retention.ms": "not-a-number"})) == \
        KafkaError.INVALID_CONFIG
    # none of the failed creations left a topic behind
    names = _topics(b)
    assert not [n for n in names if n.startswith(("adm-p0", "adm-rf3", "adm-cfg-bad", "adm-cfg-val"))]


def test_create_partitions_up_and_down(module_broker):
    b = module_broker.bootstrap
    a = admin(b)
    topic = create_topic(b, unique("adm-parts"), 2)
    fs = a.create_partitions([NewPartitions(topic, 5)], operation_timeout=T, request_timeout=T)
    assert fs[topic].result(T) is None
    wait_for_topic(b, topic, 5)
    # the new partitions are writable
    p = producer(b)
    for part in range(5):
        p.produce(topic, partition=part, value=b"x")
    flush_all(p)
    assert watermarks(b, topic, range(5)) == {i: (0, 1) for i in range(5)}
    for n in (3, 5):
        fs = a.create_partitions([NewPartitions(topic, n)], operation_timeout=T, request_timeout=T)
        assert _error_code(fs[topic]) == KafkaError.INVALID_PARTITIONS, n
    assert len(a.list_topics(topic=topic, timeout=10).topics[topic].partitions) == 5
    fs = a.create_partitions([NewPartitions(unique("adm-nosuch"), 3)], operation_timeout=T, request_timeout=T)
    assert _error_code(list(fs.values())[0]) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_incremental_alter_configs(module_broker):
    b = module_broker.bootstrap
    a = admin(b)
    topic = create_topic(b, unique("adm-alter"), 1, config={"retention.ms": "3600000"})
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("max.message.bytes", "65536", incremental_operation=AlterConfigOpType.SET),
    ])
    assert a.incremental_alter_configs([res])[res].result(T) is None
    cfg = _configs(a, topic)
    assert (cfg["retention.ms"].value, _src(cfg["retention.ms"])) == ("7200000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert (cfg["max.message.bytes"].value, _src(cfg["max.message.bytes"])) == \
        ("65536", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)

    # DELETE returns the key to its default
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    assert a.incremental_alter_configs([res])[res].result(T) is None
    cfg = _configs(a, topic)
    assert cfg["retention.ms"].value == "604800000"
    assert _src(cfg["retention.ms"]) != ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["max.message.bytes"].value == "65536"

    # an unknown key is refused and changes nothing
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET)])
    assert _error_code(a.incremental_alter_configs([res])[res]) == KafkaError.INVALID_CONFIG
    assert "no.such.config" not in _configs(a, topic)

    # the new max.message.bytes is enforced on produce
    p = producer(b, **{"message.max.bytes": 1000000, "compression.type": "none"})
    errs = []
    p.produce(topic, value=b"z" * 100000, on_delivery=lambda err, msg: errs.append(err))
    p.flush(30)
    assert errs and errs[0] is not None and errs[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, errs


def test_dynamic_broker_configs(module_broker):
    """Topic defaults under their broker names change at run time, cluster-wide
    (empty broker name) or per broker; other broker keys are refused."""
    b = module_broker.bootstrap
    a = admin(b)
    topic = create_topic(b, unique("adm-dyn"), 1)
    assert _configs(a, topic)["retention.ms"].value == "604800000"

    # Neither Python client will name the cluster-wide resource (an empty
    # broker name, which Kafka's own tools use): send it by hand.
    def cluster_wide(changes):
        s = w.connect(b)
        try:
            return w.incremental_alter_configs_v0(s, 1, 4, "", changes)
        finally:
            s.close()

    assert cluster_wide({"log.retention.ms": "3600000"}) == 0
    broker = ConfigResource(ResourceType.BROKER, "1")
    cfg = a.describe_configs([broker], request_timeout=T)[broker].result(timeout=T)
    assert (cfg["log.retention.ms"].value, _src(cfg["log.retention.ms"])) == \
        ("3600000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
    assert not cfg["log.retention.ms"].is_read_only
    # existing and new topics inherit it
    assert _configs(a, topic)["retention.ms"].value == "3600000"
    assert _configs(a, create_topic(b, unique("adm-dyn2"), 1))["retention.ms"].value == "3600000"

    # a per-broker value wins over the cluster-wide one
    own = ConfigResource(ResourceType.BROKER, "1", incremental_configs=[
        ConfigEntry("log.retention.ms", "1800000", incremental_operation=AlterConfigOpType.SET)])
    assert a.incremental_alter_configs([own])[own].result(T) is None
    cfg = a.describe_configs([broker], request_timeout=T)[broker].result(timeout=T)
    assert (cfg["log.retention.ms"].value, _src(cfg["log.retention.ms"])) == \
        ("1800000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)

    # keys read at start, unknown keys and bad values are refused
    for key, value in [("num.partitions", "3"), ("no.such.key", "1"), ("log.retention.ms", "soon")]:
        bad = ConfigResource(ResourceType.BROKER, "1", incremental_configs=[
            ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)])
        assert _error_code(a.incremental_alter_configs([bad])[bad]) == KafkaError.INVALID_CONFIG, key

    # DELETE returns to the cluster-wide value, an empty set to the default
    undo = ConfigResource(ResourceType.BROKER, "1", incremental_configs=[
        ConfigEntry("log.retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    assert a.incremental_alter_configs([undo])[undo].result(T) is None
    assert _configs(a, topic)["retention.ms"].value == "3600000"
    assert cluster_wide({"log.retention.ms": None}) == 0
    assert _configs(a, topic)["retention.ms"].value == "604800000"


def _list_offsets(a, tp, spec):
    return a.list_offsets({tp: spec}, request_timeout=T)[tp].result(timeout=T)


def test_list_offsets_and_delete_records(module_broker):
    b = module_broker.bootstrap
    a = admin(b)
    topic = create_topic(b, unique("adm-offsets"), 1)
    base = 1_600_000_000_000
    p = producer(b, **{"linger.ms": 0})
    for i in range(10):
        p.produce(topic, partition=0, value=b"v%d" % i, timestamp=base + i * 1000)
        p.flush(10)  # one batch per record: timestamp lookup must work inside the log, not only per batch
    tp = TopicPartition(topic, 0)
    assert _list_offsets(a, tp, OffsetSpec.earliest()).offset == 0
    assert _list_offsets(a, tp, OffsetSpec.latest()).offset == 10
    r = _list_offsets(a, tp, OffsetSpec.for_timestamp(base + 3500))
    assert (r.offset, r.timestamp) == (4, base + 4000)
    r = _list_offsets(a, tp, OffsetSpec.for_timestamp(base))
    assert (r.offset, r.timestamp) == (0, base)
    r = _list_offsets(a, tp, OffsetSpec.for_timestamp(base + 10_000_000))
    assert r.offset == -1, "timestamp after the last record: offset %d" % r.offset

    fs = a.delete_records([TopicPartition(topic, 0, 6)], request_timeout=T, operation_timeout=T)
    deleted = list(fs.values())[0].result(timeout=T)
    assert deleted.low_watermark == 6
    assert _list_offsets(a, tp, OffsetSpec.earliest()).offset == 6
    assert _list_offsets(a, tp, OffsetSpec.latest()).offset == 10
    assert watermarks(b, topic, [0])[0] == (6, 10)
    msgs = consume_all(b, topic, [0])
    assert [(m.offset(), m.value()) for m in msgs] == [(i, b"v%d" % i) for i in range(6, 10)]
    # a timestamp before the new start resolves to the new start
    r = _list_offsets(a, tp, OffsetSpec.for_timestamp(base))
    assert r.offset == 6
    # deleting beyond the high watermark is refused
    fs = a.delete_records([TopicPartition(topic, 0, 11)], request_timeout=T, operation_timeout=T)
    assert _error_code(list(fs.values())[0]) == KafkaError.OFFSET_OUT_OF_RANGE
    # -1 means "up to the high watermark"
    fs = a.delete_records([TopicPartition(topic, 0, -1)], request_timeout=T, operation_timeout=T)
    assert list(fs.values())[0].result(timeout=T).low_watermark == 10
    assert watermarks(b, topic, [0])[0] == (10, 10)


def test_list_offsets_max_timestamp(module_broker):
    b = module_broker.bootstrap
    a = admin(b)
    topic = create_topic(b, unique("adm-maxts"), 1)
    base = 1_600_000_000_000
    p = producer(b, **{"linger.ms": 0})
    stamps = [base + 5, base + 90, base + 30, base + 200, base + 10]
    for i, ts in enumerate(stamps):
        p.produce(topic, partition=0, value=b"v%d" % i, timestamp=ts)
        p.flush(10)
    r = _list_offsets(a, TopicPartition(topic, 0), OffsetSpec.max_timestamp())
    assert (r.offset, r.timestamp) == (3, base + 200)


def test_delete_topic(module_broker):
    b = module_broker.bootstrap
    a = admin(b)
    topic = create_topic(b, unique("adm-del"), 2)
    p = producer(b)
    for i in range(20):
        p.produce(topic, partition=i % 2, value=b"old")
    flush_all(p)
    assert a.delete_topics([topic], operation_timeout=T, request_timeout=T)[topic].result(T) is None
    wait_until(lambda: topic not in _topics(b), 15, "deleted topic to leave metadata")
    d = a.describe_topics(TopicCollection([topic]), request_timeout=T)[topic]
    assert _error_code(d) == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert _error_code(a.delete_topics([topic], operation_timeout=T, request_timeout=T)[topic]) == \
        KafkaError.UNKNOWN_TOPIC_OR_PART
    # the name can be reused, and the new topic starts empty
    create_topic(b, topic, 3)
    assert watermarks(b, topic, range(3)) == {0: (0, 0), 1: (0, 0), 2: (0, 0)}


def test_describe_cluster_and_topics(module_broker):
    b = module_broker.bootstrap
    a = admin(b)
    c = a.describe_cluster(request_timeout=T).result(timeout=T)
    assert c.cluster_id, "empty cluster id"
    assert [(n.id, n.host, n.port) for n in c.nodes] == [(1, "127.0.0.1", module_broker.port)]
    assert c.controller is not None and c.controller.id == 1
    md = a.list_topics(timeout=10)
    assert {bid: (br.host, br.port) for bid, br in md.brokers.items()} == {1: ("127.0.0.1", module_broker.port)}
    topic = create_topic(b, unique("adm-desc"), 3)
    d = a.describe_topics(TopicCollection([topic]), request_timeout=T)[topic].result(timeout=T)
    assert d.name == topic and not d.is_internal
    assert [p.id for p in d.partitions] == [0, 1, 2]
    assert all(p.leader.id == 1 and [r.id for r in p.replicas] == [1] for p in d.partitions)
    # the same cluster id twice (it is stable)
    assert a.describe_cluster(request_timeout=T).result(timeout=T).cluster_id == c.cluster_id
