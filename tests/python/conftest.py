"""Fixtures that run the real `weir broker` process for end-to-end tests.

The binary comes from $WEIR_BIN (default /work/cache/target/debug/weir).
Every broker binds 127.0.0.1 on a free port, uses its own temp data dir and is
stopped (SIGTERM, then SIGKILL if it hangs) when the test or module ends, even
on failure. When a test fails, the tail of each broker's stderr is attached to
the pytest report.
"""

import os
import signal
import socket
import struct
import subprocess
import tempfile
import shutil
import time
import uuid

import pytest

DEFAULT_WEIR_BIN = "/work/cache/target/debug/weir"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0

# Brokers started during the currently running test (for failure reports).
_ACTIVE_BROKERS = []


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def wait_until(cond, timeout, what, interval=0.05):
    """Poll `cond()` until it returns a truthy value or `timeout` seconds pass.

    Returns the truthy value; raises AssertionError naming `what` on timeout.
    `interval` is the pause between two polls (pacing, not synchronization).
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # keep polling; report the last error on timeout
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError(
                "timed out after %.1fs waiting for %s (last error: %r)" % (timeout, what, last_exc))
        time.sleep(interval)


def api_versions_ok(host, port, timeout=2.0):
    """True if the broker answers an ApiVersions v0 request with error 0."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        client_id = b"weir-e2e-probe"
        body = struct.pack(">hhih", 18, 0, 4242, len(client_id)) + client_id
        s.sendall(struct.pack(">i", len(body)) + body)
        hdr = _recv_exact(s, 4)
        (size,) = struct.unpack(">i", hdr)
        resp = _recv_exact(s, size)
        corr, err = struct.unpack(">ih", resp[:6])
        return corr == 4242 and err == 0


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


class Broker:
    """One `weir broker` process; the data dir and port survive restarts."""

    def __init__(self, bin_path, data_dir, configs=None, node_id=1, port=None):
        self.bin_path = bin_path
        self.data_dir = data_dir
        self.node_id = node_id
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.configs = {"group.initial.rebalance.delay.ms": "0"}
        self.configs.update(configs or {})
        self.proc = None
        self.log_path = os.path.join(os.path.dirname(data_dir.rstrip("/")),
                                     os.path.basename(data_dir.rstrip("/")) + ".stderr.log")
        self._log = None
        self.starts = 0

    @property
    def bootstrap(self):
        return "%s:%d" % (self.host, self.port)

    def command(self):
        cmd = [self.bin_path, "broker",
               "--node-id", str(self.node_id),
               "--data-dir", self.data_dir,
               "--listen", self.bootstrap,
               "--advertise", self.bootstrap,
               # Several brokers may run at once: let each pick a free admin port.
               "--admin-listen", "127.0.0.1:0"]
        for k, v in self.configs.items():
            cmd += ["--config", "%s=%s" % (k, v)]
        return cmd

    def start(self, timeout=START_TIMEOUT_S):
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        os.makedirs(self.data_dir, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.starts += 1
        self._log.write(("\n===== start #%d: %s\n" % (self.starts, " ".join(self.command()))).encode())
        self._log.flush()
        self.proc = subprocess.Popen(self.command(), stdout=self._log, stderr=self._log,
                                     stdin=subprocess.DEVNULL)

        def ready():
            if self.proc.poll() is not None:
                raise _BrokerExited(self.proc.returncode)
            try:
                return api_versions_ok(self.host, self.port, timeout=1.0)
            except OSError:
                return False

        try:
            wait_until(ready, timeout, "broker on %s to answer ApiVersions" % self.bootstrap)
        except _BrokerExited as e:
            raise AssertionError("weir broker exited with code %s during startup:\n%s"
                                 % (e.code, self.stderr_tail()))
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.stderr_tail()))
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM and wait; returns the exit code. SIGKILLs if it hangs (and fails the test)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                self._close_log()
                raise AssertionError("weir broker did not stop within %ss of SIGTERM:\n%s"
                                     % (timeout, self.stderr_tail()))
        self._close_log()
        return self.proc.returncode

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._close_log()

    def restart(self, timeout=START_TIMEOUT_S):
        """Graceful stop (if running) and start again on the same data dir and port."""
        if self.alive():
            code = self.stop()
            assert code == 0, "weir broker exited with %s on SIGTERM:\n%s" % (code, self.stderr_tail())
        return self.start(timeout=timeout)

    def _close_log(self):
        if self._log is not None:
            self._log.close()
            self._log = None

    def stderr_tail(self, lines=60):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return "(no stderr log)"
        text = data.decode("utf-8", "replace").splitlines()
        return "----- weir stderr (%s, last %d lines) -----\n%s" % (
            self.log_path, lines, "\n".join(text[-lines:]))

    def cleanup(self):
        try:
            if self.alive():
                try:
                    self.stop()
                except AssertionError:
                    pass
        finally:
            self.kill9()


class _BrokerExited(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


@pytest.fixture(scope="session")
def weir_bin():
    path = os.environ.get("WEIR_BIN", DEFAULT_WEIR_BIN)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("weir binary not found or not executable at %s (set WEIR_BIN)" % path)
    return path


class BrokerFactory:
    def __init__(self, bin_path):
        self.bin_path = bin_path
        self.brokers = []
        self.tmpdirs = []

    def __call__(self, configs=None, start=True):
        tmp = tempfile.mkdtemp(prefix="weir-e2e-")
        self.tmpdirs.append(tmp)
        b = Broker(self.bin_path, os.path.join(tmp, "data"), configs=configs)
        self.brokers.append(b)
        _ACTIVE_BROKERS.append(b)
        if start:
            b.start()
        return b

    def cleanup(self, keep_dirs=False):
        for b in self.brokers:
            b.cleanup()
            if b in _ACTIVE_BROKERS:
                _ACTIVE_BROKERS.remove(b)
        if not keep_dirs and not os.environ.get("WEIR_E2E_KEEP"):
            for d in self.tmpdirs:
                shutil.rmtree(d, ignore_errors=True)


def _marker_configs(request):
    configs = {}
    m = request.node.get_closest_marker("broker_config")
    if m is not None:
        configs.update(m.kwargs.get("configs", {}))
        for a in m.args:
            configs.update(a)
    return configs


@pytest.fixture
def broker_factory(weir_bin):
    """Start extra brokers: `broker_factory({"key": "value"})` -> started Broker."""
    f = BrokerFactory(weir_bin)
    yield f
    f.cleanup()


@pytest.fixture
def broker(weir_bin, request):
    """A fresh broker per test. Extra configs via
    `@pytest.mark.broker_config({"log.cleaner.backoff.ms": "200"})`."""
    f = BrokerFactory(weir_bin)
    try:
        b = f(_marker_configs(request))
        yield b
    finally:
        f.cleanup()


@pytest.fixture(scope="module")
def module_broker(weir_bin, request):
    """One broker shared by a module's tests (module-level `BROKER_CONFIGS` dict adds configs)."""
    f = BrokerFactory(weir_bin)
    try:
        b = f(getattr(request.module, "BROKER_CONFIGS", {}))
        yield b
    finally:
        f.cleanup()


def pytest_configure(config):
    config.addinivalue_line("markers", "broker_config(dict): extra --config flags for the `broker` fixture")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for b in list(_ACTIVE_BROKERS):
            report.sections.append(("weir broker %s stderr" % b.bootstrap, b.stderr_tail(80)))
