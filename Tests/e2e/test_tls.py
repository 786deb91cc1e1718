"""TLS (https and wss) through the system OpenSSL: real TLS clients (openssl s_client, Python's ssl,
websockets and python-socketio, the official JS client in Node, headless Chromium), startup
errors, bad input, and certificate reload on SIGHUP."""

import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

import rawclient
from conftest import BINARY, ROOT, Server
from test_realclients import ARTIFACTS, RC, SHARED, bundle, node_env  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("tls"))
    subprocess.run(["bash", os.path.join(ROOT, "Fixtures", "tls", "generate.sh"), directory], check=True,
                   capture_output=True, timeout=120)
    return directory


def c(certs, name):
    return os.path.join(certs, name)


def tls_args(certs, *extra):
    return ["--host", "127.0.0.1", "--tls-cert", c(certs, "server.pem"), "--tls-key", c(certs, "server.key"), *extra]


def s_client(port, *args, stdin=b"", timeout=10):
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args], input=stdin,
                         capture_output=True, timeout=timeout)
    return out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")


def client_context(certs, client=False):
    ctx = ssl.create_default_context(cafile=c(certs, "ca.pem"))
    if client:
        ctx.load_cert_chain(c(certs, "client.pem"), c(certs, "client.key"))
    return ctx


def https_get(port, path, ctx):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data.decode(), s.version(), s.selected_alpn_protocol()


def test_openssl_clients_versions_alpn_and_sni(start_server, certs):
    server = start_server(*tls_args(certs, "--tls-sni", f"ecdsa.test:{c(certs, 'ecdsa.pem')}:{c(certs, 'ecdsa.key')}"))
    for version, expected in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        out = s_client(server.port, version, "-alpn", "http/1.1", "-CAfile", c(certs, "ca.pem"), "-servername", "localhost")
        assert f"Protocol  : {expected}" in out or f"New, {expected}" in out, out[-1500:]
        assert "ALPN protocol: http/1.1" in out
        assert "Verify return code: 0 (ok)" in out
    ecdsa = s_client(server.port, "-servername", "ecdsa.test", "-CAfile", c(certs, "ca.pem"))
    assert "subject=CN = ecdsa.test" in ecdsa and "Verify return code: 0 (ok)" in ecdsa
    default = s_client(server.port, "-servername", "unknown.test", "-CAfile", c(certs, "ca.pem"))
    assert "subject=CN = localhost" in default
    for old in ("-tls1", "-tls1_1"):
        assert "alert protocol version" in s_client(server.port, old) or "no protocols available" in s_client(server.port, old)


def test_https_polling_and_python_ssl(start_server, certs):
    server = start_server(*tls_args(certs))
    body, version, alpn = https_get(server.port, "/socket.io/?EIO=4&transport=polling", client_context(certs))
    assert body.startswith("HTTP/1.1 200 OK") and '0{"sid":' in body
    assert version == "TLSv1.3"
    page, _, _ = https_get(server.port, "/", client_context(certs))
    assert "Pick a nickname" in page


