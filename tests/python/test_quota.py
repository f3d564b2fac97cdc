"""Client quotas (issue "Security", quotas): quotas set with Kafka's
AdminClient (the Java client's alterClientQuotas) and with `weir quota`
are described back as Kafka describes them; a produce quota slows
librdkafka and the Java producer to about their rate, and a fetch quota a
consumer, with the throttle time in the answers (the clients report it);
a user's quota applies to that logged-in user and not to another; quotas
survive a restart."""

import os
import shutil
import subprocess
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import unique
from test_sasl import weir
from weir_helpers import add_plain_sasl_listener

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "..", "java", "QuotaCheck.java")
RATE = 100 * 1024
# Rates are measured over two one-second samples (Kafka's default is
# eleven), so a sender's first burst is about one second of its quota and
# the tests stay short.
FAST_WINDOW = {"quota.window.num": "2", "quota.window.size.seconds": "1"}
PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}


def java(*args):
    classpath = os.environ.get("WEIR_JAVA_CLASSPATH")
    assert classpath, "WEIR_JAVA_CLASSPATH is not set: run through scripts/test.sh"
    run = subprocess.run([shutil.which("java"), "-cp", classpath, CHECK, *args],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    return run.stdout.splitlines()


def make_topic(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)


def produce(config, topic, total, value=b"x" * 1024):
    """Produces `total` bytes of values; (seconds taken, throttle times seen)."""
    throttles = []
    # Small batches: a quota throttles the requests after the one that went
    # over it, so one request carrying everything could not be slowed.
    p = Producer(dict(config, **{"throttle_cb": lambda e: throttles.append(e.throttle_time),
                                 "linger.ms": 5, "acks": 1, "batch.size": 16384}))
    start = time.monotonic()
    for _ in range(total // len(value)):
        while True:
            try:
                p.produce(topic, value)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(120) == 0
    return time.monotonic() - start, throttles


def test_quotas_are_altered_and_described_as_kafka_does(broker_factory):
    b = broker_factory({})
    lines = java(b.bootstrap, "admin")
    # A byte rate must be a whole number: that entity alone is refused.
    assert "refused {user=bob} InvalidRequestException" in lines, lines
    assert "all {client-id=app, user=alice} {producer_byte_rate=1048576.0, request_percentage=25.5}" in lines, lines
    assert "all {client-id=null} {consumer_byte_rate=2048.0}" in lines, lines
    assert not any(l.startswith("all {user=bob}") for l in lines), lines
    # contains(user=alice) matches alice with a client id too; the
    # strict filter on the default client id matches only that entity.
    assert [l for l in lines if l.startswith("alice ")] == [
        "alice {client-id=app, user=alice} {producer_byte_rate=1048576.0, request_percentage=25.5}"]
    assert [l for l in lines if l.startswith("default-client ")] == [
        "default-client {client-id=null} {consumer_byte_rate=2048.0}"]
    assert [l for l in lines if l.startswith("after-remove ")] == [
        "after-remove {client-id=app, user=alice} {producer_byte_rate=1048576.0}"]

    # weir quota sees the same, changes them, and they survive a restart.
    listed = weir("quota", "list", "--bootstrap-server", b.bootstrap).stdout
    assert "user=alice, client-id=app" in listed and "producer_byte_rate=1048576" in listed, listed
    assert "client-id=<default>" in listed and "consumer_byte_rate=2048" in listed, listed
    weir("quota", "set", "--bootstrap-server", b.bootstrap, "--user-default",
         "producer_byte_rate=5000", "request_percentage=200")
    weir("quota", "remove", "--bootstrap-server", b.bootstrap, "--client-id-default",
         "consumer_byte_rate")
    b.restart()
    listed = weir("quota", "list", "--bootstrap-server", b.bootstrap).stdout
    assert "user=<default>" in listed and "producer_byte_rate=5000" in listed, listed
    assert "request_percentage=200" in listed, listed
    assert "client-id=<default>" not in listed, listed
    only_alice = weir("quota", "list", "--bootstrap-server", b.bootstrap, "--user", "alice").stdout
    assert "user=alice" in only_alice and "<default>" not in only_alice, only_alice

    # Bad input is refused naming what is wrong, and nothing changes.
    bad = weir("quota", "set", "--bootstrap-server", b.bootstrap, "--user", "carol",
               "producer_byte_rate=fast", check=False)
    assert bad.returncode != 0 and "not a number" in bad.stderr, bad.stderr
    bad = weir("quota", "set", "--bootstrap-server", b.bootstrap, "--ip", "10.0.0.1",
               "producer_byte_rate=100", check=False)
    assert bad.returncode != 0 and "producer_byte_rate" in bad.stderr, bad.stderr
    assert "carol" not in weir("quota", "list", "--bootstrap-server", b.bootstrap).stdout


def test_a_produce_quota_slows_librdkafka_and_the_java_producer(broker_factory):
    b = broker_factory(dict(FAST_WINDOW))
    topic = unique("quota-produce")
    make_topic(b.bootstrap, topic)
    weir("quota", "set", "--bootstrap-server", b.bootstrap, "--client-id", "slow",
         "producer_byte_rate=%d" % RATE)
    total = 6 * RATE

    # Another client id is not limited (and sees no throttle).
    _, throttles = produce({"bootstrap.servers": b.bootstrap, "client.id": "free"}, topic, total)
    assert not [t for t in throttles if t > 0], throttles

    took, throttles = produce({"bootstrap.servers": b.bootstrap, "client.id": "slow"}, topic, total)
    assert [t for t in throttles if t > 0], "librdkafka saw no throttle time"
    # However slow this machine, an unthrottled producer would be far above
    # twice the quota; the quota holds it near its rate.
    assert total / took < 2 * RATE, "%.0f B/s against a quota of %d" % (total / took, RATE)

    start = time.monotonic()
    out = java(b.bootstrap, "produce", topic, "slow", str(total))
    took = time.monotonic() - start
    throttle_max = int(out[-1].split()[-1])
    assert throttle_max > 0, out
    assert total / took < 2 * RATE, "%.0f B/s against a quota of %d" % (total / took, RATE)


def test_a_fetch_quota_slows_a_consumer(broker_factory):
    b = broker_factory(dict(FAST_WINDOW))
    topic = unique("quota-fetch")
    make_topic(b.bootstrap, topic)
    total = 6 * RATE
    produce({"bootstrap.servers": b.bootstrap}, topic, total)
    weir("quota", "set", "--bootstrap-server", b.bootstrap, "--client-id", "slow-reader",
         "consumer_byte_rate=%d" % RATE)

    throttles = []
    c = Consumer({"bootstrap.servers": b.bootstrap, "client.id": "slow-reader",
                  "group.id": unique("g"), "auto.offset.reset": "earliest",
                  "max.partition.fetch.bytes": 64 * 1024,
                  "throttle_cb": lambda e: throttles.append(e.throttle_time)})
    c.subscribe([topic])
    got, start = 0, time.monotonic()
    deadline = start + 120
    while got < total and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got += len(m.value())
    took = time.monotonic() - start
    c.close()
    assert got == total, "consumed %d of %d bytes" % (got, total)
    assert [t for t in throttles if t > 0], "librdkafka saw no throttle time"
    assert total / took < 2 * RATE, "%.0f B/s against a quota of %d" % (total / took, RATE)


def test_a_user_quota_applies_to_that_user_only(broker_factory):
    b = broker_factory(dict(FAST_WINDOW, **{"auto.create.topics.enable": "false"}), start=False)
    sasl = add_plain_sasl_listener(b, PASSWORDS)
    b.start()
    topic = unique("quota-user")
    make_topic(b.bootstrap, topic)
    weir("quota", "set", "--bootstrap-server", b.bootstrap, "--user", "alice",
         "producer_byte_rate=%d" % RATE)

    def as_user(user):
        return {"bootstrap.servers": sasl, "client.id": "same-app",
                "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                "sasl.username": user, "sasl.password": PASSWORDS[user]}

    total = 5 * RATE
    _, throttles = produce(as_user("bob"), topic, total)
    assert not [t for t in throttles if t > 0], throttles
    took, throttles = produce(as_user("alice"), topic, total)
    assert [t for t in throttles if t > 0], "alice was not throttled"
    assert total / took < 2 * RATE, "%.0f B/s against a quota of %d" % (total / took, RATE)
