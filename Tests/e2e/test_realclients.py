"""The official socket.io client (4.8.1, from a PyPI wheel via shared/realclients) in Node 20 and
in headless Chromium, and the python-socketio client, against the real server."""

import json
import os
import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import ROOT, Server

SHARED = os.environ.get("SHARED_DIR", os.path.join(os.path.dirname(ROOT), "shared"))
RC = os.path.join(SHARED, "realclients")
ARTIFACTS = os.path.join(ROOT, "artifacts")
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="session")
def bundle():
    path = os.environ.get("RC_BUNDLE")
    if not path:
        path = subprocess.run(["bash", os.path.join(RC, "fetch-client.sh"), "v4"], check=True,
                              capture_output=True, text=True, timeout=120).stdout.strip()
        os.environ["RC_BUNDLE"] = path
    assert os.path.isfile(path), path
    return path


@pytest.fixture(scope="session")
def interop(bundle):
    server = Server(["--profile", "interop", "--host", "127.0.0.1", "--static", RC,
                     "--client-bundle", bundle, "--log-level", "debug"]).start()
    yield server
    assert server.alive(), "".join(server.stderr_lines[-40:])
    server.stop()


def url(server):
    return f"http://127.0.0.1:{server.port}"


def node_env():
    env = dict(os.environ)
    env["SHARED_DIR"] = SHARED
    return env


NODE_MODES = {
    "websocket": ["--transports", "websocket", "--expect-transport", "websocket"],
    "polling": ["--transports", "polling", "--expect-transport", "polling"],
    "upgrade": ["--expect-transport", "websocket"],
    "native-websocket": None,
}


