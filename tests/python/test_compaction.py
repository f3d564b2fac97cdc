"""Log compaction: the cleaner keeps the last value per key, drops tombstones after
delete.retention.ms, keeps offsets, and never touches the active segment."""

import pytest

from weir_helpers import consume_all, create_topic, produce_sync, producer, unique, wait_until

KEYS = ["k%d" % i for i in range(8)]
ROUNDS = 5
TOMBSTONED = "k3"


@pytest.mark.broker_config({"log.cleaner.backoff.ms": "200",
                            "log.retention.check.interval.ms": "200"})
def test_compaction_keeps_last_value_per_key_and_drops_tombstones(broker):
    b = broker.bootstrap
    topic = create_topic(b, unique("compact"), 1, config={
        "cleanup.policy": "compact",
        "segment.bytes": "1024",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "0",
        "min.compaction.lag.ms": "0",
    })
    # linger.ms=0 and one record at a time: many small batches, so segments roll often.
    p = producer(b, **{"linger.ms": 0, "batch.num.messages": 1})
    last = {}
    for r in range(ROUNDS):
        for k in KEYS:
            v = ("%s-round%d-" % (k, r)).encode() + b"p" * 60
            msg = produce_sync(p, topic, key=k.encode(), value=v)
            last[k] = (msg.offset(), v)
    tomb = produce_sync(p, topic, key=TOMBSTONED.encode(), value=None)
    del last[TOMBSTONED]
    # Fillers with unique keys: they move the tombstone out of the active segment.
    fillers = {}
    for i in range(40):
        k = "filler-%d" % i
        v = b"f" * 80
        fillers[k] = (produce_sync(p, topic, key=k.encode(), value=v).offset(), v)
    end = fillers["filler-39"][0] + 1
    total_written = end

    expected = dict(last)
    expected.update(fillers)

    def view():
        msgs = consume_all(b, topic, [0])
        return [(m.key().decode(), m.offset(), m.value()) for m in msgs]

    def compacted():
        v = view()
        keys = [k for k, _, _ in v]
        return len(keys) == len(set(keys)) and set(keys) == set(expected) and v

    v = wait_until(compacted, 60, "compaction to leave exactly one record per key, tombstone gone",
                   interval=0.3)
    got = {k: (off, val) for k, off, val in v}
    for k, (off, val) in expected.items():
        assert got[k] == (off, val), "key %s: got %s, want the last write %s" % (k, got[k][:1], (off,))
    offsets = [off for _, off, _ in v]
    assert offsets == sorted(offsets), "offsets not increasing after compaction"
    assert len(v) < total_written
    assert tomb.offset() not in offsets

    # The fillers written last (partly in the active segment) are all intact.
    for k in fillers:
        assert k in got
    # The log end is unchanged and new writes continue after it.
    nxt = produce_sync(p, topic, key=b"k0", value=b"after")
    assert nxt.offset() == end

