"""A `weir connect` worker process for tests, and a small client of the
Kafka Connect REST API it serves (stdlib only)."""

import json
import os
import signal
import subprocess
import urllib.error
import urllib.request

from conftest import free_port, wait_until

START_TIMEOUT_S = 60.0


class Rest:
    """Answers as (status, parsed JSON body or None)."""

    def __init__(self, url):
        self.url = url

    def call(self, method, path, body=None, raw=None):
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                text = r.read()
                return r.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            text = e.read()
            return e.code, (json.loads(text) if text else None)

    def get(self, path):
        return self.call("GET", path)

    def post(self, path, body=None):
        return self.call("POST", path, body)

    def put(self, path, body=None):
        return self.call("PUT", path, body)

    def delete(self, path):
        return self.call("DELETE", path)

    def status(self, name):
        code, body = self.get("/connectors/%s/status" % name)
        assert code == 200, (code, body)
        return body

    def wait_running(self, name, tasks, timeout=60.0):
        """Waits until the connector and `tasks` tasks are RUNNING; returns the status."""
        def running():
            s = self.status(name)
            ok = (s["connector"]["state"] == "RUNNING" and len(s["tasks"]) == tasks
                  and all(t["state"] == "RUNNING" for t in s["tasks"]))
            return s if ok else None
        return wait_until(running, timeout, "connector %s with %d running tasks" % (name, tasks),
                          interval=0.2)


class Worker:
    def __init__(self, bin_path, bootstrap, group, log_path, configs=None, port=None):
        self.bin_path = bin_path
        self.bootstrap = bootstrap
        self.group = group
        self.port = port or free_port()
        self.configs = {"offset.flush.interval.ms": "500", "session.timeout.ms": "6000"}
        self.configs.update(configs or {})
        self.log_path = log_path
        self.proc = None
        self.rest = Rest("http://127.0.0.1:%d" % self.port)

    @property
    def id(self):
        return "127.0.0.1:%d" % self.port

    def command(self):
        cmd = [self.bin_path, "connect", "--bootstrap-server", self.bootstrap,
               "--group-id", self.group, "--rest-listen", "127.0.0.1:%d" % self.port]
        for k, v in self.configs.items():
            cmd += ["--config", "%s=%s" % (k, v)]
        return cmd

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("weir connect exited with %s:\n%s"
                                     % (self.proc.returncode, self.log_tail()))
            try:
                return self.rest.get("/")[0] == 200
            except OSError:
                return False
        wait_until(ready, START_TIMEOUT_S, "worker %s to answer" % self.id, interval=0.2)
        return self

    def stop(self, timeout=30):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise AssertionError("worker did not stop on SIGTERM:\n" + self.log_tail())
        return self.proc.returncode if self.proc else None

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log_tail(self, lines=60):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")
