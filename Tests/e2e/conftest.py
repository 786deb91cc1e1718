"""pytest fixtures: start the real socketio-server binary on 127.0.0.1 with a free port."""

import os
import re
import subprocess
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("SOCKETIO_SERVER_BIN", os.path.join(ROOT, ".build", "debug", "socketio-server"))


class Server:
    def __init__(self, args, prefix=()):
        self.args = args
        self.prefix = list(prefix)
        self.proc = None
        self.port = None
        self.stderr_lines = []

    def start(self, timeout=20):
        self.proc = subprocess.Popen(
            [*self.prefix, BINARY, *self.args, "--port", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        found = threading.Event()

        def pump():
            for line in self.proc.stderr:
                self.stderr_lines.append(line)
                m = re.search(r"listening on https?://[^:]+:(\d+)", line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    found.set()

        threading.Thread(target=pump, daemon=True).start()
        if not found.wait(timeout):
            self.stop()
            raise RuntimeError("server did not start: " + "".join(self.stderr_lines))
        return self

    def wait_for_log(self, pattern, timeout=10):
        """Waits until a stderr line matches `pattern` (a regex); returns the match."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            lines = self.stderr_lines[seen:]
            for line in lines:
                m = re.search(pattern, line)
                if m:
                    return m
            seen += len(lines)
            time.sleep(0.01)
        raise TimeoutError(f"no log line matching {pattern!r}")

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def event_loop_threads(self):
        """The number of NIO event loop threads (named NIO-ELT-…)."""
        count = 0
        for task in os.listdir(f"/proc/{self.proc.pid}/task"):
            with open(f"/proc/{self.proc.pid}/task/{task}/comm") as f:
                count += f.read().startswith("NIO-ELT")
        return count

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=None, timeout=15):
        if self.proc and self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="session")
def conformance_server():
    server = Server(["--profile", "conformance"]).start()
    yield server
    assert server.alive(), "server died during the tests:\n" + "".join(server.stderr_lines[-50:])
    server.stop()


@pytest.fixture
def start_server():
    started = []

    def start(*args, prefix=()):
        server = Server(list(args), prefix=prefix).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
