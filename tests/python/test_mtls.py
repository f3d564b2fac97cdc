"""Mutual TLS (issue "Security", TLS): with `ssl.client.auth=required`,
librdkafka (confluent-kafka), kafka-python and the Java client (PEM
keystore) produce and consume with a client certificate; a client with no
certificate, or with one signed by a CA the broker does not trust, is refused
with an SSL error and writes nothing. The principal is the certificate's
subject (RFC 2253, as Java writes it) mapped by `ssl.principal.mapping.rules`:
the authorizer grants and refuses by that name, `DEFAULT` passes the
subject through, a per-listener rule list without `DEFAULT` refuses a
subject it does not map; with `requested` a client without a certificate is
`User:ANONYMOUS`. On SASL_SSL, only the listener's own `ssl.client.auth`
asks for a certificate and the login decides the principal. A changed
truststore is used without a restart; bad settings stop the broker naming
the key or file.

Every client principal here lacks super-user rights (only `User:admin` has
them), so a test that gets through proves the broker saw the mapped name."""

import logging
import os
import shutil
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError as KafkaPythonError

from certs import make_ca, make_client_cert, make_keystore
from conftest import BrokerFactory, free_port, unique, wait_until
from test_acl import allow, consume, create_acls, create_topics, produce
from test_tls import run_java_check

# Kafka's documented style: the CN of a name that has more than a CN,
# lower-cased; any other name unchanged.
RULES = r"RULE:^CN=([^,]+),.*$/$1/L,DEFAULT"
# The OPTIONAL listener's own rules: Acme's engineers only, no DEFAULT.
OPTIONAL_RULES = r"RULE:^CN=([^,]+),OU=eng,O=Acme,C=US$/$1/L"
SASL_PASSWORD = "sasl-user-secret"

# Client certificates signed by the broker's trusted CA: (subject, principal).
SUBJECTS = {
    "admin": ("/O=Acme/CN=admin", "User:admin"),
    "alice": ("/C=US/O=Acme/OU=eng/CN=Alice", "User:alice"),
    "carol": ("/O=Acme/OU=sales/CN=carol", "User:carol"),
    "erin": ("/CN=erin", "User:CN=erin"),
    "mallory": ("/O=Evil/CN=mallory", "User:mallory"),
}


class Mtls:
    """The module's broker and what its clients need."""

    def __init__(self, broker, listeners, ca, certs):
        self.broker = broker
        self.listeners = listeners
        self.ca = ca
        self.certs = certs

    def config(self, listener, cert=None, **extra):
        """librdkafka settings for `listener`, with client certificate `cert`."""
        config = {"bootstrap.servers": self.listeners[listener], "security.protocol": "SSL",
                  "ssl.ca.location": self.ca}
        if listener.startswith("SASL"):
            config.update({"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
                           "sasl.username": "sasluser", "sasl.password": SASL_PASSWORD})
        if cert is not None:
            config.update({"ssl.certificate.location": self.certs[cert].cert,
                           "ssl.key.location": self.certs[cert].key})
        config.update(extra)
        return config

    @property
    def admin(self):
        return self.config("MTLS", "admin")

    def topic(self, prefix, *acls):
        """A new topic, with ACLs `(principal, operation)` on it."""
        topic = unique(prefix)
        create_topics(self.admin, topic)
        if acls:
            create_acls(self.admin, *(allow(p, op, ResourceType.TOPIC, topic) for p, op in acls))
        return topic

    def high_watermark(self, topic):
        c = Consumer(dict(self.admin, **{"group.id": unique("hw")}))
        try:
            return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
        finally:
            c.close()


