"""Idempotent producers: retries through a broker restart never duplicate or drop records."""

import threading
import time

from kafka.record.memory_records import MemoryRecordsBuilder

import kafka_wire as w
from weir_helpers import consume_all, create_topic, producer, unique, wait_for_topic

NONE = 0
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
DUPLICATE_SEQUENCE_NUMBER = 46


def test_idempotent_producer_survives_restart_without_duplicates(broker):
    b = broker.bootstrap
    nparts = 3
    topic = create_topic(b, unique("idem"), nparts)
    total = 20000   # far more than can be sent between reaching restart_after and SIGTERM
    window = 500
    restart_after = 1500
    acked = {}
    failed = {}
    state = {"sent": 0, "error": None}
    reached = threading.Event()
    p = producer(b, **{"enable.idempotence": True, "acks": "all", "linger.ms": 2,
                       "message.timeout.ms": 120000, "retry.backoff.ms": 100,
                       "reconnect.backoff.max.ms": 500})

    def on_delivery(err, msg):
        seq = int(msg.value().split(b"-")[1])
        if err is None:
            acked[seq] = (msg.partition(), msg.offset())
            if len(acked) >= restart_after:
                reached.set()
        else:
            failed[seq] = err

    def run():
        try:
            while state["sent"] < total:
                if state["sent"] - len(acked) - len(failed) < window:
                    seq = state["sent"]
                    p.produce(topic, partition=seq % nparts, value=b"seq-%d-%s" % (seq, b"y" * 64),
                              on_delivery=on_delivery)
                    state["sent"] += 1
                    p.poll(0)
                else:
                    p.poll(0.02)
            deadline = time.monotonic() + 150
            while len(p) > 0 and time.monotonic() < deadline:
                p.poll(0.1)
        except Exception as e:
            state["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert reached.wait(60), "only %d records acknowledged within 60s (%s)" % (len(acked), state["error"])
    acked_at_restart = len(acked)
    broker.restart()  # SIGTERM, wait for exit, start again on the same dir and port
    print("restarted with %d of %d records acknowledged" % (acked_at_restart, total))
    t.join(180)
    assert not t.is_alive(), "idempotent producer did not finish within 180s after the restart"
    assert state["error"] is None, state["error"]
    assert acked_at_restart < total, "all records were acknowledged before the restart"
    assert not failed, "%d records failed, e.g. %s" % (len(failed), list(failed.items())[:5])
    assert len(acked) == total

    wait_for_topic(b, topic, nparts)
    msgs = consume_all(b, topic, range(nparts), timeout=60)
    for part in range(nparts):
        got = [int(m.value().split(b"-")[1]) for m in msgs if m.partition() == part]
        want = [s for s in range(total) if s % nparts == part]
        dups = len(got) - len(set(got))
        assert dups == 0, "partition %d holds %d duplicates (retries through the restart)" % (part, dups)
        assert got == want, "partition %d: %d records, want %d; first difference at index %s" % (
            part, len(got), len(want),
            next((i for i, (x, y) in enumerate(zip(got, want)) if x != y), min(len(got), len(want))))
        offs = [m.offset() for m in msgs if m.partition() == part]
        assert offs == list(range(len(want)))
    for seq, (part, off) in acked.items():
        assert off == seq // nparts, "record %d acknowledged at %d/%d, stored at %d" % (seq, part, off, seq // nparts)


def _batch(pid, epoch, base_seq, values):
    bld = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20,
                               producer_id=pid, producer_epoch=epoch, base_sequence=base_seq)
    for v in values:
        assert bld.append(timestamp=int(time.time() * 1000), key=None, value=v) is not None
    bld.close()
    return bytes(bld.buffer())


def _values(bootstrap, topic):
    return [m.value() for m in consume_all(bootstrap, topic, [0])]


def test_raw_duplicate_batch_is_deduplicated_and_gap_rejected(broker):
    """ProduceRequest v3 with producer id/sequence built by hand: a resent batch is
    acknowledged with its original offset but stored once, even across a restart;
    a sequence gap is refused with OUT_OF_ORDER_SEQUENCE_NUMBER."""
    b = broker.bootstrap
    topic = create_topic(b, unique("idem-raw"), 1)
    s = w.connect(b)
    try:
        err, pid, epoch = w.init_producer_id_v0(s, 1)
        assert err == NONE and pid >= 0 and epoch >= 0, (err, pid, epoch)

        b0 = _batch(pid, epoch, 0, [b"a0", b"a1", b"a2"])
        err, base = w.produce_v3(s, 2, topic, 0, b0)
        assert (err, base) == (NONE, 0)
        err, base = w.produce_v3(s, 3, topic, 0, b0)  # the same batch again (a retry)
        assert err in (NONE, DUPLICATE_SEQUENCE_NUMBER), "resent batch got error %d" % err
        if err == NONE:
            assert base == 0, "resent batch acknowledged at offset %d, first copy is at 0" % base

        gap = _batch(pid, epoch, 5, [b"gap"])
        err, _ = w.produce_v3(s, 4, topic, 0, gap)
        assert err == OUT_OF_ORDER_SEQUENCE_NUMBER, "sequence gap accepted with error %d" % err

        b1 = _batch(pid, epoch, 3, [b"b3", b"b4"])
        err, base = w.produce_v3(s, 5, topic, 0, b1)
        assert (err, base) == (NONE, 3)
    finally:
        s.close()
    assert _values(b, topic) == [b"a0", b"a1", b"a2", b"b3", b"b4"]

    # Producer state is rebuilt on restart: the last batch resent is still a duplicate.
    broker.restart()
    wait_for_topic(b, topic, 1)
    s = w.connect(b)
    try:
        def resend():
            e, base_ = w.produce_v3(s, 6, topic, 0, b1)
            return e, base_
        err, base = resend()
        assert err in (NONE, DUPLICATE_SEQUENCE_NUMBER), "resent batch after restart got error %d" % err
        if err == NONE:
            assert base == 3, "resent batch after restart acknowledged at %d, first copy at 3" % base
        b2 = _batch(pid, epoch, 5, [b"c5"])
        err, base = w.produce_v3(s, 7, topic, 0, b2)
        assert (err, base) == (NONE, 5), "next sequence after restart: error %d offset %d" % (err, base)
    finally:
        s.close()
    assert _values(b, topic) == [b"a0", b"a1", b"a2", b"b3", b"b4", b"c5"]
