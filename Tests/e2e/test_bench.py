"""socketio-bench against the real server (--profile bench) and the python-socketio peer."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from conftest import BINARY, ROOT, Server

BENCH = os.environ.get("SOCKETIO_BENCH_BIN", os.path.join(os.path.dirname(BINARY), "socketio-bench"))
PEER = os.path.join(ROOT, "scripts", "bench", "python_peer.py")


def run_bench(port, scenario, *args, pid=None, timeout=90):
    cmd = [BENCH, scenario, "--port", str(port), "--quiet", *map(str, args)]
    if pid:
        cmd += ["--server-pid", str(pid)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    result = json.loads(lines[-1]) if lines else None
    return out, result


@pytest.fixture
def bench_server():
    server = Server(["--profile", "bench"]).start()
    yield server
    server.stop()


@pytest.fixture
def python_peer():
    proc = subprocess.Popen([sys.executable, PEER, "--port", "0"], stderr=subprocess.PIPE, text=True)
    port = []
    ready = threading.Event()

    def pump():
        for line in proc.stderr:
            if "listening on" in line and not port:
                port.append(int(line.rsplit(":", 1)[1]))
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    assert ready.wait(30), "python peer did not start"
    yield proc, port[0]
    proc.terminate()
    proc.wait(10)


def test_echo_counts_acks_latency_and_server_cpu(bench_server):
    out, r = run_bench(bench_server.port, "echo", "-c", 5, "-w", 4, "-b", 64, "-d", 1, "--warmup", 0.2,
                       pid=bench_server.proc.pid)
    assert out.returncode == 0, out.stdout + out.stderr
    assert r["scenario"] == "echo" and r["transport"] == "websocket"
    assert r["connected"] == 5 and r["errors"] == 0 and r["mismatches"] == 0
    assert r["operations"] > 50
    assert 0 < r["latency"]["p50"] <= r["latency"]["p99"] <= r["latency"]["max"]
    assert r["server_cpu_s"] is not None and r["server_cpu_us_per_op"] > 0
    assert "echoes" in out.stdout and "latency µs" in out.stdout


def test_polling_echo(bench_server):
    out, r = run_bench(bench_server.port, "polling", "-c", 4, "-w", 3, "-d", 1, "--warmup", 0.2)
    assert out.returncode == 0, out.stdout + out.stderr
    assert r["transport"] == "polling" and r["operations"] > 20 and r["errors"] == 0


def test_deflate_negotiates_and_inflates_compressed_messages(bench_server):
    # 3 000-byte echoes: the server compresses its acks (above its 1 024-byte threshold), so every
    # acknowledgement compared equal had been inflated.
    out, r = run_bench(bench_server.port, "echo", "--deflate", "-c", 3, "-w", 2, "-b", 3000, "-d", 1,
                       "--warmup", 0.2)
    assert out.returncode == 0, out.stdout + out.stderr
    assert r["deflate"] is True and r["operations"] > 10 and r["errors"] == 0 and r["mismatches"] == 0
    assert "with permessage-deflate" in out.stdout
    out, r = run_bench(bench_server.port, "fanout", "--deflate", "-c", 5, "-b", 2000, "-d", 1, "--warmup", 0.2)
    assert out.returncode == 0, out.stdout + out.stderr
    assert r["broadcasts"] > 0 and r["missing"] == 0 and r["errors"] == 0
    out, r = run_bench(bench_server.port, "echo", "-c", 2, "-d", 0.5, "--warmup", 0)
    assert out.returncode == 0 and r["deflate"] is False


def test_deflate_declined_is_a_setup_failure():
    server = Server(["--profile", "bench", "--no-deflate"]).start()
    try:
        out, r = run_bench(server.port, "echo", "--deflate", "-c", 2, "-d", 1, "--setup-timeout", 5)
        assert out.returncode == 2, out.stdout + out.stderr
        assert r["setup_failed"] is True
        assert "declined permessage-deflate" in r["first_errors"][0]
    finally:
        server.stop()


def test_fanout_delivers_every_broadcast_to_every_member(bench_server):
    out, r = run_bench(bench_server.port, "fanout", "-c", 20, "-d", 1, "--warmup", 0.2)
    assert out.returncode == 0, out.stdout + out.stderr
    assert r["broadcasts"] > 0 and r["missing"] == 0
    assert r["deliveries"] == r["broadcasts"] * 20 == r["operations"]
    # A paced run sends about the asked rate.
    out, r = run_bench(bench_server.port, "fanout", "-c", 10, "--rate", 50, "-d", 1, "--warmup", 0.2)
    assert out.returncode == 0, out.stdout + out.stderr
    assert 35 <= r["broadcasts_per_s"] <= 65 and r["missing"] == 0


def test_connect_is_bounded_by_count(bench_server):
    out, r = run_bench(bench_server.port, "connect", "--connections", 30, "--concurrency", 4, "-d", 1.5,
                       "--warmup", 0)
    assert out.returncode == 0, out.stdout + out.stderr
    assert r["operations"] == 30 and r["errors"] == 0
    assert r["latency"]["count"] == 30


def tcp_resets_sent():
    """The host's count of TCP segments sent with RST (loopback included)."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("OutRsts")])