@pytest.fixture(scope="module")
def mtls(weir_bin, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("mtls"))
    ca = make_ca(directory, "ca")
    keystore = make_keystore(directory, "ca")
    certs = {name: make_client_cert(directory, "ca", name, subject)
             for name, (subject, _) in SUBJECTS.items()}
    # A CA with the trusted one's name but a key of its own: clients offer
    # eve's certificate (they pick one whose issuer the broker names), and
    # the broker's check of its signature is what refuses it.
    untrusted = os.path.join(directory, "untrusted")
    os.mkdir(untrusted)
    make_ca(untrusted, "ca")
    certs["eve"] = make_client_cert(untrusted, "ca", "eve", "/C=US/O=Acme/OU=eng/CN=eve")
    factory = BrokerFactory(weir_bin)
    try:
        b = factory({"auto.create.topics.enable": "false"}, start=False)
        ports = {name: free_port() for name in ("MTLS", "OPTIONAL", "SASL_SSL", "SASL_MTLS")}
        b.configs.update({
            "listeners": "PLAINTEXT://127.0.0.1:%d," % b.port + ",".join(
                "%s://127.0.0.1:%d" % (n, p) for n, p in ports.items()),
            "listener.security.protocol.map":
                "PLAINTEXT:PLAINTEXT,MTLS:SSL,OPTIONAL:SSL,SASL_SSL:SASL_SSL,SASL_MTLS:SASL_SSL",
            "ssl.keystore.location": keystore,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": ca,
            # Every SSL listener's; SASL_SSL ones take only their own.
            "ssl.client.auth": "required",
            "ssl.principal.mapping.rules": RULES,
            "listener.name.optional.ssl.client.auth": "requested",
            "listener.name.optional.ssl.principal.mapping.rules": OPTIONAL_RULES,
            "listener.name.sasl_mtls.ssl.client.auth": "required",
            "sasl.enabled.mechanisms": "PLAIN",
            **{"listener.name.%s.plain.sasl.jaas.config" % n:
               "org.apache.kafka.common.security.plain.PlainLoginModule required "
               'user_sasluser="%s";' % SASL_PASSWORD for n in ("sasl_ssl", "sasl_mtls")},
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:admin",
        })
        b.start()
        yield Mtls(b, {n: "127.0.0.1:%d" % p for n, p in ports.items()}, ca, certs)
    finally:
        factory.cleanup()


def refused(configs, timeout_ms=3000):
    """Tries to produce one record with each librdkafka config (its topic
    under `_topic`) at once; for each, (delivery errors, the text of the
    errors reported)."""
    attempts = []
    for config in configs:
        config = dict(config)
        topic = config.pop("_topic")
        errors = []
        reports = []
        p = Producer(dict(config, **{"message.timeout.ms": timeout_ms,
                                     "error_cb": lambda e, r=reports: r.append(str(e))}))
        p.produce(topic, value=b"x", on_delivery=lambda err, _m, e=errors: e.append(err))
        attempts.append((p, errors, reports))
    out = []
    for p, errors, reports in attempts:
        p.flush(timeout_ms / 1000 + 10)
        out.append((errors, " ".join(reports)))
    return out


def test_librdkafka_produces_and_consumes_with_a_client_certificate(mtls):
    topic = mtls.topic("mtls", ("User:alice", AclOperation.WRITE), ("User:alice", AclOperation.READ))
    group = unique("g")
    create_acls(mtls.admin, allow("User:alice", AclOperation.READ, ResourceType.GROUP, group))
    alice = mtls.config("MTLS", "alice")
    assert produce(alice, topic, n=20) == [None] * 20
    values, errors = consume(alice, topic, group, 20)
    assert sorted(values) == sorted(b"v%d" % i for i in range(20)), errors


def test_kafka_python_produces_and_consumes_with_a_client_certificate(mtls):
    topic = mtls.topic("mtls-kp", ("User:alice", AclOperation.WRITE),
                       ("User:alice", AclOperation.READ))
    tls = dict(bootstrap_servers=mtls.listeners["MTLS"], security_protocol="SSL",
               ssl_cafile=mtls.ca, ssl_certfile=mtls.certs["alice"].cert,
               ssl_keyfile=mtls.certs["alice"].key)
    producer = KafkaProducer(acks="all", **tls)
    try:
        for i in range(20):
            producer.send(topic, b"kp%d" % i).get(timeout=20)
    finally:
        producer.close()
    # No group: kafka-python reads the partitions it is assigned.
    consumer = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=10000,
                             **tls)
    values = []
    for m in consumer:
        values.append(m.value)
        if len(values) == 20:
            break
    consumer.close()
    assert sorted(values) == sorted(b"kp%d" % i for i in range(20))


def test_the_java_client_produces_and_consumes_with_a_pem_keystore(mtls, tmp_path):
    topic = mtls.topic("mtls-java", ("User:alice", AclOperation.WRITE),
                       ("User:alice", AclOperation.READ))
    create_acls(mtls.admin, allow("User:alice", AclOperation.READ, ResourceType.GROUP,
                                  "secure-check-", ResourcePatternType.PREFIXED))
    out = run_java_check(mtls.listeners["MTLS"], topic, {
        "security.protocol": "SSL",
        "ssl.truststore.type": "PEM", "ssl.truststore.location": mtls.ca,
        "ssl.keystore.type": "PEM", "ssl.keystore.location": mtls.certs["alice"].keystore,
    }, tmp_path)
    assert "OK" in out, out


