#!/usr/bin/env bash
# Prints the path of the official socket.io client bundle (4.8.1, browser build), fetched once
# from PyPI and cached: PyPI's nicegui 3.18.0 wheel ships it as nicegui/static/socket.io.min.js.
# The wheel and the file are checked against their sha256 sums; nothing else is downloaded.
set -euo pipefail
cache="${XDG_CACHE_HOME:-$HOME/.cache}/swift-socketio-server/client"
wheel_name="nicegui-3.18.0-py3-none-any.whl"
wheel_sha="a2bd51642312d98aab6d8b641245d796ff1b89da5829777170bcc488140c3dcd"
member="nicegui/static/socket.io.min.js"
member_sha="b0e735814f8dcfecd6cdb8a7ce95a297a7e1e5f2727a29e6f5901801d52fa0c5"
out="$cache/socket.io-4.8.1.min.js"

sha() { sha256sum "$1" | cut -d' ' -f1; }
if [ -f "$out" ] && [ "$(sha "$out")" = "$member_sha" ]; then echo "$out"; exit 0; fi
mkdir -p "$cache"
if [ ! -f "$cache/$wheel_name" ] || [ "$(sha "$cache/$wheel_name")" != "$wheel_sha" ]; then
  echo "fetch-client-bundle: downloading nicegui==3.18.0 from PyPI" >&2
  timeout 300 python3 -m pip download -q --no-deps --only-binary=:all: --disable-pip-version-check \
    -d "$cache" "nicegui==3.18.0" >&2
fi
[ "$(sha "$cache/$wheel_name")" = "$wheel_sha" ] || { echo "fetch-client-bundle: wheel checksum mismatch" >&2; exit 1; }
python3 - "$cache/$wheel_name" "$member" "$out.tmp" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[3], "wb") as f:
    f.write(z.read(sys.argv[2]))
PY
[ "$(sha "$out.tmp")" = "$member_sha" ] || { rm -f "$out.tmp"; echo "fetch-client-bundle: bundle checksum mismatch" >&2; exit 1; }
mv "$out.tmp" "$out"
echo "$out"
