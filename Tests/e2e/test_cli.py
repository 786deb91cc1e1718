"""The executable's command line: help, validation, and the options of the default profile."""

import asyncio
import os
import signal
import subprocess
import time

import rawclient
from conftest import BINARY


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_help_lists_profiles_and_options():
    out = subprocess.run([BINARY, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for word in ["--profile", "conformance", "--port", "--path", "--cors-origin", "--ping-interval", "--max-payload",
                 "--transports", "--cookie", "--max-sessions", "--request-header-timeout", "SIGTERM",
                 "engineio-echo", "--connect-timeout", "--ack-timeout", "--max-attachments", "--threads"]:
        assert word in out.stdout, word


def test_invalid_options_are_refused():
    for args in (["--transports", "pigeon"], ["--path", "no-slash"], ["--port", "70000"], ["--log-level", "loud"],
                 ["--threads", "0"]):
        out = subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=30)
        assert out.returncode != 0, args
        assert "Error" in out.stderr, out.stderr


def test_default_profile_options(start_server):
    server = start_server("--host", "127.0.0.1", "--path", "/rt", "--transports", "websocket", "--cookie",
                          "--cors-origin", "http://a.test", "--ping-interval", "1234", "--max-payload", "5000")

    async def main():
        r = await rawclient.http(server.port, "GET", "/rt/?EIO=4&transport=polling")
        assert r.status == 400 and '"code":0' in r.text
        ws = rawclient.WebSocket(server.port)
        assert await ws.connect("/rt/?EIO=4&transport=websocket", {"Origin": "http://a.test"}) == 101
        opened = await ws.recv()
        sid = opened.split('"sid":"')[1].split('"')[0]
        assert ws.response.header("set-cookie") == f"io={sid}; Path=/; HttpOnly; SameSite=Lax"
        assert '"pingInterval":1234' in opened and '"maxPayload":5000' in opened and '"upgrades":[]' in opened
        ws.close()
        page = await rawclient.http(server.port, "GET", "/")
        assert page.status == 200 and "socketio-server" in page.text and "Pick a nickname" in page.text
        head = await rawclient.http(server.port, "HEAD", "/")
        assert head.status == 200 and head.body == b"" and int(head.header("content-length")) > 0

    run(main())


def test_cookie_and_cors_on_polling(start_server):
    server = start_server("--host", "127.0.0.1", "--cookie", "--cors-origin", "http://a.test", "--cors-credentials")

    async def main():
        r = await rawclient.http(server.port, "GET", "/socket.io/?EIO=4&transport=polling", headers={"Origin": "http://a.test"})
        assert r.status == 200
        sid = r.text.split('"sid":"')[1].split('"')[0]
        assert r.header("set-cookie") == f"io={sid}; Path=/; HttpOnly; SameSite=Lax"
        assert r.header("access-control-allow-origin") == "http://a.test"
        assert r.header("access-control-allow-credentials") == "true"

    run(main())


def test_graceful_shutdown_closes_sessions_with_a_close_packet(start_server):
    for sig in (signal.SIGTERM, signal.SIGINT):
        server = start_server("--profile", "demo", "--host", "127.0.0.1", "--log-level", "trace")

        async def main():
            info = await rawclient.polling_handshake(server.port, "/socket.io/")
            poll = asyncio.create_task(
                rawclient.http(server.port, "GET", f"/socket.io/?EIO=4&transport=polling&sid={info['sid']}", timeout=10)
            )
            ws = rawclient.WebSocket(server.port)
            assert await ws.connect("/socket.io/?EIO=4&transport=websocket") == 101
            assert (await ws.recv()).startswith("0{")
            ws.send_text("40")
            assert (await ws.recv()).startswith('40{"sid":')
            assert await ws.recv() == '42["auth",{}]'
            # Both sessions are live; wait until the server has parked the long-poll.
            await asyncio.to_thread(server.wait_for_log, rf"sid={info['sid']}.*long-poll held")
            started = time.monotonic()
            server.proc.send_signal(sig)
            assert await ws.recv() == "1"
            assert await ws.recv() == ("close", 1001)
            r = await poll
            assert (r.status, r.text) == (200, "1")
            return started

        started = run(main())
        assert server.proc.wait(10) == 0
        assert time.monotonic() - started < 6


def test_bench_profile(start_server):
    server = start_server("--profile", "bench", "--host", "127.0.0.1")

    async def main():
        clients = []
        for _ in range(3):
            ws = rawclient.WebSocket(server.port)
            assert await ws.connect("/socket.io/?EIO=4&transport=websocket") == 101
            assert (await ws.recv()).startswith("0{")
            ws.send_text("40")
            assert (await ws.recv()).startswith('40{"sid":')
            clients.append(ws)
        a, b, c = clients
        a.send_text('421["echo",1,"x",{"k":[true]}]')
        assert await a.recv(skip_pings=True) == '431[1,"x",{"k":[true]}]'
        for ws in (a, b):
            ws.send_text('422["join","r"]')
            assert await ws.recv(skip_pings=True) == "432[true]"
        a.send_text('423["broadcast","r",{"n":5}]')
        received = [await a.recv(skip_pings=True), await a.recv(skip_pings=True)]
        assert sorted(received) == sorted(['42["bcast",{"n":5}]', "433[true]"])
        assert await b.recv(skip_pings=True) == '42["bcast",{"n":5}]'
        c.send_text('424["echo"]')
        assert await c.recv(skip_pings=True) == "434[]", "c is not in the room: its next packet is its own ack"

    run(main())


async def bench_echo(port):
    """A Socket.IO connect and one acked echo over a raw WebSocket."""
    ws = rawclient.WebSocket(port)
    assert await ws.connect("/socket.io/?EIO=4&transport=websocket") == 101
    assert (await ws.recv()).startswith("0{")
    ws.send_text("40")
    assert (await ws.recv()).startswith('40{"sid":')
    ws.send_text('421["echo","hi"]')
    assert await ws.recv(skip_pings=True) == '431["hi"]'
    ws.close()


def test_event_loop_threads_follow_cpu_affinity(start_server):
    """One event loop per CPU the process may run on: `taskset -c 0` gives one (two loops on one
    core would only add wake-ups and context switches); --threads overrides it."""
    pinned = start_server("--profile", "bench", "--host", "127.0.0.1", prefix=["taskset", "-c", "0"])
    assert pinned.event_loop_threads() == 1
    run(bench_echo(pinned.port))
    chosen = start_server("--profile", "bench", "--host", "127.0.0.1", "--threads", "3")
    assert chosen.event_loop_threads() == 3
    run(bench_echo(chosen.port))
    default = start_server("--profile", "bench", "--host", "127.0.0.1")
    assert default.event_loop_threads() == min(len(os.sched_getaffinity(0)), os.cpu_count())


def test_serves_as_an_unprivileged_user(start_server):
    """Connections work without root: no socket option that needs privileges (SO_DEBUG, which
    a misspelt TCP_NODELAY once set, failed every accepted connection for other users)."""
    if os.geteuid() != 0:
        # The whole suite already runs unprivileged.
        return run(bench_echo(start_server("--profile", "bench", "--host", "127.0.0.1").port))
    server = start_server("--profile", "bench", "--host", "127.0.0.1",
                          prefix=["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"])
    with open(f"/proc/{server.proc.pid}/status") as f:
        uid_line = next(line for line in f if line.startswith("Uid:"))
    assert uid_line.split()[1] == "65534", uid_line
    run(bench_echo(server.port))