def test_no_certificate_or_an_untrusted_one_is_refused(mtls, caplog):
    # Were certificates not checked, these clients would be User:ANONYMOUS
    # or User:eve, and both may write here.
    topic = mtls.topic("mtls-refused", ("User:ANONYMOUS", AclOperation.WRITE),
                       ("User:eve", AclOperation.WRITE))
    results = refused([mtls.config("MTLS", _topic=topic),
                       mtls.config("MTLS", "eve", _topic=topic)])
    for errors, reported in results:
        assert errors and all(e is not None for e in errors), errors
        assert "SSL" in reported, reported
    caplog.set_level(logging.WARNING, logger="kafka")
    for cert in (None, "eve"):
        caplog.clear()
        extra = {} if cert is None else {"ssl_certfile": mtls.certs[cert].cert,
                                         "ssl_keyfile": mtls.certs[cert].key}
        with pytest.raises(KafkaPythonError):
            producer = KafkaProducer(bootstrap_servers=mtls.listeners["MTLS"],
                                     security_protocol="SSL", ssl_cafile=mtls.ca,
                                     bootstrap_timeout_ms=3000, **extra)
            try:
                producer.send(topic, b"x").get(timeout=10)
            finally:
                producer.close(timeout=1)
        assert "SSL" in caplog.text, caplog.text
    assert mtls.high_watermark(topic) == 0


def test_acls_are_checked_against_the_mapped_principal(mtls):
    topic = mtls.topic("mtls-acl", ("User:alice", AclOperation.WRITE),
                       ("User:CN=erin", AclOperation.WRITE))
    # C=US,O=Acme,OU=eng,CN=Alice is "CN=Alice,OU=eng,O=Acme,C=US": the
    # first rule takes the CN and lower-cases it.
    assert produce(mtls.config("MTLS", "alice"), topic) == [None] * 5
    # A bare CN has no comma: DEFAULT passes the subject through.
    assert produce(mtls.config("MTLS", "erin"), topic) == [None] * 5
    denied = produce(mtls.config("MTLS", "carol"), topic)
    assert denied and all(e is not None and e.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
                          for e in denied), denied
    assert mtls.high_watermark(topic) == 10
    with open(mtls.broker.log_path) as f:
        log = f.read()
    assert "Principal = User:carol is Denied" in log


