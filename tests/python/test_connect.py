"""`weir connect` workers against a real broker: the Kafka Connect REST
API, the FileStream connectors, and tasks spread over (and moving between)
workers. Records are checked with librdkafka (confluent-kafka)."""

import os
import re

import pytest
from confluent_kafka import Producer

from conftest import unique, wait_until
from connect_worker import Worker
from weir_helpers import consume_all, create_topic

STRING = "org.apache.kafka.connect.storage.StringConverter"


@pytest.fixture
def workers(weir_bin, broker, tmp_path):
    started = []

    def start(group=None, **configs):
        w = Worker(weir_bin, broker.bootstrap, group or start.group,
                   str(tmp_path / ("worker-%d.log" % len(started))), configs=configs)
        started.append(w)
        return w.start()
    start.group = unique("connect")
    yield start
    for w in started:
        try:
            w.stop()
        except AssertionError:
            w.kill9()


def source_config(path, topic, **extra):
    c = {"connector.class": "FileStreamSource", "file": str(path), "topic": topic,
         "value.converter": STRING, "key.converter": STRING}
    c.update(extra)
    return c


def append(path, lines):
    with open(path, "a") as f:
        for line in lines:
            f.write(line + "\n")


def values(broker, topic, n, partitions=1):
    recs = wait_until(lambda: (lambda r: r if len(r) >= n else None)(
        consume_all(broker.bootstrap, topic, list(range(partitions)), timeout=5.0)),
        60, "%d records in %s" % (n, topic), interval=0.5)
    return [r.value().decode() for r in recs]


def test_root_and_plugins(workers):
    w = workers()
    code, body = w.rest.get("/")
    assert code == 200 and body["version"].startswith("4.")
    assert body["kafka_cluster_id"]
    code, plugins = w.rest.get("/connector-plugins")
    assert code == 200
    classes = {p["class"]: p["type"] for p in plugins}
    assert classes["org.apache.kafka.connect.file.FileStreamSourceConnector"] == "source"
    assert classes["org.apache.kafka.connect.file.FileStreamSinkConnector"] == "sink"
    code, keys = w.rest.get("/connector-plugins/FileStreamSource/config")
    assert code == 200
    by_name = {k["name"]: k for k in keys}
    assert by_name["topic"]["required"] is True and by_name["topic"]["type"] == "STRING"
    assert by_name["batch.size"]["default_value"] == "2000"


def test_file_source_to_topic_to_file_sink(workers, broker, tmp_path):
    w = workers()
    src, dst, topic = tmp_path / "in.txt", tmp_path / "out.txt", unique("lines")
    create_topic(broker.bootstrap, topic, 1)
    lines = ["line %d" % i for i in range(50)]
    append(src, lines)
    code, body = w.rest.post("/connectors", {"name": "src", "config": source_config(src, topic)})
    assert code == 201, body
    assert body["name"] == "src" and body["type"] == "source"
    assert body["config"]["name"] == "src"
    status = w.rest.wait_running("src", 1)
    assert status["tasks"][0]["worker_id"] == w.id
    assert values(broker, topic, 50) == lines

    code, body = w.rest.post("/connectors", {"name": "sink", "config": {
        "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
        "file": str(dst), "topics": topic, "tasks.max": "1",
        "value.converter": STRING, "key.converter": STRING}})
    assert code == 201, body
    w.rest.wait_running("sink", 1)
    wait_until(lambda: dst.exists() and dst.read_text().splitlines() == lines, 60,
               "the sink file to hold every line", interval=0.2)
    append(src, ["late"])
    wait_until(lambda: dst.read_text().splitlines() == lines + ["late"], 60,
               "the new line to go through", interval=0.2)

    code, names = w.rest.get("/connectors")
    assert code == 200 and sorted(names) == ["sink", "src"]
    code, expanded = w.rest.get("/connectors?expand=status&expand=info")
    assert expanded["src"]["status"]["connector"]["state"] == "RUNNING"
    assert expanded["sink"]["info"]["type"] == "sink"
    code, tasks = w.rest.get("/connectors/src/tasks")
    assert code == 200 and tasks[0]["id"] == {"connector": "src", "task": 0}
    assert tasks[0]["config"]["topic"] == topic
    code, offsets = w.rest.get("/connectors/src/offsets")
    assert code == 200
    wanted = {"partition": {"filename": str(src)}}
    got = [o for o in offsets["offsets"] if o["partition"] == wanted["partition"]]
    assert got and got[0]["offset"]["position"] > 0

    code, _ = w.rest.delete("/connectors/src")
    assert code == 204
    code, body = w.rest.get("/connectors/src")
    assert code == 404 and body == {"error_code": 404, "message": "Connector src not found"}


