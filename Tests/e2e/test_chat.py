"""The chat app of the default profile: two headless Chromium pages and one Node client chat in a
room through the real UI (typing into fields and clicking buttons); then the page state is
checked, and a screenshot is kept. Also the chat protocol's edge cases with python-socketio."""

import json
import os
import subprocess
import threading
import urllib.parse

import pytest

from conftest import ROOT, Server
from test_realclients import ARTIFACTS, HERE, RC, bundle, node_env  # noqa: F401  (fixture)


@pytest.fixture
def chat_server(bundle):
    server = Server(["--host", "127.0.0.1", "--client-bundle", bundle]).start()
    yield server
    assert server.alive(), "".join(server.stderr_lines[-40:])
    server.stop()


def page(server, **params):
    return f"http://127.0.0.1:{server.port}/?" + urllib.parse.urlencode(dict(autotest=1, room="lobby", **params))


def browser(url, name, results):
    os.makedirs(ARTIFACTS, exist_ok=True)
    out_json = os.path.join(ARTIFACTS, f"chat-{name}.json")
    png = os.path.join(ARTIFACTS, f"chat-{name}.png")
    proc = subprocess.run(["python3", os.path.join(RC, "browser-run.py"), url, "--out", out_json, "--screenshot", png,
                           "--window", "1280x720", "--timeout", "90"], capture_output=True, text=True, timeout=150)
    results[name] = (proc.returncode, proc.stderr[-2000:], json.load(open(out_json)) if os.path.exists(out_json) else None, png)


def test_two_browsers_and_a_node_client_chat_through_the_ui(chat_server):
    carol = subprocess.Popen(["node", os.path.join(HERE, "js", "chat-peer.js"), f"http://127.0.0.1:{chat_server.port}",
                              "carol", "lobby", "alice,bob"], env=node_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        # Carol leaves a message in the room's history before the browsers arrive.
        assert carol.stdout.readline().strip() == "READY"
        results = {}
        threads = [
            threading.Thread(target=browser, args=(page(chat_server, name="alice", expect="bob,carol",
                                                        say="hello from alice", dm="bob:psst bob", expectdm="bob"),
                                                   "alice", results)),
            threading.Thread(target=browser, args=(page(chat_server, name="bob", expect="alice,carol",
                                                        say="hello from bob", dm="alice:psst alice",
                                                        expectdm="alice"), "bob", results)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(160)
        out, _ = carol.communicate(timeout=60)
    finally:
        if carol.poll() is None:
            carol.kill()
    carol_result = json.loads([l for l in out.splitlines() if l.startswith("RESULT ")][-1][7:])
    assert carol_result["ok"], carol_result
    assert {m["from"] for m in carol_result["seen"]["messages"]} >= {"alice", "bob", "carol"}
    assert {"alice", "bob"} <= set(carol_result["seen"]["typing"]), "typing indicators reach other clients"
    for me, other in (("alice", "bob"), ("bob", "alice")):
        rc, err, state, png = results[me]
        assert rc == 0 and state and state["ok"], (me, rc, err, state)
        texts = {(m["from"], m["text"], m["history"]) for m in state["messages"]}
        # History replayed on join, then live messages from the other browser, the Node client and me.
        assert ("carol", "carol was here first", True) in texts
        assert ("carol", "hello from carol", False) in texts
        assert (other, f"hello from {other}", False) in texts
        assert (me, f"hello from {me}", False) in texts
        assert state["status"] == "connected via websocket"
        assert me in state["members"] and other in state["members"]
        assert f"{other} is typing…" in state["typingSeen"]
        assert any(d.startswith(f"from {other}") and d.endswith(f"psst {me}") for d in state["dms"]), state["dms"]
        assert any(d.startswith(f"to {other}") and d.endswith(f"psst {other}") for d in state["dms"]), state["dms"]
        assert os.path.getsize(png) > 20_000


def test_chat_protocol_edge_cases(chat_server):
    import socketio

    url = f"http://127.0.0.1:{chat_server.port}"
    def refused(auth):
        client = socketio.Client(reconnection=False)
        errors = []
        client.on("connect_error", lambda data: errors.append(data))
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect(url, auth=auth, wait_timeout=10)
        return errors

    assert refused({"name": "   "}) == [{"message": "pick a nickname", "data": {"field": "name"}}]
    assert refused({}) == [{"message": "pick a nickname", "data": {"field": "name"}}]
    # A newer connection with a name takes it over; the older socket is disconnected by the server.
    old = socketio.Client(reconnection=False)
    kicked = threading.Event()
    old.on("disconnect", lambda *args: kicked.set())
    old.connect(url, auth={"name": "dana"}, wait_timeout=10)
    dana = socketio.Client(reconnection=False)
    dana.connect(url, auth={"name": "dana"}, transports=["polling"], wait_timeout=10)
    assert kicked.wait(10)
    assert dana.call("users", timeout=10).count("dana") == 1
    joined = dana.call("join", "r1", timeout=10)
    assert joined["room"] == "r1" and joined["members"] == ["dana"] and joined["history"] == []
    for i in range(55):
        dana.call("message", {"room": "r1", "text": f"m{i}"}, timeout=10)
    again = dana.call("join", "r1", timeout=10)
    assert [m["text"] for m in again["history"]] == [f"m{i}" for i in range(5, 55)], "the last 50 are kept"
    assert dana.call("dm", {"to": "nobody", "text": "hi"}, timeout=10) == {"ok": False, "error": "no such user"}
    assert dana.call("leave", "r1", timeout=10) is True
    # The replaced socket's disconnect did not release the name of the new holder.
    assert "dana" in dana.call("users", timeout=10)
    dana.disconnect()


def test_chat_page_uses_the_cdn_without_a_bundle(start_server):
    server = start_server("--host", "127.0.0.1")
    import urllib.request

    html = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=10).read().decode()
    assert '<script src="https://cdn.socket.io/4.8.1/socket.io.min.js"></script>' in html
    assert "__SOCKET_IO_CLIENT__" not in html
