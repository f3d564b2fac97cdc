"""SASL (issue "Security", SASL): SCRAM users made with `weir user` and with
Kafka's AdminClient (AlterUserScramCredentials) log in with SCRAM-SHA-256 and
SCRAM-SHA-512 over SASL_SSL, and with PLAIN over SASL_PLAINTEXT (a listener's
JAAS users, or the SCRAM credential where it has none), from librdkafka
(confluent-kafka), kafka-python and the Java client; a wrong password is
refused with an authentication error; nothing but ApiVersions and SASL
gets through before the login; the Java client re-authenticates when the
session runs out (KIP-368); credentials survive a restart and never reach
the broker's log."""

import os
import socket
import struct
import subprocess

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, NewTopic, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from conftest import DEFAULT_WEIR_BIN, free_port, unique
from certs import make_ca, make_keystore
from test_tls import run_java_check

ALICE = "alice-Pa55word"
CAROL = "carol-JaasSecret"


@pytest.fixture
def sasl_broker(broker_factory, tmp_path):
    """A broker with PLAINTEXT (admin), SASL_PLAINTEXT (PLAIN with JAAS user
    carol), SASL_PLAIN2 (PLAIN against SCRAM credentials) and SASL_SSL
    listeners, and SCRAM user alice; returns (broker, {listener: bootstrap}, CA)."""
    directory = str(tmp_path)
    ca = make_ca(directory, "ca")
    keystore = make_keystore(directory, "ca")
    b = broker_factory({"auto.create.topics.enable": "false"}, start=False)
    ports = {name: free_port() for name in ("SASL_PLAINTEXT", "SCRAMPLAIN", "SASL_SSL")}
    b.configs.update({
        "listeners": "PLAINTEXT://127.0.0.1:%d," % b.port + ",".join(
            "%s://127.0.0.1:%d" % (n, p) for n, p in ports.items()),
        "listener.security.protocol.map":
            "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SCRAMPLAIN:SASL_PLAINTEXT,"
            "SASL_SSL:SASL_SSL",
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config":
            'org.apache.kafka.common.security.plain.PlainLoginModule required '
            'username="carol" password="%s" user_carol="%s";' % (CAROL, CAROL),
        "listener.name.scramplain.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_ssl.ssl.keystore.location": keystore,
        "connections.max.reauth.ms": "1500",
    })
    b.start()
    weir("user", "create", "alice", "--bootstrap-server", b.bootstrap,
         env={"WEIR_USER_PASSWORD": ALICE})
    return b, {n: "127.0.0.1:%d" % p for n, p in ports.items()}, ca


def weir(*args, env=None, check=True):
    run = subprocess.run([os.environ.get("WEIR_BIN", DEFAULT_WEIR_BIN), *args], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, **(env or {})))
    if check:
        assert run.returncode == 0, run.stdout + run.stderr
    return run


def scram_ssl(bootstrap, ca, mechanism="SCRAM-SHA-512", user="alice", password=ALICE):
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_SSL",
            "ssl.ca.location": ca, "sasl.mechanism": mechanism,
            "sasl.username": user, "sasl.password": password}


def create_topic(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)


