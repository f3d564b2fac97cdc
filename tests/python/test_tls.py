"""TLS on an SSL listener (issue "Security", TLS): librdkafka (confluent-kafka),
kafka-python and the Java client produce and consume over SSL with the test CA; a client
that does not trust the broker's certificate is refused with an SSL error;
a plaintext client on the SSL port gets nowhere; a certificate replaced on
disk is served without a restart; a bad keystore stops the broker naming
the file. Certificates are made with the openssl CLI."""

import os
import shutil
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer

from certs import make_ca, make_keystore
from conftest import free_port, unique, wait_until


@pytest.fixture
def tls_broker(broker_factory, tmp_path):
    """A broker with a PLAINTEXT and an SSL listener; (broker, ssl bootstrap, CA file)."""
    directory = str(tmp_path)
    ca = make_ca(directory, "ca")
    keystore = make_keystore(directory, "ca")
    b = broker_factory({"auto.create.topics.enable": "false"}, start=False)
    ssl_port = free_port()
    b.configs.update({
        "listeners": "PLAINTEXT://127.0.0.1:%d,SSL://127.0.0.1:%d" % (b.port, ssl_port),
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL",
        # Kafka's per-listener spelling (lower-case name).
        "listener.name.ssl.ssl.keystore.location": keystore,
    })
    b.start()
    return b, "127.0.0.1:%d" % ssl_port, ca, keystore


def test_librdkafka_produces_and_consumes_over_tls(tls_broker):
    _, bootstrap, ca, _ = tls_broker
    tls = {"bootstrap.servers": bootstrap, "security.protocol": "SSL", "ssl.ca.location": ca}
    topic = unique("tls")
    admin = AdminClient(tls)
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(timeout=30)
    p = Producer(dict(tls, acks="all"))
    for i in range(100):
        p.produce(topic, key=b"k%d" % i, value=b"v%d" % i)
    assert p.flush(30) == 0
    # Metadata through the SSL listener names the SSL listener's address.
    md = admin.list_topics(timeout=10)
    assert ["127.0.0.1:%d" % b.port for b in md.brokers.values()] == [bootstrap]
    c = Consumer(dict(tls, **{"group.id": unique("g"), "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    seen = set()
    try:
        for _ in range(300):
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                seen.add(m.value())
            if len(seen) == 100:
                break
    finally:
        c.close()
    assert seen == {b"v%d" % i for i in range(100)}


def test_kafka_python_produces_and_consumes_over_tls(tls_broker):
    b, bootstrap, ca, _ = tls_broker
    topic = unique("tls-kp")
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    producer = KafkaProducer(bootstrap_servers=bootstrap, security_protocol="SSL",
                             ssl_cafile=ca, acks="all")
    for i in range(20):
        producer.send(topic, b"kp%d" % i)
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, security_protocol="SSL",
                             ssl_cafile=ca, auto_offset_reset="earliest",
                             consumer_timeout_ms=10000)
    values = [m.value for m in consumer]
    consumer.close()
    assert sorted(values) == sorted(b"kp%d" % i for i in range(20))


def run_java_check(bootstrap, topic, properties, tmp_path, *extra):
    """Runs tests/java/SecureClientCheck.java with client `properties`; its stdout."""
    classpath = os.environ.get("WEIR_JAVA_CLASSPATH")
    assert classpath, "WEIR_JAVA_CLASSPATH is not set: run through scripts/test.sh"
    java = shutil.which("java")
    assert java, "java is not installed"
    props = os.path.join(str(tmp_path), unique("client") + ".properties")
    with open(props, "w") as f:
        for k, v in properties.items():
            f.write("%s=%s\n" % (k, v))
    check = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "java",
                         "SecureClientCheck.java")
    run = subprocess.run([java, "-cp", classpath, check, bootstrap, topic, props, *extra],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    return run.stdout


def test_the_java_client_produces_and_consumes_over_tls(tls_broker, tmp_path):
    b, bootstrap, ca, _ = tls_broker
    topic = unique("tls-java")
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    out = run_java_check(bootstrap, topic, {"security.protocol": "SSL",
                                            "ssl.truststore.type": "PEM",
                                            "ssl.truststore.location": ca}, tmp_path)
    assert "OK" in out, out


def test_an_untrusted_certificate_is_refused(tls_broker, tmp_path):
    _, bootstrap, _, _ = tls_broker
    other = make_ca(str(tmp_path), "other-ca")
    errors = []
    admin = AdminClient({"bootstrap.servers": bootstrap, "security.protocol": "SSL",
                         "ssl.ca.location": other, "error_cb": errors.append})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    admin.poll(1)  # serves error_cb
    text = " ".join(str(e) for e in errors)
    assert "SSL" in text and "certificate" in text, text


def test_a_plaintext_client_on_the_ssl_port_gets_nowhere(tls_broker):
    b, bootstrap, _, _ = tls_broker
    with pytest.raises(KafkaException):
        AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5)
    # The broker is unharmed: its plaintext listener still answers.
    assert AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10).brokers