def test_requested_certificates_are_optional_and_rules_are_the_listeners_own(mtls):
    anonymous = mtls.topic("mtls-anon", ("User:ANONYMOUS", AclOperation.WRITE))
    alices = mtls.topic("mtls-alice", ("User:alice", AclOperation.WRITE),
                        ("User:mallory", AclOperation.WRITE), ("User:eve", AclOperation.WRITE))
    # Without a certificate: User:ANONYMOUS, which may write `anonymous` only.
    assert produce(mtls.config("OPTIONAL"), anonymous) == [None] * 5
    assert all(e is not None for e in produce(mtls.config("OPTIONAL"), alices, n=1))
    # With one: the listener's own rule maps it (alice is no longer anonymous).
    assert produce(mtls.config("OPTIONAL", "alice"), alices) == [None] * 5
    denied = produce(mtls.config("OPTIONAL", "alice"), anonymous, n=1)
    assert denied[0] is not None and denied[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # A subject no rule of the listener maps, and a certificate that does
    # not verify, are refused (the broker's own rules would map mallory).
    for errors, _ in refused([mtls.config("OPTIONAL", "mallory", _topic=alices),
                              mtls.config("OPTIONAL", "eve", _topic=alices)]):
        assert errors and all(e is not None for e in errors), errors
        assert all(e.code() != KafkaError.TOPIC_AUTHORIZATION_FAILED for e in errors), errors
    assert mtls.high_watermark(alices) == 5
    with open(mtls.broker.log_path) as f:
        log = f.read()
    assert "no rule of ssl.principal.mapping.rules applies" in log and "CN=mallory,O=Evil" in log


def test_on_sasl_ssl_only_the_listeners_own_client_auth_counts_and_the_login_decides(mtls):
    topic = mtls.topic("mtls-sasl", ("User:sasluser", AclOperation.WRITE))
    # The broker-wide ssl.client.auth=required does not reach SASL_SSL.
    assert produce(mtls.config("SASL_SSL"), topic) == [None] * 5
    # listener.name.sasl_mtls.ssl.client.auth=required does: a certificate
    # is needed, yet the principal is the login's (alice may not write).
    assert produce(mtls.config("SASL_MTLS", "alice"), topic) == [None] * 5
    [(errors, reported)] = refused([mtls.config("SASL_MTLS", _topic=topic)])
    assert errors and all(e is not None for e in errors), errors
    assert "SSL" in reported, reported
    assert mtls.high_watermark(topic) == 10


def _connects(config):
    try:
        Producer(dict(config, **{"socket.timeout.ms": 2000})).list_topics(timeout=2)
        return True
    except KafkaException:
        return False


def test_a_changed_truststore_is_used_without_a_restart(broker_factory, tmp_path):
    directory = str(tmp_path)
    ca = make_ca(directory, "ca")
    keystore = make_keystore(directory, "ca")
    make_ca(directory, "clients-a")
    make_ca(directory, "clients-b")
    old = make_client_cert(directory, "clients-a", "old", "/CN=old")
    new = make_client_cert(directory, "clients-b", "new", "/CN=new")
    truststore = os.path.join(directory, "truststore.pem")
    shutil.copy(os.path.join(directory, "clients-a.pem"), truststore)
    b = broker_factory({}, start=False)
    ssl_port = free_port()
    b.configs.update({
        "listeners": "PLAINTEXT://127.0.0.1:%d,SSL://127.0.0.1:%d" % (b.port, ssl_port),
        "ssl.keystore.location": keystore,
        "listener.name.ssl.ssl.truststore.location": truststore,
        "listener.name.ssl.ssl.client.auth": "required",
    })
    b.start()
    as_client = lambda cert: {  # noqa: E731
        "bootstrap.servers": "127.0.0.1:%d" % ssl_port, "security.protocol": "SSL",
        "ssl.ca.location": ca, "ssl.certificate.location": cert.cert,
        "ssl.key.location": cert.key}
    assert _connects(as_client(old))
    assert not _connects(as_client(new))
    replacement = truststore + ".new"
    shutil.copy(os.path.join(directory, "clients-b.pem"), replacement)
    os.replace(replacement, truststore)
    wait_until(lambda: _connects(as_client(new)), 30, "the new truststore to be used")
    assert not _connects(as_client(old)), "the old truststore is still used"
    # Garbage in its place keeps the last good truststore.
    with open(truststore, "w") as f:
        f.write("not a truststore\n")
    time.sleep(1.5)  # past the broker's recheck interval
    assert _connects(as_client(new))
    assert b.alive()


@pytest.fixture(scope="module")
def ssl_files(tmp_path_factory):
    """A keystore, and a file that holds no certificate."""
    directory = str(tmp_path_factory.mktemp("ssl-files"))
    make_ca(directory, "ca")
    garbage = os.path.join(directory, "garbage.pem")
    with open(garbage, "w") as f:
        f.write("not a certificate\n")
    return make_keystore(directory, "ca"), garbage


@pytest.mark.parametrize("settings, says", [
    ({"ssl.client.auth": "sometimes"}, "ssl.client.auth"),
    ({"listener.name.ssl.ssl.client.auth": "maybe"}, "listener.name.ssl.ssl.client.auth"),
    ({"ssl.principal.mapping.rules": "RULE:^CN=(.*$/$1/"}, "ssl.principal.mapping.rules"),
    ({"listener.name.ssl.ssl.principal.mapping.rules": "RULE:x/y/Q"},
     "listener.name.ssl.ssl.principal.mapping.rules"),
    ({"ssl.truststore.type": "JKS"}, "ssl.truststore.type"),
    ({"ssl.client.auth": "required"}, "ssl.truststore.location"),
    ({"ssl.client.auth": "requested", "ssl.truststore.location": "/nonexistent/ca.pem"},
     "/nonexistent/ca.pem"),
    ({"ssl.client.auth": "required", "ssl.truststore.location": "GARBAGE"}, "holds no certificate"),
])
def test_bad_mtls_settings_stop_the_broker_naming_them(weir_bin, tmp_path, ssl_files, settings,
                                                       says):
    keystore, garbage = ssl_files
    args = [weir_bin, "broker", "--node-id", "1", "--data-dir", str(tmp_path / "data"),
            "--admin-listen", "127.0.0.1:0",
            "--config", "listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
            "--config", "ssl.keystore.location=" + keystore]
    for key, value in settings.items():
        args += ["--config", "%s=%s" % (key, garbage if value == "GARBAGE" else value)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert says in done.stderr, done.stderr
