"""Authorization (issue "Security", ACLs): with Kafka's StandardAuthorizer
configured, users logged in with SASL get what their ACLs allow and
nothing else, as Kafka decides it — a user without Write cannot produce,
one without Read cannot consume or join the group, prefixed ACLs cover
their topics, a DENY wins over an ALLOW, Metadata hides what a user may
not describe — whether the ACLs come from `weir acl` or from Kafka's
AdminClient (confluent-kafka, kafka-python); denials are logged once; ACLs
survive a restart; without an authorizer the ACL APIs say so."""

import os
import subprocess

import pytest
from confluent_kafka import Consumer, KafkaError as CKafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType)

from conftest import DEFAULT_WEIR_BIN, unique
from weir_helpers import add_plain_sasl_listener

PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}


@pytest.fixture
def acl_broker(broker_factory):
    """A broker whose PLAINTEXT listener is the admins' (User:ANONYMOUS is a
    super user) and whose SASL_PLAINTEXT listener logs alice and bob in with
    PLAIN; returns (broker, the SASL listener's bootstrap)."""
    b = broker_factory({"auto.create.topics.enable": "false"}, start=False)
    sasl = add_plain_sasl_listener(b, PASSWORDS)
    b.configs.update({
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS",
    })
    b.start()
    return b, sasl


def weir(*args, check=True):
    run = subprocess.run([os.environ.get("WEIR_BIN", DEFAULT_WEIR_BIN), *args],
                         capture_output=True, text=True, timeout=60)
    if check:
        assert run.returncode == 0, run.stdout + run.stderr
    return run


def as_user(bootstrap, user, **extra):
    return dict({"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
                 "sasl.mechanism": "PLAIN", "sasl.username": user,
                 "sasl.password": PASSWORDS[user]}, **extra)


def admin_client(admin):
    """An AdminClient for a bootstrap address or a client config."""
    return AdminClient(admin if isinstance(admin, dict) else {"bootstrap.servers": admin})


def create_topics(admin_bootstrap, *topics):
    admin = admin_client(admin_bootstrap)
    for f in admin.create_topics([NewTopic(t, 1, 1) for t in topics]).values():
        f.result(timeout=30)


def allow(principal, operation, resource_type, name, pattern=ResourcePatternType.LITERAL,
          permission=AclPermissionType.ALLOW):
    return AclBinding(resource_type, name, pattern, principal, "*", operation, permission)


def create_acls(admin_bootstrap, *bindings):
    admin = admin_client(admin_bootstrap)
    for f in admin.create_acls(list(bindings)).values():
        f.result(timeout=30)


def produce(config, topic, n=5):
    """Produces `n` records; the delivery errors (None where delivered)."""
    errors = []
    p = Producer(dict(config, **{"message.timeout.ms": 10000}))
    for i in range(n):
        p.produce(topic, value=b"v%d" % i, on_delivery=lambda err, _m: errors.append(err))
    p.flush(30)
    return errors