def test_rest_errors_in_kafkas_shapes(workers, tmp_path):
    w = workers()
    code, body = w.rest.get("/connectors/nope/status")
    assert code == 404 and body["error_code"] == 404 and "nope" in body["message"]
    code, body = w.rest.post("/connectors", {"name": "bad", "config": {
        "connector.class": "FileStreamSink", "tasks.max": "0"}})
    assert code == 400, body
    assert body["error_code"] == 400
    # topics and topics.regex both carry the "one of" error, as in Kafka.
    assert "contains the following 4 error(s)" in body["message"], body
    assert 'Missing required configuration "file" which has no default value.' in body["message"]
    assert "Must configure one of topics or topics.regex" in body["message"]
    code, body = w.rest.post("/connectors", {"name": "x", "config": {"connector.class": "NoSuchThing"}})
    assert code == 400 and "NoSuchThing" in body["message"]
    code, body = w.rest.call("POST", "/connectors", raw=b"{not json")
    assert code == 400 and body["error_code"] == 400

    code, infos = w.rest.put("/connector-plugins/FileStreamSink/config/validate",
                             {"connector.class": "FileStreamSink", "tasks.max": "x", "topics": "t"})
    assert code == 200
    errors = {c["value"]["name"]: c["value"]["errors"] for c in infos["configs"]}
    assert errors["tasks.max"] == ["Invalid value x for configuration tasks.max: Not a number of type INT"]
    assert errors["file"] and errors["topics"] == []
    assert infos["error_count"] == 3  # name, file and tasks.max

    config = source_config(tmp_path / "f", "t")
    assert w.rest.post("/connectors", {"name": "dup", "config": config})[0] == 201
    code, body = w.rest.post("/connectors", {"name": "dup", "config": config})
    assert code == 409 and body["message"] == "Connector dup already exists"
    code, body = w.rest.put("/connectors/dup/config", dict(config, name="other"))
    assert code == 400 and "doesn't match" in body["message"]
    code, body = w.rest.call("DELETE", "/connectors")
    assert code == 405 and body["error_code"] == 405
    code, body = w.rest.get("/no/such/path")
    assert code == 404


def test_pause_resume_stop_restart_and_config_update(workers, broker, tmp_path):
    w = workers()
    src, topic = tmp_path / "in.txt", unique("lines")
    create_topic(broker.bootstrap, topic, 1)
    append(src, ["a", "b"])
    code, body = w.rest.put("/connectors/c/config", source_config(src, topic))
    assert code == 201, body
    w.rest.wait_running("c", 1)
    assert values(broker, topic, 2) == ["a", "b"]

    assert w.rest.put("/connectors/c/pause")[0] == 202
    wait_until(lambda: w.rest.status("c")["tasks"][0]["state"] == "PAUSED"
               and w.rest.status("c")["connector"]["state"] == "PAUSED", 30, "paused", interval=0.2)
    assert w.rest.put("/connectors/c/resume")[0] == 202
    w.rest.wait_running("c", 1)

    assert w.rest.put("/connectors/c/stop")[0] == 204
    wait_until(lambda: (lambda s: s["connector"]["state"] == "STOPPED" and s["tasks"] == [])(
        w.rest.status("c")), 30, "stopped with no tasks", interval=0.2)
    append(src, ["c"])
    assert w.rest.put("/connectors/c/resume")[0] == 202
    w.rest.wait_running("c", 1)
    assert values(broker, topic, 3) == ["a", "b", "c"]

    # A new config restarts the task with it: a second file.
    src2 = tmp_path / "in2.txt"
    append(src2, ["z"])
    code, body = w.rest.put("/connectors/c/config", source_config(src2, topic))
    assert code == 200 and body["config"]["file"] == str(src2)
    wait_until(lambda: w.rest.get("/connectors/c/tasks")[1][0]["config"]["file"] == str(src2),
               30, "the new task config", interval=0.2)
    assert values(broker, topic, 4) == ["a", "b", "c", "z"]

    code, body = w.rest.post("/connectors/c/restart?includeTasks=true")
    assert code == 202 and body["tasks"][0]["state"] == "RESTARTING", body
    w.rest.wait_running("c", 1)
    assert w.rest.post("/connectors/c/tasks/0/restart")[0] == 204
    assert w.rest.post("/connectors/c/tasks/7/restart")[0] == 404
    assert w.rest.post("/connectors/c/restart")[0] == 204
    w.rest.wait_running("c", 1)
    # Restarts resume from the stored offsets: nothing is produced twice.
    assert values(broker, topic, 4) == ["a", "b", "c", "z"]


