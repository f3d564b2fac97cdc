"""The PostgreSQL connectors in a real `weir connect` worker against a real
broker and a private PostgreSQL server (pg_server.py): config errors over
REST, a table into a topic, and table → topic → table with upserts."""

import json
import time

import pytest

from conftest import unique, wait_until
from connect_worker import Worker
from pg_server import PgServer
from weir_helpers import consume_all, create_topic

STRING = "org.apache.kafka.connect.storage.StringConverter"
JSON = "org.apache.kafka.connect.json.JsonConverter"


@pytest.fixture
def pg():
    server = PgServer().start()
    yield server
    server.stop()


@pytest.fixture
def worker(weir_bin, broker, tmp_path):
    w = Worker(weir_bin, broker.bootstrap, unique("connect"), str(tmp_path / "worker.log")).start()
    yield w
    try:
        w.stop()
    except AssertionError:
        w.kill9()


def records(broker, topic, n):
    return wait_until(lambda: (lambda r: r if len(r) >= n else None)(
        consume_all(broker.bootstrap, topic, [0], timeout=5.0)),
        60, "%d records in %s" % (n, topic), interval=0.5)


def test_validate_names_the_key_and_a_table_reaches_a_topic(worker, broker, pg):
    code, body = worker.rest.call("PUT", "/connector-plugins/weir.postgres.source/config/validate",
                                  {"connector.class": "weir.postgres.source", "name": "v",
                                   "connection.url": pg.url, "table.whitelist": "t",
                                   "mode": "incrementing", "topic.prefix": "p-"})
    assert code == 200, body
    errors = {c["value"]["name"]: c["value"]["errors"] for c in body["configs"] if c["value"]["errors"]}
    assert list(errors) == ["incrementing.column.name"], errors
    assert "mode=incrementing requires incrementing.column.name" in errors["incrementing.column.name"][0]
    code, body = worker.rest.call("PUT", "/connector-plugins/weir.postgres.sink/config/validate",
                                  {"connector.class": "weir.postgres.sink", "name": "v",
                                   "topics": "x", "connection.url": pg.url,
                                   "delete.enabled": "true"})
    assert code == 200
    errors = {c["value"]["name"]: c["value"]["errors"] for c in body["configs"] if c["value"]["errors"]}
    assert list(errors) == ["delete.enabled"], errors

    pg.sql("CREATE TABLE users (id SERIAL PRIMARY KEY, name TEXT NOT NULL)")
    pg.sql("INSERT INTO users (name) VALUES ('ann'), ('bob')")
    topic = "pg-users"
    create_topic(broker.bootstrap, topic, 1)
    code, body = worker.rest.post("/connectors", {"name": "src", "config": {
        "connector.class": "weir.postgres.source", "connection.url": pg.url,
        "table.whitelist": "users", "mode": "incrementing", "incrementing.column.name": "id",
        "topic.prefix": "pg-", "poll.interval.ms": "200",
        "value.converter": STRING, "key.converter": STRING}})
    assert code == 201, body
    worker.rest.wait_running("src", 1)
    assert [r.value().decode() for r in records(broker, topic, 2)] == [
        "Struct{id=1,name=ann}", "Struct{id=2,name=bob}"]
    pg.sql("INSERT INTO users (name) VALUES ('cy')")
    assert records(broker, topic, 3)[2].value().decode() == "Struct{id=3,name=cy}"

    def stored():
        code, offsets = worker.rest.get("/connectors/src/offsets")
        got = [o["offset"] for o in offsets["offsets"] if o["partition"] == {"table": "users"}]
        return got and got[0]["incrementing"] == 3
    wait_until(stored, 30, "the source offset {incrementing: 3}", interval=0.5)


def test_table_to_topic_to_table_with_upserts(worker, broker, pg):
    code, plugins = worker.rest.get("/connector-plugins?connectorsOnly=false")
    assert code == 200
    if not any(p["class"] == JSON for p in plugins):
        pytest.skip("JsonConverter is not in this build yet")
    pg.sql("CREATE TABLE orders (id SERIAL PRIMARY KEY, item TEXT NOT NULL, qty INT, "
           "price NUMERIC(10,2), updated TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'))")
    pg.sql("INSERT INTO orders (item, qty, price) VALUES ('apple', 1, 0.50), ('pear', 2, 1.25)")
    topic = "orders"
    create_topic(broker.bootstrap, topic, 1)
    convert = {"value.converter": JSON, "key.converter": JSON}
    code, body = worker.rest.post("/connectors", {"name": "src", "config": dict(convert, **{
        "connector.class": "weir.postgres.source", "connection.url": pg.url,
        "table.whitelist": "orders", "mode": "timestamp+incrementing",
        "incrementing.column.name": "id", "timestamp.column.name": "updated",
        "topic.prefix": "", "poll.interval.ms": "200"})})
    assert code == 201, body
    code, body = worker.rest.post("/connectors", {"name": "sink", "config": dict(convert, **{
        "connector.class": "weir.postgres.sink", "connection.url": pg.url, "topics": topic,
        "table.name.format": "copy_${topic}", "insert.mode": "upsert",
        "pk.mode": "record_value", "pk.fields": "id", "auto.create": "true"})})
    assert code == 201, body
    worker.rest.wait_running("src", 1)
    worker.rest.wait_running("sink", 1)

    def copied(expected):
        def check():
            try:
                return pg.sql("SELECT id, item, qty, price FROM copy_orders ORDER BY id") == expected
            except AssertionError:
                return False  # not created yet
        return check
    wait_until(copied([["1", "apple", "1", "0.50"], ["2", "pear", "2", "1.25"]]), 60,
               "the rows in copy_orders", interval=0.5)
    time.sleep(0.01)
    pg.sql("UPDATE orders SET qty = 5, updated = now() AT TIME ZONE 'UTC' WHERE id = 1")
    pg.sql("INSERT INTO orders (item, qty, price) VALUES ('fig', 3, 2.00)")
    wait_until(copied([["1", "apple", "5", "0.50"], ["2", "pear", "2", "1.25"],
                       ["3", "fig", "3", "2.00"]]), 60, "the update and the new row", interval=0.5)
    envelope = json.loads(records(broker, topic, 4)[3].value())
    assert envelope["schema"]["name"] == "orders", envelope