def consume(config, topic, group, want, polls=60):
    """Polls until `want` records or an error arrive: (values, error codes)."""
    c = Consumer(dict(config, **{"group.id": group, "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    values, errors = [], []
    try:
        for _ in range(polls):
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                errors.append(m.error().code())
                break
            values.append(m.value())
            if len(values) == want:
                break
    finally:
        c.close()
    return values, errors


def test_write_and_read_are_needed_to_produce_and_consume(acl_broker):
    b, sasl = acl_broker
    topic, group = unique("acl"), unique("g")
    create_topics(b.bootstrap, topic)
    # No ACL at all: refused (allow.everyone.if.no.acl.found is false).
    errors = produce(as_user(sasl, "alice"), topic)
    assert errors and all(e is not None and e.code() == CKafkaError.TOPIC_AUTHORIZATION_FAILED
                          for e in errors), errors
    create_acls(b.bootstrap, allow("User:alice", AclOperation.WRITE, ResourceType.TOPIC, topic))
    assert produce(as_user(sasl, "alice"), topic) == [None] * 5
    # bob has no Write of his own.
    assert all(e is not None for e in produce(as_user(sasl, "bob"), topic))

    # Read on the topic but not the group: the group refuses bob.
    create_acls(b.bootstrap, allow("User:bob", AclOperation.READ, ResourceType.TOPIC, topic))
    values, errors = consume(as_user(sasl, "bob"), topic, group, 5)
    assert values == [] and CKafkaError.GROUP_AUTHORIZATION_FAILED in errors, errors
    # With Read on the group too, bob reads everything alice wrote.
    create_acls(b.bootstrap, allow("User:bob", AclOperation.READ, ResourceType.GROUP, group))
    values, errors = consume(as_user(sasl, "bob"), topic, group, 5)
    assert sorted(values) == [b"v%d" % i for i in range(5)], errors
    # Alice may write but not read the group's topic.
    create_acls(b.bootstrap, allow("User:alice", AclOperation.READ, ResourceType.GROUP, group))
    values, errors = consume(as_user(sasl, "alice"), topic, group + "-a", 5)
    assert values == []
    values, errors = consume(as_user(sasl, "alice"), topic, group, 5)
    assert values == [] and CKafkaError.TOPIC_AUTHORIZATION_FAILED in errors, errors


def test_prefixed_acls_cover_their_topics_and_deny_wins(acl_broker):
    b, sasl = acl_broker
    prefix = unique("orders") + "-"
    eu, secret, other = prefix + "eu", prefix + "secret", unique("payments")
    create_topics(b.bootstrap, eu, secret, other)
    create_acls(
        b.bootstrap,
        allow("User:alice", AclOperation.ALL, ResourceType.TOPIC, prefix, ResourcePatternType.PREFIXED),
        allow("User:alice", AclOperation.WRITE, ResourceType.TOPIC, secret,
              permission=AclPermissionType.DENY),
    )
    alice = as_user(sasl, "alice")
    assert produce(alice, eu) == [None] * 5
    denied = produce(alice, secret)
    assert all(e is not None and e.code() == CKafkaError.TOPIC_AUTHORIZATION_FAILED for e in denied)
    assert all(e is not None for e in produce(alice, other))

    # Metadata lists only what alice may describe: the deny of Write leaves
    # the Describe her prefixed ALL grants.
    listed = set(AdminClient(alice).list_topics(timeout=20).topics)
    assert eu in listed and secret in listed and other not in listed, listed
    bob_sees = set(AdminClient(as_user(sasl, "bob")).list_topics(timeout=20).topics)
    assert not {eu, secret, other} & bob_sees, bob_sees


def test_acls_are_managed_by_weir_acl_and_kafkas_admin_clients(acl_broker):
    b, sasl = acl_broker
    topic = unique("managed")
    create_topics(b.bootstrap, topic)
    weir("acl", "add", "--bootstrap-server", b.bootstrap, "--allow-principal", "User:bob",
         "--operation", "Read", "--operation", "Describe", "--topic", topic)
    listed = weir("acl", "list", "--bootstrap-server", b.bootstrap, "--topic", topic).stdout
    assert "principal=User:bob" in listed and "operation=READ" in listed, listed

    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    seen = admin.describe_acls(AclBindingFilter(
        ResourceType.TOPIC, topic, ResourcePatternType.MATCH, None, None,
        AclOperation.ANY, AclPermissionType.ANY)).result(timeout=30)
    assert sorted(a.operation for a in seen) == sorted([AclOperation.READ, AclOperation.DESCRIBE])

    from kafka.admin import (ACLFilter, ACLOperation, ACLPermissionType, KafkaAdminClient,
                             ResourcePatternFilter)
    from kafka.admin import ResourceType as KResourceType, ACLResourcePatternType
    kp = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        found, error = kp.describe_acls(ACLFilter(
            principal="User:bob", host="*", operation=ACLOperation.ANY,
            permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(KResourceType.TOPIC, topic,
                                                   ACLResourcePatternType.LITERAL)))
        assert len(found) == 2, (found, error)
    finally:
        kp.close()

    weir("acl", "remove", "--bootstrap-server", b.bootstrap, "--topic", topic)
    seen = admin.describe_acls(AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
        AclOperation.ANY, AclPermissionType.ANY)).result(timeout=30)
    assert not [a for a in seen if a.name == topic], seen

    # Only a principal with Alter on the cluster may change ACLs.
    bob_admin = AdminClient(as_user(sasl, "bob"))
    with pytest.raises(KafkaException) as refused:
        for f in bob_admin.create_acls(
                [allow("User:bob", AclOperation.ALL, ResourceType.TOPIC, "*")]).values():
            f.result(timeout=30)
    assert refused.value.args[0].code() == CKafkaError.CLUSTER_AUTHORIZATION_FAILED


def test_acls_survive_a_restart_and_denials_are_logged_once(acl_broker):
    b, sasl = acl_broker
    topic = unique("kept")
    create_topics(b.bootstrap, topic)
    create_acls(b.bootstrap, allow("User:alice", AclOperation.WRITE, ResourceType.TOPIC, topic))
    b.restart()
    assert produce(as_user(sasl, "alice"), topic) == [None] * 5
    for _ in range(3):
        assert all(e is not None for e in produce(as_user(sasl, "bob"), topic, n=1))
    with open(b.log_path) as f:
        log = f.read()
    # bob was refused the same way three times (librdkafka asks for the
    # topic's metadata first, so Describe is what is refused): each
    # refusal of an operation is logged once.
    denied = [line.split(" is Denied operation = ")[1].split()[0]
              for line in log.split("===== start")[-1].splitlines()
              if "Principal = User:bob is Denied" in line and topic in line]
    assert denied and len(denied) == len(set(denied)), denied


def test_without_an_authorizer_the_acl_apis_say_so(broker):
    run = weir("acl", "add", "--bootstrap-server", broker.bootstrap, "--allow-principal",
               "User:bob", "--operation", "Read", "--topic", "t", check=False)
    assert run.returncode != 0 and "No Authorizer" in run.stdout + run.stderr, run.stdout + run.stderr
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    with pytest.raises(KafkaException) as refused:
        for f in admin.create_acls(
                [allow("User:bob", AclOperation.READ, ResourceType.TOPIC, "t")]).values():
            f.result(timeout=30)
    assert refused.value.args[0].code() == CKafkaError.SECURITY_DISABLED


def test_bad_authorizer_settings_stop_the_broker_naming_them(broker_factory):
    for key, value in (("authorizer.class.name", "com.example.MyAuthorizer"),
                       ("super.users", "User:admin;bob")):
        b = broker_factory({key: value}, start=False)
        run = subprocess.run(b.command(), capture_output=True, text=True, timeout=60)
        assert run.returncode != 0 and key in run.stderr, run.stderr


def test_the_java_client_and_kafka_python_are_refused_what_acls_do_not_allow(acl_broker, tmp_path):
    from test_tls import run_java_check
    b, sasl = acl_broker
    topic = unique("java-acl")
    create_topics(b.bootstrap, topic)
    create_acls(b.bootstrap, allow("User:alice", AclOperation.WRITE, ResourceType.TOPIC, topic))
    props = lambda user: {  # noqa: E731
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
        "sasl.jaas.config": 'org.apache.kafka.common.security.plain.PlainLoginModule required '
                            'username="%s" password="%s";' % (user, PASSWORDS[user])}
    # bob may not write; alice (idempotent, through her Write on the topic)
    # writes but may not join a group or read.
    out = run_java_check(sasl, topic, props("bob"), tmp_path, "expect-authz-failure")
    assert "AUTHZ-FAILED: produce" in out and "TopicAuthorization" in out, out
    out = run_java_check(sasl, topic, props("alice"), tmp_path, "expect-authz-failure")
    assert "AUTHZ-FAILED: consume" in out, out
    create_acls(
        b.bootstrap,
        allow("User:alice", AclOperation.READ, ResourceType.TOPIC, topic),
        allow("User:alice", AclOperation.READ, ResourceType.GROUP, "secure-check-",
              ResourcePatternType.PREFIXED),
    )
    assert "OK" in run_java_check(sasl, topic, props("alice"), tmp_path)

    from kafka import KafkaProducer
    from kafka.errors import TopicAuthorizationFailedError
    producer = KafkaProducer(bootstrap_servers=sasl, security_protocol="SASL_PLAINTEXT",
                             sasl_mechanism="PLAIN", sasl_plain_username="bob",
                             sasl_plain_password=PASSWORDS["bob"], max_block_ms=10000)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(topic, b"x").get(timeout=20)
    finally:
        producer.close()