def _connects(bootstrap, ca):
    admin = AdminClient({"bootstrap.servers": bootstrap, "security.protocol": "SSL",
                         "ssl.ca.location": ca})
    try:
        admin.list_topics(timeout=3)
        return True
    except KafkaException:
        return False


def test_a_rotated_certificate_is_served_without_a_restart(tls_broker, tmp_path):
    b, bootstrap, ca, keystore = tls_broker
    assert _connects(bootstrap, ca)
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    new_ca = make_ca(str(rotated), "new-ca")
    new_keystore = make_keystore(str(rotated), "new-ca")
    os.replace(new_keystore, keystore)
    wait_until(lambda: _connects(bootstrap, new_ca), 30, "the new certificate to be served")
    assert not _connects(bootstrap, ca), "the old certificate is still served"
    # Garbage in its place keeps the last good certificate.
    with open(keystore, "w") as f:
        f.write("not a keystore\n")
    time.sleep(1.5)  # past the broker's recheck interval
    assert _connects(bootstrap, new_ca)
    assert b.alive()


@pytest.mark.parametrize("keystore, says", [
    ("/nonexistent/keystore.pem", "/nonexistent/keystore.pem"),
    (None, "has no keystore"),
])
def test_a_bad_keystore_stops_the_broker_naming_it(weir_bin, tmp_path, keystore, says):
    args = [weir_bin, "broker", "--node-id", "1", "--data-dir", str(tmp_path / "data"),
            "--admin-listen", "127.0.0.1:0",
            "--config", "listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
            "--config", "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL"]
    if keystore:
        args += ["--config", "ssl.keystore.location=" + keystore]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert says in done.stderr, done.stderr


def test_only_pem_keystores_are_read(weir_bin, tmp_path):
    done = subprocess.run(
        [weir_bin, "broker", "--data-dir", str(tmp_path), "--admin-listen", "127.0.0.1:0",
         "--config", "ssl.keystore.type=JKS"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "only PEM keystores" in done.stderr, done.stderr


def test_weir_itself_connects_over_tls_with_a_command_config(tls_broker, weir_bin, tmp_path):
    """`weir` takes Kafka's client properties for TLS: the CA as Java's PEM
    truststore or librdkafka's ssl.ca.location; an untrusted broker, or a
    certificate for another host, is refused naming TLS (unless
    ssl.endpoint.identification.algorithm is empty, as in Kafka)."""
    b, bootstrap, ca, keystore = tls_broker
    topic = unique("tls-weir")
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)

    def weir_with(props):
        path = tmp_path / (unique("props") + ".properties")
        path.write_text("".join("%s=%s\n" % kv for kv in props.items()))
        return subprocess.run([weir_bin, "topic", "list", "--bootstrap-server", bootstrap,
                               "--command-config", str(path), "--request-timeout-ms", "5000"],
                              capture_output=True, text=True, timeout=60)

    java_style = {"security.protocol": "SSL", "ssl.truststore.type": "PEM",
                  "ssl.truststore.location": ca}
    listed = weir_with(java_style)
    assert listed.returncode == 0 and topic in listed.stdout, listed.stdout + listed.stderr
    rdkafka_style = {"security.protocol": "SSL", "ssl.ca.location": ca}
    assert weir_with(rdkafka_style).returncode == 0

    other = make_ca(str(tmp_path), "other-ca")
    refused = weir_with({"security.protocol": "SSL", "ssl.ca.location": other})
    assert refused.returncode != 0 and "TLS" in refused.stderr, refused.stderr

    # A certificate from the same CA that names another host only.
    elsewhere = make_keystore(str(tmp_path), "ca", "elsewhere", "DNS:elsewhere.example")
    os.replace(elsewhere, keystore)
    wait_until(lambda: weir_with(rdkafka_style).returncode != 0, 30,
               "the certificate for another host to be served")
    mismatch = weir_with(rdkafka_style)
    assert "TLS" in mismatch.stderr, mismatch.stderr
    lenient = weir_with(dict(rdkafka_style, **{"ssl.endpoint.identification.algorithm": ""}))
    assert lenient.returncode == 0, lenient.stderr
