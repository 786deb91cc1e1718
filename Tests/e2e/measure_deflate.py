"""Measures what permessage-deflate costs (not part of the test suite; run by hand, release build):
RSS per idle WebSocket connection with and without deflate, and server CPU per echoed message.

    python3 Tests/e2e/measure_deflate.py [BINARY] [CONNECTIONS] [MESSAGES]
"""

import asyncio
import json
import os
import resource
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rawclient  # noqa: E402
from conftest import Server  # noqa: E402

BINARY = sys.argv[1] if len(sys.argv) > 1 else ".build/release/socketio-server"
CONNECTIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
MESSAGES = int(sys.argv[3]) if len(sys.argv) > 3 else 20_000
os.environ["SOCKETIO_SERVER_BIN"] = os.path.abspath(BINARY)
resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def deflate(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


async def connect(port, use_deflate):
    ws = rawclient.WebSocket(port)
    headers = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"} if use_deflate else {}
    assert await ws.connect("/engine.io/?EIO=4&transport=websocket", headers, timeout=30) == 101
    await ws.recv_frame(30)
    return ws


async def measure(use_deflate):
    import conftest
    conftest.BINARY = os.environ["SOCKETIO_SERVER_BIN"]
    args = ["--profile", "engineio-echo", "--host", "127.0.0.1", "--path", "/engine.io/", "--ping-interval", "600000",
            "--max-sessions", "100000"]
    server = Server(args + ([] if use_deflate else ["--no-deflate"])).start()
    try:
        message = json.dumps({"type": "chat", "room": "lobby", "items": [{"user": f"u{i}", "text": "hello there " * 3} for i in range(40)]})
        payload = ("4" + message).encode()
        wire = deflate(payload) if use_deflate else payload
        # Warm up, then CPU per echoed message on one connection.
        ws = await connect(server.port, use_deflate)
        for _ in range(200):
            ws.send_frame(rawclient.OP_TEXT, wire, rsv=4 if use_deflate else 0)
            await ws.recv_frame()
        cpu0 = cpu_seconds(server.proc.pid)
        for i in range(MESSAGES):
            ws.send_frame(rawclient.OP_TEXT, wire, rsv=4 if use_deflate else 0)
            if i % 50 == 49:
                await ws.writer.drain()
        for _ in range(MESSAGES):
            opcode, body = await ws.recv_frame(60)
        cpu = (cpu_seconds(server.proc.pid) - cpu0) / MESSAGES
        # RSS per idle connection: each connection sends one message, then idles.
        base = server.rss_kib()
        sockets = []
        for i in range(CONNECTIONS):
            s = await connect(server.port, use_deflate)
            s.send_frame(rawclient.OP_TEXT, wire, rsv=4 if use_deflate else 0)
            await s.recv_frame(30)
            sockets.append(s)
        rss = server.rss_kib()
        for s in sockets:
            s.close()
        return {"deflate": use_deflate, "message_bytes": len(payload), "wire_bytes": len(wire),
                "server_cpu_us_per_echo": round(cpu * 1e6, 1), "connections": CONNECTIONS,
                "rss_kib_base": base, "rss_kib_with_connections": rss,
                "kib_per_idle_connection": round((rss - base) / CONNECTIONS, 2)}
    finally:
        server.stop()


async def main():
    for use_deflate in (False, True):
        print(json.dumps(await measure(use_deflate)), flush=True)


asyncio.run(main())
