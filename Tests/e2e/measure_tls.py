"""Measures what TLS costs (not part of the test suite; run by hand against a release build):
server CPU per full handshake, handshakes per second from one client, and server CPU per echoed
WebSocket message over wss compared with ws.

    python3 Tests/e2e/measure_tls.py [BINARY] [HANDSHAKES] [MESSAGES]
"""

import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conftest  # noqa: E402
from conftest import Server  # noqa: E402

BINARY = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".build/release/socketio-server")
HANDSHAKES = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
MESSAGES = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
conftest.BINARY = BINARY
TICKS = os.sysconf("SC_CLK_TCK")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICKS


async def echo_cpu(server, scheme, ctx):
    import websockets

    payload = "4" + json.dumps({"items": [{"user": f"u{i}", "text": "hello there " * 3} for i in range(40)]})
    async with websockets.connect(f"{scheme}://localhost:{server.port}/engine.io/?EIO=4&transport=websocket",
                                  ssl=ctx, compression=None, max_size=2**24) as ws:
        await ws.recv()
        for _ in range(200):
            await ws.send(payload)
            await ws.recv()
        c0 = cpu(server.proc.pid)
        window = asyncio.Semaphore(200)  # at most 200 in flight: a reading client, not a flood

        async def sender():
            for _ in range(MESSAGES):
                await window.acquire()
                await ws.send(payload)
        task = asyncio.create_task(sender())
        for _ in range(MESSAGES):
            await ws.recv()
            window.release()
        await task
        return (cpu(server.proc.pid) - c0) / MESSAGES * 1e6, len(payload)


def main():
    certs = subprocess.run(["bash", os.path.join(ROOT, "Fixtures/tls/generate.sh")], capture_output=True, text=True,
                           check=True).stdout.strip()
    base = ["--profile", "engineio-echo", "--host", "127.0.0.1", "--path", "/engine.io/", "--no-deflate"]
    tls = base + ["--tls-cert", f"{certs}/server.pem", "--tls-key", f"{certs}/server.key"]
    ctx = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    server = Server(tls).start()
    try:
        c0, t0 = cpu(server.proc.pid), time.monotonic()
        for _ in range(HANDSHAKES):
            with socket.create_connection(("127.0.0.1", server.port)) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    s.do_handshake()
        wall = time.monotonic() - t0
        handshake_cpu = (cpu(server.proc.pid) - c0) / HANDSHAKES * 1e6
        wss_cpu, size = asyncio.run(echo_cpu(server, "wss", ctx))
    finally:
        server.stop()
    plain = Server(base).start()
    try:
        ws_cpu, _ = asyncio.run(echo_cpu(plain, "ws", None))
    finally:
        plain.stop()
    print(json.dumps({"handshakes": HANDSHAKES, "server_cpu_us_per_handshake": round(handshake_cpu, 1),
                      "handshakes_per_second_one_client": round(HANDSHAKES / wall), "message_bytes": size,
                      "server_cpu_us_per_echo_ws": round(ws_cpu, 1), "server_cpu_us_per_echo_wss": round(wss_cpu, 1),
                      "tls": "TLSv1.3, RSA 2048, X25519, AES-128-GCM"}))


main()
