"""HTTP behaviour of the real server: keep-alive, pipelining, header limits and timeouts, bad input."""

import asyncio
import os
import time

import rawclient

HS = "/engine.io/?EIO=4&transport=polling"


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_keep_alive_serves_several_requests_on_one_connection(conformance_server):
    async def main():
        conn = await rawclient.HTTPConnection(conformance_server.port).open()
        try:
            r1 = await conn.request("GET", HS)
            sid = r1.text.split('"sid":"')[1].split('"')[0]
            r2 = await conn.request("POST", f"{HS}&sid={sid}", body="4keep")
            r3 = await conn.request("GET", f"{HS}&sid={sid}")
            assert (r1.status, r2.text, r3.text) == (200, "ok", "4keep")
            assert r2.header("connection") is None
        finally:
            conn.close()

    run(main())


def test_pipelined_requests_are_answered_in_order(conformance_server):
    async def main():
        sid = (await rawclient.polling_handshake(conformance_server.port))["sid"]
        reader, writer = await asyncio.open_connection(rawclient.HOST, conformance_server.port)
        path = f"{HS}&sid={sid}"
        writer.write(
            rawclient.build_request("POST", path, "4one", keep_alive=True)
            + rawclient.build_request("GET", path, keep_alive=True)
            + rawclient.build_request("GET", "/engine.io/?EIO=4&transport=polling&sid=unknown", keep_alive=True)
        )
        await writer.drain()
        first = await rawclient.read_response(reader)
        second = await rawclient.read_response(reader)
        third = await rawclient.read_response(reader)
        writer.close()
        assert (first.status, first.text) == (200, "ok")
        assert (second.status, second.text) == (200, "4one")
        assert third.status == 400

    run(main())


