"""WebSocket permessage-deflate (RFC 7692) and long-polling HTTP compression, end to end."""

import asyncio
import json
import os
import re
import subprocess
import zlib

import pytest

import rawclient
from conftest import ROOT
from test_realclients import SHARED

ARTIFACTS = os.path.join(ROOT, "artifacts")


def raw_deflate(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def raw_inflate(data):
    return zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_autobahn_quick_against_the_websocket_echo_profile(start_server):
    server = start_server("--profile", "websocket-echo", "--host", "127.0.0.1")
    env = dict(os.environ, AUTOBAHN_OUT=os.path.join(ARTIFACTS, "autobahn"))
    out = subprocess.run(["bash", os.path.join(SHARED, "tools", "autobahn.sh"), str(server.port), "quick"],
                         capture_output=True, text=True, timeout=900, env=env)
    summary = [l for l in out.stdout.splitlines() + out.stderr.splitlines() if l.startswith("autobahn: ")]
    assert summary, out.stdout[-3000:] + out.stderr[-3000:]
    m = re.match(r"autobahn: (\d+) passed, (\d+) failed", summary[-1])
    assert m and int(m.group(2)) == 0 and int(m.group(1)) >= 290, summary[-1] + out.stdout[-2000:]
    assert server.alive()


async def deflate_session(port, path="/engine.io/?EIO=4&transport=websocket"):
    ws = rawclient.WebSocket(port)
    status = await ws.connect(path, {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"})
    assert status == 101
    ext = ws.response.header("sec-websocket-extensions")
    assert ext == "permessage-deflate; server_no_context_takeover; client_no_context_takeover", ext
    return ws


def test_compressed_messages_through_the_engineio_endpoint(start_server):
    server = start_server("--profile", "engineio-echo", "--host", "127.0.0.1", "--path", "/engine.io/")

    async def main():
        ws = await deflate_session(server.port)
        opcode, payload = await ws.recv_frame()
        assert payload.startswith(b"0{")  # the open packet is small: sent uncompressed
        text = ("4" + "compressible " * 2000).encode()
        compressed = raw_deflate(text)
        ws.send_frame(rawclient.OP_TEXT, compressed, rsv=4)  # RSV1
        head = await ws.reader.readexactly(2)
        assert head[0] & 0x40, "the echo of a large message comes back compressed (RSV1)"
        n = head[1] & 0x7F
        if n == 126:
            n = int.from_bytes(await ws.reader.readexactly(2), "big")
        body = await ws.reader.readexactly(n)
        assert len(body) < len(text) / 10
        assert raw_inflate(body) == text
        # A compressed message split over two frames (RSV1 on the first only).
        half = len(compressed) // 2
        ws.send_frame(rawclient.OP_TEXT, compressed[:half], fin=False, rsv=4)
        ws.send_frame(rawclient.OP_CONT, compressed[half:], fin=True)
        head = await ws.reader.readexactly(2)
        n = head[1] & 0x7F
        if n == 126:
            n = int.from_bytes(await ws.reader.readexactly(2), "big")
        assert raw_inflate(await ws.reader.readexactly(n)) == text
        # RSV1 on a continuation frame is a protocol error.
        ws.send_frame(rawclient.OP_TEXT, compressed[:half], fin=False, rsv=4)
        ws.send_frame(rawclient.OP_CONT, compressed[half:], fin=True, rsv=4)
        assert await ws.expect_closed() == 1002

    run(main())


def test_decompression_bomb_is_refused_and_the_server_stays_up(start_server):
    server = start_server("--profile", "engineio-echo", "--host", "127.0.0.1", "--path", "/engine.io/")

    async def main():
        ws = await deflate_session(server.port)
        await ws.recv_frame()
        bomb = raw_deflate(b"4" + b"\0" * 50_000_000)  # ~50 KB on the wire, 50 MB inflated
        assert len(bomb) < 100_000
        ws.send_frame(rawclient.OP_TEXT, bomb, rsv=4)
        assert await ws.expect_closed(10) == 1009
        ok = await deflate_session(server.port)
        assert (await ok.recv_frame())[1].startswith(b"0{")

    rss_before = server.rss_kib()
    run(main())
    assert server.alive()
    assert server.rss_kib() - rss_before < 32 * 1024, "the bomb was not inflated in full"


def test_python_websockets_client_negotiates_and_exchanges_large_messages(start_server):
    import websockets

    server = start_server("--profile", "websocket-echo", "--host", "127.0.0.1")

    async def main():
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/", compression="deflate", max_size=2**24) as ws:
            assert "permessage-deflate" in ws.response_headers["Sec-WebSocket-Extensions"]
            for size in (10, 5_000, 3_000_000):
                text = ("json-like payload %d " % size) * (size // 20 + 1)
                await ws.send(text)
                assert await ws.recv() == text
            await ws.send(os.urandom(100_000))
            assert len(await ws.recv()) == 100_000

    run(main())


def test_deflate_can_be_turned_off(start_server):
    server = start_server("--profile", "engineio-echo", "--host", "127.0.0.1", "--path", "/engine.io/", "--no-deflate")

    async def main():
        ws = rawclient.WebSocket(server.port)
        assert await ws.connect("/engine.io/?EIO=4&transport=websocket", {"Sec-WebSocket-Extensions": "permessage-deflate"}) == 101
        assert ws.response.header("sec-websocket-extensions") is None
        # Without the extension, RSV1 is a protocol error.
        await ws.recv_frame()
        ws.send_frame(rawclient.OP_TEXT, raw_deflate(b"4x" * 1000), rsv=4)
        assert await ws.expect_closed() == 1002

    run(main())


def test_polling_responses_are_compressed_per_accept_encoding(start_server):
    server = start_server("--profile", "engineio-echo", "--host", "127.0.0.1", "--path", "/engine.io/")

    async def main():
        info = await rawclient.polling_handshake(server.port)
        path = f"/engine.io/?EIO=4&transport=polling&sid={info['sid']}"
        big = "4" + "abc" * 2000
        for coding, decode in (("gzip", lambda b: zlib.decompress(b, 31)), ("deflate", zlib.decompress), (None, None)):
            assert (await rawclient.http(server.port, "POST", path, big)).text == "ok"
            headers = {"Accept-Encoding": coding} if coding else {}
            r = await rawclient.http(server.port, "GET", path, headers=headers)
            assert r.header("content-encoding") == coding
            body = decode(r.body) if decode else r.body
            assert body.decode() == big
            if coding:
                assert len(r.body) < 200
        # Small responses stay uncompressed.
        assert (await rawclient.http(server.port, "POST", path, "4small")).text == "ok"
        r = await rawclient.http(server.port, "GET", path, headers={"Accept-Encoding": "gzip"})
        assert r.header("content-encoding") is None and r.text == "4small"

    run(main())


@pytest.mark.parametrize("deflate", [False, True])
def test_idle_connection_memory(start_server, deflate):
    """2 000 WebSocket connections that each sent one compressed message, then idle: the memory
    per connection with deflate stays within 2 KiB of the memory without it."""
    from test_stress import raise_fd_limit, record

    raise_fd_limit()
    args = ["--profile", "engineio-echo", "--host", "127.0.0.1", "--path", "/engine.io/", "--ping-interval", "60000"]
    server = start_server(*args, *([] if deflate else ["--no-deflate"]))
    count = 2000

    async def main():
        warm = []
        for _ in range(50):
            ws = await deflate_session(server.port) if deflate else rawclient.WebSocket(server.port)
            if not deflate:
                await ws.connect("/engine.io/?EIO=4&transport=websocket")
            warm.append(ws)
        base = server.rss_kib()
        sockets = []
        payload = ("4" + "x" * 2000).encode()
        for i in range(count):
            ws = rawclient.WebSocket(server.port)
            hdr = {"Sec-WebSocket-Extensions": "permessage-deflate"} if deflate else {}
            assert await ws.connect("/engine.io/?EIO=4&transport=websocket", hdr) == 101
            await ws.recv_frame()
            if deflate:
                ws.send_frame(rawclient.OP_TEXT, raw_deflate(payload), rsv=4)
            else:
                ws.send_frame(rawclient.OP_TEXT, payload)
            await ws.recv_frame()
            sockets.append(ws)
        after = server.rss_kib()
        for ws in sockets + warm:
            ws.close()
        return base, after

    base, after = run(main(), 300)
    per = (after - base) / count
    record(f"idle-memory-{'deflate' if deflate else 'plain'}", {"connections": count, "rss_kib_before": base,
                                                                "rss_kib_after": after, "kib_per_connection": round(per, 2)})
    assert per < 16, f"{per:.1f} KiB per idle connection"
    if deflate:
        plain = json.load(open(os.path.join(ARTIFACTS, "idle-memory-plain.json"))) if os.path.exists(
            os.path.join(ARTIFACTS, "idle-memory-plain.json")) else None
        if plain:
            assert per - plain["kib_per_connection"] < 2, (per, plain)
