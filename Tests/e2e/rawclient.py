"""Raw Engine.IO test clients: HTTP/1.1 and WebSocket (RFC 6455) written directly on asyncio
streams, so tests control every byte on the wire. Talks to 127.0.0.1 only."""

import asyncio
import base64
import os
import struct

HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 5.0


class HTTPResponse:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> list of values
        self.body = body

    def header(self, name):
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def text(self):
        return self.body.decode("utf-8")

    def __repr__(self):
        return f"<HTTPResponse {self.status} {self.body[:200]!r}>"


async def read_response(reader, method="GET"):
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed before a response")
    parts = status_line.decode("latin-1").split(" ", 2)
    status = int(parts[1])
    headers = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    body = b""
    if method == "HEAD" or status in (101, 204, 304):
        return HTTPResponse(status, headers, body)
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"][0]))
    elif headers.get("transfer-encoding", [""])[0].lower() == "chunked":
        while True:
            size = int((await reader.readline()).strip(), 16)
            if size == 0:
                await reader.readline()
                break
            body += await reader.readexactly(size)
            await reader.readline()
    else:
        body = await reader.read()
    return HTTPResponse(status, headers, body)


def build_request(method, path, body=None, headers=None, keep_alive=False):
    headers = dict(headers or {})
    headers.setdefault("Host", HOST)
    if body is not None:
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers.setdefault("Content-Type", "text/plain;charset=UTF-8")
        headers.setdefault("Content-Length", str(len(body)))
    if not keep_alive:
        headers.setdefault("Connection", "close")
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + (body or b"")


async def http(port, method, path, body=None, headers=None, timeout=DEFAULT_TIMEOUT):
    """One request on a fresh connection; returns HTTPResponse."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
    try:
        writer.write(build_request(method, path, body, headers))
        await writer.drain()
        return await asyncio.wait_for(read_response(reader, method), timeout)
    finally:
        writer.close()


class HTTPConnection:
    """A keep-alive connection for several requests (or a request held open)."""

    def __init__(self, port):
        self.port = port
        self.reader = None
        self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        return self

    async def request(self, method, path, body=None, headers=None, timeout=DEFAULT_TIMEOUT):
        self.writer.write(build_request(method, path, body, headers, keep_alive=True))
        await self.writer.drain()
        return await asyncio.wait_for(read_response(self.reader, method), timeout)

    def close(self):
        if self.writer:
            self.writer.close()


# --- WebSocket -------------------------------------------------------------------------------

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class WebSocket:
    def __init__(self, port):
        self.port = port
        self.reader = None
        self.writer = None
        self.status = None
        self.response = None

    async def connect(self, path, headers=None, timeout=DEFAULT_TIMEOUT):
        """Sends the upgrade request; returns the HTTP status (101 on success)."""
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.port), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        hdrs = {
            "Host": HOST,
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
        }
        hdrs.update(headers or {})
        head = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        self.writer.write(head.encode("latin-1"))
        await self.writer.drain()
        self.response = await asyncio.wait_for(read_response(self.reader, "GET"), timeout)
        self.status = self.response.status
        return self.status

    def send_frame(self, opcode, payload=b"", fin=True, rsv=0, mask=True):
        self.writer.write(encode_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text)

    def send_binary(self, data):
        self.send_frame(OP_BINARY, data)

    async def recv_frame(self, timeout=DEFAULT_TIMEOUT):
        """Returns (opcode, payload) of the next frame; ('eof', b'') when the connection ended."""
        try:
            head = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        except asyncio.IncompleteReadError:
            return ("eof", b"")
        except ConnectionResetError:
            return ("eof", b"")
        opcode = head[0] & 0x0F
        n = head[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        payload = await asyncio.wait_for(self.reader.readexactly(n), timeout)
        return (opcode, payload)

    async def recv(self, timeout=DEFAULT_TIMEOUT, skip_pings=False):
        """Next data message as str (text) or bytes (binary); ('close', code) for a close frame;
        ('eof',) when the TCP connection ended. With skip_pings, Engine.IO pings `2` are answered
        with `3` and skipped."""
        while True:
            opcode, payload = await self.recv_frame(timeout)
            if opcode == OP_TEXT:
                text = payload.decode("utf-8")
                if skip_pings and text == "2":
                    self.send_text("3")
                    continue
                return text
            if opcode == OP_BINARY:
                return payload
            if opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                return ("close", code)
            if opcode == "eof":
                return ("eof",)
            # pings/pongs at the WebSocket level are not data

    async def expect_closed(self, timeout=DEFAULT_TIMEOUT):
        """Reads until a close frame or EOF; returns the close code (or None)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError("WebSocket not closed in time")
            msg = await self.recv(timeout=left)
            if isinstance(msg, tuple):
                return msg[1] if msg[0] == "close" else None

    def close(self):
        if self.writer:
            self.writer.close()


def encode_frame(opcode, payload=b"", fin=True, rsv=0, mask=True):
    """The bytes of one WebSocket frame as a client sends it (masked unless told otherwise)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        header = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        header = struct.pack("!BBH", b0, m | 126, n)
    else:
        header = struct.pack("!BBQ", b0, m | 127, n)
    if mask:
        key = os.urandom(4)
        payload = _mask(payload, key)
        header += key
    return header + payload


def _mask(payload, key):
    n = len(payload)
    if n == 0:
        return payload
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


# --- Engine.IO helpers -----------------------------------------------------------------------

import json
import re

RS = "\x1e"


async def polling_handshake(port, path="/engine.io/"):
    r = await http(port, "GET", f"{path}?EIO=4&transport=polling")
    assert r.status == 200, r
    assert r.text.startswith("0{"), r.text
    return json.loads(r.text[1:])


def decode_payload(text):
    return text.split(RS) if text else []