def test_http_1_0_request_is_answered_and_closed(conformance_server):
    async def main():
        reader, writer = await asyncio.open_connection(rawclient.HOST, conformance_server.port)
        writer.write(f"GET {HS} HTTP/1.0\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), 5)  # EOF proves the close
        writer.close()
        assert data.startswith(b"HTTP/1.0 200 OK")

    run(main())


def test_oversized_header_is_refused_and_server_stays_up(conformance_server):
    async def main():
        reader, writer = await asyncio.open_connection(rawclient.HOST, conformance_server.port)
        writer.write(f"GET {HS} HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 200_000}\r\n\r\n".encode())
        try:
            await writer.drain()
        except ConnectionError:
            pass
        try:
            data = await asyncio.wait_for(reader.read(), 5)
        except ConnectionError:
            data = b""
        writer.close()
        assert data == b"" or data.startswith(b"HTTP/1.1 4")
        await rawclient.polling_handshake(conformance_server.port)

    run(main())


def test_slow_headers_are_dropped(start_server):
    server = start_server("--host", "127.0.0.1", "--request-header-timeout", "500")

    async def main():
        reader, writer = await asyncio.open_connection(rawclient.HOST, server.port)
        started = time.monotonic()
        writer.write(b"GET / HTTP/1.1\r\n")
        closed_at = None
        for _ in range(50):  # one header byte every 100 ms: a slowloris client
            try:
                writer.write(b"X")
                await writer.drain()
            except ConnectionError:
                closed_at = time.monotonic()
                break
            try:
                data = await asyncio.wait_for(reader.read(1), 0.1)
                if data == b"":
                    closed_at = time.monotonic()
                    break
            except asyncio.TimeoutError:
                pass
        writer.close()
        assert closed_at is not None, "slow client was never dropped"
        assert 0.4 <= closed_at - started < 2.0, closed_at - started

    run(main())


def test_idle_keep_alive_connection_is_closed(start_server):
    server = start_server("--host", "127.0.0.1", "--request-header-timeout", "500")

    async def main():
        conn = await rawclient.HTTPConnection(server.port).open()
        r = await conn.request("GET", "/")
        assert r.status == 200
        data = await asyncio.wait_for(conn.reader.read(), 3)
        assert data == b""
        conn.close()

    run(main())


def test_truncated_and_garbage_requests_leave_the_server_up(conformance_server):
    async def main():
        sid = (await rawclient.polling_handshake(conformance_server.port))["sid"]
        # A POST that promises more body than it sends, then hangs up.
        reader, writer = await asyncio.open_connection(rawclient.HOST, conformance_server.port)
        writer.write(f"POST {HS}&sid={sid} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n4abc".encode())
        await writer.drain()
        writer.close()
        # Random bytes on many connections.
        for i in range(100):
            reader, writer = await asyncio.open_connection(rawclient.HOST, conformance_server.port)
            writer.write(os.urandom(64 + i))
            await writer.drain()
            writer.close()
        # Bad chunked encoding.
        reader, writer = await asyncio.open_connection(rawclient.HOST, conformance_server.port)
        writer.write(f"POST {HS}&sid={sid} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".encode())
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert data.startswith(b"HTTP/1.1 400")
        # A good request, then a malformed one, on one keep-alive connection: the first is
        # answered, the second gets an empty 400 that closes the connection.
        reader, writer = await asyncio.open_connection(rawclient.HOST, conformance_server.port)
        writer.write(rawclient.build_request("GET", HS, keep_alive=True) + b"GET /\x01 HTTP/1.1\r\n\r\n")
        await writer.drain()
        first = await rawclient.read_response(reader)
        rest = await asyncio.wait_for(reader.read(), 5)  # EOF proves the close
        writer.close()
        assert first.status == 200 and first.text.startswith("0{")
        head = rest.split(b"\r\n\r\n")[0].lower()
        assert head.startswith(b"http/1.1 400 bad request"), rest
        assert b"connection: close" in head and b"content-length: 0" in head, rest
        await rawclient.polling_handshake(conformance_server.port)

    run(main())
    assert conformance_server.alive()


async def raw_upgrade(port, path, header_lines, expect_close=True):
    """Sends a hand-written upgrade request; returns the response and whether the server then
    closed the connection (when `expect_close`)."""
    reader, writer = await asyncio.open_connection(rawclient.HOST, port)
    head = f"GET {path} HTTP/1.1\r\nHost: {rawclient.HOST}\r\n" + "".join(l + "\r\n" for l in header_lines) + "\r\n"
    writer.write(head.encode("latin-1"))
    await writer.drain()
    response = await asyncio.wait_for(rawclient.read_response(reader, "GET"), 10)
    closed = expect_close and response.status != 101 and await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    return response, closed


def test_websocket_opening_handshake_is_checked(conformance_server):
    """RFC 6455 §4.2: the accept value of the RFC's example key, a Connection header listing
    several tokens, and refusals (400, Engine.IO code 3, connection closed) for a missing or
    doubled key or another protocol version. Without an Upgrade header the request is a plain
    GET for the websocket transport: 400 code 3 as well, on a connection that stays open."""
    port = conformance_server.port
    path = "/socket.io/?EIO=4&transport=websocket"
    good = ["Upgrade: websocket", "Connection: keep-alive, Upgrade", "Sec-WebSocket-Version: 13"]
    example = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="

    async def main():
        response, _ = await raw_upgrade(port, path, good + [example])
        assert response.status == 101, response
        # Header names and tokens in any case, tokens padded with spaces and tabs.
        response, _ = await raw_upgrade(
            port, path, ["uPGRADE: WebSocket", "CONNECTION: close ,\t UPGRADE ", good[2], example])
        assert response.status == 101, response
        assert response.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert response.header("upgrade").lower() == "websocket"
        assert "upgrade" in response.header("connection").lower()
        for lines in (
            good,                                                        # no key
            good + [example, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="],  # two keys
            [good[0], good[1], "Sec-WebSocket-Version: 8", example],     # another version
            [good[0], good[1], example],                                 # no version
        ):
            response, closed = await raw_upgrade(port, path, lines)
            assert response.status == 400, (lines, response)
            assert '"code":3' in response.text, (lines, response)
            assert closed, lines
        response, _ = await raw_upgrade(port, path, [good[1], good[2], example], expect_close=False)
        assert response.status == 400 and '"code":3' in response.text, response
        # The server still upgrades after all that.
        ws = rawclient.WebSocket(port)
        assert await ws.connect(path) == 101
        assert (await ws.recv()).startswith("0{")

    run(main())


def test_header_timeout_counts_from_the_last_response(start_server):
    """The request-header timeout runs from the end of the previous response: requests 300 ms
    apart keep a connection with a 500 ms timeout open well past 500 ms, and it closes about
    500 ms after the last response."""
    server = start_server("--host", "127.0.0.1", "--request-header-timeout", "500")

    async def main():
        conn = await rawclient.HTTPConnection(server.port).open()
        for _ in range(5):
            r = await conn.request("GET", "/")
            assert r.status == 200
            await asyncio.sleep(0.3)  # the client's think time, the thing under test
        last = time.monotonic()
        r = await conn.request("GET", "/")
        assert r.status == 200
        data = await asyncio.wait_for(conn.reader.read(), 3)
        assert data == b""
        assert 0.4 <= time.monotonic() - last < 1.5, time.monotonic() - last
        conn.close()

    run(main())


def test_websocket_frames_split_into_single_bytes_or_batched_reach_the_session(conformance_server):
    """The server cuts frames out of the byte stream itself: frames arriving one byte per write,
    or several in one write, with a fragmented message that has a ping between its fragments,
    are each delivered once and in order (the bare Engine.IO echo at /engine.io/ sends every
    message back)."""
    port = conformance_server.port

    frame = rawclient.encode_frame

    wire = b"".join([
        frame(rawclient.OP_TEXT, "4hello"),
        frame(rawclient.OP_TEXT, "4" + "é" * 100),           # not ASCII: the general path
        frame(rawclient.OP_TEXT, "4frag", fin=False),
        frame(rawclient.OP_PING, b"between"),
        frame(rawclient.OP_CONT, "ment"),
        frame(rawclient.OP_BINARY, bytes(range(200))),       # a 16-bit length
    ])
    expected = ["4hello", "4" + "é" * 100, "4fragment", bytes(range(200))]

    async def receive_all(ws, times=1):
        """The messages in order, and the pongs (which may overtake queued messages)."""
        got, pongs = [], []
        while len(got) < len(expected) * times or len(pongs) < times:
            opcode, payload = await ws.recv_frame()
            if opcode == rawclient.OP_PONG:
                pongs.append(payload)
            elif opcode == rawclient.OP_TEXT:
                got.append(payload.decode("utf-8"))
            elif opcode == rawclient.OP_BINARY:
                got.append(payload)
            else:
                raise AssertionError(f"unexpected frame {opcode} {payload!r}")
        assert pongs == [b"between"] * times
        return got

    async def main():
        ws = rawclient.WebSocket(port)
        assert await ws.connect("/engine.io/?EIO=4&transport=websocket") == 101
        assert (await ws.recv()).startswith("0{")
        for i in range(len(wire)):
            ws.writer.write(wire[i:i + 1])
            await ws.writer.drain()
        assert await receive_all(ws) == expected
        ws.writer.write(wire + wire)
        await ws.writer.drain()
        assert await receive_all(ws, times=2) == expected + expected
        ws.close()

    run(main())


def test_first_request_fast_path_and_its_hand_overs(start_server):
    """A connection's first request is read by the server's own strict reader when it is a
    WebSocket handshake, and by NIO's HTTP parser otherwise. Both must behave the same: frames
    sent in the same write as the handshake reach the session (they were lost before); a head
    arriving one byte at a time, or longer than the reader takes (8 KiB), still upgrades; a
    handshake the endpoint refuses (unknown sid, session limit) gets its Engine.IO error and a
    closed connection; a long-polling request still works on the same server."""
    port = start_server("--profile", "conformance").port
    limited = start_server("--profile", "demo", "--host", "127.0.0.1", "--max-sessions", "2").port
    key = "dGhlIHNhbXBsZSBub25jZQ=="

    def head(path, extra=""):
        return (f"GET {path} HTTP/1.1\r\nHost: {rawclient.HOST}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
                f"{extra}\r\n").encode("latin-1")

    def frame(text):
        return rawclient.encode_frame(rawclient.OP_TEXT, text)

    async def upgrade_with(chunks):
        ws = rawclient.WebSocket(port)
        ws.reader, ws.writer = await asyncio.open_connection(rawclient.HOST, port)
        for chunk in chunks:
            ws.writer.write(chunk)
            await ws.writer.drain()
        response = await asyncio.wait_for(rawclient.read_response(ws.reader, "GET"), 10)
        return ws, response

    async def main():
        # The handshake and a message in one write: the echo endpoint sends the message back.
        ws, response = await upgrade_with([head("/engine.io/?EIO=4&transport=websocket") + frame("4early")])
        assert response.status == 101, response
        assert response.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert (await ws.recv()).startswith("0{")
        assert await ws.recv() == "4early"
        ws.close()
        # Frames the server answers at once (a ping, a message that is not UTF-8) come after the
        # 101, never before it.
        ws, response = await upgrade_with([head("/engine.io/?EIO=4&transport=websocket")
                                           + rawclient.encode_frame(rawclient.OP_PING, b"hi")])
        assert response.status == 101, response
        frames = [await ws.recv_frame(), await ws.recv_frame()]
        assert (rawclient.OP_PONG, b"hi") in frames, frames
        assert any(op == rawclient.OP_TEXT and p.startswith(b"0{") for op, p in frames), frames
        ws.close()
        ws, response = await upgrade_with([head("/engine.io/?EIO=4&transport=websocket")
                                           + rawclient.encode_frame(rawclient.OP_TEXT, b"4\xff")])
        assert response.status == 101, response
        assert await ws.expect_closed() == 1007
        ws.close()
        # One byte per write.
        whole = head("/engine.io/?EIO=4&transport=websocket")
        ws, response = await upgrade_with([whole[i:i + 1] for i in range(len(whole))])
        assert response.status == 101, response
        assert (await ws.recv()).startswith("0{")
        ws.close()
        # Longer than the fast path reads: NIO's parser takes it (a big cookie, as browsers send).
        ws, response = await upgrade_with([head("/engine.io/?EIO=4&transport=websocket", "Cookie: " + "c" * 9000 + "\r\n")])
        assert response.status == 101, response
        assert (await ws.recv()).startswith("0{")
        ws.close()
        # Refused by the endpoint: an upgrade for a session that does not exist.
        reader, writer = await asyncio.open_connection(rawclient.HOST, port)
        writer.write(head("/socket.io/?EIO=4&transport=websocket&sid=nosuchsession"))
        response = await asyncio.wait_for(rawclient.read_response(reader, "GET"), 10)
        assert response.status == 400 and '"code":1' in response.text, response
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        # Refused by the session limit (two sessions allowed; the first two stay open).
        held = []
        for _ in range(2):
            ws = rawclient.WebSocket(limited)
            assert await ws.connect("/socket.io/?EIO=4&transport=websocket") == 101
            assert (await ws.recv()).startswith("0{")
            held.append(ws)
        reader, writer = await asyncio.open_connection(rawclient.HOST, limited)
        writer.write(head("/socket.io/?EIO=4&transport=websocket"))
        response = await asyncio.wait_for(rawclient.read_response(reader, "GET"), 10)
        assert response.status == 503, response
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        for ws in held:
            ws.close()
        # Not a handshake: the HTTP pipeline serves it, keep-alive included.
        conn = await rawclient.HTTPConnection(port).open()
        for _ in range(2):
            r = await conn.request("GET", "/nothing-here")
            assert r.status == 404, r
        conn.close()
        assert (await rawclient.polling_handshake(port))["sid"]

    run(main())


def test_keep_alive_polling_codec_and_its_hand_over_to_nio(conformance_server):
    """Keep-alive long-polling requests are read by the server's own HTTP codec (GET, POST with
    a Content-Length or a chunked body, OPTIONS); a request it does not read (an upgrade) hands
    the connection to NIO's HTTP parser between two requests, and the connection goes on: a body
    arriving in pieces, a chunked POST, then the WebSocket upgrade of the same session on the
    same connection."""
    port = conformance_server.port

    async def main():
        reader, writer = await asyncio.open_connection(rawclient.HOST, port)

        async def send(data, method="GET"):
            writer.write(data)
            await writer.drain()
            return await asyncio.wait_for(rawclient.read_response(reader, method), 10)

        r = await send(rawclient.build_request("GET", HS, keep_alive=True))
        assert r.status == 200 and r.header("connection") is None, r
        sid = r.text.split('"sid":"')[1].split('"')[0]
        path = f"{HS}&sid={sid}"
        # A POST whose head and body come in three writes.
        post = rawclient.build_request("POST", path, "4pieces", keep_alive=True)
        for chunk in (post[:20], post[20:-4], post[-4:]):
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.02)
        r = await asyncio.wait_for(rawclient.read_response(reader, "POST"), 10)
        assert (r.status, r.text) == (200, "ok"), r
        assert (await send(rawclient.build_request("GET", path, keep_alive=True))).text == "4pieces"
        # A chunked body, read by the same codec.
        chunked = (f"POST {path} HTTP/1.1\r\nHost: {rawclient.HOST}\r\nContent-Type: text/plain;charset=UTF-8\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n3\r\n4ch\r\n5\r\nunked\r\n0\r\n\r\n").encode()
        r = await send(chunked, "POST")
        assert (r.status, r.text) == (200, "ok"), r
        assert (await send(rawclient.build_request("GET", path, keep_alive=True))).text == "4chunked"
        # The upgrade of this session, on this connection.
        upgrade = (f"GET /engine.io/?EIO=4&transport=websocket&sid={sid} HTTP/1.1\r\nHost: {rawclient.HOST}\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode()
        r = await send(upgrade)
        assert r.status == 101, r
        ws = rawclient.WebSocket(port)
        ws.reader, ws.writer = reader, writer
        ws.send_text("2probe")
        assert await ws.recv() == "3probe"
        ws.close()

    run(main())
    assert conformance_server.alive()