def round_trip(config, admin_bootstrap, n=50):
    """Produces `n` records with `config` and reads them back; the values."""
    topic = unique("sasl")
    create_topic(admin_bootstrap, topic)
    p = Producer(dict(config, acks="all"))
    for i in range(n):
        p.produce(topic, value=b"v%d" % i)
    assert p.flush(30) == 0
    c = Consumer(dict(config, **{"group.id": unique("g"), "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    seen = set()
    try:
        for _ in range(200):
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                seen.add(m.value())
            if len(seen) == n:
                break
    finally:
        c.close()
    return seen


def test_librdkafka_logs_in_with_scram_over_sasl_ssl(sasl_broker):
    b, listeners, ca = sasl_broker
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        seen = round_trip(scram_ssl(listeners["SASL_SSL"], ca, mechanism), b.bootstrap)
        assert seen == {b"v%d" % i for i in range(50)}, mechanism


def test_librdkafka_logs_in_with_plain_from_jaas_users_or_scram_credentials(sasl_broker):
    b, listeners, _ = sasl_broker
    plain = lambda bootstrap, user, pw: {  # noqa: E731
        "bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": pw}
    assert len(round_trip(plain(listeners["SASL_PLAINTEXT"], "carol", CAROL), b.bootstrap)) == 50
    assert len(round_trip(plain(listeners["SCRAMPLAIN"], "alice", ALICE), b.bootstrap)) == 50
    # The JAAS listener knows only its own users.
    assert_refused(plain(listeners["SASL_PLAINTEXT"], "alice", ALICE))


def assert_refused(config):
    errors = []
    admin = AdminClient(dict(config, error_cb=errors.append))
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    admin.poll(1)
    text = " ".join(str(e) for e in errors)
    assert "Authentication failed" in text or "AUTHENTICATION" in text, text


def test_a_wrong_password_or_unknown_user_is_refused(sasl_broker):
    _, listeners, ca = sasl_broker
    assert_refused(scram_ssl(listeners["SASL_SSL"], ca, password="not-it"))
    assert_refused(scram_ssl(listeners["SASL_SSL"], ca, user="mallory", password="x"))
    with pytest.raises(KafkaError):
        KafkaProducer(bootstrap_servers=listeners["SASL_SSL"], security_protocol="SASL_SSL",
                      ssl_cafile=ca, sasl_mechanism="SCRAM-SHA-512",
                      sasl_plain_username="alice", sasl_plain_password="not-it",
                      request_timeout_ms=5000, max_block_ms=5000)


def test_kafka_python_logs_in_with_scram_and_plain(sasl_broker):
    b, listeners, ca = sasl_broker
    topic = unique("sasl-kp")
    create_topic(b.bootstrap, topic)
    scram = dict(bootstrap_servers=listeners["SASL_SSL"], security_protocol="SASL_SSL",
                 ssl_cafile=ca, sasl_mechanism="SCRAM-SHA-256",
                 sasl_plain_username="alice", sasl_plain_password=ALICE)
    producer = KafkaProducer(acks="all", **scram)
    for i in range(20):
        producer.send(topic, b"kp%d" % i)
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=listeners["SASL_PLAINTEXT"],
                             security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                             sasl_plain_username="carol", sasl_plain_password=CAROL,
                             auto_offset_reset="earliest", consumer_timeout_ms=10000)
    values = [m.value for m in consumer]
    consumer.close()
    assert sorted(values) == sorted(b"kp%d" % i for i in range(20))


def test_the_java_client_logs_in_and_re_authenticates(sasl_broker, tmp_path):
    b, listeners, ca = sasl_broker
    topic = unique("sasl-java")
    create_topic(b.bootstrap, topic)
    jaas = ('org.apache.kafka.common.security.scram.ScramLoginModule required '
            'username="alice" password="%s";')
    props = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
             "ssl.truststore.type": "PEM", "ssl.truststore.location": ca,
             "sasl.jaas.config": jaas % ALICE}
    # Ten sends 500 ms apart outlive the 1.5 s session: the client logs in
    # again on its connection, or the broker closes it at the next request.
    out = run_java_check(listeners["SASL_SSL"], topic, props, tmp_path, "500")
    assert "OK" in out, out
    with open(b.log_path) as f:
        log = f.read()
    assert "session expired" not in log and "unexpected SaslHandshake" not in log, log[-3000:]
    props["sasl.jaas.config"] = jaas % "wrong"
    out = run_java_check(listeners["SASL_SSL"], topic, props, tmp_path, "expect-auth-failure")
    assert "AUTH-FAILED" in out, out


def test_nothing_but_api_versions_and_sasl_before_the_login(sasl_broker):
    _, listeners, _ = sasl_broker
    host, port = listeners["SASL_PLAINTEXT"].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        # Metadata v0 for all topics, before any SaslHandshake.
        body = struct.pack(">hhih", 3, 0, 7, 4) + b"test" + struct.pack(">i", -1)
        s.sendall(struct.pack(">i", len(body)) + body)
        assert closed(s), "the broker answered a request before the login"
    with socket.create_connection((host, int(port)), timeout=5) as s:
        # A frame larger than sasl.server.max.receive.size before the login.
        s.sendall(struct.pack(">i", 10_000_000) + b"\0" * 64)
        assert closed(s)


def closed(s):
    """Whether the broker closed the connection (rather than answering)."""
    try:
        return s.recv(4) == b""
    except ConnectionResetError:
        return True


def test_users_are_managed_by_weir_user_and_kafkas_admin_api(sasl_broker):
    b, listeners, ca = sasl_broker
    listing = weir("user", "list", "--bootstrap-server", b.bootstrap).stdout
    assert "alice" in listing and "SCRAM-SHA-512 (iterations 4096)" in listing, listing
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    described = admin.describe_user_scram_credentials(["alice"])["alice"].result(timeout=10)
    assert sorted(i.mechanism for i in described.scram_credential_infos) == sorted(
        [ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512])
    # Kafka's AdminClient sends its own salted password.
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion("bob", info, b"bob-Secret")])["bob"].result(timeout=10)
    assert len(round_trip(scram_ssl(listeners["SASL_SSL"], ca, user="bob",
                                    password="bob-Secret"), b.bootstrap, n=5)) == 5
    # Out of Kafka's iteration bounds: refused, naming why.
    with pytest.raises(KafkaException, match="iterations"):
        admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
            "eve", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 10), b"x")])["eve"].result(
                timeout=10)
    weir("user", "delete", "bob", "--bootstrap-server", b.bootstrap)
    assert "bob" not in weir("user", "list", "--bootstrap-server", b.bootstrap).stdout
    assert_refused(scram_ssl(listeners["SASL_SSL"], ca, user="bob", password="bob-Secret"))