def test_wss_with_websockets_and_deflate(start_server, certs):
    import websockets

    server = start_server("--profile", "websocket-echo", *tls_args(certs))

    async def main():
        async with websockets.connect(f"wss://localhost:{server.port}/", ssl=client_context(certs), compression="deflate",
                                      max_size=2**22) as ws:
            assert "permessage-deflate" in ws.response_headers["Sec-WebSocket-Extensions"]
            for size in (10, 100_000, 2_000_000):
                text = "tls and deflate " * (size // 16 + 1)
                await ws.send(text)
                assert await ws.recv() == text

    asyncio.run(asyncio.wait_for(main(), 60))


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_python_socketio_over_https(start_server, certs, transport):
    import asyncio
    import ssl

    import aiohttp
    import socketio

    # The asyncio client: the threaded client reads and writes one SSL object from two threads,
    # which OpenSSL does not support; about one connection in twenty then stalls its reader
    # when the server's answer arrives while a frame is being written (seen here, and never
    # with this client or over plain WebSocket).
    # Node's heartbeat defaults: this test is about TLS, and the interop profile's 1 s / 2 s
    # heartbeat could close a busy client's session in the middle of an ack.
    server = start_server("--profile", "interop", "--ping-interval", "25000", "--ping-timeout", "20000",
                          *tls_args(certs))

    async def run():
        context = ssl.create_default_context(cafile=c(certs, "ca.pem"))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
            client = socketio.AsyncClient(reconnection=False, http_session=http)
            await client.connect(f"https://localhost:{server.port}", auth={"token": "t"}, transports=[transport],
                                 wait_timeout=10)
            assert await client.call("ack", ("a", b"\x01"), timeout=10) in (("a", b"\x01"), ["a", b"\x01"])
            assert await client.call("join", "r", timeout=10) == "joined:r"
            await client.disconnect()

    asyncio.run(asyncio.wait_for(run(), 60))


def test_official_js_client_in_node_over_https(start_server, certs, bundle):
    server = start_server("--profile", "interop", *tls_args(certs))
    env = dict(node_env(), NODE_EXTRA_CA_CERTS=c(certs, "ca.pem"))
    for mode in (["--transports", "websocket"], ["--transports", "polling"], []):
        out = subprocess.run(["node", "node-run.js", "--bundle", bundle, "--server", f"https://localhost:{server.port}",
                              *mode], cwd=RC, env=env, capture_output=True, text=True, timeout=90)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        result = json.loads(out.stdout)
        assert result["ok"] and result["passed"] == 13, result


def test_chromium_over_https_same_origin(start_server, certs, bundle):
    server = start_server("--profile", "interop", *tls_args(certs, "--static", RC, "--client-bundle", bundle))
    origin = f"https://127.0.0.1:{server.port}"
    os.makedirs(ARTIFACTS, exist_ok=True)
    out_json = os.path.join(ARTIFACTS, "chromium-https.json")
    out = subprocess.run(["python3", os.path.join(RC, "browser-run.py"),
                          f"{origin}/static/suite.html?server={origin}&client=/socket.io/socket.io.min.js",
                          "--chrome-flag=--ignore-certificate-errors", "--out", out_json,
                          "--screenshot", os.path.join(ARTIFACTS, "chromium-https.png")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    data = json.load(open(out_json))
    assert data["ok"] and all(ch["ok"] for ch in data["checks"]), data


def test_chat_app_over_https(start_server, certs, bundle):
    server = start_server(*tls_args(certs, "--client-bundle", bundle))
    os.makedirs(ARTIFACTS, exist_ok=True)
    out_json = os.path.join(ARTIFACTS, "chat-https.json")
    page = f"https://127.0.0.1:{server.port}/?autotest=1&room=secure&name=tess&say=hello%20over%20tls"
    out = subprocess.run(["python3", os.path.join(RC, "browser-run.py"), page, "--chrome-flag=--ignore-certificate-errors",
                          "--out", out_json, "--screenshot", os.path.join(ARTIFACTS, "chat-https.png")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    state = json.load(open(out_json))
    assert state["ok"] and state["status"] == "connected via websocket", state
    assert {"from": "tess", "text": "hello over tls", "history": False} in state["messages"]


def test_mutual_tls(start_server, certs):
    server = start_server(*tls_args(certs, "--tls-client-ca", c(certs, "ca.pem")))
    body, _, _ = https_get(server.port, "/socket.io/?EIO=4&transport=polling", client_context(certs, client=True))
    assert '0{"sid":' in body
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        https_get(server.port, "/socket.io/?EIO=4&transport=polling", client_context(certs))
    assert server.alive()


def test_startup_errors_are_clear(certs):
    cases = [
        (["--tls-cert", c(certs, "server.pem"), "--tls-key", c(certs, "other.key")], "does not match"),
        (["--tls-cert", c(certs, "expired.pem"), "--tls-key", c(certs, "expired.key")], "has expired"),
        (["--tls-cert", c(certs, "missing.pem"), "--tls-key", c(certs, "server.key")], "cannot load certificate chain"),
        (["--tls-cert", c(certs, "server.pem")], "--tls-cert and --tls-key go together"),
    ]
    for args, message in cases:
        out = subprocess.run([BINARY, "--host", "127.0.0.1", "--port", "0", *args], capture_output=True, text=True, timeout=30)
        assert out.returncode != 0, args
        assert message in out.stderr, (message, out.stderr[-500:])


def test_partial_records_drip_fed_one_byte_at_a_time(start_server, certs):
    """A client whose every TLS byte arrives in its own TCP segment: handshake, request and
    response all work (the server reassembles records from any split)."""
    server = start_server(*tls_args(certs))
    ctx = client_context(certs)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def drip():
        data = outgoing.read()
        for i in range(len(data)):
            sock.sendall(data[i:i + 1])

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            drip()
            chunk = sock.recv(65536)
            assert chunk, "closed during the handshake"
            incoming.write(chunk)
    drip()
    tls.write(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    drip()
    answer = b""
    while b"maxPayload" not in answer:
        try:
            answer += tls.read(65536)
        except ssl.SSLWantReadError:
            chunk = sock.recv(65536)
            assert chunk, answer
            incoming.write(chunk)
    assert answer.startswith(b"HTTP/1.1 200 OK") and b'0{"sid":' in answer
    sock.close()


def test_bad_input_leaves_the_server_up(start_server, certs):
    server = start_server(*tls_args(certs, "--tls-handshake-timeout", "500"))
    port = server.port
    # Warm up, then count memory before the bad input.
    for _ in range(20):
        https_get(port, "/socket.io/?EIO=4&transport=polling", client_context(certs))
    rss_before = server.rss_kib()
    # Plain HTTP on the TLS port: a clear 400.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    # Garbage instead of a ClientHello (neither TLS nor HTTP): the connection is closed.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"\x00" + os.urandom(300))
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
    # A TLS record header that claims a handshake, then garbage: an alert and a close.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x00\x10" + os.urandom(16))
        data = s.recv(100)
        assert data == b"" or data[0] == 0x15  # alert record
    # A handshake that never finishes: dropped at the timeout.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"\x16\x03\x01")
        started = time.monotonic()
        assert s.recv(100) == b""
        assert 0.3 < time.monotonic() - started < 3
    # A peer that vanishes without close_notify, mid-session.
    ctx = client_context(certs)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(100)
    raw.close()
    # Renegotiation is refused (TLS 1.2 client asks with "R").
    out = s_client(port, "-tls1_2", "-CAfile", c(certs, "ca.pem"), stdin=b"R\n", timeout=10)
    assert "RENEGOTIATING" in out
    assert "Secure Renegotiation IS supported" in out or "renegotiation" in out.lower()
    # Many more of the same, to see memory stay flat.
    for i in range(200):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall([b"GET / HTTP/1.1\r\n\r\n", b"\x00garbage", b"\x16\x03\x01\x00\x10" + os.urandom(16)][i % 3])
            try:
                s.recv(100)
            except OSError:
                pass
    # Still serving, and memory flat.
    body, _, _ = https_get(port, "/socket.io/?EIO=4&transport=polling", client_context(certs))
    assert '0{"sid":' in body
    assert server.alive()
    assert server.rss_kib() - rss_before < 8 * 1024, (rss_before, server.rss_kib())


def read_response(tls_socket):
    data = b""
    while b"\r\n\r\n" not in data:
        data += tls_socket.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < length:
        body += tls_socket.recv(4096)
    return head.decode(), body.decode()


def test_certificates_reload_on_sighup_without_dropping_connections(start_server, certs, tmp_path):
    cert, key = str(tmp_path / "live.pem"), str(tmp_path / "live.key")
    shutil.copy(c(certs, "server.pem"), cert)
    shutil.copy(c(certs, "server.key"), key)
    server = start_server("--host", "127.0.0.1", "--tls-cert", cert, "--tls-key", key)
    # A live WebSocket session before the reload.
    ctx = client_context(certs)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    live = ctx.wrap_socket(raw, server_hostname="localhost")
    live.sendall(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = read_response(live)
    assert "200 OK" in head and body.startswith("0{")
    assert "subject=CN = localhost" in s_client(server.port, "-CAfile", c(certs, "ca.pem"))
    shutil.copy(c(certs, "ecdsa.pem"), cert)
    shutil.copy(c(certs, "ecdsa.key"), key)
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for_log("TLS certificates reloaded")
    assert "subject=CN = ecdsa.test" in s_client(server.port, "-servername", "ecdsa.test", "-CAfile", c(certs, "ca.pem"))
    # The connection from before the reload still works (keep-alive request on it).
    live.sendall(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = read_response(live)
    assert "200 OK" in head and body.startswith("0{")
    live.close()
    # A broken file is refused and the old certificates stay.
    open(key, "w").write("not a key")
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for_log("TLS reload failed")
    assert "subject=CN = ecdsa.test" in s_client(server.port, "-servername", "ecdsa.test", "-CAfile", c(certs, "ca.pem"))


def test_tls_scanner(start_server, certs):
    server = start_server(*tls_args(certs))
    env = dict(os.environ, TLSCHECK_CA=c(certs, "ca.pem"), TLSCHECK_SNI="localhost")
    out = subprocess.run(["bash", os.path.join(SHARED, "tools", "tlscheck.sh"), f"127.0.0.1:{server.port}"],
                         capture_output=True, text=True, timeout=600, env=env)
    lines = (out.stdout + out.stderr).splitlines()
    summary = [l for l in lines if l.startswith("tlscheck: ")]
    assert summary and summary[-1].endswith(" 0 failed"), "\n".join(lines[-40:])