@pytest.mark.parametrize("mode", list(NODE_MODES))
def test_node_client_suite(interop, bundle, mode):
    if mode == "native-websocket":
        cmd = ["node", "--experimental-websocket", "node-run.js", "--bundle", bundle, "--server", url(interop)]
        env = dict(node_env(), RC_WEBSOCKET="native")
    else:
        cmd = ["node", "node-run.js", "--bundle", bundle, "--server", url(interop), *NODE_MODES[mode]]
        env = node_env()
    seen = len(interop.stderr_lines)
    out = subprocess.run(cmd, cwd=RC, env=env, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["ok"] and result["passed"] == 13 and result["failed"] == 0, result
    if mode != "polling":
        # The client's WebSocket offered permessage-deflate and the server accepted (the suite's
        # 200 KB "large" check then travels compressed).
        assert any("permessage-deflate negotiated" in l for l in interop.stderr_lines[seen:]), mode


BROWSER_MODES = {
    "upgrade": ["--param", "expect=websocket"],
    "websocket": ["--param", "transports=websocket", "--param", "expect=websocket"],
    "polling": ["--param", "transports=polling", "--param", "expect=polling"],
}


def run_browser(args, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    result = os.path.join(ARTIFACTS, f"{name}.json")
    png = os.path.join(ARTIFACTS, f"{name}.png")
    out = subprocess.run(["python3", os.path.join(RC, "browser-run.py"), *args, "--out", result,
                          "--screenshot", png, "--timeout", "60"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    data = json.load(open(result))
    assert data["ok"], data
    assert os.path.getsize(png) > 10_000
    return data


@pytest.mark.parametrize("mode", list(BROWSER_MODES))
def test_chromium_cross_origin(interop, bundle, mode):
    seen = len(interop.stderr_lines)
    data = run_browser(["--serve", RC, "--serve", os.path.dirname(bundle), "suite.html",
                        "--param", f"server={url(interop)}", *BROWSER_MODES[mode]], f"chromium-{mode}")
    assert [c["name"] for c in data["checks"] if not c["ok"]] == []
    assert len(data["checks"]) == 13
    if mode != "polling":
        assert any("permessage-deflate negotiated" in l for l in interop.stderr_lines[seen:]), mode


def test_chromium_same_origin(interop):
    # The page, the suite and the client bundle all come from the Socket.IO server itself.
    page = f"{url(interop)}/static/suite.html?server={url(interop)}&client=/socket.io/socket.io.min.js"
    data = run_browser([page], "chromium-same-origin")
    assert len(data["checks"]) == 13 and all(c["ok"] for c in data["checks"])


def scenario(name, server, env_extra=None, timeout=60):
    env = dict(node_env(), **(env_extra or {}))
    return subprocess.Popen(["node", os.path.join(HERE, "js", "scenarios.js"), name, url(server)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, timeout=60):
    out, _ = proc.communicate(timeout=timeout)
    result = [l for l in out.splitlines() if l.startswith("RESULT ")]
    assert result, out[-3000:]
    data = json.loads(result[-1][7:])
    assert proc.returncode == 0 and data["ok"], out[-3000:]
    return data["detail"]


@pytest.mark.parametrize("name", ["refusal", "batch", "multiplex"])
def test_js_client_scenarios(interop, name):
    finish(scenario(name, interop))


@pytest.mark.parametrize("transports", ["websocket", "polling"])
def test_js_client_large_messages(interop, transports):
    detail = finish(scenario("large", interop, {"TRANSPORTS": transports}))
    assert detail["reason"] in ("transport close", "transport error")
    assert interop.alive()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_js_client_reconnects_after_server_restart(bundle):
    port = free_port()
    args = ["--profile", "interop", "--host", "127.0.0.1"]

    def start():
        srv = Server(args)
        srv.proc = subprocess.Popen([os.environ.get("SOCKETIO_SERVER_BIN", os.path.join(ROOT, ".build", "debug", "socketio-server")),
                                     *args, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = srv.proc.stderr.readline()
        while "listening on" not in line:
            assert line, "server did not start"
            line = srv.proc.stderr.readline()
        threading.Thread(target=lambda: srv.proc.stderr.read(), daemon=True).start()
        return srv

    first = start()
    proc = scenario("reconnect", type("S", (), {"port": port})())
    try:
        line = proc.stdout.readline()
        while '"event": "connect"' not in line.replace('":"', '": "') and '"event":"connect"' not in line:
            assert line, "client never connected"
            line = proc.stdout.readline()
        first.stop()
        second = start()
        try:
            detail = finish(proc)
            assert detail["connects"] == 2
        finally:
            second.stop()
    finally:
        if proc.poll() is None:
            proc.kill()


# --- python-socketio ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_python_socketio_client(interop, transport):
    import socketio

    events = {}
    ready = threading.Event()
    client = socketio.Client(reconnection=False)
    other = socketio.Client(reconnection=False)

    def waiter(name):
        events[name] = threading.Event()
        return events[name]

    received = {}

    @client.on("welcome")
    def welcome(data):
        received["welcome"] = data
        ready.set()

    @client.on("echo")
    def echo(*args):
        received["echo"] = args
        events["echo"].set()

    @client.on("server-ack")
    def server_ack(payload):
        return {"seen": payload}

    @client.on("server-ack-result")
    def server_ack_result(result):
        received["server-ack-result"] = result
        events["server-ack-result"].set()

    @client.on("message", namespace="/chat")
    def chat_message(msg):
        received["chat"] = msg
        events["chat"].set()

    @client.on("room-msg")
    def room_msg(msg):
        received["room-msg"] = msg
        events["room-msg"].set()

    @client.event
    def disconnect(*args):
        events.setdefault("disconnect", threading.Event()).set()

    client.connect(url(interop), auth={"user": "py"}, transports=[transport], namespaces=["/", "/chat"], wait_timeout=10)
    assert ready.wait(10)
    assert received["welcome"]["auth"] == {"user": "py"}
    assert received["welcome"]["nsp"] == "/"
    # Events, including binary.
    waiter("echo")
    client.emit("echo", ("text", 7, None, {"k": [1, 2]}, b"\x00\x01\xff"))
    assert events["echo"].wait(10)
    assert received["echo"] == ("text", 7, None, {"k": [1, 2]}, b"\x00\x01\xff")
    # Acks in both directions.
    assert client.call("ack", ("a", b"\x02"), timeout=10) == ("a", b"\x02")
    waiter("server-ack-result")
    client.emit("server-ack", {"n": 1})
    assert events["server-ack-result"].wait(10)
    assert received["server-ack-result"] == {"ok": True, "answer": {"seen": {"n": 1}}}
    # Namespaces.
    waiter("chat")
    assert client.call("message", {"user": "py", "text": "hi"}, namespace="/chat", timeout=10) is True
    assert events["chat"].wait(10)
    assert received["chat"]["user"] == "py" and received["chat"]["text"] == "hi" and received["chat"]["ts"] > 0
    # Rooms: the other client sends to a room this one joined.
    assert client.call("join", "pyroom", timeout=10) == "joined:pyroom"
    other.connect(url(interop), transports=[transport], wait_timeout=10)
    waiter("room-msg")
    assert other.call("to-room", ("pyroom", {"x": 1}), timeout=10) is True
    assert events["room-msg"].wait(10)
    assert received["room-msg"] == {"room": "pyroom", "payload": {"x": 1}}
    other.disconnect()
    # Server-side disconnect.
    events["disconnect"] = threading.Event()
    client.emit("disconnect-me")
    assert events["disconnect"].wait(10)
    client.disconnect()
