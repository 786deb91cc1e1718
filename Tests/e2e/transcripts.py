"""Replays the end-to-end transcripts of Fixtures/conformance/ against a running server.

A transcript is JSON: {"description", "spec", "steps": [...]}. Each step has an "op":
  http        method, path, [body | bodyRepeat {prefix, char, count}], [headers];
              expect {status, body | bodyRegex | bodyLength, headers}; [capture];
              [eventually] ms: retry until the expectation holds (for effects of a client action
              the server cannot acknowledge, such as a dropped connection)
  httpStart   like http, but runs in the background under "id" (a held long-poll)
  httpAwait   id; expect; [within] ms
  httpCancel  id: the client drops a background request (closes its connection)
  wsOpen      id, path; expect {status}
  wsSend      id; text | binaryBase64 | frame {opcode, payloadBase64 | text | repeat, fin, rsv, mask}
  wsExpect    id; text | textRegex | binaryBase64 | pong | close (code) | closed (true, with
              [answerPings] to keep the heartbeat going while waiting); [within] ms;
              [skipPings] answers `2` with `3` while waiting
  wsSilent    id; ms: nothing but Engine.IO pings may arrive in that time
  sleep       ms: only where the check is about a deadline having passed
  tcp         send (text, \\r\\n escapes); expectPrefix; [expectClosed]
Strings may use {name} for values captured earlier (capture: {name: regex with one group}).
"""

import asyncio
import base64
import glob
import json
import os
import re

import rawclient

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "Fixtures")


def load_all(kind="conformance"):
    paths = sorted(glob.glob(os.path.join(FIXTURES, kind, "*.json")))
    return [(os.path.basename(p)[:-5], json.load(open(p))) for p in paths]


def subst(value, vars):
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: vars.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {k: subst(v, vars) for k, v in value.items()}
    if isinstance(value, list):
        return [subst(v, vars) for v in value]
    return value


def repeated(spec):
    return spec["prefix"] + spec["char"] * spec["count"]


def body_of(step):
    if "bodyRepeat" in step:
        return repeated(step["bodyRepeat"])
    return step.get("body")


def check_response(resp, expect, where):
    if "status" in expect:
        assert resp.status == expect["status"], f"{where}: status {resp.status} != {expect['status']}: {resp.body[:300]!r}"
    if "body" in expect:
        assert resp.text == expect["body"], f"{where}: body {resp.text!r} != {expect['body']!r}"
    if "bodyRegex" in expect:
        assert re.fullmatch(expect["bodyRegex"], resp.text, re.S), f"{where}: body {resp.text!r} !~ {expect['bodyRegex']}"
    if "bodyLength" in expect:
        assert len(resp.body) == expect["bodyLength"], f"{where}: body length {len(resp.body)}"
    if "json" in expect:
        assert json.loads(resp.text) == expect["json"], f"{where}: json {resp.text!r}"
    for name, value in expect.get("headers", {}).items():
        got = resp.header(name)
        if value is None:
            assert got is None, f"{where}: header {name} present: {got!r}"
        else:
            assert got is not None and got.lower() == value.lower(), f"{where}: header {name} = {got!r}, want {value!r}"


