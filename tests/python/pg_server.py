"""A private PostgreSQL server for tests: initdb in a temp dir, the server on
a free 127.0.0.1 port (as the `postgres` user when run as root: initdb
refuses root), stopped by the PID it started. SQL goes through `psql`."""

import glob
import os
import shutil
import signal
import subprocess
import tempfile

from conftest import free_port, wait_until


def bin_dir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def _as_user():
    if os.geteuid() != 0:
        return None, []
    user = "postgres"
    if subprocess.run(["id", user], capture_output=True).returncode != 0:
        user = "nobody"
    # setpriv execs: the PID we keep is the server's own.
    return user, ["setpriv", "--reuid=" + user, "--regid=" + user, "--init-groups", "--"]


class PgServer:
    def __init__(self):
        self.bin = bin_dir()
        assert self.bin, ("PostgreSQL's server binaries are missing (/usr/lib/postgresql/*/bin/initdb):"
                          " apt-get install postgresql (scripts/test.sh does)")
        self.dir = tempfile.mkdtemp(prefix="weir-pg-")
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        return "postgresql://postgres@127.0.0.1:%d/postgres" % self.port

    def start(self):
        user, prefix = _as_user()
        if user:
            subprocess.run(["chown", "-R", user, self.dir], check=True)
        data = os.path.join(self.dir, "data")
        out = subprocess.run(prefix + [os.path.join(self.bin, "initdb"), "-U", "postgres",
                                       "--auth=trust", "-E", "UTF8", "--no-sync", "-D", data],
                             capture_output=True, text=True)
        assert out.returncode == 0, "initdb: %s%s" % (out.stdout, out.stderr)
        log = open(os.path.join(self.dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            prefix + [os.path.join(self.bin, "postgres"), "-D", data, "-k", self.dir,
                      "-p", str(self.port), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("postgres exited with %s:\n%s" % (self.proc.returncode, self.log()))
            return subprocess.run(self._psql("SELECT 1"), capture_output=True).returncode == 0
        wait_until(ready, 60, "PostgreSQL on port %d" % self.port, interval=0.2)
        return self

    def _psql(self, sql):
        return [os.path.join(self.bin, "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                "-c", sql]

    def sql(self, sql):
        """Runs SQL; returns the rows as lists of text fields ('|' separated by psql)."""
        out = subprocess.run(self._psql(sql), capture_output=True, text=True)
        assert out.returncode == 0, "psql %r: %s" % (sql, out.stderr)
        return [line.split("|") for line in out.stdout.splitlines() if line]

    def log(self):
        try:
            with open(os.path.join(self.dir, "server.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return "(no log)"

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
