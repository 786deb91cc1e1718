"""The comparison peer for socketio-bench: python-socketio 5.x on aiohttp running the same bench
app as `socketio-server --profile bench` ('echo' acknowledged with its arguments, 'join(room)'
acknowledged with true, 'broadcast(room, payload)' emitting 'bcast(payload)' to the room, then
acknowledged with true), on namespace / at /socket.io/.

Usage: python_peer.py [--host 127.0.0.1] [--port 0]. Prints "listening on http://HOST:PORT" on
stderr once it accepts connections; stops on SIGTERM/SIGINT.
"""

import argparse
import asyncio
import signal
import sys

import socketio
from aiohttp import web


def build_app():
    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*", logger=False, engineio_logger=False)

    @sio.on("echo")
    async def echo(sid, *args):
        return args

    @sio.on("join")
    async def join(sid, room):
        await sio.enter_room(sid, room)
        return True

    @sio.on("broadcast")
    async def broadcast(sid, room, payload=None):
        await sio.emit("bcast", payload, room=room)
        return True

    app = web.Application()
    sio.attach(app)
    return app


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    runner = web.AppRunner(build_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, backlog=4096)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"python-socketio bench peer listening on http://{args.host}:{port}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