def test_credentials_survive_a_restart_and_stay_out_of_the_log(sasl_broker, tmp_path):
    b, listeners, ca = sasl_broker
    b.restart()
    assert len(round_trip(scram_ssl(listeners["SASL_SSL"], ca), b.bootstrap, n=5)) == 5
    # weir's own client logs in from a Kafka client properties file.
    props = os.path.join(str(tmp_path), "client.properties")
    with open(props, "w") as f:
        f.write("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
                "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule "
                "required username=\"alice\" password=\"%s\";\n" % ALICE)
    scram_plaintext = listeners["SCRAMPLAIN"]
    # That listener offers PLAIN only: the handshake names what it offers.
    refused = weir("topic", "list", "--bootstrap-server", scram_plaintext,
                   "--command-config", props, check=False)
    assert refused.returncode != 0 and "PLAIN" in refused.stderr, refused.stderr
    with open(props, "w") as f:
        f.write("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                "sasl.username=alice\nsasl.password=%s\n" % ALICE)
    weir("topic", "list", "--bootstrap-server", scram_plaintext, "--command-config", props)
    # And over SASL_SSL: TLS first, then the SCRAM login.
    with open(props, "w") as f:
        f.write("security.protocol=SASL_SSL\nssl.truststore.location=%s\n"
                "sasl.mechanism=SCRAM-SHA-256\nsasl.username=alice\nsasl.password=%s\n"
                % (ca, ALICE))
    weir("topic", "list", "--bootstrap-server", listeners["SASL_SSL"], "--command-config", props)
    with open(props, "w") as f:
        f.write("security.protocol=SASL_SSL\nssl.truststore.location=%s\n"
                "sasl.mechanism=SCRAM-SHA-256\nsasl.username=alice\nsasl.password=wrong\n" % ca)
    refused = weir("topic", "list", "--bootstrap-server", listeners["SASL_SSL"],
                   "--command-config", props, check=False)
    assert refused.returncode != 0 and "uthentication" in refused.stderr, refused.stderr
    with open(b.log_path) as f:
        # What the broker wrote since its last start (the harness's own
        # first line shows the command, with its --config values).
        log = f.read().split("===== start")[-1].split("\n", 1)[1]
    assert "broker started" in log
    for secret in (ALICE, CAROL):
        assert secret not in log, "a password reached the log"