async def replay(port, transcript):
    vars = {}
    pending = {}
    sockets = {}
    try:
        for index, raw_step in enumerate(transcript["steps"]):
            step = subst(raw_step, vars)
            op = step["op"]
            where = f"step {index} ({op} {step.get('path', step.get('id', ''))})"
            within = step.get("within", 5000) / 1000.0
            if op == "http":
                deadline = asyncio.get_running_loop().time() + step.get("eventually", 0) / 1000.0
                while True:
                    resp = await rawclient.http(port, step.get("method", "GET"), step["path"], body_of(step), step.get("headers"))
                    try:
                        check_response(resp, step.get("expect", {}), where)
                        break
                    except AssertionError:
                        if asyncio.get_running_loop().time() >= deadline:
                            raise
                        await asyncio.sleep(0.01)
                for name, regex in step.get("capture", {}).items():
                    m = re.search(regex, resp.text)
                    assert m, f"{where}: capture {name} failed on {resp.text!r}"
                    vars[name] = m.group(1)
            elif op == "httpStart":
                pending[step["id"]] = asyncio.create_task(
                    rawclient.http(port, step.get("method", "GET"), step["path"], body_of(step), step.get("headers"), timeout=30)
                )
                await asyncio.sleep(0.05)  # let the request reach the server before the next step
            elif op == "httpAwait":
                resp = await asyncio.wait_for(pending.pop(step["id"]), within)
                check_response(resp, step.get("expect", {}), where)
            elif op == "httpCancel":
                task = pending.pop(step["id"])
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
            elif op == "wsOpen":
                ws = rawclient.WebSocket(port)
                status = await ws.connect(step["path"], step.get("headers"))
                sockets[step["id"]] = ws
                if "expect" in step:
                    assert status == step["expect"]["status"], f"{where}: status {status}"
            elif op == "wsSend":
                ws = sockets[step["id"]]
                if "text" in step:
                    ws.send_text(step["text"])
                elif "binaryBase64" in step:
                    ws.send_binary(base64.b64decode(step["binaryBase64"]))
                else:
                    f = step["frame"]
                    if "payloadBase64" in f:
                        payload = base64.b64decode(f["payloadBase64"])
                    elif "repeat" in f:
                        payload = repeated(f["repeat"]).encode()
                    else:
                        payload = f.get("text", "").encode()
                    ws.send_frame(f["opcode"], payload, fin=f.get("fin", True), rsv=f.get("rsv", 0), mask=f.get("mask", True))
                await ws.writer.drain()
            elif op == "wsExpect":
                ws = sockets[step["id"]]
                if step.get("closed"):
                    if step.get("answerPings"):
                        deadline = asyncio.get_running_loop().time() + within
                        while True:
                            left = deadline - asyncio.get_running_loop().time()
                            assert left > 0, f"{where}: not closed in time"
                            msg = await ws.recv(timeout=left, skip_pings=True)
                            if isinstance(msg, tuple):
                                break
                            raise AssertionError(f"{where}: unexpected {msg!r}")
                        continue
                    await ws.expect_closed(within)
                    continue
                if "pong" in step:
                    while True:
                        opcode, payload = await ws.recv_frame(within)
                        if opcode == rawclient.OP_PONG:
                            assert payload == step["pong"].encode(), f"{where}: pong {payload!r}"
                            break
                        assert opcode == rawclient.OP_TEXT and payload == b"2", f"{where}: got {opcode} {payload!r}"
                    continue
                msg = await ws.recv(timeout=within, skip_pings=step.get("skipPings", False))
                if "text" in step:
                    assert msg == step["text"], f"{where}: got {msg!r}, want {step['text']!r}"
                elif "textRegex" in step:
                    assert isinstance(msg, str) and re.fullmatch(step["textRegex"], msg), f"{where}: got {msg!r}"
                    for name, regex in step.get("capture", {}).items():
                        vars[name] = re.search(regex, msg).group(1)
                elif "binaryBase64" in step:
                    assert msg == base64.b64decode(step["binaryBase64"]), f"{where}: got {msg!r}"
                elif "close" in step:
                    assert msg == ("close", step["close"]), f"{where}: got {msg!r}, want close {step['close']}"
            elif op == "wsSilent":
                ws = sockets[step["id"]]
                try:
                    while True:
                        msg = await ws.recv(timeout=step["ms"] / 1000.0, skip_pings=True)
                        raise AssertionError(f"{where}: unexpected {msg!r}")
                except asyncio.TimeoutError:
                    pass
            elif op == "sleep":
                await asyncio.sleep(step["ms"] / 1000.0)
            elif op == "tcp":
                reader, writer = await asyncio.open_connection(rawclient.HOST, port)
                writer.write(step["send"].encode("latin-1"))
                await writer.drain()
                data = b""
                try:
                    while True:
                        chunk = await asyncio.wait_for(reader.read(65536), within)
                        if not chunk:
                            break
                        data += chunk
                        if not step.get("expectClosed") and data.startswith(step["expectPrefix"].encode()):
                            break
                except asyncio.TimeoutError:
                    assert not step.get("expectClosed"), f"{where}: connection not closed; got {data[:200]!r}"
                assert data.startswith(step["expectPrefix"].encode()), f"{where}: got {data[:200]!r}"
                writer.close()
            else:
                raise ValueError(f"unknown op {op}")
    finally:
        for task in pending.values():
            task.cancel()
        for ws in sockets.values():
            ws.close()