def test_connect_closes_like_a_browser(bench_server):
    """Each measured connection ends with a close frame and then waits for the server to close
    the TCP connection (RFC 6455 §7.1.1), as browsers and the official clients do: closing at once
    made every server reply meet a closed socket and answer it with a reset."""
    before = tcp_resets_sent()
    out, r = run_bench(bench_server.port, "connect", "--connections", 200, "--concurrency", 8, "-d", 5,
                       "--warmup", 0)
    resets = tcp_resets_sent() - before
    assert out.returncode == 0, out.stdout + out.stderr
    assert r["operations"] == 200 and r["errors"] == 0, r
    assert resets < 20, f"{resets} resets for 200 connections"


def test_connect_close_waits_for_the_server_then_gives_up():
    """Against a raw server: the client keeps its end open after its close frame (until the
    server's reply and FIN), and closes by itself 2 s after the close frame when the server never
    answers. The second connection's CONNECT is held back 3 s so that the run lasts that long."""
    import socket
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(20)
    port = listener.getsockname()[1]
    seen = {}

    def frame(text):
        data = text.encode()
        return bytes([0x81, len(data)]) + data

    def read_frame(conn):
        head = conn.recv(2, socket.MSG_WAITALL)
        length = head[1] & 0x7F
        body = conn.recv(4 + length, socket.MSG_WAITALL)
        mask, payload = body[:4], body[4:]
        return head[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    def serve():
        conns = []
        for index in range(2):
            conn, _ = listener.accept()
            conn.settimeout(10)
            conns.append(conn)
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
            conn.sendall(frame('0{"sid":"s%d","upgrades":[],"pingInterval":25000,"pingTimeout":20000,'
                               '"maxPayload":1000000}' % index))
            assert read_frame(conn) == (1, b"40")
            if index == 1:
                time.sleep(3)
            conn.sendall(frame('40{"sid":"n%d"}' % index))
            if index == 0:
                assert read_frame(conn)[0] == 8  # the client's close frame
                closed_at = time.monotonic()
                conn.settimeout(0.5)
                try:
                    seen["early"] = conn.recv(1)  # b"" would be the client's FIN
                except socket.timeout:
                    seen["early"] = None
                conn.settimeout(10)
                seen["eof"] = conn.recv(1)  # no reply from us: the client gives up by itself
                seen["waited"] = time.monotonic() - closed_at
        if read_frame(conns[1])[0] == 8:
            conns[1].sendall(bytes([0x88, 2, 0x03, 0xE8]))
        for conn in conns:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    out, r = run_bench(port, "connect", "--connections", 2, "--concurrency", 1, "-d", 10, "--warmup", 0)
    thread.join(20)
    listener.close()
    assert out.returncode == 0, out.stdout + out.stderr
    assert r["operations"] == 2 and r["errors"] == 0, r
    assert seen["early"] is None, "the client closed its end right after its close frame"
    assert seen["eof"] == b"" and 1.5 <= seen["waited"] <= 2.9, seen


def test_connect_over_polling_then_upgrade(bench_server, python_peer):
    """--upgrade: each polling connection upgrades to WebSocket (probe, then upgrade packet) before
    it counts, against our server and the python peer; only with the connect scenario over
    polling."""
    for port in (bench_server.port, python_peer[1]):
        out, r = run_bench(port, "connect", "--transport", "polling", "--upgrade", "--connections", 20,
                           "--concurrency", 4, "-d", 3, "--warmup", 0)
        assert out.returncode == 0, out.stdout + out.stderr
        assert r["upgrade"] is True and r["transport"] == "polling"
        assert r["operations"] == 20 and r["errors"] == 0, r
        assert "then upgraded to websocket" in out.stdout
    out, _ = run_bench(bench_server.port, "connect", "--upgrade")
    assert out.returncode == 64 and "--upgrade" in out.stderr
    out, _ = run_bench(bench_server.port, "echo", "--transport", "polling", "--upgrade")
    assert out.returncode == 64


def test_connect_while_holding_clients(bench_server):
    """--hold: that many clients connect first and stay connected (answering heartbeats) while
    the measured connections come and go; only with the connect scenario."""
    out, r = run_bench(bench_server.port, "connect", "--hold", 300, "--connections", 30, "--concurrency", 4,
                       "-d", 2, "--warmup", 0, "--source-addresses", 4)
    assert out.returncode == 0, out.stdout + out.stderr
    assert r["hold"] == 300 and r["connected"] == 300 and r["open_at_end"] == 300, r
    assert r["operations"] == 30 and r["errors"] == 0, r
    assert "300 clients open throughout" in out.stdout
    out, _ = run_bench(bench_server.port, "echo", "--hold", 10)
    assert out.returncode == 64 and "--hold" in out.stderr


def test_idle_holds_connections_and_reports_rss(bench_server):
    out, r = run_bench(bench_server.port, "idle", "-c", 200, "-d", 1, "--warmup", 0.2, "--source-addresses", 4,
                       pid=bench_server.proc.pid)
    assert out.returncode == 0, out.stdout + out.stderr
    assert r["connected"] == 200 and r["open_at_end"] == 200 and r["errors"] == 0
    assert r["server_rss_kib_per_connection"] is not None


def test_targets_the_python_socketio_peer(python_peer):
    _, port = python_peer
    out, r = run_bench(port, "echo", "-c", 3, "-w", 2, "-d", 1, "--warmup", 0.2)
    assert out.returncode == 0, out.stdout + out.stderr
    assert r["operations"] > 10 and r["mismatches"] == 0
    out, r = run_bench(port, "fanout", "-c", 5, "-d", 1, "--warmup", 0.2)
    assert out.returncode == 0, out.stdout + out.stderr
    assert r["broadcasts"] > 0 and r["missing"] == 0


def test_refuses_non_loopback_targets_and_bad_options():
    out, _ = run_bench(3000, "echo", "--host", "10.1.2.3")
    assert out.returncode == 64 and "loopback" in out.stderr
    out, _ = run_bench(3000, "echo", "--host", "example.com")
    assert out.returncode == 64
    out, _ = run_bench(3000, "bogus")
    assert out.returncode == 64 and "unknown scenario" in out.stderr
    out, _ = run_bench(3000, "echo", "-c", 0)
    assert out.returncode == 64


def test_unreachable_server_is_a_setup_failure():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    out, r = run_bench(port, "echo", "-c", 3, "-d", 1, "--setup-timeout", 5)
    assert out.returncode == 2, out.stdout + out.stderr
    assert r["setup_failed"] is True and r["errors"] >= 1
    assert "connect failed" in r["first_errors"][0]


def test_a_server_that_dies_mid_run_is_reported(bench_server):
    proc = subprocess.Popen([BENCH, "idle", "--port", str(bench_server.port), "-c", "20", "-d", "4", "--warmup", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The first progress line comes once all 20 are connected and the measured window runs.
    deadline = time.monotonic() + 30
    for line in proc.stderr:
        if line.startswith("[idle ") and "open 20" in line:
            break
        assert time.monotonic() < deadline, "no progress line"
    bench_server.proc.kill()
    stdout, _ = proc.communicate(timeout=30)
    r = json.loads([l for l in stdout.splitlines() if l.startswith("{")][-1])
    assert proc.returncode == 1
    assert r["errors"] == 20 and r["open_at_end"] == 0
