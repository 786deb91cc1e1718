#!/usr/bin/env bash
# Builds (release) and runs socketio-server. With no arguments it serves the chat app on
# 0.0.0.0:3000; arguments go to the server. The socket.io client bundle is fetched once from PyPI
# (scripts/fetch-client-bundle.sh) and served by the server, so the chat page works offline.
# Idempotent: installs only what is missing, rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export PATH="/opt/swift/usr/bin:$PATH"
bundle=()
if path="$(bash scripts/fetch-client-bundle.sh)"; then
  bundle=(--client-bundle "$path")
else
  echo "run: no local client bundle; the chat page will load the client from the CDN" >&2
fi
bash scripts/build-release.sh --product socketio-server >&2
exec .build/release/socketio-server "${bundle[@]}" "$@"