def test_a_failed_task_reports_its_cause(workers, tmp_path):
    w = workers()
    directory = tmp_path / "a-directory"
    directory.mkdir()
    code, body = w.rest.post("/connectors", {"name": "f", "config": source_config(directory, "t")})
    assert code == 201
    status = wait_until(lambda: (lambda s: s if s["tasks"] and s["tasks"][0]["state"] == "FAILED" else None)(
        w.rest.status("f")), 30, "the task to fail", interval=0.2)
    assert str(directory) in status["tasks"][0]["trace"]
    assert status["connector"]["state"] == "RUNNING"


def test_a_restarted_worker_resumes_from_stored_offsets(workers, broker, tmp_path):
    w = workers()
    src, topic = tmp_path / "in.txt", unique("lines")
    create_topic(broker.bootstrap, topic, 1)
    append(src, ["%d" % i for i in range(10)])
    assert w.rest.post("/connectors", {"name": "c", "config": source_config(src, topic)})[0] == 201
    w.rest.wait_running("c", 1)
    values(broker, topic, 10)
    assert w.stop() == 0
    append(src, ["%d" % i for i in range(10, 15)])
    w.start()
    w.rest.wait_running("c", 1)
    got = values(broker, topic, 15)
    assert got == ["%d" % i for i in range(15)]


def log_times(worker, event):
    """When the worker logged `event` (starting / stopped) per task unit."""
    out = {}
    for m in re.finditer(r'^(\S+)\s+INFO weir_connect::worker::runner: %s worker=\S+ unit=Task\("(\w+)", (\d+)\)'
                         % event, worker.log(), re.M):
        out.setdefault((m.group(2), int(m.group(3))), []).append(m.group(1))
    return out


def test_tasks_spread_over_workers_and_move_when_one_dies(workers, broker, tmp_path):
    a = workers()
    topics = []
    for i in range(4):
        topic = unique("spread")
        create_topic(broker.bootstrap, topic, 1)
        append(tmp_path / ("in%d.txt" % i), ["first %d" % i])
        assert a.rest.post("/connectors", {"name": "c%d" % i, "config": source_config(
            tmp_path / ("in%d.txt" % i), topic)})[0] == 201
        topics.append(topic)
    for i in range(4):
        assert a.rest.wait_running("c%d" % i, 1)["tasks"][0]["worker_id"] == a.id

    # A joining worker gets a share; each moved task stopped on the first
    # worker before it started on the second.
    b = workers()
    wait_until(lambda: len({b.rest.wait_running("c%d" % i, 1)["tasks"][0]["worker_id"]
                            for i in range(4)}) == 2, 60, "tasks on both workers", interval=0.5)
    stopped_on_a, started_on_b = log_times(a, "stopped"), log_times(b, "starting")
    assert started_on_b, b.log_tail()
    for unit, starts in started_on_b.items():
        assert unit in stopped_on_a, (unit, a.log_tail())
        assert max(stopped_on_a[unit]) < min(starts), (unit, stopped_on_a[unit], starts)

    a.kill9()
    for i in range(4):
        wait_until(lambda: b.rest.wait_running("c%d" % i, 1)["tasks"][0]["worker_id"] == b.id,
                   60, "task of c%d on the survivor" % i, interval=0.2)
        append(tmp_path / ("in%d.txt" % i), ["second %d" % i])
    for i, topic in enumerate(topics):
        got = values(broker, topic, 2)
        assert got[-1] == "second %d" % i and got.count("second %d" % i) == 1, got
